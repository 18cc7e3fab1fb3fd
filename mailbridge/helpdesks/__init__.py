"""The helpdesk connector seam: where a filed message goes.

One small interface, one module per vendor. The built-in inbox (tickets
in Billbox's own database, shown by the admin) is the default and the
reference implementation; external helpdesks (Zendesk, Freshdesk, Help
Scout, …) implement the same call and store the external id they get back,
so a retried job appends nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlmodel import Session

from billbox.models import InboundMessage
from mailbridge.parse import ParsedMessage
from mailbridge.thread import ThreadDecision
from mailbridge.ticketing import CustomerMatch


@dataclass(frozen=True)
class Filing:
    """Everything the pipeline decided about one human message."""

    row: InboundMessage
    parsed: ParsedMessage
    decision: ThreadDecision
    match: CustomerMatch


@dataclass(frozen=True)
class Delivered:
    ticket_id: int
    ticket_message_id: int
    external_id: str | None = None
    created_ticket: bool = False


class HelpdeskConnector(Protocol):
    """Create a ticket or append to one, idempotently for the same inbound message."""

    name: str

    def deliver(self, session: Session, filing: Filing) -> Delivered: ...


__all__ = ["Delivered", "Filing", "HelpdeskConnector"]
