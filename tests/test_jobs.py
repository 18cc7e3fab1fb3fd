"""Durable jobs: rows first, enqueued after commit, claimed once, retried, swept."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from billbox.errors import PermanentError
from billbox.jobs import JobPolicy, install_enqueuer, run_job, submit, sweep
from billbox.models import Job, JobState, utcnow


class Recorder:
    """An enqueuer that records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[list[int], float]] = []

    def __call__(self, job_ids, delay=0.0):
        self.sent.append((list(job_ids), delay))

    @property
    def ids(self) -> list[int]:
        return [i for ids, _ in self.sent for i in ids]


@pytest.fixture
def recorder(factory):
    rec = Recorder()
    install_enqueuer(factory, rec)
    return rec


def test_a_job_is_enqueued_only_after_its_transaction_commits(factory, recorder):
    """Nothing is sent while the transaction is open, and nothing for a rollback."""
    with factory() as session:
        job = submit(session, "system.noop")
        assert recorder.ids == []
        session.commit()
    assert recorder.ids == [job.id]
    with factory() as session:
        submit(session, "system.noop")
        session.rollback()
    assert len(recorder.ids) == 1


def test_a_dedupe_key_makes_one_row(factory, recorder):
    """Submitting the same unit of work twice yields one job row."""
    with factory() as session:
        first = submit(session, "system.noop", dedupe_key="inbound:1")
        second = submit(session, "system.noop", dedupe_key="inbound:1")
        session.commit()
    assert first.id == second.id


def test_a_job_runs_once_even_if_delivered_twice(factory, recorder):
    """Two deliveries of one id: the first claim runs it, the second is skipped."""
    calls = []
    handlers = {"count": lambda session, job: calls.append(job.job_id)}
    with factory() as session:
        job = submit(session, "count")
        session.commit()
    assert run_job(factory, job.id, handlers).outcome == "done"
    assert run_job(factory, job.id, handlers).outcome == "skipped"
    assert calls == [job.id]
    with factory() as session:
        row = session.get(Job, job.id)
        assert row.state == JobState.DONE and row.attempts == 1 and row.finished_at


def test_a_failing_handler_is_retried_with_backoff_then_fails(factory, recorder):
    """Errors schedule a retry with growing delay; after max_attempts the row is failed."""

    def boom(session, job):
        raise RuntimeError("relay down")

    with factory() as session:
        job = submit(session, "boom", max_attempts=2)
        session.commit()
    first = run_job(factory, job.id, {"boom": boom}, JobPolicy(backoff_base=2))
    assert first.outcome == "retry" and first.retry_in == 2
    with factory() as session:
        row = session.get(Job, job.id)
        assert row.state == JobState.QUEUED and "relay down" in row.last_error
        assert row.run_after > utcnow()
    assert run_job(factory, job.id, {"boom": boom}).outcome == "skipped"  # not due yet
    with factory() as session:
        session.get(Job, job.id).run_after = utcnow() - timedelta(seconds=1)
        session.commit()
    assert run_job(factory, job.id, {"boom": boom}).outcome == "failed"
    with factory() as session:
        assert session.get(Job, job.id).state == JobState.FAILED


def test_a_permanent_error_fails_at_once(factory, recorder):
    """PermanentError (and an unknown kind) is not retried."""

    def bad(session, job):
        raise PermanentError("no such message")

    with factory() as session:
        a = submit(session, "bad")
        b = submit(session, "nobody-handles-this")
        session.commit()
    assert run_job(factory, a.id, {"bad": bad}).outcome == "failed"
    assert run_job(factory, b.id, {}).outcome == "failed"


def test_handler_work_and_done_state_commit_together(factory, recorder):
    """If the handler fails, its database writes roll back with it."""

    def writes_then_fails(session, job):
        submit(session, "side-effect")
        raise RuntimeError("late failure")

    with factory() as session:
        job = submit(session, "w")
        session.commit()
    run_job(factory, job.id, {"w": writes_then_fails})
    with factory() as session:
        kinds = [j.kind for j in session.exec(select(Job)).all()]
    assert kinds == ["w"]


def test_the_sweep_resends_a_row_whose_message_was_lost(factory, recorder):
    """A queued row never picked up is re-sent once it is older than stale_after."""
    with factory() as session:
        job = submit(session, "system.noop")
        session.commit()
    lost = Recorder()
    assert sweep(factory, lost, stale_after=timedelta(seconds=60)).resent == []
    later = utcnow() + timedelta(seconds=61)
    assert sweep(factory, lost, stale_after=timedelta(seconds=60), now=later).resent == [job.id]
    assert lost.ids == [job.id]
    # Just re-sent: not again until stale once more.
    assert sweep(factory, lost, stale_after=timedelta(seconds=60), now=later).resent == []


def test_the_sweep_recovers_a_job_whose_worker_died(factory, recorder):
    """A running row whose lease expired is re-sent and can be claimed again."""
    with factory() as session:
        job = submit(session, "system.noop")
        session.commit()
    with factory() as session:
        row = session.get(Job, job.id)
        row.state = JobState.RUNNING
        row.attempts = 1
        row.lease_until = utcnow() - timedelta(seconds=1)
        session.commit()
    lost = Recorder()
    assert sweep(factory, lost, stale_after=timedelta(seconds=60)).resent == [job.id]
    assert run_job(factory, job.id, {"system.noop": lambda s, j: None}).outcome == "done"
    with factory() as session:
        assert session.get(Job, job.id).attempts == 2


def test_a_running_job_with_a_live_lease_is_not_swept(factory, recorder):
    """A job a live worker holds is left alone."""
    with factory() as session:
        job = submit(session, "system.noop")
        session.commit()
    with factory() as session:
        row = session.get(Job, job.id)
        row.state = JobState.RUNNING
        row.lease_until = utcnow() + timedelta(minutes=5)
        session.commit()
    assert sweep(factory, Recorder(), stale_after=timedelta(seconds=0)).resent == []


def test_submit_many_returns_each_rows_id_in_order_and_enqueues_after_commit(factory, recorder):
    """A batch insert gives every payload its own row, ids in input order, sent after commit."""
    from billbox.jobs import submit_many

    payloads = [{"n": i} for i in range(250)]
    with factory() as session:
        ids = submit_many(session, "system.noop", payloads)
        assert recorder.ids == []
        session.commit()
    assert recorder.ids == ids and len(set(ids)) == 250
    with factory() as session:
        rows = {j.id: j.payload for j in session.exec(select(Job))}
    assert [rows[i] for i in ids] == payloads
