"""A local PayPal: the REST endpoints Billbox calls, answering with PayPal's documented JSON.

Nobody can run PayPal locally, so this stdlib HTTP server (a thread on a
free loopback port) implements exactly the calls the adapter makes, with
the shapes from PayPal's OpenAPI specs
(``shared/corpora/payment_webhooks/paypal/openapi``: payments v2, orders v2,
subscriptions v1, notifications v1, invoicing v2) and the Transaction Search reference:

- ``POST /v1/oauth2/token`` (client credentials, Basic auth)
- ``GET /v2/payments/captures/{id}``, ``POST …/captures/{id}/refund``
- ``GET /v2/payments/authorizations/{id}``, ``POST …/{id}/capture``, ``POST …/{id}/void``
- ``GET /v2/checkout/orders/{id}``
- ``GET|POST /v1/billing/subscriptions``, ``GET …/{id}``, ``POST …/{id}/cancel``
- ``GET /v1/billing/plans/{id}``
- ``POST /v1/notifications/verify-webhook-signature``
- ``GET /v1/reporting/transactions``
- ``GET /v2/invoicing/invoices``, ``GET …/{id}``, ``POST …/{id}/send``

State is in memory. Tests can script failures (:meth:`PayPalFake.fail_next`:
422 with ``details``, 429 with ``Retry-After``, 5xx), expire every token
(:meth:`PayPalFake.expire_tokens`: the next call gets PayPal's 401
``invalid_token``), and read :attr:`PayPalFake.log`. ``PayPal-Request-Id``
is honoured like PayPal does: a repeated id on the same call replays the
first answer and changes nothing.

Webhook signatures: PayPal signs with its private key, and
``verify-webhook-signature`` is PayPal checking its own signature. The fake
does the same with what it knows: :meth:`PayPalFake.sign` records each
transmission it "sent", and verification succeeds only when the id, time,
signature, webhook id and the event itself all match the recorded send.

One file on purpose (past 800 lines): state, seeding helpers and the routes
that read and change that state sit together, so each route's answer can be
checked against PayPal's reference next to the object it serves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Json = dict[str, Any]
TOKEN_PATH = "/v1/oauth2/token"


def paypal_id(length: int = 17) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def money(value: str, currency: str) -> Json:
    return {"currency_code": currency, "value": value}


def error_body(status: int, issue: str = "", description: str = "") -> Json:
    """PayPal's error object for ``status`` (``name``, ``message``, ``debug_id``, ``details``)."""
    names = {
        400: (
            "INVALID_REQUEST",
            "Request is not well-formed, syntactically incorrect, or violates schema.",
        ),
        404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
        422: (
            "UNPROCESSABLE_ENTITY",
            "The requested action could not be performed, semantically"
            " incorrect, or failed business validation.",
        ),
        429: ("RATE_LIMIT_REACHED", "Too many requests. Blocked due to rate limiting."),
        500: ("INTERNAL_SERVER_ERROR", "An internal server error occurred."),
        503: ("SERVICE_UNAVAILABLE", "Service Unavailable."),
    }
    name, message = names.get(
        status, ("INTERNAL_SERVER_ERROR", "An internal server error occurred.")
    )
    body: Json = {"name": name, "message": message, "debug_id": secrets.token_hex(7)[:13]}
    if issue:
        body["details"] = [{"issue": issue, "description": description or issue}]
        body["links"] = [
            {
                "href": f"https://developer.paypal.com/docs/api/v2/errors/#{issue}",
                "rel": "information_link",
                "method": "GET",
            }
        ]
    return body


class Headers(dict[str, str]):
    """Request headers looked up case-insensitively (urllib sends ``Paypal-request-id``)."""

    def __init__(self, items: Any) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes


@dataclass
class _Failure:
    method: str | None
    pattern: re.Pattern[str]
    status: int
    body: Json | None
    headers: dict[str, str]
    times: int


