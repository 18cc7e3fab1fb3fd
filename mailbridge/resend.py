"""Resend a document's email: same stored document and PDF, a new outbound email, audited.

A resend is its own purpose (``resend:<document id>:<n>``), so it gets its
own outbound row, Message-ID and VERP address and is never mistaken for a
retry of an earlier email; it attaches ``Document.pdf`` as stored, so the
number and the bytes are the ones the customer already has, and nothing is
rendered. Queuing it writes the audit event in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from billbox.audit import record
from billbox.documents import SEND_DOCUMENT_JOB
from billbox.jobs import submit
from billbox.models import ActorKind, Document, Job
from mailbridge.send import MAX_ATTEMPTS, purpose_key

__all__ = ["AuditHook", "ResendAudit", "queue_resend", "record_resend"]


@dataclass(frozen=True)
class ResendAudit:
    """The audit event of a resend, handed to the caller's audit hook."""

    action: str
    actor: str
    target_kind: str
    target_id: str
    reason: str
    data: dict[str, Any] = field(default_factory=dict)
    actor_kind: ActorKind = ActorKind.USER


AuditHook = Callable[[Session, ResendAudit], None]


def record_resend(session: Session, event: ResendAudit) -> None:
    """The usual ``audit`` for :func:`queue_resend`: append to the hash-chained audit log."""
    record(
        session,
        actor_kind=event.actor_kind,
        actor=event.actor,
        action=event.action,
        target_kind=event.target_kind,
        target_id=event.target_id,
        reason=event.reason,
        data=event.data,
    )


def queue_resend(
    session: Session,
    document_id: int,
    *,
    actor: str,
    reason: str,
    audit: AuditHook = record_resend,
    actor_kind: ActorKind = ActorKind.USER,
) -> Job:
    """Queue another email of the same stored document (same number, same PDF) and audit it.

    ``audit`` receives a :class:`ResendAudit` in the same transaction:
    by default :func:`record_resend` appends it to the audit log
    (:func:`billbox.audit.record`), so the resend and its audit row commit
    together or not at all; tests and other callers may pass their own. The
    n-th resend gets purpose ``resend:<n>`` and its own outbound row, so a
    resend is never mistaken for a retry of an earlier email; two clicks
    that race for the same ``n`` become one job. Raises :class:`ValueError`
    for an unknown document or one without a PDF.
    """
    if not actor.strip():
        raise ValueError("a resend needs the actor who asked for it")
    document = session.get(Document, document_id)
    if document is None:
        raise ValueError(f"document {document_id} does not exist")
    if not document.pdf:
        raise ValueError(f"document {document.number} has no PDF yet; nothing to resend")
    prefix = f"{SEND_DOCUMENT_JOB}:resend:{document_id}:"
    earlier = session.exec(
        select(sa.func.count()).select_from(Job).where(col(Job.dedupe_key).startswith(prefix))
    ).one()
    n = int(earlier) + 1
    job = submit(
        session,
        SEND_DOCUMENT_JOB,
        {"document_id": document_id, "purpose": f"resend:{n}"},
        dedupe_key=f"{prefix}{n}",
        max_attempts=MAX_ATTEMPTS,
    )
    audit(
        session,
        ResendAudit(
            action="document.resend",
            actor=actor,
            actor_kind=actor_kind,
            target_kind="document",
            target_id=str(document_id),
            reason=reason,
            data={
                "number": document.number,
                "purpose_key": purpose_key(document_id, f"resend:{n}"),
                "job_id": job.id,
            },
        ),
    )
    return job
