"""``POST /api/v1/actions/<action>``: the agent actions for scripts and helpdesk apps.

The body is JSON: ``idempotency_key`` and ``reason`` always, ``target``
(the ledger id of the payment, subscription, customer or gateway invoice)
and the action's own fields. Amounts are integer minor units. The token's
name is the actor in the audit log.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from billbox import actions
from billbox.actions import (
    ActionDeclined,
    ActionError,
    ActionRefused,
    ActionResult,
    ActionRetryable,
    Actor,
)
from billbox.models import ActorKind, Payment
from web.api import api_token, bp, error
from web.app import services

ACTIONS = frozenset(
    {"refund", "capture", "void", "cancel_subscription", "create_subscription", "apply_coupon",
     "add_tax_id", "finalize_invoice"}
)  # fmt: skip


class BadBody(ValueError):
    pass


def _int(body: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadBody(f"'{name}' must be an integer")
    return value


def _str(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadBody(f"'{name}' must be a non-empty string")
    return value.strip()


def _run(name: str, body: dict[str, Any], actor: Actor, reason: str, key: str) -> ActionResult:
    factory, settings = services().factory, services().settings
    target = _int(body, "target")
    assert target is not None
    if name == "refund":
        with factory() as db:
            payment = db.get(Payment, target)
            currency = payment.currency if payment is not None else ""
        return actions.refund(
            factory, settings, actor, target, _int(body, "amount", required=False),
            _str(body, "currency", required=False) or currency, reason=reason, idempotency_key=key,
        )  # fmt: skip
    if name == "capture":
        return actions.capture(
            factory, settings, actor, target, _int(body, "amount", required=False),
            reason=reason, idempotency_key=key,
        )  # fmt: skip
    if name == "void":
        return actions.void(factory, settings, actor, target, reason=reason, idempotency_key=key)
    if name == "cancel_subscription":
        at_period_end = body.get("at_period_end", True)
        if not isinstance(at_period_end, bool):
            raise BadBody("'at_period_end' must be true or false")
        return actions.cancel_subscription(
            factory, settings, actor, target, at_period_end=at_period_end, reason=reason,
            idempotency_key=key,
        )  # fmt: skip
    if name == "apply_coupon":
        coupon = _str(body, "coupon")
        assert coupon is not None
        return actions.apply_coupon(
            factory, settings, actor, target, coupon, reason=reason, idempotency_key=key
        )
    if name == "create_subscription":
        account, price = _int(body, "account"), _str(body, "price")
        assert account is not None and price is not None
        return actions.create_subscription(
            factory, settings, actor, target, account, price,
            coupon=_str(body, "coupon", required=False), reason=reason, idempotency_key=key,
        )  # fmt: skip
    if name == "add_tax_id":
        account, value = _int(body, "account"), _str(body, "tax_id")
        assert account is not None and value is not None
        return actions.add_tax_id(
            factory, settings, actor, target, account, value,
            country=_str(body, "country", required=False), reason=reason, idempotency_key=key,
        )  # fmt: skip
    send = body.get("send", False)
    if not isinstance(send, bool):
        raise BadBody("'send' must be true or false")
    return actions.finalize_invoice(
        factory, settings, actor, target, send=send, reason=reason, idempotency_key=key
    )


@bp.post("/actions/<name>")
def act(name: str) -> Any:
    if name not in ACTIONS:
        return error(404, "not_found", f"no action {name!r}; actions: {sorted(ACTIONS)}")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "bad_request", "send a JSON object")
    token = api_token()
    actor = Actor(token.name, token.role, ActorKind.API_TOKEN)
    try:
        key = _str(body, "idempotency_key")
        reason = _str(body, "reason")
        assert key is not None and reason is not None
        result = _run(name, body, actor, reason, f"api:{token.name}:{key}"[:128])
    except BadBody as exc:
        return error(400, "bad_request", str(exc))
    except ActionRetryable as exc:
        response = error(503, "retry", str(exc))
        if exc.retry_after:
            response.headers["Retry-After"] = str(int(exc.retry_after) + 1)
        return response
    except ActionDeclined as exc:
        return error(422, exc.code or "declined", str(exc))
    except ActionRefused as exc:
        return error(409 if "in progress" in str(exc) else 422, "refused", str(exc))
    except ActionError as exc:
        return error(422, "refused", str(exc))
    return jsonify(
        action_id=result.action_id, action=result.action, target_kind=result.target_kind,
        target_external_id=result.target_external_id, response_id=result.response_id,
        amount=result.amount, currency=result.currency, replayed=result.replayed,
        message=result.message,
    )  # fmt: skip