@dataclass
class PayPalFake:
    client_id: str = "billbox-client"
    client_secret: str = "billbox-secret"
    log: list[Logged] = field(default_factory=list)
    captures: dict[str, Json] = field(default_factory=dict)
    authorizations: dict[str, Json] = field(default_factory=dict)
    refunds: dict[str, Json] = field(default_factory=dict)
    orders: dict[str, Json] = field(default_factory=dict)
    plans: dict[str, Json] = field(default_factory=dict)
    subscriptions: dict[str, Json] = field(default_factory=dict)
    invoices: dict[str, Json] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    tokens_issued: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._failures: list[_Failure] = []
        self._idempotent: dict[tuple[str, str, str], tuple[int, Json | None]] = {}
        self._sent: dict[str, tuple[str, str, str, Any]] = {}  # transmission id → send
        self._signing_key = secrets.token_bytes(32)
        self._server: ThreadingHTTPServer | None = None

    # Lifecycle ------------------------------------------------------------------------

    def start(self) -> PayPalFake:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # Scripting ------------------------------------------------------------------------

    def fail_next(
        self,
        path_regex: str,
        status: int,
        *,
        body: Json | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` requests matching answer ``status`` with ``body`` (PayPal's error)."""
        with self._lock:
            self._failures.append(
                _Failure(method, re.compile(path_regex), status, body, headers or {}, times)
            )

    def expire_tokens(self) -> None:
        """PayPal dropped every token early: the next API call gets 401 ``invalid_token``."""
        with self._lock:
            self.tokens.clear()

    def calls(self, method: str, path_regex: str) -> list[Logged]:
        pattern = re.compile(path_regex)
        return [r for r in self.log if r.method == method and pattern.fullmatch(r.path)]

    # Seeding --------------------------------------------------------------------------

    def add_payer(self, email: str = "buyer@example.com", payer_id: str | None = None) -> Json:
        return {
            "name": {"given_name": "Ada", "surname": "Lovelace"},
            "email_address": email,
            "payer_id": payer_id or paypal_id(13),
            "address": {"country_code": "DE"},
        }

    def add_capture(
        self,
        value: str = "25.00",
        currency: str = "EUR",
        *,
        payer: Json | None = None,
        status: str = "COMPLETED",
        created: datetime | None = None,
    ) -> tuple[str, str]:
        """An order paid by ``payer`` with one capture; returns (order id, capture id)."""
        with self._lock:
            order_id = paypal_id()
            capture = self._new_capture(value, currency, status, order_id, None, created)
            self.orders[order_id] = self._order(
                order_id, payer or self.add_payer(), "CAPTURE", capture
            )
            return order_id, capture["id"]

    def add_authorization(
        self, value: str = "40.00", currency: str = "EUR", *, payer: Json | None = None
    ) -> tuple[str, str]:
        """An order with an authorization (intent AUTHORIZE);"
        " returns (order id, authorization id)."""
        with self._lock:
            now = datetime.now(UTC)
            order_id, auth_id = paypal_id(), paypal_id()
            auth = {
                "id": auth_id,
                "status": "CREATED",
                "amount": money(value, currency),
                "seller_protection": {
                    "status": "ELIGIBLE",
                    "dispute_categories": ["ITEM_NOT_RECEIVED"],
                },
                "expiration_time": iso(now + timedelta(days=29)),
                "create_time": iso(now),
                "update_time": iso(now),
                "supplementary_data": {"related_ids": {"order_id": order_id}},
                "links": [
                    self._link(f"/v2/payments/authorizations/{auth_id}", "self", "GET"),
                    self._link(f"/v2/payments/authorizations/{auth_id}/capture", "capture", "POST"),
                    self._link(f"/v2/payments/authorizations/{auth_id}/void", "void", "POST"),
                    self._link(f"/v2/checkout/orders/{order_id}", "up", "GET"),
                ],
            }
            self.authorizations[auth_id] = auth
            self.orders[order_id] = self._order(
                order_id, payer or self.add_payer(), "AUTHORIZE", auth
            )
            return order_id, auth_id

    def add_plan(
        self, name: str = "Pro monthly", value: str = "12.00", currency: str = "EUR"
    ) -> str:
        with self._lock:
            plan_id = "P-" + paypal_id(24)
            now = iso(datetime.now(UTC))
            self.plans[plan_id] = {
                "id": plan_id,
                "product_id": "PROD-" + paypal_id(17),
                "name": name,
                "status": "ACTIVE",
                "usage_type": "LICENSED",
                "billing_cycles": [
                    {
                        "pricing_scheme": {"version": 1, "fixed_price": money(value, currency)},
                        "frequency": {"interval_unit": "MONTH", "interval_count": 1},
                        "tenure_type": "REGULAR",
                        "sequence": 1,
                        "total_cycles": 0,
                    }
                ],
                "payment_preferences": {
                    "auto_bill_outstanding": True,
                    "payment_failure_threshold": 3,
                },
                "quantity_supported": False,
                "create_time": now,
                "update_time": now,
                "links": [self._link(f"/v1/billing/plans/{plan_id}", "self", "GET")],
            }
            return plan_id

    def add_subscription(
        self,
        plan_id: str,
        *,
        status: str = "ACTIVE",
        payer: Json | None = None,
        custom_id: str = "",
    ) -> str:
        with self._lock:
            plan = self.plans[plan_id]
            price = plan["billing_cycles"][0]["pricing_scheme"]["fixed_price"]
            now = datetime.now(UTC)
            sub_id = "I-" + paypal_id(12)
            who = payer or self.add_payer()
            subscription: Json = {
                "id": sub_id,
                "plan_id": plan_id,
                "status": status,
                "status_update_time": iso(now),
                "start_time": iso(now),
                "quantity": "1",
                "plan_overridden": False,
                "subscriber": {
                    "name": who["name"],
                    "email_address": who["email_address"],
                    "payer_id": who["payer_id"],
                },
                "billing_info": {
                    "outstanding_balance": money("0.00", price["currency_code"]),
                    "cycle_executions": [
                        {
                            "tenure_type": "REGULAR",
                            "sequence": 1,
                            "cycles_completed": 1,
                            "cycles_remaining": 0,
                            "total_cycles": 0,
                        }
                    ],
                    "next_billing_time": iso(now + timedelta(days=30)),
                    "failed_payments_count": 0,
                },
                "create_time": iso(now),
                "update_time": iso(now),
                "links": [self._link(f"/v1/billing/subscriptions/{sub_id}", "self", "GET")],
            }
            if status == "APPROVAL_PENDING":
                del subscription["subscriber"]["payer_id"]
                subscription["links"].insert(
                    0,
                    {
                        "href": f"https://www.paypal.com/webapps/billing/subscriptions?ba_token=BA-{paypal_id(17)}",
                        "rel": "approve",
                        "method": "GET",
                    },
                )
            else:
                subscription["billing_info"]["last_payment"] = {
                    "amount": dict(price),
                    "time": iso(now),
                }
            if custom_id:
                subscription["custom_id"] = custom_id
            self.subscriptions[sub_id] = subscription
            return sub_id

    def add_invoice(
        self, value: str = "80.00", currency: str = "EUR", *, status: str = "DRAFT"
    ) -> str:
        """An invoicing v2 invoice to one recipient, due in 10 days; returns its id."""
        with self._lock:
            now = datetime.now(UTC)
            invoice_id = "INV2-" + "-".join(paypal_id(4) for _ in range(4))
            self.invoices[invoice_id] = {
                "id": invoice_id,
                "status": status,
                "detail": {
                    "invoice_number": f"#{len(self.invoices) + 1:04d}",
                    "invoice_date": now.strftime("%Y-%m-%d"),
                    "currency_code": currency,
                    "payment_term": {
                        "term_type": "NET_10",
                        "due_date": (now + timedelta(days=10)).strftime("%Y-%m-%d"),
                    },
                    "metadata": {
                        "create_time": iso(now),
                        "last_update_time": iso(now),
                        "created_by_flow": "REGULAR_SINGLE",
                        "recipient_view_url": f"https://www.paypal.com/invoice/p/#{invoice_id}",
                        "invoicer_view_url": f"https://www.paypal.com/invoice/details/{invoice_id}",
                    },
                },
                "invoicer": {"email_address": "merchant@example.com"},
                "primary_recipients": [
                    {
                        "billing_info": {
                            "name": {"given_name": "Ada", "surname": "Lovelace"},
                            "email_address": "ada@example.com",
                        }
                    }
                ],
                "items": [
                    {"name": "Consulting", "quantity": "1", "unit_amount": money(value, currency)}
                ],
                "amount": {
                    "currency_code": currency,
                    "value": value,
                    "breakdown": {"item_total": money(value, currency)},
                },
                "due_amount": money(value, currency),
                "links": [
                    self._link(f"/v2/invoicing/invoices/{invoice_id}", "self", "GET"),
                    self._link(f"/v2/invoicing/invoices/{invoice_id}/send", "send", "POST"),
                ],
            }
            return invoice_id

    # Webhooks -------------------------------------------------------------------------

    def sign(self, body: bytes, webhook_id: str, *, sent: datetime | None = None) -> dict[str, str]:
        """The ``PAYPAL-*`` headers of a delivery of ``body``"
        " to ``webhook_id``, recorded as sent."""
        transmission_id = paypal_id(8).lower() + "-" + secrets.token_hex(4)
        when = iso(sent or datetime.now(UTC))
        crc = zlib.crc32(body)
        message = f"{transmission_id}|{when}|{webhook_id}|{crc}".encode()
        signature = base64.b64encode(hmac.new(self._signing_key, message, hashlib.sha256).digest())
        sig = signature.decode()
        with self._lock:
            self._sent[transmission_id] = (when, webhook_id, sig, json.loads(body))
        return {
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": when,
            "PAYPAL-TRANSMISSION-SIG": sig,
            "PAYPAL-CERT-URL": "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270",
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }

    # Internals used by the handler ------------------------------------------------------

    def _link(self, path: str, rel: str, method: str) -> Json:
        return {"href": f"https://api.paypal.com{path}", "rel": rel, "method": method}

    def _new_capture(
        self,
        value: str,
        currency: str,
        status: str,
        order_id: str,
        authorization_id: str | None,
        created: datetime | None = None,
    ) -> Json:
        when = iso(created or datetime.now(UTC))
        capture_id = paypal_id()
        up = (
            f"/v2/payments/authorizations/{authorization_id}"
            if authorization_id
            else f"/v2/checkout/orders/{order_id}"
        )
        related: Json = {"order_id": order_id}
        if authorization_id:
            related["authorization_id"] = authorization_id
        capture = {
            "id": capture_id,
            "status": status,
            "amount": money(value, currency),
            "final_capture": True,
            "seller_protection": {
                "status": "ELIGIBLE",
                "dispute_categories": ["ITEM_NOT_RECEIVED"],
            },
            "seller_receivable_breakdown": {
                "gross_amount": money(value, currency),
                "paypal_fee": money("0.50", currency),
                "net_amount": money(str(Decimal(value) - Decimal("0.50")), currency),
            },
            "create_time": when,
            "update_time": when,
            "supplementary_data": {"related_ids": related},
            "links": [
                self._link(f"/v2/payments/captures/{capture_id}", "self", "GET"),
                self._link(f"/v2/payments/captures/{capture_id}/refund", "refund", "POST"),
                self._link(up, "up", "GET"),
            ],
        }
        self.captures[capture_id] = capture
        return capture

    def _order(self, order_id: str, payer: Json, intent: str, payment: Json) -> Json:
        kind = "captures" if intent == "CAPTURE" else "authorizations"
        return {
            "id": order_id,
            "intent": intent,
            "status": "COMPLETED",
            "payer": payer,
            "purchase_units": [
                {
                    "reference_id": "default",
                    "amount": dict(payment["amount"]),
                    "payee": {
                        "email_address": "merchant@example.com",
                        "merchant_id": paypal_id(13),
                    },
                    "payments": {kind: [payment]},
                }
            ],
            "create_time": payment["create_time"],
            "update_time": payment["update_time"],
            "links": [self._link(f"/v2/checkout/orders/{order_id}", "self", "GET")],
        }


# The HTTP side ----------------------------------------------------------------------------

Route = Callable[["_Handler", re.Match[str], Json | None], tuple[int, Json | None]]


class _Handler(BaseHTTPRequestHandler):
    owner: PayPalFake

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""

    def _serve(self, method: str) -> None:
        fake = self.owner
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.query = parse_qs(parts.query)
        with fake._lock:
            fake.log.append(
                Logged(method, parts.path, self.query, Headers(self.headers.items()), raw)
            )
            failure = self._scripted(method, parts.path)
            if failure is not None:
                body = failure.body if failure.body is not None else error_body(failure.status)
                return self._send(failure.status, body, failure.headers)
            if parts.path == TOKEN_PATH and method == "POST":
                return self._send(*_token(self, raw))
            if self.header("Authorization").removeprefix("Bearer ") not in fake.tokens:
                return self._send(
                    401,
                    {
                        "error": "invalid_token",
                        "error_description": "Access Token not found in cache",
                    },
                )
            request_id = self.header("PayPal-Request-Id")
            key = (method, parts.path, request_id)
            if request_id and key in fake._idempotent:
                return self._send(*fake._idempotent[key])
            try:
                body_json = json.loads(raw) if raw else None
            except ValueError:
                return self._send(
                    400,
                    error_body(
                        400, "MALFORMED_REQUEST_JSON", "The request JSON is not well formed."
                    ),
                )
            for route_method, pattern, route in _ROUTES:
                match = pattern.fullmatch(parts.path)
                if match and route_method == method:
                    status, answer = route(self, match, body_json)
                    if request_id and status < 500:
                        fake._idempotent[key] = (status, answer)
                    return self._send(status, answer)
            return self._send(
                404, error_body(404, "INVALID_RESOURCE_ID", "Specified resource ID does not exist.")
            )

    def _scripted(self, method: str, path: str) -> _Failure | None:
        for failure in self.owner._failures:
            if (failure.method in (None, method)) and failure.pattern.search(path):
                failure.times -= 1
                if failure.times <= 0:
                    self.owner._failures.remove(failure)
                return failure
        return None

    def _send(self, status: int, body: Json | None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Paypal-Debug-Id", secrets.token_hex(7)[:13])
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def wants_full(self) -> bool:
        return "return=representation" in self.header("Prefer")


def _token(handler: _Handler, raw: bytes) -> tuple[int, Json]:
    fake = handler.owner
    expected = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
    if handler.header("Authorization") != f"Basic {expected}":
        return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
    if parse_qs(raw.decode()).get("grant_type") != ["client_credentials"]:
        return 400, {"error": "unsupported_grant_type", "error_description": "Grant Type is NULL"}
    token = "A21AA" + secrets.token_urlsafe(24)
    fake.tokens.add(token)
    fake.tokens_issued += 1
    return 200, {
        "scope": "https://uri.paypal.com/services/payments/refund https://uri.paypal.com/services/subscriptions",
        "access_token": token,
        "token_type": "Bearer",
        "app_id": "APP-80W284485P519543T",
        "expires_in": 32400,
        "nonce": iso(datetime.now(UTC)) + secrets.token_urlsafe(8),
    }


# Routes -------------------------------------------------------------------------------------
# Each takes (handler, path match, request JSON) and returns (status, answer JSON or None).


def _not_found() -> tuple[int, Json]:
    return 404, error_body(
        404,
        "INVALID_RESOURCE_ID",
        "Specified resource ID does not exist. Please check the resource ID and try again.",
    )


def _unprocessable(issue: str, description: str) -> tuple[int, Json]:
    return 422, error_body(422, issue, description)


def _get(store: str) -> Route:
    def route(
        handler: _Handler, match: re.Match[str], _body: Json | None
    ) -> tuple[int, Json | None]:
        found = getattr(handler.owner, store).get(match.group(1))
        return (200, found) if found is not None else _not_found()

    return route


def _refund_capture(
    handler: _Handler, match: re.Match[str], body: Json | None
) -> tuple[int, Json | None]:
    fake = handler.owner
    capture = fake.captures.get(match.group(1))
    if capture is None:
        return _not_found()
    if capture["status"] not in ("COMPLETED", "PARTIALLY_REFUNDED"):
        if capture["status"] == "REFUNDED":
            return _unprocessable(
                "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded"
            )
        return _unprocessable(
            "INVALID_CAPTURE_STATUS",
            "Invalid capture status. Refund can only be issued on a COMPLETED capture.",
        )
    currency = capture["amount"]["currency_code"]
    refunded = sum(
        Decimal(r["amount"]["value"])
        for r in fake.refunds.values()
        if r["_capture_id"] == capture["id"] and r["status"] == "COMPLETED"
    )
    remaining = Decimal(capture["amount"]["value"]) - refunded
    requested = (body or {}).get("amount")
    if requested is not None:
        if requested.get("currency_code") != currency:
            return _unprocessable(
                "REFUND_CURRENCY_MISMATCH", "Refund must be in the same currency as the capture."
            )
        value = Decimal(requested["value"])
    else:
        value = remaining
    if value <= 0 or value > remaining:
        return _unprocessable(
            "REFUND_AMOUNT_EXCEEDED",
            "The refund amount must be less than or equal to the"
            " capture amount that has not yet been refunded.",
        )
    now = iso(datetime.now(UTC))
    refund_id = paypal_id()
    refund: Json = {
        "id": refund_id,
        "amount": money(f"{value:.2f}", currency),
        "status": "COMPLETED",
        "seller_payable_breakdown": {
            "gross_amount": money(f"{value:.2f}", currency),
            "paypal_fee": money("0.00", currency),
            "net_amount": money(f"{value:.2f}", currency),
            "total_refunded_amount": money(f"{refunded + value:.2f}", currency),
        },
        "create_time": now,
        "update_time": now,
        "links": [
            fake._link(f"/v2/payments/refunds/{refund_id}", "self", "GET"),
            fake._link(f"/v2/payments/captures/{capture['id']}", "up", "GET"),
        ],
        "_capture_id": capture["id"],
    }
    if (body or {}).get("note_to_payer"):
        refund["note_to_payer"] = body["note_to_payer"]  # type: ignore[index]
    fake.refunds[refund_id] = refund
    capture["status"] = "REFUNDED" if value == remaining else "PARTIALLY_REFUNDED"
    capture["update_time"] = now
    public = {k: v for k, v in refund.items() if not k.startswith("_")}
    if handler.wants_full():
        return 201, public
    return 201, {"id": refund_id, "status": "COMPLETED", "links": public["links"]}


def _capture_authorization(
    handler: _Handler, match: re.Match[str], body: Json | None
) -> tuple[int, Json | None]:
    fake = handler.owner
    auth = fake.authorizations.get(match.group(1))
    if auth is None:
        return _not_found()
    if auth["status"] == "VOIDED":
        return _unprocessable(
            "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured or reauthorized."
        )
    if auth["status"] == "CAPTURED":
        return _unprocessable(
            "AUTHORIZATION_ALREADY_CAPTURED",
            "Authorization has been previously captured and hence cannot be captured again.",
        )
    currency = auth["amount"]["currency_code"]
    requested = (body or {}).get("amount")
    value = requested["value"] if requested else auth["amount"]["value"]
    if Decimal(value) > Decimal(auth["amount"]["value"]):
        return _unprocessable(
            "MAX_CAPTURE_AMOUNT_EXCEEDED", "Capture amount exceeds allowable limit."
        )
    order_id = auth["supplementary_data"]["related_ids"]["order_id"]
    capture = fake._new_capture(value, currency, "COMPLETED", order_id, auth["id"])
    capture["final_capture"] = bool((body or {}).get("final_capture", False))
    auth["status"] = (
        "CAPTURED"
        if capture["final_capture"] or Decimal(value) == Decimal(auth["amount"]["value"])
        else "PARTIALLY_CAPTURED"
    )
    auth["update_time"] = capture["update_time"]
    fake.orders[order_id]["purchase_units"][0]["payments"].setdefault("captures", []).append(
        capture
    )
    if handler.wants_full():
        return 201, capture
    return 201, {"id": capture["id"], "status": capture["status"], "links": capture["links"]}


def _void_authorization(
    handler: _Handler, match: re.Match[str], _body: Json | None
) -> tuple[int, Json | None]:
    auth = handler.owner.authorizations.get(match.group(1))
    if auth is None:
        return _not_found()
    if auth["status"] in ("CAPTURED", "PARTIALLY_CAPTURED"):
        return _unprocessable(
            "PREVIOUSLY_CAPTURED",
            "Authorization has been previously captured and hence cannot be voided.",
        )
    if auth["status"] == "VOIDED":
        return _unprocessable(
            "PREVIOUSLY_VOIDED",
            "Authorization has been previously voided and hence cannot be voided again.",
        )
    auth["status"] = "VOIDED"
    auth["update_time"] = iso(datetime.now(UTC))
    return (200, auth) if handler.wants_full() else (204, None)


def _create_subscription(
    handler: _Handler, _match: re.Match[str], body: Json | None
) -> tuple[int, Json | None]:
    fake = handler.owner
    plan_id = (body or {}).get("plan_id")
    if not plan_id:
        return 400, {
            **error_body(400),
            "details": [
                {
                    "field": "/plan_id",
                    "location": "body",
                    "issue": "MISSING_REQUIRED_PARAMETER",
                    "description": "A required field / parameter is missing.",
                }
            ],
        }
    if plan_id not in fake.plans:
        return _unprocessable("RESOURCE_NOT_FOUND", "Requested resource ID was not found.")
    sub_id = fake.add_subscription(
        plan_id, status="APPROVAL_PENDING", custom_id=(body or {}).get("custom_id", "")
    )
    subscription = fake.subscriptions[sub_id]
    if handler.wants_full():
        return 201, subscription
    keep = ("id", "status", "status_update_time", "create_time", "links", "plan_id")
    return 201, {k: subscription[k] for k in keep}


def _cancel_subscription(
    handler: _Handler, match: re.Match[str], _body: Json | None
) -> tuple[int, Json | None]:
    subscription = handler.owner.subscriptions.get(match.group(1))
    if subscription is None:
        return _not_found()
    if subscription["status"] not in ("ACTIVE", "SUSPENDED"):
        return _unprocessable(
            "SUBSCRIPTION_STATUS_INVALID",
            "Invalid subscription status for cancel action;"
            " subscription status should be active or suspended.",
        )
    now = iso(datetime.now(UTC))
    subscription.update(status="CANCELLED", status_update_time=now, update_time=now)
    subscription["billing_info"].pop("next_billing_time", None)
    return 204, None


def _list_subscriptions(
    handler: _Handler, _match: re.Match[str], _body: Json | None
) -> tuple[int, Json | None]:
    items = sorted(handler.owner.subscriptions.values(), key=lambda s: (s["create_time"], s["id"]))
    after = handler.query.get("created_after", [""])[0]
    if after:
        items = [s for s in items if s["create_time"] >= after]
    return 200, _paged(handler, items, "subscriptions", max_size=20)


def _verify_signature(
    handler: _Handler, _match: re.Match[str], body: Json | None
) -> tuple[int, Json | None]:
    required = (
        "auth_algo",
        "cert_url",
        "transmission_id",
        "transmission_sig",
        "transmission_time",
        "webhook_id",
        "webhook_event",
    )
    missing = [name for name in required if not (body or {}).get(name)]
    if missing:
        return 400, {
            "name": "VALIDATION_ERROR",
            "message": "Invalid request - see details",
            "debug_id": secrets.token_hex(7)[:13],
            "details": [
                {"field": name, "location": "body", "issue": "Required field is missing"}
                for name in missing
            ],
        }
    assert body is not None
    sent = handler.owner._sent.get(body["transmission_id"])
    ok = sent is not None and (
        sent[0] == body["transmission_time"]
        and sent[1] == body["webhook_id"]
        and hmac.compare_digest(sent[2], body["transmission_sig"])
        and sent[3] == body["webhook_event"]
    )
    return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}


def _search_transactions(
    handler: _Handler, _match: re.Match[str], _body: Json | None
) -> tuple[int, Json | None]:
    fake = handler.owner
    start_text = handler.query.get("start_date", [""])[0]
    end_text = handler.query.get("end_date", [""])[0]
    try:
        start = datetime.fromisoformat(start_text.replace("Z", "+00:00"))
        end = datetime.fromisoformat(end_text.replace("Z", "+00:00"))
    except ValueError:
        return 400, error_body(
            400, "INVALID_REQUEST", "start_date and end_date are required, in RFC 3339 format."
        )
    if end - start > timedelta(days=31) or end < start:
        return 400, error_body(400, "INVALID_REQUEST", "Date range is greater than 31 days")
    rows: list[tuple[str, Json]] = []
    payers = {}
    for order in fake.orders.values():
        for unit in order["purchase_units"]:
            for capture in unit["payments"].get("captures", []):
                payers[capture["id"]] = order["payer"]
    for capture in fake.captures.values():
        rows.append(
            (
                capture["create_time"],
                _transaction(capture, "T0006", None, payers.get(capture["id"])),
            )
        )
    for refund in fake.refunds.values():
        rows.append(
            (refund["create_time"], _transaction(refund, "T1107", refund["_capture_id"], None))
        )
    chosen = [
        row
        for when, row in sorted(rows, key=lambda r: r[0])
        if iso(start) <= when < iso(end) or when == iso(end)
    ]
    answer = _paged(handler, chosen, "transaction_details", max_size=500)
    answer.update(
        account_number="ABCDEFGHIJKLM",
        start_date=iso(start),
        end_date=iso(end),
        last_refreshed_datetime=iso(datetime.now(UTC)),
    )
    return 200, answer


def _transaction(obj: Json, code: str, reference: str | None, payer: Json | None) -> Json:
    value = obj["amount"]["value"]
    info: Json = {
        "paypal_account_id": paypal_id(13),
        "transaction_id": obj["id"],
        "transaction_event_code": code,
        "transaction_initiation_date": obj["create_time"],
        "transaction_updated_date": obj["update_time"],
        "transaction_amount": money(
            f"-{value}" if code == "T1107" else value, obj["amount"]["currency_code"]
        ),
        "transaction_status": {"COMPLETED": "S", "PENDING": "P", "DECLINED": "D"}.get(
            obj["status"], "S"
        ),
        "protection_eligibility": "01",
    }
    if reference:
        info["paypal_reference_id"] = reference
        info["paypal_reference_id_type"] = "TXN"
    detail: Json = {"transaction_info": info}
    if payer:
        detail["payer_info"] = {
            "account_id": payer["payer_id"],
            "email_address": payer["email_address"],
            "address_status": "Y",
            "payer_status": "Y",
            "payer_name": {
                "given_name": payer["name"]["given_name"],
                "surname": payer["name"]["surname"],
                "alternate_full_name": f"{payer['name']['given_name']} {payer['name']['surname']}",
            },
            "country_code": payer["address"]["country_code"],
        }
    return detail


def _paged(handler: _Handler, items: list[Json], key: str, *, max_size: int) -> Json:
    size = min(max_size, max(1, int(handler.query.get("page_size", ["10"])[0])))
    page = max(1, int(handler.query.get("page", ["1"])[0]))
    total_pages = max(1, -(-len(items) // size))
    return {
        key: items[(page - 1) * size : page * size],
        "page": page,
        "total_items": len(items),
        "total_pages": total_pages,
        "links": [],
    }


def _send_invoice(
    handler: _Handler, match: re.Match[str], body: Json | None
) -> tuple[int, Json | None]:
    """Draft → SENT (emailed) or UNPAID (share link); "resending has no effect"."""
    invoice = handler.owner.invoices.get(match.group(1))
    if invoice is None:
        return _not_found()
    if invoice["status"] == "CANCELLED":
        return 422, error_body(422)
    if invoice["status"] == "DRAFT":
        now = iso(datetime.now(UTC))
        emailed = (body or {}).get("send_to_recipient", True)
        invoice["status"] = "SENT" if emailed else "UNPAID"
        invoice["detail"]["metadata"].update(
            first_sent_time=now, last_sent_time=now, last_update_time=now
        )
    return 200, handler.owner._link(f"/v2/invoicing/invoices/{invoice['id']}", "self", "GET")


def _list_invoices(
    handler: _Handler, _match: re.Match[str], _body: Json | None
) -> tuple[int, Json | None]:
    items = list(handler.owner.invoices.values())
    return 200, _paged(handler, items, "items", max_size=100)


_ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("GET", re.compile(r"/v2/payments/captures/([^/]+)"), _get("captures")),
    ("POST", re.compile(r"/v2/payments/captures/([^/]+)/refund"), _refund_capture),
    ("GET", re.compile(r"/v2/payments/authorizations/([^/]+)"), _get("authorizations")),
    ("POST", re.compile(r"/v2/payments/authorizations/([^/]+)/capture"), _capture_authorization),
    ("POST", re.compile(r"/v2/payments/authorizations/([^/]+)/void"), _void_authorization),
    ("GET", re.compile(r"/v2/checkout/orders/([^/]+)"), _get("orders")),
    ("GET", re.compile(r"/v1/billing/plans/([^/]+)"), _get("plans")),
    ("GET", re.compile(r"/v1/billing/subscriptions"), _list_subscriptions),
    ("POST", re.compile(r"/v1/billing/subscriptions"), _create_subscription),
    ("GET", re.compile(r"/v1/billing/subscriptions/([^/]+)"), _get("subscriptions")),
    ("POST", re.compile(r"/v1/billing/subscriptions/([^/]+)/cancel"), _cancel_subscription),
    ("POST", re.compile(r"/v1/notifications/verify-webhook-signature"), _verify_signature),
    ("GET", re.compile(r"/v1/reporting/transactions"), _search_transactions),
    ("GET", re.compile(r"/v2/invoicing/invoices"), _list_invoices),
    ("GET", re.compile(r"/v2/invoicing/invoices/([^/]+)"), _get("invoices")),
    ("POST", re.compile(r"/v2/invoicing/invoices/([^/]+)/send"), _send_invoice),
]
