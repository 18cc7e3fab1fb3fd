"""Sending a document's email through real aiosmtpd relays, exactly once.

Each test runs the ``send_document`` job with :func:`billbox.jobs.run_job`
against a relay on loopback (plain, STARTTLS + AUTH, or implicit TLS with
trustme certificates) and reads back what the relay received with the stdlib.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from billbox.jobs import JobResult, run_job, submit
from billbox.models import Document, Job, JobState, OutboundEmail, OutboundState, utcnow
from billbox.settings import load_settings
from mailbridge.compose import ComposeConfig
from mailbridge.relay import RelayConnections, deliver, parse_relay_url
from mailbridge.resend import ResendAudit, queue_resend
from mailbridge.send import (
    SEND_DOCUMENT_JOB,
    MailerConfig,
    mailer_config,
    make_send_document,
    purpose_key,
    queue_document_email,
)
from mailbridge.tokens import read_reply_token, token_from_address
from mailbridge.verp import read_verp_address
from tests.mail_world import (
    PDF,
    REPLY_DOMAIN,
    SECRET,
    Certificates,
    RelaySink,
    free_port,
    make_document,
    make_world,
    relay_sink,
)
from workers.registry import default_handlers


@pytest.fixture(scope="module")
def certs() -> Certificates:
    return Certificates.make()


@pytest.fixture
def sink() -> Iterator[RelaySink]:
    with relay_sink("plain") as running:
        yield running


def handlers(url: str | None, certs: Certificates | None = None, timeout: float = 5.0):
    relay = None
    if url is not None:
        context = certs.client if certs else None
        relay = parse_relay_url(url, helo_name=REPLY_DOMAIN, timeout=timeout, tls_context=context)
    config = MailerConfig(ComposeConfig(secret=SECRET, reply_domain=REPLY_DOMAIN), relay)
    return {SEND_DOCUMENT_JOB: make_send_document(config)}


def run_now(factory, job_id: int, table) -> JobResult:
    """Run the job now, even if its retry is scheduled for later."""
    with factory() as session:
        session.execute(sa.update(Job).where(col(Job.id) == job_id).values(run_after=utcnow()))
        session.commit()
    return run_job(factory, job_id, table)


def queue(factory, **doc) -> tuple[int, int]:
    """A document and its first-email job; returns (document id, job id)."""
    with factory() as session:
        world = make_world(session)
        document = make_document(session, world, **doc)
        job = queue_document_email(session, document.id)
        session.commit()
        return document.id, job.id


def outbound(factory, key: str) -> OutboundEmail:
    with factory() as session:
        return session.exec(select(OutboundEmail).where(OutboundEmail.purpose_key == key)).one()


def parse(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_receipt_is_delivered_once_and_parses_back_with_everything_in_place(factory, sink):
    """Through a plain relay: MIME shape, PDF, signed Reply-To and VERP sender, row SENT."""
    document_id, job_id = queue(factory)
    assert run_job(factory, job_id, handlers(sink.url)).outcome == "done"

    [delivery] = sink.handler.deliveries
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.SENT
    assert row.sent_at is not None and row.attempts == 1 and row.last_error is None
    assert delivery.rcpt_tos == ["ana@example.org"] == [row.to_address]
    assert read_verp_address(SECRET, delivery.mail_from, REPLY_DOMAIN) == row.id
    assert delivery.content.rstrip(b"\r\n") == row.raw.rstrip(b"\r\n")

    message = parse(delivery.content)
    assert message.get_content_type() == "multipart/mixed"
    assert message.get_body(("plain",)) is not None
    assert message.get_body(("html",)) is not None
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "NW-R-2026-000001.pdf"
    assert attachment.get_content() == PDF
    assert message["Message-ID"] == row.message_id
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"] == row.subject == "Your receipt NW-R-2026-000001 from Northwind"
    token = token_from_address(message["Reply-To"].addresses[0].addr_spec, REPLY_DOMAIN)
    claims = read_reply_token(SECRET, token)
    assert claims is not None
    assert claims.document_id == document_id
    assert claims.customer_id == row.customer_id
    tampered = token[:5] + ("b" if token[5] != "b" else "c") + token[6:]
    assert read_reply_token(SECRET, tampered) is None


def test_running_the_job_twice_or_a_duplicate_job_delivers_once(factory, sink):
    """A finished job is skipped; a second job for the same purpose finds the row SENT."""
    document_id, job_id = queue(factory)
    table = handlers(sink.url)
    assert run_job(factory, job_id, table).outcome == "done"
    assert run_now(factory, job_id, table).outcome == "skipped"
    with factory() as session:
        duplicate = submit(session, SEND_DOCUMENT_JOB, {"document_id": document_id})
        again = queue_document_email(session, document_id)
        session.commit()
    assert again.id == job_id  # queueing the first email is idempotent
    assert run_job(factory, duplicate.id, table).outcome == "done"
    assert len(sink.handler.deliveries) == 1


def test_a_451_is_retried_with_backoff_and_then_delivered_once_with_the_same_message(factory, sink):
    """4xx: the row goes back to PENDING with the reply; the retry sends the stored bytes."""
    document_id, job_id = queue(factory)
    sink.handler.replies = ["451 4.3.0 Try again later"]
    table = handlers(sink.url)
    first = run_job(factory, job_id, table)
    assert first.outcome == "retry" and first.retry_in and first.retry_in > 0
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.PENDING
    assert "451 4.3.0 Try again later" in row.last_error
    assert row.attempts == 1
    assert sink.handler.deliveries == []

    assert run_now(factory, job_id, table).outcome == "done"
    [delivery] = sink.handler.deliveries
    sent = outbound(factory, f"document:{document_id}")
    assert sent.state == OutboundState.SENT and sent.attempts == 2
    assert parse(delivery.content)["Message-ID"] == row.message_id
    assert sent.raw == row.raw


def test_a_550_recipient_rejection_fails_the_email_with_the_relays_reply(factory, sink):
    """5xx: FAILED, the relay's words kept for admins, the job failed, nothing delivered."""
    document_id, job_id = queue(factory)
    sink.handler.rcpt_reply = "550 5.1.1 <ana@example.org>: Recipient address rejected"
    result = run_job(factory, job_id, handlers(sink.url))
    assert result.outcome == "failed"
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.FAILED
    assert "550 5.1.1 <ana@example.org>: Recipient address rejected" in row.last_error
    assert sink.handler.deliveries == []
    assert run_now(factory, job_id, handlers(sink.url)).outcome == "skipped"


