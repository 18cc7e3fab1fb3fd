"""A Freshdesk API v2 fake: the endpoints Billbox uses, shaped like the documented answers.

Objects carry the keys of python-freshdesk's v2 samples
(``../shared/corpora/helpdesk_apis/freshdesk/python_freshdesk_v2``; the tests
compare shapes when the corpus is present). Requests are checked as the v2
docs say: only documented attributes (anything else is ``400 invalid_field``,
as Freshdesk does), one requester attribute on create, status/priority/source
from the documented value tables, notes need ``body``, ``per_page`` at most
100, the filter query enclosed in double quotes, and ``GET /tickets?email=``
of an unknown contact is a 400. Lists paginate with a ``Link: <…>;
rel="next"`` header. Like the real filter API, new tickets only become
searchable once "indexed" (:meth:`FreshdeskFake.index`). Auth is Basic
``{api_key}:X`` (any password).
"""

from __future__ import annotations

import base64
import itertools
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from tests.fakes._fake_http_a import Answer, FakeApi, Reject

_TICKET_CREATE = {
    "name", "requester_id", "email", "facebook_id", "phone", "twitter_id", "unique_external_id",
    "subject", "type", "status", "priority", "description", "responder_id", "attachments",
    "cc_emails", "custom_fields", "due_by", "email_config_id", "fr_due_by", "group_id",
    "parent_id", "product_id", "source", "tags", "company_id", "internal_agent_id",
    "internal_group_id", "lookup_parameter",
}  # fmt: skip
_TICKET_UPDATE = _TICKET_CREATE - {"parent_id", "lookup_parameter"}
_NOTE_FIELDS = {
    "attachments",
    "body",
    "structured_body",
    "incoming",
    "notify_emails",
    "private",
    "user_id",
}
_LIST_PARAMS = {
    "filter", "requester_id", "email", "unique_external_id", "company_id", "updated_since",
    "order_by", "order_type", "include", "page", "per_page",
}  # fmt: skip
_PRIORITY_NAMES = {1: "Low", 2: "Medium", 3: "High", 4: "Urgent"}
_REQUESTER = ("requester_id", "email", "facebook_id", "phone", "twitter_id", "unique_external_id")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _error(status: int, field: str | None, message: str, code: str) -> Reject:
    item = (
        {"field": field, "message": message, "code": code}
        if field
        else {"message": message, "code": code}
    )
    return Reject(status, {"description": "Validation failed", "errors": [item]})


