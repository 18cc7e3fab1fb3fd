"""VERP envelope senders: signed, and a DSN sent to one marks exactly that email bounced."""

from __future__ import annotations

import pytest
from sqlmodel import select

from billbox.jobs import run_job
from billbox.models import InboundMessage, InboundSource, Job, OutboundEmail, OutboundState
from billbox.settings import load_settings
from mailbridge.inbound_store import store_inbound
from mailbridge.send import queue_document_email
from mailbridge.verp import outbound_for_bounce, read_verp_address, verp_address
from tests.mail_world import REPLY_DOMAIN, SECRET, make_document, make_world, relay_sink
from workers.registry import default_handlers


def test_a_verp_address_reads_back_to_its_id_whatever_the_case():
    """Servers may change the local part's case; the hex tag survives it."""
    address = verp_address(SECRET, 42, REPLY_DOMAIN)
    assert address.startswith("bounce+42-") and address.endswith("@" + REPLY_DOMAIN)
    assert read_verp_address(SECRET, address, REPLY_DOMAIN) == 42
    assert read_verp_address(SECRET, address.upper(), REPLY_DOMAIN) == 42
    assert read_verp_address(SECRET, f"<{address}>", REPLY_DOMAIN) == 42


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: a.replace("bounce+42-", "bounce+43-"),  # another id, same tag
        lambda a: a[: -len(REPLY_DOMAIN) - 2] + "0@" + REPLY_DOMAIN,  # tag changed
        lambda a: a.replace("bounce+42-", "bounce+042-"),  # non-canonical id
        lambda a: a.replace(REPLY_DOMAIN, "evil.example"),  # foreign domain
        lambda a: a.split("-")[0] + "@" + REPLY_DOMAIN,  # no tag
        lambda a: "reply+" + a.removeprefix("bounce+"),  # not a VERP address
        lambda _a: "bounce+99999999999999999999-00@" + REPLY_DOMAIN,
        lambda _a: "ünïcode@" + REPLY_DOMAIN,
        lambda _a: "",
    ],
)
def test_forged_or_malformed_verp_addresses_are_none(mangle):
    """Anything we did not sign is None, never an exception."""
    address = verp_address(SECRET, 42, REPLY_DOMAIN)
    assert read_verp_address(SECRET, mangle(address), REPLY_DOMAIN) is None


def test_another_secret_does_not_verify():
    address = verp_address(SECRET, 42, REPLY_DOMAIN)
    assert read_verp_address("another-secret-key-0123", address, REPLY_DOMAIN) is None
    assert read_verp_address("", address, REPLY_DOMAIN) is None
    with pytest.raises(ValueError):
        verp_address("", 1, REPLY_DOMAIN)


def dsn(recipient: str, *, action: str = "failed", status: str = "5.1.1") -> bytes:
    """A DSN quoting neither our Message-ID nor our recipient: only the envelope can tell."""
    return f"""From: Mail Delivery System <MAILER-DAEMON@mx.elsewhere.example>
To: {recipient}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-9@mx.elsewhere.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.elsewhere.example

Final-Recipient: rfc822; ana.forward@elsewhere.example
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} mailbox unavailable

--B--
""".replace("\n", "\r\n").encode()


@pytest.fixture
def sent(factory):
    """A receipt really sent through a relay; returns (settings, outbound row, VERP sender)."""
    settings = load_settings(
        secret_key=SECRET, reply_domain=REPLY_DOMAIN, broker_url="stub", _env_file=None
    )
    with relay_sink("plain") as sink:
        settings = settings.model_copy(update={"smtp_relay": sink.url})
        with factory() as session:
            document = make_document(session, make_world(session))
            job = queue_document_email(session, document.id)
            session.commit()
        assert run_job(factory, job.id, default_handlers(settings)).outcome == "done"
        [delivery] = sink.handler.deliveries
    with factory() as session:
        row = session.exec(select(OutboundEmail)).one()
    return settings, row, delivery.mail_from


def process_inbound(factory, settings, raw: bytes, rcpt: str) -> InboundMessage:
    inbound_id = store_inbound(
        factory, raw, source=InboundSource.SMTP, envelope_from="", envelope_to=[rcpt]
    )
    with factory() as session:
        job = session.exec(select(Job).where(Job.kind == "inbound.process")).all()[-1]
    assert run_job(factory, job.id, default_handlers(settings)).outcome == "done"
    with factory() as session:
        return session.get(InboundMessage, inbound_id)


def state_of(factory, row_id: int) -> OutboundEmail:
    with factory() as session:
        return session.get(OutboundEmail, row_id)


def test_a_dsn_to_the_verp_address_marks_that_email_bounced(factory, sent):
    """The inbound pipeline reads the signed envelope recipient and marks the row."""
    settings, row, verp = sent
    inbound = process_inbound(factory, settings, dsn(verp), verp)
    assert inbound.state.value == "ignored"
    bounced = state_of(factory, row.id)
    assert bounced.state == OutboundState.BOUNCED
    assert bounced.bounced_at is not None
    assert "5.1.1" in bounced.last_error


def test_a_dsn_to_a_forged_verp_address_marks_nothing(factory, sent):
    """Without our signature the address is just text: the receipt stays SENT."""
    settings, row, verp = sent
    local, _, domain = verp.partition("@")
    forged = f"{local[:-1]}{'1' if local[-1] != '1' else '2'}@{domain}"
    process_inbound(factory, settings, dsn(forged), forged)
    assert state_of(factory, row.id).state == OutboundState.SENT


def test_a_delay_notice_to_the_verp_address_marks_nothing(factory, sent):
    """'Action: delayed' is not a failure, even when the envelope names the email."""
    settings, row, verp = sent
    process_inbound(factory, settings, dsn(verp, action="delayed", status="4.4.7"), verp)
    assert state_of(factory, row.id).state == OutboundState.SENT


def test_outbound_for_bounce_without_details_still_marks_the_named_row(factory, sent):
    """Called with just the address (no parsed DSN), the row is marked with its recipient."""
    _, row, verp = sent
    with factory() as session:
        marked = outbound_for_bounce(session, verp, secret=SECRET, reply_domain=REPLY_DOMAIN)
        session.commit()
    assert marked is not None and marked.id == row.id
    after = state_of(factory, row.id)
    assert after.state == OutboundState.BOUNCED
    assert "ana@example.org" in after.last_error
