"""The Freshdesk client against a local fake of the API v2 (tests/fakes/freshdesk_fake.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

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
from mailbridge.helpdesks.freshdesk import FreshdeskClient, FreshdeskSidebarVerifier
from tests.fakes.freshdesk_fake import FreshdeskFake

#: ../shared/corpora beside the checkout (a worktree may sit one level deeper).
SAMPLES = next(
    (
        found
        for parent in Path(__file__).resolve().parents
        if (found := parent / "shared/corpora/helpdesk_apis/freshdesk/python_freshdesk_v2").exists()
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
        text=f"Why was I charged twice? ({n})\nThanks",
        html=f"<p>Why was I charged <i>twice</i>? ({n})</p>" if html else None,
        message_id=f"<msg-{n}@mail.example.com>",
    )


@pytest.fixture
def fake() -> Iterator[FreshdeskFake]:
    with FreshdeskFake() as server:
        yield server


@pytest.fixture
def client(fake: FreshdeskFake) -> FreshdeskClient:
    return FreshdeskClient(domain="acme", api_key=fake.api_key, base_url=fake.url, timeout=2.0)


def notes(fake: FreshdeskFake, ticket_id: str) -> list[dict[str, object]]:
    return fake.conversations[int(ticket_id)]


def test_the_client_and_verifier_implement_the_protocols(client: FreshdeskClient) -> None:
    """Typed as the protocols the push job and the /sidebar route use."""
    helpdesk: ExternalHelpdesk = client
    verifier: SidebarVerifier = FreshdeskSidebarVerifier("t" * 32)
    assert helpdesk.name == "freshdesk" and verifier is not None


def test_test_connection_names_the_agent(client: FreshdeskClient) -> None:
    """The admin's "test connection" shows whose API key this is."""
    assert client.test_connection() == (
        "Connected to acme.freshdesk.com as Billbox Agent <agent@billbox.test>"
    )


def test_a_new_thread_becomes_a_ticket_from_the_customer_with_a_private_note(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """Requester is the customer's contact; HTML description; the note is private."""
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)

    stored = fake.tickets[int(ticket.ticket_id)]
    contact = fake.contacts[stored["requester_id"]]
    assert (contact["email"], contact["name"]) == ("ana@example.com", "Ana Pérez")
    assert stored["subject"] == "Double charge"
    assert (stored["status"], stored["priority"], stored["source"]) == (2, 1, 1)
    assert "<i>twice</i>" in stored["description"] and "billbox-msg-" in stored["description"]
    assert "billbox" in stored["tags"] and any(t.startswith("bbx-") for t in stored["tags"])
    (note,) = notes(fake, ticket.ticket_id)
    assert note["private"] is True and note["incoming"] is False
    assert str(note["body"]).startswith(NOTE.html) and "billbox-note-" in str(note["body"])
    assert ticket.url == f"{fake.url}/a/tickets/{ticket.ticket_id}"


def test_plain_text_is_escaped_into_html(client: FreshdeskClient, fake: FreshdeskFake) -> None:
    """Freshdesk's description is HTML: plain text is escaped, line breaks kept."""
    message = MessageBody(text="a < b\nc", message_id="<p@x>")
    ticket = client.create_ticket(CUSTOMER, "", message, None)
    stored = fake.tickets[int(ticket.ticket_id)]
    assert stored["description"].startswith("<div>a &lt; b<br>c</div>")
    assert stored["subject"] == "(no subject)"