def test_a_554_after_the_message_fails_it_too(factory, sink):
    """A permanent answer to the message itself is final as well."""
    document_id, job_id = queue(factory)
    sink.handler.replies = ["554 5.7.1 Message rejected as spam"]
    assert run_job(factory, job_id, handlers(sink.url)).outcome == "failed"
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.FAILED
    assert "554 5.7.1 Message rejected as spam" in row.last_error


def test_a_row_left_in_sending_is_not_sent_again_but_flagged_for_review(factory, sink):
    """The one window: SENDING on (re)start means we may have sent; at most once, so FAILED."""
    document_id, job_id = queue(factory)
    table = handlers(sink.url)
    sink.handler.replies = ["451 4.3.0 later"]
    run_job(factory, job_id, table)  # creates the row (PENDING after the 451)
    with factory() as session:  # as if a worker died after committing SENDING
        session.execute(
            sa.update(OutboundEmail)
            .where(col(OutboundEmail.purpose_key) == f"document:{document_id}")
            .values(state=OutboundState.SENDING)
        )
        session.commit()
    assert run_now(factory, job_id, table).outcome == "failed"
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.FAILED
    assert row.last_error.startswith("delivery unknown:")
    assert row.message_id in row.last_error
    assert sink.handler.deliveries == []


def test_a_lost_reply_after_the_whole_message_is_unknown_and_never_resent(factory, sink):
    """The relay kept the message but its 250 never came: flagged, and a retry sends nothing."""
    document_id, job_id = queue(factory)
    sink.handler.replies = ["HANG"]
    sink.handler.hang_seconds = 2.0
    table = handlers(sink.url, timeout=0.5)
    assert run_job(factory, job_id, table).outcome == "failed"
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.FAILED
    assert row.last_error.startswith("delivery unknown:")
    assert len(sink.handler.deliveries) == 1
    with factory() as session:
        duplicate = submit(session, SEND_DOCUMENT_JOB, {"document_id": document_id})
        session.commit()
    assert run_job(factory, duplicate.id, table).outcome == "failed"
    assert len(sink.handler.deliveries) == 1


