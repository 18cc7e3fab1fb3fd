"""Replies filed in the inbox are pushed to an external helpdesk (Zendesk fake) exactly once.

The whole path: SMTP-stored reply → inbound job → ticket → ``helpdesk.push``
job → the vendor's API. A dropped response is retried without a duplicate,
a later reply waits for the ticket and then appends, bad credentials fail
the job and show on the account.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from billbox.jobs import run_job
from billbox.models import (
    HelpdeskAccount,
    InboundSource,
    Job,
    JobState,
    Ticket,
    TicketMessage,
)
from mailbridge import store_inbound
from mailbridge.helpdesks.accounts import seal_credentials
from mailbridge.helpdesks.note import billing_note
from mailbridge.helpdesks.push import PUSH_JOB, make_push_handler
from tests.billing_world import make_receipt
from tests.fakes.zendesk_fake import ZendeskFake
from workers.registry import default_handlers

SECRET = "push-test-secret-0123456789"
DOMAIN = "reply.example.com"


@pytest.fixture
def fake() -> Iterator[ZendeskFake]:
    with ZendeskFake() as server:
        yield server


@pytest.fixture
def world(factory, settings, fake):
    configured = settings.model_copy(
        update={"reply_domain": DOMAIN, "secret_key": SecretStr(SECRET)}
    )
    with factory() as s:
        receipt = make_receipt(s, secret=SECRET, domain=DOMAIN)
        s.add(
            HelpdeskAccount(
                kind="zendesk", name="zendesk", active=True,
                settings={"subdomain": "acme", "email": fake.agent_email},
                credentials_encrypted=seal_credentials(
                    SECRET, {"api_token": fake.api_token, "sidebar_secret": "s" * 20}
                ),
            )
        )  # fmt: skip
        s.commit()
        address = receipt.token_address
    handlers = {
        **default_handlers(configured),
        PUSH_JOB: make_push_handler(SECRET, DOMAIN, base_urls={"zendesk": fake.url}),
    }
    return {"address": address, "handlers": handlers}


def reply(factory, world, n: int) -> None:
    message = EmailMessage()
    message["From"] = "Ana López <ana@example.org>"
    message["To"] = world["address"]
    message["Subject"] = "Re: Your receipt"
    message["Message-ID"] = f"<reply-{n}@example.org>"
    message.set_content(f"Question number {n}: why two charges?")
    store_inbound(factory, message.as_bytes(), source=InboundSource.SMTP,
                  envelope_from="ana@example.org", envelope_to=[world["address"]])  # fmt: skip


def run_queued(factory, handlers, kind: str) -> list[str]:
    with factory() as s:
        ids = s.exec(
            select(Job.id)
            .where(Job.kind == kind, Job.state == JobState.QUEUED)
            .order_by(col(Job.id))
        ).all()
    return [run_job(factory, i, handlers).outcome for i in ids]


def test_a_reply_becomes_a_zendesk_ticket_with_the_billing_note_and_the_next_one_appends(
    factory, world, fake
):
    reply(factory, world, 1)
    assert run_queued(factory, world["handlers"], "inbound.process") == ["done"]
    assert run_queued(factory, world["handlers"], PUSH_JOB) == ["done"]
    assert len(fake.tickets) == 1
    [ticket_id] = fake.tickets
    comments = fake.comments(ticket_id)
    assert any("Question number 1" in (c.get("body") or "") for c in comments)
    notes = [c for c in comments if not c.get("public")]
    assert notes and "49.00 EUR" in (notes[0].get("html_body") or notes[0].get("body") or "")
    with factory() as s:
        ours = s.exec(select(Ticket)).one()
    assert (ours.helpdesk, ours.helpdesk_external_id) == ("zendesk", str(ticket_id))

    reply(factory, world, 2)
    assert run_queued(factory, world["handlers"], "inbound.process") == ["done"]
    assert run_queued(factory, world["handlers"], PUSH_JOB) == ["done"]
    assert len(fake.tickets) == 1
    assert any("Question number 2" in (c.get("body") or "") for c in fake.comments(ticket_id))
    with factory() as s:
        pushed = s.exec(select(TicketMessage.helpdesk_external_id)).all()
    assert all(pushed)


def test_a_dropped_create_is_retried_without_a_duplicate(factory, world, fake):
    reply(factory, world, 1)
    run_queued(factory, world["handlers"], "inbound.process")
    fake.fail_next("POST", r"/api/v2/tickets\.json", drop=True)
    with factory() as s:
        [job_id] = s.exec(select(Job.id).where(Job.kind == PUSH_JOB)).all()
    assert run_job(factory, job_id, world["handlers"]).outcome == "retry"
    with factory() as s:
        account = s.exec(select(HelpdeskAccount)).one()
        job = s.get(Job, job_id)
        job.run_after = job.enqueued_at  # due now
        s.add(job)
        s.commit()
    assert account.last_error
    assert run_job(factory, job_id, world["handlers"]).outcome == "done"
    assert len(fake.tickets) == 1
    with factory() as s:
        account = s.exec(select(HelpdeskAccount)).one()
    assert account.last_error is None and account.last_ok_at is not None


def test_bad_credentials_fail_the_job_and_show_on_the_account(factory, world, fake):
    fake.api_token = "rotated-elsewhere"
    reply(factory, world, 1)
    run_queued(factory, world["handlers"], "inbound.process")
    assert run_queued(factory, world["handlers"], PUSH_JOB) == ["failed"]
    with factory() as s:
        account = s.exec(select(HelpdeskAccount)).one()
    assert account.last_error and account.last_error.startswith("credentials refused")
    assert fake.tickets == {}


def test_the_billing_note_renders_text_and_html():
    note = billing_note(
        {
            "customer": {"name": "Ana <b>", "email": "ana@example.org"},
            "payments": [{"amount": 4900, "currency": "EUR", "status": "succeeded",
                          "gateway": "stripe", "external_id": "pi_1",
                          "created_at": "2026-11-01T00:00:00+00:00"}],
            "lifetime_value": {"EUR": 4900},
            "bounced_addresses": ["old@example.org"],
        }
    )  # fmt: skip
    assert note is not None
    assert "49.00 EUR succeeded (stripe pi_1)" in note.text
    assert "Ana &lt;b&gt;" in note.html and "<ul><li>" in note.html
    assert billing_note({}) is None
