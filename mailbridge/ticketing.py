"""The built-in inbox: file a human message into a ticket, with its billing context.

This is the end of the inbound pipeline for Billbox's own inbox (tickets
in our database, shown by the admin). Each step it needs is a small
function here — match the customer, judge the sender, take the text,
create or append — so the pipeline reads as a list and each is tested alone.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email.message import EmailMessage
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlmodel import Session, select

from billbox.billing_context import snapshot
from billbox.customers import EMAIL_NAMESPACE, normalise_email
from billbox.models import (
    Customer,
    CustomerIdentity,
    InboundMessage,
    MessageDirection,
    Ticket,
    TicketMessage,
    TicketStatus,
    utcnow,
)
from mailbridge.parse import ParsedMessage
from mailbridge.reply import extract_reply
from mailbridge.sanitize import sanitize_html
from mailbridge.thread import ThreadDecision, link_document_emails, normalise_subject

_TAG = re.compile(r"<[^>]+>")
_BLANKS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class CustomerMatch:
    customer_id: int | None
    how: str  # "token", "sender", "none"
    sender_verified: bool


_CUSTOMERS: sa.Table = Customer.__table__  # type: ignore[attr-defined]
_IDENTITIES: sa.Table = CustomerIdentity.__table__  # type: ignore[attr-defined]
_BY_EMAIL = (
    sa.select(_CUSTOMERS.c.id)
    .select_from(_IDENTITIES.join(_CUSTOMERS, _CUSTOMERS.c.id == _IDENTITIES.c.customer_id))
    .where(
        _IDENTITIES.c.namespace == EMAIL_NAMESPACE,
        _IDENTITIES.c.value == sa.bindparam("address", type_=sa.String),
    )
    .limit(1)
)


def _customer_by_email(session: Session, address: str) -> int | None:
    """The customer whose email identity is ``address`` (normalised), in one query.

    :func:`billbox.customers.find_by_email` without loading the customer:
    the pipeline needs only its id.
    """
    email = normalise_email(address)
    if not email:
        return None
    found = session.connection().execute(_BY_EMAIL, {"address": email}).scalar()
    return int(found) if found is not None else None


def match_customer(
    session: Session, parsed: ParsedMessage, decision: ThreadDecision
) -> CustomerMatch:
    """Token first, then the sender among known addresses.

    A valid token whose customer does not own the sender's address is kept
    (the reply is about that customer's document) but marked unverified, so
    the agent knows a forwarded receipt or a colleague may be writing.
    """
    sender = parsed.from_address
    if decision.claims is not None:
        customer_id = decision.claims.customer_id
        return CustomerMatch(customer_id, "token", _owns(session, customer_id, sender))
    if sender:
        by_sender = _customer_by_email(session, sender)
        if by_sender is not None:
            return CustomerMatch(by_sender, "sender", True)
    return CustomerMatch(None, "none", False)


def _owns(session: Session, customer_id: int, address: str | None) -> bool:
    if not address:
        return False
    customer = session.get(Customer, customer_id)
    if customer is not None and customer.email == address:
        return True
    return (
        session.exec(
            select(CustomerIdentity).where(
                CustomerIdentity.customer_id == customer_id,
                CustomerIdentity.namespace == "email",
                CustomerIdentity.value == address,
            )
        ).first()
        is not None
    )


def body_text(message: EmailMessage) -> tuple[str, str | None]:
    """The full text of the message, and its raw HTML part when there is one.

    :func:`file_message` then strips quoted history and sanitises the HTML.
    """
    html_body: str | None = None
    text = ""
    try:
        part = message.get_body(preferencelist=("plain",))
        if part is not None:
            text = str(part.get_content())
        html_part = message.get_body(preferencelist=("html",))
        if html_part is not None:
            html_body = str(html_part.get_content())
    except (LookupError, KeyError, ValueError, AttributeError, TypeError):
        payload = message.get_payload(decode=True)
        if isinstance(payload, bytes):
            text = payload.decode("utf-8", "replace")
    if html_body is not None:  # NUL cannot be stored in a PostgreSQL text column
        html_body = html_body.replace("\x00", "")
    if not text and html_body:
        text = html.unescape(_TAG.sub("", html_body))
    text = text.replace("\x00", "").replace("\r\n", "\n")
    return _BLANKS.sub("\n\n", text).strip(), html_body


@dataclass(frozen=True)
class FiledBody:
    """What a ticket message stores of a reply: its own text and its sanitised HTML."""

    text: str
    html: str | None


_BODIES: WeakKeyDictionary[EmailMessage, FiledBody] = WeakKeyDictionary()


def filed_body(parsed: ParsedMessage) -> FiledBody:
    """The reply without quoted history (a message that was only a quote keeps its
    full text) and the HTML sanitised, never as received.

    Pure CPU, and kept for as long as the message lives: the pipeline calls
    this before it opens its write transaction (on SQLite every transaction
    holds the one write lock), and :func:`file_message` then finds it done.
    """
    cached = _BODIES.get(parsed.message)
    if cached is not None:
        return cached
    full_text, raw_html = body_text(parsed.message)
    reply = extract_reply(full_text, raw_html)
    body = FiledBody(reply.text or full_text, sanitize_html(raw_html) if raw_html else None)
    _BODIES[parsed.message] = body
    return body


def file_message(
    session: Session,
    row: InboundMessage,
    parsed: ParsedMessage,
    decision: ThreadDecision,
    match: CustomerMatch,
) -> TicketMessage:
    """Append to the decided ticket or open a new one; store the billing context."""
    ticket = session.get(Ticket, decision.ticket_id) if decision.ticket_id else None
    now = utcnow()
    if ticket is None:
        ticket = Ticket(
            brand_id=decision.claims.brand_id if decision.claims else None,
            customer_id=match.customer_id,
            subject=normalise_subject(parsed.subject)[:500],
            status=TicketStatus.OPEN,
            requester_email=parsed.from_address or row.envelope_from or "",
            unverified_sender=not match.sender_verified and match.customer_id is not None,
        )
        session.add(ticket)
        session.flush()
        assert ticket.id is not None
        if decision.claims is not None:
            link_document_emails(session, decision.claims, ticket.id)
    else:
        if ticket.status in (TicketStatus.SOLVED, TicketStatus.PENDING):
            ticket.status = TicketStatus.OPEN
        if match.customer_id is not None and not match.sender_verified:
            ticket.unverified_sender = True
        ticket.updated_at = now
        session.add(ticket)
    assert ticket.id is not None
    body = filed_body(parsed)
    context = snapshot(session, ticket.customer_id) if ticket.customer_id else {}
    message = TicketMessage(
        ticket_id=ticket.id,
        direction=MessageDirection.INBOUND,
        inbound_message_id=row.id,
        author=parsed.from_address or "",
        body_text=body.text,
        body_html=body.html,
        message_id=parsed.message_id,
        thread_rule=decision.rule,
        billing_context=context,
    )
    session.add(message)
    session.flush()
    # After the flush, so the inbound row is written once, when the caller commits.
    row.ticket_id = ticket.id
    return message
