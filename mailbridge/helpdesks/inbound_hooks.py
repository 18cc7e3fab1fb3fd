"""Webhooks from helpdesks about tickets opened there directly (not through our mail).

Each vendor signs (or authenticates) its deliveries its own way; a delivery
that does not prove itself is refused before its body is read. What we take
from it is only the ticket's id and the requester's email, so the billing
note can be added to that ticket.

==========  ==================================================================
Zendesk     ``X-Zendesk-Webhook-Signature`` = base64 HMAC-SHA256(secret,
            timestamp + body), ``X-Zendesk-Webhook-Signature-Timestamp``; the
            trigger's JSON body is ours: ``{"ticket_id", "requester_email"}``
Freshdesk   no signing: the automation rule sends ``Authorization: Bearer
            <secret>``; body ``{"ticket_id", "requester_email"}``
Help Scout  ``X-HelpScout-Signature`` = base64 HMAC-SHA1(secret, body); body
            the conversation (``id``, ``primaryCustomer.email``)
Intercom    ``X-Hub-Signature`` = ``sha1=`` hex HMAC-SHA1(client secret,
            body); body a notification (``data.item`` conversation)
Front       ``X-Front-Signature`` = base64 HMAC-SHA256(secret, timestamp +
            ":" + body), ``X-Front-Request-Timestamp`` (ms)
==========  ==================================================================
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailbridge.helpdesks.external import HelpdeskAuthError, HelpdeskError


@dataclass(frozen=True)
class TicketOpened:
    ticket_id: str
    email: str


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value.strip()
    return ""


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _b64(secret: str, data: bytes, digest: Any) -> str:
    return base64.b64encode(hmac.new(secret.encode(), data, digest).digest()).decode()


def verify(kind: str, secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Raise :class:`HelpdeskAuthError` unless the delivery proves it comes from the helpdesk."""
    if not secret:
        raise HelpdeskAuthError(f"no webhook secret is set for this {kind} account")
    if kind == "zendesk":
        stamp = _header(headers, "X-Zendesk-Webhook-Signature-Timestamp")
        ok = _same(_header(headers, "X-Zendesk-Webhook-Signature"),
                   _b64(secret, stamp.encode() + body, hashlib.sha256))  # fmt: skip
    elif kind == "freshdesk":
        ok = _same(_header(headers, "Authorization"), f"Bearer {secret}")
    elif kind == "helpscout":
        ok = _same(_header(headers, "X-HelpScout-Signature"), _b64(secret, body, hashlib.sha1))
    elif kind == "intercom":
        expected = "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        ok = _same(_header(headers, "X-Hub-Signature"), expected)
    elif kind == "front":
        stamp = _header(headers, "X-Front-Request-Timestamp")
        ok = _same(_header(headers, "X-Front-Signature"),
                   _b64(secret, stamp.encode() + b":" + body, hashlib.sha256))  # fmt: skip
    else:
        raise HelpdeskError(f"unknown helpdesk kind {kind!r}")
    if not ok:
        raise HelpdeskAuthError(f"{kind} webhook: signature missing or wrong")


def _get(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def read_ticket(kind: str, body: bytes) -> TicketOpened | None:
    """The ticket and requester a (verified) delivery names; None for an event about nothing
    we note (Front's challenge, other topics)."""
    try:
        data = json.loads(body)
    except ValueError:
        raise HelpdeskError(f"{kind} webhook: the body is not JSON") from None
    if kind in ("zendesk", "freshdesk"):
        ticket, email = data.get("ticket_id"), data.get("requester_email")
    elif kind == "helpscout":
        ticket = data.get("id")
        email = _get(data, "primaryCustomer", "email") or _get(data, "customer", "email")
    elif kind == "intercom":
        item = _get(data, "data", "item") or {}
        ticket = item.get("id") if item.get("type") == "conversation" else None
        email = _get(item, "source", "author", "email")
    else:  # front
        conversation = _get(data, "payload", "conversation") or data.get("conversation") or {}
        ticket, email = conversation.get("id"), _get(conversation, "recipient", "handle")
    if ticket in (None, "") or not isinstance(email, str) or "@" not in email:
        return None
    return TicketOpened(str(ticket), email.strip())
