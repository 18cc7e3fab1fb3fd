"""The billing context an agent sees beside a ticket: one JSON-ready snapshot.

A snapshot is *stored* with each inbound ticket message rather than
computed on display, so the agent sees what was true when the customer
wrote (and a later refund does not silently rewrite history). Amounts stay
integer minor units with their currency; the display formats them.

It is taken for every filed reply, so it is six Core ``SELECT``s of the
columns it shows (one per kind of row, each gateway name joined in, refunds
joined to the customer's payments) rather than ORM objects: loading
entities and one more query for the gateway accounts cost more than the
queries themselves.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from billbox.models import (
    PAID_PAYMENT_STATUSES,
    Customer,
    CustomerIdentity,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    OutboundEmail,
    OutboundState,
    Payment,
    Refund,
    Subscription,
)

RECENT = 10

_CUSTOMER: sa.Table = Customer.__table__  # type: ignore[attr-defined]
_IDENTITY: sa.Table = CustomerIdentity.__table__  # type: ignore[attr-defined]
_ACCOUNT: sa.Table = GatewayAccount.__table__  # type: ignore[attr-defined]
_PAYMENT: sa.Table = Payment.__table__  # type: ignore[attr-defined]
_REFUND: sa.Table = Refund.__table__  # type: ignore[attr-defined]
_SUBSCRIPTION: sa.Table = Subscription.__table__  # type: ignore[attr-defined]
_INVOICE: sa.Table = GatewayInvoice.__table__  # type: ignore[attr-defined]
_EMAIL: sa.Table = OutboundEmail.__table__  # type: ignore[attr-defined]

_ID = sa.bindparam("customer_id", type_=sa.Integer)

# Built once: SQLAlchemy then reuses each statement's compiled form.
_CUSTOMER_AND_IDENTITIES = (
    sa.select(
        _CUSTOMER.c.id,
        _CUSTOMER.c.name,
        _CUSTOMER.c.email,
        _CUSTOMER.c.country,
        _CUSTOMER.c.tax_id,
        _CUSTOMER.c.locale,
        _IDENTITY.c.kind,
        _IDENTITY.c.namespace,
        _IDENTITY.c.value,
    )
    .select_from(_CUSTOMER.outerjoin(_IDENTITY, _IDENTITY.c.customer_id == _CUSTOMER.c.id))
    .where(_CUSTOMER.c.id == _ID)
    .order_by(_IDENTITY.c.id)
)
_PAYMENTS = (
    sa.select(
        _PAYMENT.c.id,
        _ACCOUNT.c.gateway,
        _PAYMENT.c.external_id,
        _PAYMENT.c.status,
        _PAYMENT.c.amount,
        _PAYMENT.c.amount_refunded,
        _PAYMENT.c.currency,
        _PAYMENT.c.description,
        _PAYMENT.c.payment_method,
        _PAYMENT.c.card_last4,
        _PAYMENT.c.gateway_created_at,
    )
    .select_from(_PAYMENT.outerjoin(_ACCOUNT, _ACCOUNT.c.id == _PAYMENT.c.account_id))
    .where(_PAYMENT.c.customer_id == _ID)
    .order_by(_PAYMENT.c.gateway_created_at.desc(), _PAYMENT.c.id.desc())
)
_REFUNDS = (
    sa.select(
        _REFUND.c.id,
        _REFUND.c.payment_id,
        _REFUND.c.external_id,
        _REFUND.c.status,
        _REFUND.c.amount,
        _REFUND.c.currency,
        _REFUND.c.reason,
        _REFUND.c.gateway_created_at,
    )
    .select_from(_REFUND.join(_PAYMENT, _PAYMENT.c.id == _REFUND.c.payment_id))
    .where(_PAYMENT.c.customer_id == _ID)
    .order_by(_REFUND.c.id.desc())
    .limit(RECENT)
)
_SUBSCRIPTIONS = (
    sa.select(
        _SUBSCRIPTION.c.id,
        _ACCOUNT.c.gateway,
        _SUBSCRIPTION.c.external_id,
        _SUBSCRIPTION.c.plan_name,
        _SUBSCRIPTION.c.status,
        _SUBSCRIPTION.c.amount,
        _SUBSCRIPTION.c.currency,
        _SUBSCRIPTION.c.interval,
        _SUBSCRIPTION.c.current_period_end,
        _SUBSCRIPTION.c.cancel_at_period_end,
    )
    .select_from(_SUBSCRIPTION.outerjoin(_ACCOUNT, _ACCOUNT.c.id == _SUBSCRIPTION.c.account_id))
    .where(_SUBSCRIPTION.c.customer_id == _ID)
    .order_by(_SUBSCRIPTION.c.id)
)
_OPEN_INVOICES = (
    sa.select(
        _INVOICE.c.id,
        _INVOICE.c.external_id,
        _INVOICE.c.number,
        _INVOICE.c.amount_due,
        _INVOICE.c.currency,
        _INVOICE.c.due_at,
    )
    .where(_INVOICE.c.customer_id == _ID, _INVOICE.c.status == GatewayInvoiceStatus.OPEN)
    .order_by(_INVOICE.c.id)
)
_BOUNCED = (
    sa.select(_EMAIL.c.to_address)
    .distinct()
    .where(_EMAIL.c.customer_id == _ID, _EMAIL.c.state == OutboundState.BOUNCED)
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _gateway(value: Any) -> str:
    return str(value.value) if value is not None else ""


def snapshot(session: Session, customer_id: int) -> dict[str, Any]:
    """Customer, identities, recent payments and refunds, subscriptions, open
    invoices, lifetime value per currency and bounced addresses."""
    connection = session.connection()
    params = {"customer_id": customer_id}
    people = connection.execute(_CUSTOMER_AND_IDENTITIES, params).all()
    if not people:
        return {}
    customer = people[0]
    payments = connection.execute(_PAYMENTS, params).all()
    refunds = connection.execute(_REFUNDS, params).all()
    subscriptions = connection.execute(_SUBSCRIPTIONS, params).all()
    open_invoices = connection.execute(_OPEN_INVOICES, params).all()
    bounced = sorted(str(address) for (address,) in connection.execute(_BOUNCED, params))
    lifetime: dict[str, int] = defaultdict(int)
    for p in payments:
        if p.status in PAID_PAYMENT_STATUSES:
            lifetime[p.currency] += p.amount - p.amount_refunded
    return {
        "customer": {
            "id": customer.id,
            "name": customer.name,
            "email": customer.email,
            "country": customer.country,
            "tax_id": customer.tax_id,
            "locale": customer.locale,
        },
        "identities": [
            {"kind": i.kind.value, "namespace": i.namespace, "value": i.value}
            for i in people
            if i.kind is not None
        ],
        "payments": [
            {
                "id": p.id,
                "gateway": _gateway(p.gateway),
                "external_id": p.external_id,
                "status": p.status.value,
                "amount": p.amount,
                "amount_refunded": p.amount_refunded,
                "currency": p.currency,
                "description": p.description,
                "payment_method": p.payment_method,
                "card_last4": p.card_last4,
                "created_at": _iso(p.gateway_created_at),
            }
            for p in payments[:RECENT]
        ],
        "payment_count": len(payments),
        "refunds": [
            {
                "id": r.id,
                "payment_id": r.payment_id,
                "external_id": r.external_id,
                "status": r.status.value,
                "amount": r.amount,
                "currency": r.currency,
                "reason": r.reason,
                "created_at": _iso(r.gateway_created_at),
            }
            for r in refunds
        ],
        "subscriptions": [
            {
                "id": s.id,
                "gateway": _gateway(s.gateway),
                "external_id": s.external_id,
                "plan": s.plan_name,
                "status": s.status.value,
                "amount": s.amount,
                "currency": s.currency,
                "interval": s.interval,
                "current_period_end": _iso(s.current_period_end),
                "cancel_at_period_end": s.cancel_at_period_end,
            }
            for s in subscriptions
        ],
        "open_invoices": [
            {
                "id": i.id,
                "external_id": i.external_id,
                "number": i.number,
                "amount_due": i.amount_due,
                "currency": i.currency,
                "due_at": _iso(i.due_at),
            }
            for i in open_invoices
        ],
        "lifetime_value": dict(sorted(lifetime.items())),
        "bounced_addresses": bounced,
    }
