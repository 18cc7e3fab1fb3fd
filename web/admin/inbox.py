"""Queries behind the ticket list: filters and one search box.

The search box takes whatever an agent has at hand — an email address, a
name, a gateway id (``cus_…``, ``pi_…``, a PayPal capture id) or one of our
document numbers — and finds the tickets of the customer it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, false, func, or_
from sqlmodel import Session, col, select

from billbox.models import (
    Customer,
    CustomerIdentity,
    Document,
    GatewayAccount,
    OutboundEmail,
    OutboundState,
    Payment,
    Subscription,
    Ticket,
    TicketStatus,
)

PAGE_SIZE = 50


@dataclass(frozen=True)
class TicketFilters:
    status: TicketStatus | None = None
    brand_id: int | None = None
    gateway: str | None = None
    bounced: bool = False
    unverified: bool = False
    query: str = ""
    page: int = 1


@dataclass(frozen=True)
class TicketRow:
    ticket: Ticket
    customer_name: str
    customer_email: str


def _customers_matching(query: str) -> ColumnElement[bool]:
    """Ticket.customer_id is a customer this search text identifies."""
    text = query.strip()
    like = f"%{text.lower()}%"
    by_customer = select(Customer.id).where(
        or_(func.lower(Customer.email).like(like), func.lower(Customer.name).like(like))
    )
    by_identity = select(CustomerIdentity.customer_id).where(CustomerIdentity.value == text)
    by_payment = select(Payment.customer_id).where(Payment.external_id == text)
    by_subscription = select(Subscription.customer_id).where(Subscription.external_id == text)
    by_document = select(Document.customer_id).where(Document.number == text)
    return or_(
        col(Ticket.customer_id).in_(by_customer),
        col(Ticket.customer_id).in_(by_identity),
        col(Ticket.customer_id).in_(by_payment),
        col(Ticket.customer_id).in_(by_subscription),
        col(Ticket.customer_id).in_(by_document),
        func.lower(Ticket.requester_email).like(like),
        func.lower(Ticket.subject).like(like),
    )


def _conditions(filters: TicketFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status is not None:
        conditions.append(col(Ticket.status) == filters.status)
    if filters.brand_id is not None:
        conditions.append(col(Ticket.brand_id) == filters.brand_id)
    if filters.unverified:
        conditions.append(col(Ticket.unverified_sender).is_(True))
    if filters.bounced:
        conditions.append(
            exists().where(
                col(OutboundEmail.customer_id) == col(Ticket.customer_id),
                col(OutboundEmail.state) == OutboundState.BOUNCED,
            )
        )
    if filters.gateway:
        on_gateway = (
            select(Payment.customer_id)
            .join(GatewayAccount, col(GatewayAccount.id) == Payment.account_id)
            .where(GatewayAccount.gateway == filters.gateway)
        )
        conditions.append(col(Ticket.customer_id).in_(on_gateway))
    if filters.query.strip():
        conditions.append(_customers_matching(filters.query))
    return conditions


def list_tickets(session: Session, filters: TicketFilters) -> tuple[list[TicketRow], int]:
    """One page of tickets, newest activity first, and the total matching."""
    conditions = _conditions(filters) or [~false()]
    total = session.exec(select(func.count()).select_from(Ticket).where(*conditions)).one()
    statement = (
        select(Ticket, Customer)
        .join(Customer, col(Customer.id) == Ticket.customer_id, isouter=True)
        .where(*conditions)
        .order_by(col(Ticket.updated_at).desc(), col(Ticket.id).desc())
        .offset((max(filters.page, 1) - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    rows = [
        TicketRow(ticket, customer.name if customer else "", customer.email if customer else "")
        for ticket, customer in session.exec(statement).all()
    ]
    return rows, int(total)
