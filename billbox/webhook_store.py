"""Store verified webhook deliveries with group commit: one transaction for all waiting.

Why: on the request path a delivery must be on disk before we answer 200,
and the ORM path (a ``SELECT`` for a redelivery, a ``WebhookEvent`` and a
``Job`` object, two flushes, one commit per event) cost ~3 ms of Python per
event, which held ``billbox web`` to 6 to 12 % of a no-op endpoint on the same
server (``bench/webhooks.py``). Here a delivery is one row in a multi-row
``INSERT … ON CONFLICT DO NOTHING RETURNING``, and the request threads of a
process share commits:

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
machine. On PostgreSQL a group is one statement on a kept autocommit
connection (:class:`_LeaderConnections`, :func:`_insert_one_statement`):
events and jobs in one ``WITH``, one round trip, no ``BEGIN``/``COMMIT``
or pool pre-ping. Either way the job ids of a group go to the broker as
one message (``workers.app.WorkerApp.enqueue``), and groups are as large as
the threads waiting, hence 16 request threads (``web/server.py``).

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
import json
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
from billbox.jobs import enqueue_after_commit, new_job_values, submit_many
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
        "account_id", "answer", "body", "error", "gateway", "headers", "remote_addr",
        "verified", "wake",
    )  # fmt: skip

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
        #: Set once: when answered, or when this delivery's thread is to lead the next group.
        self.wake = threading.Event()

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


class _LeaderConnections:
    """PostgreSQL: autocommit connections kept for the leaders of one process, no pre-ping.

    Why: a group is then one statement (:func:`_insert_one_statement`) that
    is its own transaction, one round trip from the leader to a commit,
    instead of five (the pool's pre-ping, ``BEGIN``, two inserts,
    ``COMMIT``), each of which let the other request threads take the GIL
    while the group waited. Usually one connection: a second is opened only
    when the next leader starts while the last one still sends its job ids
    (it handed on the lead at its commit).

    A connection that broke while idle (PostgreSQL restarted) fails the next
    group; it is dropped, and :func:`_store` tries the group once more on a
    new one. That is safe even if the first try committed: its events then
    answer as redeliveries (200, nothing stored twice) and their jobs, not
    enqueued, are re-sent by the sweep.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = weakref.ref(engine)  # held by the engine's entry: do not keep it alive
        self._idle: list[sa.Connection] = []
        self._pid = os.getpid()

    def take(self) -> sa.Connection:
        if self._pid != os.getpid():  # never use a connection from before a fork
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            engine = self._engine()
            assert engine is not None  # the caller's factory holds it
            return engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def give_back(self, connection: sa.Connection) -> None:
        self._idle.append(connection)

    def drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            self.drop(connection)

    def drop(self, connection: sa.Connection) -> None:
        try:
            connection.invalidate()
        except Exception as exc:  # already gone: nothing to give back
            log.debug("webhook_connection_drop", error=str(exc))


_connections: weakref.WeakKeyDictionary[sa.Engine, _LeaderConnections] = weakref.WeakKeyDictionary()


def _leader_connections(factory: sessionmaker[Session]) -> _LeaderConnections | None:
    """The engine's kept connections (one set per engine, however many factories use it)."""
    bind = factory.kw.get("bind") if isinstance(factory, sessionmaker) else None
    if not isinstance(bind, sa.Engine) or bind.dialect.name != "postgresql":
        return None
    connections = _connections.get(bind)
    if connections is None:
        connections = _connections[bind] = _LeaderConnections(bind)
    return connections


class _Group:
    """The deliveries waiting in one process for one session factory, and who leads."""

    def __init__(
        self,
        writer_lock: _WriterLock | None = None,
        connections: _LeaderConnections | None = None,
    ) -> None:
        self.writer_lock = writer_lock
        self.connections = connections
        self.lock = threading.Lock()
        #: Deliveries not yet taken by a leader.
        self.waiting: list[Delivery] = []
        #: True from when a thread is to lead until the lead is handed to nobody.
        self.leading = False
        #: The batch being committed, standing for its leader; None between leaders.
        self.batch: list[Delivery] | None = None


_groups: weakref.WeakKeyDictionary[sessionmaker[Session], _Group] = weakref.WeakKeyDictionary()
_groups_lock = threading.Lock()


def _group_for(factory: sessionmaker[Session]) -> _Group:
    with _groups_lock:
        group = _groups.get(factory)
        if group is None:
            group = _groups[factory] = _Group(_writer_lock(factory), _leader_connections(factory))
            if isinstance(factory, sessionmaker):
                # First after commit, ahead of the job enqueuer (install_enqueuer).
                event.listen(factory, "after_commit", _answer_group, insert=True)
        return group


