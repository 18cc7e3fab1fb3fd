"""The Intercom connector against a fake that validates every request body against the 2.16 spec."""

from __future__ import annotations

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
from mailbridge.helpdesks.intercom import Intercom, IntercomSidebarVerifier
from tests.fakes.intercom_fake import ADMIN_ID, IntercomFake, error_list, spec

ANA = Requester("ana@example.com", "Ana Lima")
NOTE = BillingNote(text="Plan: Pro, paid", html="<p>Plan: <b>Pro</b>, paid</p>")
FIRST = MessageBody(text="Why was I charged twice?", message_id="<m1@mail.example>")
REPLY = MessageBody(text="Any news?", html="<p>Any news?</p>", message_id="<m2@mail.example>")


@pytest.fixture
def fake() -> Iterator[IntercomFake]:
    server = IntercomFake().start()
    yield server
    assert server.schema_errors == []  # every body we sent matched the spec
    server.stop()


def client(fake: IntercomFake, **kw: str) -> Intercom:
    args = dict(access_token="tok_live", admin_id=ADMIN_ID, base_url=fake.url)
    args.update(kw)
    return Intercom(**args)  # type: ignore[arg-type]


def test_the_fake_really_rejects_bodies_the_spec_forbids() -> None:
    """The schema check can fail: a conversation without ``from`` or with a bad type is refused."""
    api = spec()
    assert (
        api.validate_request(
            "post", "/conversations", {"from": {"type": "user", "id": "x" * 24}, "body": "hi"}
        )
        == []
    )
    assert api.validate_request("post", "/conversations", {"body": "hi"})
    assert api.validate_request(
        "post",
        "/conversations/{conversation_id}/reply",
        {"message_type": "note", "type": "robot", "admin_id": ADMIN_ID, "body": "x"},
    )


def test_test_connection_names_the_workspace_and_admin(fake: IntercomFake) -> None:
    """``GET /me`` with the bearer token and a pinned Intercom-Version."""
    line = client(fake).test_connection()
    assert line == "Connected to Intercom workspace MyApp 1 as Ciaran1 Lee (admin1@email.com)"
    assert fake.requests[0].headers["intercom-version"] == "2.16"


def test_create_finds_or_makes_the_contact_and_adds_an_admin_note(fake: IntercomFake) -> None:
    """The conversation is from the customer's contact; the billing note is an admin note."""
    ic = client(fake)
    ticket = ic.create_ticket(ANA, "Double charge", FIRST, NOTE)
    conv = fake.conversations[ticket.ticket_id]
    assert conv["source"]["author"]["email"] == "ana@example.com"
    assert "Why was I charged twice?" in conv["source"]["body"]
    (note,) = fake.parts(ticket.ticket_id)
    assert note["part_type"] == "note" and "<b>Pro</b>" in note["body"]
    assert ticket.message_id == conv["source"]["id"]
    assert ic.find_ticket("<m1@mail.example>") == ticket
    assert ic.find_ticket("<zz@mail.example>") is None
    # A second thread from the same customer reuses the contact.
    ic.create_ticket(ANA, "Another", MessageBody(text="x", message_id="<m9@x>"), None)
    assert len(fake.contacts) == 1 and len(fake.conversations) == 2


def test_a_contact_created_meanwhile_is_found_after_the_409(fake: IntercomFake) -> None:
    """Search says none, create says 409 (made meanwhile): the client searches again and uses it."""
    ic = client(fake)
    ic.create_ticket(ANA, "First", MessageBody(text="x", message_id="<a@x>"), None)
    empty = {"type": "list", "data": [], "total_count": 0}
    fake.fail("POST", "/contacts/search", 200, empty)
    ic.create_ticket(ANA, "Second", MessageBody(text="y", message_id="<b@x>"), None)
    assert len(fake.contacts) == 1 and len(fake.conversations) == 2
    assert len(fake.calls("POST", "/contacts")) == 2  # the second one answered 409


def test_append_replies_as_the_user_and_never_twice(fake: IntercomFake) -> None:
    """A reply is a user comment by email, then a note; pushing it again adds nothing."""
    ic = client(fake)
    ticket = ic.create_ticket(ANA, "Double charge", FIRST, None)
    assert not ic.has_message(ticket.ticket_id, "<m2@mail.example>")
    out = ic.append_reply(ticket.ticket_id, ANA, REPLY, NOTE)
    assert ic.has_message(ticket.ticket_id, "<m2@mail.example>")
    ic.append_reply(ticket.ticket_id, ANA, REPLY, NOTE)
    parts = fake.parts(ticket.ticket_id)
    assert [(p["part_type"], p["author"]["type"]) for p in parts] == [
        ("comment", "user"),
        ("note", "admin"),
    ]
    assert out.message_id == parts[0]["id"]
    sent = fake.calls("POST", r"/conversations/\d+/reply")[0].json
    assert sent["email"] == "ana@example.com" and sent["message_type"] == "comment"