class FreshdeskFake(FakeApi):
    routes: ClassVar[list[tuple[str, str, str]]] = [
        ("GET", r"/api/v2/agents/me", "me"),
        ("GET", r"/api/v2/tickets", "list_tickets"),
        ("POST", r"/api/v2/tickets", "create_ticket"),
        ("GET", r"/api/v2/tickets/(\d+)", "show_ticket"),
        ("PUT", r"/api/v2/tickets/(\d+)", "update_ticket"),
        ("POST", r"/api/v2/tickets/(\d+)/notes", "create_note"),
        ("GET", r"/api/v2/tickets/(\d+)/conversations", "list_conversations"),
        ("GET", r"/api/v2/search/tickets", "filter_tickets"),
        ("GET", r"/api/v2/contacts", "list_contacts"),
        ("POST", r"/api/v2/contacts", "create_contact"),
    ]

    def __init__(self, *, api_key: str = "fd-api-key") -> None:
        super().__init__()
        self.api_key = api_key
        self._ids = itertools.count(6012691534)
        self._ticket_ids = itertools.count(1)
        self.agent_id = next(self._ids)
        self.contacts: dict[int, dict[str, Any]] = {}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.conversations: dict[int, list[dict[str, Any]]] = {}
        self.indexed: set[int] = set()
        #: Largest page the fake serves, so tests can force pagination.
        self.max_page_size = 100

    # -- auth and error shapes ----------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> Answer | None:
        value = headers.get("authorization", "")
        try:
            user = base64.b64decode(value.removeprefix("Basic ")).decode().split(":", 1)[0]
        except ValueError:
            user = ""
        if not value.startswith("Basic ") or user != self.api_key:
            message = "You have to be logged in to perform this action."
            return Answer(401, {"code": "invalid_credentials", "message": message})
        return None

    def bad_json(self) -> Answer:
        error = {"code": "invalid_json", "message": "Request body has invalid json format"}
        return Answer(400, {"description": "Validation failed", "errors": [error]})

    def not_found(self) -> Answer:
        return Answer(404, None)

    # -- helpers for tests --------------------------------------------------------------

    def index(self) -> None:
        """Let the filter API see every ticket (Freshdesk indexes after "a few minutes")."""
        with self.lock:
            self.indexed = set(self.tickets)

    def set_status(self, ticket_id: int, status: int) -> None:
        with self.lock:
            self.tickets[ticket_id]["status"] = status

    # -- agents and contacts ------------------------------------------------------------

    def me(self, *, query: dict[str, str], body: Any) -> Answer:
        return Answer(200, {
            "available": True, "occasional": False, "signature": None, "id": self.agent_id,
            "ticket_scope": 1, "created_at": _now(), "updated_at": _now(), "available_since": None,
            "type": "support_agent",
            "contact": {"active": True, "email": "agent@billbox.test", "job_title": None,
                        "language": "en", "last_login_at": None, "mobile": None,
                        "name": "Billbox Agent", "phone": None, "time_zone": "UTC",
                        "created_at": _now(), "updated_at": _now()},
        })  # fmt: skip

    def _contact_by_email(self, email: str) -> dict[str, Any] | None:
        return next((c for c in self.contacts.values() if c["email"] == email.lower()), None)

    def _new_contact(self, name: str, email: str) -> dict[str, Any]:
        contact_id = next(self._ids)
        contact = {
            "active": False, "address": None, "company_id": None, "description": None,
            "email": email.lower(), "id": contact_id, "job_title": None, "language": "en",
            "mobile": None, "name": name, "phone": None, "time_zone": "UTC", "twitter_id": None,
            "other_emails": [], "custom_fields": {}, "tags": [], "created_at": _now(),
            "updated_at": _now(),
        }  # fmt: skip
        self.contacts[contact_id] = contact
        return contact

    def list_contacts(self, *, query: dict[str, str], body: Any) -> Answer:
        email = query.get("email")
        found = [c for c in self.contacts.values() if email is None or c["email"] == email.lower()]
        return Answer(200, found)

    def create_contact(self, *, query: dict[str, str], body: Any) -> Answer:
        if not isinstance(body, dict):
            raise _error(400, None, "Request body must be an object", "invalid_json")
        if not isinstance(body.get("name"), str) or not body["name"].strip():
            raise _error(400, "name", "Mandatory attribute missing", "missing_field")
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise _error(
                400, "email", "It should be in the 'valid email address' format", "invalid_value"
            )
        if self._contact_by_email(email) is not None:
            raise _error(409, "email", "It should be a unique value", "duplicate_value")
        return Answer(201, self._new_contact(body["name"], email))

    # -- tickets --------------------------------------------------------------------------

    def _ticket(self, ticket_id: str) -> dict[str, Any]:
        ticket = self.tickets.get(int(ticket_id))
        if ticket is None:
            raise Reject(404, None)
        return ticket

    def _check_fields(self, body: Any, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _error(400, None, "Request body must be an object", "invalid_json")
        for key in body:
            if key not in allowed:
                raise _error(400, key, "Unexpected/invalid field in request", "invalid_field")
        for key, choices in (("status", {2, 3, 4, 5}), ("priority", {1, 2, 3, 4}),
                             ("source", {1, 2, 3, 7, 9, 10})):  # fmt: skip
            if key in body and body[key] not in choices:
                raise _error(
                    400,
                    key,
                    f"It should be one of these values: {sorted(choices)}",
                    "invalid_value",
                )
        for key in ("subject", "description", "name", "email"):
            if key in body and not isinstance(body[key], str):
                raise _error(
                    400,
                    key,
                    "Value set is of type Integer.It should be a/an String",
                    "datatype_mismatch",
                )
        tags = body.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _error(400, "tags", "It should be an Array of Strings", "datatype_mismatch")
        return body

    def _view(self, ticket: dict[str, Any], *, description: bool = True) -> dict[str, Any]:
        view = {k: v for k, v in ticket.items() if k not in ("description", "description_text")}
        view["priority_name"] = _PRIORITY_NAMES[ticket["priority"]]
        if description:
            view["description"] = ticket["description"]
            view["description_text"] = ticket["description_text"]
        return view

    def create_ticket(self, *, query: dict[str, str], body: Any) -> Answer:
        data = self._check_fields(body, _TICKET_CREATE)
        if not any(data.get(key) for key in _REQUESTER):
            message = "Please fill at least 1 of " + ", ".join(_REQUESTER) + " fields"
            raise _error(400, "requester_id", message, "missing_field")
        if "email" in data:
            contact = self._contact_by_email(data["email"]) or self._new_contact(
                data.get("name") or data["email"].split("@")[0], data["email"]
            )
        else:
            contact = self.contacts.get(data.get("requester_id", -1)) or {}
        if not contact:
            raise _error(
                400,
                "requester_id",
                "There is no contact matching the given requester_id",
                "invalid_value",
            )
        ticket_id = next(self._ticket_ids)
        description = data.get("description") or ""
        ticket = {
            "cc_emails": [], "fwd_emails": [], "reply_cc_emails": [], "email_config_id": None,
            "fr_escalated": False, "group_id": None, "priority": data.get("priority", 1),
            "requester_id": contact["id"], "responder_id": None, "source": data.get("source", 2),
            "spam": False, "status": data.get("status", 2), "subject": data.get("subject"),
            "type": None, "company_id": None, "id": ticket_id, "to_emails": None,
            "product_id": None, "created_at": _now(), "updated_at": _now(), "due_by": _now(),
            "fr_due_by": _now(), "is_escalated": False, "description": description,
            "description_text": _text(description), "custom_fields": {},
            "tags": list(data.get("tags", [])), "attachments": [],
        }  # fmt: skip
        ticket["priority_name"] = _PRIORITY_NAMES[ticket["priority"]]
        self.tickets[ticket_id] = ticket
        self.conversations[ticket_id] = []
        return Answer(
            201, self._view(ticket), {"Location": f"{self.url}/api/v2/tickets/{ticket_id}"}
        )

    def show_ticket(self, ticket_id: str, *, query: dict[str, str], body: Any) -> Answer:
        return Answer(200, self._view(self._ticket(ticket_id)))

    def update_ticket(self, ticket_id: str, *, query: dict[str, str], body: Any) -> Answer:
        ticket = self._ticket(ticket_id)
        data = self._check_fields(body, _TICKET_UPDATE)
        ticket.update(data)
        ticket["updated_at"] = _now()
        return Answer(200, self._view(ticket))

    def _page(self, items: list[dict[str, Any]], query: dict[str, str], path: str) -> Answer:
        per_page = int(query.get("per_page", "30"))
        if not 1 <= per_page <= 100:
            raise _error(
                400,
                "per_page",
                "It should be a Positive Number less than or equal to 100",
                "invalid_value",
            )
        size = min(per_page, self.max_page_size)
        page = int(query.get("page", "1"))
        headers = {}
        if page * size < len(items):
            following = {**query, "page": str(page + 1)}
            link = "&".join(f"{k}={v}" for k, v in following.items())
            headers["Link"] = f'<{self.url}{path}?{link}>; rel="next"'
        return Answer(200, items[(page - 1) * size : page * size], headers)

    def list_tickets(self, *, query: dict[str, str], body: Any) -> Answer:
        for key in query:
            if key not in _LIST_PARAMS:
                raise _error(400, key, "Unexpected/invalid field in request", "invalid_field")
        includes = set(filter(None, query.get("include", "").split(",")))
        if includes - {"stats", "requester", "description"}:
            raise _error(
                400,
                "include",
                "It should be one of these values: 'requester,stats,description'",
                "invalid_value",
            )
        tickets = list(self.tickets.values())
        if "email" in query:
            contact = self._contact_by_email(query["email"])
            if contact is None:
                raise _error(
                    400, "email", "There is no contact matching the given email", "invalid_value"
                )
            tickets = [t for t in tickets if t["requester_id"] == contact["id"]]
        if "updated_since" in query:
            tickets = [t for t in tickets if t["updated_at"] >= query["updated_since"]]
        key = query.get("order_by", "created_at")
        tickets.sort(
            key=lambda t: (t[key], t["id"]), reverse=query.get("order_type", "desc") == "desc"
        )
        views = [self._view(t, description="description" in includes) for t in tickets]
        return self._page(views, query, "/api/v2/tickets")

    def filter_tickets(self, *, query: dict[str, str], body: Any) -> Answer:
        text = query.get("query", "")
        if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
            raise _error(400, "query", "It should be enclosed in double quotes", "invalid_value")
        match = re.fullmatch(r"tag:'([^']*)'", text[1:-1].strip())
        if match is None:
            raise _error(
                400, "query", "this fake understands tag:'…' queries only", "invalid_value"
            )
        results = [self._view(self.tickets[i]) for i in sorted(self.indexed)
                   if match.group(1) in self.tickets[i]["tags"]]  # fmt: skip
        return Answer(200, {"total": len(results), "results": results})

    # -- conversations --------------------------------------------------------------------

    def create_note(self, ticket_id: str, *, query: dict[str, str], body: Any) -> Answer:
        ticket = self._ticket(ticket_id)
        data = self._check_fields(body, _NOTE_FIELDS)
        if not isinstance(data.get("body"), str) or not data["body"].strip():
            raise _error(400, "body", "Mandatory attribute missing", "missing_field")
        for key in ("private", "incoming"):
            if key in data and not isinstance(data[key], bool):
                raise _error(400, key, "It should be a/an Boolean", "datatype_mismatch")
        user_id = data.get("user_id", self.agent_id)
        if user_id != self.agent_id and user_id not in self.contacts:
            raise _error(
                400,
                "user_id",
                "There is no contact/agent matching the given user_id",
                "invalid_value",
            )
        note = {
            "body": data["body"], "body_text": _text(data["body"]), "id": next(self._ids),
            "incoming": data.get("incoming", False), "private": data.get("private", True),
            "user_id": user_id, "support_email": None, "source": 2, "ticket_id": ticket["id"],
            "to_emails": [], "from_email": None, "cc_emails": None, "bcc_emails": None,
            "created_at": _now(), "updated_at": _now(), "attachments": [],
        }  # fmt: skip
        self.conversations[ticket["id"]].append(note)
        ticket["updated_at"] = _now()
        return Answer(201, note)

    def list_conversations(self, ticket_id: str, *, query: dict[str, str], body: Any) -> Answer:
        ticket = self._ticket(ticket_id)
        path = f"/api/v2/tickets/{ticket['id']}/conversations"
        return self._page(list(self.conversations[ticket["id"]]), query, path)
