"""Replies become tickets: the whole inbound pipeline against the real database."""

from __future__ import annotations

import pytest
from sqlmodel import select

from billbox.jobs import run_job
from billbox.models import (
    InboundMessage,
    InboundSource,
    InboundState,
    Job,
    JobState,
    OutboundEmail,
    ThreadRule,
    Ticket,
    TicketMessage,
)
from billbox.settings import load_settings
from mailbridge import store_inbound
from tests.billing_world import make_receipt
from workers.registry import default_handlers

SECRET = "inbox-test-secret-0123456789"
DOMAIN = "reply.example.com"


@pytest.fixture
def handlers(tmp_path):
    settings = load_settings(
        secret_key=SECRET, reply_domain=DOMAIN, broker_url="stub", var_dir=tmp_path, _env_file=None
    )
    return default_handlers(settings)


@pytest.fixture
def receipt(session):
    """A customer with a Stripe payment and a receipt emailed with a signed Reply-To."""
    world = make_receipt(session, secret=SECRET, domain=DOMAIN)
    return {"customer": world.customer, "token_address": world.token_address, "email": world.email}


def deliver(factory, handlers, raw: bytes, to: list[str]) -> InboundMessage:
    inbound_id = store_inbound(
        factory, raw, source=InboundSource.SMTP, envelope_from="sender@example.org", envelope_to=to
    )
    with factory() as session:
        job = session.exec(select(Job).where(Job.state == JobState.QUEUED)).one()
    assert run_job(factory, job.id, handlers).outcome == "done"
    with factory() as session:
        return session.get(InboundMessage, inbound_id)


def test_a_reply_to_a_receipt_opens_a_ticket_with_billing_context(factory, handlers, receipt):
    """Token → the right customer, a new ticket, the payment in the stored context."""
    raw = (
        b"From: Ana <ana@example.org>\r\nTo: "
        + receipt["token_address"].encode()
        + b"\r\nSubject: Re: Your receipt NW-R-1\r\nMessage-ID: <a1@example.org>\r\n"
        b"In-Reply-To: <unknown@example.org>\r\n\r\nWhy was I charged twice?\r\n"
    )
    row = deliver(factory, handlers, raw, [receipt["token_address"]])
    assert row.state == InboundState.PROCESSED and row.ticket_id
    with factory() as session:
        ticket = session.get(Ticket, row.ticket_id)
        message = session.exec(select(TicketMessage)).one()
        assert ticket.customer_id == receipt["customer"].id
        assert ticket.subject == "Your receipt NW-R-1"
        assert ticket.unverified_sender is False
        assert message.thread_rule == ThreadRule.REPLY_TOKEN
        assert message.body_text == "Why was I charged twice?"
        context = message.billing_context
        assert context["customer"]["email"] == "ana@example.org"
        assert [p["external_id"] for p in context["payments"]] == ["pi_1"]
        assert context["lifetime_value"] == {"EUR": 4900}
        linked = session.get(OutboundEmail, receipt["email"].id)
        assert linked.ticket_id == ticket.id


def test_the_next_reply_threads_into_the_same_ticket(factory, handlers, receipt):
    """A second reply (Outlook: In-Reply-To only) lands in the ticket the first opened."""
    first = deliver(
        factory,
        handlers,
        b"From: ana@example.org\r\nSubject: Re: receipt\r\nMessage-ID: <m1@x>\r\n\r\nFirst",
        [receipt["token_address"]],
    )
    second = deliver(
        factory,
        handlers,
        b"From: ana@example.org\r\nSubject: changed subject\r\n"
        b"Message-ID: <m2@x>\r\nIn-Reply-To: <m1@x>\r\n\r\nSecond",
        ["support@reply.example.com"],
    )
    assert second.ticket_id == first.ticket_id
    with factory() as session:
        rules = [
            m.thread_rule for m in session.exec(select(TicketMessage).order_by(TicketMessage.id))
        ]
    assert rules == [ThreadRule.REPLY_TOKEN, ThreadRule.IN_REPLY_TO]


def test_a_forwarded_receipt_from_someone_else_is_marked_unverified(factory, handlers, receipt):
    """A valid token from a sender the customer does not own: kept, flagged for the agent."""
    row = deliver(
        factory,
        handlers,
        b"From: bookkeeper@acme.example\r\nSubject: Fwd: receipt\r\n\r\nSee below",
        [receipt["token_address"]],
    )
    with factory() as session:
        ticket = session.get(Ticket, row.ticket_id)
        assert ticket.customer_id == receipt["customer"].id
        assert ticket.unverified_sender is True


def test_a_stranger_gets_a_ticket_without_a_customer(factory, handlers, receipt):
    """No token, unknown sender: a new ticket, no customer, empty context."""
    row = deliver(
        factory,
        handlers,
        b"From: who@else.example\r\nSubject: Hello\r\n\r\nHi",
        ["help@reply.example.com"],
    )
    with factory() as session:
        ticket = session.get(Ticket, row.ticket_id)
        message = session.exec(select(TicketMessage)).one()
    assert ticket.customer_id is None and message.billing_context == {}
    assert message.thread_rule == ThreadRule.NEW_TICKET


