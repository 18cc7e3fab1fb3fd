"""Signed Stripe webhooks into the real ``billbox web``, beside a no-op endpoint on the same server.

Run: ``python -m bench.webhooks [--events 5000] [--connections 16] [--databases sqlite,postgresql]
[--repeat 3] [--broker-url redis://127.0.0.1:6379/15] [--event-file PATH] [--markdown]``

For each database (a temporary migrated SQLite WAL file; a throwaway
PostgreSQL database) it starts ``python -m bench.webhook_server`` — Billbox's
gunicorn application exactly as ``billbox web`` runs it (``BILLBOX_WEB_WORKERS``
= 2 processes x 4 threads, ``STRIPE_WEBHOOK_SECRET`` set, a brand present,
job ids sent to a Redis broker after commit) plus ``POST /bench/noop`` — and
drives both routes with the same client in the same run:

- **no-op**: reads the body, answers the webhook endpoint's JSON, stores
  nothing. Its rate is the ceiling of this server *and this client* on this
  machine; the client shares the cores with the server, so the no-op figure
  is the honest baseline for "how much does the webhook path cost".
- **webhook**: ``POST /webhooks/stripe``: signature checked, event row and
  its job row committed, 200.

Every event is unique (``evt_bench_<round>_<n>``), built from a ~3.4 KB
recorded ``charge.succeeded`` delivery (``--event-file``, default from
``../shared/corpora``) and signed like Stripe (``t=…,v1=HMAC-SHA256``);
bodies and signatures are prepared before the clock starts. The client is
asyncio with raw keep-alive sockets, ``--connections`` of them, one request
in flight each. Rounds interleave no-op and webhook; the table shows medians
and the ratio is the median of each round's webhook/no-op ratio. After each
webhook round the database must hold exactly the events sent (and one
``webhook.process`` job each); a mismatch is printed and the exit code is 1.

Targets from the issue: ≥ 1,000 events/s and ≥ 30 % of the no-op rate, on
SQLite and on PostgreSQL; the table says whether each is met.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
CORPUS_EVENT = Path("corpora/payment_webhooks/stripe/stripe_ruby_mock/charge.succeeded.json")
#: ``shared/`` beside the checkout (``../shared``), or one level further up for a
#: git worktree kept in a subfolder beside the checkout.
EVENT_FILE = next(
    (
        parent / "shared" / CORPUS_EVENT
        for parent in Path(__file__).resolve().parents[1:4]
        if (parent / "shared" / CORPUS_EVENT).is_file()
    ),
    Path(__file__).resolve().parents[2] / "shared" / CORPUS_EVENT,
)
SECRET = "whsec_bench_0123456789abcdef"
WEBHOOK_PATH = "/webhooks/stripe"
NOOP_PATH = "/bench/noop"
TARGET_RATE = 1000.0
TARGET_RATIO = 0.30
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- requests ------------------------------------------------------------------------


def signed_requests(template: dict, prefix: str, count: int, port: int, path: str) -> list[bytes]:
    """``count`` complete HTTP/1.1 requests, each a unique event signed like Stripe signs."""
    secret = SECRET.encode()
    out = []
    now = int(time.time())
    for n in range(count):
        event = dict(template, id=f"evt_{prefix}_{n:07d}", created=now)
        body = json.dumps(event, indent=2).encode()  # Stripe delivers pretty-printed JSON
        mac = hmac.new(secret, f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Stripe-Signature: t={now},v1={mac}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


# --- the load generator ---------------------------------------------------------------


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    ok: int
    errors: int
    client_cpu: float  # share of one core the client process used
    server_cpu_ms: float = 0.0  # CPU of the gunicorn master and workers per request


def process_tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) of ``root_pid`` and its children, from ``/proc``."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, ppid = int(entry), int(fields[1])
        if pid == root_pid or ppid == root_pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _drive(port: int, requests: list[bytes], connections: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue = iter(requests)

    async def one_connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw in queue:
                start = time.perf_counter()
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                        break
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return latencies, errors


def drive(port: int, requests: list[bytes], connections: int, server_pid: int) -> Run:
    server0 = process_tree_cpu(server_pid)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    latencies, errors = asyncio.run(_drive(port, requests, connections))
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    server_cpu = process_tree_cpu(server_pid) - server0
    latencies.sort()
    return Run(
        rate=len(latencies) / wall,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        ok=len(latencies) - errors,
        errors=errors,
        client_cpu=cpu / wall,
        server_cpu_ms=server_cpu / len(latencies) * 1000,
    )


# --- databases and the server ----------------------------------------------------------


@contextmanager
def database(kind: str) -> Iterator[str]:
    from billbox.migrate import upgrade
    from billbox.testing import throwaway_postgres

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    server = os.environ.get("BILLBOX_TEST_DATABASE_URL", PG_DEFAULT)
    with throwaway_postgres(server, "billbox_bench") as url:
        upgrade(url)
        yield url


def add_brand(url: str) -> None:
    from billbox.db import make_engine, session_factory
    from billbox.models import Brand

    engine = make_engine(url)
    with session_factory(engine)() as session:
        session.add(Brand(slug="bench", name="Bench", legal_name="Bench Ltd", country="DE"))
        session.commit()
    engine.dispose()


def stored(url: str, prefix: str) -> tuple[int, int]:
    """(webhook_event rows whose id starts with ``prefix``, webhook.process jobs in all)."""
    from billbox.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        events = conn.execute(
            sa.text("SELECT count(*) FROM webhook_event WHERE event_id LIKE :p"),
            {"p": f"evt_{prefix}_%"},
        ).scalar_one()
        jobs = conn.execute(
            sa.text("SELECT count(*) FROM job WHERE kind = 'webhook.process'")
        ).scalar_one()
    engine.dispose()
    return int(events), int(jobs)


@contextmanager
def server(url: str, port: int, broker_url: str, workdir: Path, log_level: str) -> Iterator[int]:
    env = dict(
        os.environ,
        BILLBOX_DATABASE_URL=url,
        BILLBOX_WEB_LISTEN=f"127.0.0.1:{port}",
        BILLBOX_BROKER_URL=broker_url,
        BILLBOX_SECRET_KEY="bench-secret-key-0123456789",
        BILLBOX_LOG_LEVEL=log_level,
        BILLBOX_VAR_DIR=str(workdir / "var"),
        STRIPE_WEBHOOK_SECRET=SECRET,
        PYTHONPATH=str(ROOT),
    )
    log = (workdir / "server.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_server"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start; see {workdir / 'server.log'}")
            time.sleep(0.1)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --- one database ----------------------------------------------------------------------


@dataclass
class Result:
    database: str
    noop: list[Run]
    webhook: list[Run]
    ratios: list[float]
    problems: list[str]


def bench_database(kind: str, args: argparse.Namespace, template: dict) -> Result:
    import redis

    broker = redis.Redis.from_url(args.broker_url) if args.broker_url != "stub" else None
    if broker is not None:
        broker.flushdb()
    port = free_port()
    result = Result(kind, [], [], [], [])
    with database(kind) as url, tempfile.TemporaryDirectory() as tmp:
        add_brand(url)
        with server(url, port, args.broker_url, Path(tmp), args.log_level) as pid:
            warm = signed_requests(template, "warm", args.warmup, port, WEBHOOK_PATH)
            drive(
                port,
                [r.replace(WEBHOOK_PATH.encode(), NOOP_PATH.encode(), 1) for r in warm],
                args.connections,
                pid,
            )
            drive(port, warm, args.connections, pid)
            sent = args.warmup
            for round_no in range(args.repeat):
                prefix = f"bench_{round_no}"
                hooks = signed_requests(template, prefix, args.events, port, WEBHOOK_PATH)
                noops = [r.replace(WEBHOOK_PATH.encode(), NOOP_PATH.encode(), 1) for r in hooks]
                noop = drive(port, noops, args.connections, pid)
                hook = drive(port, hooks, args.connections, pid)
                sent += args.events
                result.noop.append(noop)
                result.webhook.append(hook)
                result.ratios.append(hook.rate / noop.rate)
                events, jobs = stored(url, prefix)
                if hook.errors or noop.errors:
                    result.problems.append(
                        f"{kind} round {round_no}: {hook.errors} webhook / {noop.errors} no-op "
                        "answers were not 200"
                    )
                if events != args.events or jobs != sent:
                    result.problems.append(
                        f"{kind} round {round_no}: sent {args.events} events, stored {events}; "
                        f"{jobs} webhook jobs for {sent} events"
                    )
                print(
                    f"  {kind} round {round_no + 1}: no-op {noop.rate:,.0f}/s, "
                    f"webhook {hook.rate:,.0f}/s ({hook.rate / noop.rate:.0%}), "
                    f"stored {events}/{args.events}",
                    file=sys.stderr,
                    flush=True,
                )
    if broker is not None:
        broker.flushdb()
    return result


# --- report ---------------------------------------------------------------------------


def _median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def report(results: list[Result], markdown: bool) -> None:
    header = [
        "database",
        "endpoint",
        "req/s",
        "p50 ms",
        "p99 ms",
        "% of no-op",
        "server CPU ms/req",
        "client CPU",
        "target",
    ]
    rows = []
    for res in results:
        ratio = statistics.median(res.ratios)
        hook_rate = _median(res.webhook, "rate")
        rate_met = "met" if hook_rate >= TARGET_RATE else "missed"
        ratio_met = "met" if ratio >= TARGET_RATIO else "missed"
        for name, runs, pct, target in (
            ("no-op", res.noop, "100", ""),
            (
                "webhook",
                res.webhook,
                f"{ratio:.0%}".rstrip("%"),
                f"≥ {TARGET_RATE:,.0f}/s {rate_met}, ≥ {TARGET_RATIO:.0%} {ratio_met}",
            ),
        ):
            rows.append(
                [
                    res.database,
                    name,
                    f"{_median(runs, 'rate'):,.0f}",
                    f"{_median(runs, 'p50_ms'):.1f}",
                    f"{_median(runs, 'p99_ms'):.1f}",
                    pct,
                    f"{_median(runs, 'server_cpu_ms'):.2f}",
                    f"{_median(runs, 'client_cpu'):.0%}",
                    target,
                ]
            )
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(["---", "---", "--:", "--:", "--:", "--:", "--:", "--:", "---"]) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for res in results:
        for problem in res.problems:
            print(f"PROBLEM: {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events per round")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians")
    parser.add_argument("--warmup", type=int, default=300, help="requests per route first")
    parser.add_argument(
        "--broker-url",
        default=REDIS_DEFAULT,
        help="a spare Redis db, flushed; 'stub' keeps job ids in memory (no broker cost)",
    )
    parser.add_argument("--event-file", type=Path, default=EVENT_FILE)
    parser.add_argument("--log-level", default="WARNING", help="the server's BILLBOX_LOG_LEVEL")
    parser.add_argument("--markdown", action="store_true", help="the table as Markdown")
    args = parser.parse_args(argv)
    try:
        template = json.loads(args.event_file.read_text())
    except OSError as exc:
        parser.error(f"--event-file: {exc}")
    results = []
    for kind in args.databases.split(","):
        results.append(bench_database(kind.strip(), args, template))
    print(
        f"\n{args.events} events x {args.repeat} rounds, {args.connections} connections, "
        f"{len(json.dumps(template, indent=2))} B bodies, load average "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    report(results, args.markdown)
    return 1 if any(res.problems for res in results) else 0


if __name__ == "__main__":
    sys.exit(main())
