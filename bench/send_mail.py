"""Receipts per second through one worker process: job row → composed email → relay → SENT.

Run: ``python -m bench.send_mail [--receipts 500] [--threads 4] [--database sqlite|postgresql]
[--dkim] [--markdown]``

The relay is a no-op aiosmtpd server (250 to everything) in a *separate
process*, so its work does not share this process's GIL. In this process:

1. **baseline, bare smtplib**: the same stored message bytes sent with
   ``smtplib.SMTP(...).sendmail`` on a new connection per message, one
   thread: the floor of what handing a message to the relay costs.
2. **billbox**: ``--receipts`` issued documents (a ~30 KB PDF each, locales
   cycling en/es/de/fr) and their ``send_document`` jobs are committed
   first; then ``--threads`` threads (a ``billbox worker`` runs
   ``BILLBOX_WORKER_THREADS``, 4 by default) call :func:`billbox.jobs.run_job`
   on them, exactly as a worker does (claim, compose from the stored PDF, sign
   the Reply-To, VERP, PENDING → SENDING at the relay's 354 → SENT with the
   job's ``done``). Receipts/s = N / (first claim → last ``done``).
3. **resend**: ``queue_resend`` + its job for a tenth of the documents: it
   reuses the stored PDF (nothing renders), so it costs what a first send does.

At the end every outbound row must be SENT and the relay must have counted
exactly one delivery per row; otherwise the run exits 1.
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlmodel import col, select

from bench.smtp_accept import database, free_port

SECRET = "bench-secret-key-0123456789"
REPLY_DOMAIN = "reply.bench.test"
LOCALES = ("en", "es", "de", "fr")
WARMUP = 30
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 120 + b"\n%%EOF\n"

_SINK = """
import sys, time
from aiosmtpd.controller import Controller
class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 2.0.0 queued"
c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]), server_hostname="sink.test")
c.start()
print("ready", flush=True)
sys.stdin.readline()
c.stop()
print(Count.n, flush=True)
"""


@contextmanager
def relay_process() -> Iterator[tuple[int, list[int]]]:
    """A no-op relay in its own process; yields its port and, after the block, its count."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SINK, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("relay sink did not start")
    counted: list[int] = []
    try:
        yield port, counted
    finally:
        proc.stdin.write("\n")
        proc.stdin.flush()
        counted.append(int(proc.stdout.readline().strip() or -1))
        proc.wait(10)


def seed(factory, receipts: int) -> list[int]:
    """One brand, ``receipts`` customers with documents and queued jobs; the job ids."""
    from billbox.models import Brand, Customer, Document, DocumentKind, DocumentState
    from mailbridge.send import queue_document_email

    with factory() as session:
        brand = Brand(
            slug="bench",
            name="Bench GmbH",
            legal_name="Bench GmbH",
            country="DE",
            email_from="billing@bench.test",
        )
        session.add(brand)
        session.flush()
        job_ids: list[int] = []
        assert brand.id is not None
        for n in range(1, receipts + 1):
            locale = LOCALES[n % len(LOCALES)]
            customer = Customer(name=f"Customer {n}", email=f"c{n}@example.org", locale=locale)
            session.add(customer)
            session.flush()
            document = Document(
                brand_id=brand.id,
                customer_id=customer.id,
                kind=DocumentKind.RECEIPT,
                state=DocumentState.ISSUED,
                series="R",
                sequence=n,
                number=f"B-R-2026-{n:06d}",
                source_key=f"bench:{n}",
                currency="EUR",
                subtotal=4900 + n,
                total=4900 + n,
                locale=locale,
                buyer={"name": customer.name, "email": customer.email},
                issued_at=datetime.now(UTC),
                pdf=PDF,
            )
            session.add(document)
            session.flush()
            assert document.id is not None
            job = queue_document_email(session, document.id)
            assert job.id is not None
            job_ids.append(job.id)
        session.commit()
    return job_ids


def run_jobs(factory, job_ids: list[int], handlers, threads: int) -> tuple[float, list[float]]:
    from billbox.jobs import run_job

    latencies: list[float] = []
    lock = threading.Lock()

    def one(job_id: int) -> str:
        started = time.perf_counter()
        outcome = run_job(factory, job_id, handlers).outcome
        with lock:
            latencies.append(time.perf_counter() - started)
        return outcome

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = list(pool.map(one, job_ids))
    elapsed = time.perf_counter() - started
    bad = [o for o in outcomes if o != "done"]
    if bad:
        raise RuntimeError(f"{len(bad)} jobs did not finish: {bad[:5]}")
    return elapsed, latencies


