"""Time from an SMTP 250 to the ticket, with its billing context, being visible.

Run: ``python -m bench.reply_to_ticket [--rate 50] [--seconds 60] [--database sqlite|postgresql]
[--broker redis|embedded] [--worker-processes N] [--code DIR]``

The real processes, as a deployment runs them: ``billbox smtp`` and
``billbox worker`` are started as subprocesses against a temporary database
(a SQLite WAL file, or a throwaway PostgreSQL database) seeded with
:func:`billbox.demo.seed_demo`, and a broker (``redis://…/13`` by default,
flushed before and after; or the embedded broker, ``billbox broker``, in the
temporary directory). Sender threads then deliver realistic replies from
demo customers at ``--rate`` messages per second for ``--seconds`` seconds,
one SMTP connection per message (each reply comes from a different MTA).

For each message the time its 250 arrived is recorded (the id comes from
the 250 text, ``queued as <id>``), and a poller in this process queries the
database every ``--poll-ms`` for the inbound rows whose ``ticket_id`` is set
— by primary key, so the poller costs the system under test little. The
pipeline sets ``ticket_id`` in the transaction that inserts the ticket
message with its billing-context snapshot, so a visible ``ticket_id`` is the
ticket with context visible. (Polling ``ticket_message`` by
``inbound_message_id`` instead scans that unindexed column every poll.) The
table shows p50/p95/p99/max of 250 → ticket, of send → 250, how many
messages got no ticket, and the jobs that failed. Poll resolution adds up to
``--poll-ms``.

The subprocesses import Billbox from ``--code`` (default: the checkout this
file is in, put first on ``PYTHONPATH``; the virtualenv's editable install
would otherwise load the main checkout), so two checkouts can be compared
run for run. ``--worker-processes N`` starts N ``billbox worker`` processes,
each with ``--worker-threads`` threads, as a deployment scales out.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import secrets
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench.smtp_accept import database, free_port

DEFAULT_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
REPLY_DOMAIN = "reply.bench.test"
QUEUED_AS = re.compile(rb"queued as (\d+)")

SUBJECTS = (
    "Re: Your receipt {n}",
    "Question about invoice {n}",
    "Re: Payment received — {n}",
    "Charged twice?",
    "Please cancel my subscription",
    "Refund request for {n}",
    "Update VAT number on my invoices",
)
BODIES = (
    "Hello,\r\n\r\nI was charged twice this month, once on the 3rd and again on the 4th.\r\n"
    "Could you refund the second charge, please?\r\n",
    "Hi,\r\n\r\nplease add our VAT number to the last invoice and send me a corrected\r\n"
    "copy. Our accounting needs it before the end of the month.\r\n",
    "Good morning,\r\n\r\nwe no longer use the product. Please cancel the subscription\r\n"
    "at the end of the current period and confirm by email.\r\n",
    "Hello,\r\n\r\nthe amount on the receipt does not match what my bank shows.\r\n"
    "Can you check which currency was used?\r\n",
)
QUOTE = "\r\nOn Mon, 2 Nov 2026 at 10:14, Billing <billing@northwind.test> wrote:\r\n" + "".join(
    f"> {line}\r\n"
    for line in (
        "Thank you for your payment.",
        "",
        "Receipt number: {n}",
        "Amount: EUR 49.00, paid by card ending 4242.",
        "You can download the PDF from your billing page at any time.",
        "",
        "Reply to this email if anything looks wrong.",
    )
    * 6
)


def reply(i: int, name: str, email: str) -> bytes:
    n = f"NW-R-{2026_0000 + i}"
    subject = SUBJECTS[i % len(SUBJECTS)].format(n=n)
    body = BODIES[i % len(BODIES)] + f"\r\nThanks,\r\n{name}\r\n" + QUOTE.format(n=n)
    return (
        f'From: "{name}" <{email}>\r\nTo: billing@{REPLY_DOMAIN}\r\nSubject: {subject}\r\n'
        "Date: Mon, 2 Nov 2026 11:00:00 +0000\r\n"
        f"Message-ID: <r{i}.{secrets.token_hex(4)}@mail.example>\r\n"
        f"In-Reply-To: <receipt-{i}@{REPLY_DOMAIN}>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{body}"
    ).encode()


@dataclass
class Sent:
    index: int
    started: float
    accepted: float = 0.0
    inbound_id: int | None = None
    ticket_seen: float | None = None
    error: str | None = None


@dataclass
class Run:
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[int, Sent] = field(default_factory=dict)


def seed(url: str, customers: int, payments: int) -> list[tuple[str, str]]:
    from billbox.db import make_engine, session_factory
    from billbox.demo import seed_demo
    from billbox.models import Customer

    engine = make_engine(url)
    factory = session_factory(engine)
    seed_demo(factory, customers=customers, payments=payments)
    with engine.connect() as conn:
        table = Customer.__table__  # type: ignore[attr-defined]
        rows = conn.execute(sa.select(table.c.name, table.c.email).order_by(table.c.id)).all()
    engine.dispose()
    return [(str(name), str(email)) for name, email in rows if email]


@contextmanager
def processes(
    env: dict[str, str], tmp: Path, broker: str, workers: int = 1
) -> Iterator[list[subprocess.Popen]]:
    """``billbox smtp``, ``workers`` ``billbox worker`` (and ``billbox broker``); SIGTERM at end."""
    me = [sys.executable, "-m", "billbox"]
    names = (
        (["broker"] if broker == "embedded" else [])
        + [f"worker{n if n else ''}" for n in range(workers)]
        + ["smtp"]
    )
    started: list[subprocess.Popen] = []
    try:
        for name in names:
            log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            command = "worker" if name.startswith("worker") else name
            started.append(
                subprocess.Popen(
                    [*me, command], env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT
                )
            )
            if name == "broker":
                time.sleep(1.0)  # redis-server starts in well under a second
        yield started
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(started):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _command(process: subprocess.Popen) -> str:
    """The ``billbox`` subcommand a process was started with."""
    return str(process.args[-1])  # type: ignore[index]


def cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU time of a running process, from ``/proc`` (0 where there is none)."""
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port: int, processes_: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes_:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("billbox smtp did not start listening")


