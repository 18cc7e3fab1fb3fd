"""Billbox jobs against bare dramatiq on the same broker, measured in the same run.

Run ``python -m bench.jobs --help``; ``bench/README.md`` explains the numbers.

For each broker (the embedded Redis, a Redis server, RabbitMQ):

* **bare dramatiq**: a trivial actor on a broker built exactly as Billbox
  builds it (``workers.broker.build_broker``), a ``dramatiq.Worker`` with
  ``--threads`` threads; N messages sent and processed (round trips/s), then
  one message at a time for the idle send → processed latency.
* **Billbox**: ``system.noop`` job rows submitted and committed (batches of
  100, then one per transaction), enqueued after commit by the installed
  enqueuer, and run to ``done`` by ``workers.app.run_worker`` with the same
  thread count: rows/s end to end; then one job at a time for the idle
  commit → done latency.

Completion is observed by a dramatiq middleware (``after_process_message``
runs after the actor returned, i.e. after the job row's ``done`` commit), and
checked against the database at the end. Absolute numbers drift between
machines: read the ratio to the bare figure measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import dramatiq
import redis
import sqlalchemy as sa
from dramatiq.middleware import Middleware
from redis.backoff import NoBackoff
from redis.retry import Retry
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import col

from billbox.db import make_engine, session_factory
from billbox.jobs import NOOP_JOB, submit
from billbox.logs import configure_logging
from billbox.migrate import upgrade
from billbox.models import Job, JobState
from billbox.settings import Settings, load_settings
from billbox.testing import throwaway_postgres
from workers.app import build, run_worker
from workers.broker import build_broker
from workers.embedded_redis import EmbeddedRedis
from workers.registry import default_handlers

BARE_QUEUE = "bench_bare"
BARE_ACTOR = "bench_bare_noop"
BATCH = 100
WARMUP = 20
WAIT_TIMEOUT = 120.0
REDIS_NAMESPACE = "billbox"  # workers.broker uses this namespace for every Redis broker
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
SECRET = "bench-secret-key-0123456789"

console = Console() if sys.stdout.isatty() else Console(width=150)


# --- observing completions --------------------------------------------------------


class Completions(Middleware):
    """Record when each message finished processing, keyed by its first argument (or its ids)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.done: dict[Any, float] = {}
        self.errors = 0

    def reset(self) -> None:
        with self.cond:
            self.done = {}
            self.errors = 0

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        now = time.perf_counter()
        with self.cond:
            if exception is None:
                first = message.args[0]  # Billbox sends the job ids of one commit together
                for key in first if isinstance(first, list) else [first]:
                    self.done.setdefault(key, now)
            else:
                self.errors += 1
            self.cond.notify_all()

    def wait_count(self, n: int) -> float:
        """Wait until ``n`` distinct messages finished; return when the last one did."""
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.done) >= n, WAIT_TIMEOUT):
                raise TimeoutError(f"only {len(self.done)} of {n} messages processed")
            return max(self.done.values())

    def wait_key(self, key: Any) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.done, WAIT_TIMEOUT):
                raise TimeoutError(f"message {key!r} not processed")
            return self.done[key]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


# --- results ------------------------------------------------------------------------


@dataclass
class BrokerResult:
    broker: str
    bare_rate: float = 0.0
    bare_p50: float = 0.0
    bare_p99: float = 0.0
    batch_rate: float = 0.0
    single_rate: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    reruns: int = 0
    errors: int = 0
    skipped: str | None = None
    failed: str | None = None
    notes: list[str] = field(default_factory=list)


# --- the two measurements -------------------------------------------------------------


