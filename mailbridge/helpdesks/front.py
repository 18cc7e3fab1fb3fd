"""Front (Core API) connector and plugin sidebar verifier.

Authentication: an API token sent as a bearer token.

Which endpoint brings the customer's mail in: Front offers two documented
ways for a server to put an *inbound* message in an inbox,
``POST /channels/{channel_id}/incoming_messages`` (custom channels) and
``POST /inboxes/{inbox_id}/imported_messages``. We use the import endpoint
because it is the one with idempotency in the spec: ``external_id`` ("Front
won't import two messages with the same external ID"), and ``conversation_id``
threads a reply into a known conversation explicitly. We set
``metadata.is_inbound = true``, ``is_archived = false`` (so it lands open in
the inbox, not archived like history) and ``should_skip_rules = false`` (so
the team's rules still run). The custom-channel endpoint has neither an
external id nor a conversation id — only ``thread_ref`` — and only works
for custom channels.

Calls made (under ``base_url``, default ``https://api2.frontapp.com``):

* ``GET  /me``                                            test_connection
* ``POST /inboxes/{inbox_id}/imported_messages``          create and append (202 + message_uid)
* ``GET  /messages/alt:uid:{message_uid}``                wait for the async import to finish and
  learn the conversation (``_links.related.conversation``); 404 until it exists
* ``GET  /conversations/search/inbox:{inbox_id} {token}``  find_ticket
* ``GET  /conversations/{id}/messages``                   has_message
* ``GET  /conversations/{id}/comments``, ``POST /conversations/{id}/comments``  the billing note

Idempotency: ``external_id`` is our Message-ID, so Front itself refuses a
second copy; the body also carries the reference word (``_refs_b``) so a
retry can *find* the conversation the first attempt made (the 202 carrying
its uid may be the answer that was lost). Comments have no external id, so
they carry a note reference and are looked up before posting.

Bodies: the message goes as HTML (``body_format: html``); comments are
Markdown in Front, so the billing note goes as its plain-text form.
"""

from __future__ import annotations

import hmac
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from mailbridge.helpdesks._refs_b import (
    message_token,
    note_token,
    text_to_html,
    with_html_ref,
    with_text_ref,
)
from mailbridge.helpdesks.external import (
    BillingNote,
    ExternalTicket,
    HelpdeskAuthError,
    HelpdeskError,
    HelpdeskUnavailable,
    MessageBody,
    Requester,
)
from mailbridge.helpdesks.http import DEFAULT_TIMEOUT, JsonClient, bearer_auth

DEFAULT_BASE_URL = "https://api2.frontapp.com"
WEB_URL = "https://app.frontapp.com/open/{id}"


def front_error_message(payload: Any) -> str | None:
    """Front errors are ``{"_error": {"status", "title", "message"}}``."""
    if not isinstance(payload, dict):
        return None
    err = payload.get("_error")
    if isinstance(err, dict):
        return ": ".join(str(x) for x in (err.get("title"), err.get("message")) if x) or None
    return payload.get("message")