def send_one(port: int, item: Sent, raw: bytes, mail_from: str) -> None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("mx.example")
            client.mail(mail_from)
            code, _ = client.rcpt(f"billing@{REPLY_DOMAIN}")
            if code != 250:
                raise RuntimeError(f"RCPT {code}")
            code, text = client.data(raw)
            item.accepted = time.monotonic()
            if code != 250:
                raise RuntimeError(f"DATA {code} {text!r}")
            match = QUEUED_AS.search(text)
            if match is None:
                raise RuntimeError(f"no id in 250 text {text!r}")
            item.inbound_id = int(match.group(1))
    except Exception as exc:  # recorded and reported, the run goes on
        item.error = f"{exc.__class__.__name__}: {exc}"


def poll(url: str, run: Run, stop: threading.Event, interval: float) -> None:
    """Record when each accepted message's ticket_message row becomes visible."""
    from billbox.db import make_engine

    engine = make_engine(url)
    query = sa.text(
        "SELECT id FROM inbound_message WHERE id IN :ids AND ticket_id IS NOT NULL"
    ).bindparams(sa.bindparam("ids", expanding=True))
    try:
        while not stop.is_set():
            with run.lock:
                ids = list(run.pending)
            if ids:
                seen: list[int] = []
                with engine.connect() as conn:
                    for k in range(0, len(ids), 500):
                        seen += [r[0] for r in conn.execute(query, {"ids": ids[k : k + 500]})]
                now = time.monotonic()
                with run.lock:
                    for inbound_id in seen:
                        item = run.pending.pop(inbound_id, None)
                        if item is not None:
                            item.ticket_seen = now
            stop.wait(interval)
    finally:
        engine.dispose()


def summary(url: str) -> dict[str, object]:
    from billbox.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        jobs: dict[str, int] = dict(
            conn.execute(sa.text("SELECT state, count(*) FROM job GROUP BY state")).all()
        )
        inbound: dict[str, int] = dict(
            conn.execute(
                sa.text("SELECT state, count(*) FROM inbound_message GROUP BY state")
            ).all()
        )
        with_context = conn.execute(
            sa.text(
                "SELECT count(*) FROM ticket_message t JOIN ticket k ON k.id = t.ticket_id "
                "WHERE t.inbound_message_id IS NOT NULL AND k.customer_id IS NOT NULL"
            )
        ).scalar_one()
        errors = conn.execute(
            sa.text("SELECT last_error FROM job WHERE state = 'failed' LIMIT 3")
        ).all()
    engine.dispose()
    return {
        "jobs": jobs,
        "inbound": inbound,
        "with_customer": with_context,
        "errors": [e[0] for e in errors],
    }


