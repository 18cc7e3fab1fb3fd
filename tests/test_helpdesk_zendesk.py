"""The Zendesk client against a local fake of the Support API v2 (tests/fakes/zendesk_fake.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from mailbridge.helpdesks.external import (
    BillingNote,
    ExternalHelpdesk,
    HelpdeskAuthError,
    HelpdeskError,
    HelpdeskUnavailable,
    MessageBody,
    Requester,
    SidebarVerifier,
)
from mailbridge.helpdesks.zendesk import ZendeskClient, ZendeskSidebarVerifier
from tests.fakes.zendesk_fake import ZendeskFake

#: ../shared/corpora beside the checkout (a worktree may sit one level deeper).
FIXTURES = next(
    (
        found
        for parent in Path(__file__).resolve().parents
        if (found := parent / "shared/corpora/helpdesk_apis/zendesk/go_zendesk_fixtures").exists()
    ),
    Path("/nonexistent"),
)
CUSTOMER = Requester(email="ana@example.com", name="Ana Pérez")
NOTE = BillingNote(
    text="Plan: Pro · last payment EUR 49.00 refunded",
    html="<p>Plan: <b>Pro</b> · last payment EUR 49.00 refunded</p>",
)


def body(n: int, html: bool = True) -> MessageBody:
    return MessageBody(
        text=f"Why was I charged twice? ({n})",
        html=f"<p>Why was I charged <i>twice</i>? ({n})</p>" if html else None,
        message_id=f"<msg-{n}@mail.example.com>",
    )


@pytest.fixture
def fake() -> Iterator[ZendeskFake]:
    with ZendeskFake() as server:
        yield server


@pytest.fixture
def client(fake: ZendeskFake) -> ZendeskClient:
    return ZendeskClient(
        subdomain="acme", email=fake.agent_email, api_token=fake.api_token, base_url=fake.url,
        timeout=2.0,
    )  # fmt: skip


def test_the_client_and_verifier_implement_the_protocols(client: ZendeskClient) -> None:
    """Typed as the protocols the push job and the /sidebar route use."""
    helpdesk: ExternalHelpdesk = client
    verifier: SidebarVerifier = ZendeskSidebarVerifier("s" * 32)
    assert helpdesk.name == "zendesk" and verifier is not None


def test_test_connection_names_the_agent(client: ZendeskClient) -> None:
    """The admin's "test connection" shows who the token belongs to."""
    line = client.test_connection()
    assert "acme.zendesk.com" in line and "agent@billbox.test" in line and "admin" in line


def test_a_new_thread_becomes_a_ticket_from_the_customer_with_a_private_note(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """Requester and first-comment author are the customer; the note is private HTML."""
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)

    stored = fake.tickets[int(ticket.ticket_id)]
    customer = fake.user_by_email(CUSTOMER.email)
    assert customer is not None and customer["name"] == "Ana Pérez"
    assert stored["requester_id"] == stored["submitter_id"] == customer["id"]
    assert stored["subject"] == "Double charge" and stored["external_id"].startswith("billbox-")
    first, note = fake.comments(int(ticket.ticket_id))
    assert first["public"] is True and first["author_id"] == customer["id"]
    assert "<i>twice</i>" in first["html_body"]
    assert note["public"] is False and note["html_body"] == NOTE.html
    assert note["author_id"] == fake.agent["id"]
    assert ticket.message_id == str(first["id"])
    assert ticket.url == f"{fake.url}/agent/tickets/{ticket.ticket_id}"
    assert client.find_ticket("<msg-1@mail.example.com>") == ticket.__class__(
        ticket.ticket_id, None, ticket.url
    )
    assert client.find_ticket("<other@mail.example.com>") is None


def test_a_plain_text_message_is_sent_as_body(client: ZendeskClient, fake: ZendeskFake) -> None:
    """Without HTML, the comment is ``body`` (Zendesk renders it)."""
    ticket = client.create_ticket(CUSTOMER, "", body(2, html=False), None)
    (comment,) = fake.comments(int(ticket.ticket_id))
    assert comment["body"] == "Why was I charged twice? (2)"
    assert fake.tickets[int(ticket.ticket_id)]["subject"] == "(no subject)"
    (create,) = fake.calls("POST", r"/api/v2/tickets\.json")
    assert create.body["ticket"]["comment"] == {
        "body": "Why was I charged twice? (2)",
        "public": True,
    }


