"""Group commit of webhook deliveries: shared transactions, one answer each, nothing half-stored.

The grouping is made deterministic by holding the first group's commit
(a ``before_commit`` listener on the real session factory) until the other
threads are waiting, instead of hoping that threads overlap.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import event
from sqlmodel import func, select

from billbox.gateways.base import VerifiedEvent
from billbox.models import Job, WebhookEvent, WebhookStatus
from billbox.webhook_store import _group_for
from billbox.webhooks import WEBHOOK_JOB, ReceiveResult, receive_webhook

BODY = b'{"id": "evt", "type": "charge.succeeded"}'


def deliver(factory, event_id: str) -> ReceiveResult:
    verified = VerifiedEvent(event_id, "charge.succeeded", datetime.now(UTC))
    return receive_webhook(
        factory, "stripe", verified, {"Stripe-Signature": "t=1,v1=x"}, BODY, "127.0.0.1"
    )


def wait_for_waiting(factory, count: int) -> None:
    group = _group_for(factory)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with group.lock:
            if len(group.waiting) >= count:
                return
        time.sleep(0.005)
    raise AssertionError(f"{count} deliveries never queued up")


def run_in_threads(factory, event_ids: list[str]) -> dict[str, ReceiveResult | BaseException]:
    results: dict[str, ReceiveResult | BaseException] = {}

    def one(event_id: str) -> None:
        try:
            results[event_id] = deliver(factory, event_id)
        except Exception as exc:
            results[event_id] = exc

    threads = [threading.Thread(target=one, args=(e,)) for e in event_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return results


def hold_first_commit_until(factory, waiting: int, commits: list[int]) -> None:
    """The first commit waits until ``waiting`` deliveries queue behind it; commits are counted."""

    def before_commit(session) -> None:
        commits.append(1)
        if len(commits) == 1:
            wait_for_waiting(factory, waiting)

    event.listen(factory, "before_commit", before_commit)


def test_deliveries_arriving_together_share_one_commit_and_each_gets_its_own_row(factory):
    """One leader commits alone; the five that queued meanwhile go in one second transaction."""
    deliver(factory, "evt_warm")  # the group and its listener exist before the race
    commits: list[int] = []
    hold_first_commit_until(factory, 5, commits)
    results = run_in_threads(factory, [f"evt_{n}" for n in range(6)])
    assert len(commits) == 2
    assert all(isinstance(r, ReceiveResult) and r.stored for r in results.values())
    row_ids = {r.event_row_id for r in results.values() if isinstance(r, ReceiveResult)}
    assert len(row_ids) == 6 and None not in row_ids
    with factory() as s:
        rows = s.exec(select(WebhookEvent)).all()
        jobs = s.exec(select(Job).where(Job.kind == WEBHOOK_JOB)).all()
    assert len(rows) == 7 and {r.status for r in rows} == {WebhookStatus.RECEIVED}
    assert sorted(int(str(j.payload["webhook_event_id"])) for j in jobs) == sorted(
        r.id for r in rows if r.id is not None
    )
    by_event = {r.event_id: r for r in rows}
    for event_id, result in results.items():
        assert isinstance(result, ReceiveResult)
        stored = by_event[event_id]
        assert stored.id == result.event_row_id
        assert stored.body == BODY and stored.headers == {"Stripe-Signature": "t=1,v1=x"}


def test_a_redelivery_in_the_same_group_or_of_a_stored_event_is_answered_as_a_duplicate(factory):
    """Same id twice in one group plus an id stored earlier: one row each, one job each."""
    first = deliver(factory, "evt_old")
    commits: list[int] = []
    hold_first_commit_until(factory, 3, commits)
    results = run_in_threads(factory, ["evt_lead", "evt_new", "evt_new", "evt_old"])
    assert len(commits) == 2
    with factory() as s:
        rows = {r.event_id: r.id for r in s.exec(select(WebhookEvent)).all()}
        jobs = s.exec(select(func.count()).select_from(Job)).one()
    assert set(rows) == {"evt_old", "evt_lead", "evt_new"} and jobs == 3
    old = results["evt_old"]
    assert isinstance(old, ReceiveResult) and not old.stored
    assert old.event_row_id == first.event_row_id == rows["evt_old"]


def test_when_a_group_fails_every_delivery_in_it_gets_the_error_and_nothing_is_stored(factory):
    """A group the database refuses answers each waiting delivery with the error; the next works.

    The failure is in the group's insert: on PostgreSQL that one statement is
    the transaction (autocommit), so nothing after it can undo it.
    """
    deliver(factory, "evt_warm")
    commits: list[int] = []
    engine = factory.kw["bind"]

    def before_commit(session) -> None:
        commits.append(1)
        if len(commits) == 1:
            wait_for_waiting(factory, 2)

    def before_cursor_execute(conn, cursor, statement, params, context, many) -> None:
        if len(commits) == 1 and "INSERT INTO webhook_event" in statement:
            raise RuntimeError("disk full")

    event.listen(factory, "before_commit", before_commit)
    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    results = run_in_threads(factory, ["evt_a", "evt_b", "evt_c"])
    event.remove(engine, "before_cursor_execute", before_cursor_execute)
    failed = [e for e, r in results.items() if isinstance(r, RuntimeError)]
    stored = [e for e, r in results.items() if isinstance(r, ReceiveResult) and r.stored]
    assert len(failed) == 2 and len(stored) == 1
    with factory() as s:
        kept = set(s.exec(select(WebhookEvent.event_id)).all())
    assert kept == {"evt_warm", *stored}
    event.remove(factory, "before_commit", before_commit)
    assert deliver(factory, failed[0]).stored  # the gateway's retry is stored


def test_two_copies_of_one_event_in_one_insert_store_it_once(factory):
    """The multi-row insert itself: [A, A, B] stores A and B; the second A points at the first."""
    from billbox.webhook_store import Delivery, _insert

    def delivery(event_id: str) -> Delivery:
        verified = VerifiedEvent(event_id, "charge.succeeded", datetime.now(UTC))
        return Delivery("stripe", verified, {}, BODY, None)

    with factory() as s:
        answers = _insert(s, [delivery("evt_a"), delivery("evt_a"), delivery("evt_b")])
        s.commit()
    assert [a.stored for a in answers] == [True, False, True]
    assert answers[0].event_row_id == answers[1].event_row_id != answers[2].event_row_id
    with factory() as s:
        assert s.exec(select(func.count()).select_from(WebhookEvent)).one() == 2
        assert s.exec(select(func.count()).select_from(Job)).one() == 2


def test_on_sqlite_a_group_waits_for_the_web_writer_lock_another_process_holds(factory):
    """The flock beside the database orders web processes; a delivery waits while it is held."""
    import fcntl
    import os

    from billbox.webhook_store import _writer_lock

    lock = _writer_lock(factory)
    if factory.kw["bind"].dialect.name != "sqlite":
        assert lock is None  # PostgreSQL handles concurrent writers itself
        return
    assert lock is not None
    fd = os.open(lock.path, os.O_RDWR | os.O_CREAT, 0o600)  # another open file: another holder
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        results = {}
        thread = threading.Thread(target=lambda: results.update(r=deliver(factory, "evt_wait")))
        thread.start()
        thread.join(0.3)
        assert thread.is_alive() and not results
        fcntl.flock(fd, fcntl.LOCK_UN)
        thread.join(10)
        assert results["r"].stored
    finally:
        os.close(fd)
    fcntl.flock(fd2 := os.open(lock.path, os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)  # released
    os.close(fd2)


def test_on_postgresql_a_group_after_the_kept_connection_died_is_stored_on_a_new_one(factory):
    """The leaders' autocommit connection broke while idle (a restart): the group is retried."""
    import pytest
    import sqlalchemy as sa

    from billbox.webhook_store import _connections

    engine = factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite leaders use a pooled session per group")
    deliver(factory, "evt_before")
    (kept,) = _connections[engine]._idle
    backend_pid = kept.connection.dbapi_connection.info.backend_pid
    with engine.connect() as other:
        other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid})
    result = deliver(factory, "evt_after")
    assert result.stored
    with factory() as s:
        assert s.get(WebhookEvent, result.event_row_id) is not None
        assert s.exec(select(func.count()).select_from(Job)).one() == 2
    (renewed,) = _connections[engine]._idle
    assert renewed.connection.dbapi_connection.info.backend_pid != backend_pid


def test_on_postgresql_a_restart_that_ended_every_kept_connection_costs_no_delivery(factory):
    """Two kept connections, both ended by the server: the next group still gets stored."""
    import pytest
    import sqlalchemy as sa

    from billbox.webhook_store import _connections

    engine = factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite leaders use a pooled session per group")
    deliver(factory, "evt_warm")
    connections = _connections[engine]
    connections.give_back(connections.take())  # the kept one
    second = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    connections.give_back(second)  # as when a new leader started during the last one's enqueue
    pids = [c.connection.dbapi_connection.info.backend_pid for c in connections._idle]
    assert len(pids) == 2
    with engine.connect() as other:
        for pid in pids:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    result = deliver(factory, "evt_after_restart")
    assert result.stored
    with factory() as s:
        assert s.get(WebhookEvent, result.event_row_id) is not None
