"""Freshdesk (API v2): tickets from customer mail, with the billing note.

Authentication is an agent's API key: Basic ``{api_key}:X``.

What we write
-------------
* A new thread is ``POST /api/v2/tickets`` with the customer's ``email`` and
  ``name`` (Freshdesk creates the contact if needed), the message as the
  HTML ``description``, ``status`` 2 (open), ``priority`` 1 (low), ``source``
  1 (email) and the tags ``billbox`` and ``bbx-<ref>``, ``ref`` being a digest
  of our Message-ID (:mod:`._refs_a`).
* The billing note is ``POST /api/v2/tickets/{id}/notes`` with ``private: true``.
* A customer reply is *not* ``/reply``: that endpoint is an agent's answer and
  emails the customer. It is a note with ``incoming: true`` (shown as coming
  from outside), ``private: false`` and ``user_id`` = the customer's contact
  (``GET /api/v2/contacts?email=…``, created with ``POST /api/v2/contacts`` if
  missing). A resolved or closed ticket is reopened (status 2), as an emailed
  reply would.

How a retry finds what an earlier attempt wrote
-----------------------------------------------
Freshdesk tickets have no external id and conversations cannot carry one, so:

* each customer message we write ends with a small grey line
  ``Billbox ref billbox-msg-<ref>`` and each billing note with
  ``Billbox ref billbox-note-<ref>``; :meth:`has_message` looks for the
  marker in the ticket's description and conversations
  (``GET /api/v2/tickets/{id}`` and ``…/conversations``);
* before creating, :meth:`create_ticket` lists the requester's tickets
  (``GET /api/v2/tickets?email=…&include=description``, a database filter) and
  looks for the marker, so a ticket made by a timed-out attempt is seen at once;
* :meth:`find_ticket` has only the Message-ID: it asks the filter API for the
  tag (``GET /api/v2/search/tickets?query="tag:'bbx-<ref>'"``) and, because
  Freshdesk documents that the search index lags "a few minutes", falls back
  to the tickets updated within ``lookback`` (default 24 hours).

A custom ticket field would avoid the visible marker but needs an admin to
create it first in every account; the marker line works out of the box.
"""

from __future__ import annotations

import hmac
import html
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.helpdesks._refs_a import message_ref
from mailbridge.helpdesks.external import (
    BillingNote,
    ExternalTicket,
    HelpdeskAuthError,
    HelpdeskError,
    MessageBody,
    Requester,
)
from mailbridge.helpdesks.http import DEFAULT_TIMEOUT, JsonClient, JsonResponse, basic_auth

_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_MAX_PAGES = 20
_OPEN, _RESOLVED, _CLOSED = 2, 4, 5
_LOW_PRIORITY, _SOURCE_EMAIL = 1, 1


def freshdesk_error_text(data: Any) -> str | None:
    """Freshdesk's error bodies: ``{"description", "errors": [{field, message, code}]}``."""
    if not isinstance(data, dict):
        return None
    parts: list[str] = []
    for key in ("description", "message"):
        if data.get(key):
            parts.append(str(data[key]))
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            field = f"{error['field']}: " if error.get("field") else ""
            parts.append(f"{field}{error.get('message')} ({error.get('code')})")
    if not parts and data.get("code"):
        parts.append(str(data["code"]))
    return " — ".join(parts) or None


def message_marker(ref: str) -> str:
    return f"billbox-msg-{ref}"


def note_marker(ref: str) -> str:
    return f"billbox-note-{ref}"


def ticket_tag(ref: str) -> str:
    return f"bbx-{ref}"