def test_a_reply_is_a_public_comment_by_the_customer_plus_a_fresh_note(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """Appending keeps the ticket, authors the comment as the customer, adds a private note."""
    first = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert not client.has_message(first.ticket_id, "<msg-3@mail.example.com>")

    reply = client.append_reply(first.ticket_id, CUSTOMER, body(3), NOTE)

    assert reply.ticket_id == first.ticket_id
    comments = fake.comments(int(first.ticket_id))
    assert [c["public"] for c in comments] == [True, False, True, False]
    customer = fake.user_by_email(CUSTOMER.email)
    assert customer is not None and comments[2]["author_id"] == customer["id"]
    assert reply.message_id == str(comments[2]["id"])
    assert client.has_message(first.ticket_id, "<msg-3@mail.example.com>")
    assert client.has_message(first.ticket_id, "<msg-1@mail.example.com>")


def test_a_create_whose_response_was_dropped_is_found_by_the_retry(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """The fake commits the ticket and hangs up; the retry finds it and adds only the note."""
    fake.fail_next("POST", r"/api/v2/tickets\.json", drop=True)
    with pytest.raises(HelpdeskUnavailable):
        client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert len(fake.tickets) == 1 and len(fake.comments(1)) == 1

    again = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)

    assert len(fake.tickets) == 1 and again.ticket_id == "1"
    assert [c["public"] for c in fake.comments(1)] == [True, False]
    assert again.message_id == str(fake.comments(1)[0]["id"])


def test_a_note_whose_response_timed_out_is_not_added_twice(
    fake: ZendeskFake,
) -> None:
    """A slow answer (past the client's timeout) after the note was committed: no second note."""
    client = ZendeskClient(
        subdomain="acme", email=fake.agent_email, api_token=fake.api_token, base_url=fake.url,
        timeout=0.3,
    )  # fmt: skip
    fake.fail_next("PUT", r"/api/v2/tickets/\d+\.json", delay=1.0)
    with pytest.raises(HelpdeskUnavailable, match="no answer"):
        client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    time.sleep(0.8)  # let the fake finish its delayed answer

    client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)

    assert len(fake.tickets) == 1
    assert [c["public"] for c in fake.comments(1)] == [True, False]


