"""Intercom (REST API 2.x) connector and Canvas Kit sidebar verifier.

Authentication is a workspace access token sent as a bearer token, with
``Intercom-Version`` pinned (default 2.16, the version of the OpenAPI file
the tests check our requests against) so a workspace default cannot change
the shapes under us.

Calls made (under ``base_url``, default ``https://api.intercom.io``):

* ``GET  /me``                                  test_connection
* ``POST /contacts/search`` (email = …), then ``POST /contacts`` if none:
  the customer becomes a ``user`` contact; the conversation is *from* them
* ``POST /conversations`` ``{from: {type: user, id}, body}``  create
* ``POST /conversations/search`` ``source.body = <token>``    find_ticket
* ``GET  /conversations/{id}?display_as=plaintext``           has_message / note present?
* ``POST /conversations/{id}/reply`` ``{message_type: comment, type: user, email, body}``  append
* ``POST /conversations/{id}/reply`` ``{message_type: note, type: admin, admin_id, body}`` note

Idempotency: Intercom's create and reply requests have no external-id field,
so each body ends with a reference word (``_refs_b``). The conversation
search matches ``source.body`` word by word (their docs), which is why the
reference is one alphanumeric word. Replies and notes are found by reading
the conversation's parts. Caveat: Intercom's search index can lag a write by
seconds; a retry that runs sooner than that could miss the first attempt,
which is one more reason the push job backs off before retrying.

Bodies: conversation and reply bodies are plain text in Intercom ("HTML is
not supported"), so the customer's text goes there; notes accept HTML, so the
billing note goes as HTML.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from mailbridge.helpdesks._refs_b import message_token, note_token, with_html_ref, with_text_ref
from mailbridge.helpdesks.external import (
    BillingNote,
    ExternalTicket,
    HelpdeskAuthError,
    HelpdeskError,
    MessageBody,
    Requester,
)
from mailbridge.helpdesks.http import DEFAULT_TIMEOUT, JsonClient, bearer_auth

DEFAULT_BASE_URL = "https://api.intercom.io"
DEFAULT_VERSION = "2.16"
WEB_URL = "https://app.intercom.com/a/inbox/_/inbox/conversation/{id}"


def intercom_error_message(payload: Any) -> str | None:
    """``code: message`` for each entry of Intercom's ``error.list``."""
    if not isinstance(payload, dict):
        return None
    parts = [
        ": ".join(str(x) for x in (e.get("code"), e.get("message")) if x)
        for e in payload.get("errors") or []
        if isinstance(e, dict)
    ]
    return "; ".join(p for p in parts if p) or payload.get("message")


