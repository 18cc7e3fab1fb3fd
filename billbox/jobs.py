"""Durable work: submit a job row, run it exactly to completion, sweep the stuck ones.

The database, not the broker, decides what is done. ``submit`` inserts a
:class:`~billbox.models.Job` in the caller's transaction; after that
transaction commits, the installed *enqueuer* sends the job id to the
broker (nothing is sent for a rolled-back transaction, and a job can never
start before its row exists). A worker calls :func:`run_job`, which
claims the row with a conditional UPDATE, runs the handler in the same
transaction that marks the row done, and on error schedules a retry with
backoff or marks it failed. :func:`sweep` re-sends rows that are queued
but were never picked up, or whose lease ran out because a worker died.

Handlers must be idempotent with respect to anything outside the database
(an email sent, a gateway refund): a worker can die after the external
effect and before the commit.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from billbox.context import bound, current_correlation_id, new_correlation_id
from billbox.errors import PermanentError, UnknownJobKind
from billbox.logs import get_logger
from billbox.models import Job, JobState, utcnow

log = get_logger("billbox.jobs")

_PENDING_KEY = "billbox_new_jobs"


class Enqueuer(Protocol):
    """Sends job ids to the queue; ``delay`` in seconds. Must not touch the database."""

    def __call__(self, job_ids: Sequence[int], delay: float = 0.0) -> None: ...


@dataclass(frozen=True)
class JobContext:
    """What a handler gets besides the session: the row's id, kind, payload, attempt."""

    job_id: int
    kind: str
    payload: Mapping[str, Any]
    attempt: int


Handler = Callable[[Session, JobContext], None]


@dataclass
class JobPolicy:
    """Lease and backoff; the lease must exceed the longest handler run."""

    lease: timedelta = timedelta(minutes=5)
    backoff_base: float = 2.0
    backoff_max: float = 3600.0

    def backoff(self, attempts: int) -> float:
        return float(min(self.backoff_max, self.backoff_base ** max(1, attempts)))


def submit(
    session: Session,
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    dedupe_key: str | None = None,
    delay: float = 0.0,
    max_attempts: int = 8,
) -> Job:
    """Add a job row to ``session``'s transaction; it is enqueued after commit.

    With ``dedupe_key``, a second submit of the same key returns the
    existing row instead of creating another.
    """
    if dedupe_key is not None:
        existing = session.exec(select(Job).where(Job.dedupe_key == dedupe_key)).first()
        if existing is not None:
            return existing
    now = utcnow()
    job = Job(
        kind=kind,
        payload=dict(payload or {}),
        dedupe_key=dedupe_key,
        state=JobState.QUEUED,
        max_attempts=max_attempts,
        run_after=now + timedelta(seconds=delay),
        enqueued_at=now,
        correlation_id=current_correlation_id(),
    )
    session.add(job)
    session.flush()
    assert job.id is not None
    enqueue_after_commit(session, [job.id], delay)
    return job


def submit_many(
    session: Session,
    kind: str,
    payloads: Sequence[Mapping[str, Any]],
    *,
    delay: float = 0.0,
    max_attempts: int = 8,
) -> list[int]:
    """Add one job row per payload with one multi-row ``INSERT … RETURNING id``.

    The same contract as :func:`submit` (rows join the caller's transaction,
    ids are enqueued after its commit, nothing for a rollback) without ORM
    objects or a flush per row: the hot path of inbound mail, where the ORM's
    unit of work cost more than the statement. No ``dedupe_key``. Returns the
    ids in the order of ``payloads``.
    """
    if not payloads:
        return []
    values = new_job_values(kind, delay=delay, max_attempts=max_attempts)
    rows = [dict(values, payload=dict(payload)) for payload in payloads]
    ids = insert_returning_ids(session, _JOBS, rows)
    enqueue_after_commit(session, ids, delay)
    return ids


def new_job_values(kind: str, *, delay: float = 0.0, max_attempts: int = 8) -> dict[str, Any]:
    """Every column of a new queued job row except ``payload``.

    For :func:`submit_many`, and for a caller that inserts its job rows inside
    its own statement (the webhook store's one-statement group on
    PostgreSQL), which then passes the new ids to :func:`enqueue_after_commit`.
    """
    now = utcnow()
    return {
        "kind": kind,
        "dedupe_key": None,
        "state": JobState.QUEUED,
        "attempts": 0,
        "max_attempts": max_attempts,
        "run_after": now + timedelta(seconds=delay),
        "enqueued_at": now,
        "correlation_id": current_correlation_id(),
        "created_at": now,
    }


