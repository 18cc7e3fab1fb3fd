"""An agent's reply from a ticket, emailed to the customer and threaded both ways.

The email carries ``In-Reply-To``/``References`` (the customer's client
threads it under their message) and the signed ``Reply-To`` (their answer
comes back to this ticket even if their client drops every header). It is
a human reply, so unlike receipts it has no ``Auto-Submitted``. The row is
composed and stored with the ticket message in one transaction; the
``send_outbound`` job then hands it to the relay exactly like a receipt
(``mailbridge.send.send_row``: at most once, 4xx retried, 5xx failed).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from sqlmodel import Session, col, select

from billbox.errors import BillboxError, PermanentError
from billbox.jobs import Handler, JobContext, submit
from billbox.models import (
    Brand,
    Customer,
    MessageDirection,
    OutboundEmail,
    OutboundState,
    Ticket,
    TicketMessage,
    utcnow,
)
from mailbridge.compose import new_message_id
from mailbridge.relay import RelayConnections
from mailbridge.send import MAX_ATTEMPTS, MailerConfig, send_row
from mailbridge.thread import normalise_subject
from mailbridge.tokens import make_reply_token, reply_address

SEND_OUTBOUND_JOB = "send_outbound"
MAX_REPLY = 50_000


class ReplyError(BillboxError):
    """A reply cannot be sent as asked (no brand sender, empty text); shown to the agent."""


def _brand(session: Session, ticket: Ticket) -> Brand:
    brand = session.get(Brand, ticket.brand_id) if ticket.brand_id else None
    if brand is None:
        brand = session.exec(select(Brand).order_by(col(Brand.id))).first()
    if brand is None or not brand.email_from:
        raise ReplyError("set the brand's sender address (Settings → Brands) before replying")
    return brand


def queue_agent_reply(
    session: Session, ticket: Ticket, *, author: str, text: str, secret: str, reply_domain: str
) -> TicketMessage:
    """Compose the reply, store it (ticket message + outbound row) and queue its sending."""
    body = text.strip()
    if not body:
        raise ReplyError("write a reply first")
    if len(body) > MAX_REPLY:
        raise ReplyError(f"a reply has at most {MAX_REPLY} characters")
    assert ticket.id is not None
    brand = _brand(session, ticket)
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    earlier = session.exec(
        select(TicketMessage.message_id)
        .where(TicketMessage.ticket_id == ticket.id, col(TicketMessage.message_id).is_not(None))
        .order_by(col(TicketMessage.id))
    ).all()
    references = [m for m in earlier if m]
    message_id = new_message_id(reply_domain)
    token = None
    if customer is not None and customer.id is not None:
        token = make_reply_token(
            secret, document_id=None, customer_id=customer.id, brand_id=brand.id
        )
    message = EmailMessage()
    message["From"] = formataddr((brand.name, brand.email_from))
    message["To"] = formataddr((customer.name if customer else "", ticket.requester_email))
    subject = normalise_subject(ticket.subject) or "Your billing question"
    message["Subject"] = f"Re: {subject} [#{ticket.id}]"
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id
    if references:
        message["In-Reply-To"] = references[-1]
        message["References"] = " ".join(references[-20:])
    if token is not None:
        message["Reply-To"] = reply_address(token, reply_domain)
    message.set_content(body + "\n")
    note = TicketMessage(
        ticket_id=ticket.id, direction=MessageDirection.OUTBOUND, author=author,
        body_text=body, message_id=message_id,
    )  # fmt: skip
    session.add(note)
    session.flush()
    row = OutboundEmail(
        brand_id=brand.id, customer_id=ticket.customer_id, ticket_id=ticket.id,
        purpose_key=f"reply:{note.id}", state=OutboundState.PENDING,
        to_address=ticket.requester_email, from_address=brand.email_from,
        reply_to=message.get("Reply-To"), subject=str(message["Subject"]), message_id=message_id,
        in_reply_to=references[-1] if references else None, raw=message.as_bytes(),
    )  # fmt: skip
    session.add(row)
    session.flush()
    note.outbound_email_id = row.id
    ticket.updated_at = utcnow()
    session.add_all([note, ticket])
    submit(session, SEND_OUTBOUND_JOB, {"outbound_email_id": row.id}, max_attempts=MAX_ATTEMPTS)
    return note


def make_send_outbound(config: MailerConfig) -> Handler:
    """The ``send_outbound`` handler: send an already composed row (agent replies)."""
    connections = RelayConnections(config.relay) if config.relay is not None else None

    def send_outbound(session: Session, job: JobContext) -> None:
        row = session.get(OutboundEmail, int(job.payload["outbound_email_id"]))
        if row is None or row.raw is None:
            raise PermanentError("the outbound email no longer exists")
        if connections is None:
            raise PermanentError("BILLBOX_SMTP_RELAY is not set; no email can be sent")
        send_row(session, config, connections, row, job)

    return send_outbound
