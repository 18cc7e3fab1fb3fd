"""Stripe objects (event bodies and API answers) mapped to the ledger's normalised types.

Plain functions over dicts, old (2016-2020) and current API shapes alike;
no SDK objects are built, so the worker parses an event in microseconds.
Split from :mod:`billbox.gateways.stripe` (the adapter: SDK calls, webhook
verification), which re-exports :func:`parse_event`.

Every normalised object carries the *event's* ``created`` as ``updated_at``
so an older event can never overwrite a newer one in the ledger; objects
re-fetched through the API carry the fetch time instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billbox.gateways.base import (
    GatewayParseError,
    Ignored,
    NormalisedObject,
    ParseResult,
)
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.models import GatewayInvoiceStatus, PaymentStatus, RefundStatus, SubscriptionStatus
from billbox.money import Money

Json = dict[str, Any]


# Parsing ------------------------------------------------------------------

Mapper = Callable[[Json, datetime], list[NormalisedObject]]


def parse_event(body: bytes) -> ParseResult:
    """Normalise one Stripe event body (a JSON envelope with ``data.object``)."""
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise GatewayParseError(f"event body is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise GatewayParseError("event body is not a JSON object")
    event_type = event.get("type")
    data = event.get("data")
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise GatewayParseError("event has no type or data")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise GatewayParseError(f"{event_type}: data.object is not an object")
    created = _ts(event.get("created"))
    if created is None:
        raise GatewayParseError(f"{event_type}: event has no created timestamp")
    route = _route(event_type)
    if route is None:
        return Ignored(f"event type {event_type} is not mirrored")
    object_types, mapper = route
    object_type = obj.get("object")
    if object_type is not None and object_type not in object_types:
        return Ignored(f"{event_type} carries a {object_type}, not a {'/'.join(object_types)}")
    try:
        return mapper(obj, created)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GatewayParseError(f"{event_type}: {exc.__class__.__name__}: {exc}") from exc


def _route(event_type: str) -> tuple[tuple[str, ...], Mapper] | None:
    if event_type == "invoice.upcoming":
        return None  # a preview without an id; nothing exists yet
    if event_type.startswith("charge.dispute."):
        return None
    for prefix, object_types, mapper in _ROUTES:
        if event_type.startswith(prefix):
            return object_types, mapper
    return None


def _one(fn: Callable[[Json, datetime], NormalisedObject]) -> Mapper:
    return lambda obj, created: [fn(obj, created)]


def payment_from_intent(obj: Json, updated_at: datetime) -> GatewayPayment:
    status_text = _req_str(obj, "status")
    status = _INTENT_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown payment_intent status {status_text!r}")
    if (
        status == PaymentStatus.PENDING
        and obj.get("last_payment_error")
        and status_text
        in (
            "requires_payment_method",
            "requires_source",
        )
    ):
        # Stripe returns a failed attempt to requires_payment_method with the error attached.
        status = PaymentStatus.FAILED
    charge = _latest_charge(obj)
    brand, last4 = _card(charge, obj.get("payment_method"))
    refunded = sum(_int(c.get("amount_refunded")) for c in _charges(obj))
    return GatewayPayment(
        external_id=_req_str(obj, "id"),
        customer_external_id=_ref(obj.get("customer")),
        status=status,
        amount=_int(obj.get("amount")),
        currency=_req_str(obj, "currency"),
        created_at=_ts(obj.get("created")) or updated_at,
        updated_at=updated_at,
        amount_refunded=refunded,
        description=_str(obj.get("description")),
        payment_method=(brand or _payment_type(charge, obj))[:64],
        card_last4=last4,
        payer_email=_opt_str(obj.get("receipt_email")) or _billing_email(charge),
        invoice_external_id=_ref(obj.get("invoice")),
    )


def payment_from_charge(obj: Json, updated_at: datetime) -> GatewayPayment:
    status_text = obj.get("status")
    captured = obj.get("captured", True) is not False
    if status_text == "succeeded" or (status_text is None and obj.get("paid")):
        status = PaymentStatus.SUCCEEDED if captured else PaymentStatus.AUTHORIZED
    elif status_text == "pending":
        status = PaymentStatus.PENDING
    elif status_text == "failed" or (status_text is None and obj.get("paid") is False):
        status = PaymentStatus.FAILED
    else:
        raise ValueError(f"unknown charge status {status_text!r}")
    brand, last4 = _card(obj, obj.get("payment_method"))
    return GatewayPayment(
        external_id=_req_str(obj, "id"),
        customer_external_id=_ref(obj.get("customer")),
        status=status,
        amount=_int(obj.get("amount")),
        currency=_req_str(obj, "currency"),
        created_at=_ts(obj.get("created")) or updated_at,
        updated_at=updated_at,
        amount_refunded=_int(obj.get("amount_refunded")),
        description=_str(obj.get("description")),
        payment_method=(brand or _payment_type(obj, {}))[:64],
        card_last4=last4,
        payer_email=_opt_str(obj.get("receipt_email")) or _billing_email(obj),
        invoice_external_id=_ref(obj.get("invoice")),
    )


def _from_charge(obj: Json, updated_at: datetime) -> list[NormalisedObject]:
    """A charge is the payment only when no PaymentIntent owns it; its refunds always count."""
    out: list[NormalisedObject] = []
    intent = _ref(obj.get("payment_intent"))
    if intent is None:
        out.append(payment_from_charge(obj, updated_at))
    payment_id = intent or _req_str(obj, "id")
    refunds = obj.get("refunds")
    items = refunds.get("data") if isinstance(refunds, dict) else refunds
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            out.append(refund_from_object(item, updated_at, payment_id))
    return out


def refund_from_object(
    obj: Json, updated_at: datetime, payment_external_id: str | None = None
) -> GatewayRefund:
    status_text = _opt_str(obj.get("status")) or "succeeded"  # pre-2017 refunds had no status
    status = _REFUND_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown refund status {status_text!r}")
    payment = payment_external_id or _ref(obj.get("payment_intent")) or _ref(obj.get("charge"))
    if payment is None:
        raise ValueError("refund names neither a payment_intent nor a charge")
    return GatewayRefund(
        external_id=_req_str(obj, "id"),
        payment_external_id=payment,
        status=status,
        amount=_int(obj.get("amount")),
        currency=_req_str(obj, "currency"),
        created_at=_ts(obj.get("created")),
        updated_at=updated_at,
        reason=_str(obj.get("reason")),
    )


def _refund(obj: Json, updated_at: datetime) -> NormalisedObject:
    return refund_from_object(obj, updated_at)


def customer_from_object(obj: Json, _updated_at: datetime | None = None) -> GatewayCustomer:
    address = obj.get("address") if isinstance(obj.get("address"), dict) else {}
    assert isinstance(address, dict)
    locales = obj.get("preferred_locales")
    locale = locales[0] if isinstance(locales, list) and locales else None
    lines = [
        address.get("line1"),
        address.get("line2"),
        " ".join(str(p) for p in (address.get("postal_code"), address.get("city")) if p),
        address.get("state"),
    ]
    return GatewayCustomer(
        external_id=_req_str(obj, "id"),
        email=_opt_str(obj.get("email")),
        name=_str(obj.get("name")),
        country=_opt_str(address.get("country")),
        address="\n".join(str(line) for line in lines if line),
        locale=_opt_str(locale),
        created_at=_ts(obj.get("created")),
    )


def subscription_from_object(obj: Json, updated_at: datetime) -> GatewaySubscription:
    status_text = _req_str(obj, "status")
    status = _SUBSCRIPTION_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown subscription status {status_text!r}")
    items_field = obj.get("items")
    items = items_field.get("data") if isinstance(items_field, dict) else None
    lines: list[tuple[Json, int, Json]] = []  # (price, quantity, item)
    for item in items if isinstance(items, list) else []:
        price = item.get("price") or item.get("plan")
        if isinstance(price, dict):
            lines.append((price, _int(item.get("quantity"), 1), item))
    if not lines:
        price = obj.get("plan") or obj.get("price")
        if isinstance(price, dict):
            lines.append((price, _int(obj.get("quantity"), 1), obj))
    first = lines[0][0] if lines else {}
    currency = _opt_str(first.get("currency")) or _req_str(obj, "currency")
    amount = sum(
        _int(price.get("unit_amount", price.get("amount"))) * quantity
        for price, quantity, _ in lines
    )
    recurring = first.get("recurring") if isinstance(first.get("recurring"), dict) else None
    interval = _opt_str((recurring or first).get("interval")) or "month"
    period_ends = [_ts(item.get("current_period_end")) for _, _, item in lines]
    period_end = _ts(obj.get("current_period_end")) or max(
        (p for p in period_ends if p is not None), default=None
    )
    return GatewaySubscription(
        external_id=_req_str(obj, "id"),
        customer_external_id=_ref(obj.get("customer")),
        status=status,
        plan_name=_with_discounts(_plan_name(first), obj),
        amount=amount,
        currency=currency,
        interval=interval[:16],
        price_external_id=_opt_str(first.get("id")),
        current_period_end=period_end,
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        canceled_at=_ts(obj.get("canceled_at")),
        created_at=_ts(obj.get("created")),
        updated_at=updated_at,
    )


def invoice_from_object(
    obj: Json, updated_at: datetime, *, deleted: bool = False
) -> GatewayInvoiceData:
    status_text = _opt_str(obj.get("status"))
    if deleted or obj.get("deleted"):
        status = GatewayInvoiceStatus.VOID
    elif status_text is not None:
        found = _INVOICE_STATUS.get(status_text)
        if found is None:
            raise ValueError(f"unknown invoice status {status_text!r}")
        status = found
    elif obj.get("paid"):  # pre-2018 invoices had booleans, no status
        status = GatewayInvoiceStatus.PAID
    elif obj.get("forgiven"):
        status = GatewayInvoiceStatus.UNCOLLECTIBLE
    else:
        status = GatewayInvoiceStatus.OPEN
    transitions = obj.get("status_transitions")
    paid_at = _ts(transitions.get("paid_at")) if isinstance(transitions, dict) else None
    subscription = _ref(obj.get("subscription"))
    parent = obj.get("parent")
    if subscription is None and isinstance(parent, dict):
        details = parent.get("subscription_details")
        if isinstance(details, dict):
            subscription = _ref(details.get("subscription"))
    return GatewayInvoiceData(
        external_id=_req_str(obj, "id"),
        customer_external_id=_ref(obj.get("customer")),
        status=status,
        amount_due=_int(obj.get("amount_due", obj.get("total"))),
        amount_paid=_int(obj.get("amount_paid")),
        currency=_req_str(obj, "currency"),
        number=(_opt_str(obj.get("number")) or None),
        subscription_external_id=subscription,
        due_at=_ts(obj.get("due_date")),
        paid_at=paid_at,
        hosted_url=(_opt_str(obj.get("hosted_invoice_url")) or "")[:500] or None,
        created_at=_ts(obj.get("created") or obj.get("date")),
        updated_at=updated_at,
        payment_external_ids=_invoice_payments(obj),
    )


def _invoice_payments(obj: Json) -> tuple[str, ...]:
    """PaymentIntent and charge ids that paid the invoice, in every API shape.

    Up to 2025 an invoice named its ``payment_intent`` and ``charge``; since
    the 2025-03-31 API it lists ``payments`` (``data[].payment.payment_intent``
    or ``.charge``).
    """
    found: list[str] = []
    sources: list[Any] = [obj]
    payments = obj.get("payments")
    if isinstance(payments, dict) and isinstance(payments.get("data"), list):
        sources += [p.get("payment") for p in payments["data"] if isinstance(p, dict)]
    for source in sources:
        if isinstance(source, dict):
            for key in ("payment_intent", "charge"):
                ref = _ref(source.get(key))
                if ref:
                    found.append(ref)
    return tuple(dict.fromkeys(found))


def _invoice(obj: Json, updated_at: datetime) -> NormalisedObject:
    return invoice_from_object(obj, updated_at)


def _deleted_invoice(obj: Json, updated_at: datetime) -> list[NormalisedObject]:
    return [invoice_from_object(obj, updated_at, deleted=True)]


_ROUTES: tuple[tuple[str, tuple[str, ...], Mapper], ...] = (
    ("payment_intent.", ("payment_intent",), _one(payment_from_intent)),
    ("charge.refund.", ("refund",), _one(_refund)),
    ("refund.", ("refund",), _one(_refund)),
    ("charge.", ("charge",), _from_charge),
    ("customer.subscription.", ("subscription",), _one(subscription_from_object)),
    ("customer.", ("customer",), _one(customer_from_object)),
    ("invoice.deleted", ("invoice",), _deleted_invoice),
    ("invoice.", ("invoice",), _one(_invoice)),
)

_INTENT_STATUS = {
    "requires_payment_method": PaymentStatus.PENDING,
    "requires_source": PaymentStatus.PENDING,  # API < 2019-02-11
    "requires_confirmation": PaymentStatus.PENDING,
    "processing": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "requires_source_action": PaymentStatus.REQUIRES_ACTION,  # API < 2019-02-11
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}

_REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}

_SUBSCRIPTION_STATUS = {
    "incomplete": SubscriptionStatus.INCOMPLETE,
    "incomplete_expired": SubscriptionStatus.CANCELED,
    "trialing": SubscriptionStatus.TRIALING,
    "active": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "paused": SubscriptionStatus.PAUSED,
    "unpaid": SubscriptionStatus.UNPAID,
    "canceled": SubscriptionStatus.CANCELED,
}

_INVOICE_STATUS = {
    "draft": GatewayInvoiceStatus.DRAFT,
    "open": GatewayInvoiceStatus.OPEN,
    "paid": GatewayInvoiceStatus.PAID,
    "void": GatewayInvoiceStatus.VOID,
    "uncollectible": GatewayInvoiceStatus.UNCOLLECTIBLE,
    "deleted": GatewayInvoiceStatus.VOID,
}


# Small readers for untrusted dicts ------------------------------------------


def _ts(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(int(value), UTC)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _req_str(obj: Json, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing {key}")
    return value


def _ref(value: Any) -> str | None:
    """An id whether the field holds the id or the expanded object."""
    if isinstance(value, dict):
        return _opt_str(value.get("id"))
    return _opt_str(value)


def _charges(intent: Json) -> list[Json]:
    charges = intent.get("charges")
    data = charges.get("data") if isinstance(charges, dict) else None
    found = [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []
    latest = intent.get("latest_charge")
    if isinstance(latest, dict) and all(c.get("id") != latest.get("id") for c in found):
        found.append(latest)
    return found


def _latest_charge(intent: Json) -> Json:
    charges = _charges(intent)
    return max(charges, key=lambda c: _int(c.get("created"))) if charges else {}


def _card(charge: Json, payment_method: Any) -> tuple[str | None, str | None]:
    details = charge.get("payment_method_details")
    card = details.get("card") if isinstance(details, dict) else None
    if not isinstance(card, dict):
        source = charge.get("source")  # pre-PaymentMethod charges
        card = source if isinstance(source, dict) and source.get("object") == "card" else None
    if not isinstance(card, dict) and isinstance(payment_method, dict):
        card = payment_method.get("card")
    if not isinstance(card, dict):
        return None, None
    last4 = _opt_str(card.get("last4"))
    brand = _opt_str(card.get("brand"))
    return (brand.lower() if brand else None), (last4 if last4 and len(last4) == 4 else None)


def _payment_type(charge: Json, intent: Json) -> str:
    details = charge.get("payment_method_details")
    if isinstance(details, dict) and _opt_str(details.get("type")):
        return str(details["type"])
    types = intent.get("payment_method_types")
    return str(types[0]) if isinstance(types, list) and types and isinstance(types[0], str) else ""


def _billing_email(charge: Json) -> str | None:
    billing = charge.get("billing_details")
    email = billing.get("email") if isinstance(billing, dict) else None
    return _opt_str(email) or _opt_str(charge.get("receipt_email"))


#: Room the subscription's plan name has in the ledger (``subscription.plan_name``).
_PLAN_NAME_MAX = 200


def _with_discounts(plan: str, subscription: Json) -> str:
    """The plan name, followed by the subscription's discounts when it has any.

    The ledger has no discount column, and the plan name is what the agent
    (billing context), the admin and the portal show for a subscription, so
    a coupon travels there: ``Pro monthly (coupon TENOFF)``. The listed
    ``amount`` stays the price before discounts.
    """
    note = _discount_note(subscription)
    if not note:
        return plan[:_PLAN_NAME_MAX]
    return f"{plan[: _PLAN_NAME_MAX - len(note) - 3]} ({note})"


def _discount_note(subscription: Json) -> str:
    """``coupon TENOFF until 2027-02-25``, ``coupons A, B``, or ``discounted``.

    Reads every API shape: ``discounts`` holding expanded Discount objects
    (the coupon under ``source.coupon`` since 2025-09-30.clover, as an
    embedded ``coupon`` before), holding bare ``di_…`` ids (events and
    unexpanded answers: a discount whose coupon cannot be named), and the
    single ``discount`` object of API versions before 2025-03-31.basil.
    """
    entries = subscription.get("discounts")
    items: list[Any] = list(entries) if isinstance(entries, list) else []
    legacy = subscription.get("discount")
    if not items and isinstance(legacy, dict):
        items = [legacy]
    named: list[str] = []
    unnamed = 0
    for item in items:
        source = item.get("source") if isinstance(item, dict) else None
        if isinstance(source, dict):
            coupon = source.get("coupon")
        else:
            coupon = item.get("coupon") if isinstance(item, dict) else None
        coupon_id = _ref(coupon)
        if coupon_id is None or not isinstance(item, dict):
            unnamed += 1
            continue
        terms = _coupon_terms(coupon) if isinstance(coupon, dict) else ""
        end = _ts(item.get("end"))
        until = f" until {end.date().isoformat()}" if end else ""
        named.append(f"{coupon_id}{terms}{until}")
    if not named:
        return "discounted" if unnamed else ""
    more = f" and {unnamed} more discount{'s' if unnamed > 1 else ''}" if unnamed else ""
    return f"coupon{'s' if len(named) > 1 else ''} {', '.join(named)}{more}"


def _coupon_terms(coupon: Json) -> str:
    """``: 10% off`` or ``: 5.00 EUR off`` from an expanded Coupon; empty when unreadable."""
    percent = coupon.get("percent_off")
    if isinstance(percent, int | float) and not isinstance(percent, bool):
        return f": {Decimal(str(percent)).normalize():f}% off"
    amount, currency = coupon.get("amount_off"), _opt_str(coupon.get("currency"))
    if isinstance(amount, int) and not isinstance(amount, bool) and currency:
        try:
            return f": {Money(amount, currency)} off"
        except ValueError:
            return ""
    return ""


def _plan_name(price: Json) -> str:
    product = price.get("product")
    if isinstance(product, dict) and _opt_str(product.get("name")):
        return str(product["name"])
    return (
        _opt_str(price.get("nickname"))
        or _opt_str(price.get("name"))  # plans before 2018 had a name
        or _opt_str(price.get("id"))
        or ""
    )
