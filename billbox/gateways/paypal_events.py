"""PayPal webhook event bodies → normalised objects (pure: no network, no database).

A PayPal event is ``{"id": "WH-…", "event_type": "…", "create_time": "…",
"resource_type": "…", "resource": {…}}``. The mapper is picked by event
type, and by ``resource_type`` where one event family carries several
shapes (``PAYMENT.CAPTURE.REFUNDED`` and ``.REVERSED`` carry the *refund*,
not the capture).

================================== =========================================
event type                         normalised as
================================== =========================================
PAYMENT.CAPTURE.* (capture)        GatewayPayment (the capture)
PAYMENT.CAPTURE.REFUNDED/REVERSED  GatewayRefund, linked by ``links[rel=up]``
PAYMENT.AUTHORIZATION.*            GatewayPayment (authorized / canceled)
PAYMENT.SALE.*                     GatewayPayment (v1 sale), or a
                                   GatewayRefund for a v1 refund resource
CHECKOUT.ORDER.*                   the payer as GatewayCustomer, plus the
                                   order's captures/authorizations/refunds
BILLING.SUBSCRIPTION.*             GatewaySubscription (+ the subscriber)
INVOICING.INVOICE.*                GatewayInvoiceData
CUSTOMER.DISPUTE.*                 GatewayPayment per disputed transaction,
                                   status ``disputed``
others                             Ignored
================================== =========================================

A dispute marks each disputed capture (``seller_transaction_id``)
``disputed`` while it is open and after it is lost (the money itself moves
through the ``PAYMENT.CAPTURE.REVERSED`` refund PayPal sends). A dispute
won by the seller, cancelled by the buyer or denied gives the payment its
transaction status back. The dispute's ``update_time`` is the payment's
timestamp, so later capture updates still win over an older dispute.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from billbox.gateways.base import GatewayParseError, Ignored, NormalisedObject, ParseResult
from billbox.gateways.paypal_invoices import invoice_to_invoice
from billbox.gateways.paypal_mapping import (
    Json,
    authorization_to_payment,
    capture_to_payment,
    decimal_to_minor,
    opt_str,
    order_to_objects,
    parse_time,
    payer_to_customer,
    refund_to_refund,
    req_str,
    sale_to_payment,
    subscription_to_subscription,
    to_minor,
)
from billbox.gateways.types import GatewayPayment, GatewayRefund
from billbox.models import PaymentStatus, RefundStatus
from billbox.money import check_currency

Mapper = Callable[[Json, datetime], list[NormalisedObject]]


def parse_event(body: bytes) -> ParseResult:
    """Normalise one PayPal event body; unknown types are :class:`Ignored`."""
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise GatewayParseError(f"event body is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise GatewayParseError("event body is not a JSON object")
    event_type = event.get("event_type")
    resource = event.get("resource")
    if not isinstance(event_type, str) or not event_type:
        raise GatewayParseError("event has no event_type")
    created = parse_time(event.get("create_time"))
    if created is None:
        raise GatewayParseError(f"{event_type}: event has no create_time")
    mapper = _route(event_type, opt_str(event.get("resource_type")))
    if mapper is None:
        return Ignored(f"event type {event_type} is not mirrored")
    if not isinstance(resource, dict):
        raise GatewayParseError(f"{event_type}: resource is not an object")
    try:
        return mapper(resource, created)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GatewayParseError(f"{event_type}: {exc.__class__.__name__}: {exc}") from exc


def _route(event_type: str, resource_type: str | None) -> Mapper | None:
    if event_type.startswith("PAYMENT.CAPTURE."):
        if resource_type == "refund" or (
            resource_type is None and event_type.endswith((".REFUNDED", ".REVERSED"))
        ):
            return _refund
        return _capture
    if event_type.startswith("PAYMENT.AUTHORIZATION."):
        return _authorization
    if event_type.startswith("PAYMENT.SALE."):
        if resource_type == "refund" or (
            resource_type is None and event_type.endswith((".REFUNDED", ".REVERSED"))
        ):
            return _sale_refund
        return _sale
    if event_type.startswith("CHECKOUT.ORDER."):
        return order_to_objects
    if event_type.startswith("BILLING.SUBSCRIPTION."):
        return _subscription
    if event_type.startswith("INVOICING.INVOICE."):
        return _invoice
    if event_type.startswith("CUSTOMER.DISPUTE."):
        return _dispute
    return None


def _capture(obj: Json, created: datetime) -> list[NormalisedObject]:
    return [capture_to_payment(obj, created)]


def _refund(obj: Json, created: datetime) -> list[NormalisedObject]:
    return [refund_to_refund(obj, created)]


def _authorization(obj: Json, created: datetime) -> list[NormalisedObject]:
    return [authorization_to_payment(obj, created)]


def _sale(obj: Json, created: datetime) -> list[NormalisedObject]:
    return [sale_to_payment(obj, created)]


def _subscription(obj: Json, created: datetime) -> list[NormalisedObject]:
    out: list[NormalisedObject] = []
    subscriber = payer_to_customer(obj.get("subscriber"))
    if subscriber is not None:
        out.append(subscriber)
    out.append(subscription_to_subscription(obj, created))
    return out


def _invoice(obj: Json, created: datetime) -> list[NormalisedObject]:
    return [invoice_to_invoice(obj, created)]


_DISPUTE_LOST = frozenset({"RESOLVED_BUYER_FAVOUR", "RESOLVED_WITH_PAYOUT", "ACCEPTED"})
_TRANSACTION_STATUS = {
    "COMPLETED": PaymentStatus.SUCCEEDED,
    "PARTIALLY_REFUNDED": PaymentStatus.PARTIALLY_REFUNDED,
    "REFUNDED": PaymentStatus.REFUNDED,
    "REVERSED": PaymentStatus.REFUNDED,
    "PENDING": PaymentStatus.PENDING,
    "HELD": PaymentStatus.PENDING,
    "UNCLAIMED": PaymentStatus.PENDING,
    "DENIED": PaymentStatus.FAILED,
    "FAILED": PaymentStatus.FAILED,
    "CANCELLED": PaymentStatus.CANCELED,
}


def _dispute(obj: Json, created: datetime) -> list[NormalisedObject]:
    """Each disputed transaction we can price, marked disputed (or restored when won)."""
    transactions = obj.get("disputed_transactions")
    items = (
        [t for t in transactions if isinstance(t, dict)] if isinstance(transactions, list) else []
    )
    outcome = obj.get("dispute_outcome")
    outcome_code = opt_str(outcome.get("outcome_code")) if isinstance(outcome, dict) else None
    resolved = obj.get("status") == "RESOLVED"
    updated = parse_time(obj.get("update_time")) or created
    out: list[NormalisedObject] = []
    for item in items:
        capture_id = opt_str(item.get("seller_transaction_id"))
        money = item.get("gross_amount") or (obj.get("dispute_amount") if len(items) == 1 else None)
        if capture_id is None or not isinstance(money, dict):
            continue  # nothing to attach the dispute to, or no amount to store
        amount, currency = to_minor(money)
        own = _TRANSACTION_STATUS.get(opt_str(item.get("transaction_status")) or "COMPLETED")
        status = PaymentStatus.DISPUTED
        if resolved and outcome_code not in _DISPUTE_LOST and own is not None:
            status = own
        buyer = item.get("buyer")
        out.append(
            GatewayPayment(
                external_id=capture_id,
                customer_external_id=None,
                status=status,
                amount=amount,
                currency=currency,
                created_at=parse_time(item.get("create_time")) or updated,
                updated_at=updated,
                amount_refunded=amount if own == PaymentStatus.REFUNDED else 0,
                description=opt_str(item.get("invoice_number"))
                or opt_str(item.get("custom"))
                or "",
                payment_method="paypal",
                payer_email=opt_str(buyer.get("email")) if isinstance(buyer, dict) else None,
            )
        )
    return out


_SALE_REFUND_STATUS = {
    "completed": RefundStatus.SUCCEEDED,
    "pending": RefundStatus.PENDING,
    "failed": RefundStatus.FAILED,
    "cancelled": RefundStatus.CANCELED,
}


def _sale_refund(obj: Json, created: datetime) -> list[NormalisedObject]:
    """A v1 refund of a sale: ``{"id", "state", "amount": {"total", "currency"}, "sale_id"}``."""
    state = req_str(obj, "state")
    status = _SALE_REFUND_STATUS.get(state)
    if status is None:
        raise ValueError(f"unknown refund state {state!r}")
    money = obj.get("amount")
    if not isinstance(money, dict):
        raise ValueError("refund has no amount")
    currency = check_currency(req_str(money, "currency"))
    amount = abs(decimal_to_minor(req_str(money, "total"), currency))
    refund = GatewayRefund(
        external_id=req_str(obj, "id"),
        payment_external_id=req_str(obj, "sale_id"),
        status=status,
        amount=amount,
        currency=currency,
        created_at=parse_time(obj.get("create_time")) or created,
        updated_at=parse_time(obj.get("update_time")) or created,
        reason=opt_str(obj.get("reason")) or "",
    )
    return [refund]
