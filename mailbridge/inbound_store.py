"""Commit a received message's raw bytes and its processing job in one transaction.

This runs before the SMTP server answers 250 (and before the IMAP poller
flags a message), so an accepted message is always on disk with the job
that will process it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.db import transaction
from billbox.jobs import submit
from billbox.models import InboundMessage, InboundSource, InboundState
from mailbridge.pipeline import INBOUND_JOB


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
    """Store ``raw`` and queue its processing; return the inbound message id."""
    with transaction(factory) as session:
        message = InboundMessage(
            source=source,
            mailbox=mailbox,
            envelope_from=envelope_from[:254],
            envelope_to=list(envelope_to),
            raw=raw,
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            state=InboundState.RECEIVED,
            imap_uidvalidity=imap_uidvalidity,
            imap_uid=imap_uid,
        )
        session.add(message)
        session.flush()
        assert message.id is not None
        submit(
            session,
            INBOUND_JOB,
            {"inbound_message_id": message.id},
            dedupe_key=f"inbound:{message.id}",
        )
        return message.id
