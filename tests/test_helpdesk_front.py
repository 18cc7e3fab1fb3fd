"""The Front connector against a fake Core API that checks our bodies against core-api.json."""

from __future__ import annotations

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
from mailbridge.helpdesks.front import Front, FrontSidebarVerifier
from tests.fakes.front_fake import FrontFake, front_error, spec

ANA = Requester("ana@example.com", "Ana Lima")
NOTE = BillingNote(text="Plan: **Pro**, paid", html="<p>Plan: <b>Pro</b>, paid</p>")
FIRST = MessageBody(text="Why was I charged twice?", message_id="<m1@mail.example>")
REPLY = MessageBody(text="Any news?", html="<p>Any news?</p>", message_id="<m2@mail.example>")


@pytest.fixture
def fake() -> Iterator[FrontFake]:
    server = FrontFake().start()
    yield server
    assert server.schema_errors == []
    server.stop()


def client(fake: FrontFake, **kw: object) -> Front:
    args: dict = dict(
        api_token="front-token",
        inbox_id="inb_55",
        inbox_address="billing@shop.example",
        base_url=fake.url,
        poll_interval=0.01,
    )
    args.update(kw)
    return Front(**args)


def test_the_fake_really_rejects_bodies_the_spec_forbids() -> None:
    """ImportMessage requires external_id, created_at and metadata.is_inbound."""
    api = spec()
    good = {
        "sender": {"handle": "a@b"},
        "to": ["x@y"],
        "body": "hi",
        "external_id": "e1",
        "created_at": 1,
        "metadata": {"is_inbound": True},
    }
    assert api.validate_request("post", "/inboxes/{inbox_id}/imported_messages", good) == []
    for missing in ("external_id", "created_at", "metadata"):
        bad = {k: v for k, v in good.items() if k != missing}
        assert api.validate_request("post", "/inboxes/{inbox_id}/imported_messages", bad)
    assert api.validate_request(
        "post", "/inboxes/{inbox_id}/imported_messages", {**good, "metadata": {}}
    )


def test_test_connection_names_the_company(fake: FrontFake) -> None:
    """``GET /me`` with the bearer token."""
    assert client(fake).test_connection() == (
        "Connected to Front company Dunder Mifflin Paper Company, Inc. (cmp_k30)"
    )


def test_create_imports_an_open_inbound_message_waits_for_it_and_comments(fake: FrontFake) -> None:
    """The import is async: the client polls the uid, learns the conversation and adds the note."""
    fr = client(fake)
    ticket = fr.create_ticket(ANA, "Double charge", FIRST, NOTE)
    assert list(fake.conversations) == [ticket.ticket_id]
    conv = fake.conversations[ticket.ticket_id]
    assert conv["recipient"]["handle"] == "ana@example.com" and conv["status"] == "unassigned"
    sent = fake.calls("POST", "/inboxes/inb_55/imported_messages")[0].json
    assert sent["external_id"] == "<m1@mail.example>"
    assert sent["metadata"] == {
        "is_inbound": True,
        "is_archived": False,
        "should_skip_rules": False,
    }
    assert sent["sender"] == {"handle": "ana@example.com", "name": "Ana Lima"}
    assert sent["to"] == ["billing@shop.example"] and sent["body_format"] == "html"
    assert len(fake.calls("GET", "/messages/alt:uid:.*")) == 2  # one 404 while pending
    (comment,) = fake.comments[ticket.ticket_id]
    assert comment["body"].startswith("Plan: **Pro**, paid")
    assert ticket.message_id == fake.conv_messages[ticket.ticket_id][0]
    assert fr.find_ticket("<m1@mail.example>").ticket_id == ticket.ticket_id  # type: ignore[union-attr]
    assert fr.find_ticket("<zz@mail.example>") is None


def test_append_threads_into_the_conversation_once(fake: FrontFake) -> None:
    """The reply is imported with conversation_id; pushing it again adds no message or comment."""
    fr = client(fake)
    ticket = fr.create_ticket(ANA, "Double charge", FIRST, None)
    assert not fr.has_message(ticket.ticket_id, "<m2@mail.example>")
    fr.append_reply(ticket.ticket_id, ANA, REPLY, NOTE)
    assert fr.has_message(ticket.ticket_id, "<m2@mail.example>")
    fr.append_reply(ticket.ticket_id, ANA, REPLY, NOTE)
    assert fr.has_message(ticket.ticket_id, "<m1@mail.example>")  # on page 2 (one per page)
    assert len(fake.conv_messages[ticket.ticket_id]) == 2
    assert len(fake.comments[ticket.ticket_id]) == 1
    sent = fake.calls("POST", "/inboxes/inb_55/imported_messages")[-1].json
    assert sent["conversation_id"] == ticket.ticket_id


