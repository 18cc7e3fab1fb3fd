"""``inspect_message``: what the pipeline would do with one message, with nothing stored."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlmodel import select

from billbox.models import (
    OutboundEmail,
    OutboundState,
    Ticket,
    TicketStatus,
)
from mailbridge import inspect as inspect_module
from mailbridge.classify import ClassifyContext
from mailbridge.inspect import InspectWriteError, inspect_message, render_text
from mailbridge.pipeline import PipelineConfig
from mailbridge.ticketing import match_customer
from mailbridge.trust import TrustContext
from tests.billing_world import make_receipt

SECRET = "inspect-test-secret-0123456789"
DOMAIN = "reply.example.com"
CONFIG = PipelineConfig(
    classify=ClassifyContext(our_message_id_domain=DOMAIN, loop_marker="billbox"),
    secret=SECRET,
    reply_domain=DOMAIN,
)
COUNTED = ("inbound_message", "ticket", "ticket_message", "job", "outbound_email")


@pytest.fixture
def receipt(session):
    """A customer with a receipt emailed from a signed Reply-To."""
    world = make_receipt(session, secret=SECRET, domain=DOMAIN)
    return {
        "customer_id": world.customer.id,
        "brand_id": world.brand.id,
        "document_id": world.document.id,
        "email_id": world.email.id,
        "token_address": world.token_address,
    }


def counts(factory) -> dict[str, int]:
    with factory() as session:
        return {
            table: session.execute(sa.text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one()
            for table in COUNTED
        }


def reply(to: str, sender: str = "ana@example.org", extra: str = "") -> bytes:
    return (
        f"Authentication-Results: mx.billbox.test; dkim=pass header.d=example.org;"
        f" dmarc=pass header.from=example.org\r\n"
        f"From: Ana <{sender}>\r\nTo: {to}\r\nSubject: Re: Your receipt NW-R-1\r\n"
        f"Message-ID: <a1@example.org>\r\n{extra}\r\nWhy was I charged twice?\r\n\r\n"
        "> Your receipt NW-R-1\r\n"
    ).encode()


def test_a_reply_with_a_valid_token_is_explained_and_nothing_is_stored(factory, receipt):
    """Human, threaded by reply_token, matched by token, sender verified; no row written."""
    before = counts(factory)
    report = inspect_message(factory, reply(receipt["token_address"]), CONFIG)
    assert counts(factory) == before
    assert report["class"] == "human"
    assert report["rules"] == []
    assert report["state"] == "processed"
    assert report["thread"] == {
        "rule": "reply_token",
        "ticket_id": None,
        "candidates": [],
        "token": {
            "customer_id": receipt["customer_id"],
            "document_id": receipt["document_id"],
            "brand_id": receipt["brand_id"],
        },
    }
    assert report["customer"] == {
        "id": receipt["customer_id"],
        "email": "ana@example.org",
        "matched_by": "token",
    }
    assert report["trust"]["verdict"] == "pass"
    assert report["trust"]["sender_verified"] is True
    assert report["trust"]["hits"] == ["dmarc_pass", "dkim_aligned_pass"]
    assert report["reply_text"].startswith("Why was I charged twice?")
    assert report["subject"] == "Re: Your receipt NW-R-1"
    assert report["from"] == "ana@example.org"
    assert report["message_id"] == "<a1@example.org>"
    assert report["outcome"].startswith("open a new ticket for customer")
    assert json.loads(json.dumps(report)) == report
    with factory() as session:  # link_document_emails was not run either
        assert session.get(OutboundEmail, receipt["email_id"]).ticket_id is None


def test_a_reply_to_a_receipt_with_a_ticket_names_that_ticket(factory, session, receipt):
    """With the receipt linked to an open ticket, the token threads there; still no writes."""
    ticket = Ticket(
        customer_id=receipt["customer_id"],
        subject="Your receipt NW-R-1",
        status=TicketStatus.SOLVED,
        requester_email="ana@example.org",
    )
    session.add(ticket)
    session.flush()
    email = session.get(OutboundEmail, receipt["email_id"])
    email.ticket_id = ticket.id
    session.add(email)
    session.commit()
    before = counts(factory)
    raw = reply(receipt["token_address"], extra="In-Reply-To: <receipt-1@reply.example.com>\r\n")
    report = inspect_message(factory, raw, CONFIG)
    assert counts(factory) == before
    assert report["thread"]["rule"] == "reply_token"
    assert report["thread"]["ticket_id"] == ticket.id
    assert report["thread"]["candidates"] == [
        ["reply_token", ticket.id],
        ["in_reply_to", ticket.id],
    ]
    assert report["outcome"] == f"append to ticket #{ticket.id} (rule reply_token)"
    with factory() as check:
        assert check.get(Ticket, ticket.id).status == TicketStatus.SOLVED  # not reopened


def test_a_forwarded_receipt_from_someone_else_shows_an_unverified_sender(factory, receipt):
    """A valid token, a sender the customer does not own: matched by token, not verified."""
    report = inspect_message(
        factory, reply(receipt["token_address"], sender="bookkeeper@acme.example"), CONFIG
    )
    assert report["customer"]["matched_by"] == "token"
    assert report["trust"]["sender_verified"] is False
    assert "NOT verified" in render_text(report)


def test_a_stranger_without_token_explains_why_a_new_ticket_opens(factory, receipt):
    """No token, no known ids, no tag: the outcome says so, and no customer is matched."""
    raw = b"From: who@else.example\r\nTo: help@reply.example.com\r\nSubject: Hello\r\n\r\nHi\r\n"
    report = inspect_message(factory, raw, CONFIG, envelope_to=["help@reply.example.com"])
    assert report["thread"] == {
        "rule": "new_ticket",
        "ticket_id": None,
        "candidates": [],
        "token": None,
    }
    assert report["customer"] is None
    assert report["trust"]["verdict"] == "unknown"
    assert report["outcome"].startswith("open a new ticket: no rule found a ticket")


def test_an_auto_reply_is_reported_with_its_rule_and_not_threaded(factory, receipt):
    """Out-of-office: class auto_reply, the rules that hit, ignored, nothing written."""
    before = counts(factory)
    raw = (
        "From: Ana <ana@example.org>\r\nTo: " + receipt["token_address"] + "\r\n"
        "Subject: Automatic reply: Your receipt NW-R-1\r\nAuto-Submitted: auto-replied\r\n"
        "Message-ID: <ooo@example.org>\r\n\r\nI am out of the office until Monday.\r\n"
    ).encode()
    report = inspect_message(factory, raw, CONFIG)
    assert counts(factory) == before
    assert report["class"] == "auto_reply"
    assert report["rules"] == ["auto_submitted", "ooo_subject"]
    assert report["state"] == "ignored"
    assert report["thread"] is None and report["customer"] is None
    assert "auto_submitted" in render_text(report)


def test_a_bounce_is_reported_but_our_outbound_email_is_not_marked(factory, receipt):
    """The bounce details are shown; apply_bounce is not run, so the email stays sent."""
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        b"To: billing@northwind.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your"
        b" message could not be delivered.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.org\r\n\r\n"
        b"Final-Recipient: rfc822; ana@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <receipt-1@reply.example.com>\r\nTo: ana@example.org\r\n"
        b"--b--\r\n"
    )
    before = counts(factory)
    report = inspect_message(factory, raw, CONFIG)
    assert counts(factory) == before
    assert report["class"] == "bounce"
    assert report["bounce"]["recipient"] == "ana@example.org"
    assert report["bounce"]["status"] == "5.1.1"
    assert report["bounce"]["original_message_id"] == "<receipt-1@reply.example.com>"
    with factory() as session:
        assert session.get(OutboundEmail, receipt["email_id"]).state == OutboundState.SENT
    assert "ana@example.org status 5.1.1" in render_text(report)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b"   \r\n\r\n", "empty message"),
        (b"\r\n\r\njust a body, no header at all", "no header fields"),
    ],
)
def test_garbage_is_malformed_with_a_reason(factory, raw, reason):
    """What cannot be parsed is class malformed, state quarantined, with the parser's reason."""
    before = counts(factory)
    report = inspect_message(factory, raw, CONFIG)
    assert counts(factory) == before
    assert report["class"] == "malformed"
    assert report["state"] == "quarantined"
    assert report["reason"] == reason
    assert report["thread"] is None and report["trust"] is None
    text = render_text(report)
    assert "malformed" in text and reason in text


