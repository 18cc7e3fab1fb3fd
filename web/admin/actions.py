"""One-click actions from the ticket's billing panel, through ``billbox.actions``.

Each form carries an idempotency key minted when the page was rendered,
so a double click (or a resubmitted form) acts once. The reason is
required. On success the outcome becomes an internal note on the ticket
(author: the agent), next to the audit row ``billbox.actions`` wrote; a
refusal is shown to the agent and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import InvalidOperation
from typing import Any

from flask import abort, flash, redirect, request, url_for
from sqlmodel import Session

from billbox import actions
from billbox.actions import ActionError, ActionResult, Actor
from billbox.models import (
    Customer,
    GatewayInvoice,
    Payment,
    Role,
    Subscription,
    Ticket,
)
from billbox.money import Money
from billbox.ticket_notes import add_note
from web.admin import bp
from web.app import services
from web.auth import current_user, require_roles

STAFF = (Role.ADMIN, Role.AGENT, Role.FINANCE)
MAX_KEY = 100


class FormError(ValueError):
    """A form value the agent must correct (shown as is)."""


def _amount(currency: str) -> int | None:
    """Optional amount in major units (``12.50``) → minor units; empty means "all"."""
    text = request.form.get("amount", "").strip().replace(",", ".")
    if not text:
        return None
    try:
        value = Money.from_decimal(text, currency).amount
    except (InvalidOperation, ValueError) as exc:
        raise FormError(f"'{text}' is not an amount in {currency}: {exc}") from None
    if value <= 0:
        raise FormError("the amount must be more than zero")
    return value


def _owned(db: Session, model: type[Any], object_id: int, ticket: Ticket) -> Any:
    """The object, which must belong to the ticket's customer (no acting on other customers)."""
    row = db.get(model, object_id)
    if row is None or ticket.customer_id is None or row.customer_id != ticket.customer_id:
        abort(404)
    return row


Call = Callable[[Actor, str, str], ActionResult]


def _prepare(name: str, db: Session, ticket: Ticket) -> Call:
    """Validate the form for action ``name`` and return the call to make."""
    factory, settings = services().factory, services().settings
    target = request.form.get("target", "")
    if not target.isdigit():
        abort(400, description="missing target")
    target_id = int(target)
    if name in ("refund", "capture", "void"):
        payment = _owned(db, Payment, target_id, ticket)
        if name == "void":
            return lambda actor, reason, key: actions.void(
                factory, settings, actor, target_id, reason=reason, idempotency_key=key
            )
        amount = _amount(payment.currency)
        if name == "refund":
            return lambda actor, reason, key: actions.refund(
                factory, settings, actor, target_id, amount, payment.currency,
                reason=reason, idempotency_key=key,
            )  # fmt: skip
        return lambda actor, reason, key: actions.capture(
            factory, settings, actor, target_id, amount, reason=reason, idempotency_key=key
        )
    if name in ("cancel_subscription", "apply_coupon"):
        _owned(db, Subscription, target_id, ticket)
        if name == "cancel_subscription":
            at_period_end = request.form.get("when") != "now"
            return lambda actor, reason, key: actions.cancel_subscription(
                factory, settings, actor, target_id, at_period_end=at_period_end,
                reason=reason, idempotency_key=key,
            )  # fmt: skip
        coupon = request.form.get("coupon", "").strip()
        if not coupon:
            raise FormError("enter the coupon code")
        return lambda actor, reason, key: actions.apply_coupon(
            factory, settings, actor, target_id, coupon, reason=reason, idempotency_key=key
        )
    if name in ("create_subscription", "add_tax_id"):
        customer = db.get(Customer, ticket.customer_id) if ticket.customer_id else None
        account = request.form.get("account", "")
        if customer is None or customer.id != target_id or not account.isdigit():
            abort(404)
        if name == "create_subscription":
            price = request.form.get("price", "").strip()
            new_coupon = request.form.get("coupon", "").strip() or None
            if not price:
                raise FormError("enter the price or plan id")
            return lambda actor, reason, key: actions.create_subscription(
                factory, settings, actor, target_id, int(account), price, coupon=new_coupon,
                reason=reason, idempotency_key=key,
            )  # fmt: skip
        value = request.form.get("tax_id", "").strip()
        country = request.form.get("country", "").strip().upper() or None
        if not value:
            raise FormError("enter the tax id")
        return lambda actor, reason, key: actions.add_tax_id(
            factory, settings, actor, target_id, int(account), value, country=country,
            reason=reason, idempotency_key=key,
        )  # fmt: skip
    if name == "finalize_invoice":
        _owned(db, GatewayInvoice, target_id, ticket)
        send = request.form.get("send") == "1"
        return lambda actor, reason, key: actions.finalize_invoice(
            factory, settings, actor, target_id, send=send, reason=reason, idempotency_key=key
        )
    abort(404)


@bp.post("/tickets/<int:ticket_id>/actions/<name>")
@require_roles(*STAFF)
def act(ticket_id: int, name: str) -> Any:
    user = current_user()
    assert user is not None
    back = url_for("admin.ticket", ticket_id=ticket_id) + "#billing"
    reason = request.form.get("reason", "").strip()[:1000]
    key = request.form.get("idempotency_key", "").strip()[:MAX_KEY]
    if not key:
        abort(400, description="missing idempotency key; reload the page")
    with services().factory() as db:
        ticket = db.get(Ticket, ticket_id)
        if ticket is None:
            abort(404)
        try:
            if not reason:
                raise FormError("give a reason; it goes into the audit log")
            call = _prepare(name, db, ticket)
        except FormError as exc:
            flash(str(exc), "error")
            return redirect(back)
    actor = Actor(user.email, user.role)
    try:
        result = call(actor, reason, f"ui:{key}")
    except ActionError as exc:
        flash(str(exc), "error")
        return redirect(back)
    if not result.replayed:
        with services().factory() as db:
            add_note(db, ticket_id, user.email, f"{result.message}\nReason: {reason}")
            db.commit()
    flash(result.message, "ok")
    return redirect(back)