def test_a_reply_whose_response_was_dropped_is_not_appended_twice(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """has_message sees the committed reply; append_reply itself also skips it."""
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    fake.fail_next("PUT", r"/api/v2/tickets/\d+\.json", drop=True)
    with pytest.raises(HelpdeskUnavailable):
        client.append_reply(ticket.ticket_id, CUSTOMER, body(4), NOTE)
    assert client.has_message(ticket.ticket_id, "<msg-4@mail.example.com>")

    client.append_reply(ticket.ticket_id, CUSTOMER, body(4), NOTE)
    client.append_reply(ticket.ticket_id, CUSTOMER, body(4), NOTE)

    assert [c["public"] for c in fake.comments(1)] == [True, True, False]


def test_audits_are_read_across_pages(client: ZendeskClient, fake: ZendeskFake) -> None:
    """The marker lookup follows ``next_page`` links."""
    fake.audits_per_page = 1
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    client.append_reply(ticket.ticket_id, CUSTOMER, body(5), NOTE)
    assert client.has_message(ticket.ticket_id, "<msg-5@mail.example.com>")
    assert len(fake.calls("GET", r"/api/v2/tickets/1/audits\.json")) >= 4


def test_a_reply_to_a_closed_ticket_becomes_a_follow_up(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """Zendesk refuses updates to closed tickets; the reply opens a linked follow-up, once."""
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    fake.close(int(ticket.ticket_id))

    follow_up = client.append_reply(ticket.ticket_id, CUSTOMER, body(6), NOTE)
    again = client.append_reply(ticket.ticket_id, CUSTOMER, body(6), NOTE)

    assert follow_up.ticket_id == again.ticket_id != ticket.ticket_id
    assert fake.tickets[1]["followup_ids"] == [int(follow_up.ticket_id)]
    assert [c["public"] for c in fake.comments(int(follow_up.ticket_id))] == [True, False]


def test_429_is_unavailable_with_retry_after_and_changes_nothing(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """Rate limiting is temporary and says when to come back."""
    limited = "Number of allowed API requests per minute exceeded"
    fake.fail_next(
        "POST", r"/api/v2/tickets\.json", status=429, headers={"Retry-After": "7"},
        body={"error": "APIRateLimitExceeded", "description": limited},
    )  # fmt: skip
    with pytest.raises(HelpdeskUnavailable) as caught:
        client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert caught.value.retry_after == 7 and caught.value.status == 429
    assert "allowed API requests per minute" in str(caught.value)
    assert fake.tickets == {}
    client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert len(fake.tickets) == 1


def test_bad_credentials_are_an_auth_error_with_zendesks_message(fake: ZendeskFake) -> None:
    """401 cannot be fixed by retrying: HelpdeskAuthError, with the vendor's words."""
    client = ZendeskClient(
        subdomain="acme", email=fake.agent_email, api_token="wrong", base_url=fake.url
    )
    with pytest.raises(HelpdeskAuthError, match="Couldn't authenticate you"):
        client.test_connection()
    with pytest.raises(HelpdeskAuthError):
        client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert fake.tickets == {}


def test_server_errors_and_refusals_carry_the_vendor_message(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """5xx is temporary, 422 is not; both show Zendesk's own explanation."""
    fake.fail_next(
        "GET", r"/api/v2/tickets\.json", status=503, body={"error": "ServiceUnavailable"}
    )
    with pytest.raises(HelpdeskUnavailable, match="ServiceUnavailable"):
        client.find_ticket("<msg-1@mail.example.com>")
    with pytest.raises(HelpdeskError, match="RecordNotFound") as caught:
        client.append_reply("999", CUSTOMER, body(1), None)
    assert caught.value.status == 404 and not isinstance(caught.value, HelpdeskUnavailable)


def test_a_user_without_a_display_name_is_created_with_the_address_local_part(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """Zendesk needs a name to create a user; an existing user's name is never overwritten."""
    client.create_ticket(Requester(email="bo@example.com"), "Hi", body(7), None)
    user = fake.user_by_email("bo@example.com")
    assert user is not None and user["name"] == "bo"
    user["name"] = "Bo Agent-Edited"
    client.create_ticket(Requester(email="bo@example.com"), "Hi", body(8), None)
    assert user["name"] == "Bo Agent-Edited"


def test_only_a_zendesk_subdomain_is_accepted() -> None:
    """The subdomain becomes the API host name, so nothing else gets through."""
    with pytest.raises(ValueError, match="subdomain"):
        ZendeskClient(subdomain="not a subdomain", email="a@b.c", api_token="t")


def test_a_message_without_message_id_is_refused(client: ZendeskClient, fake: ZendeskFake) -> None:
    """The Message-ID is the idempotency key; without it a retry could duplicate."""
    with pytest.raises(ValueError, match="Message-ID"):
        client.create_ticket(CUSTOMER, "x", MessageBody(text="hi"), None)
    assert fake.requests == []


@pytest.mark.skipif(not FIXTURES.exists(), reason="shared corpora not present")
def test_the_fake_answers_with_the_keys_of_recorded_zendesk_responses(
    client: ZendeskClient, fake: ZendeskFake
) -> None:
    """Every key of go-zendesk's recorded ticket, user and audit objects is in the fake's."""
    client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    (create,) = [r for r in fake.requests if r.method == "POST" and r.path.endswith("tickets.json")]
    recorded_ticket = json.loads((FIXTURES / "POST/ticket.json").read_text())
    recorded_user = json.loads((FIXTURES / "GET/user.json").read_text())["user"]
    recorded_audit = json.loads((FIXTURES / "GET/ticket_audits.json").read_text())["audits"][0]
    assert set(recorded_ticket["ticket"]) <= set(fake.tickets[1])
    assert set(recorded_user) <= set(fake.agent)
    audit = fake.audits[1][0]
    assert set(recorded_audit) <= set(audit) | {"via"}
    assert set(recorded_audit["metadata"]) == set(audit["metadata"]) == {"system", "custom"}
    recorded_comment = recorded_ticket["audit"]["events"][0]
    assert set(recorded_comment) <= set(audit["events"][0])
    assert create.body["ticket"]["metadata"] == audit["metadata"]["custom"]


# -- the sidebar ---------------------------------------------------------------------------

SECRET = "zendesk-shared-secret-0123456789"


def signed(claims: dict[str, object], secret: str = SECRET) -> dict[str, str]:
    token = jwt.encode(claims, secret, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def test_the_sidebar_accepts_a_token_signed_by_the_zaf_proxy() -> None:
    """HS256 with the shared secret, right audience, not expired: the email is returned."""
    verifier = ZendeskSidebarVerifier(SECRET)
    claims = {"aud": "billbox-sidebar", "exp": int(time.time()) + 60, "email": "ana@example.com"}
    assert verifier.verify(signed(claims), {"email": "ana@example.com"}, b"") == "ana@example.com"
    headers = {"authorization": signed(claims)["Authorization"]}
    assert verifier.verify(headers, {}, b"") == "ana@example.com"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, {"email": "ana@example.com"}),
        ({"Authorization": "Bearer not-a-jwt"}, {"email": "ana@example.com"}),
        (signed({"aud": "billbox-sidebar", "exp": 2**31}, secret="x" * 32), {"email": "a@b.c"}),
        (signed({"aud": "billbox-sidebar", "exp": int(time.time()) - 3600}), {"email": "a@b.c"}),
        (signed({"aud": "someone-else", "exp": 2**31}), {"email": "a@b.c"}),
        (signed({"aud": "billbox-sidebar"}), {"email": "a@b.c"}),
        (signed({"aud": "billbox-sidebar", "exp": 2**31, "email": "ana@example.com"}),
         {"email": "eve@example.com"}),
    ],
    ids=["unsigned", "garbage", "wrong-secret", "expired", "wrong-audience", "no-expiry",
         "email-mismatch"],
)  # fmt: skip
def test_the_sidebar_refuses_anything_not_signed_for_it(
    headers: dict[str, str], query: dict[str, str]
) -> None:
    """Anyone with the URL but not the secret gets HelpdeskAuthError."""
    with pytest.raises(HelpdeskAuthError):
        ZendeskSidebarVerifier(SECRET).verify(headers, query, b"")


def test_the_sidebar_needs_an_email() -> None:
    """A valid token without any email is a bad request, not a lookup of nobody."""
    headers = signed({"aud": "billbox-sidebar", "exp": 2**31})
    with pytest.raises(HelpdeskError, match="email") as caught:
        ZendeskSidebarVerifier(SECRET).verify(headers, {}, b"")
    assert caught.value.status == 400


INTEGRATION = Path(__file__).resolve().parents[1] / "integrations" / "zendesk"


def test_the_zendesk_app_signs_what_the_verifier_checks() -> None:
    """The app's manifest and iframe agree with ZendeskSidebarVerifier: secret, audience, header."""
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    assert manifest["location"]["support"]["ticket_sidebar"]["url"] == "assets/iframe.html"
    params = {p["name"]: p for p in manifest["parameters"]}
    assert params["shared_secret"]["secure"] is True and manifest["domainWhitelist"]
    translations = json.loads((INTEGRATION / "translations/en.json").read_text())
    assert set(params) <= set(translations["app"]["parameters"])
    page = (INTEGRATION / "assets/iframe.html").read_text()
    assert "zendesk_app_framework_sdk/2.0/zaf_sdk.min.js" in page
    assert "/sidebar?helpdesk=zendesk&email=" in page and "ticket.requester.email" in page
    assert "secret_key: '{{setting.shared_secret}}'" in page and "secure: true" in page
    assert "Authorization: 'Bearer {{jwt.token}}'" in page and "algorithm: 'HS256'" in page
    assert f"aud: '{ZendeskSidebarVerifier.AUDIENCE}'" in page
    for logo in ("logo.png", "logo-small.png"):
        assert (INTEGRATION / "assets" / logo).read_bytes().startswith(b"\x89PNG")