def baseline(port: int, raw: bytes, count: int) -> float:
    started = time.perf_counter()
    for n in range(count):
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test", timeout=10) as client:
            client.sendmail("bounce@bench.test", [f"c{n}@example.org"], raw)
    return count / (time.perf_counter() - started)


def dkim_key() -> object:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mailbridge.compose import DkimKey

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return DkimKey(selector="bench", domain="bench.test", private_key=pem)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=500)
    parser.add_argument(
        "--threads", type=int, default=4, help="worker threads (BILLBOX_WORKER_THREADS: 4)"
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--dkim", action="store_true", help="sign with a 2048-bit RSA key")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)

    from billbox.db import make_engine, session_factory
    from billbox.logs import configure_logging
    from billbox.models import OutboundEmail, OutboundState
    from mailbridge.compose import ComposeConfig
    from mailbridge.relay import parse_relay_url
    from mailbridge.resend import queue_resend
    from mailbridge.send import SEND_DOCUMENT_JOB, MailerConfig, make_send_document

    configure_logging("WARNING", "json")
    rows: list[tuple[str, str]] = []
    with database(args.database) as url, relay_process() as (port, counted):
        engine = make_engine(url)
        factory = session_factory(engine)
        compose = ComposeConfig(
            secret=SECRET,
            reply_domain=REPLY_DOMAIN,
            dkim=dkim_key() if args.dkim else None,  # type: ignore[arg-type]
        )
        relay = parse_relay_url(f"smtp://127.0.0.1:{port}", helo_name=REPLY_DOMAIN)
        handlers = {SEND_DOCUMENT_JOB: make_send_document(MailerConfig(compose, relay))}

        job_ids = seed(factory, args.receipts + WARMUP)
        # Warm-up, not counted: templates compile, locales load, and the
        # database settles after the bulk seed (SQLite checkpoints its WAL,
        # PostgreSQL sets hint bits on the freshly inserted rows).
        run_jobs(factory, job_ids[:WARMUP], handlers, args.threads)
        job_ids = job_ids[WARMUP:]
        elapsed, latencies = run_jobs(factory, job_ids, handlers, args.threads)
        ours = len(job_ids) / elapsed
        with factory() as session:
            raw = session.exec(select(OutboundEmail.raw)).first()
            doc_ids = [
                d for d in session.exec(select(OutboundEmail.document_id)).all() if d is not None
            ][: max(1, args.receipts // 10)]
            resend_jobs = [
                int(queue_resend(session, d, actor="bench", reason="bench", audit=no_audit).id or 0)
                for d in doc_ids
            ]
            session.commit()
        resend_elapsed, _ = run_jobs(factory, resend_jobs, handlers, args.threads)
        assert raw is not None
        bare = baseline(port, raw, min(args.receipts, 300))
        with factory() as session:
            sent = session.exec(
                select(OutboundEmail).where(col(OutboundEmail.state) == OutboundState.SENT)
            ).all()
        engine.dispose()
    expected = WARMUP + len(job_ids) + len(resend_jobs)
    delivered = counted[0] - min(args.receipts, 300)
    latencies.sort()
    rows = [
        ("database", args.database),
        ("worker threads", str(args.threads)),
        ("DKIM", "rsa-sha256 2048" if args.dkim else "off"),
        ("message size", f"{len(raw) / 1024:.0f} KB"),
        ("baseline: bare smtplib, new connection per message", f"{bare:,.0f} msg/s"),
        ("billbox: receipts/s end to end (one process)", f"{ours:,.1f} /s"),
        ("billbox / bare", f"{ours / bare:.2f}"),
        ("per receipt p50 / p99", _ms(latencies, 0.5) + " / " + _ms(latencies, 0.99)),
        ("resends/s (stored PDF, no render)", f"{len(resend_jobs) / resend_elapsed:,.1f} /s"),
        ("rows SENT / relay deliveries / expected", f"{len(sent)} / {delivered} / {expected}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"| {key} | {value} |" if args.markdown else f"{key:<{width}}  {value}")
    return 0 if len(sent) == delivered == expected else 1


def no_audit(_session: object, _event: object) -> None:
    """The bench has no audit log; the real caller wires billbox.audit here."""


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    index = min(len(values) - 1, int(q * len(values)))
    value = statistics.median(values) if q == 0.5 else values[index]
    return f"{value * 1000:.1f} ms"


if __name__ == "__main__":
    raise SystemExit(main())
