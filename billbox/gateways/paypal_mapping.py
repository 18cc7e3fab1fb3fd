"""PayPal JSON → the ledger's normalised types: pure functions over dicts, no SDK objects.

The same mappers read webhook ``resource`` objects and API answers (the
adapter parses the SDK response's raw text, not its models), so a capture
looks the same to the ledger whichever way it arrived.

How PayPal objects map onto the ledger:

============================ ================================================
PayPal object                ledger
============================ ================================================
capture (payments v2)        the Payment row; ``external_id`` = capture id
authorization (payments v2)  a Payment row with status ``authorized`` whose
                             ``external_id`` is the authorization id. It is a
                             hold, not money: once PayPal reports it CAPTURED
                             or VOIDED the row becomes ``canceled`` and the
                             money lives on the capture's own row, so revenue
                             is never counted twice
refund (payments v2)         a Refund row linked to the capture named by its
                             ``links[rel=up]`` (``/v2/payments/captures/{id}``)
sale (payments v1)           a Payment row (subscription charges still arrive
                             as ``PAYMENT.SALE.*``)
order (checkout v2)          the payer as a customer, plus each capture,
                             authorization and refund inside it, linked to
                             the payer
subscription (billing v1)    a Subscription row; the subscriber as customer
payer / subscriber           a customer whose gateway id is ``payer_id``,
                             linked to a Billbox customer by email
============================ ================================================

``updated_at`` is the object's own ``update_time`` (falling back to the
event's ``create_time``), so an older event never overwrites a newer one.
Amounts are PayPal's decimal strings converted exactly to minor units; a
value with more digits than the currency has is refused, never rounded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from billbox.gateways.base import NormalisedObject
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.models import PaymentStatus, RefundStatus, SubscriptionStatus
from billbox.money import check_currency, exponent

Json = dict[str, Any]

CAPTURE_STATUS = {
    "COMPLETED": PaymentStatus.SUCCEEDED,
    "PENDING": PaymentStatus.PENDING,
    "DECLINED": PaymentStatus.FAILED,
    "FAILED": PaymentStatus.FAILED,
    "REFUNDED": PaymentStatus.REFUNDED,
    "PARTIALLY_REFUNDED": PaymentStatus.PARTIALLY_REFUNDED,
}

AUTHORIZATION_STATUS = {
    "CREATED": PaymentStatus.AUTHORIZED,
    "PARTIALLY_CAPTURED": PaymentStatus.AUTHORIZED,  # the rest may still be captured
    "PENDING": PaymentStatus.PENDING,
    "DENIED": PaymentStatus.FAILED,
    "CAPTURED": PaymentStatus.CANCELED,  # the hold is gone; the capture row holds the money
    "VOIDED": PaymentStatus.CANCELED,
    "EXPIRED": PaymentStatus.CANCELED,
}

REFUND_STATUS = {
    "COMPLETED": RefundStatus.SUCCEEDED,
    "PENDING": RefundStatus.PENDING,
    "FAILED": RefundStatus.FAILED,
    "CANCELLED": RefundStatus.CANCELED,
}

SALE_STATUS = {
    "completed": PaymentStatus.SUCCEEDED,
    "pending": PaymentStatus.PENDING,
    "denied": PaymentStatus.FAILED,
    "refunded": PaymentStatus.REFUNDED,
    "partially_refunded": PaymentStatus.PARTIALLY_REFUNDED,
    "reversed": PaymentStatus.REFUNDED,
}

SUBSCRIPTION_STATUS = {
    "APPROVAL_PENDING": SubscriptionStatus.INCOMPLETE,
    "APPROVED": SubscriptionStatus.INCOMPLETE,  # approved by the payer, not billed yet
    "ACTIVE": SubscriptionStatus.ACTIVE,
    "SUSPENDED": SubscriptionStatus.PAUSED,
    "CANCELLED": SubscriptionStatus.CANCELED,
    "EXPIRED": SubscriptionStatus.CANCELED,
}


# Money and time ----------------------------------------------------------------


def to_minor(money: Any) -> tuple[int, str]:
    """``{"currency_code": "EUR", "value": "10.99"}`` → ``(1099, "EUR")``, exactly."""
    if not isinstance(money, dict):
        raise ValueError("amount is not a money object")
    currency = check_currency(req_str(money, "currency_code"))
    return decimal_to_minor(req_str(money, "value"), currency), currency


def decimal_to_minor(value: str, currency: str) -> int:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"amount {value!r} is not a decimal") from None
    scaled = amount.scaleb(exponent(currency))
    if not scaled.is_finite() or scaled != scaled.to_integral_value():
        raise ValueError(f"amount {value!r} has more digits than {currency} allows")
    return int(scaled)


def from_minor(amount: int, currency: str) -> Json:
    """The money object PayPal expects for ``amount`` minor units of ``currency``."""
    digits = exponent(currency)
    value = Decimal(amount).scaleb(-digits)
    return {"currency_code": currency.upper(), "value": f"{value:.{digits}f}"}


def parse_time(value: Any) -> datetime | None:
    """PayPal's RFC 3339 times (``2024-05-01T10:00:00Z``, offsets, fractions) as UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Objects -------------------------------------------------------------------------