def test_a_human_message_without_sender_would_be_quarantined(factory):
    """Parsed, human, but nobody to answer: the report gives the pipeline's reason."""
    raw = b"To: help@reply.example.com\r\nSubject: hi\r\n\r\nHello\r\n"
    report = inspect_message(factory, raw, CONFIG)
    assert report["class"] == "human"
    assert report["state"] == "quarantined"
    assert report["reason"] == "no From header"


def test_the_trust_context_decides_which_headers_are_believed(factory, receipt):
    """With our MTA ids configured, a header from another server is not believed."""
    raw = reply(receipt["token_address"])
    ours = TrustContext(frozenset({"mx.billbox.test"}))
    other = TrustContext(frozenset({"mx.elsewhere.test"}))
    assert inspect_message(factory, raw, CONFIG, trust=ours)["trust"]["verdict"] == "pass"
    assert inspect_message(factory, raw, CONFIG, trust=other)["trust"]["verdict"] == "unknown"


def test_render_text_is_a_readable_summary(factory, receipt):
    """The terminal view names the class, the thread rule, the customer and the trust verdict."""
    text = render_text(inspect_message(factory, reply(receipt["token_address"]), CONFIG))
    lines = text.splitlines()
    assert lines[0] == "Message-ID:  <a1@example.org>"
    assert "Class:       human" in lines
    assert "Thread:      reply_token -> new ticket" in lines
    assert f"Customer:    #{receipt['customer_id']} ana@example.org (matched by token)" in lines
    assert any(line.startswith("Trust:       pass (dmarc=pass dkim=pass spf=-") for line in lines)
    assert "  | Why was I charged twice?" in lines


