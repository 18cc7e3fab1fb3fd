"""Receipts end to end: paid payments → issued, rendered, emailed receipts at a relay sink.

Run: ``python -m bench.receipts [--payments 200] [--database sqlite|postgresql]
[--processes 1,2] [--threads 2] [--markdown]``

What one row of the table is:

* **bare xhtml2pdf**: ``pisa.CreatePDF`` of the HTML our template makes for a
  5-line receipt (same fonts), one thread, CPU ms; and its rate (1000 / ms).
* **reportlab floor**: the same 5-line document drawn by hand with reportlab
  platypus (no HTML): the cheapest PDF this content can cost in Python.
* **billbox, N processes**: ``--payments`` succeeded payments are applied
  through :func:`billbox.ledger.apply_payment` (which queues
  ``issue_document`` in the same transaction); then N worker processes, each
  with ``--threads`` threads, run the jobs as ``billbox worker`` does
  (:func:`billbox.jobs.run_job`: issue → number → render → store →
  ``send_document`` → compose → relay → SENT). Receipts/s = payments / (start
  of the workers → every outbound row SENT). The relay is an aiosmtpd sink in
  its own process; it must count exactly one delivery per payment.
* **resend**: ``queue_resend`` for a tenth of the documents; the stored PDF is
  reused (its SHA-256 is checked unchanged), so a resend costs a send.

Targets (issue): ≥ 25 receipts/s for one worker process, ≥ 45/s for two on
2 cores; our render ≤ 1.2 x bare (see ``bench.pdf_render`` for 5/50/500 lines
and peak RSS, printed below the table).
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from bench.pdf_render import bare, paired_medians_ms, peak_rss_mb, sample
from bench.send_mail import relay_process
from bench.smtp_accept import database
from billbox.settings import Settings

SECRET = "bench-secret-key-0123456789"
REPLY_DOMAIN = "reply.bench.test"
LOCALES = ("en", "es", "de", "fr")


def settings_for(url: str, relay_port: int, tmp: str) -> Settings:
    from billbox.settings import load_settings

    return load_settings(
        database_url=url, broker_url="stub", secret_key=SECRET, reply_domain=REPLY_DOMAIN,
        smtp_relay=f"smtp://127.0.0.1:{relay_port}", public_url="https://billing.bench.test",
        var_dir=tmp, log_level="WARNING", _env_file=None,
    )  # fmt: skip


def seed(factory: sessionmaker[Session], payments: int, offset: int) -> None:
    """A brand (first call), customers and succeeded payments applied through the ledger."""
    from billbox.customers import link_gateway_customer
    from billbox.gateways.types import GatewayCustomer, GatewayPayment
    from billbox.ledger import apply_payment
    from billbox.models import Brand, GatewayAccount, GatewayKind, PaymentStatus

    with factory() as session:
        brand = session.exec(select(Brand)).first()
        if brand is None:
            brand = Brand(
                slug="bench", name="Northwind Cloud", legal_name="Northwind Cloud GmbH",
                address="Friedrichstraße 123\n10117 Berlin", country="DE",
                tax_registrations=[{"scheme": "eu_vat", "country": "DE", "number": "DE136695976"}],
                email_from="billing@northwind.bench.test", locale="de",
            )  # fmt: skip
            session.add(brand)
            session.flush()
            assert brand.id is not None
            session.add(GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name="b"))
            session.flush()
        account = session.exec(select(GatewayAccount)).one()
        now = datetime.now(UTC)
        for n in range(offset, offset + payments):
            customer = GatewayCustomer(f"cus_b{n}", f"c{n}@example.org", f"Kunde {n}", "DE",
                                       "Hauptstraße 5\n10115 Berlin", LOCALES[n % 4])  # fmt: skip
            link_gateway_customer(session, account, customer)
            apply_payment(
                session, account,
                GatewayPayment(f"pi_b{n}", f"cus_b{n}", PaymentStatus.SUCCEEDED, 4900 + n, "EUR",
                               now, now, description="Cloud Storage Pro, 1 month",
                               payment_method="visa", card_last4="4242"),
            )  # fmt: skip
        session.commit()


WORKER = """
import sys, threading, time
from sqlmodel import select, col
from billbox.db import make_engine, session_factory
from billbox.jobs import run_job
from billbox.models import Job, JobState
from bench.receipts import settings_for
from workers.registry import default_handlers
from billbox.logs import configure_logging
configure_logging("WARNING")  # to stderr (a file): a full stdout pipe would stall the worker
url, port, tmp, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
settings = settings_for(url, port, tmp)
factory = session_factory(make_engine(url))
handlers = default_handlers(settings)
print("ready", flush=True)
sys.stdin.readline()
def loop():
    idle = 0
    while idle < 20:
        with factory() as s:
            queued = select(Job.id).where(Job.state == JobState.QUEUED)
            ids = s.exec(queued.order_by(col(Job.id)).limit(20)).all()
        if not ids:
            idle += 1; time.sleep(0.05); continue
        idle = 0
        for i in ids:
            try:
                run_job(factory, i, handlers)
            except Exception as exc:  # a busy database: the job stays queued, try again
                print(f"run_job {i}: {exc.__class__.__name__}", file=sys.stderr)
