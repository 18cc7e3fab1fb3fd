"""Actions on payments: refund (full or partial), capture an authorization, void it.

Every check runs against the ledger before the gateway is called: the
payment's state, the amount (more than zero, at most what remains
refundable or authorized), the currency (the payment's own) and, for
refunds, the actor's role limit from ``BILLBOX_REFUND_LIMITS``.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from billbox.actions._core import run
from billbox.actions._types import (
    ActionRefused,
    ActionResult,
    Actor,
    Factory,
    Plan,
    Request,
    Spec,
    money_text,
)
from billbox.gateways.base import Capability, NormalisedObject
from billbox.gateways.registry import ActingAdapter
from billbox.models import (
    ActionState,
    Brand,
    GatewayAccount,
    GatewayAction,
    Payment,
    PaymentStatus,
    Role,
)
from billbox.money import check_currency
from billbox.settings import Settings

_REFUNDABLE = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED)


def _payment(session: Session, payment_id: int) -> tuple[Payment, GatewayAccount]:
    """The payment, locked until transaction 1 ends so two checks of it run one after the other."""
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise ActionRefused(f"There is no payment #{payment_id}.")
    account = session.get(GatewayAccount, payment.account_id)
    assert account is not None
    return payment, account


def _refunds_in_flight(session: Session, payment: Payment) -> int:
    """Minor units in refund actions sent (or about to be) whose answer is not in yet.

    They count against what remains refundable, so two agents refunding
    the same payment at once cannot together refund more than was paid.
    A pending refund keeps counting until it is retried with its key.
    """
    total = session.exec(
        select(func.coalesce(func.sum(GatewayAction.amount), 0)).where(
            GatewayAction.account_id == payment.account_id,
            GatewayAction.action == "refund",
            GatewayAction.target_external_id == payment.external_id,
            GatewayAction.state == ActionState.PENDING,
        )
    ).one()
    return int(total or 0)


def _state_refusal(payment: Payment, what: str) -> ActionRefused:
    status = payment.status
    if status == PaymentStatus.REFUNDED:
        return ActionRefused(f"Payment {payment.external_id} is already fully refunded.")
    if status == PaymentStatus.AUTHORIZED:
        return ActionRefused(
            f"Payment {payment.external_id} is only authorized, not captured; "
            "capture it or void the authorization instead."
        )
    return ActionRefused(f"Payment {payment.external_id} is {status.value}; {what}.")


def check_refund_limit(settings: Settings, actor: Actor, amount: int, currency: str) -> None:
    """Refuse a refund over the actor's role limit (``BILLBOX_REFUND_LIMITS``).

    A role that is not listed is not limited; a listed role may refund only
    in the currencies listed for it, each up to its amount per refund.
    """
    limits = settings.refund_limit_table.get(actor.role.value)
    if limits is None:
        return
    limit = limits.get(currency)
    role = actor.role.value
    if limit is None:
        listed = ", ".join(sorted(limits))
        raise ActionRefused(
            f"The {role} role may not refund in {currency} (BILLBOX_REFUND_LIMITS allows "
            f"{listed}); ask an admin."
        )
    if amount > limit:
        raise ActionRefused(
            f"A refund of {money_text(amount, currency)} is over the {role} limit of "
            f"{money_text(limit, currency)} per refund (BILLBOX_REFUND_LIMITS); ask an admin."
        )


def check_brand_cap(
    session: Session, actor: Actor, account: GatewayAccount, amount: int, currency: str
) -> None:
    """Refuse an agent's refund above the brand's cap; finance and admins are not capped."""
    if actor.role is not Role.AGENT:
        return
    brand = session.get(Brand, account.brand_id)
    cap = (brand.agent_refund_caps or {}).get(currency) if brand is not None else None
    if cap is not None and amount > int(cap):
        assert brand is not None
        raise ActionRefused(
            f"A refund of {money_text(amount, currency)} is over {brand.name}'s agent cap of "
            f"{money_text(int(cap), currency)}; ask finance or an admin."
        )


def _call_refund(adapter: ActingAdapter, request: Request, key: str) -> NormalisedObject:
    return adapter.refund(
        request["payment"],
        request["amount"],
        request["currency"],
        reason=request["reason"],
        idempotency_key=key,
    )


def _refunded(result: ActionResult) -> str:
    return (
        f"Refunded {money_text(result.amount, result.currency)} of payment "
        f"{result.target_external_id} (refund {result.response_id})."
    )


REFUND = Spec("refund", Capability.REFUND, "Refund", _call_refund, _refunded)


def refund(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    payment_id: int,
    amount: int | None,
    currency: str,
    *,
    reason: str,
    idempotency_key: str,
) -> ActionResult:
    """Refund ``amount`` minor units of ``currency`` (None: all that remains) of a payment."""

    def prepare(session: Session) -> Plan:
        payment, account = _payment(session, payment_id)
        if payment.status not in _REFUNDABLE:
            raise _state_refusal(payment, "only a captured payment can be refunded")
        try:
            wanted = check_currency(currency)
        except ValueError as exc:
            raise ActionRefused(f"Refund: {exc}.") from None
        if wanted != payment.currency:
            raise ActionRefused(
                f"Payment {payment.external_id} is in {payment.currency}; it cannot be "
                f"refunded in {wanted}."
            )
        in_flight = _refunds_in_flight(session, payment)
        remaining = payment.amount - payment.amount_refunded - in_flight
        value = remaining if amount is None else amount
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ActionRefused("The refund amount must be more than zero.")
        if value > remaining:
            pending = (
                f", {money_text(in_flight, wanted)} in refunds still in progress"
                if in_flight
                else ""
            )
            raise ActionRefused(
                f"Only {money_text(max(remaining, 0), wanted)} of payment "
                f"{payment.external_id} can still be refunded "
                f"({money_text(payment.amount_refunded, wanted)} of "
                f"{money_text(payment.amount, wanted)} already refunded{pending})."
            )
        check_refund_limit(settings, actor, value, wanted)
        check_brand_cap(session, actor, account, value, wanted)
        return Plan(
            account=account,
            target_kind="payment",
            target_external_id=payment.external_id,
            amount=value,
            currency=wanted,
            request={
                "payment": payment.external_id,
                "amount": value,
                "currency": wanted,
                "reason": reason.strip(),
            },
        )

    return run(
        factory,
        settings,
        actor,
        REFUND,
        target_ref=f"payment:{payment_id}",
        args={"amount": amount, "currency": currency.strip().upper()},
        reason=reason,
        idempotency_key=idempotency_key,
        prepare=prepare,
    )


def _call_capture(adapter: ActingAdapter, request: Request, key: str) -> NormalisedObject:
    return adapter.capture(request["payment"], request["amount"], idempotency_key=key)


def _captured(result: ActionResult) -> str:
    return (
        f"Captured {money_text(result.amount, result.currency)} of payment "
        f"{result.target_external_id}."
    )


CAPTURE = Spec("capture", Capability.CAPTURE, "Capture", _call_capture, _captured)


def _authorized(session: Session, payment_id: int, past: str) -> tuple[Payment, GatewayAccount]:
    payment, account = _payment(session, payment_id)
    if payment.status != PaymentStatus.AUTHORIZED:
        if payment.status in _REFUNDABLE or payment.status == PaymentStatus.REFUNDED:
            raise ActionRefused(
                f"Payment {payment.external_id} is already captured; only an authorization "
                f"can be {past}. Refund it instead."
            )
        raise ActionRefused(
            f"Payment {payment.external_id} is {payment.status.value}; only an authorized "
            f"payment can be {past}."
        )
    return payment, account


def capture(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    payment_id: int,
    amount: int | None = None,
    *,
    reason: str,
    idempotency_key: str,
) -> ActionResult:
    """Capture an authorized payment: all of it (``amount=None``) or ``amount`` minor units."""

    def prepare(session: Session) -> Plan:
        payment, account = _authorized(session, payment_id, "captured")
        if amount is not None and (isinstance(amount, bool) or not 0 < amount <= payment.amount):
            raise ActionRefused(
                f"The capture amount must be more than zero and at most the authorized "
                f"{money_text(payment.amount, payment.currency)}."
            )
        return Plan(
            account=account,
            target_kind="payment",
            target_external_id=payment.external_id,
            amount=payment.amount if amount is None else amount,
            currency=payment.currency,
            request={"payment": payment.external_id, "amount": amount},
        )

    return run(
        factory,
        settings,
        actor,
        CAPTURE,
        target_ref=f"payment:{payment_id}",
        args={"amount": amount},
        reason=reason,
        idempotency_key=idempotency_key,
        prepare=prepare,
    )


def _call_void(adapter: ActingAdapter, request: Request, key: str) -> NormalisedObject:
    return adapter.void(request["payment"], idempotency_key=key)


def _voided(result: ActionResult) -> str:
    return (
        f"Released the authorization of {money_text(result.amount, result.currency)} "
        f"(payment {result.target_external_id})."
    )


VOID = Spec("void", Capability.VOID, "Void", _call_void, _voided)


def void(
    factory: Factory,
    settings: Settings,
    actor: Actor,
    payment_id: int,
    *,
    reason: str,
    idempotency_key: str,
) -> ActionResult:
    """Release an authorization that was never captured."""

    def prepare(session: Session) -> Plan:
        payment, account = _authorized(session, payment_id, "voided")
        return Plan(
            account=account,
            target_kind="payment",
            target_external_id=payment.external_id,
            amount=payment.amount,
            currency=payment.currency,
            request={"payment": payment.external_id},
        )

    return run(
        factory,
        settings,
        actor,
        VOID,
        target_ref=f"payment:{payment_id}",
        args={},
        reason=reason,
        idempotency_key=idempotency_key,
        prepare=prepare,
    )
