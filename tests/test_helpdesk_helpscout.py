"""The Help Scout connector against a fake Mailbox API 2.0 that answers in recorded HAL JSON."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest

from mailbridge.helpdesks.external import (
    BillingNote,
    HelpdeskAuthError,
    HelpdeskError,
    HelpdeskUnavailable,
    MessageBody,
    Requester,
)
from mailbridge.helpdesks.helpscout import HelpScout, HelpScoutSidebarVerifier
from tests.fakes.helpscout_fake import HelpScoutFake, sample

ANA = Requester("ana@example.com", "Ana Lima")
NOTE = BillingNote(text="Plan: Pro, paid", html="<p>Plan: <b>Pro</b>, paid</p>")


def first(mid: str = "<m1@mail.example>") -> MessageBody:
    return MessageBody(text="Why was I charged twice?", html=None, message_id=mid)


@pytest.fixture
def fake() -> Iterator[HelpScoutFake]:
    server = HelpScoutFake().start()
    yield server
    server.stop()


def client(fake: HelpScoutFake, **kw: object) -> HelpScout:
    args: dict = dict(
        client_id="app-id", client_secret="app-secret", mailbox_id=85, base_url=fake.url + "/v2"
    )
    args.update(kw)
    return HelpScout(**args)


def test_test_connection_fetches_a_token_and_names_the_mailbox(fake: HelpScoutFake) -> None:
    """The admin's "test" button gets a client-credentials token and reads the mailbox."""
    line = client(fake).test_connection()
    assert line == "Connected to Help Scout mailbox ACME Support (support@acme.com)"
    assert fake.token_requests == 1


def test_create_makes_one_conversation_with_customer_thread_and_note(fake: HelpScoutFake) -> None:
    """A new thread becomes one conversation: customer thread from the requester, plus the note."""
    hs = client(fake)
    ticket = hs.create_ticket(ANA, "Double charge", first(), NOTE)
    conv = fake.conversations[int(ticket.ticket_id)]
    assert conv["subject"] == "Double charge" and conv["mailboxId"] == 85
    kinds = [(t["type"], t.get("customer", {}).get("email")) for t in fake.threads[conv["id"]]]
    assert kinds == [("customer", "ana@example.com"), ("note", None)]
    customer, note = fake.threads[conv["id"]]
    assert "Why was I charged twice?" in customer["body"] and "<b>Pro</b>" in note["body"]
    sent = fake.calls("POST", "/v2/conversations")[0].json
    assert sent["customer"] == {"email": "ana@example.com", "firstName": "Ana", "lastName": "Lima"}
    assert ticket.url == f"https://secure.helpscout.net/conversation/{conv['id']}"
    assert hs.find_ticket("<m1@mail.example>") == ticket
    assert hs.find_ticket("<other@mail.example>") is None


def test_append_adds_a_customer_thread_and_a_note_once(fake: HelpScoutFake) -> None:
    """A reply is a customer thread plus a fresh note; a second push of it adds nothing."""
    hs = client(fake)
    ticket = hs.create_ticket(ANA, "Double charge", first(), NOTE)
    reply = MessageBody(text="Any news?", html="<p>Any news?</p>", message_id="<m2@mail.example>")
    assert not hs.has_message(ticket.ticket_id, "<m2@mail.example>")
    out = hs.append_reply(ticket.ticket_id, ANA, reply, NOTE)
    assert out.message_id is not None
    assert hs.has_message(ticket.ticket_id, "<m2@mail.example>")
    hs.append_reply(ticket.ticket_id, ANA, reply, NOTE)
    # The first message is on the second page of threads (newest first, 2 per page).
    assert hs.has_message(ticket.ticket_id, "<m1@mail.example>")
    assert [t["type"] for t in fake.threads[int(ticket.ticket_id)]] == [
        "customer",
        "note",
        "customer",
        "note",
    ]


def test_a_dropped_create_response_is_retried_without_a_second_conversation(
    fake: HelpScoutFake,
) -> None:
    """Help Scout commits the create but the answer is lost; the retry finds it by its ref."""
    hs = client(fake)
    fake.drop("POST", "/v2/conversations")
    with pytest.raises(HelpdeskUnavailable):
        hs.create_ticket(ANA, "Double charge", first(), NOTE)
    assert len(fake.conversations) == 1
    ticket = hs.create_ticket(ANA, "Double charge", first(), NOTE)
    assert len(fake.conversations) == 1
    assert int(ticket.ticket_id) in fake.conversations
    assert len(fake.threads[int(ticket.ticket_id)]) == 2


def test_a_create_answered_after_the_timeout_is_not_repeated(fake: HelpScoutFake) -> None:
    """The fake commits, then answers after the client gave up; the retry reuses the first."""
    hs = client(fake, timeout=0.3)
    fake.delay("POST", "/v2/conversations", 1.0)
    with pytest.raises(HelpdeskUnavailable, match="timed out"):
        hs.create_ticket(ANA, "Double charge", first(), NOTE)
    ticket = hs.create_ticket(ANA, "Double charge", first(), NOTE)
    assert list(fake.conversations) == [int(ticket.ticket_id)]


