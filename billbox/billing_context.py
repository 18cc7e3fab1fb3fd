"""The billing context an agent sees beside a ticket: one JSON-ready snapshot.

A snapshot is *stored* with each inbound ticket message rather than
computed on display, so the agent sees what was true when the customer
wrote (and a later refund does not silently rewrite history). Amounts stay
integer minor units with their currency; the display formats them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _gateways(session: Session) -> dict[int, str]:
    return {a.id: a.gateway.value for a in session.exec(select(GatewayAccount)) if a.id}


def snapshot(session: Session, customer_id: int) -> dict[str, Any]:
    """Customer, identities, recent payments and refunds, subscriptions, open
    invoices, lifetime value per currency and bounced addresses."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return {}
    gateway_of = _gateways(session)
    identities = session.exec(
        select(CustomerIdentity).where(CustomerIdentity.customer_id == customer_id)
    ).all()
    payments = session.exec(
        select(Payment)
        .where(Payment.customer_id == customer_id)
        .order_by(col(Payment.gateway_created_at).desc())
    ).all()
    payment_ids = [p.id for p in payments if p.id is not None]
    refunds = (
        session.exec(
            select(Refund)
            .where(col(Refund.payment_id).in_(payment_ids))
            .order_by(col(Refund.id).desc())
        ).all()
        if payment_ids
        else []
    )
    subscriptions = session.exec(
        select(Subscription).where(Subscription.customer_id == customer_id)
    ).all()
    open_invoices = session.exec(
        select(GatewayInvoice).where(
            GatewayInvoice.customer_id == customer_id,
            GatewayInvoice.status == GatewayInvoiceStatus.OPEN,
        )
    ).all()
    bounced = sorted(
        {
            e.to_address
            for e in session.exec(
                select(OutboundEmail).where(
                    OutboundEmail.customer_id == customer_id,
                    OutboundEmail.state == OutboundState.BOUNCED,
                )
            )
        }
    )
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
            {"kind": i.kind.value, "namespace": i.namespace, "value": i.value} for i in identities
        ],
        "payments": [
            {
                "id": p.id,
                "gateway": gateway_of.get(p.account_id, ""),
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
            for r in refunds[:RECENT]
        ],
        "subscriptions": [
            {
                "id": s.id,
                "gateway": gateway_of.get(s.account_id, ""),
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
