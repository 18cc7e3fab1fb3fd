"""``POST /webhooks/<gateway>[/<account>]``: verify, store, answer 200; a worker does the rest.

Nothing is stored for a delivery that fails verification (400). A
redelivered event id answers 200 so the gateway stops retrying, and
stores nothing new. A gateway whose webhook secret is not configured
answers 503, so the gateway keeps the event and retries once it is set.

``/webhooks/stripe`` and ``/webhooks/paypal`` serve the accounts configured
by environment variables (``default``); ``/webhooks/<gateway>/<name>``
serves an account added in the admin, checked with that account's own
signing secret, and its events are applied to that account's ledger.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from sqlmodel import select

from billbox.gateways.accounts import adapter_for_account
from billbox.gateways.base import GatewayDeclined, GatewayError, WebhookVerificationError
from billbox.gateways.paypal import PayPalGateway
from billbox.gateways.stripe import StripeGateway
from billbox.logs import get_logger
from billbox.models import GatewayAccount, GatewayKind
from billbox.sealed import SealedError
from billbox.webhooks import ENV_ACCOUNT_NAME, receive_webhook
from web.app import services

MAX_WEBHOOK_BODY = 256 * 1024

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = get_logger("web.webhooks")

_EXTENSION = "billbox.gateways"
_NOT_CONFIGURED = {
    "stripe": "stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)",
    "paypal": "paypal webhooks are not configured "
    "(PAYPAL_WEBHOOK_ID, PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET)",
}

Adapter = StripeGateway | PayPalGateway


@bp.record_once
def _build_adapters(state: BlueprintSetupState) -> None:
    """One adapter per gateway for the app's lifetime, from the app's settings.

    Admin-added accounts get theirs on first use, cached by the stored keys
    so a change in the admin is picked up by the next delivery.
    """
    app = state.app
    settings = app.extensions["billbox"].settings
    app.extensions[_EXTENSION] = {
        "stripe": StripeGateway.from_settings(settings),
        "paypal": PayPalGateway.from_settings(settings),
        "accounts": {},
        "lock": threading.Lock(),
    }


def _error(status: int, message: str) -> tuple[Any, int]:
    return jsonify({"error": message}), status


def _body() -> bytes | None:
    """The request body, or None when it is over the limit (checked before and while reading)."""
    length = request.content_length
    if length is not None and length > MAX_WEBHOOK_BODY:
        return None
    body = request.stream.read(MAX_WEBHOOK_BODY + 1)
    return None if len(body) > MAX_WEBHOOK_BODY else body


def _receive(gateway: str, adapter: Adapter, account_id: int | None) -> Any:
    if not adapter.can_verify:
        return _error(503, _NOT_CONFIGURED[gateway])
    body = _body()
    if body is None:
        return _error(400, "body too large")
    headers = dict(request.headers.items())
    try:
        verified = adapter.verify_webhook(headers, body)
    except (WebhookVerificationError, GatewayDeclined) as exc:  # Declined: PayPal said 4xx
        log.warning("webhook_rejected", gateway=gateway, reason=str(exc))
        return _error(400, "signature verification failed")
    except GatewayError as exc:  # PayPal unreachable, rate-limited, our credentials refused
        log.warning("webhook_unverifiable", gateway=gateway, reason=str(exc))
        return _error(503, f"cannot verify the signature with {gateway} now; retry later")
    result = receive_webhook(
        services().factory,
        adapter.name,
        verified,
        headers,
        body,
        request.remote_addr,
        account_id=account_id,
    )
    return jsonify({"received": True, "duplicate": not result.stored}), 200


@bp.post("/stripe")
def stripe_webhook() -> Any:
    return _receive("stripe", current_app.extensions[_EXTENSION]["stripe"], None)


@bp.post("/paypal")
def paypal_webhook() -> Any:
    """Verifying is a call to PayPal: PayPal down answers 503, nothing is stored, PayPal retries."""
    return _receive("paypal", current_app.extensions[_EXTENSION]["paypal"], None)


@bp.post("/<any(stripe, paypal):gateway>/<name>")
def account_webhook(gateway: str, name: str) -> Any:
    """An admin-added account's endpoint: 404 for a name no account has (nothing stored)."""
    if name == ENV_ACCOUNT_NAME:
        return _error(404, f"the {ENV_ACCOUNT_NAME!r} account's endpoint is /webhooks/{gateway}")
    with services().factory() as db:
        account = db.exec(
            select(GatewayAccount).where(
                GatewayAccount.gateway == GatewayKind(gateway), GatewayAccount.name == name
            )
        ).first()
    if account is None or account.id is None:
        return _error(404, f"no {gateway} account named {name!r}")
    cache = current_app.extensions[_EXTENSION]
    fingerprint = (account.credentials_encrypted, tuple(sorted(account.settings.items())))
    with cache["lock"]:
        cached = cache["accounts"].get(account.id)
    if cached is None or cached[0] != fingerprint:
        try:
            adapter = adapter_for_account(account, services().settings)
        except (GatewayError, SealedError) as exc:  # no keys yet, or sealed under another key
            log.warning("webhook_account_unusable", gateway=gateway, account=name, reason=str(exc))
            return _error(503, f"{gateway} account {name!r} has no usable keys: {exc}")
        with cache["lock"]:
            cache["accounts"][account.id] = cached = (fingerprint, adapter)
    return _receive(gateway, cached[1], account.id)
