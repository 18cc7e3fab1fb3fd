"""Zendesk Support (API v2): tickets from customer mail, with the billing note.

Authentication is an agent's API token: Basic ``{email}/token:{api_token}``.

What we write, and how a retry finds it again
---------------------------------------------
* A new thread is ``POST /api/v2/tickets.json`` with ``requester_id`` and
  ``submitter_id`` set to the customer (so Zendesk shows the customer as the
  author of the first comment), the message as a public comment, and
  ``external_id = "billbox-" + ref`` where ``ref`` is a digest of our
  Message-ID (:mod:`._refs_a`). Before creating, we list
  ``GET /api/v2/tickets.json?external_id=…``, a database filter, not the
  search index, so a ticket made by a timed-out attempt is seen at once.
* The billing note is ``PUT /api/v2/tickets/{id}.json`` with a comment
  ``{html_body, public: false}`` (Zendesk derives the plain-text form).
* A customer reply is a ``PUT`` with a public comment whose ``author_id`` is
  the customer, found or created with ``POST /api/v2/users/create_or_update.json``.
* Comments cannot carry an id of ours, but every ticket create or update may
  carry ``metadata``, which Zendesk stores on that update's audit under
  ``metadata.custom``. We put ``{"billbox_ref": ref, "billbox_part":
  "message" | "note"}`` there, so ``GET /api/v2/tickets/{id}/audits.json``
  tells whether a reply or a note is already on the ticket, invisibly to
  agents and customers. No marker text is added to any comment.
* A reply to a *closed* ticket (Zendesk refuses updates to those) becomes a
  follow-up ticket (``via_followup_source_id``), found again by its external id.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import jwt

from mailbridge.helpdesks._refs_a import message_ref
from mailbridge.helpdesks.external import (
    BillingNote,
    ExternalTicket,
    HelpdeskAuthError,
    HelpdeskError,
    MessageBody,
    Requester,
)
from mailbridge.helpdesks.http import DEFAULT_TIMEOUT, JsonClient, basic_auth

_SUBDOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_MAX_PAGES = 50
PART_MESSAGE = "message"
PART_NOTE = "note"


def zendesk_error_text(data: Any) -> str | None:
    """Zendesk's error bodies: ``{"error": "...", "description": "...", "details": {...}}``."""
    if not isinstance(data, dict):
        return None
    parts: list[str] = []
    error = data.get("error")
    if isinstance(error, dict):
        parts += [str(error[k]) for k in ("title", "message") if error.get(k)]
    elif error:
        parts.append(str(error))
    if data.get("description"):
        parts.append(str(data["description"]))
    details = data.get("details")
    if isinstance(details, dict):
        for field, problems in details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                text = problem.get("description") if isinstance(problem, dict) else problem
                parts.append(f"{field}: {text}")
    return " — ".join(parts) or None


