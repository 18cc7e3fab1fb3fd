"""``POST /webhooks/<gateway>``: verify, store, answer 200; a worker does the rest.

Nothing is stored for a delivery that fails verification (400). A
redelivered event id answers 200 so the gateway stops retrying, and
stores nothing new. A gateway whose webhook secret is not configured
answers 503, so the gateway keeps the event and retries once it is set.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState

from billbox.gateways.base import GatewayDeclined, GatewayError, WebhookVerificationError
from billbox.gateways.paypal import PayPalGateway
from billbox.gateways.stripe import StripeGateway
from billbox.logs import get_logger
from billbox.webhooks import receive_webhook
from web.app import services

MAX_WEBHOOK_BODY = 256 * 1024

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = get_logger("web.webhooks")

_EXTENSION = "billbox.gateways"


@bp.record_once
def _build_adapters(state: BlueprintSetupState) -> None:
    """One adapter per gateway for the app's lifetime, from the app's settings."""
    app = state.app
    settings = app.extensions["billbox"].settings
    app.extensions[_EXTENSION] = {
        "stripe": StripeGateway.from_settings(settings),
        "paypal": PayPalGateway.from_settings(settings),
    }


def _error(status: int, message: str) -> tuple[Any, int]:
    return jsonify({"error": message}), status


@bp.post("/stripe")
def stripe_webhook() -> Any:
    adapter: StripeGateway = current_app.extensions[_EXTENSION]["stripe"]
    if not adapter.can_verify:
        return _error(503, "stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)")
    length = request.content_length
    if length is not None and length > MAX_WEBHOOK_BODY:
        return _error(400, "body too large")
    body = request.stream.read(MAX_WEBHOOK_BODY + 1)
    if len(body) > MAX_WEBHOOK_BODY:
        return _error(400, "body too large")
    headers = dict(request.headers.items())
    try:
        verified = adapter.verify_webhook(headers, body)
    except WebhookVerificationError as exc:
        log.warning("webhook_rejected", gateway="stripe", reason=str(exc))
        return _error(400, "signature verification failed")
    result = receive_webhook(
        services().factory, adapter.name, verified, headers, body, request.remote_addr
    )
    return jsonify({"received": True, "duplicate": not result.stored}), 200


@bp.post("/paypal")
def paypal_webhook() -> Any:
    """Like the Stripe route, but verifying is a call to PayPal: PayPal down answers 503.

    Nothing is stored then either, and PayPal redelivers later.
    """
    adapter: PayPalGateway = current_app.extensions[_EXTENSION]["paypal"]
    if not adapter.can_verify:
        return _error(
            503,
            "paypal webhooks are not configured "
            "(PAYPAL_WEBHOOK_ID, PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET)",
        )
    length = request.content_length
    if length is not None and length > MAX_WEBHOOK_BODY:
        return _error(400, "body too large")
    body = request.stream.read(MAX_WEBHOOK_BODY + 1)
    if len(body) > MAX_WEBHOOK_BODY:
        return _error(400, "body too large")
    headers = dict(request.headers.items())
    try:
        verified = adapter.verify_webhook(headers, body)
    except (WebhookVerificationError, GatewayDeclined) as exc:  # Declined: PayPal said 4xx
        log.warning("webhook_rejected", gateway="paypal", reason=str(exc))
        return _error(400, "signature verification failed")
    except GatewayError as exc:  # unreachable, rate-limited, our credentials refused
        log.warning("webhook_unverifiable", gateway="paypal", reason=str(exc))
        return _error(503, "cannot verify the signature with PayPal now; retry later")
    result = receive_webhook(
        services().factory, adapter.name, verified, headers, body, request.remote_addr
    )
    return jsonify({"received": True, "duplicate": not result.stored}), 200
