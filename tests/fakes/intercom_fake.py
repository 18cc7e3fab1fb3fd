"""A stateful fake of Intercom's REST API that checks our requests against its OpenAPI file.

Every request body is validated against the request schema of its operation
in ``../shared/corpora/helpdesk_apis/intercom/api.intercom.io.2.16.yaml``
(``tests/fakes/_openapi_b.py``); an invalid body gets a 400 ``error.list``
*and* is recorded in :attr:`IntercomFake.schema_errors`, which the tests
assert is empty. Answers are the spec's own examples with our ids put in, so
field names are Intercom's. The ``Intercom-Version`` header must be one the
spec lists, and the bearer token must match.
"""

from __future__ import annotations

import copy
import functools
import re
import time
from typing import Any

import yaml

from tests.fakes._openapi_b import OpenAPI
from tests.fakes._server_b import CORPORA, FakeRequest, FakeResponse, FakeServer

SPEC = CORPORA / "helpdesk_apis" / "intercom" / "api.intercom.io.2.16.yaml"
ADMIN_ID = "991267459"


@functools.lru_cache(maxsize=1)
def spec() -> OpenAPI:
    """The parsed spec (about 3 s with libyaml, so once per test run)."""
    with SPEC.open() as fh:
        return OpenAPI(yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def example(method: str, template: str, status: str = "200", index: int = 0) -> Any:
    op = spec().doc["paths"][template][method]
    examples = op["responses"][status]["content"]["application/json"]["examples"]
    return copy.deepcopy(list(examples.values())[index]["value"])


def error_list(code: str, message: str) -> dict[str, Any]:
    return {
        "type": "error.list",
        "request_id": "00000000-0000-4000-8000-000000000000",
        "errors": [{"code": code, "message": message}],
    }


class IntercomFake(FakeServer):
    def __init__(self, token: str = "tok_live") -> None:
        super().__init__()
        self.token = token
        self.schema_errors: list[str] = []
        self.contacts: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, dict[str, Any]] = {}
        self._seq = 600
        self._versions = [
            str(v) for v in spec().doc["components"]["schemas"]["intercom_version"]["enum"]
        ]
        conv = example("get", "/conversations/{conversation_id}")
        self._part_template = conv["conversation_parts"]["conversation_parts"][0]
        conv["conversation_parts"]["conversation_parts"] = []
        self._conv_template = conv
        self.route("GET", "/me", lambda r: FakeResponse(200, example("get", "/me")))
        self.route("POST", "/contacts/search", self._search_contacts)
        self.route("POST", "/contacts", self._create_contact)
        self.route("POST", "/conversations", self._create_conversation)
        self.route("POST", "/conversations/search", self._search_conversations)
        self.route("GET", r"/conversations/(?P<id>\d+)", self._get_conversation)
        self.route("POST", r"/conversations/(?P<id>\d+)/reply", self._reply)

    def _next(self) -> str:
        self._seq += 1
        return str(self._seq)

    # -- checks ------------------------------------------------------------------

    def authenticate(self, req: FakeRequest) -> FakeResponse | None:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return FakeResponse(401, error_list("unauthorized", "Access Token Invalid"))
        if req.headers.get("intercom-version") not in self._versions:
            return FakeResponse(400, error_list("intercom_version_invalid", "bad version"))
        return None

    def _invalid(self, req: FakeRequest, template: str) -> FakeResponse | None:
        try:
            body = req.json
        except ValueError:
            body = None
        problems = spec().validate_request(req.method, template, body)
        if not problems:
            return None
        self.schema_errors += [f"{req.method} {template}: {p}" for p in problems]
        return FakeResponse(400, error_list("parameter_invalid", "; ".join(problems)))

    # -- contacts ------------------------------------------------------------------

    def _search_contacts(self, req: FakeRequest) -> FakeResponse:
        if bad := self._invalid(req, "/contacts/search"):
            return bad
        q = req.json["query"]
        if q.get("field") != "email" or q.get("operator") != "=":
            return FakeResponse(400, error_list("parameter_invalid", "fake supports email ="))
        data = [c for c in self.contacts.values() if c["email"] == q["value"]]
        result = example("post", "/contacts/search")
        result.update(data=data, total_count=len(data))
        result["pages"]["total_pages"] = 1 if data else 0
        return FakeResponse(200, result)

    def _create_contact(self, req: FakeRequest) -> FakeResponse:
        if bad := self._invalid(req, "/contacts"):
            return bad
        body = req.json
        if any(c["email"] == body.get("email") for c in self.contacts.values()):
            return FakeResponse(
                409, error_list("conflict", "A contact matching those details already exists")
            )
        contact = example("post", "/contacts")
        cid = f"{len(self.contacts) + 1:024x}"
        contact.update(
            id=cid, email=body.get("email"), name=body.get("name"), role=body.get("role")
        )
        self.contacts[cid] = contact
        return FakeResponse(200, contact)

    # -- conversations ---------------------------------------------------------------

    def _create_conversation(self, req: FakeRequest) -> FakeResponse:
        if bad := self._invalid(req, "/conversations"):
            return bad
        body = req.json
        contact = self.contacts.get(body["from"]["id"])
        if contact is None:
            return FakeResponse(404, error_list("not_found", "User Not Found"))
        conv_id = self._next()
        conv = copy.deepcopy(self._conv_template)
        now = int(time.time())
        conv.update(id=conv_id, created_at=now, updated_at=now, open=True, state="open")
        conv["source"].update(
            id=self._next(),
            delivered_as="customer_initiated",
            body=body["body"],
            author={
                "type": "user",
                "id": contact["id"],
                "name": contact["name"],
                "email": contact["email"],
            },
        )
        conv["contacts"]["contacts"] = [
            {"type": "contact", "id": contact["id"], "external_id": None}
        ]
        self.conversations[conv_id] = conv
        msg = example("post", "/conversations")
        msg.update(
            id=conv["source"]["id"], body=body["body"], conversation_id=conv_id, created_at=now
        )
        return FakeResponse(200, msg)

    def _search_conversations(self, req: FakeRequest) -> FakeResponse:
        if bad := self._invalid(req, "/conversations/search"):
            return bad
        q = req.json["query"]
        if q.get("field") != "source.body" or q.get("operator") != "=":
            return FakeResponse(400, error_list("parameter_invalid", "fake supports source.body ="))
        # Intercom matches source.body word by word (see the operation's description).
        found = [
            c
            for c in self.conversations.values()
            if q["value"] in re.split(r"[^0-9A-Za-z]+", _plain(c["source"]["body"]))
        ]
        result = example("post", "/conversations/search")
        result.update(conversations=found, total_count=len(found))
        return FakeResponse(200, result)

    def _get_conversation(self, req: FakeRequest) -> FakeResponse:
        conv = self.conversations.get(req.params["id"])
        if conv is None:
            return FakeResponse(404, error_list("not_found", "Resource Not Found"))
        out = copy.deepcopy(conv)
        if req.query.get("display_as") == "plaintext":
            out["source"]["body"] = _plain(out["source"]["body"])
            for part in out["conversation_parts"]["conversation_parts"]:
                part["body"] = _plain(part["body"] or "")
        return FakeResponse(200, out)

    def _reply(self, req: FakeRequest) -> FakeResponse:
        if bad := self._invalid(req, "/conversations/{conversation_id}/reply"):
            return bad
        conv = self.conversations.get(req.params["id"])
        if conv is None:
            return FakeResponse(404, error_list("not_found", "Resource Not Found"))
        body = req.json
        part = copy.deepcopy(self._part_template)
        part.update(id=self._next(), body=body["body"], created_at=int(time.time()), tags=[])
        if body["type"] == "admin":
            if str(body["admin_id"]) != ADMIN_ID:
                return FakeResponse(404, error_list("not_found", "Admin Not Found"))
            part.update(part_type=body["message_type"], author={"type": "admin", "id": ADMIN_ID})
        else:
            contact = next(
                (c for c in self.contacts.values() if c["email"] == body.get("email")), None
            )
            if contact is None or contact["id"] not in {
                c["id"] for c in conv["contacts"]["contacts"]
            }:
                return FakeResponse(404, error_list("not_found", "User Not Found"))
            part.update(
                part_type="comment",
                author={"type": "user", "id": contact["id"], "email": contact["email"]},
            )
        conv["conversation_parts"]["conversation_parts"].append(part)
        conv["conversation_parts"]["total_count"] = len(
            conv["conversation_parts"]["conversation_parts"]
        )
        return FakeResponse(200, copy.deepcopy(conv))

    def parts(self, conv_id: str) -> list[dict[str, Any]]:
        return self.conversations[conv_id]["conversation_parts"]["conversation_parts"]


def _plain(html_or_text: str) -> str:
    return re.sub(r"<[^>]+>", " ", html_or_text)
