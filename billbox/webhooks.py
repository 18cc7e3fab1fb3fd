"""Webhook deliveries: store verified ones, then apply them to the ledger in a worker.

The request path (``web/webhooks.py``) verifies a delivery through the
gateway adapter and calls :func:`receive_webhook`, which inserts the
:class:`~billbox.models.WebhookEvent` and its ``webhook.process`` job in one
transaction; a redelivered event id hits the (gateway, event_id) unique
constraint and is dropped. :func:`process_webhook` is the job handler: it
parses the stored body, applies each normalised object through the ledger
(which refuses anything older than what it holds) and moves the row to
``processed``, ``ignored`` or ``failed`` (error and traceback kept on the row).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from billbox.customers import account_namespace, find_by_identity, link_gateway_customer
from billbox.errors import JobError, LedgerError, PermanentError
from billbox.gateways.base import GatewayParseError, Ignored, NormalisedObject, VerifiedEvent
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.jobs import JobContext
from billbox.ledger import apply_invoice, apply_payment, apply_refund, apply_subscription
from billbox.logs import get_logger
from billbox.models import Brand, GatewayAccount, GatewayKind, WebhookEvent, WebhookStatus, utcnow

WEBHOOK_JOB = "webhook.process"
ENV_ACCOUNT_NAME = "default"
#: Backoff is capped at an hour, so 40 attempts keep an event waiting (e.g. for its
#: first brand) for about a day and a half, close to Stripe's own 3-day retry window.
WEBHOOK_JOB_ATTEMPTS = 40

#: Request headers never stored on the row.
_UNSTORED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

log = get_logger("billbox.webhooks")


class NoBrandYet(JobError):
    """No brand exists to own the gateway account; the event waits and is retried."""


@dataclass(frozen=True)
class ReceiveResult:
    """``stored`` is False for a redelivery of an event id we already hold."""

    stored: bool
    event_row_id: int | None


def receive_webhook(
    factory: sessionmaker[Session],
    gateway: str,
    verified: VerifiedEvent,
    headers: Mapping[str, str],
    body: bytes,
    remote_addr: str | None,
    *,
    account_id: int | None = None,
) -> ReceiveResult:
    """Store a verified delivery and its processing job; return once it is committed.

    Deliveries arriving together in one process share a transaction (group
    commit, :mod:`billbox.webhook_store`); each caller still returns only
    after its own row is on disk. ``account_id`` names the admin-added
    account whose endpoint received it; None means the ``default`` account.
    """
    from billbox.webhook_store import Delivery, store_delivery

    kept = {k: v for k, v in headers.items() if k.lower() not in _UNSTORED_HEADERS}
    answer = store_delivery(
        factory, Delivery(gateway, verified, kept, body, remote_addr, account_id)
    )
    return ReceiveResult(stored=answer.stored, event_row_id=answer.event_row_id)


def ensure_env_account(session: Session, gateway: GatewayKind) -> GatewayAccount:
    """The environment-configured account ("default") for ``gateway``, created on first use.

    It belongs to the brand with the lowest id; with no brand yet the
    caller's job is retried later (:class:`NoBrandYet`).
    """
    statement = select(GatewayAccount).where(
        GatewayAccount.gateway == gateway, GatewayAccount.name == ENV_ACCOUNT_NAME
    )
    account = session.exec(statement).first()
    if account is not None:
        return account
    brand_id = session.exec(select(Brand.id).order_by(col(Brand.id)).limit(1)).first()
    if brand_id is None:
        raise NoBrandYet(
            f"no brand exists yet to own the {gateway.value} account; create a brand "
            "(admin or `billbox demo`) and the waiting webhook events will be processed"
        )
    try:
        with session.begin_nested():
            account = GatewayAccount(brand_id=brand_id, gateway=gateway, name=ENV_ACCOUNT_NAME)
            session.add(account)
    except IntegrityError:  # another worker created it first
        account = session.exec(statement).one()
    return account


def _parser(gateway: str) -> Callable[[bytes], list[NormalisedObject] | Ignored]:
    if gateway == GatewayKind.STRIPE.value:
        from billbox.gateways.stripe import parse_event

        return parse_event
    if gateway == GatewayKind.PAYPAL.value:
        from billbox.gateways.paypal import parse_event as parse_paypal_event

        return parse_paypal_event
    raise PermanentError(f"no webhook parser for gateway {gateway!r}")


_ORDER = (GatewayCustomer, GatewayInvoiceData, GatewaySubscription, GatewayPayment, GatewayRefund)


def apply_objects(
    session: Session, account: GatewayAccount, objects: list[NormalisedObject]
) -> None:
    """Apply normalised objects: customers, invoices, subscriptions, payments, refunds.

    A customer only referenced by id (its own event not seen yet) gets a
    bare gateway identity first, so payments link to it whatever order the
    events arrive in; its ``customer.*`` event fills in the details later.
    """
    ordered = sorted(objects, key=lambda o: _ORDER.index(type(o)))
    namespace = account_namespace(account)
    for obj in ordered:
        if isinstance(obj, GatewayCustomer):
            link_gateway_customer(session, account, obj)
            continue
        if isinstance(obj, GatewayRefund):
            apply_refund(session, account, obj)
            continue
        customer_id = obj.customer_external_id
        if customer_id and find_by_identity(session, namespace, customer_id) is None:
            link_gateway_customer(session, account, GatewayCustomer(customer_id, email=None))
        if isinstance(obj, GatewayInvoiceData):
            apply_invoice(session, account, obj)
        elif isinstance(obj, GatewaySubscription):
            apply_subscription(session, account, obj)
        else:
            apply_payment(session, account, obj)


def process_webhook(session: Session, job: JobContext) -> None:
    """Job handler for ``webhook.process``; a row that is no longer ``received`` is left alone.

    A body that cannot be parsed or applied marks the row ``failed`` and
    commits that *before* raising :class:`PermanentError`: ``run_job``
    rolls back the handler's transaction on error, and the failure must
    stay visible on the row for the replay tool.
    """
    event_row_id = int(str(job.payload["webhook_event_id"]))
    row = session.get(WebhookEvent, event_row_id, with_for_update=True)
    if row is None:
        raise PermanentError(f"webhook event {event_row_id} does not exist")
    if row.status != WebhookStatus.RECEIVED:
        return
    try:
        gateway = GatewayKind(row.gateway)
    except ValueError:
        raise PermanentError(f"unknown gateway {row.gateway!r}") from None
    account = (
        session.get(GatewayAccount, row.account_id)
        if row.account_id is not None  # delivered to /webhooks/<gateway>/<account name>
        else ensure_env_account(session, gateway)
    )
    if account is None:
        raise PermanentError(f"gateway account {row.account_id} of webhook event {row.id} is gone")
    row.account_id = account.id
    try:
        parsed = _parser(row.gateway)(row.body)
        if not isinstance(parsed, Ignored):
            with session.begin_nested():
                apply_objects(session, account, parsed)
    except (GatewayParseError, LedgerError, ValueError) as exc:
        row.status = WebhookStatus.FAILED
        row.error = f"{exc.__class__.__name__}: {exc}"[:2000]
        row.traceback = traceback.format_exc(limit=12)
        row.processed_at = utcnow()
        session.add(row)
        session.commit()
        log.error("webhook_failed", webhook_event_id=row.id, event_type=row.event_type)
        raise PermanentError(f"webhook event {row.id} failed: {row.error}") from exc
    if isinstance(parsed, Ignored):
        row.status = WebhookStatus.IGNORED
        log.info("webhook_ignored", webhook_event_id=row.id, reason=parsed.reason)
    else:
        row.status = WebhookStatus.PROCESSED
    row.processed_at = utcnow()
    session.add(row)
    log.info(
        "webhook_processed",
        webhook_event_id=row.id,
        event_type=row.event_type,
        status=row.status.value,
    )
