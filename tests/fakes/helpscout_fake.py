"""A stateful fake of Help Scout's Mailbox API 2.0, answering in the SDK's recorded HAL JSON.

Responses are built from the payloads in
``../shared/corpora/helpdesk_apis/helpscout/mailbox_api_v2`` (copied and
given our ids), so field names and nesting are Help Scout's. Help Scout
publishes no OpenAPI file, so request bodies are checked against the
documented fields of each endpoint (Create Conversation, Create Customer
Thread, Create Note): required fields, types and enums; a bad body gets
their ``ErrorPayloads.validationErrors`` shape with a 400.

OAuth2: ``POST /v2/oauth2/token`` (client credentials) hands out tokens;
:meth:`revoke_tokens` makes every token issued so far answer 401, as an
expired or revoked token would.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from typing import Any

from tests.fakes._server_b import CORPORA, FakeRequest, FakeResponse, FakeServer

CORPUS = CORPORA / "helpdesk_apis" / "helpscout" / "mailbox_api_v2"
API = "https://api.helpscout.net/v2"


def sample(name: str) -> Any:
    return json.loads((CORPUS / f"{name}.json").read_text())


class HelpScoutFake(FakeServer):
    def __init__(self, client_id: str = "app-id", client_secret: str = "app-secret") -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.tokens: set[str] = set()
        self.token_requests = 0
        mailbox = sample("MailboxPayloads.getMailbox__1")
        mailbox["id"] = 85
        self.mailboxes: dict[int, dict[str, Any]] = {85: mailbox}
        self.conversations: dict[int, dict[str, Any]] = {}
        self.threads: dict[int, list[dict[str, Any]]] = {}
        self._next_conv = 1001
        self._next_thread = 5001
        self._conv_template = sample("ConversationPayloads.getConversation__1")
        self._thread_template = sample("ThreadPayloads.getThreads__1_2")["_embedded"]["threads"][0]
        self.route("POST", "/v2/oauth2/token", self._token)
        self.route("GET", r"/v2/mailboxes/(?P<id>\d+)", self._mailbox)
        self.route("GET", "/v2/conversations", self._list)
        self.route("POST", "/v2/conversations", self._create)
        self.route("GET", r"/v2/conversations/(?P<id>\d+)/threads", self._threads)
        self.route("POST", r"/v2/conversations/(?P<id>\d+)/customer", self._customer_thread)
        self.route("POST", r"/v2/conversations/(?P<id>\d+)/notes", self._note)

    # -- auth ----------------------------------------------------------------

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def authenticate(self, req: FakeRequest) -> FakeResponse | None:
        if req.path == "/v2/oauth2/token":
            return None
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return FakeResponse(401, {"error": "invalid_token", "message": "Invalid access token"})
        return None

    def _token(self, req: FakeRequest) -> FakeResponse:
        self.token_requests += 1
        form = req.form
        if req.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return FakeResponse(400, {"error": "invalid_request"})
        if form.get("grant_type") != "client_credentials":
            return FakeResponse(400, {"error": "unsupported_grant_type"})
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return FakeResponse(
                401,
                {"error": "invalid_client", "error_description": "Bad client credentials"},
            )
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return FakeResponse(
            200, {"token_type": "bearer", "access_token": token, "expires_in": 172800}
        )

    # -- reads -----------------------------------------------------------------

    def _mailbox(self, req: FakeRequest) -> FakeResponse:
        box = self.mailboxes.get(int(req.params["id"]))
        if box is None:
            return FakeResponse(404, {"message": "Mailbox not found"})
        return FakeResponse(200, box)

    def _list(self, req: FakeRequest) -> FakeResponse:
        convs = list(self.conversations.values())
        if "mailbox" in req.query:
            convs = [c for c in convs if str(c["mailboxId"]) == req.query["mailbox"]]
        if req.query.get("status", "active") != "all":
            convs = [c for c in convs if c["status"] == req.query.get("status", "active")]
        query = req.query.get("query")
        if query:
            m = re.fullmatch(r'\(body:"([^"]+)"\)', query)
            if not m:
                return FakeResponse(400, self._validation("query", "unsupported query syntax"))
            word = m.group(1)
            convs = [c for c in convs if any(word in t["body"] for t in self.threads[c["id"]])]
        return FakeResponse(
            200,
            {
                "_embedded": {"conversations": convs},
                "page": {
                    "size": 25,
                    "totalElements": len(convs),
                    "totalPages": 1,
                    "number": 1,
                },
                "_links": {"self": {"href": f"{API}/conversations"}},
            },
        )

    def _threads(self, req: FakeRequest) -> FakeResponse:
        conv_id = int(req.params["id"])
        if conv_id not in self.threads:
            return FakeResponse(404, {"message": "Conversation not found"})
        threads = list(reversed(self.threads[conv_id]))  # newest first, as Help Scout lists them
        page, size = int(req.query.get("page", "1")), 2
        chunk = threads[(page - 1) * size : page * size]
        return FakeResponse(
            200,
            {
                "_embedded": {"threads": chunk},
                "page": {
                    "size": size,
                    "totalElements": len(threads),
                    "totalPages": max(1, -(-len(threads) // size)),
                    "number": page,
                },
                "_links": {"self": {"href": f"{API}/conversations/{conv_id}/threads"}},
            },
        )

    # -- writes --------------------------------------------------------------------

    def _create(self, req: FakeRequest) -> FakeResponse:
        body = req.json
        problems = _check_create(body, self.mailboxes)
        if problems:
            return FakeResponse(400, self._validation(*problems[0]))
        conv_id = self._next_conv
        self._next_conv += 1
        conv = copy.deepcopy(self._conv_template)
        conv.update(
            id=conv_id,
            number=conv_id + 10000,
            subject=body["subject"],
            mailboxId=body["mailboxId"],
            status=body["status"],
            type=body["type"],
            createdBy={"id": 1, "type": "customer", "email": body["customer"].get("email")},
            primaryCustomer={"id": 1},
            customFields=[],
            tags=[],
        )
        conv["_links"]["self"]["href"] = f"{API}/conversations/{conv_id}"
        conv["_links"]["threads"]["href"] = f"{API}/conversations/{conv_id}/threads"
        self.conversations[conv_id] = conv
        self.threads[conv_id] = []
        for thread in body["threads"]:
            self._add_thread(conv_id, thread["type"], thread["text"], thread.get("customer"))
        conv["threads"] = len(self.threads[conv_id])
        return FakeResponse(
            201,
            None,
            {"Resource-ID": str(conv_id), "Location": f"{API}/conversations/{conv_id}"},
        )

    def _customer_thread(self, req: FakeRequest) -> FakeResponse:
        conv_id = int(req.params["id"])
        body = req.json
        if conv_id not in self.conversations:
            return FakeResponse(404, {"message": "Conversation not found"})
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return FakeResponse(400, self._validation("text", "may not be empty"))
        if not _valid_customer(body.get("customer")):
            return FakeResponse(400, self._validation("customer", "must have an id or email"))
        thread_id = self._add_thread(conv_id, "customer", body["text"], body["customer"])
        return FakeResponse(201, None, {"Resource-ID": str(thread_id)})

    def _note(self, req: FakeRequest) -> FakeResponse:
        conv_id = int(req.params["id"])
        body = req.json
        if conv_id not in self.conversations:
            return FakeResponse(404, {"message": "Conversation not found"})
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            return FakeResponse(400, self._validation("text", "may not be empty"))
        thread_id = self._add_thread(conv_id, "note", body["text"], None)
        return FakeResponse(201, None, {"Resource-ID": str(thread_id)})

    def _add_thread(
        self, conv_id: int, kind: str, text: str, customer: dict[str, Any] | None
    ) -> int:
        thread = copy.deepcopy(self._thread_template)
        thread_id = self._next_thread
        self._next_thread += 1
        thread.update(id=thread_id, type=kind, body=text)
        thread.pop("action", None)
        thread.pop("savedReplyId", None)
        if customer is not None:
            thread["customer"] = {"id": 1, "email": customer.get("email")}
            thread["createdBy"] = {"id": 1, "type": "customer"}
        else:
            thread.pop("customer", None)
            thread["createdBy"] = {"id": 9, "type": "user"}
        self.threads[conv_id].append(thread)
        return thread_id

    @staticmethod
    def _validation(path: str, message: str) -> dict[str, Any]:
        payload = sample("ErrorPayloads.validationErrors")
        payload["_embedded"]["errors"][0].update(path=path, message=message)
        return payload


def _valid_customer(customer: Any) -> bool:
    return isinstance(customer, dict) and (
        isinstance(customer.get("id"), int) or isinstance(customer.get("email"), str)
    )


def _check_create(body: Any, mailboxes: dict[int, Any]) -> list[tuple[str, str]]:
    """Documented rules of ``POST /v2/conversations``; ``(path, message)`` per problem."""
    if not isinstance(body, dict):
        return [("", "body must be a JSON object")]
    problems: list[tuple[str, str]] = []
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        problems.append(("subject", "may not be empty"))
    if not _valid_customer(body.get("customer")):
        problems.append(("customer", "must have an id or email"))
    if not isinstance(body.get("mailboxId"), int) or body["mailboxId"] not in mailboxes:
        problems.append(("mailboxId", "unknown mailbox"))
    if body.get("type") not in ("email", "chat", "phone"):
        problems.append(("type", "must be email, chat or phone"))
    if body.get("status") not in ("active", "closed", "pending"):
        problems.append(("status", "must be active, closed or pending"))
    threads = body.get("threads")
    if not isinstance(threads, list) or not threads or len(threads) > 100:
        problems.append(("threads", "between 1 and 100 threads"))
        return problems
    for i, thread in enumerate(threads):
        if not isinstance(thread, dict) or thread.get("type") not in (
            "customer",
            "reply",
            "note",
            "chat",
            "phone",
        ):
            problems.append((f"threads[{i}].type", "unknown thread type"))
            continue
        if not isinstance(thread.get("text"), str) or not thread["text"]:
            problems.append((f"threads[{i}].text", "may not be empty"))
        if "customer" in thread and not _valid_customer(thread["customer"]):
            problems.append((f"threads[{i}].customer", "must have an id or email"))
    return problems