class FreshdeskClient:
    """One Freshdesk account, reached with an agent's API key."""

    name = "freshdesk"

    def __init__(
        self,
        *,
        domain: str,
        api_key: str,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        lookback: timedelta = timedelta(hours=24),
    ) -> None:
        domain = domain.strip().lower().removesuffix(".freshdesk.com")
        if not _DOMAIN.match(domain):
            raise ValueError(f"not a Freshdesk domain: {domain!r}")
        if not api_key.strip():
            raise ValueError("Freshdesk needs an agent's API key")
        self.domain = domain
        self.lookback = lookback
        self._api = JsonClient(
            vendor="Freshdesk",
            base_url=base_url or f"https://{domain}.freshdesk.com",
            auth=basic_auth(api_key.strip(), "X"),
            error_text=freshdesk_error_text,
            timeout=timeout,
        )

    # -- the ExternalHelpdesk protocol -------------------------------------------------

    def test_connection(self) -> str:
        agent = self._api.request("GET", "/api/v2/agents/me").data or {}
        contact = agent.get("contact") or {}
        if agent.get("id") is None:
            raise HelpdeskAuthError("Freshdesk did not say which agent this API key belongs to")
        return (
            f"Connected to {self.domain}.freshdesk.com as {contact.get('name')} "
            f"<{contact.get('email')}>"
        )

    def find_ticket(self, message_id: str) -> ExternalTicket | None:
        ref = message_ref(message_id)
        query = f"\"tag:'{ticket_tag(ref)}'\""
        found = self._api.request("GET", "/api/v2/search/tickets", query={"query": query}).data
        ids = [int(t["id"]) for t in (found or {}).get("results") or []]
        if not ids:
            since = (datetime.now(UTC) - self.lookback).strftime("%Y-%m-%dT%H:%M:%SZ")
            recent: dict[str, str | int] = {
                "updated_since": since,
                "include": "description",
                "per_page": 100,
            }
            ids = [int(t["id"]) for t in self._tickets(recent) if _is_ours(t, ref)]
        return self._external(min(ids)) if ids else None

    def create_ticket(
        self, requester: Requester, subject: str, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        ref = message_ref(body.message_id)
        existing = self._requester_ticket(requester.email, ref)
        if existing is not None:
            if note is not None and not self._has_marker(existing, note_marker(ref)):
                self._add_note(existing, note, ref)
            return self._external(existing)
        ticket: dict[str, Any] = {
            "email": requester.email,
            "subject": subject.strip() or "(no subject)",
            "description": _with_marker(body, message_marker(ref)),
            "status": _OPEN,
            "priority": _LOW_PRIORITY,
            "source": _SOURCE_EMAIL,
            "tags": ["billbox", ticket_tag(ref)],
        }
        if requester.name.strip():
            ticket["name"] = requester.name.strip()
        created = self._api.request("POST", "/api/v2/tickets", body=ticket).data
        ticket_id = int(created["id"])
        if note is not None:
            self._add_note(ticket_id, note, ref)
        return self._external(ticket_id)

    def append_reply(
        self, ticket_id: str, requester: Requester, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        ref = message_ref(body.message_id)
        number = _id(ticket_id)
        ticket = self._api.request("GET", f"/api/v2/tickets/{number}").data
        conversations = list(self._conversations(number))
        reply = _conversation_with(conversations, message_marker(ref))
        if reply is None and message_marker(ref) not in _text_of(ticket, "description"):
            payload = {
                "body": _with_marker(body, message_marker(ref)),
                "private": False,
                "incoming": True,
                "user_id": self._contact_id(requester),
            }
            reply = self._api.request("POST", f"/api/v2/tickets/{number}/notes", body=payload).data
        if ticket.get("status") in (_RESOLVED, _CLOSED):
            self._api.request("PUT", f"/api/v2/tickets/{number}", body={"status": _OPEN})
        if note is not None and _conversation_with(conversations, note_marker(ref)) is None:
            self._add_note(number, note, ref)
        reply_id = None if reply is None else str(reply["id"])
        return ExternalTicket(ticket_id=str(number), message_id=reply_id, url=self._url(number))

    def has_message(self, ticket_id: str, message_id: str) -> bool:
        return self._has_marker(_id(ticket_id), message_marker(message_ref(message_id)))

    # -- the calls ------------------------------------------------------------------------

    def add_note(self, ticket_id: str, note: BillingNote, key: str) -> None:
        ref = message_ref(key)
        if not self._has_marker(_id(ticket_id), note_marker(ref)):
            self._add_note(_id(ticket_id), note, ref)

    def _add_note(self, ticket_id: int, note: BillingNote, ref: str) -> None:
        marker = note_marker(ref)
        payload = {"body": note.html + _marker_html(marker), "private": True}
        self._api.request("POST", f"/api/v2/tickets/{ticket_id}/notes", body=payload)

    def _has_marker(self, ticket_id: int, marker: str) -> bool:
        ticket = self._api.request("GET", f"/api/v2/tickets/{ticket_id}").data
        if marker in _text_of(ticket, "description"):
            return True
        return _conversation_with(self._conversations(ticket_id), marker) is not None

    def _requester_ticket(self, email: str, ref: str) -> int | None:
        """A ticket of this requester that an earlier attempt created for this message."""
        query: dict[str, str | int] = {
            "email": email,
            "include": "description",
            "order_by": "created_at",
            "order_type": "desc",
            "per_page": 100,
        }
        try:
            ids = [int(t["id"]) for t in self._tickets(query) if _is_ours(t, ref)]
        except HelpdeskError as error:
            # Freshdesk answers 400 when no contact has this email yet: no tickets either.
            if error.status == 400 and "email" in str(error):
                return None
            raise
        return min(ids) if ids else None

    def _contact_id(self, requester: Requester) -> int:
        found = self._api.request("GET", "/api/v2/contacts", query={"email": requester.email})
        if found.data:
            return int(found.data[0]["id"])
        name = requester.name.strip() or requester.email.split("@", 1)[0]
        contact = {"name": name, "email": requester.email}
        try:
            return int(self._api.request("POST", "/api/v2/contacts", body=contact).data["id"])
        except HelpdeskError as error:
            if error.status != 409:  # 409: created meanwhile (or by a timed-out attempt)
                raise
        again = self._api.request("GET", "/api/v2/contacts", query={"email": requester.email})
        if not again.data:
            raise HelpdeskError(f"Freshdesk has no contact for {requester.email} but refused one")
        return int(again.data[0]["id"])

    def _tickets(self, query: Mapping[str, str | int]) -> Iterator[dict[str, Any]]:
        yield from self._pages(self._api.request("GET", "/api/v2/tickets", query=query))

    def _conversations(self, ticket_id: int) -> Iterator[dict[str, Any]]:
        first = self._api.request(
            "GET", f"/api/v2/tickets/{ticket_id}/conversations", query={"per_page": 100}
        )
        yield from self._pages(first)

    def _pages(self, response: JsonResponse) -> Iterator[dict[str, Any]]:
        """A list endpoint's items, following the ``Link: <…>; rel="next"`` header."""
        for _ in range(_MAX_PAGES):
            yield from response.data or []
            match = _NEXT.search(response.headers.get("link", ""))
            if match is None:
                return
            response = self._api.get_url(match.group(1).strip())

    def _url(self, ticket_id: int) -> str:
        return f"{self._api.base_url}/a/tickets/{ticket_id}"

    def _external(self, ticket_id: int) -> ExternalTicket:
        return ExternalTicket(ticket_id=str(ticket_id), url=self._url(ticket_id))


def _id(ticket_id: str) -> int:
    try:
        return int(ticket_id)
    except ValueError:
        raise HelpdeskError(f"not a Freshdesk ticket id: {ticket_id!r}") from None


def _marker_html(marker: str) -> str:
    return f'<p style="color:#888888;font-size:11px">Billbox ref {html.escape(marker)}</p>'


def _with_marker(body: MessageBody, marker: str) -> str:
    """The message as HTML (escaped plain text if the mail had no HTML) plus our marker."""
    escaped = "<div>" + html.escape(body.text).replace("\n", "<br>") + "</div>"
    return (body.html or escaped) + _marker_html(marker)


def _text_of(item: Any, key: str) -> str:
    if not isinstance(item, dict):
        return ""
    return f"{item.get(key) or ''}\n{item.get(key + '_text') or ''}"


def _is_ours(ticket: dict[str, Any], ref: str) -> bool:
    tags = ticket.get("tags") or []
    return ticket_tag(ref) in tags or message_marker(ref) in _text_of(ticket, "description")


def _conversation_with(conversations: Any, marker: str) -> dict[str, Any] | None:
    for conversation in conversations:
        if marker in _text_of(conversation, "body"):
            return dict(conversation)
    return None


class FreshdeskSidebarVerifier:
    """Accepts sidebar requests made by our Freshdesk app through the Freshworks proxy.

    The app (``integrations/freshdesk``) calls our ``/sidebar`` with a request
    template (``config/requests.json``) whose ``Authorization: Bearer`` header
    is the *secure* installation parameter ``sidebar_token``. Freshworks
    substitutes secure iparams on its servers, so the token never reaches the
    agent's browser, and only installations of our app in that account can
    make the call. Request templates cannot compute an HMAC, which is why this
    is a bearer token compared in constant time rather than a signature; the
    customer's email comes from the query, which the app fills from the
    ticket's requester.
    """

    def __init__(self, token: str) -> None:
        if len(token) < 16:
            raise ValueError("the Freshdesk sidebar token must be at least 16 characters")
        self._token = token.encode()

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str:
        presented: str | None = None
        for key, value in headers.items():
            if key.lower() == "authorization":
                scheme, _, token = value.strip().partition(" ")
                if scheme.lower() == "bearer":
                    presented = token.strip()
        if not presented or not hmac.compare_digest(presented.encode(), self._token):
            raise HelpdeskAuthError("sidebar request without our Freshdesk app token", status=401)
        email = (query.get("email") or "").strip()
        if "@" not in email:
            raise HelpdeskError("sidebar request without the customer's email", status=400)
        return email


__all__ = [
    "FreshdeskClient",
    "FreshdeskSidebarVerifier",
    "freshdesk_error_text",
    "message_marker",
    "note_marker",
    "ticket_tag",
]