def test_a_reply_is_an_incoming_public_note_by_the_customer_not_an_agent_reply(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """``/reply`` would email the customer as an agent; a reply is an incoming note."""
    first = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert client.has_message(first.ticket_id, "<msg-1@mail.example.com>")
    assert not client.has_message(first.ticket_id, "<msg-2@mail.example.com>")

    reply = client.append_reply(first.ticket_id, CUSTOMER, body(2), NOTE)

    _, customer_note, billing_note = notes(fake, first.ticket_id)
    contact_id = fake.tickets[int(first.ticket_id)]["requester_id"]
    assert customer_note["incoming"] is True and customer_note["private"] is False
    assert customer_note["user_id"] == contact_id
    assert billing_note["private"] is True
    assert reply.message_id == str(customer_note["id"])
    assert client.has_message(first.ticket_id, "<msg-2@mail.example.com>")
    assert fake.calls("POST", r"/api/v2/tickets/\d+/reply") == []


def test_a_reply_from_a_new_address_creates_its_contact(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """The note's user_id must be a contact; a colleague writing in gets one."""
    first = client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    colleague = Requester(email="bo@example.com")
    client.append_reply(first.ticket_id, colleague, body(3), None)
    (contact,) = [c for c in fake.contacts.values() if c["email"] == "bo@example.com"]
    assert contact["name"] == "bo"
    assert notes(fake, first.ticket_id)[-1]["user_id"] == contact["id"]


def test_a_reply_reopens_a_resolved_ticket(client: FreshdeskClient, fake: FreshdeskFake) -> None:
    """Like an emailed reply, a customer's answer puts the ticket back in the open queue."""
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    fake.set_status(int(ticket.ticket_id), 4)
    client.append_reply(ticket.ticket_id, CUSTOMER, body(2), None)
    assert fake.tickets[int(ticket.ticket_id)]["status"] == 2


def test_a_create_whose_response_was_dropped_is_found_by_the_retry(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """The fake commits the ticket and hangs up; the retry finds it (search not yet indexed)."""
    fake.fail_next("POST", "/api/v2/tickets", drop=True)
    with pytest.raises(HelpdeskUnavailable):
        client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert len(fake.tickets) == 1 and notes(fake, "1") == []

    again = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)

    assert len(fake.tickets) == 1 and again.ticket_id == "1"
    assert len(notes(fake, "1")) == 1
    client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert len(fake.tickets) == 1 and len(notes(fake, "1")) == 1


def test_find_ticket_uses_the_filter_api_and_covers_its_indexing_lag(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """Before indexing, recent tickets are scanned; after, the tag query answers alone."""
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    client.create_ticket(CUSTOMER, "Other", body(9), None)
    assert client.find_ticket("<msg-1@mail.example.com>") == ticket
    fake.index()
    before = len(fake.calls("GET", "/api/v2/tickets"))
    assert client.find_ticket("msg-1@mail.example.com") == ticket
    assert len(fake.calls("GET", "/api/v2/tickets")) == before
    (search, *_) = fake.calls("GET", "/api/v2/search/tickets")
    assert search.query["query"].startswith("\"tag:'bbx-") and search.query["query"].endswith("'\"")
    assert client.find_ticket("<unknown@mail.example.com>") is None


def test_find_ticket_looks_back_only_so_far(fake: FreshdeskFake) -> None:
    """The fallback scan is bounded by ``lookback`` (updated_since)."""
    client = FreshdeskClient(
        domain="acme", api_key=fake.api_key, base_url=fake.url, lookback=timedelta(hours=2)
    )
    client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    client.find_ticket("<msg-1@mail.example.com>")
    (scan,) = fake.calls("GET", "/api/v2/tickets")[-1:]
    assert scan.query["include"] == "description" and scan.query["updated_since"].endswith("Z")


def test_a_reply_whose_response_was_dropped_is_not_added_twice(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """Conversations are read across pages and the marker is found."""
    fake.max_page_size = 1
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    fake.fail_next("POST", r"/api/v2/tickets/\d+/notes", drop=True)
    with pytest.raises(HelpdeskUnavailable):
        client.append_reply(ticket.ticket_id, CUSTOMER, body(4), NOTE)
    assert client.has_message(ticket.ticket_id, "<msg-4@mail.example.com>")

    client.append_reply(ticket.ticket_id, CUSTOMER, body(4), NOTE)
    client.append_reply(ticket.ticket_id, CUSTOMER, body(4), NOTE)

    assert [n["private"] for n in notes(fake, ticket.ticket_id)] == [True, False, True]


def test_a_timed_out_contact_creation_is_recovered(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """A contact committed by a timed-out attempt is found again (409 → look up)."""
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    fake.fail_next("POST", "/api/v2/contacts", drop=True)
    colleague = Requester(email="bo@example.com", name="Bo")
    with pytest.raises(HelpdeskUnavailable):
        client.append_reply(ticket.ticket_id, colleague, body(5), None)
    client.append_reply(ticket.ticket_id, colleague, body(5), None)
    assert len([c for c in fake.contacts.values() if c["email"] == "bo@example.com"]) == 1


def test_429_is_unavailable_with_retry_after_and_changes_nothing(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """Freshdesk's documented 429 with Retry-After."""
    fake.fail_next("POST", "/api/v2/tickets", status=429, headers={"Retry-After": "34"})
    with pytest.raises(HelpdeskUnavailable) as caught:
        client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    assert caught.value.retry_after == 34
    assert fake.tickets == {}


def test_bad_credentials_are_an_auth_error_with_freshdesks_message(fake: FreshdeskFake) -> None:
    """401 → HelpdeskAuthError with "You have to be logged in…"."""
    client = FreshdeskClient(domain="acme", api_key="wrong", base_url=fake.url)
    with pytest.raises(HelpdeskAuthError, match="logged in"):
        client.test_connection()
    with pytest.raises(HelpdeskAuthError):
        client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    assert fake.tickets == {}


def test_validation_errors_carry_field_and_code(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """A 400 is permanent and tells the admin which field Freshdesk disliked."""
    error = {"field": "subject", "message": "Mandatory attribute missing", "code": "missing_field"}
    fake.fail_next(
        "POST", "/api/v2/tickets", status=400,
        body={"description": "Validation failed", "errors": [error]},
    )  # fmt: skip
    with pytest.raises(HelpdeskError) as caught:
        client.create_ticket(CUSTOMER, "Double charge", body(1), None)
    assert not isinstance(caught.value, HelpdeskUnavailable) and caught.value.status == 400
    assert "subject: Mandatory attribute missing (missing_field)" in str(caught.value)
    fake.fail_next("GET", "/api/v2/agents/me", status=500, body={"message": "Phew"})
    with pytest.raises(HelpdeskUnavailable, match="Phew"):
        client.test_connection()


def test_every_request_we_send_is_valid_for_freshdesk(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """The fake refuses undocumented fields (400 invalid_field): a whole flow passes it."""
    first = client.create_ticket(CUSTOMER, "Double charge", body(1, html=False), NOTE)
    client.append_reply(first.ticket_id, Requester("carla@example.com"), body(2), NOTE)
    client.find_ticket("<msg-2@mail.example.com>")
    assert all(r.method == "GET" or r.body is not None for r in fake.requests)
    assert len(fake.requests) > 8


@pytest.mark.skipif(not SAMPLES.exists(), reason="shared corpora not present")
def test_the_fake_answers_with_the_keys_of_freshdesks_v2_samples(
    client: FreshdeskClient, fake: FreshdeskFake
) -> None:
    """Ticket, note and contact objects have every key of python-freshdesk's v2 samples."""
    ticket = client.create_ticket(CUSTOMER, "Double charge", body(1), NOTE)
    sample_ticket = json.loads((SAMPLES / "ticket_1.json").read_text())
    sample_note = json.loads((SAMPLES / "note_1.json").read_text())
    sample_contact = json.loads((SAMPLES / "contact.json").read_text())
    optional = {"stats", "requester"}  # embedded only with include=…
    stored = fake.tickets[int(ticket.ticket_id)]
    assert set(sample_ticket) - optional <= set(stored)
    assert set(sample_note) <= set(notes(fake, ticket.ticket_id)[0])
    renamed = {
        "customer_id",
        "deleted",
        "fb_profile_id",
        "helpdesk_agent",
        "custom_field",
        "external_id",
    }
    assert set(sample_contact) - renamed <= set(fake.contacts[stored["requester_id"]])


# -- the sidebar ---------------------------------------------------------------------------

TOKEN = "freshdesk-sidebar-token-0123456789"


def test_the_sidebar_accepts_the_apps_bearer_token() -> None:
    """The token from the secure iparam, sent by the Freshworks proxy."""
    verifier = FreshdeskSidebarVerifier(TOKEN)
    headers = {"authorization": f"Bearer {TOKEN}"}
    assert verifier.verify(headers, {"email": "ana@example.com"}, b"") == "ana@example.com"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"},
     {"Authorization": f"Bearer {TOKEN}x"}],
    ids=["none", "wrong", "not-bearer", "longer"],
)  # fmt: skip
def test_the_sidebar_refuses_requests_without_the_token(headers: dict[str, str]) -> None:
    """Having the URL is not enough."""
    with pytest.raises(HelpdeskAuthError):
        FreshdeskSidebarVerifier(TOKEN).verify(headers, {"email": "ana@example.com"}, b"")


def test_the_sidebar_needs_an_email() -> None:
    """An authenticated request without the customer's email is a 400."""
    with pytest.raises(HelpdeskError) as caught:
        FreshdeskSidebarVerifier(TOKEN).verify({"Authorization": f"Bearer {TOKEN}"}, {}, b"")
    assert caught.value.status == 400


INTEGRATION = Path(__file__).resolve().parents[1] / "integrations" / "freshdesk"


def test_the_freshdesk_app_sends_what_the_verifier_checks() -> None:
    """The request template carries the secure iparam as a bearer token to /sidebar."""
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    sidebar = manifest["modules"]["support_ticket"]["location"]["ticket_sidebar"]
    assert (INTEGRATION / "app" / sidebar["url"]).exists()
    assert (INTEGRATION / "app" / sidebar["icon"]).exists()
    assert set(manifest["modules"]["common"]["requests"]) == {"billboxPanel"}
    iparams = json.loads((INTEGRATION / "config/iparams.json").read_text())
    assert iparams["sidebar_token"]["secure"] is True
    schema = json.loads((INTEGRATION / "config/requests.json").read_text())["billboxPanel"][
        "schema"
    ]
    assert schema["protocol"] == "https" and schema["path"] == "/sidebar"
    assert schema["query"] == {"helpdesk": "freshdesk", "email": "<%= context.email %>"}
    assert schema["headers"]["Authorization"] == "Bearer <%= iparam.sidebar_token %>"
    script = (INTEGRATION / "app/scripts/app.js").read_text()
    assert "invokeTemplate('billboxPanel', { context: { email: email } })" in script


def test_add_note_puts_one_private_note_on_a_ticket_opened_in_freshdesk(
    fake: FreshdeskFake, client: FreshdeskClient
) -> None:
    """For tickets opened in the helpdesk itself: a repeat with the same key adds nothing."""
    opened = client.create_ticket(
        CUSTOMER, "Phoned in", MessageBody("hi", message_id="<p1@x>"), None
    )
    client.add_note(opened.ticket_id, NOTE, "<hook-1@billbox>")
    client.add_note(opened.ticket_id, NOTE, "<hook-1@billbox>")
    assert len(notes(fake, opened.ticket_id)) == 1
