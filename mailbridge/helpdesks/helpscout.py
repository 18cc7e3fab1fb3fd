"""Help Scout (Mailbox API 2.0) connector and dynamic-app sidebar verifier.

Authentication is OAuth2 *client credentials*: ``POST /v2/oauth2/token``
with the app id and secret gives a bearer token valid for ``expires_in``
seconds. The token is cached until a minute before it expires, and a 401 on
an API call drops it and tries once more with a fresh one (Help Scout can
revoke tokens early); a second 401 is a real credentials problem.

Calls made (all under ``base_url``, default ``https://api.helpscout.net/v2``):

* ``GET  /mailboxes/{mailboxId}``               test_connection
* ``GET  /conversations?mailbox=…&status=all&query=(body:"<token>")``  find_ticket
* ``POST /conversations``                        create: customer thread + note thread
  in one request, so a conversation never exists without its note; id from ``Resource-ID``
* ``GET  /conversations/{id}/threads``           has_message, and which note exists
* ``POST /conversations/{id}/customer``          append a customer reply
* ``POST /conversations/{id}/notes``             the billing note for a reply

Idempotency: every thread we write ends with a reference line (see
``_refs_b``); ``create_ticket`` searches for it before creating and
``append_reply`` reads the threads before adding, so a retry after a
timeout adds nothing twice. Help Scout's conversation custom fields would be
tidier but need a paid plan and a field set up per mailbox; body search works
on every account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from mailbridge.helpdesks._refs_b import (
    message_token,
    note_token,
    text_to_html,
    with_html_ref,
)
from mailbridge.helpdesks.external import (
    BillingNote,
    ExternalTicket,
    HelpdeskAuthError,
    HelpdeskError,
    MessageBody,
    Requester,
)
from mailbridge.helpdesks.http import DEFAULT_TIMEOUT, JsonClient

DEFAULT_BASE_URL = "https://api.helpscout.net/v2"
#: Where an agent opens a conversation (shown in the admin next to the id).
WEB_URL = "https://secure.helpscout.net/conversation/{id}"
#: Refresh this many seconds before the token's stated expiry.
TOKEN_MARGIN = 60.0


def helpscout_error_message(payload: Any) -> str | None:
    """``message`` plus each ``_embedded.errors[].path: message`` (their validation shape)."""
    if not isinstance(payload, dict):
        return None
    parts = [str(payload.get("message") or payload.get("error_description") or "")]
    if not parts[0] and payload.get("error"):
        parts[0] = str(payload["error"])
    for err in (payload.get("_embedded") or {}).get("errors") or []:
        parts.append(f"{err.get('path', '')}: {err.get('message', '')}".strip(": "))
    text = "; ".join(p for p in parts if p)
    return text or None


class HelpScout:
    """A Help Scout account's mailbox; ``mailbox_id`` is where new conversations go."""

    name = "helpscout"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        mailbox_id: int,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mailbox_id = int(mailbox_id)
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        self._http = JsonClient(
            vendor="Help Scout",
            base_url=base_url,
            auth=self._bearer,
            error_text=helpscout_error_message,
            timeout=timeout,
        )

    # -- auth -------------------------------------------------------------

    def _fetch_token(self) -> str:
        resp = self._http.request(
            "POST",
            "/oauth2/token",
            form={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            authenticated=False,
        )
        data = resp.data
        if not isinstance(data, dict) or not data.get("access_token"):
            raise HelpdeskError("Help Scout: the token endpoint returned no access_token")
        self._token = str(data["access_token"])
        self._token_expires = self._clock() + float(data.get("expires_in") or 0) - TOKEN_MARGIN
        return self._token

    def _bearer(self) -> Mapping[str, str]:
        token = self._token
        if token is None or self._clock() >= self._token_expires:
            token = self._fetch_token()
        return {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; a 401 refreshes the token once (it may have been revoked early)."""
        try:
            return self._http.request(method, path, **kwargs)
        except HelpdeskAuthError as exc:
            if exc.status != 401:
                raise
            self._token = None
            return self._http.request(method, path, **kwargs)

    # -- ExternalHelpdesk ---------------------------------------------------

    def test_connection(self) -> str:
        data = self._call("GET", f"/mailboxes/{self.mailbox_id}").data or {}
        name, email = data.get("name", self.mailbox_id), data.get("email", "?")
        return f"Connected to Help Scout mailbox {name} ({email})"

    def find_ticket(self, message_id: str) -> ExternalTicket | None:
        query = {
            "mailbox": self.mailbox_id,
            "status": "all",
            "query": f'(body:"{message_token(message_id)}")',
        }
        data = self._call("GET", "/conversations", query=query).data or {}
        found = (data.get("_embedded") or {}).get("conversations") or []
        if not found:
            return None
        conv_id = str(min(found, key=lambda c: int(c["id"]))["id"])
        return ExternalTicket(conv_id, url=WEB_URL.format(id=conv_id))

    def create_ticket(
        self, requester: Requester, subject: str, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        if body.message_id:
            existing = self.find_ticket(body.message_id)
            if existing is not None:
                if note is not None:
                    self._ensure_note(existing.ticket_id, body.message_id, note, None)
                return existing
        mid = body.message_id
        threads: list[dict[str, Any]] = [
            {
                "type": "customer",
                "customer": _customer(requester),
                "text": _thread_html(body, message_token(mid) if mid else None),
            }
        ]
        if note is not None:
            threads.append({"type": "note", "text": with_html_ref(note.html, _note_ref(mid))})
        payload = {
            "subject": subject or "(no subject)",
            "customer": _customer(requester),
            "mailboxId": self.mailbox_id,
            "type": "email",
            "status": "active",
            "threads": threads,
        }
        resp = self._call("POST", "/conversations", body=payload)
        conv_id = resp.headers.get("resource-id")
        if not conv_id:
            raise HelpdeskError("Help Scout: created a conversation but sent no Resource-ID")
        return ExternalTicket(conv_id, url=WEB_URL.format(id=conv_id))

    def append_reply(
        self, ticket_id: str, requester: Requester, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        mid = body.message_id
        bodies = self._thread_bodies(ticket_id) if mid else []
        thread_id: str | None = None
        if not (mid and any(message_token(mid) in b for b in bodies)):
            resp = self._call(
                "POST",
                f"/conversations/{_q(ticket_id)}/customer",
                body={
                    "customer": _customer(requester),
                    "text": _thread_html(body, message_token(mid) if mid else None),
                },
            )
            thread_id = resp.headers.get("resource-id")
        if note is not None:
            self._ensure_note(ticket_id, mid, note, bodies)
        return ExternalTicket(ticket_id, message_id=thread_id, url=WEB_URL.format(id=ticket_id))

    def has_message(self, ticket_id: str, message_id: str) -> bool:
        token = message_token(message_id)
        return any(token in b for b in self._thread_bodies(ticket_id))

    # -- helpers ------------------------------------------------------------

    def add_note(self, ticket_id: str, note: BillingNote, key: str) -> None:
        self._ensure_note(ticket_id, key, note, None)

    def _ensure_note(
        self, ticket_id: str, mid: str | None, note: BillingNote, bodies: list[str] | None
    ) -> None:
        ref = _note_ref(mid)
        if ref is not None:
            if bodies is None:
                bodies = self._thread_bodies(ticket_id)
            if any(ref in b for b in bodies):
                return
        self._call(
            "POST",
            f"/conversations/{_q(ticket_id)}/notes",
            body={"text": with_html_ref(note.html, ref)},
        )

    def _thread_bodies(self, ticket_id: str) -> list[str]:
        """Every thread body of the conversation, following HAL pagination."""
        bodies: list[str] = []
        page = 1
        while True:
            data = (
                self._call(
                    "GET", f"/conversations/{_q(ticket_id)}/threads", query={"page": page}
                ).data
                or {}
            )
            for thread in (data.get("_embedded") or {}).get("threads") or []:
                bodies.append(str(thread.get("body") or ""))
            total = int((data.get("page") or {}).get("totalPages") or 1)
            if page >= total:
                return bodies
            page += 1


class HelpScoutSidebarVerifier:
    """Checks a dynamic app request: ``X-HelpScout-Signature`` = base64(HMAC-SHA1(secret, body))."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the Help Scout dynamic app secret is empty")
        self._secret = secret.encode()

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str:
        given = _header(headers, "X-HelpScout-Signature")
        if not given:
            raise HelpdeskAuthError("Help Scout sidebar: no X-HelpScout-Signature header")
        expected = base64.b64encode(hmac.new(self._secret, body, hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise HelpdeskAuthError("Help Scout sidebar: signature does not match")
        try:
            customer = json.loads(body).get("customer") or {}
        except (ValueError, AttributeError) as exc:
            raise HelpdeskAuthError("Help Scout sidebar: signed body is not a JSON object") from exc
        email = customer.get("email") or next(iter(customer.get("emails") or []), None)
        if isinstance(email, dict):
            email = email.get("value")
        if not email or not isinstance(email, str):
            raise HelpdeskAuthError("Help Scout sidebar: the conversation has no customer email")
        return email


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _customer(requester: Requester) -> dict[str, str]:
    customer = {"email": requester.email}
    first, _, last = requester.name.strip().partition(" ")
    if first:
        customer["firstName"] = first
    if last.strip():
        customer["lastName"] = last.strip()
    return customer


def _thread_html(body: MessageBody, token: str | None) -> str:
    return with_html_ref(body.html or text_to_html(body.text), token)


def _note_ref(message_id: str | None) -> str | None:
    return note_token(message_id) if message_id else None


def _q(ticket_id: str) -> str:
    return urllib.parse.quote(str(ticket_id), safe="")
