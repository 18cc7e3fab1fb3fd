"""The append-only audit log: who did what, to what, why, each row chained to the last.

Every row stores ``prev_hash`` (the previous row's ``hash``) and its own
``hash`` = SHA-256 over ``prev_hash`` followed by a canonical JSON of the
row's fields. Editing or deleting a row breaks the chain at that row (or at
the next one), which :func:`verify_chain` finds; ``billbox audit verify``
runs it.

The chain must never fork: two writers that both read the same last row
would both chain to it (the unique ``hash`` constraint would then fail one
of them, losing the audit event *and* its caller's work). Writers are
therefore serialised for the rest of their transaction: on PostgreSQL with
``pg_advisory_xact_lock``; SQLite already allows a single writer at a time
because every Billbox transaction begins ``IMMEDIATE`` (``billbox/db.py``).
The lock is held until commit, so keep audited transactions short.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from billbox.models import ActorKind, AuditEvent, utcnow

#: ``prev_hash`` of the first row.
GENESIS = "0" * 64

#: Arbitrary constant naming the audit chain's PostgreSQL advisory lock.
_LOCK_KEY = 0x6A0D17  # "audit"

_LIMITS = {"actor": 254, "action": 64, "target_kind": 32, "target_id": 64}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _plain(data: Mapping[str, object] | None) -> dict[str, object]:
    """``data`` as the JSON column will give it back, so the hash survives a round trip."""
    loaded = json.loads(_canonical(dict(data or {})))
    assert isinstance(loaded, dict)
    return loaded


def compute_hash(
    prev_hash: str,
    *,
    at: datetime,
    actor_kind: str,
    actor: str,
    action: str,
    target_kind: str,
    target_id: str,
    reason: str,
    data: Mapping[str, object],
) -> str:
    """SHA-256 hex of ``prev_hash`` + the canonical JSON of one row's fields."""
    fields = {
        "at": at.isoformat(),
        "actor_kind": actor_kind,
        "actor": actor,
        "action": action,
        "target_kind": target_kind,
        "target_id": target_id,
        "reason": reason,
        "data": dict(data),
    }
    return hashlib.sha256((prev_hash + _canonical(fields)).encode("utf-8")).hexdigest()


def _row_hash(row: AuditEvent) -> str:
    return compute_hash(
        row.prev_hash,
        at=row.at,
        actor_kind=ActorKind(row.actor_kind).value,
        actor=row.actor,
        action=row.action,
        target_kind=row.target_kind,
        target_id=row.target_id,
        reason=row.reason,
        data=row.data,
    )


def _lock_chain(session: Session) -> None:
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


def record(
    session: Session,
    *,
    actor_kind: ActorKind,
    actor: str,
    action: str,
    target_kind: str = "",
    target_id: str = "",
    reason: str = "",
    data: Mapping[str, object] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction; it is kept only if that commits.

    Writing the event in the same transaction as the change it describes
    means there is never a change without its audit row, nor an audit row
    for a change that was rolled back.
    """
    _lock_chain(session)
    last = session.exec(
        select(AuditEvent.hash).order_by(col(AuditEvent.id).desc()).limit(1)
    ).first()
    prev_hash = last or GENESIS
    at = utcnow()
    actor = actor[: _LIMITS["actor"]]
    action = action[: _LIMITS["action"]]
    target_kind = target_kind[: _LIMITS["target_kind"]]
    target_id = target_id[: _LIMITS["target_id"]]
    plain = _plain(data)
    digest = compute_hash(
        prev_hash,
        at=at,
        actor_kind=actor_kind.value,
        actor=actor,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        reason=reason,
        data=plain,
    )
    row = AuditEvent(
        at=at,
        actor_kind=actor_kind,
        actor=actor,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        reason=reason,
        data=plain,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(row)
    session.flush()
    return row


def verify_chain(session: Session, *, batch: int = 1000) -> int | None:
    """The id of the first row whose hash or link does not check out, or None if all do.

    Reads the log in id order, ``batch`` rows at a time, so a long log does
    not have to fit in memory.
    """
    prev_hash = GENESIS
    after = 0
    while True:
        rows = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.id) > after)
            .order_by(col(AuditEvent.id))
            .limit(batch)
        ).all()
        if not rows:
            return None
        for row in rows:
            assert row.id is not None
            if row.prev_hash != prev_hash or _row_hash(row) != row.hash:
                return row.id
            prev_hash = row.hash
            after = row.id
            session.expunge(row)
