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

from sqlmodel import Session, select

from billbox.billing_context import snapshot
from billbox.customers import find_by_email
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
        customer = find_by_email(session, sender)
        if customer is not None and customer.id is not None:
            return CustomerMatch(customer.id, "sender", True)
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
    full_text, raw_html = body_text(parsed.message)
    # The new reply without quoted history; a message that was only a quote
    # keeps its full text. HTML is stored sanitised, never as received.
    reply = extract_reply(full_text, raw_html)
    text = reply.text or full_text
    html_body = sanitize_html(raw_html) if raw_html else None
    context = snapshot(session, ticket.customer_id) if ticket.customer_id else {}
    message = TicketMessage(
        ticket_id=ticket.id,
        direction=MessageDirection.INBOUND,
        inbound_message_id=row.id,
        author=parsed.from_address or "",
        body_text=text,
        body_html=html_body,
        message_id=parsed.message_id,
        thread_rule=decision.rule,
        billing_context=context,
    )
    session.add(message)
    row.ticket_id = ticket.id
    session.flush()
    return message