def measure_bare(settings: Settings, n: int, threads: int, samples: int, result: BrokerResult):
    broker = build_broker(settings)
    completions = Completions()
    broker.add_middleware(completions)

    def noop(i: int) -> None:
        pass

    actor = dramatiq.actor(
        broker=broker, actor_name=BARE_ACTOR, queue_name=BARE_QUEUE, max_retries=0
    )(noop)
    worker = dramatiq.Worker(broker, worker_threads=threads, queues={BARE_QUEUE})
    worker.start()
    try:
        for i in range(WARMUP):
            actor.send(-1 - i)
        completions.wait_count(WARMUP)

        completions.reset()
        start = time.perf_counter()
        for i in range(n):
            actor.send(i)
        last = completions.wait_count(n)
        result.bare_rate = n / (last - start)

        completions.reset()
        latencies = []
        for i in range(samples):
            sent = time.perf_counter()
            actor.send(i)
            latencies.append(completions.wait_key(i) - sent)
        result.bare_p50 = percentile(latencies, 50) * 1000
        result.bare_p99 = percentile(latencies, 99) * 1000
    finally:
        worker.stop()
        broker.close()


def measure_billbox(
    settings: Settings,
    engine: Engine,
    n: int,
    threads: int,
    samples: int,
    result: BrokerResult,
) -> None:
    clear_jobs(engine)
    broker = build_broker(settings)
    completions = Completions()
    broker.add_middleware(completions)
    factory = session_factory(engine)
    app = build(settings, factory, default_handlers(), broker=broker)
    worker = run_worker(app, threads)
    submitted = 0
    try:
        for _ in range(WARMUP):
            with factory() as session:
                submit(session, NOOP_JOB, {})
                session.commit()
        submitted += WARMUP
        completions.wait_count(WARMUP)

        # (1) batches of 100 rows per transaction
        completions.reset()
        start = time.perf_counter()
        for offset in range(0, n, BATCH):
            with factory() as session:
                for _ in range(min(BATCH, n - offset)):
                    submit(session, NOOP_JOB, {})
                session.commit()
        last = completions.wait_count(n)
        submitted += n
        result.batch_rate = n / (last - start)
        result.errors += completions.errors

        # (2) one row per transaction
        completions.reset()
        start = time.perf_counter()
        for _ in range(n):
            with factory() as session:
                submit(session, NOOP_JOB, {})
                session.commit()
        last = completions.wait_count(n)
        submitted += n
        result.single_rate = n / (last - start)
        result.errors += completions.errors

        # (3) idle latency: one job at a time, from the commit to its row being done
        completions.reset()
        latencies = []
        for _ in range(samples):
            with factory() as session:
                job = submit(session, NOOP_JOB, {})
                committed = time.perf_counter()
                session.commit()
            latencies.append(completions.wait_key(job.id) - committed)
        submitted += samples
        result.p50 = percentile(latencies, 50) * 1000
        result.p99 = percentile(latencies, 99) * 1000
        result.errors += completions.errors
    finally:
        worker.stop()
        app.stop()
        broker.close()

    with engine.connect() as conn:
        done = conn.execute(
            sa.select(sa.func.count()).select_from(Job).where(col(Job.state) == JobState.DONE)
        ).scalar_one()
        reruns = conn.execute(
            sa.select(sa.func.count()).select_from(Job).where(col(Job.attempts) > 1)
        ).scalar_one()
    if done != submitted:
        raise RuntimeError(f"{done} job rows done, expected {submitted}")
    result.reruns = int(reruns)


def clear_jobs(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(Job))


# --- databases ------------------------------------------------------------------------


