"""Tickets opened in the helpdesk itself get the billing note via ``/webhooks/helpdesk/<name>``.

Zendesk end to end against its fake (signed trigger webhook → job → private
note, once even when redelivered); the other vendors' signatures and
payloads checked directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from billbox.jobs import run_job
from billbox.models import HelpdeskAccount, Job, JobState
from mailbridge.helpdesks.accounts import seal_credentials
from mailbridge.helpdesks.external import HelpdeskAuthError, MessageBody, Requester
from mailbridge.helpdesks.inbound_hooks import TicketOpened, read_ticket, verify
from mailbridge.helpdesks.push import NOTE_JOB, make_note_handler
from mailbridge.helpdesks.zendesk import ZendeskClient
from tests.billing_world import make_receipt
from tests.fakes.zendesk_fake import ZendeskFake
from web import create_app

SECRET = "hooks-test-secret-0123456789"
HOOK = "zendesk-webhook-signing-secret"


@pytest.fixture
def fake() -> Iterator[ZendeskFake]:
    with ZendeskFake() as server:
        yield server


def signed(body: bytes, secret: str = HOOK) -> dict[str, str]:
    stamp = "2026-11-25T12:00:00Z"
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def test_a_ticket_opened_in_zendesk_gets_the_billing_note_once(settings, engine, factory, fake):
    with factory() as s:
        make_receipt(s, secret=SECRET, domain="reply.example.com")
        s.add(
            HelpdeskAccount(
                kind="zendesk",
                name="zendesk",
                active=True,
                settings={"subdomain": "acme", "email": fake.agent_email},
                credentials_encrypted=seal_credentials(
                    SECRET, {"api_token": fake.api_token, "webhook_secret": HOOK}
                ),
            )
        )
        s.commit()
    client_api = ZendeskClient(
        subdomain="acme", email=fake.agent_email, api_token=fake.api_token, base_url=fake.url
    )
    opened = client_api.create_ticket(
        Requester("ana@example.org", "Ana"),
        "Phoned in: refund?",
        MessageBody("Customer called about a refund.", message_id="<phone-1@acme>"),
        None,
    )
    configured = settings.model_copy(update={"secret_key": SecretStr(SECRET)})
    app = create_app(configured, engine=engine, build_worker=False).test_client()
    body = json.dumps({"ticket_id": opened.ticket_id, "requester_email": "ana@example.org"})
    for _ in range(2):  # Zendesk may deliver twice
        response = app.post("/webhooks/helpdesk/zendesk", data=body, headers=signed(body.encode()))
        assert response.status_code == 200 and response.get_json()["status"] == "queued"
    assert (
        app.post(
            "/webhooks/helpdesk/zendesk", data=body, headers=signed(body.encode(), "wrong")
        ).status_code
        == 401
    )
    handler = make_note_handler(SECRET, "reply.example.com", base_urls={"zendesk": fake.url})
    with factory() as s:
        ids = s.exec(
            select(Job.id)
            .where(Job.kind == NOTE_JOB, Job.state == JobState.QUEUED)
            .order_by(col(Job.id))
        ).all()
    assert len(ids) == 1  # the redelivery queued nothing new
    assert run_job(factory, ids[0], {NOTE_JOB: handler}).outcome == "done"
    with factory() as s:  # a retried job finds the note it added
        job = s.get(Job, ids[0])
        job.state = JobState.QUEUED
        s.add(job)
        s.commit()
    run_job(factory, ids[0], {NOTE_JOB: handler})
    notes = [c for c in fake.comments(int(opened.ticket_id)) if not c.get("public")]
    assert len(notes) == 1 and "49.00 EUR" in (notes[0].get("html_body") or notes[0]["body"])


def test_each_vendors_signature_and_payload():
    body = json.dumps({"id": 77, "primaryCustomer": {"email": "ana@example.org"}}).encode()
    sig = base64.b64encode(hmac.new(b"hs", body, hashlib.sha1).digest()).decode()
    verify("helpscout", "hs", {"X-HelpScout-Signature": sig}, body)
    assert read_ticket("helpscout", body) == TicketOpened("77", "ana@example.org")

    body = json.dumps(
        {
            "topic": "conversation.user.created",
            "data": {
                "item": {
                    "type": "conversation",
                    "id": "123",
                    "source": {"author": {"email": "ana@example.org"}},
                }
            },
        }
    ).encode()
    verify(
        "intercom",
        "ic",
        {"X-Hub-Signature": "sha1=" + hmac.new(b"ic", body, hashlib.sha1).hexdigest()},
        body,
    )
    assert read_ticket("intercom", body) == TicketOpened("123", "ana@example.org")

    body = json.dumps(
        {
            "type": "inbound_received",
            "payload": {
                "conversation": {"id": "cnv_1", "recipient": {"handle": "ana@example.org"}}
            },
        }
    ).encode()
    stamp = "1764072000000"
    sig = base64.b64encode(hmac.new(b"fr", stamp.encode() + b":" + body, hashlib.sha256).digest())
    verify(
        "front", "fr", {"X-Front-Signature": sig.decode(), "X-Front-Request-Timestamp": stamp}, body
    )
    assert read_ticket("front", body) == TicketOpened("cnv_1", "ana@example.org")

    body = b'{"ticket_id": 9, "requester_email": "ana@example.org"}'
    verify("freshdesk", "fd-token", {"Authorization": "Bearer fd-token"}, body)
    with pytest.raises(HelpdeskAuthError):
        verify("freshdesk", "fd-token", {"Authorization": "Bearer guess"}, body)
    with pytest.raises(HelpdeskAuthError):
        verify("helpscout", "", {}, body)
    assert read_ticket("freshdesk", b'{"ticket_id": 9}') is None