def test_a_dropped_create_response_does_not_make_a_second_conversation(fake: IntercomFake) -> None:
    """Intercom made it but the answer was lost: the retry finds it and adds the note."""
    ic = client(fake)
    fake.drop("POST", "/conversations")
    with pytest.raises(HelpdeskUnavailable):
        ic.create_ticket(ANA, "Double charge", FIRST, NOTE)
    assert len(fake.conversations) == 1
    ticket = ic.create_ticket(ANA, "Double charge", FIRST, NOTE)
    assert list(fake.conversations) == [ticket.ticket_id]
    assert [p["part_type"] for p in fake.parts(ticket.ticket_id)] == ["note"]


def test_a_dropped_reply_response_does_not_duplicate_the_reply(fake: IntercomFake) -> None:
    """The reply landed but its answer was lost; the retry posts only the note."""
    ic = client(fake)
    ticket = ic.create_ticket(ANA, "Double charge", FIRST, None)
    fake.drop("POST", r"/conversations/\d+/reply")
    with pytest.raises(HelpdeskUnavailable):
        ic.append_reply(ticket.ticket_id, ANA, REPLY, NOTE)
    ic.append_reply(ticket.ticket_id, ANA, REPLY, NOTE)
    assert [p["part_type"] for p in fake.parts(ticket.ticket_id)] == ["comment", "note"]


def test_429_carries_retry_after(fake: IntercomFake) -> None:
    """Rate limiting maps to HelpdeskUnavailable with Intercom's Retry-After."""
    fake.fail(
        "POST",
        "/contacts/search",
        429,
        error_list("rate_limit_exceeded", "Exceeded rate limit"),
        {"Retry-After": "3"},
    )
    with pytest.raises(HelpdeskUnavailable) as err:
        client(fake).create_ticket(ANA, "x", MessageBody(text="x"), None)
    assert err.value.retry_after == 3.0
    assert "rate_limit_exceeded: Exceeded rate limit" in str(err.value)


def test_a_bad_token_is_an_auth_error_with_intercoms_message(fake: IntercomFake) -> None:
    """A revoked token gives HelpdeskAuthError carrying "Access Token Invalid"."""
    with pytest.raises(HelpdeskAuthError) as err:
        client(fake, access_token="nope").test_connection()
    assert "unauthorized: Access Token Invalid" in str(err.value)


def test_a_wrong_admin_id_is_reported(fake: IntercomFake) -> None:
    """Notes need a real teammate id; a wrong setting is a HelpdeskError, not a silent loss."""
    ic = client(fake, admin_id="1")
    with pytest.raises(HelpdeskError) as err:
        ic.create_ticket(ANA, "x", FIRST, NOTE)
    assert err.value.status == 404 and "Admin Not Found" in str(err.value)


def _sig(body: bytes, secret: str = "client-secret") -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_sidebar_verifier_accepts_a_canvas_kit_signature() -> None:
    """An initialize request signed with the app's client secret gives the contact's email."""
    body = json.dumps(
        {
            "workspace_id": "w1",
            "admin": {"id": "1"},
            "contact": {"id": "c", "email": "ana@example.com"},
        }
    ).encode()
    assert (
        IntercomSidebarVerifier("client-secret").verify({"X-Body-Signature": _sig(body)}, {}, body)
        == "ana@example.com"
    )
    customer = json.dumps({"customer": {"email": "bo@example.com"}}).encode()
    assert (
        IntercomSidebarVerifier("client-secret").verify(
            {"x-body-signature": _sig(customer)}, {}, customer
        )
        == "bo@example.com"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Body-Signature": "00"},
        {"X-Body-Signature": _sig(b'{"contact":{"email":"a@b"}}', "x")},
    ],
)
def test_sidebar_verifier_refuses_unsigned_requests(headers: dict[str, str]) -> None:
    """Missing, malformed or foreign signatures raise HelpdeskAuthError."""
    body = b'{"contact":{"email":"a@b"}}'
    with pytest.raises(HelpdeskAuthError):
        IntercomSidebarVerifier("client-secret").verify(headers, {"email": "a@b"}, body)


def test_add_note_puts_one_note_on_a_conversation_opened_in_intercom(fake: IntercomFake) -> None:
    """For conversations opened in the helpdesk itself: a repeat with the same key adds nothing."""
    api = client(fake)
    opened = api.create_ticket(
        Requester("ana@example.com", "Ana"), "Chat", MessageBody("hi", message_id="<p1@x>"), None
    )
    api.add_note(opened.ticket_id, NOTE, "<hook-1@billbox>")
    api.add_note(opened.ticket_id, NOTE, "<hook-1@billbox>")
    replies = fake.calls("POST", rf"/conversations/{opened.ticket_id}/reply")
    assert sum(1 for r in replies if (r.json or {}).get("message_type") == "note") == 1
