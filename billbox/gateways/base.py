"""The one interface every gateway adapter implements, and the errors it raises.

Modelled on httpx's ``_transports/base.py``: a small protocol, vendor code
behind it, vendor errors mapped at the boundary. An adapter verifies a
webhook delivery (cheaply, on the request path), turns an event body into
the ledger's normalised types (in the worker) and re-fetches single objects
as the source of truth. Actions (refund, capture, cancel, …) and sync
listing are separate protocols (:class:`GatewayActions`,
:class:`GatewayLister`) so a new gateway can start with webhooks only;
``capabilities`` says which methods work, and the admin hides the rest.

Errors (all :class:`~billbox.errors.BillboxError`)::

    GatewayError                 a gateway call or payload failed
    ├── GatewayUnavailable       network trouble, rate limit: retry later
    ├── GatewayParseError        an event body we cannot understand (permanent)
    └── WebhookVerificationError bad or missing signature, stale timestamp
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from billbox.errors import BillboxError
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)

#: Seconds a signed webhook timestamp may lag behind our clock.
WEBHOOK_TOLERANCE = 300

NormalisedObject = (
    GatewayCustomer | GatewayPayment | GatewayRefund | GatewaySubscription | GatewayInvoiceData
)


class Capability(StrEnum):
    """What an adapter can do; the admin shows only the matching buttons."""

    WEBHOOKS = "webhooks"
    FETCH = "fetch"
    LIST = "list"
    REFUND = "refund"
    CAPTURE = "capture"
    VOID = "void"
    CANCEL_SUBSCRIPTION = "cancel_subscription"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end"
    CREATE_SUBSCRIPTION = "create_subscription"
    APPLY_COUPON = "apply_coupon"
    ADD_TAX_ID = "add_tax_id"
    FINALIZE_INVOICE = "finalize_invoice"


class ObjectKind(StrEnum):
    """What a sync pass lists, in the order a backfill should apply them."""

    CUSTOMER = "customer"
    INVOICE = "invoice"
    SUBSCRIPTION = "subscription"
    PAYMENT = "payment"
    REFUND = "refund"


class GatewayError(BillboxError):
    """A gateway call failed or returned something we cannot use."""


class GatewayUnavailable(GatewayError):
    """The gateway could not be reached or asked us to slow down; retrying may help.

    ``retry_after`` is the wait in seconds the gateway asked for (429
    ``Retry-After``), when it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GatewayParseError(GatewayError):
    """An event body is not in a shape the adapter understands; retrying cannot help."""


class WebhookVerificationError(GatewayError):
    """A delivery is not provably from the gateway: bad/missing signature or stale timestamp."""


class GatewayDeclined(GatewayError):
    """The gateway refused an action (card declined, already refunded, 4xx); message is for agents.

    ``code`` is the gateway's own error code (``charge_already_refunded``,
    ``UNPROCESSABLE_ENTITY``) and ``request_id`` its request id, kept in the audit log.
    """

    def __init__(self, message: str, *, code: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


class UnsupportedAction(GatewayError):
    """The adapter cannot do this action (its capabilities do not list it)."""


@dataclass(frozen=True)
class Page:
    """One page of a sync listing; ``next_cursor`` is None on the last page."""

    objects: list[NormalisedObject]
    next_cursor: str | None


@dataclass(frozen=True)
class VerifiedEvent:
    """What the request path learns from a delivery whose signature checked out."""

    event_id: str
    event_type: str
    created: datetime


@dataclass(frozen=True)
class Ignored:
    """``parse_event``'s answer for an event type Billbox does not mirror."""

    reason: str


ParseResult = list[NormalisedObject] | Ignored


class GatewayAdapter(Protocol):
    """One gateway account's adapter; one module per vendor under ``billbox/gateways``."""

    @property
    def name(self) -> str:
        """The gateway's name as stored in ``webhook_event.gateway`` (``"stripe"``)."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """:class:`Capability` values this adapter supports."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        """Check the delivery's signature and freshness; raise :class:`WebhookVerificationError`.

        Cheap enough for the request path: no SDK object building, no network.
        """
        ...

    def parse_event(self, body: bytes) -> ParseResult:
        """Normalise a (previously verified) event body, or say it is :class:`Ignored`.

        Raises :class:`GatewayParseError` for a body of a known type that
        cannot be understood. Pure: no network, no database.
        """
        ...

    def fetch_customer(self, external_id: str) -> GatewayCustomer:
        """The customer as the gateway holds it now."""
        ...

    def fetch_payment(self, external_id: str) -> GatewayPayment:
        """The payment as the gateway holds it now."""
        ...

    def check_connection(self) -> str:
        """One cheap authenticated call, for the admin's "test connection" button.

        Returns a sentence for the admin; raises :class:`GatewayError` with
        the gateway's own refusal (wrong key, unreachable API base).
        """
        ...


class GatewayLister(Protocol):
    """Listing for ``billbox sync``: one page at a time, resumable from an opaque cursor.

    Rate limits surface as :class:`GatewayUnavailable` with ``retry_after``
    set (seconds) so the sync loop can wait and try the same page again.
    """

    def list_page(
        self, kind: ObjectKind, cursor: str | None, *, since: datetime | None, limit: int = 100
    ) -> Page:
        """The page after ``cursor`` (first page if None) of objects created since ``since``."""
        ...


class GatewayActions(Protocol):
    """The one-click actions. Every call carries an idempotency key the gateway also receives.

    Each returns the changed object normalised, as the gateway answered it,
    so the caller can update the ledger from the gateway's own answer.
    Refusals raise :class:`GatewayDeclined`; an action outside
    ``capabilities`` raises :class:`UnsupportedAction`.
    """

    def refund(
        self,
        payment_external_id: str,
        amount: int,
        currency: str,
        *,
        reason: str,
        idempotency_key: str,
    ) -> GatewayRefund:
        """Refund ``amount`` minor units of ``currency`` of a captured payment."""
        ...

    def capture(
        self, payment_external_id: str, amount: int | None, *, idempotency_key: str
    ) -> GatewayPayment:
        """Capture an authorized payment, all of it (``amount=None``) or part."""
        ...

    def void(self, payment_external_id: str, *, idempotency_key: str) -> GatewayPayment:
        """Release an authorization that was never captured."""
        ...

    def cancel_subscription(
        self, subscription_external_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> GatewaySubscription:
        """Cancel now, or at the end of the paid period (``CANCEL_AT_PERIOD_END``)."""
        ...

    def create_subscription(
        self,
        customer_external_id: str,
        price_external_id: str,
        *,
        coupon: str | None,
        idempotency_key: str,
    ) -> GatewaySubscription:
        """Subscribe a gateway customer to a price/plan, optionally with a coupon."""
        ...

    def apply_coupon(
        self,
        customer_external_id: str,
        coupon: str,
        *,
        subscription_external_id: str | None,
        idempotency_key: str,
    ) -> GatewayCustomer | GatewaySubscription:
        """Apply a coupon to a subscription when given, else to the customer."""
        ...

    def add_tax_id(
        self, customer_external_id: str, scheme: str, value: str, *, idempotency_key: str
    ) -> GatewayCustomer:
        """Attach a (already validated) tax id; ``scheme`` is the gateway's type (``eu_vat``)."""
        ...

    def finalize_invoice(
        self, invoice_external_id: str, *, send: bool, idempotency_key: str
    ) -> GatewayInvoiceData:
        """Finalize a draft gateway invoice, and email it from the gateway when ``send``."""
        ...