class ZendeskClient:
    """One Zendesk Support account, reached with an agent's API token."""

    name = "zendesk"

    def __init__(
        self,
        *,
        subdomain: str,
        email: str,
        api_token: str,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        subdomain = subdomain.strip().lower().removesuffix(".zendesk.com")
        if not _SUBDOMAIN.match(subdomain):
            raise ValueError(f"not a Zendesk subdomain: {subdomain!r}")
        if not email.strip() or not api_token.strip():
            raise ValueError("Zendesk needs the agent's email address and an API token")
        self.subdomain = subdomain
        self._api = JsonClient(
            vendor="Zendesk",
            base_url=base_url or f"https://{subdomain}.zendesk.com",
            auth=basic_auth(f"{email.strip()}/token", api_token.strip()),
            error_text=zendesk_error_text,
            timeout=timeout,
        )

    # -- the ExternalHelpdesk protocol -------------------------------------------------

    def test_connection(self) -> str:
        user = self._api.request("GET", "/api/v2/users/me.json").data.get("user") or {}
        if user.get("id") is None or user.get("role") not in ("admin", "agent"):
            raise HelpdeskAuthError(
                "Zendesk accepted the call but not as an agent: check the email and API token"
            )
        return (
            f"Connected to {self.subdomain}.zendesk.com as {user.get('name')} "
            f"<{user.get('email')}> ({user.get('role')})"
        )

    def find_ticket(self, message_id: str) -> ExternalTicket | None:
        ticket = self._ticket_by_external_id(message_ref(message_id))
        return None if ticket is None else self._external(ticket["id"])

    def create_ticket(
        self, requester: Requester, subject: str, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        return self._create(requester, subject, body, note, followup_of=None)

    def append_reply(
        self, ticket_id: str, requester: Requester, body: MessageBody, note: BillingNote | None
    ) -> ExternalTicket:
        ref = message_ref(body.message_id)
        ticket = self._api.request("GET", f"/api/v2/tickets/{_id(ticket_id)}.json").data["ticket"]
        if ticket.get("status") == "closed":
            subject = str(ticket.get("subject") or "")
            return self._create(requester, subject, body, note, followup_of=ticket["id"])
        audits = list(self._audits(ticket_id))
        comment_id = _comment_in(audits, ref, PART_MESSAGE)
        if comment_id is None:
            comment = _comment(body, public=True)
            comment["author_id"] = self._user_id(requester)
            comment_id = self._update(ticket_id, comment, ref, PART_MESSAGE)
        if note is not None and _comment_in(audits, ref, PART_NOTE) is None:
            self._add_note(ticket_id, note, ref)
        return self._external(ticket_id, comment_id)

    def has_message(self, ticket_id: str, message_id: str) -> bool:
        ref = message_ref(message_id)
        return _comment_in(self._audits(ticket_id), ref, PART_MESSAGE) is not None

    # -- the calls ------------------------------------------------------------------------

    def _create(
        self,
        requester: Requester,
        subject: str,
        body: MessageBody,
        note: BillingNote | None,
        *,
        followup_of: int | None,
    ) -> ExternalTicket:
        ref = message_ref(body.message_id)
        existing = self._ticket_by_external_id(ref)
        if existing is not None:
            ticket_id = str(existing["id"])
            audits = list(self._audits(ticket_id))
            if note is not None and _comment_in(audits, ref, PART_NOTE) is None:
                self._add_note(ticket_id, note, ref)
            return self._external(ticket_id, _comment_in(audits, ref, PART_MESSAGE))
        user_id = self._user_id(requester)
        ticket: dict[str, Any] = {
            "subject": subject.strip() or "(no subject)",
            "requester_id": user_id,
            "submitter_id": user_id,
            "external_id": f"billbox-{ref}",
            "tags": ["billbox"],
            "comment": _comment(body, public=True),
            "metadata": _metadata(ref, PART_MESSAGE),
        }
        if followup_of is not None:
            ticket["via_followup_source_id"] = followup_of
        answer = self._api.request("POST", "/api/v2/tickets.json", body={"ticket": ticket}).data
        ticket_id = str(answer["ticket"]["id"])
        if note is not None:
            self._add_note(ticket_id, note, ref)
        return self._external(ticket_id, _audit_comment_id(answer.get("audit")))

    def add_note(self, ticket_id: str, note: BillingNote, key: str) -> None:
        ref = message_ref(key)
        if _comment_in(self._audits(ticket_id), ref, PART_NOTE) is None:
            self._add_note(ticket_id, note, ref)

    def _add_note(self, ticket_id: str, note: BillingNote, ref: str) -> None:
        self._update(ticket_id, {"html_body": note.html, "public": False}, ref, PART_NOTE)

    def _update(self, ticket_id: str, comment: dict[str, Any], ref: str, part: str) -> str | None:
        payload = {"ticket": {"comment": comment, "metadata": _metadata(ref, part)}}
        path = f"/api/v2/tickets/{_id(ticket_id)}.json"
        return _audit_comment_id(self._api.request("PUT", path, body=payload).data.get("audit"))

    def _user_id(self, requester: Requester) -> int:
        """The customer's Zendesk user id, creating the end user if needed.

        Without a display name we send only the email, so an existing user's
        name is never overwritten with a guess; Zendesk needs a name to create
        one, so if it refuses we retry with the address's local part.
        """
        user: dict[str, Any] = {"email": requester.email}
        if requester.name.strip():
            user["name"] = requester.name.strip()
        path = "/api/v2/users/create_or_update.json"
        try:
            answer = self._api.request("POST", path, body={"user": user}).data
        except HelpdeskError as error:
            if error.status != 422 or "name" in user:
                raise
            user["name"] = requester.email.split("@", 1)[0]
            answer = self._api.request("POST", path, body={"user": user}).data
        return int(answer["user"]["id"])

    def _ticket_by_external_id(self, ref: str) -> dict[str, Any] | None:
        answer = self._api.request(
            "GET", "/api/v2/tickets.json", query={"external_id": f"billbox-{ref}"}
        ).data
        wanted = f"billbox-{ref}"
        tickets = [t for t in answer.get("tickets") or [] if t.get("external_id") == wanted]
        return min(tickets, key=lambda t: int(t["id"])) if tickets else None

    def _audits(self, ticket_id: str) -> Iterator[dict[str, Any]]:
        """Every audit of the ticket, following offset or cursor pagination links."""
        answer = self._api.request("GET", f"/api/v2/tickets/{_id(ticket_id)}/audits.json").data
        for _ in range(_MAX_PAGES):
            yield from answer.get("audits") or []
            links = answer.get("links") or {}
            more = (answer.get("meta") or {}).get("has_more")
            next_url = answer.get("next_page") or (links.get("next") if more else None)
            if not next_url:
                return
            answer = self._api.get_url(str(next_url)).data
        raise HelpdeskError(f"Zendesk ticket {ticket_id} has more audits than we page through")

    def _external(self, ticket_id: object, comment_id: str | None = None) -> ExternalTicket:
        url = f"{self._api.base_url}/agent/tickets/{ticket_id}"
        return ExternalTicket(ticket_id=str(ticket_id), message_id=comment_id or None, url=url)


def _id(ticket_id: str) -> int:
    """Ticket ids are integers; refusing anything else keeps paths well-formed."""
    try:
        return int(ticket_id)
    except ValueError:
        raise HelpdeskError(f"not a Zendesk ticket id: {ticket_id!r}") from None


def _comment(body: MessageBody, *, public: bool) -> dict[str, Any]:
    if body.html:
        return {"html_body": body.html, "public": public}
    return {"body": body.text, "public": public}


def _metadata(ref: str, part: str) -> dict[str, str]:
    return {"billbox_ref": ref, "billbox_part": part}


def _audit_comment_id(audit: Any) -> str | None:
    if not isinstance(audit, dict):
        return None
    for event in audit.get("events") or []:
        if event.get("type") == "Comment" and event.get("id") is not None:
            return str(event["id"])
    return None


def _comment_in(audits: Any, ref: str, part: str) -> str | None:
    """The comment id of the audit we stamped with (ref, part), or None if there is none.

    Returns ``""`` when the stamped audit is there but shows no comment event,
    which still means "already written".
    """
    for audit in audits:
        custom = ((audit.get("metadata") or {}).get("custom")) or {}
        if custom.get("billbox_ref") == ref and custom.get("billbox_part") == part:
            return _audit_comment_id(audit) or ""
    return None


class ZendeskSidebarVerifier:
    """Accepts sidebar requests signed by our Zendesk app through the ZAF proxy.

    The app (``integrations/zendesk``) calls ``client.request`` with
    ``secure: true`` and a ``jwt`` option: Zendesk's proxy fills in the secure
    setting ``shared_secret`` (which never reaches the agent's browser), signs
    an HS256 JWT with it and sends ``Authorization: Bearer <jwt>``. The claims
    are the app's own (``aud: "billbox-sidebar"``, the requester's ``email``)
    plus ``exp`` from the request's ``expiry``; Zendesk does not vouch for
    their content, only that the request came through an installation that
    knows the secret, i.e. from a signed-in agent of that account.

    (Zendesk's other mechanism, ``signedUrls``, signs the iframe's first load
    with RS256 but cannot know which ticket it will show, so it cannot carry
    the customer's email; this one can.)
    """

    AUDIENCE = "billbox-sidebar"

    def __init__(self, shared_secret: str, *, leeway_seconds: int = 30) -> None:
        if len(shared_secret) < 16:
            raise ValueError("the Zendesk sidebar shared secret must be at least 16 characters")
        self._secret = shared_secret
        self._leeway = leeway_seconds

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> str:
        token = _bearer(headers)
        if token is None:
            raise HelpdeskAuthError("sidebar request without a Zendesk app token", status=401)
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                audience=self.AUDIENCE,
                leeway=self._leeway,
                options={"require": ["exp", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise HelpdeskAuthError(f"Zendesk app token refused: {error}", status=401) from error
        return _sidebar_email(claims.get("email"), query.get("email"))


def _bearer(headers: Mapping[str, str]) -> str | None:
    for key, value in headers.items():
        if key.lower() == "authorization":
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _sidebar_email(signed: object, asked: str | None) -> str:
    """The signed email if there is one (the query must then agree), else the query's."""
    asked = (asked or "").strip()
    if isinstance(signed, str) and signed.strip():
        if asked and asked.lower() != signed.strip().lower():
            raise HelpdeskAuthError("the email asked for is not the one the app signed", status=401)
        asked = signed.strip()
    if "@" not in asked:
        raise HelpdeskError("sidebar request without the customer's email", status=400)
    return asked


__all__ = ["ZendeskClient", "ZendeskSidebarVerifier", "zendesk_error_text"]
