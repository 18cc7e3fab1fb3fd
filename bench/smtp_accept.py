"""Durable SMTP accept beside a no-op aiosmtpd handler, measured in the same run.

Run: ``python -m bench.smtp_accept [--messages 2000] [--clients 20] [--database sqlite|postgresql]``

The server runs in its own process (as ``billbox smtp`` does), the clients
are ``smtplib`` threads in this process. For each handler — ``noop`` (answers
250 and keeps nothing: the baseline), ``per-message`` (one INSERT + commit
per message in a thread, 250 after commit) and ``group`` (Billbox's
:class:`~mailbridge.group_commit.GroupCommitStore`: every waiting message
committed in one transaction, 250 after commit) — it sends ``--messages``
5 KB messages, first over reused connections, then one connection per
message, and prints msgs/s, p99 and the percentage of the no-op rate.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import secrets
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


def serve(mode: str, database_url: str, port: int, ready, stop) -> None:
    """Server process body: one aiosmtpd server with the chosen handler."""
    from billbox.db import make_engine, session_factory
    from billbox.logs import configure_logging
    from billbox.models import InboundSource
    from mailbridge import InboundSMTPHandler, RecipientPolicy, start_smtp_server, store_inbound
    from mailbridge.group_commit import GroupCommitStore

    configure_logging("WARNING")
    factory = session_factory(make_engine(database_url))
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


def message(i: int) -> bytes:
    line = "Thanks for the receipt, one question about line 2 of it, please. " + "\r\n"
    body = (line * 80)[:5000]
    return (
        f"From: c{i}@example.org\r\nTo: r@reply.bench\r\nSubject: bench {i}\r\n"
        f"Message-ID: <b{i}@example.org>\r\n\r\n{body}\r\n"
    ).encode()


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
    from billbox.db import normalise_url
    from billbox.migrate import upgrade

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    base = sa.engine.make_url(
        normalise_url(os.environ.get("BILLBOX_TEST_DATABASE_URL", PG_DEFAULT))
    )
    name = f"billbox_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def count_rows(url: str) -> int:
    from billbox.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM inbound_message")).scalar_one()
    engine.dispose()
    return int(n)


def measure(mode: str, url: str, messages: int, clients: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    port = free_port()
    process = ctx.Process(target=serve, args=(mode, url, port, ready, stop), daemon=True)
    process.start()
    try:
        if not ready.wait(60):
            raise RuntimeError(f"{mode} server did not start")
        before = count_rows(url)
        reuse_rate, reuse_lat = run_clients(port, messages, clients, reuse=True)
        new_rate, _ = run_clients(port, messages // 2, clients, reuse=False)
        stored = count_rows(url) - before
    finally:
        stop.set()
        process.join(20)
        if process.is_alive():
            process.kill()
    p99 = statistics.quantiles(reuse_lat, n=100)[98] * 1000
    sent = (messages // clients) * clients + (messages // 2 // clients) * clients
    if mode != "noop" and stored != sent:
        raise AssertionError(f"{mode}: {sent} messages got 250 but {stored} rows exist")
    return {"reuse": reuse_rate, "p99": p99, "new": new_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with database(args.database) as url:
        for mode in MODES:
            results[mode] = measure(mode, url, args.messages, args.clients)
            print(
                f"{mode}: {results[mode]['reuse']:,.0f} msg/s reused, "
                f"{results[mode]['new']:,.0f} msg/s new connections",
                flush=True,
            )
    base = results["noop"]
    print(
        f"\nDurable SMTP accept, {args.messages} x 5 KB, {args.clients} smtplib clients, "
        f"{args.database} (synchronous=FULL for SQLite)\n"
    )
    print("| handler | reused conn msg/s | p99 ms | % of no-op | new conn msg/s | % of no-op |")
    print("|---|--:|--:|--:|--:|--:|")
    for mode in MODES:
        r = results[mode]
        print(
            f"| {mode} | {r['reuse']:,.0f} | {r['p99']:.1f} | "
            f"{100 * r['reuse'] / base['reuse']:.0f} | {r['new']:,.0f} | "
            f"{100 * r['new'] / base['new']:.0f} |"
        )


if __name__ == "__main__":
    main()