def test_a_relay_that_is_down_is_retried_with_the_reason_recorded(factory):
    """Connection refused: PENDING, the error recorded, the job scheduled again."""
    document_id, job_id = queue(factory)
    result = run_job(factory, job_id, handlers(f"smtp://127.0.0.1:{free_port()}"))
    assert result.outcome == "retry"
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.PENDING and row.attempts == 1
    assert "cannot talk to relay 127.0.0.1" in row.last_error


def test_running_out_of_attempts_on_4xx_fails_the_email(factory, sink):
    """The last allowed attempt turns a temporary error into FAILED, so admins see it."""
    document_id, job_id = queue(factory)
    with factory() as session:
        session.execute(sa.update(Job).where(col(Job.id) == job_id).values(max_attempts=1))
        session.commit()
    sink.handler.replies = ["421 4.7.0 Too busy"]
    assert run_job(factory, job_id, handlers(sink.url)).outcome == "failed"
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.FAILED
    assert row.last_error.startswith("gave up after 1 attempts: end of DATA: 421")


def test_without_a_relay_the_job_fails_clearly_and_creates_nothing(factory):
    """No BILLBOX_SMTP_RELAY: a permanent error naming the setting, no row to confuse anyone."""
    _, job_id = queue(factory)
    result = run_job(factory, job_id, handlers(None))
    assert result.outcome == "failed" and "BILLBOX_SMTP_RELAY" in (result.error or "")
    with factory() as session:
        assert session.exec(select(OutboundEmail)).all() == []


def test_a_document_without_its_pdf_yet_is_retried_not_failed(factory, sink):
    """The PDF may still be rendering: back off and try again."""
    _, job_id = queue(factory, pdf=None)
    result = run_job(factory, job_id, handlers(sink.url))
    assert result.outcome == "retry" and "no PDF yet" in (result.error or "")
    assert sink.handler.deliveries == []


def test_bad_payloads_fail_permanently(factory, sink):
    """A job that can never succeed is not retried."""
    with factory() as session:
        jobs = [
            submit(session, SEND_DOCUMENT_JOB, {"document_id": "7"}),
            submit(session, SEND_DOCUMENT_JOB, {"document_id": 999}),
            submit(session, SEND_DOCUMENT_JOB, {"document_id": 1, "purpose": "resend:x"}),
        ]
        session.commit()
        ids = [job.id for job in jobs]
    outcomes = [run_job(factory, job_id, handlers(sink.url)).outcome for job_id in ids]
    assert outcomes == ["failed", "failed", "failed"]


def test_starttls_with_auth_delivers_over_tls_as_the_authenticated_user(factory, certs):
    """smtp+starttls://user:pass@: TLS verified against the CA, then AUTH, then the message."""
    with relay_sink("starttls", certs) as relay:
        document_id, job_id = queue(factory)
        assert run_job(factory, job_id, handlers(relay.url, certs)).outcome == "done"
        [delivery] = relay.handler.deliveries
    assert delivery.tls and delivery.authenticated
    assert outbound(factory, f"document:{document_id}").state == OutboundState.SENT


def test_a_wrong_password_is_retried_not_failed(factory, certs):
    """AUTH refused is the operator's problem, not the message's: retried with the reason."""
    with relay_sink("starttls", certs) as relay:
        document_id, job_id = queue(factory)
        url = relay.url.replace("s3cret%3Apass", "wrong")
        assert run_job(factory, job_id, handlers(url, certs)).outcome == "retry"
    row = outbound(factory, f"document:{document_id}")
    assert row.state == OutboundState.PENDING and "AUTH" in row.last_error
    assert relay.handler.deliveries == []