def enqueue_after_commit(session: Session, job_ids: Iterable[int], delay: float = 0.0) -> None:
    """Have the installed enqueuer send ``job_ids`` once ``session`` commits (nothing on rollback).

    For job rows the caller inserted itself (see :func:`new_job_values`).
    """
    session.info.setdefault(_PENDING_KEY, []).extend((job_id, delay) for job_id in job_ids)


def insert_returning_ids(
    session: Session, table: sa.Table, rows: list[dict[str, Any]]
) -> list[int]:
    """Insert ``rows`` into ``table`` (integer ``id`` key) in few statements; ids in row order.

    SQLAlchemy's "insertmanyvalues" turns this into multi-row
    ``INSERT … VALUES (…), (…) RETURNING id`` batches. On PostgreSQL
    ``sort_by_parameter_order`` keeps the batches (a sentinel column orders
    the RETURNING rows). On SQLite it would fall back to one statement per
    row, so there we take the unordered batch form and sort the ids: SQLite
    inserts a ``VALUES`` list in order and gives each row ``max(rowid) + 1``,
    and our transaction holds the write lock (``BEGIN IMMEDIATE``), so the ids
    of one call ascend in row order.
    """
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        result = connection.execute(_insert_returning_id(table, ordered=False), rows)
        return sorted(int(row[0]) for row in result)
    result = connection.execute(_insert_returning_id(table, ordered=True), rows)
    return [int(row[0]) for row in result]


@functools.cache
def _insert_returning_id(table: sa.Table, *, ordered: bool) -> sa.Insert:
    """One statement object per table: its cache key is computed once, not per call."""
    return sa.insert(table).returning(table.c.id, sort_by_parameter_order=ordered)


def install_enqueuer(factory: sessionmaker[Session], enqueuer: Enqueuer) -> None:
    """Send the ids of jobs submitted in a transaction once it commits."""

    def after_commit(session: Session) -> None:
        pending: list[tuple[int, float]] = session.info.pop(_PENDING_KEY, [])
        if not pending:
            return
        by_delay: dict[float, list[int]] = {}
        for job_id, delay in pending:
            by_delay.setdefault(delay, []).append(job_id)
        for delay, ids in by_delay.items():
            try:
                enqueuer(ids, delay)
            except Exception as exc:  # the sweep will send them; never fail the commit
                log.warning("enqueue_failed", job_ids=ids, error=str(exc))

    def after_rollback(session: Session) -> None:
        session.info.pop(_PENDING_KEY, None)

    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_soft_rollback", lambda s, _t: after_rollback(s))


@dataclass
class JobResult:
    """What :func:`run_job` did, for the caller's log and for tests."""

    job_id: int
    outcome: str  # "done", "retry", "failed", "skipped"
    retry_in: float | None = None
    error: str | None = None


def run_job(
    factory: sessionmaker[Session],
    job_id: int,
    handlers: Mapping[str, Handler],
    policy: JobPolicy | None = None,
) -> JobResult:
    """Claim job ``job_id``, run its handler, and record the outcome.

    Safe to call twice for the same id at once: only one claim succeeds.
    """
    policy = policy or JobPolicy()
    claimed = _claim(factory, job_id, policy)
    if claimed is None:
        return JobResult(job_id, "skipped")
    kind, payload, attempts, max_attempts, correlation_id = claimed
    with bound(correlation_id=correlation_id or new_correlation_id(), job_id=job_id):
        return _execute(factory, job_id, handlers, policy, kind, payload, attempts, max_attempts)


def _execute(
    factory: sessionmaker[Session],
    job_id: int,
    handlers: Mapping[str, Handler],
    policy: JobPolicy,
    kind: str,
    payload: dict[str, Any],
    attempts: int,
    max_attempts: int,
) -> JobResult:
    context = JobContext(job_id=job_id, kind=kind, payload=payload, attempt=attempts)
    try:
        handler = handlers.get(kind)
        if handler is None:
            raise UnknownJobKind(f"no handler registered for job kind {kind!r}")
        with factory() as session:
            handler(session, context)
            _finish(session, job_id, JobState.DONE, None)
            session.commit()
        log.info("job_done", job_id=job_id, kind=kind, attempt=attempts)
        return JobResult(job_id, "done")
    except Exception as exc:
        error = f"{exc.__class__.__name__}: {exc}"
        detail = traceback.format_exc(limit=8)
        permanent = isinstance(exc, PermanentError) or attempts >= max_attempts
        with factory() as session:
            if permanent:
                _finish(session, job_id, JobState.FAILED, detail)
                session.commit()
                log.error("job_failed", job_id=job_id, kind=kind, attempt=attempts, error=error)
                return JobResult(job_id, "failed", error=error)
            # A gateway's or helpdesk's Retry-After (``retry_after`` on its error) wins
            # over our backoff when it asks for longer.
            asked = getattr(exc, "retry_after", None)
            retry_in = max(policy.backoff(attempts), float(asked) if asked else 0.0)
            now = utcnow()
            session.execute(
                sa.update(Job)
                .where(col(Job.id) == job_id)
                .values(
                    state=JobState.QUEUED,
                    run_after=now + timedelta(seconds=retry_in),
                    enqueued_at=now,
                    lease_until=None,
                    last_error=detail,
                )
            )
            session.commit()
        log.warning(
            "job_retry", job_id=job_id, kind=kind, attempt=attempts, error=error, retry_in=retry_in
        )
        return JobResult(job_id, "retry", retry_in=retry_in, error=error)


