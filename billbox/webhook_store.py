"""Store verified webhook deliveries with group commit: one transaction for all waiting.

Why: on the request path a delivery must be on disk before we answer 200,
and the ORM path (a ``SELECT`` for a redelivery, a ``WebhookEvent`` and a
``Job`` object, two flushes, one commit per event) cost ~3 ms of Python per
event, which held ``billbox web`` to 6 to 12 % of a no-op endpoint on the same
server (``bench/webhooks.py``). Here a delivery is one Core row in a
multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING``, and the request
threads of a process share commits:

- the first thread to arrive becomes the *leader*: it takes every delivery
  waiting at that moment (its own included), inserts them and their
  ``webhook.process`` jobs in one transaction and commits once;
- threads that arrive meanwhile wait; when the commit returns, each is
  answered (an ``after_commit`` listener placed ahead of the job enqueuer's,
  so they do not also wait for the broker), and one of those still waiting
  leads the next group at once, while the old leader sends its group's job
  ids to the broker.

On SQLite the leaders of the web processes also take an ``flock`` beside
the database file for their transaction (:class:`_WriterLock`), so a process
waiting to write wakes the moment the other commits instead of polling with
SQLite's busy-handler sleeps: two processes of 4 threads stored 380/s with a
156 ms p99 without it and 550 to 650/s with a 40 ms p99 with it, on a loaded
machine.

Nothing is answered before its own commit, so durability is what it was;
under no load a group is one delivery. No background thread is involved,
so nothing survives a ``fork`` or needs stopping. If the transaction
fails, every delivery of the group gets the exception (the request answers
500 and the gateway retries): nothing is half-stored.

A redelivered event id (already stored, or twice in one group) hits the
(gateway, event_id) unique constraint through ``ON CONFLICT DO NOTHING``
and is answered ``stored=False`` with the existing row's id.
"""

from __future__ import annotations

import fcntl
import functools
import os
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.gateways.base import VerifiedEvent
from billbox.jobs import submit_many
from billbox.logs import get_logger
from billbox.models import WebhookEvent, WebhookStatus, utcnow

log = get_logger("billbox.webhooks")

_EVENTS: sa.Table = WebhookEvent.__table__  # type: ignore[attr-defined]
_GROUP_KEY = "billbox_webhook_group"


@dataclass(frozen=True)
class Stored:
    """The answer for one delivery: its row id, and False for a redelivery."""

    stored: bool
    event_row_id: int | None


class Delivery:
    """One verified delivery waiting for its group's commit."""

    __slots__ = (
        "account_id",
        "answer",
        "body",
        "error",
        "gateway",
        "headers",
        "remote_addr",
        "verified",
    )

    def __init__(
        self,
        gateway: str,
        verified: VerifiedEvent,
        headers: Mapping[str, str],
        body: bytes,
        remote_addr: str | None,
        account_id: int | None = None,
    ) -> None:
        self.gateway = gateway
        self.account_id = account_id
        self.verified = verified
        self.headers = dict(headers)
        self.body = body
        self.remote_addr = remote_addr
        self.answer: Stored | None = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.answer is not None or self.error is not None


class _WriterLock:
    """An ``flock`` beside a SQLite file, taken by a group's leader from ``BEGIN`` to commit.

    Why: ``billbox web`` runs several processes, and SQLite lets one write at a
    time. Left to SQLite, a process that finds the database locked polls with
    sleeps of 1, 2, 5, 10, … ms (its busy handler) — wasted time and the
    p99 of the request path. A blocking ``flock`` wakes the next process the
    moment the lock is released, and while a process waits its deliveries
    gather into a bigger group. Other writers (workers) keep relying on the
    busy timeout; this only orders the web processes among themselves.
    The file descriptor is opened per process (``flock`` locks belong to the
    open file, which a fork would share).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0
        self._held = False

    def acquire(self) -> None:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._held = True

    def release(self) -> None:
        """Idempotent: called at commit (by the listener) and again on the way out."""
        if self._held and self._fd is not None:
            self._held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _writer_lock(factory: sessionmaker[Session]) -> _WriterLock | None:
    bind = factory.kw.get("bind") if isinstance(factory, sessionmaker) else None
    url = getattr(bind, "url", None)
    if url is None or url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return _WriterLock(f"{database}.webhook-writer.lock")


class _Group:
    """The deliveries waiting in one process for one session factory, and who leads."""

    def __init__(self, writer_lock: _WriterLock | None = None) -> None:
        self.writer_lock = writer_lock
        self.cond = threading.Condition()
        self.waiting: list[Delivery] = []
        #: The batch being committed, standing for its leader; None when nobody leads.
        self.leader: list[Delivery] | None = None


_groups: weakref.WeakKeyDictionary[sessionmaker[Session], _Group] = weakref.WeakKeyDictionary()
_groups_lock = threading.Lock()


def _group_for(factory: sessionmaker[Session]) -> _Group:
    with _groups_lock:
        group = _groups.get(factory)
        if group is None:
            group = _groups[factory] = _Group(_writer_lock(factory))
            if isinstance(factory, sessionmaker):
                # First after commit, ahead of the job enqueuer (install_enqueuer).
                event.listen(factory, "after_commit", _answer_group, insert=True)
        return group


def store_delivery(factory: sessionmaker[Session], delivery: Delivery) -> Stored:
    """Block until ``delivery`` is committed (in whichever group), and return its answer."""
    group = _group_for(factory)
    with group.cond:
        group.waiting.append(delivery)
        while not delivery.done and group.leader is not None:
            group.cond.wait()
        if not delivery.done:
            batch, group.waiting = group.waiting, []
            group.leader = batch
        else:
            batch = []
    if batch:
        try:
            _commit(factory, group, batch)
        finally:
            _step_down(group, batch)
    if delivery.error is not None:
        raise delivery.error
    assert delivery.answer is not None
    return delivery.answer


def _step_down(group: _Group, batch: list[Delivery]) -> None:
    """End ``batch``'s leadership (if it still leads) and wake the waiting threads."""
    with group.cond:
        if group.leader is batch:
            group.leader = None
        group.cond.notify_all()


