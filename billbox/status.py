"""What an operator checks first (like ``mailq``): work by state, and open tickets."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from billbox.jobs import counts_by_state
from billbox.models import (
    InboundMessage,
    OutboundEmail,
    Ticket,
    TicketStatus,
    WebhookEvent,
)


def _by_state(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(sa.select(column, sa.func.count()).group_by(column)).all()
    return {str(getattr(state, "value", state)): int(n) for state, n in rows}


def collect_status(session: Session) -> dict[str, Any]:
    """Counts by state for every kind of work, plus open tickets."""
    open_tickets = session.execute(
        sa.select(sa.func.count())
        .select_from(Ticket)
        .where(col(Ticket.status).in_([TicketStatus.OPEN, TicketStatus.PENDING]))
    ).scalar_one()
    jobs = counts_by_state(session)
    totals: dict[str, int] = {}
    for states in jobs.values():
        for state, n in states.items():
            totals[state] = totals.get(state, 0) + n
    return {
        "inbound_messages": _by_state(session, col(InboundMessage.state)),
        "outbound_emails": _by_state(session, col(OutboundEmail.state)),
        "webhook_events": _by_state(session, col(WebhookEvent.status)),
        "jobs": totals,
        "jobs_by_kind": jobs,
        "open_tickets": int(open_tickets),
    }
