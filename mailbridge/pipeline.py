"""The inbound pipeline: a list of small steps applied to one stored message.

Today the steps are *parse* (quarantine what cannot be parsed, keep the
raw bytes) and *record* (Message-ID for threading). Classification,
threading, customer matching and ticket creation are added as further
steps in their own modules.
"""

from __future__ import annotations

from sqlmodel import Session

from billbox.errors import PermanentError
from billbox.jobs import JobContext
from billbox.logs import get_logger
from billbox.models import InboundMessage, InboundState, utcnow
from mailbridge.parse import ParseFailure, parse_message

INBOUND_JOB = "inbound.process"

log = get_logger("mailbridge.pipeline")


def process_inbound(session: Session, job: JobContext) -> None:
    """Job handler for ``inbound.process``; idempotent (a final row is left alone)."""
    message_id = int(str(job.payload["inbound_message_id"]))
    row = session.get(InboundMessage, message_id, with_for_update=True)
    if row is None:
        raise PermanentError(f"inbound message {message_id} does not exist")
    if row.state != InboundState.RECEIVED:
        return
    parsed = parse_message(row.raw)
    if isinstance(parsed, ParseFailure):
        row.state = InboundState.QUARANTINED
        row.quarantine_reason = parsed.reason
        log.warning("inbound_quarantined", inbound_message_id=message_id, reason=parsed.reason)
    else:
        row.message_id = parsed.message_id
        row.state = InboundState.PROCESSED
        log.info(
            "inbound_parsed",
            inbound_message_id=message_id,
            message_id=parsed.message_id,
            sender=parsed.from_address,
        )
    row.processed_at = utcnow()
    session.add(row)
