"""``/sidebar/act/<token>``: one-click actions opened from a helpdesk's billing panel.

The panel is only rendered for a request the helpdesk signed, and it links
here with a token signed by us (itsdangerous, 15 minutes) naming that
helpdesk account and the customer. Holding the token is what allows acting,
without a Billbox login: it cannot be made without the secret key, it names
one customer, and it expires. The audit log names the helpdesk account as
the actor (``helpdesk:<name>``, kind ``api_token``).
"""

from __future__ import annotations

from decimal import InvalidOperation
from typing import Any

from flask import Blueprint, abort, render_template, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlmodel import col, select

from billbox import actions
from billbox.actions import ActionError, Actor, new_idempotency_key
from billbox.models import (
    ActorKind,
    Customer,
    HelpdeskAccount,
    Payment,
    PaymentStatus,
    Role,
    Subscription,
    SubscriptionStatus,
)
from billbox.money import Money
from web.app import services

bp = Blueprint("sidebar_actions", __name__)
SALT = "billbox.sidebar-act.v1"
MAX_AGE = 15 * 60
REFUNDABLE = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED)
CANCELLABLE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.PAST_DUE)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services().settings.secret(), salt=SALT)


def action_token(account_id: int, customer_id: int) -> str:
    return _serializer().dumps([account_id, customer_id])


def _grant(token: str) -> tuple[HelpdeskAccount, Customer]:
    try:
        account_id, customer_id = _serializer().loads(token, max_age=MAX_AGE)
    except SignatureExpired:
        abort(403, description="This action link expired; open the ticket's panel again.")
    except (BadSignature, ValueError, TypeError):
        abort(403, description="This action link is not valid.")
    with services().factory() as db:
        account = db.get(HelpdeskAccount, int(account_id))
        customer = db.get(Customer, int(customer_id))
        if account is None or customer is None or not account.active:
            abort(403, description="This helpdesk or customer is no longer there.")
        db.expunge(account)
        db.expunge(customer)
    return account, customer


@bp.route("/sidebar/act/<token>", methods=["GET", "POST"])
def act(token: str) -> Any:
    account, customer = _grant(token)
    message, error = "", ""
    if request.method == "POST":
        actor = Actor(f"helpdesk:{account.name}", Role.AGENT, ActorKind.API_TOKEN)
        try:
            message = _run(actor, customer).message
        except ActionError as exc:
            error = str(exc)
        except ValueError as exc:
            error = str(exc)
    with services().factory() as db:
        payments = db.exec(
            select(Payment)
            .where(Payment.customer_id == customer.id, col(Payment.status).in_(REFUNDABLE))
            .order_by(col(Payment.gateway_created_at).desc())
            .limit(20)
        ).all()
        subscriptions = db.exec(
            select(Subscription).where(
                Subscription.customer_id == customer.id,
                col(Subscription.status).in_(CANCELLABLE),
            )
        ).all()
        return render_template(
            "sidebar/act.html", customer=customer, account=account, payments=payments,
            subscriptions=subscriptions, message=message, error=error, new_key=new_idempotency_key,
        ), (422 if error else 200)  # fmt: skip


def _run(actor: Actor, customer: Customer) -> Any:
    factory, settings = services().factory, services().settings
    form = request.form
    reason = form.get("reason", "").strip()
    key = "sidebar:" + form.get("idempotency_key", "")[:100]
    target = int(form.get("target", "0") or 0)
    with factory() as db:
        if form.get("action") == "refund":
            payment = db.get(Payment, target)
            if payment is None or payment.customer_id != customer.id:
                abort(404)
            text = form.get("amount", "").strip().replace(",", ".")
            try:
                amount = Money.from_decimal(text, payment.currency).amount if text else None
            except (InvalidOperation, ValueError):
                raise ValueError(f"'{text}' is not an amount in {payment.currency}") from None
            currency = payment.currency
        elif form.get("action") == "cancel":
            subscription = db.get(Subscription, target)
            if subscription is None or subscription.customer_id != customer.id:
                abort(404)
        else:
            abort(400)
    if form.get("action") == "refund":
        return actions.refund(factory, settings, actor, target, amount, currency,
                              reason=reason, idempotency_key=key)  # fmt: skip
    return actions.cancel_subscription(
        factory, settings, actor, target, at_period_end=form.get("when") != "now",
        reason=reason, idempotency_key=key,
    )  # fmt: skip