def test_a_step_that_tries_to_write_is_stopped(factory, receipt, monkeypatch):
    """The guard: a pipeline step that adds a row makes inspect fail, and nothing is kept."""

    def writing_match(session, parsed, decision):
        session.add(
            Ticket(
                subject="should never exist",
                status=TicketStatus.OPEN,
                requester_email="x@example.org",
            )
        )
        session.flush()
        return match_customer(session, parsed, decision)

    monkeypatch.setattr(inspect_module, "match_customer", writing_match)
    before = counts(factory)
    with pytest.raises(InspectWriteError):
        inspect_message(factory, reply(receipt["token_address"]), CONFIG)
    assert counts(factory) == before


def test_inspect_predicts_what_the_pipeline_then_does(factory, receipt):
    """The thread rule and ticket inspect reports are the ones the real pipeline uses."""
    from billbox.jobs import run_job
    from billbox.models import InboundSource, Job, JobState, TicketMessage
    from mailbridge import store_inbound
    from mailbridge.pipeline import make_process_inbound

    raw = reply(receipt["token_address"])
    report = inspect_message(factory, raw, CONFIG)
    store_inbound(factory, raw, source=InboundSource.SMTP, envelope_from="a@b.c", envelope_to=[])
    with factory() as session:
        job = session.exec(select(Job).where(Job.state == JobState.QUEUED)).one()
    handlers = {"inbound.process": make_process_inbound(CONFIG)}
    assert run_job(factory, job.id, handlers).outcome == "done"
    with factory() as session:
        message = session.exec(select(TicketMessage)).one()
        ticket = session.get(Ticket, message.ticket_id)
    assert str(message.thread_rule) == report["thread"]["rule"]
    assert ticket.customer_id == report["customer"]["id"]
    assert ticket.unverified_sender is not report["trust"]["sender_verified"]