def pct(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to send")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--broker", choices=("redis", "embedded"), default="redis")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="a spare db, flushed")
    parser.add_argument(
        "--worker-threads",
        type=int,
        default=None,
        help="default: what `billbox worker` picks (2 on SQLite, 4 on PostgreSQL)",
    )
    parser.add_argument("--worker-processes", type=int, default=1, help="billbox worker processes")
    parser.add_argument(
        "--code",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="the checkout the subprocesses import Billbox from",
    )
    parser.add_argument("--senders", type=int, default=16, help="sender threads")
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--payments", type=int, default=600)
    parser.add_argument("--poll-ms", type=float, default=10.0)
    parser.add_argument("--drain-seconds", type=float, default=60.0, help="wait after sending")
    parser.add_argument("--log-level", default="INFO", help="of the billbox processes")
    parser.add_argument("--keep-logs", type=Path, help="copy the processes' logs here")
    args = parser.parse_args()

    redis_client = None
    if args.broker == "redis":
        import redis

        redis_client = redis.Redis.from_url(args.redis_url)
        redis_client.flushdb()
    load_before = os.getloadavg()
    with database(args.database) as url, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.monotonic()
        customers = seed(url, args.customers, args.payments)
        print(f"seeded {len(customers)} customers in {time.monotonic() - t0:.1f} s", flush=True)
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BILLBOX_")},
            "BILLBOX_DATABASE_URL": url,
            "BILLBOX_BROKER_URL": args.redis_url if args.broker == "redis" else "embedded",
            "BILLBOX_SMTP_LISTEN": f"127.0.0.1:{port}",
            "BILLBOX_REPLY_DOMAIN": REPLY_DOMAIN,
            "BILLBOX_SECRET_KEY": secrets.token_hex(32),
            "BILLBOX_VAR_DIR": str(tmp / "var"),
            "BILLBOX_LOG_LEVEL": args.log_level,
            **({"BILLBOX_WORKER_THREADS": str(args.worker_threads)} if args.worker_threads else {}),
            "PYTHONPATH": os.pathsep.join(
                [str(args.code.resolve()), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        run = Run()
        stop_poll = threading.Event()
        with processes(env, tmp, args.broker, args.worker_processes) as procs:
            wait_for_port(port, procs)
            time.sleep(1.0)  # let the worker connect to the broker
            poller = threading.Thread(
                target=poll, args=(url, run, stop_poll, args.poll_ms / 1000), daemon=True
            )
            poller.start()
            work: queue.Queue[tuple[Sent, bytes, str] | None] = queue.Queue()

            def sender() -> None:
                while (job := work.get()) is not None:
                    item, raw, mail_from = job
                    send_one(port, item, raw, mail_from)
                    if item.inbound_id is not None:
                        with run.lock:
                            run.pending[item.inbound_id] = item

            threads = [threading.Thread(target=sender, daemon=True) for _ in range(args.senders)]
            for thread in threads:
                thread.start()
            total = int(args.rate * args.seconds)
            start = time.monotonic()
            late = 0
            for i in range(total):
                due = start + i / args.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.1:
                    late += 1
                name, email = customers[i % len(customers)]
                item = Sent(i, time.monotonic())
                run.sent.append(item)
                work.put((item, reply(i, name, email), email))
            for _ in threads:
                work.put(None)
            for thread in threads:
                thread.join()
            send_seconds = time.monotonic() - start
            deadline = time.monotonic() + args.drain_seconds
            while time.monotonic() < deadline:
                with run.lock:
                    if not run.pending:
                        break
                time.sleep(0.05)
            stop_poll.set()
            poller.join()
            worker_cpu = sum(cpu_seconds(p) for p in procs if _command(p) == "worker")
            smtp_cpu = sum(cpu_seconds(p) for p in procs if _command(p) == "smtp")
        stats = summary(url)
        codes = [p.returncode for p in procs]
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in tmp.glob("*.log"):
                shutil.copy(log, args.keep_logs / log.name)
    load_after = os.getloadavg()
    if redis_client is not None:
        redis_client.flushdb()

    accepted = [s for s in run.sent if s.inbound_id is not None]
    to_ticket = [(s.ticket_seen - s.accepted) * 1000 for s in accepted if s.ticket_seen]
    to_250 = [(s.accepted - s.started) * 1000 for s in accepted]
    failed_sends = [s.error for s in run.sent if s.error]
    print(
        f"\nReply → ticket, {args.database}, broker {args.broker}, {args.worker_processes} worker "
        f"process(es) x {args.worker_threads or ('2' if args.database == 'sqlite' else '4')} "
        f"threads, code {args.code}, {len(run.sent)} "
        f"replies at {args.rate:g}/s for {args.seconds:g} s "
        f"(sent in {send_seconds:.1f} s, {late} sent > 100 ms late); poll every "
        f"{args.poll_ms:g} ms; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after ({os.cpu_count()} CPUs)\n"
    )
    print("| interval | n | p50 ms | p95 ms | p99 ms | max ms |")
    print("|---|--:|--:|--:|--:|--:|")
    for label, values in (("send → 250", to_250), ("250 → ticket visible", to_ticket)):
        if values:
            print(
                f"| {label} | {len(values)} | {pct(values, 50):.0f} | {pct(values, 95):.0f} | "
                f"{pct(values, 99):.0f} | {max(values):.0f} |"
            )
    print(
        f"\naccepted {len(accepted)}/{len(run.sent)} (send errors {len(failed_sends)}), "
        f"ticket seen for {len(to_ticket)}, none within the drain for "
        f"{len(accepted) - len(to_ticket)}; ticket messages with a matched customer "
        f"{stats['with_customer']}"
    )
    if to_ticket:
        seen = [s.ticket_seen for s in accepted if s.ticket_seen]
        span = max(seen) - min(s.accepted for s in accepted)
        print(
            f"filed {len(to_ticket) / span:.1f} replies/s (first 250 to last ticket); CPU per "
            f"filed reply: workers {worker_cpu / len(to_ticket) * 1000:.1f} ms, smtp "
            f"{smtp_cpu / len(to_ticket) * 1000:.1f} ms (including start-up)"
        )
    print(f"jobs by state {stats['jobs']}; inbound by state {stats['inbound']}")
    print(f"process exit codes {codes}")
    for error in failed_sends[:3]:
        print(f"send error: {error}")
    for error in stats["errors"]:  # type: ignore[attr-defined]
        print(f"job failed: {str(error)[-400:]}")


if __name__ == "__main__":
    main()