def test_a_reply_whose_note_failed_gets_only_the_note_on_retry(fake: HelpScoutFake) -> None:
    """The reply landed, the note got a 503; the retry adds the note, not the reply again."""
    hs = client(fake)
    ticket = hs.create_ticket(ANA, "Double charge", first(), None)
    reply = MessageBody(text="Any news?", message_id="<m2@mail.example>")
    fake.fail(
        "POST", r"/v2/conversations/\d+/notes", 503, sample("ErrorPayloads.internalServerError")
    )
    with pytest.raises(HelpdeskUnavailable) as err:
        hs.append_reply(ticket.ticket_id, ANA, reply, NOTE)
    assert err.value.status == 503
    hs.append_reply(ticket.ticket_id, ANA, reply, NOTE)
    # The first message is on the second page of threads (newest first, 2 per page).
    assert hs.has_message(ticket.ticket_id, "<m1@mail.example>")
    assert [t["type"] for t in fake.threads[int(ticket.ticket_id)]] == [
        "customer",
        "customer",
        "note",
    ]


def test_429_carries_retry_after(fake: HelpScoutFake) -> None:
    """A rate-limited call raises HelpdeskUnavailable with Help Scout's Retry-After and message."""
    fake.fail(
        "POST",
        "/v2/conversations",
        429,
        sample("ErrorPayloads.rateLimitExceededError"),
        {"Retry-After": "12"},
    )
    with pytest.raises(HelpdeskUnavailable) as err:
        client(fake).create_ticket(ANA, "Hi", MessageBody(text="x"), None)
    assert err.value.retry_after == 12.0 and err.value.status == 429
    assert "API rate limit exceeded" in str(err.value)
    assert fake.conversations == {}


def test_bad_client_credentials_are_an_auth_error(fake: HelpScoutFake) -> None:
    """A wrong app secret fails with HelpdeskAuthError naming Help Scout's reason."""
    with pytest.raises(HelpdeskAuthError) as err:
        client(fake, client_secret="wrong").test_connection()
    assert "Bad client credentials" in str(err.value)


def test_a_revoked_token_is_refreshed_once(fake: HelpScoutFake) -> None:
    """When the cached token stops working (expired early), one new token is fetched and used."""
    hs = client(fake)
    hs.test_connection()
    fake.revoke_tokens()
    hs.test_connection()
    assert fake.token_requests == 2


def test_an_expired_token_is_replaced_before_the_call() -> None:
    """The cached token is dropped a minute before expires_in without waiting for a 401."""
    server = HelpScoutFake().start()
    try:
        now = [1000.0]
        hs = client(server, clock=lambda: now[0])
        hs.test_connection()
        now[0] += 172800 - 30
        hs.test_connection()
        assert server.token_requests == 2
    finally:
        server.stop()


def test_validation_errors_show_help_scouts_message(fake: HelpScoutFake) -> None:
    """A refused body raises HelpdeskError with the path and message from their error JSON."""
    with pytest.raises(HelpdeskError) as err:
        client(fake, mailbox_id=999).create_ticket(ANA, "Hi", MessageBody(text="x"), None)
    assert err.value.status == 400
    assert "Validation error; mailboxId: unknown mailbox" in str(err.value)


def _signed(body: bytes, secret: str = "s3cret") -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def test_sidebar_verifier_accepts_help_scouts_signature() -> None:
    """A dynamic-app POST signed with the app secret yields the customer's email."""
    body = json.dumps(
        {"ticket": {"id": 1}, "customer": {"id": 2, "email": "ana@example.com", "emails": []}}
    ).encode()
    verifier = HelpScoutSidebarVerifier("s3cret")
    assert verifier.verify({"X-HelpScout-Signature": _signed(body)}, {}, body) == "ana@example.com"
    body2 = json.dumps({"customer": {"email": None, "emails": ["bo@example.com"]}}).encode()
    assert verifier.verify({"x-helpscout-signature": _signed(body2)}, {}, body2) == "bo@example.com"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-HelpScout-Signature": "AAAA"}, {"X-HelpScout-Signature": _signed(b"{}", "other")}],
)
def test_sidebar_verifier_refuses_missing_or_wrong_signatures(headers: dict[str, str]) -> None:
    """No signature, a wrong one or one made with another secret never reveals anything."""
    body = json.dumps({"customer": {"email": "ana@example.com"}}).encode()
    with pytest.raises(HelpdeskAuthError):
        HelpScoutSidebarVerifier("s3cret").verify(headers, {"email": "ana@example.com"}, body)


def test_sidebar_verifier_refuses_a_tampered_body() -> None:
    """The signature covers the raw body: swapping the email breaks it."""
    body = json.dumps({"customer": {"email": "ana@example.com"}}).encode()
    sig = _signed(body)
    tampered = body.replace(b"ana@", b"eve@")
    with pytest.raises(HelpdeskAuthError):
        HelpScoutSidebarVerifier("s3cret").verify({"X-HelpScout-Signature": sig}, {}, tampered)


def test_add_note_puts_one_note_on_a_conversation_opened_in_help_scout(fake: HelpScoutFake) -> None:
    """For tickets opened in the helpdesk itself: a repeat with the same key adds nothing."""
    api = client(fake)
    opened = api.create_ticket(
        Requester("ana@example.com", "Ana"),
        "Phoned in",
        MessageBody("hi", message_id="<p1@x>"),
        None,
    )
    api.add_note(opened.ticket_id, NOTE, "<hook-1@billbox>")
    api.add_note(opened.ticket_id, NOTE, "<hook-1@billbox>")
    assert len(fake.calls("POST", rf"/v2/conversations/{opened.ticket_id}/notes")) == 1
