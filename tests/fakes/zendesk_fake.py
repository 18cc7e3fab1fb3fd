"""A Zendesk Support API v2 fake: the endpoints Billbox uses, shaped like recorded answers.

Objects carry the keys of go-zendesk's recorded responses
(``../shared/corpora/helpdesk_apis/zendesk/go_zendesk_fixtures``; the tests
compare the shapes when the corpus is present). Requests are checked the way
the Support API documents them: ``{"ticket": {…}}`` / ``{"user": {…}}``
envelopes, a ``comment`` with ``body`` or ``html_body`` on create, known users
for ``requester_id``/``submitter_id``/``author_id``, ``metadata`` up to 1 KB
(stored on the audit's ``metadata.custom``), no updates to closed tickets.
Unknown ticket fields are refused (real Zendesk ignores them; refusing
catches our typos). Auth is Basic ``{email}/token:{api_token}``.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from tests.fakes._fake_http_a import Answer, FakeApi, Reject

_TICKET_FIELDS = {
    "subject", "requester_id", "requester", "submitter_id", "external_id", "tags", "comment",
    "metadata", "via_followup_source_id", "priority", "status", "type", "assignee_id",
    "group_id", "custom_fields", "brand_id",
}  # fmt: skip
_COMMENT_FIELDS = {"body", "html_body", "public", "author_id", "uploads"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _invalid(field: str, description: str) -> Reject:
    return Reject(
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {field: [{"description": description, "error": "InvalidValue"}]},
        },
    )


class ZendeskFake(FakeApi):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", r"/api/v2/users/me\.json", "me"),
        ("POST", r"/api/v2/users/create_or_update\.json", "create_or_update_user"),
        ("GET", r"/api/v2/tickets\.json", "list_tickets"),
        ("POST", r"/api/v2/tickets\.json", "create_ticket"),
        ("GET", r"/api/v2/tickets/(\d+)\.json", "show_ticket"),
        ("PUT", r"/api/v2/tickets/(\d+)\.json", "update_ticket"),
        ("GET", r"/api/v2/tickets/(\d+)/audits\.json", "list_audits"),
    ]

    def __init__(
        self, *, agent_email: str = "agent@billbox.test", api_token: str = "zd-token"
    ) -> None:
        super().__init__()
        self.agent_email = agent_email
        self.api_token = api_token
        self._ids = itertools.count(377922500100)
        self._ticket_ids = itertools.count(1)
        self.agent = self._new_user("Billbox Agent", agent_email, role="admin")
        self.users: dict[int, dict[str, Any]] = {self.agent["id"]: self.agent}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.audits: dict[int, list[dict[str, Any]]] = {}
        #: Audits per page, so tests can force pagination.
        self.audits_per_page = 100

    # -- auth and error shapes ----------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> Answer | None:
        expected = base64.b64encode(f"{self.agent_email}/token:{self.api_token}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return Answer(401, {"error": "Couldn't authenticate you"})
        return None

    def bad_json(self) -> Answer:
        return Answer(400, {"error": "Unprocessable Entity", "description": "Invalid JSON"})

    def not_found(self) -> Answer:
        return Answer(404, {"error": "RecordNotFound", "description": "Not found"})

    # -- helpers for tests --------------------------------------------------------------

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [
                event
                for audit in self.audits.get(ticket_id, [])
                for event in audit["events"]
                if event["type"] == "Comment"
            ]

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            return next((u for u in self.users.values() if u["email"] == email.lower()), None)

    def close(self, ticket_id: int) -> None:
        with self.lock:
            self.tickets[ticket_id]["status"] = "closed"

    # -- users ----------------------------------------------------------------------------

    def _new_user(self, name: str, email: str, role: str = "end-user") -> dict[str, Any]:
        user_id = next(self._ids)
        return {
            "id": user_id, "url": f"https://fake.zendesk.com/api/v2/users/{user_id}.json",
            "name": name, "email": email.lower(), "created_at": _now(), "updated_at": _now(),
            "time_zone": "UTC", "iana_time_zone": "Etc/UTC", "phone": None,
            "shared_phone_number": None, "photo": None, "locale_id": 1, "locale": "en-US",
            "organization_id": None, "role": role, "verified": False, "external_id": None,
            "tags": [], "alias": None, "active": True, "shared": False, "shared_agent": False,
            "last_login_at": None, "two_factor_auth_enabled": False, "signature": None,
            "details": None, "notes": None, "role_type": None, "custom_role_id": None,
            "moderator": False, "ticket_restriction": "requested",
            "only_private_comments": False, "restricted_agent": True, "suspended": False,
            "chat_only": False, "default_group_id": None, "report_csv": False,
            "user_fields": {},
        }  # fmt: skip

    def me(self, *, query: dict[str, str], body: Any) -> Answer:
        return Answer(200, {"user": self.agent})

    def create_or_update_user(self, *, query: dict[str, str], body: Any) -> Answer:
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, dict) or not isinstance(user.get("email"), str):
            raise _invalid("email", "Email: cannot be blank")
        if "@" not in user["email"]:
            raise _invalid("email", f"Email: {user['email']} is not properly formatted")
        name = user.get("name")
        if name is not None and not isinstance(name, str):
            raise _invalid("name", "Name: must be a string")
        existing = self.user_by_email(user["email"])
        if existing is not None:
            if name:
                existing["name"] = name
            return Answer(200, {"user": existing})
        if not name:
            raise _invalid("name", "Name:  is too short (minimum one character)")
        created = self._new_user(name, user["email"])
        self.users[created["id"]] = created
        return Answer(201, {"user": created})

    # -- tickets --------------------------------------------------------------------------

    def _ticket_json(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return dict(ticket)

    def list_tickets(self, *, query: dict[str, str], body: Any) -> Answer:
        wanted = query.get("external_id")
        tickets = [
            self._ticket_json(t)
            for t in self.tickets.values()
            if wanted is None or t["external_id"] == wanted
        ]
        return Answer(
            200,
            {"tickets": tickets, "next_page": None, "previous_page": None, "count": len(tickets)},
        )

    def show_ticket(self, ticket_id: str, *, query: dict[str, str], body: Any) -> Answer:
        return Answer(200, {"ticket": self._ticket_json(self._ticket(ticket_id))})

    def _ticket(self, ticket_id: str) -> dict[str, Any]:
        ticket = self.tickets.get(int(ticket_id))
        if ticket is None:
            raise Reject(404, {"error": "RecordNotFound", "description": "Not found"})
        return ticket

    def _envelope(self, body: Any) -> dict[str, Any]:
        ticket = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket, dict):
            raise Reject(400, {"error": "Unprocessable Entity", "description": "ticket missing"})
        unknown = set(ticket) - _TICKET_FIELDS
        if unknown:
            raise _invalid(sorted(unknown)[0], "unknown ticket field (this fake is strict)")
        for key in ("requester_id", "submitter_id", "via_followup_source_id"):
            if key in ticket and not isinstance(ticket[key], int):
                raise _invalid(key, f"{key}: must be an integer")
        for key in ("subject", "external_id"):
            if key in ticket and not isinstance(ticket[key], str):
                raise _invalid(key, f"{key}: must be a string")
        tags = ticket.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _invalid("tags", "tags: must be an array of strings")
        metadata = ticket.get("metadata", {})
        if not isinstance(metadata, dict) or len(json.dumps(metadata)) > 1024:
            raise _invalid("metadata", "metadata: an object of at most 1 kilobyte")
        return ticket

    def _comment_event(self, comment: Any, default_author: int) -> dict[str, Any]:
        if not isinstance(comment, dict) or set(comment) - _COMMENT_FIELDS:
            raise _invalid("comment", "comment: unknown or malformed")
        text, html = comment.get("body"), comment.get("html_body")
        if (
            not isinstance(text, str | None)
            or not isinstance(html, str | None)
            or not (text or html)
        ):
            raise _invalid("comment", "comment: body or html_body is required")
        if "public" in comment and not isinstance(comment["public"], bool):
            raise _invalid("comment", "comment.public: must be a boolean")
        author = comment.get("author_id", default_author)
        if author not in self.users:
            raise _invalid("author_id", "author_id: no such user")
        plain = text if text is not None else _plain(html or "")
        return {
            "id": next(self._ids), "type": "Comment", "author_id": author, "body": plain,
            "html_body": html or f"<div class=\"zd-comment\"><p>{plain}</p></div>",
            "plain_body": plain, "public": comment.get("public", True), "attachments": [],
        }  # fmt: skip

    def _audit(
        self, ticket_id: int, author: int, events: list[dict[str, Any]], custom: Any
    ) -> dict[str, Any]:
        audit = {
            "id": next(self._ids), "ticket_id": ticket_id, "created_at": _now(),
            "author_id": author, "events": events,
            "metadata": {"system": {"client": "Billbox test"}, "custom": dict(custom or {})},
            "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
        }  # fmt: skip
        for event in events:
            event["audit_id"] = audit["id"]
        self.audits.setdefault(ticket_id, []).append(audit)
        return audit

    def create_ticket(self, *, query: dict[str, str], body: Any) -> Answer:
        ticket = self._envelope(body)
        requester = ticket.get("requester_id")
        if requester is None and isinstance(ticket.get("requester"), dict):
            email = str(ticket["requester"].get("email", ""))
            user = self.user_by_email(email) or self._new_user(
                ticket["requester"].get("name") or email, email
            )
            self.users[user["id"]] = user
            requester = user["id"]
        if requester not in self.users:
            raise _invalid("requester", "Requester: cannot be blank")
        submitter = ticket.get("submitter_id", self.agent["id"])
        if submitter not in self.users:
            raise _invalid("submitter_id", "submitter_id: no such user")
        if "comment" not in ticket:
            raise _invalid("comment", "Description: cannot be blank")
        source = ticket.get("via_followup_source_id")
        if source is not None and self.tickets.get(source, {}).get("status") != "closed":
            raise _invalid("via_followup_source_id", "only a closed ticket can be followed up")
        comment = self._comment_event(ticket["comment"], default_author=submitter)
        ticket_id = next(self._ticket_ids)
        stored = {
            "url": f"https://fake.zendesk.com/api/v2/tickets/{ticket_id}.json", "id": ticket_id,
            "external_id": ticket.get("external_id"),
            "via": {"channel": "api", "source": {"from": {"ticket_id": source} if source else {},
                                                 "to": {}, "rel": "follow_up" if source else None}},
            "created_at": _now(), "updated_at": _now(), "type": ticket.get("type"),
            "subject": ticket.get("subject"), "raw_subject": ticket.get("subject"),
            "description": comment["body"], "priority": ticket.get("priority"), "status": "new",
            "recipient": None, "requester_id": requester, "submitter_id": submitter,
            "assignee_id": None, "organization_id": None, "group_id": None,
            "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [], "forum_topic_id": None,
            "problem_id": None, "has_incidents": False, "is_public": comment["public"],
            "due_at": None, "tags": list(ticket.get("tags", [])), "custom_fields": [],
            "satisfaction_rating": None, "sharing_agreement_ids": [], "fields": [],
            "followup_ids": [], "ticket_form_id": 360000389592, "brand_id": 360002256672,
            "satisfaction_probability": None, "allow_channelback": False, "allow_attachments": True,
        }  # fmt: skip
        self.tickets[ticket_id] = stored
        if source is not None:
            self.tickets[source]["followup_ids"].append(ticket_id)
        creates = [
            {"id": next(self._ids), "type": "Create", "value": str(v), "field_name": k}
            for k, v in (
                ("subject", stored["subject"]),
                ("requester_id", requester),
                ("status", "new"),
            )
        ]
        audit = self._audit(ticket_id, submitter, [comment, *creates], ticket.get("metadata"))
        return Answer(201, {"ticket": self._ticket_json(stored), "audit": audit},
                      {"Location": f"{self.url}/api/v2/tickets/{ticket_id}.json"})  # fmt: skip

    def update_ticket(self, ticket_id: str, *, query: dict[str, str], body: Any) -> Answer:
        stored = self._ticket(ticket_id)
        ticket = self._envelope(body)
        if stored["status"] == "closed":
            raise _invalid("status", "Status: closed prevents ticket update")
        events: list[dict[str, Any]] = []
        if "comment" in ticket:
            events.append(self._comment_event(ticket["comment"], default_author=self.agent["id"]))
            if (
                stored["status"] in ("new", "solved")
                and events[0]["author_id"] == stored["requester_id"]
            ):
                stored["status"] = "open"
        if "status" in ticket:
            stored["status"] = ticket["status"]
        stored["updated_at"] = _now()
        audit = self._audit(stored["id"], self.agent["id"], events, ticket.get("metadata"))
        return Answer(200, {"ticket": self._ticket_json(stored), "audit": audit})

    def list_audits(self, ticket_id: str, *, query: dict[str, str], body: Any) -> Answer:
        audits = self.audits.get(self._ticket(ticket_id)["id"], [])
        page = int(query.get("page", "1"))
        size = self.audits_per_page
        chunk = audits[(page - 1) * size : page * size]
        base = f"{self.url}/api/v2/tickets/{ticket_id}/audits.json?page="
        return Answer(200, {
            "audits": chunk,
            "next_page": base + str(page + 1) if page * size < len(audits) else None,
            "previous_page": base + str(page - 1) if page > 1 else None,
            "count": len(audits),
        })  # fmt: skip
