"""Commit a received message's raw bytes and its processing job in one transaction.

This runs before the SMTP server answers 250 (and before the IMAP poller
flags a message), so an accepted message is always on disk with the job
that will process it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.db import transaction
from billbox.jobs import submit
from billbox.models import InboundMessage, InboundSource, InboundState
from mailbridge.pipeline import INBOUND_JOB


@dataclass(frozen=True)
class InboundRecord:
    """One received message as the servers hand it over, before it has a row."""

    raw: bytes
    source: InboundSource
    envelope_from: str
    envelope_to: list[str]
    mailbox: str = ""
    imap_uidvalidity: int | None = None
    imap_uid: int | None = None


def insert_inbound(session: Session, record: InboundRecord) -> int:
    """Add the message row and its processing job to ``session`` (the caller commits)."""
    message = InboundMessage(
        source=record.source,
        mailbox=record.mailbox,
        envelope_from=record.envelope_from[:254],
        envelope_to=list(record.envelope_to),
        raw=record.raw,
        size=len(record.raw),
        sha256=hashlib.sha256(record.raw).hexdigest(),
        state=InboundState.RECEIVED,
        imap_uidvalidity=record.imap_uidvalidity,
        imap_uid=record.imap_uid,
    )
    session.add(message)
    session.flush()
    assert message.id is not None
    # No dedupe key: the message row is new, so its job is too (saves a SELECT).
    submit(session, INBOUND_JOB, {"inbound_message_id": message.id})
    return message.id


def store_inbound(
    factory: sessionmaker[Session],
    raw: bytes,
    *,
    source: InboundSource,
    envelope_from: str,
    envelope_to: Sequence[str],
    mailbox: str = "",
    imap_uidvalidity: int | None = None,
    imap_uid: int | None = None,
) -> int:
    """Store ``raw`` and queue its processing in one transaction; return the message id."""
    record = InboundRecord(
        raw, source, envelope_from, list(envelope_to), mailbox, imap_uidvalidity, imap_uid
    )
    with transaction(factory) as session:
        return insert_inbound(session, record)