def test_auto_replies_never_open_a_ticket(factory, handlers, receipt):
    """An out-of-office reply is ignored: no ticket, classification recorded."""
    row = deliver(
        factory,
        handlers,
        b"From: ana@example.org\r\nAuto-Submitted: auto-replied\r\n"
        b"Subject: Out of Office\r\n\r\nBack Monday",
        [receipt["token_address"]],
    )
    assert row.state == InboundState.IGNORED and row.ticket_id is None
    with factory() as session:
        assert session.exec(select(Ticket)).all() == []


def test_a_human_message_without_a_sender_is_quarantined(factory, handlers, receipt):
    """Nobody could answer a message with no sender address: quarantine, raw kept."""
    raw = b"Subject: no sender\r\n\r\nhello"
    row = deliver(factory, handlers, raw, ["help@reply.example.com"])
    assert row.state == InboundState.QUARANTINED and row.raw == raw
    assert "no From header" in row.quarantine_reason


def test_the_inbox_connector_files_a_message_once(factory, handlers, receipt):
    """Delivering the same filing twice returns the first ticket message (idempotent)."""
    from mailbridge.helpdesks import Filing
    from mailbridge.helpdesks.inbox import InboxConnector
    from mailbridge.parse import parse_message
    from mailbridge.thread import decide_thread
    from mailbridge.ticketing import match_customer

    row = deliver(
        factory,
        handlers,
        b"From: ana@example.org\r\nSubject: x\r\n\r\nHi",
        ["help@reply.example.com"],
    )
    with factory() as session:
        row = session.get(InboundMessage, row.id)
        parsed = parse_message(row.raw)
        decision = decide_thread(
            session, parsed, row.envelope_to, secret=SECRET, reply_domain=DOMAIN
        )
        filing = Filing(row, parsed, decision, match_customer(session, parsed, decision))
        again = InboxConnector().deliver(session, filing)
        session.commit()
        assert again.ticket_id == row.ticket_id
        assert len(session.exec(select(TicketMessage)).all()) == 1


def test_a_forged_customer_address_is_marked_unverified(factory, handlers, receipt):
    """DMARC fail in the topmost Authentication-Results: the From is not trusted."""
    raw = (
        b"Authentication-Results: mx.reply.example.com; dmarc=fail (p=reject) "
        b"header.from=example.org; spf=fail smtp.mailfrom=example.org\r\n"
        b"From: ana@example.org\r\nSubject: refund me\r\n\r\nPlease refund to my new card"
    )
    row = deliver(factory, handlers, raw, ["help@reply.example.com"])
    with factory() as session:
        ticket = session.get(Ticket, row.ticket_id)
        stored = session.get(InboundMessage, row.id)
    assert ticket.customer_id == receipt["customer"].id
    assert ticket.unverified_sender is True
    assert stored.rule_hits["trust"][0] == "verdict:fail"


def test_the_ticket_shows_the_reply_without_quoted_history_and_safe_html(
    factory, handlers, receipt
):
    """Quoted history is stripped from the text; the HTML part is stored sanitised."""
    raw = (
        b"From: ana@example.org\r\nSubject: Re: Your receipt\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Can you send it with my VAT id?\r\n\r\n"
        b"On Mon, 2 Nov 2026 at 10:00, Northwind <billing@northwind.test> wrote:\r\n"
        b"> Thank you for your payment of EUR 49.00.\r\n--b\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p>Can you send it with my VAT id?</p><script>alert(1)</script>"
        b'<img src="https://tracker.example/p.gif"><a href="javascript:x()">x</a>\r\n--b--\r\n'
    )
    row = deliver(factory, handlers, raw, [receipt["token_address"]])
    with factory() as session:
        message = session.exec(select(TicketMessage)).one()
    assert row.state == InboundState.PROCESSED
    assert message.body_text == "Can you send it with my VAT id?"
    assert "Can you send it with my VAT id?" in message.body_html
    for hostile in ("<script", "tracker.example", "javascript:"):
        assert hostile not in message.body_html


def test_a_redelivered_identical_message_files_nothing_twice(factory, handlers, receipt):
    """The same bytes delivered again (a retry after a lost 250) are ignored as a duplicate."""
    raw = (
        b"From: ana@example.org\r\nMessage-ID: <dup@example.org>\r\n"
        b"Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nSubject: Question\r\n\r\nHello"
    )
    first = deliver(factory, handlers, raw, ["help@reply.example.com"])
    second = deliver(factory, handlers, raw, ["help@reply.example.com"])
    assert first.state == InboundState.PROCESSED
    assert second.state == InboundState.IGNORED
    assert second.rule_hits["duplicate_of"] == [str(first.id)]
    with factory() as session:
        assert len(session.exec(select(TicketMessage)).all()) == 1