def capture_to_payment(
    obj: Json, fallback: datetime, payer: GatewayCustomer | None = None
) -> GatewayPayment:
    status_text = req_str(obj, "status")
    status = CAPTURE_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown capture status {status_text!r}")
    amount, currency = to_minor(obj.get("amount"))
    created = parse_time(obj.get("create_time")) or fallback
    return GatewayPayment(
        external_id=req_str(obj, "id"),
        customer_external_id=payer.external_id if payer else None,
        status=status,
        amount=amount,
        currency=currency,
        created_at=created,
        updated_at=parse_time(obj.get("update_time")) or fallback,
        amount_refunded=amount if status == PaymentStatus.REFUNDED else 0,
        description=opt_str(obj.get("invoice_id")) or opt_str(obj.get("custom_id")) or "",
        payment_method="paypal",
        payer_email=payer.email if payer else None,
        invoice_external_id=None,
    )


def authorization_to_payment(
    obj: Json, fallback: datetime, payer: GatewayCustomer | None = None
) -> GatewayPayment:
    status_text = req_str(obj, "status")
    status = AUTHORIZATION_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown authorization status {status_text!r}")
    amount, currency = to_minor(obj.get("amount"))
    return GatewayPayment(
        external_id=req_str(obj, "id"),
        customer_external_id=payer.external_id if payer else None,
        status=status,
        amount=amount,
        currency=currency,
        created_at=parse_time(obj.get("create_time")) or fallback,
        updated_at=parse_time(obj.get("update_time")) or fallback,
        description=f"authorization ({status_text.lower()})",
        payment_method="paypal",
        payer_email=payer.email if payer else None,
    )


def refund_to_refund(obj: Json, fallback: datetime, capture_id: str | None = None) -> GatewayRefund:
    status_text = req_str(obj, "status")
    status = REFUND_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown refund status {status_text!r}")
    payment = capture_id or linked_id(obj, "up", "/captures/")
    if payment is None:
        raise ValueError("refund has no links[rel=up] naming its capture")
    amount, currency = to_minor(obj.get("amount"))
    details = obj.get("status_details")
    reason = opt_str(obj.get("note_to_payer")) or (
        opt_str(details.get("reason")) if isinstance(details, dict) else None
    )
    return GatewayRefund(
        external_id=req_str(obj, "id"),
        payment_external_id=payment,
        status=status,
        amount=amount,
        currency=currency,
        created_at=parse_time(obj.get("create_time")) or fallback,
        updated_at=parse_time(obj.get("update_time")) or fallback,
        reason=reason or "",
    )


def sale_to_payment(obj: Json, fallback: datetime) -> GatewayPayment:
    """A v1 sale: ``amount`` is ``{"total": "10.00", "currency": "USD"}``, state lower-case."""
    state = req_str(obj, "state")
    status = SALE_STATUS.get(state)
    if status is None:
        raise ValueError(f"unknown sale state {state!r}")
    money = obj.get("amount")
    if not isinstance(money, dict):
        raise ValueError("sale has no amount")
    currency = check_currency(req_str(money, "currency"))
    amount = decimal_to_minor(req_str(money, "total"), currency)
    agreement = opt_str(obj.get("billing_agreement_id"))
    return GatewayPayment(
        external_id=req_str(obj, "id"),
        customer_external_id=None,
        status=status,
        amount=amount,
        currency=currency,
        created_at=parse_time(obj.get("create_time")) or fallback,
        updated_at=parse_time(obj.get("update_time")) or fallback,
        amount_refunded=amount if status == PaymentStatus.REFUNDED else 0,
        description=f"subscription {agreement}" if agreement else "",
        payment_method="paypal",
    )


def payer_to_customer(payer: Any) -> GatewayCustomer | None:
    """An order's ``payer`` or a subscription's ``subscriber``; None without a ``payer_id``."""
    if not isinstance(payer, dict):
        return None
    payer_id = opt_str(payer.get("payer_id"))
    if payer_id is None:
        return None
    name = payer.get("name") if isinstance(payer.get("name"), dict) else {}
    assert isinstance(name, dict)
    full = " ".join(p for p in (opt_str(name.get("given_name")), opt_str(name.get("surname"))) if p)
    address = payer.get("address")
    if not isinstance(address, dict):
        shipping = payer.get("shipping_address")
        address = shipping.get("address") if isinstance(shipping, dict) else None
    country = opt_str(address.get("country_code")) if isinstance(address, dict) else None
    return GatewayCustomer(
        external_id=payer_id,
        email=opt_str(payer.get("email_address")),
        name=(full or opt_str(name.get("full_name")) or "")[:200],
        country=country.upper() if country else None,
    )