def test_starttls_required_but_not_offered_is_not_sent_in_clear(factory, sink):
    """smtp+starttls:// against a relay without STARTTLS: nothing goes out unencrypted."""
    document_id, job_id = queue(factory)
    url = f"smtp+starttls://127.0.0.1:{sink.port}"
    assert run_job(factory, job_id, handlers(url)).outcome == "retry"
    assert "does not offer STARTTLS" in outbound(factory, f"document:{document_id}").last_error
    assert sink.handler.deliveries == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtps_delivers_over_implicit_tls(factory, certs):
    """smtps://user:pass@host: TLS from the first byte."""
    with relay_sink("smtps", certs) as relay:
        _, job_id = queue(factory)
        assert run_job(factory, job_id, handlers(relay.url, certs)).outcome == "done"
        [delivery] = relay.handler.deliveries
    assert delivery.tls and delivery.authenticated


def test_settings_build_the_mailer_with_the_relay_ca_file(factory, certs, tmp_path: Path):
    """BILLBOX_SMTP_RELAY + BILLBOX_SMTP_RELAY_CA_FILE through default_handlers: delivered."""
    ca_file = tmp_path / "ca.pem"
    certs.ca.cert_pem.write_to_path(str(ca_file))
    with relay_sink("starttls", certs) as relay:
        settings = load_settings(
            secret_key=SECRET,
            reply_domain=REPLY_DOMAIN,
            smtp_relay=relay.url,
            smtp_relay_ca_file=ca_file,
            _env_file=None,
        )
        config = mailer_config(settings)
        assert config.relay is not None and config.relay.password == "s3cret:pass"
        assert "s3cret" not in repr(config.relay)
        _, job_id = queue(factory)
        assert run_job(factory, job_id, default_handlers(settings)).outcome == "done"
        assert len(relay.handler.deliveries) == 1


def test_a_resend_is_a_second_email_of_the_same_stored_document_and_is_audited(factory, sink):
    """Same number, same PDF bytes (no re-render), a new Message-ID, an audit event each time."""
    document_id, job_id = queue(factory)
    table = handlers(sink.url)
    assert run_job(factory, job_id, table).outcome == "done"
    audited: list[ResendAudit] = []
    with factory() as session:
        first = queue_resend(
            session,
            document_id,
            actor="agent@northwind.test",
            reason="customer lost it",
            audit=lambda _session, event: audited.append(event),
        )
        second = queue_resend(
            session,
            document_id,
            actor="agent@northwind.test",
            reason="again",
            audit=lambda _session, event: audited.append(event),
        )
        session.commit()
    assert run_job(factory, first.id, table).outcome == "done"
    assert run_job(factory, second.id, table).outcome == "done"

    assert len(sink.handler.deliveries) == 3
    messages = [parse(d.content) for d in sink.handler.deliveries]
    assert len({m["Message-ID"] for m in messages}) == 3
    for message in messages:
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename() == "NW-R-2026-000001.pdf"
        assert attachment.get_content() == PDF
        assert "NW-R-2026-000001" in message["Subject"]
    assert "copy of a document" in messages[1].get_body(("plain",)).get_content()
    with factory() as session:
        assert session.get(Document, document_id).pdf == PDF
        keys = session.exec(select(OutboundEmail.purpose_key).order_by(OutboundEmail.id)).all()
    assert keys == [f"document:{document_id}", f"resend:{document_id}:1", f"resend:{document_id}:2"]
    assert [(e.action, e.actor, e.target_id, e.reason) for e in audited] == [
        ("document.resend", "agent@northwind.test", str(document_id), "customer lost it"),
        ("document.resend", "agent@northwind.test", str(document_id), "again"),
    ]
    assert audited[0].data["number"] == "NW-R-2026-000001"
    assert audited[0].data["purpose_key"] == f"resend:{document_id}:1"


def test_a_resend_of_an_unknown_or_unrendered_document_is_refused(session):
    """Resending needs a stored PDF: nothing is queued or audited otherwise."""
    world = make_world(session)
    unrendered = make_document(session, world, pdf=None)
    audited: list[ResendAudit] = []
    for document_id in (unrendered.id, 999_999):
        with pytest.raises(ValueError):
            queue_resend(
                session, document_id, actor="a", reason="r", audit=lambda s, e: audited.append(e)
            )
    assert audited == []
    assert session.exec(select(Job)).all() == []


def test_purpose_keys():
    """First email and resends have distinct, stable keys; anything else is refused."""
    assert purpose_key(7) == purpose_key(7, "receipt") == "document:7"
    assert purpose_key(7, "resend:3") == "resend:7:3"
    for bad in ("resend:0", "resend:-1", "resend:", "other", 5):
        with pytest.raises(ValueError):
            purpose_key(7, bad)