class Front:
    """A Front inbox; ``inbox_address`` is the address customers write to (the import's ``to``)."""

    name = "front"

    def __init__(
        self,
        *,
        api_token: str,
        inbox_id: str,
        inbox_address: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        import_wait: float = 10.0,
        poll_interval: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inbox_id = inbox_id
        self.inbox_address = inbox_address
        self._import_wait = import_wait
        self._poll_interval = poll_interval
        self._sleep = sleep
        self._clock = clock
        self._http = JsonClient(
            vendor="Front",
            base_url=base_url,
            auth=bearer_auth(api_token),
            error_text=front_error_message,
            timeout=timeout,
        )

    def test_connection(self) -> str:
        me = self._http.request("GET", "/me").data or {}
        return f"Connected to Front company {me.get('name')} ({me.get('id')})"

    def find_ticket(self, message_id: str) -> ExternalTicket | None:
        query = f"inbox:{self.inbox_id} {message_token(message_id)}"
        data = self._http.request("GET", f"/conversations/search/{_q(query)}").data or {}
        found = data.get("_results") or []
        if not found:
            return None
        conv_id = str(
            found[-1]["id"]
        )  # results are newest activity first; the first import is ours
        return ExternalTicket(conv_id, url=WEB_URL.format(id=conv_id))

    def create_ticket(
        self, requester: Requester, subject: str, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        mid = body.message_id
        if mid:
            existing = self.find_ticket(mid)
            if existing is not None:
                if note is not None:
                    self._ensure_note(existing.ticket_id, mid, note)
                return existing
        message = self._import(requester, subject, body, conversation_id=None)
        conv_id = _conversation_id(message)
        if note is not None:
            self._post_note(conv_id, mid, note)
        return ExternalTicket(conv_id, message_id=message.get("id"), url=WEB_URL.format(id=conv_id))

    def append_reply(
        self, ticket_id: str, requester: Requester, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        mid = body.message_id
        msg_id: str | None = None
        if not (mid and self.has_message(ticket_id, mid)):
            message = self._import(requester, "", body, conversation_id=ticket_id)
            msg_id = message.get("id")
        if note is not None:
            self._ensure_note(ticket_id, mid, note)
        return ExternalTicket(ticket_id, message_id=msg_id, url=WEB_URL.format(id=ticket_id))

    def has_message(self, ticket_id: str, message_id: str) -> bool:
        token = message_token(message_id)
        for msg in self._paged(f"/conversations/{_q(ticket_id)}/messages"):
            if token in str(msg.get("body") or "") or token in str(msg.get("text") or ""):
                return True
        return False

    # -- helpers ------------------------------------------------------------------

    def _import(
        self, requester: Requester, subject: str, body: MessageBody, conversation_id: str | None
    ) -> dict[str, Any]:
        mid = body.message_id
        sender: dict[str, str] = {"handle": requester.email}
        if requester.name:
            sender["name"] = requester.name
        payload: dict[str, Any] = {
            "sender": sender,
            "to": [self.inbox_address],
            "body": with_html_ref(
                body.html or text_to_html(body.text), message_token(mid) if mid else None
            ),
            "body_format": "html",
            "external_id": mid or f"billbox-{int(self._clock() * 1000)}",
            "created_at": int(self._clock()),
            "type": "email",
            "metadata": {"is_inbound": True, "is_archived": False, "should_skip_rules": False},
        }
        if subject:
            payload["subject"] = subject
        if conversation_id:
            payload["conversation_id"] = conversation_id
        accepted = self._http.request(
            "POST", f"/inboxes/{_q(self.inbox_id)}/imported_messages", body=payload
        ).data
        uid = accepted.get("message_uid") if isinstance(accepted, dict) else None
        if not uid:
            raise HelpdeskError("Front: the import was accepted without a message_uid")
        return self._wait_for_message(str(uid))

    def _wait_for_message(self, uid: str) -> dict[str, Any]:
        """Front creates the message asynchronously; poll its uid alias until it exists."""
        deadline = self._clock() + self._import_wait
        while True:
            try:
                message = self._http.request("GET", f"/messages/alt:uid:{_q(uid)}").data
            except HelpdeskError as exc:
                if exc.status != 404 or isinstance(exc, HelpdeskUnavailable):
                    raise
            else:
                if isinstance(message, dict):
                    return message
            if self._clock() >= deadline:
                raise HelpdeskUnavailable(
                    f"Front: message {uid} was accepted but not created within "
                    f"{self._import_wait:g} s; a retry will find it by its reference"
                )
            self._sleep(self._poll_interval)

    def add_note(self, ticket_id: str, note: BillingNote, key: str) -> None:
        self._ensure_note(ticket_id, key, note)

    def _ensure_note(self, conv_id: str, mid: str | None, note: BillingNote) -> None:
        if mid:
            token = note_token(mid)
            comments = self._http.request("GET", f"/conversations/{_q(conv_id)}/comments").data
            for comment in (comments or {}).get("_results") or []:
                if token in str(comment.get("body") or ""):
                    return
        self._post_note(conv_id, mid, note)

    def _post_note(self, conv_id: str, mid: str | None, note: BillingNote) -> None:
        body = with_text_ref(note.text, note_token(mid) if mid else None)
        self._http.request("POST", f"/conversations/{_q(conv_id)}/comments", body={"body": body})

    def _paged(self, path: str) -> list[dict[str, Any]]:
        """All ``_results`` of a list endpoint, following ``_pagination.next``."""
        data = self._http.request("GET", path).data or {}
        results: list[dict[str, Any]] = data.get("_results") or []
        while url := (data.get("_pagination") or {}).get("next"):
            data = self._http.get_url(str(url)).data or {}
            results += data.get("_results") or []
        return results


def _conversation_id(message: Mapping[str, Any]) -> str:
    link = ((message.get("_links") or {}).get("related") or {}).get("conversation")
    if not link:
        raise HelpdeskError("Front: the imported message has no conversation link")
    return urllib.parse.urlsplit(str(link)).path.rstrip("/").rsplit("/", 1)[-1]


class FrontSidebarVerifier:
    """Checks the plugin's ``Authorization: Bearer <auth_secret>`` and returns ``?email=``.

    Front appends the app's Auth Secret to the plugin URL as ``auth_secret``
    every time it renders the plugin (Front's plugin security docs). Our
    plugin page (``integrations/front/plugin.html``) reads it there and sends
    it as a bearer header when it asks ``/sidebar`` for a customer's panel, so
    the secret never sits in our access logs or a Referer. The email itself is
    unsigned — the plugin page reads it from the Front conversation — so the
    secret is what stands between the panel and anyone with the URL.
    """

    def __init__(self, auth_secret: str) -> None:
        if not auth_secret:
            raise ValueError("the Front plugin auth secret is empty")
        self._secret = auth_secret.encode()

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HelpdeskAuthError("Front sidebar: no bearer auth secret")
        if not hmac.compare_digest(given.strip().encode(), self._secret):
            raise HelpdeskAuthError("Front sidebar: auth secret does not match")
        email = (query.get("email") or "").strip()
        if not email or "@" not in email:
            raise HelpdeskAuthError("Front sidebar: no customer email in the request")
        return email


def _q(value: str) -> str:
    return urllib.parse.quote(str(value), safe=":")