def test_a_dropped_import_response_does_not_create_a_second_conversation(fake: FrontFake) -> None:
    """Front accepted the import but the 202 was lost; the retry finds it and only adds the note."""
    fr = client(fake)
    fake.drop("POST", "/inboxes/inb_55/imported_messages")
    with pytest.raises(HelpdeskUnavailable):
        fr.create_ticket(ANA, "Double charge", FIRST, NOTE)
    ticket = fr.create_ticket(ANA, "Double charge", FIRST, NOTE)
    assert list(fake.conversations) == [ticket.ticket_id]
    assert len(fake.messages) == 1 and len(fake.comments[ticket.ticket_id]) == 1


def test_an_import_front_never_finishes_is_unavailable_and_the_retry_finds_it(
    fake: FrontFake,
) -> None:
    """An import that never resolves fails softly; the next attempt finds the ticket."""
    fake.pending_polls = 1000
    fr = client(fake, import_wait=0.05)
    with pytest.raises(HelpdeskUnavailable, match="not created within"):
        fr.create_ticket(ANA, "Double charge", FIRST, NOTE)
    ticket = fr.create_ticket(ANA, "Double charge", FIRST, NOTE)
    assert len(fake.conversations) == 1 and len(fake.comments[ticket.ticket_id]) == 1


def test_429_carries_retry_after(fake: FrontFake) -> None:
    """Front's rate limit answer maps to HelpdeskUnavailable with its Retry-After."""
    fake.fail(
        "GET",
        "/conversations/search/.*",
        429,
        front_error(429, "Too Many Requests", "Rate limit exceeded"),
        {"Retry-After": "20"},
    )
    with pytest.raises(HelpdeskUnavailable) as err:
        client(fake).create_ticket(ANA, "x", FIRST, None)
    assert err.value.retry_after == 20.0
    assert "Too Many Requests: Rate limit exceeded" in str(err.value)
    assert fake.conversations == {}


def test_a_bad_token_is_an_auth_error(fake: FrontFake) -> None:
    """A wrong API token raises HelpdeskAuthError with Front's title and message."""
    with pytest.raises(HelpdeskAuthError) as err:
        client(fake, api_token="nope").test_connection()
    assert "Unauthenticated: Invalid token" in str(err.value)


def test_a_wrong_inbox_is_reported_with_fronts_message(fake: FrontFake) -> None:
    """An unknown inbox id is a HelpdeskError (404) for the admin, not a retry loop."""
    with pytest.raises(HelpdeskError) as err:
        client(fake, inbox_id="inb_nope").create_ticket(ANA, "x", FIRST, None)
    assert err.value.status == 404 and not isinstance(err.value, HelpdeskUnavailable)


def test_sidebar_verifier_checks_the_plugin_auth_secret() -> None:
    """The plugin sends Front's auth_secret as a bearer header; the email is in the query."""
    verifier = FrontSidebarVerifier("plug-secret")
    headers = {"Authorization": "Bearer plug-secret"}
    assert verifier.verify(headers, {"email": "ana@example.com"}, b"") == "ana@example.com"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, {"email": "ana@example.com", "auth_secret": "plug-secret"}),
        ({"Authorization": "Bearer wrong"}, {"email": "ana@example.com"}),
        ({"Authorization": "Basic plug-secret"}, {"email": "ana@example.com"}),
        ({"Authorization": "Bearer plug-secret"}, {}),
    ],
)
def test_sidebar_verifier_refuses_anything_else(headers: dict, query: dict) -> None:
    """No header, a wrong secret, another scheme or no email: HelpdeskAuthError."""
    with pytest.raises(HelpdeskAuthError):
        FrontSidebarVerifier("plug-secret").verify(headers, query, b"")


def test_add_note_puts_one_comment_on_a_conversation_opened_in_front(fake: FrontFake) -> None:
    """For conversations opened in the helpdesk itself: a repeat with the same key adds nothing."""
    api = client(fake)
    opened = api.create_ticket(
        Requester("ana@example.com", "Ana"), "Mail", MessageBody("hi", message_id="<p1@x>"), None
    )
    api.add_note(opened.ticket_id, NOTE, "<hook-1@billbox>")
    api.add_note(opened.ticket_id, NOTE, "<hook-1@billbox>")
    assert len(fake.calls("POST", rf"/conversations/{opened.ticket_id}/comments")) == 1
