"""The vocabulary of agent actions: who acts, what may be done, what comes back.

Kept apart from the engine (``_core.py``) so the action modules and the
engine share these names without importing each other.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.errors import BillboxError
from billbox.gateways.base import NormalisedObject
from billbox.gateways.registry import ActingAdapter
from billbox.models import ActorKind, GatewayAccount, GatewayAction, Role
from billbox.money import Money

Factory = sessionmaker[Session]
Request = dict[str, Any]

#: Which role may run which action. Admins and agents act on customers'
#: billing; finance moves money (refund, capture, void) and issues invoices
#: but does not change subscriptions, coupons or tax ids.
ALL_ACTIONS = frozenset(
    {
        "refund",
        "capture",
        "void",
        "cancel_subscription",
        "create_subscription",
        "apply_coupon",
        "add_tax_id",
        "finalize_invoice",
    }
)
PERMISSIONS: Mapping[Role, frozenset[str]] = {
    Role.ADMIN: ALL_ACTIONS,
    Role.AGENT: ALL_ACTIONS,
    Role.FINANCE: frozenset({"refund", "capture", "void", "finalize_invoice"}),
}


class ActionError(BillboxError):
    """An action did not (or not yet) happen; ``str(error)`` is written for the agent.

    ::

        ActionError
        ├── ActionRefused    our checks said no; nothing was sent to the gateway
        ├── ActionDeclined   the gateway said no; the attempt is audited
        └── ActionRetryable  the gateway could not be reached; retry with the same key
    """

    def __init__(self, message: str, *, action_id: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.action_id = action_id


class ActionRefused(ActionError):
    """Refused by Billbox before any gateway call (permission, limit, state, amount)."""


class ActionDeclined(ActionError):
    """The gateway refused; ``code``/``request_id`` are the gateway's, kept in the audit log."""

    def __init__(
        self, message: str, *, action_id: int | None = None, code: str = "", request_id: str = ""
    ) -> None:
        super().__init__(message, action_id=action_id)
        self.code = code
        self.request_id = request_id


class ActionRetryable(ActionError):
    """The outcome is not known yet; the same idempotency key can safely be tried again."""

    def __init__(
        self, message: str, *, action_id: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, action_id=action_id)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff user (email) or an API token (its name), with its role."""

    email: str
    role: Role
    kind: ActorKind = ActorKind.USER


@dataclass(frozen=True)
class ActionResult:
    """What happened, as stored on the action row; ``replayed`` when the key was seen before."""

    action_id: int
    action: str
    target_kind: str
    target_external_id: str
    response_id: str | None
    amount: int | None
    currency: str | None
    replayed: bool
    message: str


def new_idempotency_key() -> str:
    """A fresh key; a form renders one so that a double submit sends the same key twice."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Plan:
    """What transaction 1 decided to send, once every check passed."""

    account: GatewayAccount
    target_kind: str
    target_external_id: str
    request: Request
    amount: int | None = None
    currency: str | None = None


#: Calls the adapter with a stored request; must only read ``request``, so a retry repeats it.
Call = Callable[[ActingAdapter, Request, str], NormalisedObject]
#: Applies extra ledger changes after the normalised answer is applied (same transaction).
Extra = Callable[[Session, GatewayAccount, Request, NormalisedObject], None]


@dataclass(frozen=True)
class Spec:
    """One kind of action: its name, the capability it needs, how to call and describe it."""

    name: str
    capability: str
    label: str  # "Refund", for messages: "Refund refused by Stripe: …"
    call: Call
    describe: Callable[[ActionResult], str]
    after_apply: Extra | None = None


def money_text(amount: int | None, currency: str | None) -> str:
    if amount is None or currency is None:
        return ""
    return str(Money(amount, currency))


def gateway_name(account: GatewayAccount) -> str:
    return account.gateway.value.capitalize() if account.gateway.value != "paypal" else "PayPal"


def result_of(row: GatewayAction, spec: Spec, *, replayed: bool) -> ActionResult:
    assert row.id is not None
    result = ActionResult(
        action_id=row.id,
        action=row.action,
        target_kind=row.target_kind,
        target_external_id=row.target_external_id,
        response_id=row.response_id,
        amount=row.amount,
        currency=row.currency,
        replayed=replayed,
        message="",
    )
    return replace(result, message=spec.describe(result))