class Intercom:
    """An Intercom workspace; ``admin_id`` is the teammate the billing notes are posted as."""

    name = "intercom"

    def __init__(
        self,
        *,
        access_token: str,
        admin_id: str,
        base_url: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_VERSION,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.admin_id = str(admin_id)
        self._http = JsonClient(
            vendor="Intercom",
            base_url=base_url,
            auth=bearer_auth(access_token),
            error_text=intercom_error_message,
            timeout=timeout,
            headers={"Intercom-Version": api_version},
        )

    def test_connection(self) -> str:
        me = self._http.request("GET", "/me").data or {}
        app = (me.get("app") or {}).get("name", "?")
        return f"Connected to Intercom workspace {app} as {me.get('name')} ({me.get('email')})"

    def find_ticket(self, message_id: str) -> ExternalTicket | None:
        query = {"field": "source.body", "operator": "=", "value": message_token(message_id)}
        data = self._http.request("POST", "/conversations/search", body={"query": query}).data or {}
        found = data.get("conversations") or []
        if not found:
            return None
        conv = min(found, key=lambda c: int(c.get("created_at") or 0))
        conv_id = str(conv["id"])
        source_id = (conv.get("source") or {}).get("id")
        return ExternalTicket(
            conv_id,
            message_id=str(source_id) if source_id else None,
            url=WEB_URL.format(id=conv_id),
        )

    def create_ticket(
        self, requester: Requester, subject: str, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        mid = body.message_id
        if mid:
            existing = self.find_ticket(mid)
            if existing is not None:
                if note is not None:
                    self._ensure_note(existing.ticket_id, mid, note, None)
                return existing
        contact_id = self._contact_id(requester)
        text = f"{subject}\n\n{body.text}" if subject else body.text
        payload = {
            "from": {"type": "user", "id": contact_id},
            "body": with_text_ref(text, message_token(mid) if mid else None),
        }
        created = self._http.request("POST", "/conversations", body=payload).data or {}
        conv_id = created.get("conversation_id")
        if not conv_id:
            raise HelpdeskError("Intercom: created a message but got no conversation_id")
        conv_id = str(conv_id)
        if note is not None:
            self._post_note(conv_id, mid, note)
        return ExternalTicket(
            conv_id, message_id=str(created.get("id") or "") or None, url=WEB_URL.format(id=conv_id)
        )

    def append_reply(
        self, ticket_id: str, requester: Requester, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        mid = body.message_id
        bodies = self._part_bodies(ticket_id) if mid else []
        part_id: str | None = None
        if not (mid and any(message_token(mid) in b for b in bodies)):
            payload = {
                "message_type": "comment",
                "type": "user",
                "email": requester.email,
                "body": with_text_ref(body.text, message_token(mid) if mid else None),
            }
            conv = self._http.request(
                "POST", f"/conversations/{_q(ticket_id)}/reply", body=payload
            ).data
            part_id = _last_part_id(conv)
        if note is not None:
            self._ensure_note(ticket_id, mid, note, bodies)
        return ExternalTicket(ticket_id, message_id=part_id, url=WEB_URL.format(id=ticket_id))

    def has_message(self, ticket_id: str, message_id: str) -> bool:
        token = message_token(message_id)
        return any(token in b for b in self._part_bodies(ticket_id))

    # -- helpers --------------------------------------------------------------

    def _contact_id(self, requester: Requester) -> str:
        """The contact for this email: searched first, created only if Intercom has none."""
        found = self._search_contact(requester.email)
        if found:
            return found
        payload: dict[str, Any] = {"role": "user", "email": requester.email}
        if requester.name:
            payload["name"] = requester.name
        try:
            created = self._http.request("POST", "/contacts", body=payload).data or {}
        except HelpdeskError as exc:
            # 409: someone (another worker, Intercom's own mail intake) made it meanwhile.
            if exc.status != 409:
                raise
            found = self._search_contact(requester.email)
            if not found:
                raise
            return found
        if not created.get("id"):
            raise HelpdeskError("Intercom: created a contact but got no id")
        return str(created["id"])

    def _search_contact(self, email: str) -> str | None:
        search = {"query": {"field": "email", "operator": "=", "value": email}}
        found = self._http.request("POST", "/contacts/search", body=search).data or {}
        for contact in found.get("data") or []:
            return str(contact["id"])
        return None

    def add_note(self, ticket_id: str, note: BillingNote, key: str) -> None:
        self._ensure_note(ticket_id, key, note, None)

    def _ensure_note(
        self, conv_id: str, mid: str | None, note: BillingNote, bodies: list[str] | None
    ) -> None:
        if mid:
            if bodies is None:
                bodies = self._part_bodies(conv_id)
            if any(note_token(mid) in b for b in bodies):
                return
        self._post_note(conv_id, mid, note)

    def _post_note(self, conv_id: str, mid: str | None, note: BillingNote) -> None:
        payload = {
            "message_type": "note",
            "type": "admin",
            "admin_id": self.admin_id,
            "body": with_html_ref(note.html, note_token(mid) if mid else None),
        }
        self._http.request("POST", f"/conversations/{_q(conv_id)}/reply", body=payload)

    def _part_bodies(self, conv_id: str) -> list[str]:
        conv = (
            self._http.request(
                "GET", f"/conversations/{_q(conv_id)}", query={"display_as": "plaintext"}
            ).data
            or {}
        )
        bodies = [str((conv.get("source") or {}).get("body") or "")]
        parts = (conv.get("conversation_parts") or {}).get("conversation_parts") or []
        bodies += [str(p.get("body") or "") for p in parts]
        return bodies


class IntercomSidebarVerifier:
    """Checks a Canvas Kit request: ``X-Body-Signature`` = hex HMAC-SHA256(client secret, body)."""

    def __init__(self, client_secret: str) -> None:
        if not client_secret:
            raise ValueError("the Intercom app client secret is empty")
        self._secret = client_secret.encode()

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str:
        given = next((v for k, v in headers.items() if k.lower() == "x-body-signature"), None)
        if not given:
            raise HelpdeskAuthError("Intercom sidebar: no X-Body-Signature header")
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.strip().lower().encode(), expected.encode()):
            raise HelpdeskAuthError("Intercom sidebar: signature does not match")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise HelpdeskAuthError("Intercom sidebar: signed body is not JSON") from exc
        if not isinstance(data, dict):
            raise HelpdeskAuthError("Intercom sidebar: signed body is not a JSON object")
        for key in ("contact", "customer"):
            person = data.get(key)
            email = person.get("email") if isinstance(person, dict) else None
            if isinstance(email, str) and email:
                return email
        raise HelpdeskAuthError("Intercom sidebar: the conversation has no contact email")


def _last_part_id(conv: Any) -> str | None:
    if not isinstance(conv, dict):
        return None
    parts = (conv.get("conversation_parts") or {}).get("conversation_parts") or []
    return str(parts[-1]["id"]) if parts else None


def _q(conv_id: str) -> str:
    return urllib.parse.quote(str(conv_id), safe="")
