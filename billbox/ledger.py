"""Apply normalised gateway objects to the ledger, idempotently and never backwards.

These are the kernel functions webhooks, ``billbox sync`` and ``billbox
demo`` all call. Each upserts by (account, gateway id) and refuses an
update whose gateway timestamp is older than what is stored, so events
arriving out of order cannot undo newer state. A refund that arrives
before its payment is stored with the payment's gateway id and linked
when the payment appears.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlmodel import Session, col, select

from billbox.customers import account_namespace, find_by_identity
from billbox.documents import ISSUE_DOCUMENT_JOB
from billbox.gateways.types import (
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.jobs import submit
from billbox.models import (
    PAID_PAYMENT_STATUSES,
    Brand,
    GatewayAccount,
    GatewayInvoice,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    utcnow,
)
from billbox.money import check_currency

T = TypeVar("T")


@dataclass(frozen=True)
class Applied(Generic[T]):
    """The stored row, and False when the data was older than what is stored.

    Data with the *same* gateway timestamp is applied again (a replay writes
    identical values): gateways stamp in whole seconds, so two genuinely
    different updates can share a timestamp and the later one must win.
    """

    row: T
    changed: bool


def _is_stale(stored: datetime | None, incoming: datetime | None) -> bool:
    return stored is not None and incoming is not None and incoming < stored


def _customer_id(session: Session, account: GatewayAccount, external_id: str | None) -> int | None:
    if not external_id:
        return None
    customer = find_by_identity(session, account_namespace(account), external_id)
    return customer.id if customer else None


def _account_id(account: GatewayAccount) -> int:
    assert account.id is not None
    return account.id


def apply_payment(
    session: Session, account: GatewayAccount, data: GatewayPayment
) -> Applied[Payment]:
    account_id = _account_id(account)
    row = session.exec(
        select(Payment).where(
            Payment.account_id == account_id, Payment.external_id == data.external_id
        )
    ).first()
    if row is not None and _is_stale(row.gateway_updated_at, data.updated_at):
        return Applied(row, False)
    was_paid = row is not None and row.status in PAID_PAYMENT_STATUSES
    invoice_id = None
    if data.invoice_external_id:
        invoice = _find(session, GatewayInvoice, account_id, data.invoice_external_id)
        invoice_id = invoice.id if invoice else None
    if row is None:
        row = Payment(
            account_id=account_id,
            external_id=data.external_id,
            status=data.status,
            currency=check_currency(data.currency),
            gateway_created_at=data.created_at,
        )
    row.customer_id = _customer_id(session, account, data.customer_external_id) or row.customer_id
    row.gateway_invoice_id = invoice_id or row.gateway_invoice_id
    row.status = data.status
    row.amount = data.amount
    row.amount_refunded = data.amount_refunded
    row.currency = check_currency(data.currency)
    row.description = data.description[:500]
    row.payment_method = data.payment_method
    row.card_last4 = data.card_last4
    row.payer_email = data.payer_email or row.payer_email  # PayPal captures carry no payer
    row.gateway_updated_at = data.updated_at or data.created_at
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    _link_orphan_refunds(session, row)
    _recompute_refunded(session, row)
    if not was_paid and row.status in PAID_PAYMENT_STATUSES:
        _submit_issue(session, {"payment_id": row.id})
    return Applied(row, True)


#: ``session.info`` key: set by backfills (``billbox demo``, ``billbox sync``) so that
#: history they mirror does not get documents issued (and emailed) years late.
BACKFILL = "billbox.backfill"


def mark_backfill(session: Session) -> Session:
    """Mark ``session`` as mirroring history: its payments and refunds queue no documents."""
    session.info[BACKFILL] = True
    return session


def _submit_issue(session: Session, payload: dict[str, int | None]) -> None:
    """Queue the document of a payment or refund in this transaction, once per source ever.

    Not in a backfill session (:func:`mark_backfill`): a receipt is news only
    when the payment is.
    """
    if session.info.get(BACKFILL):
        return
    ((name, source_id),) = payload.items()
    source = name.removesuffix("_id")
    submit(
        session,
        ISSUE_DOCUMENT_JOB,
        payload,
        dedupe_key=f"{ISSUE_DOCUMENT_JOB}:{source}:{source_id}",
    )


def _link_orphan_refunds(session: Session, payment: Payment) -> None:
    orphans = session.exec(
        select(Refund).where(
            Refund.account_id == payment.account_id,
            Refund.payment_external_id == payment.external_id,
            col(Refund.payment_id).is_(None),
        )
    ).all()
    for refund in orphans:
        refund.payment_id = payment.id
        session.add(refund)
    if orphans:
        session.flush()
    for refund in orphans:  # a refund that came first gets its credit note now
        if refund.status == RefundStatus.SUCCEEDED and _credit_notes_wanted(session, payment):
            _submit_issue(session, {"refund_id": refund.id})


_REFUNDABLE = (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)


def _recompute_refunded(session: Session, payment: Payment) -> None:
    """Derive the refunded total and status from the refunds we hold.

    Gateways differ (Stripe keeps a refunded PaymentIntent "succeeded"), so
    the ledger decides: with refund rows, the total is the sum of succeeded
    refunds (a refund that later fails stops counting); without any, the
    gateway's own figure stands. Disputed and unpaid payments keep their status.
    """
    refunds = session.exec(select(Refund).where(Refund.payment_id == payment.id)).all()
    if refunds:
        payment.amount_refunded = sum(
            r.amount for r in refunds if r.status == RefundStatus.SUCCEEDED
        )
    if payment.status in _REFUNDABLE:
        if payment.amount_refunded >= payment.amount > 0:
            payment.status = PaymentStatus.REFUNDED
        elif payment.amount_refunded > 0:
            payment.status = PaymentStatus.PARTIALLY_REFUNDED
        else:
            payment.status = PaymentStatus.SUCCEEDED
    session.add(payment)


def apply_refund(session: Session, account: GatewayAccount, data: GatewayRefund) -> Applied[Refund]:
    account_id = _account_id(account)
    row = _find(session, Refund, account_id, data.external_id)
    if row is not None and _is_stale(row.gateway_updated_at, data.updated_at):
        return Applied(row, False)
    was_succeeded = row is not None and row.status == RefundStatus.SUCCEEDED
    payment = _find(session, Payment, account_id, data.payment_external_id)
    if row is None:
        row = Refund(
            account_id=account_id,
            external_id=data.external_id,
            payment_external_id=data.payment_external_id,
            status=data.status,
            currency=check_currency(data.currency),
        )
    row.payment_id = payment.id if payment else None
    row.status = data.status
    row.amount = data.amount
    row.currency = check_currency(data.currency)
    row.reason = data.reason[:500]
    row.gateway_created_at = data.created_at
    row.gateway_updated_at = data.updated_at or data.created_at
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    if payment is not None:
        _recompute_refunded(session, payment)
    newly_succeeded = row.status == RefundStatus.SUCCEEDED and not was_succeeded
    if newly_succeeded and payment is not None and _credit_notes_wanted(session, payment):
        _submit_issue(session, {"refund_id": row.id})
    return Applied(row, True)


def _credit_notes_wanted(session: Session, payment: Payment) -> bool:
    account = session.get(GatewayAccount, payment.account_id)
    brand = session.get(Brand, account.brand_id) if account else None
    return brand is not None and brand.issue_credit_notes


def apply_subscription(
    session: Session, account: GatewayAccount, data: GatewaySubscription
) -> Applied[Subscription]:
    account_id = _account_id(account)
    row = _find(session, Subscription, account_id, data.external_id)
    if row is not None and _is_stale(row.gateway_updated_at, data.updated_at):
        return Applied(row, False)
    if row is None:
        row = Subscription(
            account_id=account_id,
            external_id=data.external_id,
            status=data.status,
            currency=check_currency(data.currency),
        )
    row.customer_id = _customer_id(session, account, data.customer_external_id) or row.customer_id
    row.status = data.status
    row.plan_name = data.plan_name
    row.price_external_id = data.price_external_id
    row.amount = data.amount
    row.currency = check_currency(data.currency)
    row.interval = data.interval
    row.current_period_end = data.current_period_end
    row.cancel_at_period_end = data.cancel_at_period_end
    row.canceled_at = data.canceled_at
    row.gateway_created_at = data.created_at
    row.gateway_updated_at = data.updated_at or data.created_at
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return Applied(row, True)


def apply_invoice(
    session: Session, account: GatewayAccount, data: GatewayInvoiceData
) -> Applied[GatewayInvoice]:
    account_id = _account_id(account)
    row = _find(session, GatewayInvoice, account_id, data.external_id)
    if row is not None and _is_stale(row.gateway_updated_at, data.updated_at):
        return Applied(row, False)
    if row is None:
        row = GatewayInvoice(
            account_id=account_id,
            external_id=data.external_id,
            status=data.status,
            currency=check_currency(data.currency),
        )
    row.customer_id = _customer_id(session, account, data.customer_external_id) or row.customer_id
    if data.subscription_external_id:
        subscription = _find(session, Subscription, account_id, data.subscription_external_id)
        row.subscription_id = subscription.id if subscription else row.subscription_id
    row.status = data.status
    row.number = data.number
    row.amount_due = data.amount_due
    row.amount_paid = data.amount_paid
    row.currency = check_currency(data.currency)
    row.due_at = data.due_at
    row.paid_at = data.paid_at
    row.hosted_url = data.hosted_url
    row.gateway_created_at = data.created_at
    row.gateway_updated_at = data.updated_at or data.created_at
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    _link_waiting_payments(session, row, data.payment_external_ids)
    return Applied(row, True)


def _link_waiting_payments(
    session: Session, invoice: GatewayInvoice, payment_external_ids: tuple[str, ...]
) -> None:
    """Payments the invoice names that arrived before it (events come in any order)."""
    if not payment_external_ids:
        return
    waiting = session.exec(
        select(Payment).where(
            Payment.account_id == invoice.account_id,
            col(Payment.external_id).in_(payment_external_ids),
            col(Payment.gateway_invoice_id).is_(None),
        )
    ).all()
    for payment in waiting:
        payment.gateway_invoice_id = invoice.id
        session.add(payment)


M = TypeVar("M", Payment, Refund, Subscription, GatewayInvoice)


def _find(session: Session, model: type[M], account_id: int, external_id: str) -> M | None:
    return session.exec(
        select(model).where(
            model.account_id == account_id,
            model.external_id == external_id,
        )
    ).first()