@contextlib.contextmanager
def bench_database(kind: str, workdir: Path, pg_url: str) -> Iterator[tuple[str, Engine]]:
    """A migrated temporary database: a SQLite (WAL) file, or a PostgreSQL database."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        upgrade(url)
        engine = make_engine(url)
        try:
            yield url, engine
        finally:
            engine.dispose()
        return
    with throwaway_postgres(pg_url, "billbox_bench") as url:
        upgrade(url)
        pg_engine = make_engine(url, pool_size=10)  # worker threads + producer + sweeper
        try:
            yield url, pg_engine
        finally:
            pg_engine.dispose()


# --- brokers ---------------------------------------------------------------------------


def _no_retry_redis(**kwargs: Any) -> redis.Redis:
    return redis.Redis(retry=Retry(NoBackoff(), 0), socket_timeout=2, **kwargs)


@contextlib.contextmanager
def embedded_broker(workdir: Path) -> Iterator[str]:
    """Run the embedded Redis in the foreground, as ``billbox broker`` under ``billbox up``."""
    var_dir = workdir / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    server = EmbeddedRedis(var_dir)
    log = (workdir / "embedded-redis.log").open("wb")
    proc = subprocess.Popen(server.command(), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        client = _no_retry_redis(unix_socket_path=str(server.socket_path))
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                if client.ping():
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {log.name}")
            time.sleep(0.02)
        client.close()
        yield str(var_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _delete_namespace(client: redis.Redis) -> int:
    keys = list(client.scan_iter(match=f"{REDIS_NAMESPACE}:*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


@contextlib.contextmanager
def redis_broker(url: str) -> Iterator[str]:
    """A Redis server's database index of our own; our namespace's keys deleted before and after."""
    client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_timeout=2)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"Redis at {url} unreachable: {exc}") from None
    _delete_namespace(client)
    try:
        yield url
    finally:
        _delete_namespace(client)
        client.close()


class Unavailable(Exception):
    """A broker this run cannot use; the row is reported as skipped."""


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=True
    )


@contextlib.contextmanager
def rabbitmq_broker(url: str) -> Iterator[str]:
    """A throwaway virtual host (via ``rabbitmqctl``), deleted with its queues afterwards.

    Without ``rabbitmqctl`` the URL's own virtual host is used, but only if
    none of our queue names exist there yet (so nobody else's messages are
    consumed), and the queues we declared are deleted afterwards.
    """
    import pika  # type: ignore[import-untyped]

    parts = urlsplit(url)
    user = parts.username or "guest"
    if shutil.which("rabbitmqctl"):
        vhost = f"billbox-bench-{secrets.token_hex(4)}"
        try:
            _rabbitmqctl("add_vhost", vhost)
        except (subprocess.SubprocessError, OSError) as exc:
            raise Unavailable(f"rabbitmqctl add_vhost failed: {exc}") from None
        try:
            _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
            yield urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
        finally:
            _rabbitmqctl("delete_vhost", vhost)
        return

    queues = [q + s for q in ("billbox", BARE_QUEUE) for s in ("", ".DQ", ".XQ")]
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except Exception as exc:
        raise Unavailable(f"RabbitMQ at {url} unreachable: {exc}") from None
    try:
        for queue in queues:
            channel = connection.channel()
            try:
                channel.queue_declare(queue, passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                continue  # does not exist: good
            raise Unavailable(f"queue {queue!r} already exists on {url}; use another vhost")
    finally:
        connection.close()
    try:
        yield url
    finally:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
        connection.close()


# --- the run ----------------------------------------------------------------------------


def run_broker(
    name: str, args: argparse.Namespace, workdir: Path, db_url: str, engine: Engine
) -> BrokerResult:
    result = BrokerResult(name)
    brokers: dict[str, Callable[[], contextlib.AbstractContextManager[str]]] = {
        "embedded": lambda: embedded_broker(workdir / "embedded"),
        "redis": lambda: redis_broker(args.redis_url),
        "rabbitmq": lambda: rabbitmq_broker(args.amqp_url),
    }
    try:
        with brokers[name]() as where:
            broker_url = "embedded" if name == "embedded" else where
            settings = load_settings(
                database_url=db_url,
                broker_url=broker_url,
                var_dir=Path(where) if name == "embedded" else workdir / "var",
                secret_key=SECRET,
                job_lease=60,
                sweep_interval=3600,  # the sweep would only re-send: keep it out of the figures
                job_stale_after=3600,
                log_level="WARNING",
                _env_file=None,
            )
            console.print(f"[bold]{name}[/]: bare dramatiq …", end=" ")
            measure_bare(settings, args.jobs, args.threads, args.samples, result)
            console.print(f"{result.bare_rate:,.0f} msg/s; Billbox …", end=" ")
            measure_billbox(settings, engine, args.jobs, args.threads, args.samples, result)
            console.print(f"{result.batch_rate:,.0f} / {result.single_rate:,.0f} jobs/s")
    except Unavailable as exc:
        result.skipped = str(exc)
        console.print(f"[yellow]{name}: skipped[/] ({exc})")
    except Exception as exc:  # report it with the others; main() exits 1
        result.skipped = result.failed = f"{exc.__class__.__name__}: {exc}"
        console.print_exception()
    return result


COLUMNS = (
    "broker",
    "submit",
    "bare dramatiq msg/s",
    "billbox jobs/s",
    "billbox / bare",
    "bare p50 ms",
    "bare p99 ms",
    "billbox p50 ms",
    "billbox p99 ms",
)


def table_rows(results: list[BrokerResult]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.skipped:
            rows.append([r.broker, "failed" if r.failed else "skipped", *[""] * 7])
            continue
        bare = f"{r.bare_rate:,.0f}"
        for submit_mode, rate in ((f"batch {BATCH}", r.batch_rate), ("single", r.single_rate)):
            latency = submit_mode == "single"
            rows.append(
                [
                    r.broker,
                    submit_mode,
                    bare,
                    f"{rate:,.0f}",
                    f"{rate / r.bare_rate:.2f}",
                    f"{r.bare_p50:.1f}" if latency else "",
                    f"{r.bare_p99:.1f}" if latency else "",
                    f"{r.p50:.1f}" if latency else "",
                    f"{r.p99:.1f}" if latency else "",
                ]
            )
    return rows


def print_table(results: list[BrokerResult], args: argparse.Namespace) -> None:
    title = (
        f"Billbox jobs vs bare dramatiq: {args.jobs} messages, {args.threads} worker threads, "
        f"{args.database}"
    )
    rows = table_rows(results)
    if args.markdown:
        print(f"{title}\n")
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "|".join("---" if c in ("broker", "submit") else "--:" for c in COLUMNS) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        table = Table(title=title)
        for column in COLUMNS:
            table.add_column(column, justify="left" if column in ("broker", "submit") else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(
        f"latency: one at a time ({args.samples} samples); billbox from the commit of one "
        "submitted job to its row done, bare from send to the actor returned."
    )
    for r in results:
        if r.skipped:
            console.print(f"{r.broker}: {'failed' if r.failed else 'skipped'}: {r.skipped}")
        elif r.reruns or r.errors:
            console.print(f"{r.broker}: {r.reruns} jobs ran more than once, {r.errors} errors")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.jobs", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=500, help="messages/jobs per measurement")
    parser.add_argument(
        "--brokers", default="embedded,redis,rabbitmq", help="comma-separated subset"
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--threads", type=int, default=4, help="worker threads, both runs")
    parser.add_argument("--samples", type=int, default=150, help="latency samples")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--amqp-url", default=os.environ.get("BENCH_AMQP_URL", DEFAULT_AMQP_URL))
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BILLBOX_TEST_DATABASE_URL", DEFAULT_PG_URL),
        help="server to create the temporary database on",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    names = [b.strip() for b in args.brokers.split(",") if b.strip()]
    unknown = set(names) - {"embedded", "redis", "rabbitmq"}
    if unknown:
        parser.error(f"unknown broker(s): {', '.join(sorted(unknown))}")
    args.broker_names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("WARNING", "console")
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="billbox-bench-"))
    try:
        with bench_database(args.database, workdir, args.pg_url) as (db_url, engine):
            results = [
                run_broker(name, args, workdir, db_url, engine) for name in args.broker_names
            ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results, args)
    console.print(f"total {time.perf_counter() - started:.0f} s; python {sys.version.split()[0]}")
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
