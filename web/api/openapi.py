"""The OpenAPI 3.1 document for ``/api/v1``, written by hand next to the routes it describes.

A test calls every path listed here, so the document cannot drift from the routes.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
}
MONEY_NOTE = "Amounts are integers in the currency's minor unit (cents); currency is ISO 4217."
CONTEXT = {
    "type": "object",
    "description": "Billing context snapshot. " + MONEY_NOTE,
    "properties": {
        "customer": {"type": "object"},
        "identities": {"type": "array", "items": {"type": "object"}},
        "payments": {"type": "array", "items": {"type": "object"}},
        "payment_count": {"type": "integer"},
        "refunds": {"type": "array", "items": {"type": "object"}},
        "subscriptions": {"type": "array", "items": {"type": "object"}},
        "open_invoices": {"type": "array", "items": {"type": "object"}},
        "lifetime_value": {"type": "object", "additionalProperties": {"type": "integer"}},
        "bounced_addresses": {"type": "array", "items": {"type": "string"}},
    },
}
TICKET = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "subject": {"type": "string"},
        "status": {"type": "string", "enum": ["open", "pending", "solved", "closed"]},
        "brand_id": {"type": ["integer", "null"]},
        "customer_id": {"type": ["integer", "null"]},
        "requester_email": {"type": "string"},
        "unverified_sender": {"type": "boolean"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request",
        401: "Missing or unknown token",
        403: "Role not allowed",
        404: "Not found",
        409: "Conflict",
        422: "Refused",
        503: "Gateway unavailable",
    }
    return {str(c): _json({"$ref": "#/components/schemas/Error"}, text[c]) for c in codes}


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


PATHS: dict[str, Any] = {
    "/api/v1/context": {
        "get": {
            "summary": "Billing context of the customer with this email",
            "parameters": [
                {"name": "email", "in": "query", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"200": _json({"$ref": "#/components/schemas/Context"}),
                          **_errors(400, 401, 403, 404)},
        }
    },
    "/api/v1/customers/{customer_id}": {
        "get": {
            "summary": "Billing context of one customer",
            "parameters": [_id("customer_id")],
            "responses": {"200": _json({"$ref": "#/components/schemas/Context"}),
                          **_errors(401, 403, 404)},
        }
    },
    "/api/v1/tickets": {
        "get": {
            "summary": "Tickets, newest activity first",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "q", "in": "query", "schema": {"type": "string"},
                 "description": "email, name, gateway id or document number"},
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            ],
            "responses": {
                "200": _json({"type": "object", "properties": {
                    "tickets": {"type": "array", "items": {"$ref": "#/components/schemas/Ticket"}},
                    "total": {"type": "integer"}, "page": {"type": "integer"},
                    "page_size": {"type": "integer"}}}),
                **_errors(400, 401, 403),
            },
        }
    },
    "/api/v1/tickets/{ticket_id}": {
        "get": {
            "summary": "One ticket with its messages and their stored billing context",
            "parameters": [_id("ticket_id")],
            "responses": {"200": _json({"allOf": [
                              {"$ref": "#/components/schemas/Ticket"},
                              {"type": "object", "properties": {
                                  "messages": {"type": "array", "items": {"type": "object"}}}},
                          ]}),
                          **_errors(401, 403, 404)},
        }
    },
    "/api/v1/actions/{action}": {
        "post": {
            "summary": "Run an agent action (refund, capture, void, cancel_subscription, "
                       "create_subscription, apply_coupon, add_tax_id, finalize_invoice)",
            "parameters": [{"name": "action", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["idempotency_key", "reason", "target"],
                "properties": {
                    "idempotency_key": {"type": "string"}, "reason": {"type": "string"},
                    "target": {"type": "integer", "description": "ledger id of the payment, "
                               "subscription, customer or gateway invoice"},
                    "amount": {"type": "integer", "description": "minor units; omit for all"},
                    "currency": {"type": "string"}, "at_period_end": {"type": "boolean"},
                    "coupon": {"type": "string"}, "account": {"type": "integer"},
                    "price": {"type": "string"}, "tax_id": {"type": "string"},
                    "country": {"type": "string"}, "send": {"type": "boolean"}}}}}},
            "responses": {"200": _json({"type": "object"}), **_errors(400, 401, 403, 404, 409,
                                                                       422, 503)},
        }
    },
}  # fmt: skip


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Billbox API",
            "version": "1",
            "description": "Billing context, tickets and agent actions. " + MONEY_NOTE,
        },
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Context": CONTEXT, "Ticket": TICKET},
        },
        "security": [{"token": []}],
        "paths": PATHS,
    }