def store_delivery(factory: sessionmaker[Session], delivery: Delivery) -> Stored:
    """Block until ``delivery`` is committed (in whichever group), and return its answer.

    Each thread sleeps on its own event and is woken once: answered, or
    handed the lead. (A shared condition woke every waiting thread at each
    commit, most only to find it was not their turn: up to 15 futex wake-ups
    and GIL turns per commit with 16 request threads.)
    """
    group = _group_for(factory)
    with group.lock:
        group.waiting.append(delivery)
        lead = not group.leading
        group.leading = True
    if not lead:
        delivery.wake.wait()
    if not delivery.done:  # we lead: take every delivery waiting now, ours included
        with group.lock:
            batch, group.waiting = group.waiting, []
            group.batch = batch
        try:
            _commit(factory, group, batch)
        finally:
            _hand_on(group, batch)
    if delivery.error is not None:
        raise delivery.error
    assert delivery.answer is not None
    return delivery.answer


def _hand_on(group: _Group, batch: list[Delivery]) -> None:
    """End ``batch``'s lead (once): the first delivery waiting leads next, or nobody leads."""
    with group.lock:
        if group.batch is not batch:
            return
        group.batch = None
        following = group.waiting[0] if group.waiting else None
        group.leading = following is not None
    if following is not None:
        following.wake.set()


def _commit(factory: sessionmaker[Session], group: _Group, batch: list[Delivery]) -> None:
    try:
        answers = _store(factory, group, batch)
    except BaseException as exc:  # every delivery of the group answers 500; the gateway retries
        log.error("webhook_group_failed", size=len(batch), error=f"{exc.__class__.__name__}: {exc}")
        for delivery in batch:
            if not delivery.done:
                delivery.error = exc
                delivery.wake.set()
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


def _store(factory: sessionmaker[Session], group: _Group, batch: list[Delivery]) -> list[Stored]:
    """Commit the batch and answer it; on PostgreSQL retry once on a fresh connection."""
    connections = group.connections
    if connections is None:
        if group.writer_lock is not None:
            group.writer_lock.acquire()
        with factory() as session:
            return _transact(session, group, batch)
    for attempt in (1, 2):
        connection = connections.take()
        try:
            with factory(bind=connection) as session:
                answers = _transact(session, group, batch)
        except sa.exc.DBAPIError as exc:
            connections.drop(connection)
            # A kept connection the server ended ("terminating connection due to
            # administrator command" after a restart or an idle kill) is an
            # OperationalError that SQLAlchemy does not always flag as invalidated.
            lost = exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError)
            if attempt == 2 or not lost:
                raise
            connections.drop_idle()  # a restart ended the other kept ones too: retry on a new one
            continue
        except BaseException:
            connections.drop(connection)
            raise
        connections.give_back(connection)
        return answers
    raise AssertionError("unreachable")


def _transact(session: Session, group: _Group, batch: list[Delivery]) -> list[Stored]:
    answers = _insert(session, batch)
    session.info[_GROUP_KEY] = (group, batch, answers)
    session.commit()
    if session.info.pop(_GROUP_KEY, None) is not None:  # no listener ran
        _answer(group, batch, answers)
    return answers


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
    _hand_on(group, batch)
    for delivery, answer in zip(batch, answers, strict=True):
        delivery.answer = answer
        delivery.wake.set()


def _insert(session: Session, batch: list[Delivery]) -> list[Stored]:
    """Insert new events and their jobs; answers in batch order."""
    if session.connection().dialect.name == "postgresql":
        return _insert_one_statement(session, batch)
    return _insert_two_statements(session, batch)


def _insert_two_statements(session: Session, batch: list[Delivery]) -> list[Stored]:
    """SQLite: the events, then their jobs (SQLite has no ``INSERT`` inside ``WITH``)."""
    from billbox.webhooks import WEBHOOK_JOB, WEBHOOK_JOB_ATTEMPTS

    connection = session.connection()
    result = connection.execute(_insert_new(connection.dialect.name), _event_rows(batch))
    new_ids = {(gateway, event_id): int(row_id) for row_id, gateway, event_id in result}
    answers = _answers(session, batch, new_ids)
    stored_ids = [answer.event_row_id for answer in answers if answer.stored]
    submit_many(
        session,
        WEBHOOK_JOB,
        [{"webhook_event_id": row_id} for row_id in stored_ids],
        max_attempts=WEBHOOK_JOB_ATTEMPTS,
    )
    return answers