ts = [threading.Thread(target=loop) for _ in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
"""


def run_workers(url: str, port: int, tmp: str, processes: int, threads: int, expect: int) -> float:
    """Start ``processes`` workers, release them together; seconds until ``expect`` rows SENT."""
    from billbox.db import make_engine, session_factory
    from billbox.models import OutboundEmail, OutboundState

    errors = open(f"{tmp}/workers.log", "a")  # noqa: SIM115 - closed after the workers
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, url, str(port), tmp, str(threads)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True)
        for _ in range(processes)
    ]  # fmt: skip
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    factory = session_factory(make_engine(url))
    start = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    sent = 0
    while sent < expect:
        time.sleep(0.02)
        with factory() as s:
            sent = len(
                s.exec(
                    select(OutboundEmail.id).where(OutboundEmail.state == OutboundState.SENT)
                ).all()
            )
        if time.perf_counter() - start > 600:
            raise RuntimeError(f"only {sent} of {expect} receipts sent after 600 s")
    elapsed = time.perf_counter() - start
    for p in procs:
        p.wait(60)
    errors.close()
    return elapsed


def reportlab_floor(lines: int) -> bytes:
    """The same content drawn with platypus by hand: title, parties, line table, totals."""
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.lib.styles import getSampleStyleSheet  # type: ignore[import-untyped]
    from reportlab.platypus import (  # type: ignore[import-untyped]
        Paragraph,
        SimpleDocTemplate,
        Table,
    )

    styles = getSampleStyleSheet()
    out = io.BytesIO()
    rows = [["Pos", "Beschreibung", "Menge", "Preis", "Netto"]] + [
        [str(i + 1), "Speicher 100 GB", "1", "9,00 €", "9,00 €"] for i in range(lines)
    ]
    story = [
        Paragraph("Rechnung INV-2026-000001", styles["Title"]),
        Paragraph("Northwind Cloud GmbH, Friedrichstraße 123, 10117 Berlin", styles["Normal"]),
        Paragraph("Jürgen Groß, Hauptstraße 5, 10115 Berlin", styles["Normal"]),
        Table(rows),
        Paragraph("Summe netto 45,00 € · USt 19 % 8,55 € · Gesamt 53,55 €", styles["Normal"]),
    ]
    SimpleDocTemplate(out, pagesize=A4).build(story)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=9, help="render samples")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    from billbox.documents.render import render_document

    doc5 = sample(5)
    html5 = _html(doc5)
    ours_ms, bare_ms = paired_medians_ms(lambda: render_document(*doc5), lambda: bare(html5),
                                         args.runs)  # fmt: skip
    floor_ms = statistics.median(_cpu_ms(lambda: reportlab_floor(5)) for _ in range(args.runs))
    rows = [
        ("bare xhtml2pdf render, 5 lines", f"{bare_ms:.1f} ms", f"{1000 / bare_ms:.1f}/s", ""),
        ("reportlab platypus floor, 5 lines", f"{floor_ms:.1f} ms", f"{1000 / floor_ms:.1f}/s", ""),
        ("our render, 5 lines", f"{ours_ms:.1f} ms", f"{1000 / ours_ms:.1f}/s",
         f"{ours_ms / bare_ms:.2f}x bare (target <= 1.2x)"),
    ]  # fmt: skip
    failures = 0
    for processes in [int(p) for p in args.processes.split(",")]:
        with (
            database(args.database) as url,
            tempfile.TemporaryDirectory() as tmp,
            relay_process() as (port, counted),
        ):
            seed(_factory(url), args.payments, 0)
            elapsed = run_workers(url, port, tmp, processes, args.threads, args.payments)
            rate = args.payments / elapsed
            resend_s = _resend(url, port, tmp, args.payments)
        if counted and counted[0] != args.payments + args.payments // 10:
            failures += 1
            print(f"relay counted {counted[0]} deliveries, expected "
                  f"{args.payments + args.payments // 10}", file=sys.stderr)  # fmt: skip
        target = 25 if processes == 1 else 45
        rows.append((f"billbox end to end, {processes} process(es) x {args.threads} threads",
                     f"{elapsed:.1f} s for {args.payments}", f"{rate:.1f}/s",
                     f"target >= {target}/s: {'met' if rate >= target else 'missed'}"))  # fmt: skip
        resent = args.payments // 10
        rows.append((f"resend of {resent} (stored PDF)", f"{resend_s:.2f} s",
                     f"{resent / resend_s:.1f}/s", "PDF bytes unchanged"))  # fmt: skip
    _print(rows, args.markdown, args.database)
    for lines in (5, 50, 500):
        print(f"peak RSS rendering {lines} lines in a fresh process: {peak_rss_mb(lines):.0f} MB")
    return 1 if failures else 0


def _html(doc: tuple[Any, Any, Any, Any]) -> str:
    from billbox.documents.render import TEMPLATE, document_context
    from billbox.pdf import renderer

    return renderer().render_html(TEMPLATE, document_context(*doc))


def _cpu_ms(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return (time.process_time() - start) * 1000


def _factory(url: str) -> sessionmaker[Session]:
    from billbox.db import make_engine, session_factory

    return session_factory(make_engine(url))


def _resend(url: str, port: int, tmp: str, payments: int) -> float:
    """Resend a tenth of the documents through a worker; seconds; PDFs must not change."""
    from billbox.models import Document
    from mailbridge.resend import queue_resend

    factory = _factory(url)
    with factory() as s:
        docs = s.exec(select(Document).order_by(col(Document.id)).limit(payments // 10)).all()
        before = {d.id: d.pdf_sha256 for d in docs}
        for d in docs:
            assert d.id is not None
            queue_resend(s, d.id, actor="bench@billbox.test", reason="bench resend")
        s.commit()
    elapsed = run_workers(url, port, tmp, 1, 2, payments + len(docs))
    with factory() as s:
        after = {d.id: d.pdf_sha256 for d in s.exec(select(Document)) if d.id in before}
    if after != before:
        raise RuntimeError("a resend changed a stored PDF")
    return elapsed


def _print(rows: list[tuple[str, str, str, str]], markdown: bool, db: str) -> None:
    header = ("measure", "time", "rate", "note")
    if markdown:
        print(f"| {' | '.join(header)} |\n|---|--:|--:|---|")
        for row in rows:
            print(f"| {' | '.join(row)} |")
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    print(f"database: {db}")
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
