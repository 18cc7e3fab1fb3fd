"""Durable SMTP accept beside a no-op aiosmtpd handler, measured in the same run.

Run: ``python -m bench.smtp_accept [--messages 2000] [--clients 20] [--database sqlite|postgresql]
[--modes noop,per-message,group] [--repeat 3] [--log-level WARNING|INFO] [--enqueue redis://…]``

The server runs in its own process (as ``billbox smtp`` does), the clients
are ``smtplib`` threads in this process. For each handler — ``noop`` (answers
250 and keeps nothing: the baseline), ``per-message`` (one INSERT + commit
per message in a thread, 250 after commit) and ``group`` (Billbox's
:class:`~mailbridge.group_commit.GroupCommitStore`: every waiting message
committed in one transaction, 250 after commit) — it sends ``--messages``
5 KB messages, first over reused connections, then one connection per
message, and prints msgs/s, p99, the percentage of the no-op rate and the
server process's CPU time per message (user + system, from ``/proc``; a
PostgreSQL server's own CPU is not in it). On a shared machine the CPU per
message moves much less than the rates do. Each ``group`` round also
prints how many messages one commit held on average.

With ``--repeat N`` the modes run N rounds, interleaved (noop, per-message,
group, noop, …), and the table shows each mode's median; the percentage is
the median of each round's ratio to that round's no-op run, so a load spike
on a shared machine moves both sides of a ratio. ``--log-level INFO`` makes
the server log as ``billbox smtp`` does by default (one JSON line per
accepted message, written to a file in the temporary directory).
``--enqueue URL`` wires the durable handlers as ``billbox smtp`` does, with
the after-commit enqueuer sending each job id to a dramatiq broker at URL
(a spare Redis database: it is flushed before and after); without it no
job id is sent anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import queue
import smtplib
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

MODES = ("noop", "per-message", "group")
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(
    mode: str,
    database_url: str,
    port: int,
    ready,
    stop,
    log_level: str,
    log_path: str,
    enqueue_url: str = "",
    stats: Any = None,
) -> None:
    """Server process body: one aiosmtpd server with the chosen handler.

    ``stats`` (a queue) gets the group writer's ``(messages, groups)`` at the end.
    """
    import sys

    from billbox.db import make_engine, session_factory
    from billbox.logs import configure_logging
    from billbox.models import InboundSource
    from mailbridge import InboundSMTPHandler, RecipientPolicy, start_smtp_server, store_inbound
    from mailbridge.group_commit import GroupCommitStore

    if log_path:
        sys.stderr = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    configure_logging(log_level)
    factory = session_factory(make_engine(database_url))
    if enqueue_url and mode != "noop":
        from billbox.settings import load_settings
        from workers.app import build

        settings = load_settings(broker_url=enqueue_url, secret_key="b" * 32, _env_file=None)
        build(settings, factory, {})
    writer = GroupCommitStore(factory) if mode == "group" else None

    class Noop:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    def store(raw, mail_from, rcpts):
        return store_inbound(
            factory, raw, source=InboundSource.SMTP, envelope_from=mail_from, envelope_to=rcpts
        )

    policy = RecipientPolicy.of("reply.bench", [])
    handler: Any
    if mode == "noop":
        handler = Noop()
    elif mode == "group":
        assert writer is not None
        handler = InboundSMTPHandler(writer.store_async, policy)
    else:
        handler = InboundSMTPHandler(store, policy)

    async def main() -> None:
        server = await start_smtp_server(handler, "127.0.0.1", port, max_size=1 << 20)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    if writer is not None:
        writer.close()
        if stats is not None:
            stats.put((writer.messages, writer.groups))


def message(i: int) -> bytes:
    line = "Thanks for the receipt, one question about line 2 of it, please. " + "\r\n"
    body = (line * 80)[:5000]
    return (
        f"From: c{i}@example.org\r\nTo: r@reply.bench\r\nSubject: bench {i}\r\n"
        f"Message-ID: <b{i}@example.org>\r\n\r\n{body}\r\n"
    ).encode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_clients(port: int, total: int, clients: int, reuse: bool) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = total // clients

    def worker(c: int) -> None:
        mine: list[float] = []
        conn = smtplib.SMTP("127.0.0.1", port, timeout=30) if reuse else None
        for k in range(per_client):
            raw = message(c * per_client + k)
            start = time.perf_counter()
            if conn is not None:
                conn.sendmail("c@example.org", ["r@reply.bench"], raw)
            else:
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as once:
                    once.sendmail("c@example.org", ["r@reply.bench"], raw)
            mine.append(time.perf_counter() - start)
        if conn is not None:
            conn.quit()
        with lock:
            latencies.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    elapsed = time.perf_counter() - start
    return per_client * clients / elapsed, latencies


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


def count_rows(url: str) -> int:
    from billbox.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM inbound_message")).scalar_one()
    engine.dispose()
    return int(n)


def measure(
    mode: str,
    url: str,
    messages: int,
    clients: int,
    log_level: str = "WARNING",
    log_path: str = "",
    enqueue_url: str = "",
) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    ready, stop, stats = ctx.Event(), ctx.Event(), ctx.Queue()
    port = free_port()
    process = ctx.Process(
        target=serve,
        args=(mode, url, port, ready, stop, log_level, log_path, enqueue_url, stats),
        daemon=True,
    )
    process.start()
    try:
        if not ready.wait(60):
            raise RuntimeError(f"{mode} server did not start")
        before = count_rows(url)
        assert process.pid is not None
        cpu_start = cpu_seconds(process.pid)
        reuse_rate, reuse_lat = run_clients(port, messages, clients, reuse=True)
        cpu_reuse = cpu_seconds(process.pid)
        new_rate, new_lat = run_clients(port, messages // 2, clients, reuse=False)
        cpu_new = cpu_seconds(process.pid)
        stored = count_rows(url) - before
    finally:
        stop.set()
        group_size = 0.0
        if mode == "group":
            with contextlib.suppress(queue.Empty):
                messages_, groups = stats.get(timeout=20)
                group_size = messages_ / max(groups, 1)
        process.join(20)
        if process.is_alive():
            process.kill()
    p99 = statistics.quantiles(reuse_lat, n=100)[98] * 1000
    new_p99 = statistics.quantiles(new_lat, n=100)[98] * 1000
    sent = (messages // clients) * clients + (messages // 2 // clients) * clients
    if mode != "noop" and stored != sent:
        raise AssertionError(f"{mode}: {sent} messages got 250 but {stored} rows exist")
    return {
        "reuse": reuse_rate,
        "p99": p99,
        "new": new_rate,
        "new_p99": new_p99,
        "group_size": group_size,
        "cpu": (cpu_reuse - cpu_start) / len(reuse_lat) * 1e6,
        "new_cpu": (cpu_new - cpu_reuse) / len(new_lat) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated, noop first")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; medians")
    parser.add_argument("--log-level", default="WARNING", help="the server's log level")
    parser.add_argument("--enqueue", default="", help="broker URL for the after-commit enqueue")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if modes[0] != "noop" or any(m not in MODES for m in modes):
        parser.error(f"--modes: a comma-separated subset of {','.join(MODES)}, noop first")
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    if args.enqueue:
        import redis

        redis.Redis.from_url(args.enqueue).flushdb()
    load_before = os.getloadavg()
    with database(args.database) as url, tempfile.TemporaryDirectory() as logs:
        log_path = str(Path(logs) / "server.log") if args.log_level.upper() != "WARNING" else ""
        for round_ in range(args.repeat):
            for mode in modes:
                r = measure(
                    mode, url, args.messages, args.clients, args.log_level, log_path, args.enqueue
                )
                runs[mode].append(r)
                grouped = f", {r['group_size']:.1f} messages per commit" if mode == "group" else ""
                print(
                    f"round {round_ + 1} {mode}: {r['reuse']:,.0f} msg/s reused "
                    f"(p99 {r['p99']:.0f} ms), {r['new']:,.0f} msg/s new connections "
                    f"(p99 {r['new_p99']:.0f} ms){grouped}; server CPU {r['cpu']:.0f} / "
                    f"{r['new_cpu']:.0f} µs per message",
                    flush=True,
                )
    load_after = os.getloadavg()
    if args.enqueue:
        redis.Redis.from_url(args.enqueue).flushdb()

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    def ratio(mode: str, key: str) -> float:
        return 100 * statistics.median(
            r[key] / base[key] for r, base in zip(runs[mode], runs["noop"], strict=True)
        )

    print(
        f"\nDurable SMTP accept, {args.messages} x 5 KB, {args.clients} smtplib clients, "
        f"{args.database} (synchronous=FULL for SQLite), server log level {args.log_level}, "
        f"enqueue to {args.enqueue or 'nowhere'}, "
        f"median of {args.repeat} interleaved round(s); load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after ({os.cpu_count()} CPUs)\n"
    )
    print(
        "| handler | reused conn msg/s | p99 ms | % of no-op | server CPU µs/msg "
        "| new conn msg/s | p99 ms | % of no-op | server CPU µs/msg |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for mode in modes:
        print(
            f"| {mode} | {median(mode, 'reuse'):,.0f} | {median(mode, 'p99'):.1f} | "
            f"{ratio(mode, 'reuse'):.0f} | {median(mode, 'cpu'):,.0f} | "
            f"{median(mode, 'new'):,.0f} | {median(mode, 'new_p99'):.1f} | "
            f"{ratio(mode, 'new'):.0f} | {median(mode, 'new_cpu'):,.0f} |"
        )


if __name__ == "__main__":
    main()