#: Events and their jobs in one statement: the same text for any group size (arrays,
#: one element per delivery), so psycopg prepares it once per connection.
_GROUP_SQL = """
WITH new AS (
    INSERT INTO webhook_event
        (gateway, account_id, event_id, event_type, status, headers, body, remote_addr,
         received_at)
    SELECT d.gateway, d.account_id, d.event_id, d.event_type, %(status)s, d.headers::json,
           d.body, d.remote_addr, %(now)s
    FROM unnest(%(gateway)b::text[], %(account_id)b::int[], %(event_id)b::text[],
                %(event_type)b::text[], %(headers)b::text[], %(body)b::bytea[],
                %(remote_addr)b::text[])
         AS d(gateway, account_id, event_id, event_type, headers, body, remote_addr)
    ON CONFLICT (gateway, event_id) DO NOTHING
    RETURNING id, gateway, event_id
), jobs AS (
    INSERT INTO job
        (kind, payload, dedupe_key, state, attempts, max_attempts, run_after, enqueued_at,
         correlation_id, created_at)
    SELECT %(kind)s, json_build_object('webhook_event_id', new.id), %(dedupe_key)s, %(state)s,
           %(attempts)s, %(max_attempts)s, %(run_after)s, %(enqueued_at)s,
           %(correlation_id)s, %(created_at)s
    FROM new
    RETURNING id
)
SELECT id, gateway, event_id FROM new
UNION ALL SELECT id, NULL, NULL FROM jobs
"""


def _insert_one_statement(session: Session, batch: list[Delivery]) -> list[Stored]:
    """PostgreSQL: the events and their jobs in one statement, one round trip.

    ``WITH new AS (INSERT … ON CONFLICT DO NOTHING RETURNING …), jobs AS
    (INSERT INTO job … SELECT … FROM new RETURNING id)``, answering the new
    ids of both (a job's row has no gateway). On the leader's autocommit
    connection the statement is the whole transaction: events and jobs
    commit together or not at all. It is SQL text, not a Core construct: a
    Core ``INSERT`` of n rows inside a CTE was compiled anew for every
    group (6.6 ms of CPU per group, more than it saved).
    """
    from billbox.webhooks import WEBHOOK_JOB, WEBHOOK_JOB_ATTEMPTS

    job = new_job_values(WEBHOOK_JOB, max_attempts=WEBHOOK_JOB_ATTEMPTS)
    params: dict[str, Any] = {
        **job,
        "state": job["state"].value,
        "status": WebhookStatus.RECEIVED.value,
        "now": job["created_at"],
        "gateway": [d.gateway for d in batch],
        "account_id": [d.account_id for d in batch],
        "event_id": [d.verified.event_id for d in batch],
        "event_type": [d.verified.event_type for d in batch],
        "headers": [json.dumps(d.headers) for d in batch],
        "body": [d.body for d in batch],
        "remote_addr": [(d.remote_addr or None) and d.remote_addr[:64] for d in batch],
    }
    new_ids: dict[tuple[str, str], int] = {}
    job_ids: list[int] = []
    for row_id, gateway, event_id in session.connection().exec_driver_sql(_GROUP_SQL, params):
        if gateway is None:
            job_ids.append(int(row_id))
        else:
            new_ids[(gateway, event_id)] = int(row_id)
    enqueue_after_commit(session, job_ids)
    return _answers(session, batch, new_ids)


def _event_rows(batch: list[Delivery]) -> list[dict[str, Any]]:
    now = utcnow()
    return [
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


def _answers(
    session: Session, batch: list[Delivery], new_ids: dict[tuple[str, str], int]
) -> list[Stored]:
    """Each delivery's answer: new (the first of its key) or a redelivery pointing at the row."""
    keys = [(d.gateway, d.verified.event_id) for d in batch]
    answers: list[Stored] = []
    first_seen: set[tuple[str, str]] = set()
    for key in keys:
        if key in new_ids and key not in first_seen:
            first_seen.add(key)
            answers.append(Stored(True, new_ids[key]))
        else:
            answers.append(Stored(False, new_ids.get(key)))
    missing = {
        key for key, answer in zip(keys, answers, strict=True) if answer.event_row_id is None
    }
    if missing:
        existing = _existing_ids(session, missing)
        answers = [
            Stored(False, existing.get(key)) if answer.event_row_id is None else answer
            for key, answer in zip(keys, answers, strict=True)
        ]
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