def test_the_worker_registers_the_send_job_when_it_has_settings(settings):
    """default_handlers(settings) knows send_document; the test defaults do not need it."""
    assert SEND_DOCUMENT_JOB in default_handlers(settings)
    assert SEND_DOCUMENT_JOB not in default_handlers()


def test_a_job_left_running_by_a_dead_worker_is_picked_up_after_its_lease(factory, sink):
    """The lease expiry path reaches the same exactly-once decision (here: still PENDING)."""
    _, job_id = queue(factory)
    with factory() as session:
        session.execute(
            sa.update(Job)
            .where(col(Job.id) == job_id)
            .values(state=JobState.RUNNING, lease_until=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    assert run_job(factory, job_id, handlers(sink.url)).outcome == "done"
    assert len(sink.handler.deliveries) == 1


def test_nothing_reaches_the_relay_when_committing_sending_fails(sink):
    """If SENDING cannot be committed, the connection drops before any byte of the message."""
    relay = parse_relay_url(sink.url, helo_name=REPLY_DOMAIN, timeout=5)

    def database_gone() -> None:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError, match="database gone"):
        deliver(
            relay,
            "bounce@reply.billbox.test",
            "ana@example.org",
            b"Subject: hi\r\n\r\nhello\r\n",
            before_body=database_gone,
        )
    assert sink.handler.deliveries == []


def test_an_internationalised_address_is_sent_with_smtputf8(factory, sink):
    """A UTF-8 mailbox goes out with the SMTPUTF8 extension, headers in UTF-8."""
    with factory() as session:
        world = make_world(session)
        document = make_document(session, world, buyer={"name": "José", "email": "josé@ejemplo.es"})
        job = queue_document_email(session, document.id)
        session.commit()
        job_id = job.id
    assert run_job(factory, job_id, handlers(sink.url)).outcome == "done"
    [delivery] = sink.handler.deliveries
    assert delivery.rcpt_tos == ["josé@ejemplo.es"]
    # SMTPUTF8 headers are raw UTF-8: the stdlib reads them from text
    message = message_from_string(delivery.content.decode("utf-8"), policy=policy.default)
    assert message["To"].addresses[0].addr_spec == "josé@ejemplo.es"


def test_a_paid_payment_becomes_a_rendered_receipt_in_the_relay_exactly_once(factory, sink):
    """End to end: issue_document renders the PDF and submits send_document; the worker's
    handlers email it once with that very PDF; a resend attaches the same bytes again."""
    from billbox.documents import ISSUE_DOCUMENT_JOB
    from billbox.documents import SEND_DOCUMENT_JOB as DOCUMENTS_SEND_JOB
    from tests.document_world import CASES
    from tests.document_world import make_world as make_paid_world

    settings = load_settings(
        secret_key=SECRET, reply_domain=REPLY_DOMAIN, smtp_relay=sink.url, _env_file=None
    )
    table = default_handlers(settings)
    with factory() as session:
        world = make_paid_world(session, CASES["es_it_oss"])
        issue = submit(session, ISSUE_DOCUMENT_JOB, {"payment_id": world.payment.id})
        session.commit()
    assert run_job(factory, issue.id, table).outcome == "done"
    with factory() as session:
        [send] = session.exec(select(Job).where(Job.kind == DOCUMENTS_SEND_JOB)).all()
        document = session.exec(select(Document)).one()
    assert DOCUMENTS_SEND_JOB == SEND_DOCUMENT_JOB
    assert run_job(factory, send.id, table).outcome == "done"
    assert run_now(factory, send.id, table).outcome == "skipped"

    [delivery] = sink.handler.deliveries
    message = parse(delivery.content)
    assert message["Subject"] == f"Su recibo {document.number} de Soluciones Núñez"
    assert "24,40\xa0€" in message.get_body(("plain",)).get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == document.pdf
    assert attachment.get_content().startswith(b"%PDF")

    with factory() as session:
        resend = queue_resend(
            session, document.id, actor="agent", reason="lost", audit=lambda s, e: None
        )
        session.commit()
    assert run_job(factory, resend.id, table).outcome == "done"
    assert len(sink.handler.deliveries) == 2
    [again] = list(parse(sink.handler.deliveries[1].content).iter_attachments())
    assert again.get_content() == document.pdf
    with factory() as session:
        assert session.get(Document, document.id).pdf_sha256 == document.pdf_sha256


def test_when_another_run_takes_the_row_first_this_one_sends_nothing(factory, sink):
    """Two runs of one purpose: the conditional PENDING→SENDING lets exactly one send.

    The relay's RCPT hook plays the other worker: it moves the row to SENDING
    while this run waits for 354, so this run's claim finds nothing to claim,
    drops the connection before the message, and leaves the row to the other.
    """
    document_id, job_id = queue(factory)
    sink.handler.replies = ["451 4.3.0 later"]
    run_job(factory, job_id, handlers(sink.url))  # the row now exists, PENDING
    key = f"document:{document_id}"

    def other_worker_claims() -> None:
        with factory() as session:
            session.execute(
                sa.update(OutboundEmail)
                .where(col(OutboundEmail.purpose_key) == key)
                .values(state=OutboundState.SENDING)
            )
            session.commit()

    sink.handler.on_rcpt = other_worker_claims
    assert run_now(factory, job_id, handlers(sink.url)).outcome == "done"
    assert sink.handler.deliveries == []
    row = outbound(factory, key)
    assert row.state == OutboundState.SENDING and row.attempts == 1


def test_a_missing_relay_ca_file_stops_the_program_naming_the_setting(tmp_path: Path):
    """BILLBOX_SMTP_RELAY_CA_FILE must exist: a typo fails at startup, not at the first send."""
    from billbox.errors import SettingsError

    with pytest.raises(SettingsError) as info:
        load_settings(
            secret_key=SECRET, smtp_relay_ca_file=tmp_path / "missing.pem", _env_file=None
        )
    assert info.value.variable == "BILLBOX_SMTP_RELAY_CA_FILE"


def test_a_thread_reuses_its_relay_connection_and_replaces_one_the_relay_dropped(certs):
    """Messages in a row share one authenticated TLS session; when the relay went away
    meanwhile, RSET fails and a fresh connection carries the next message."""
    with relay_sink("starttls", certs) as relay:
        config = parse_relay_url(
            relay.url, helo_name=REPLY_DOMAIN, timeout=5, tls_context=certs.client
        )
        pool = RelayConnections(config)
        for n in (1, 2):
            deliver(
                pool, "b@reply.billbox.test", "ana@example.org", b"Subject: %d\r\n\r\nhi\r\n" % n
            )
        first, second = relay.handler.deliveries
        assert first.peer == second.peer and second.tls and second.authenticated
        port = relay.port
    with relay_sink("starttls", certs, port=port) as restarted:  # the old connection is gone
        deliver(pool, "b@reply.billbox.test", "ana@example.org", b"Subject: 3\r\n\r\nhi\r\n")
        [third] = restarted.handler.deliveries
    assert third.peer != second.peer and third.tls and third.authenticated


def test_an_idle_connection_past_max_idle_is_not_reused(sink):
    """Relays close idle sessions; we stop reusing one long before that."""
    pool = RelayConnections(parse_relay_url(sink.url, helo_name=REPLY_DOMAIN), max_idle=0.0)
    for n in (1, 2):
        deliver(pool, "b@reply.billbox.test", "ana@example.org", b"Subject: %d\r\n\r\nhi\r\n" % n)
    first, second = sink.handler.deliveries
    assert first.peer != second.peer


def test_a_resend_is_written_to_the_hash_chained_audit_log_by_default(factory, sink):
    """Without an explicit hook the resend lands in billbox.audit, and the chain verifies."""
    from billbox.audit import verify_chain
    from billbox.models import AuditEvent

    document_id, _ = queue(factory)
    with factory() as session:
        job = queue_resend(session, document_id, actor="agent@northwind.test", reason="lost")
        session.commit()
        [event] = session.exec(select(AuditEvent)).all()
        assert (event.action, event.actor, event.target_kind, event.target_id) == (
            "document.resend",
            "agent@northwind.test",
            "document",
            str(document_id),
        )
        assert event.reason == "lost" and event.data["job_id"] == job.id
        assert verify_chain(session) is None
