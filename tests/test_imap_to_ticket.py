"""End to end through IMAP: a reply dropped in a mailbox becomes one ticket message."""

from __future__ import annotations

import asyncio

from sqlmodel import select

from billbox.jobs import run_job
from billbox.models import InboundState, Job, JobState, ThreadRule, Ticket, TicketMessage
from mailbridge.imap import ImapPoller, PollerOptions, parse_imap_url
from tests.test_imap import dovecot  # noqa: F401 - the module-scoped Dovecot fixture
from tests.test_inbox import handlers, receipt  # noqa: F401 - fixtures

FAST = PollerOptions(command_timeout=5, backoff_initial=0.05, backoff_max=0.5)


def test_a_reply_in_an_imap_mailbox_becomes_one_ticket_message(
    dovecot,  # noqa: F811
    factory,
    handlers,  # noqa: F811
    receipt,  # noqa: F811
):
    """Poll, process: one ticket under the token's customer, context attached, quote gone.

    Polling again after processing stores nothing new and files nothing twice.
    """
    user = dovecot.fresh_user()
    raw = (
        b"From: Ana <ana@example.org>\r\nTo: "
        + receipt["token_address"].encode()
        + b"\r\nSubject: Re: Your receipt NW-R-1\r\nMessage-ID: <imap-1@example.org>\r\n\r\n"
        b"Please add my company name.\r\n\r\nOn Mon, 2 Nov 2026, Northwind wrote:\r\n"
        b"> Thank you for your payment.\r\n"
    )
    dovecot.append(user, raw)
    config = parse_imap_url(dovecot.url(user))

    async def poll_twice() -> list[int]:
        counts = []
        for _ in range(2):
            poller = ImapPoller(config, factory, FAST)
            try:
                counts.append(await poller.poll_once())
            finally:
                await poller.close()
        return counts

    assert asyncio.run(poll_twice()) == [1, 0]
    with factory() as session:
        jobs = session.exec(select(Job).where(Job.state == JobState.QUEUED)).all()
    assert len(jobs) == 1
    assert run_job(factory, jobs[0].id, handlers).outcome == "done"
    with factory() as session:
        tickets = session.exec(select(Ticket)).all()
        messages = session.exec(select(TicketMessage)).all()
    assert len(tickets) == 1 and len(messages) == 1
    assert tickets[0].customer_id == receipt["customer"].id
    assert messages[0].thread_rule == ThreadRule.REPLY_TOKEN
    assert messages[0].body_text == "Please add my company name."
    assert messages[0].billing_context["payments"][0]["external_id"] == "pi_1"
    with factory() as session:
        from billbox.models import InboundMessage

        row = session.exec(select(InboundMessage)).one()
    assert row.state == InboundState.PROCESSED and row.raw == raw
