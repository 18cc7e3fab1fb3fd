"""Internal notes on a ticket: what an agent did from it, beside the audit row.

One function so the admin's one-click actions and ``billbox demo`` write
notes the same way (and the ticket moves up the inbox when it gets one).
"""

from __future__ import annotations

from sqlmodel import Session

from billbox.models import MessageDirection, Ticket, TicketMessage, utcnow


def add_note(session: Session, ticket_id: int, author: str, text: str) -> TicketMessage:
    """Add a note in the caller's transaction; the caller commits."""
    note = TicketMessage(
        ticket_id=ticket_id, direction=MessageDirection.NOTE, author=author, body_text=text
    )
    session.add(note)
    ticket = session.get(Ticket, ticket_id)
    if ticket is not None:
        ticket.updated_at = utcnow()
        session.add(ticket)
    return note
