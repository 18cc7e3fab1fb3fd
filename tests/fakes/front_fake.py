"""A stateful fake of Front's Core API, checked against ``front/core-api.json``.

Request bodies are validated against the operation's schema in the spec
(``ImportMessage``, ``CreateComment``); failures answer 400 and are kept in
:attr:`FrontFake.schema_errors`. Answers are built from the spec's schemas
and their ``example`` values (``ConversationResponse``, ``MessageResponse``,
``CommentResponse``, ``IdentityResponse``) with our ids filled in.

Modelled behaviour, as documented:

* imports are *asynchronous*: the 202 gives a ``message_uid`` and
  ``GET /messages/alt:uid:{uid}`` answers 404 for the first
  :attr:`pending_polls` lookups, then the message;
* "Front won't import two messages with the same external ID": a repeat
  import is accepted and answers the first message's uid, creating nothing;
* ``conversation_id`` threads an import into that conversation;
* search understands ``inbox:<id>`` and free words matched against bodies.

Errors use Front's ``{"_error": {"status", "title", "message"}}`` shape.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import secrets
import time
from typing import Any

from tests.fakes._openapi_b import OpenAPI
from tests.fakes._server_b import CORPORA, FakeRequest, FakeResponse, FakeServer

SPEC = CORPORA / "helpdesk_apis" / "front" / "core-api.json"
API = "https://api2.frontapp.com"


@functools.lru_cache(maxsize=1)
def spec() -> OpenAPI:
    return OpenAPI(json.loads(SPEC.read_text()))


def shaped(schema_name: str) -> Any:
    return copy.deepcopy(spec().example({"$ref": f"#/components/schemas/{schema_name}"}))


def front_error(status: int, title: str, message: str) -> dict[str, Any]:
    return {"_error": {"status": status, "title": title, "message": message}}


class FrontFake(FakeServer):
    def __init__(self, token: str = "front-token", inbox_id: str = "inb_55") -> None:
        super().__init__()
        self.token = token
        self.inbox_id = inbox_id
        self.pending_polls = 1
        self.schema_errors: list[str] = []
        self.conversations: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}  # msg id → MessageResponse
        self.by_uid: dict[str, str] = {}  # message_uid → msg id
        self.by_external: dict[str, str] = {}  # external_id → message_uid
        self.conv_messages: dict[str, list[str]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self._polls: dict[str, int] = {}
        self._seq = 0
        self.route("GET", "/me", lambda r: FakeResponse(200, shaped("IdentityResponse")))
        self.route("POST", r"/inboxes/(?P<inbox>[^/]+)/imported_messages", self._import)
        self.route("GET", r"/messages/(?P<id>[^/]+)", self._message)
        self.route("GET", r"/conversations/search/(?P<q>.+)", self._search)
        self.route("GET", r"/conversations/(?P<id>cnv_\w+)/messages", self._conv_messages)
        self.route("GET", r"/conversations/(?P<id>cnv_\w+)/comments", self._list_comments)
        self.route("POST", r"/conversations/(?P<id>cnv_\w+)/comments", self._add_comment)

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self._seq:x}"

    def authenticate(self, req: FakeRequest) -> FakeResponse | None:
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return FakeResponse(401, front_error(401, "Unauthenticated", "Invalid token"))
        return None

    def not_found(self, req: FakeRequest) -> FakeResponse:
        return FakeResponse(404, front_error(404, "Not found", f"{req.method} {req.path}"))

    def _invalid(self, req: FakeRequest, template: str) -> FakeResponse | None:
        try:
            body = req.json
        except ValueError:
            body = None
        problems = spec().validate_request(req.method, template, body)
        if not problems:
            return None
        self.schema_errors += [f"{req.method} {template}: {p}" for p in problems]
        return FakeResponse(400, front_error(400, "Bad request", "; ".join(problems)))

    # -- messages ---------------------------------------------------------------------

    def _import(self, req: FakeRequest) -> FakeResponse:
        if bad := self._invalid(req, "/inboxes/{inbox_id}/imported_messages"):
            return bad
        if req.params["inbox"] != self.inbox_id:
            return self.not_found(req)
        body = req.json
        if body["external_id"] in self.by_external:
            uid = self.by_external[body["external_id"]]
            return FakeResponse(202, {"status": "accepted", "message_uid": uid})
        conv_id = body.get("conversation_id")
        if conv_id is not None and conv_id not in self.conversations:
            return FakeResponse(404, front_error(404, "Not found", "Unknown conversation"))
        if conv_id is None:
            conv_id = self._id("cnv")
            conv = shaped("ConversationResponse")
            conv.update(
                id=conv_id,
                subject=body.get("subject", ""),
                status="unassigned"
                if not body["metadata"].get("is_archived", True)
                else "archived",
                assignee=None,
                created_at=time.time(),
                tags=[],
                links=[],
                ticket_ids=[],
                scheduled_reminders=[],
                is_private=False,
            )
            conv["recipient"].update(handle=body["sender"]["handle"], role="from")
            conv["_links"]["self"] = f"{API}/conversations/{conv_id}"
            self.conversations[conv_id] = conv
            self.conv_messages[conv_id] = []
            self.comments[conv_id] = []
        msg_id, uid = self._id("msg"), secrets.token_hex(16)
        message = shaped("MessageResponse")
        message.update(
            id=msg_id,
            message_uid=uid,
            type=body.get("type", "email"),
            is_inbound=body["metadata"]["is_inbound"],
            created_at=body["created_at"],
            subject=body.get("subject", ""),
            body=body["body"],
            text=re.sub(r"<[^>]+>", " ", body["body"]),
            blurb=re.sub(r"<[^>]+>", " ", body["body"])[:80],
            attachments=[],
        )
        message["_links"]["self"] = f"{API}/messages/{msg_id}"
        message["_links"]["related"]["conversation"] = f"{API}/conversations/{conv_id}"
        self.messages[msg_id] = message
        self.by_uid[uid] = msg_id
        self.by_external[body["external_id"]] = uid
        self.conv_messages[conv_id].append(msg_id)
        return FakeResponse(202, {"status": "accepted", "message_uid": uid})

    def _message(self, req: FakeRequest) -> FakeResponse:
        ref = req.params["id"]
        if ref.startswith("alt:uid:"):
            uid = ref[len("alt:uid:") :]
            self._polls[uid] = self._polls.get(uid, 0) + 1
            if uid not in self.by_uid or self._polls[uid] <= self.pending_polls:
                return self.not_found(req)
            ref = self.by_uid[uid]
        if ref not in self.messages:
            return self.not_found(req)
        return FakeResponse(200, self.messages[ref])

    def _conv_messages(self, req: FakeRequest) -> FakeResponse:
        conv_id = req.params["id"]
        if conv_id not in self.conversations:
            return self.not_found(req)
        ids = list(reversed(self.conv_messages[conv_id]))  # newest first
        page = int(req.query.get("page_token", "0"))
        chunk, rest = ids[page : page + 1], ids[page + 1 :]
        nxt = f"{self.url}/conversations/{conv_id}/messages?page_token={page + 1}" if rest else None
        return FakeResponse(
            200,
            {
                "_pagination": {"next": nxt},
                "_links": {"self": f"{API}/conversations/{conv_id}/messages"},
                "_results": [self.messages[m] for m in chunk],
            },
        )

    # -- search -------------------------------------------------------------------------

    def _search(self, req: FakeRequest) -> FakeResponse:
        terms = req.params["q"].split()
        inboxes = [t[6:] for t in terms if t.startswith("inbox:")]
        words = [t.strip('"') for t in terms if ":" not in t]
        found = []
        for conv_id, conv in self.conversations.items():
            if inboxes and self.inbox_id not in inboxes:
                continue
            texts = " ".join(self.messages[m]["body"] for m in self.conv_messages[conv_id])
            if all(w in re.split(r"[^0-9A-Za-z]+", texts) for w in words):
                found.append(conv)
        return FakeResponse(
            200,
            {
                "_pagination": {"next": None},
                "_links": {"self": f"{API}/conversations/search/{req.params['q']}"},
                "_total": len(found),
                "_results": list(reversed(found)),
            },
        )

    # -- comments -----------------------------------------------------------------------

    def _list_comments(self, req: FakeRequest) -> FakeResponse:
        conv_id = req.params["id"]
        if conv_id not in self.conversations:
            return self.not_found(req)
        return FakeResponse(
            200,
            {
                "_links": {"self": f"{API}/conversations/{conv_id}/comments"},
                "_results": list(reversed(self.comments[conv_id])),
            },
        )

    def _add_comment(self, req: FakeRequest) -> FakeResponse:
        if bad := self._invalid(req, "/conversations/{conversation_id}/comments"):
            return bad
        conv_id = req.params["id"]
        if conv_id not in self.conversations:
            return self.not_found(req)
        comment = shaped("CommentResponse")
        comment_id = self._id("com")
        comment.update(id=comment_id, body=req.json["body"], posted_at=time.time(), attachments=[])
        comment["_links"]["self"] = f"{API}/comments/{comment_id}"
        comment["_links"]["related"]["conversation"] = f"{API}/conversations/{conv_id}"
        self.comments[conv_id].append(comment)
        return FakeResponse(201, comment)