_JOBS: sa.Table = Job.__table__  # type: ignore[attr-defined]


def _claim(
    factory: sessionmaker[Session], job_id: int, policy: JobPolicy
) -> tuple[str, dict[str, Any], int, int, str | None] | None:
    """Take the row with one ``UPDATE … RETURNING``; None if someone else has it or it is done.

    Core statements on the session's connection: the ORM's bulk-update
    bookkeeping cost more than the statement itself on this hot path.
    """
    now = utcnow()
    c = _JOBS.c
    claimable = sa.or_(
        sa.and_(c.state == JobState.QUEUED, c.run_after <= now),
        sa.and_(c.state == JobState.RUNNING, c.lease_until < now),
    )
    statement = (
        sa.update(_JOBS)
        .where(c.id == job_id, claimable)
        .values(state=JobState.RUNNING, attempts=c.attempts + 1, lease_until=now + policy.lease)
        .returning(c.kind, c.payload, c.attempts, c.max_attempts, c.correlation_id)
    )
    with factory() as session:
        row = session.connection().execute(statement).first()
        if row is None:
            session.rollback()
            return None
        session.commit()
    return str(row[0]), dict(row[1] or {}), int(row[2]), int(row[3]), row[4]


def _finish(session: Session, job_id: int, state: JobState, error: str | None) -> None:
    values: dict[str, Any] = {"state": state, "finished_at": utcnow(), "lease_until": None}
    if error is not None:
        values["last_error"] = error
    session.connection().execute(sa.update(_JOBS).where(_JOBS.c.id == job_id).values(**values))


@dataclass
class SweepResult:
    resent: list[int] = field(default_factory=list)


def sweep(
    factory: sessionmaker[Session],
    enqueuer: Enqueuer,
    *,
    stale_after: timedelta,
    now: datetime | None = None,
    limit: int = 1000,
) -> SweepResult:
    """Re-send jobs whose queue message was lost or whose worker died.

    A queued row whose last send is older than ``stale_after`` and whose
    ``run_after`` has come, or a running row whose lease has expired, is
    sent again. Sending twice is harmless: only one claim succeeds.
    """
    now = now or utcnow()
    stuck = sa.or_(
        sa.and_(
            col(Job.state) == JobState.QUEUED,
            col(Job.run_after) <= now,
            sa.or_(col(Job.enqueued_at).is_(None), col(Job.enqueued_at) < now - stale_after),
        ),
        sa.and_(col(Job.state) == JobState.RUNNING, col(Job.lease_until) < now),
    )
    with factory() as session:
        ids = [
            int(i)
            for i in session.exec(
                select(Job.id).where(stuck).order_by(col(Job.id)).limit(limit)
            ).all()
            if i is not None
        ]
        if ids:
            session.execute(sa.update(Job).where(col(Job.id).in_(ids)).values(enqueued_at=now))
        session.commit()
    if ids:
        enqueuer(ids, 0.0)
        log.info("sweep_resent", count=len(ids), first_job_id=ids[0])
    return SweepResult(resent=ids)


def counts_by_state(session: Session) -> dict[str, dict[str, int]]:
    """``{kind: {state: n}}`` for ``billbox status``."""
    rows = session.execute(
        sa.select(col(Job.kind), col(Job.state), sa.func.count()).group_by(
            col(Job.kind), col(Job.state)
        )
    ).all()
    out: dict[str, dict[str, int]] = {}
    for kind, state, n in rows:
        out.setdefault(str(kind), {})[str(getattr(state, "value", state))] = int(n)
    return out


def ids_of(jobs: Iterable[Job]) -> list[int]:
    return [j.id for j in jobs if j.id is not None]


NOOP_JOB = "system.noop"


def noop(session: Session, job: JobContext) -> None:
    """A job that does nothing but wait ``sleep_ms`` (at most 1 s), if asked.

    Used by ``bench/jobs.py`` and the durability tests, where a job must
    still be running when its worker is killed.
    """
    sleep_ms = job.payload.get("sleep_ms", 0)
    if isinstance(sleep_ms, int) and sleep_ms > 0:
        import time

        time.sleep(min(sleep_ms, 1000) / 1000)