def order_to_objects(obj: Json, fallback: datetime) -> list[NormalisedObject]:
    """The payer, and every capture, authorization and refund the order carries."""
    payer = payer_to_customer(obj.get("payer"))
    out: list[NormalisedObject] = [payer] if payer else []
    units = obj.get("purchase_units")
    for unit in units if isinstance(units, list) else []:
        payments = unit.get("payments") if isinstance(unit, dict) else None
        if not isinstance(payments, dict):
            continue
        for capture in _dicts(payments.get("captures")):
            out.append(capture_to_payment(capture, fallback, payer))
        for authorization in _dicts(payments.get("authorizations")):
            out.append(authorization_to_payment(authorization, fallback, payer))
        for refund in _dicts(payments.get("refunds")):
            out.append(refund_to_refund(refund, fallback))
    return out


def subscription_to_subscription(
    obj: Json, fallback: datetime, plan: Json | None = None
) -> GatewaySubscription:
    """A billing subscription; ``plan`` (fetched, or inlined when overridden) gives the price.

    Without a plan the amount is the last payment's (0 before the first),
    and the currency falls back to ``billing_info.outstanding_balance``,
    which PayPal always sends.
    """
    status_text = req_str(obj, "status")
    status = SUBSCRIPTION_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown subscription status {status_text!r}")
    plan = plan or (obj.get("plan") if isinstance(obj.get("plan"), dict) else None)
    amount, currency, interval = _plan_price(plan)
    billing = obj.get("billing_info") if isinstance(obj.get("billing_info"), dict) else {}
    assert isinstance(billing, dict)
    if currency is None:
        last = billing.get("last_payment")
        if isinstance(last, dict) and isinstance(last.get("amount"), dict):
            amount, currency = to_minor(last["amount"])
        else:
            balance = billing.get("outstanding_balance")
            if not isinstance(balance, dict):
                raise ValueError("subscription names no plan price, payment or balance currency")
            currency = check_currency(req_str(balance, "currency_code"))
            amount = 0
    quantity = opt_str(obj.get("quantity"))
    if quantity and quantity.isdigit() and plan:
        amount *= int(quantity)
    subscriber = payer_to_customer(obj.get("subscriber"))
    plan_id = opt_str(obj.get("plan_id")) or (opt_str(plan.get("id")) if plan else None)
    plan_name = (opt_str(plan.get("name")) if plan else None) or plan_id or ""
    status_time = parse_time(obj.get("status_update_time"))
    return GatewaySubscription(
        external_id=req_str(obj, "id"),
        customer_external_id=subscriber.external_id if subscriber else None,
        status=status,
        plan_name=plan_name[:200],
        amount=amount,
        currency=currency,
        interval=interval,
        price_external_id=plan_id,
        current_period_end=parse_time(billing.get("next_billing_time")),
        canceled_at=status_time if status == SubscriptionStatus.CANCELED else None,
        created_at=parse_time(obj.get("create_time")),
        updated_at=parse_time(obj.get("update_time")) or status_time or fallback,
    )


def _plan_price(plan: Json | None) -> tuple[int, str | None, str]:
    """(amount, currency, interval) of the plan's REGULAR cycle, else its last cycle."""
    cycles = _dicts(plan.get("billing_cycles")) if plan else []
    regular = [c for c in cycles if c.get("tenure_type") == "REGULAR"] or cycles[-1:]
    if not regular:
        return 0, None, "month"
    cycle = regular[0]
    scheme = cycle.get("pricing_scheme")
    price = scheme.get("fixed_price") if isinstance(scheme, dict) else None
    frequency = cycle.get("frequency") if isinstance(cycle.get("frequency"), dict) else {}
    assert isinstance(frequency, dict)
    interval = (opt_str(frequency.get("interval_unit")) or "MONTH").lower()[:16]
    if not isinstance(price, dict):
        return 0, None, interval
    amount, currency = to_minor(price)
    return amount, currency, interval


# Small readers for untrusted dicts ------------------------------------------------


def linked_id(obj: Json, rel: str, marker: str) -> str | None:
    """The last path segment of the ``links[rel=…]`` href containing ``marker``."""
    for link in _dicts(obj.get("links")):
        href = opt_str(link.get("href"))
        if link.get("rel") == rel and href and marker in href:
            tail = href.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            return tail or None
    return None


def _dicts(value: Any) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def req_str(obj: Json, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing {key}")
    return value
