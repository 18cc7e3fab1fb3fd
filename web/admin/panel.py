"""The billing panel beside a ticket: everything about the customer, now, in one timeline.

Unlike the snapshot stored with each message (what was true when the
customer wrote), the panel is read live, because the agent acts on it: a
refund button must know what is still refundable now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from billbox.customers import account_namespace
from billbox.gateways.registry import capabilities_of
from billbox.models import (
    Customer,
    CustomerIdentity,
    Document,
    GatewayAccount,
    GatewayInvoice,
    OutboundEmail,
    OutboundState,
    Payment,
    Refund,
    Subscription,
)

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime | None
    kind: str  # payment, refund, subscription, invoice, document
    gateway: str
    title: str
    status: str
    amount: int | None
    currency: str | None
    row: Any


@dataclass
class BillingPanel:
    customer: Customer | None
    identities: list[CustomerIdentity] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    invoices: list[GatewayInvoice] = field(default_factory=list)
    #: accounts the customer has a gateway identity on (for create subscription, tax id)
    accounts: list[GatewayAccount] = field(default_factory=list)
    capabilities: dict[int, frozenset[str]] = field(default_factory=dict)
    timeline: list[TimelineEntry] = field(default_factory=list)
    bounced: list[str] = field(default_factory=list)
    gateway_of: dict[int, str] = field(default_factory=dict)


def billing_panel(session: Session, customer_id: int | None) -> BillingPanel:
    customer = session.get(Customer, customer_id) if customer_id else None
    if customer is None or customer.id is None:
        return BillingPanel(customer=None)
    cid = customer.id
    all_accounts = {a.id: a for a in session.exec(select(GatewayAccount)) if a.id is not None}
    gateway_of = {i: a.gateway.value for i, a in all_accounts.items()}
    capabilities = {i: capabilities_of(a.gateway) for i, a in all_accounts.items()}
    identities = list(
        session.exec(select(CustomerIdentity).where(CustomerIdentity.customer_id == cid))
    )
    namespaces = {i.namespace for i in identities}
    payments = list(
        session.exec(
            select(Payment)
            .where(Payment.customer_id == cid)
            .order_by(col(Payment.gateway_created_at).desc())
        )
    )
    payment_ids = [p.id for p in payments if p.id is not None]
    refunds = (
        list(session.exec(select(Refund).where(col(Refund.payment_id).in_(payment_ids))))
        if payment_ids
        else []
    )
    subscriptions = list(session.exec(select(Subscription).where(Subscription.customer_id == cid)))
    invoices = list(session.exec(select(GatewayInvoice).where(GatewayInvoice.customer_id == cid)))
    documents = list(
        session.exec(
            select(Document).where(Document.customer_id == cid).order_by(col(Document.id).desc())
        )
    )
    bounced = sorted(
        {
            e.to_address
            for e in session.exec(
                select(OutboundEmail).where(
                    OutboundEmail.customer_id == cid, OutboundEmail.state == OutboundState.BOUNCED
                )
            )
        }
    )
    timeline: list[TimelineEntry] = []
    for p in payments:
        title = p.description or "Payment"
        if p.card_last4:
            title += f" · {p.payment_method} •••• {p.card_last4}"
        elif p.payer_email:
            title += f" · {p.payer_email}"
        timeline.append(
            TimelineEntry(
                p.gateway_created_at, "payment", gateway_of.get(p.account_id, ""), title,
                p.status.value, p.amount, p.currency, p,
            )
        )  # fmt: skip
    for r in refunds:
        timeline.append(
            TimelineEntry(
                r.gateway_created_at or r.created_at, "refund", gateway_of.get(r.account_id, ""),
                f"Refund of {r.payment_external_id}" + (f": {r.reason}" if r.reason else ""),
                r.status.value, -r.amount, r.currency, r,
            )
        )  # fmt: skip
    for s in subscriptions:
        timeline.append(
            TimelineEntry(
                s.gateway_created_at or s.created_at, "subscription",
                gateway_of.get(s.account_id, ""), f"{s.plan_name or 'Subscription'} / {s.interval}",
                s.status.value + (" (cancels at period end)" if s.cancel_at_period_end else ""),
                s.amount, s.currency, s,
            )
        )  # fmt: skip
    for i in invoices:
        timeline.append(
            TimelineEntry(
                i.gateway_created_at or i.created_at, "invoice", gateway_of.get(i.account_id, ""),
                f"Gateway invoice {i.number or i.external_id}", i.status.value,
                i.amount_due, i.currency, i,
            )
        )  # fmt: skip
    for d in documents:
        timeline.append(
            TimelineEntry(
                d.issued_at or d.created_at, "document", "",
                f"{d.kind.value.replace('_', ' ').capitalize()} {d.number}", d.state.value,
                d.total, d.currency, d,
            )
        )  # fmt: skip
    timeline.sort(key=lambda e: e.at or _NEVER, reverse=True)
    return BillingPanel(
        customer=customer,
        identities=identities,
        payments=payments,
        subscriptions=subscriptions,
        documents=documents,
        invoices=invoices,
        accounts=[a for a in all_accounts.values() if account_namespace(a) in namespaces],
        capabilities=capabilities,
        timeline=timeline,
        bounced=bounced,
        gateway_of=gateway_of,
    )
