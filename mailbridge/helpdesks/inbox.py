"""The built-in inbox connector: tickets in Billbox's own database.

Idempotent by inbound message: a retried job finds the ticket message it
already filed and returns it instead of appending a second copy.
"""

from __future__ import annotations

from sqlmodel import Session, select

from billbox.models import TicketMessage
from mailbridge.helpdesks import Delivered, Filing
from mailbridge.helpdesks.push import queue_pushes
from mailbridge.ticketing import file_message


class InboxConnector:
    name = "inbox"

    def deliver(self, session: Session, filing: Filing) -> Delivered:
        existing = session.exec(
            select(TicketMessage).where(TicketMessage.inbound_message_id == filing.row.id)
        ).first()
        if existing is not None and existing.id is not None:
            return Delivered(existing.ticket_id, existing.id)
        before = filing.decision.ticket_id
        message = file_message(session, filing.row, filing.parsed, filing.decision, filing.match)
        assert message.id is not None
        queue_pushes(session, message)  # copies for external helpdesks, if any are active
        return Delivered(message.ticket_id, message.id, created_ticket=before is None)