def _commit(factory: sessionmaker[Session], group: _Group, batch: list[Delivery]) -> None:
    try:
        if group.writer_lock is not None:
            group.writer_lock.acquire()
        with factory() as session:
            answers = _insert(session, batch)
            session.info[_GROUP_KEY] = (group, batch, answers)
            session.commit()
            if session.info.pop(_GROUP_KEY, None) is not None:  # no listener ran
                _answer(group, batch, answers)
    except BaseException as exc:  # every delivery of the group answers 500; the gateway retries
        log.error("webhook_group_failed", size=len(batch), error=f"{exc.__class__.__name__}: {exc}")
        with group.cond:
            for delivery in batch:
                if not delivery.done:
                    delivery.error = exc
            group.cond.notify_all()
        if not isinstance(exc, Exception):  # a worker timeout or exit: let it go on
            raise
        return
    finally:
        if group.writer_lock is not None:
            group.writer_lock.release()
    for delivery, answer in zip(batch, answers, strict=True):
        if answer.stored:
            log.info(
                "webhook_stored",
                gateway=delivery.gateway,
                event_id=delivery.verified.event_id,
                event_type=delivery.verified.event_type,
                webhook_event_id=answer.event_row_id,
            )
        else:
            event_id = delivery.verified.event_id
            log.info("webhook_replay", gateway=delivery.gateway, event_id=event_id)


def _answer_group(session: Session) -> None:
    """``after_commit``: the group is on disk; answer its waiting threads before the enqueue."""
    done = session.info.pop(_GROUP_KEY, None)
    if done is not None:
        _answer(*done)


def _answer(group: _Group, batch: list[Delivery], answers: list[Stored]) -> None:
    """Answer the batch and hand leadership on at once.

    The next group may begin its transaction while this thread still sends
    the committed jobs' ids to the broker (the enqueuer runs after us).
    """
    if group.writer_lock is not None:
        group.writer_lock.release()  # committed: the next process may write
    with group.cond:
        for delivery, answer in zip(batch, answers, strict=True):
            delivery.answer = answer
        if group.leader is batch:
            group.leader = None
        group.cond.notify_all()


def _insert(session: Session, batch: list[Delivery]) -> list[Stored]:
    """Insert new events and their jobs (two statements); answers in batch order."""
    from billbox.webhooks import WEBHOOK_JOB, WEBHOOK_JOB_ATTEMPTS

    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "gateway": d.gateway,
            "account_id": d.account_id,
            "event_id": d.verified.event_id,
            "event_type": d.verified.event_type,
            "status": WebhookStatus.RECEIVED,
            "headers": d.headers,
            "body": d.body,
            "remote_addr": (d.remote_addr or None) and d.remote_addr[:64],
            "error": None,
            "traceback": None,
            "received_at": now,
            "processed_at": None,
        }
        for d in batch
    ]
    connection = session.connection()
    result = connection.execute(_insert_new(connection.dialect.name), rows)
    new_ids = {(gateway, event_id): int(row_id) for row_id, gateway, event_id in result}
    keys = [(d.gateway, d.verified.event_id) for d in batch]
    answers: list[Stored] = []
    first_seen: set[tuple[str, str]] = set()
    for key in keys:
        if key in new_ids and key not in first_seen:
            first_seen.add(key)
            answers.append(Stored(True, new_ids[key]))
        else:
            answers.append(Stored(False, new_ids.get(key)))
    pairs = zip(keys, answers, strict=True)
    missing = {key for key, answer in pairs if answer.event_row_id is None}
    if missing:
        existing = _existing_ids(session, missing)
        answers = [
            Stored(False, existing.get(key)) if answer.event_row_id is None else answer
            for key, answer in zip(keys, answers, strict=True)
        ]
    stored_ids = [answer.event_row_id for answer in answers if answer.stored]
    submit_many(
        session,
        WEBHOOK_JOB,
        [{"webhook_event_id": row_id} for row_id in stored_ids],
        max_attempts=WEBHOOK_JOB_ATTEMPTS,
    )
    return answers


def _existing_ids(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    found: dict[tuple[str, str], int] = {}
    for gateway in {gateway for gateway, _ in keys}:
        event_ids = [event_id for g, event_id in keys if g == gateway]
        rows = session.connection().execute(
            sa.select(_EVENTS.c.id, _EVENTS.c.event_id).where(
                _EVENTS.c.gateway == gateway, _EVENTS.c.event_id.in_(event_ids)
            )
        )
        found.update({(gateway, event_id): int(row_id) for row_id, event_id in rows})
    return found


@functools.cache
def _insert_new(dialect: str) -> sa.Insert:
    """``INSERT … ON CONFLICT (gateway, event_id) DO NOTHING RETURNING``, built once per dialect."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_EVENTS).on_conflict_do_nothing(index_elements=["gateway", "event_id"])
    return statement.returning(_EVENTS.c.id, _EVENTS.c.gateway, _EVENTS.c.event_id)
