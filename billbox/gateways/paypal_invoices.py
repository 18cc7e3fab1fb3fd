"""PayPal invoicing v2: map invoices, send (finalize) them, list them for sync.

``paypal-server-sdk`` has no invoicing API, so these are documented REST
calls through :meth:`PayPalClient.rest` (same token, retry and error
mapping as the SDK calls):

- ``POST /v2/invoicing/invoices/{id}/send`` finalizes a draft. With
  ``send_to_recipient: false`` PayPal moves it out of draft without
  emailing anyone (the "share link" flow), which is what ``finalize
  without send`` means here. PayPal documents that resending has no
  effect, so a repeated call is harmless; the idempotency key still goes
  along as ``PayPal-Request-Id``.
- ``GET /v2/invoicing/invoices/{id}`` re-reads the invoice afterwards (send
  answers only a link).
- ``GET /v2/invoicing/invoices?page=&page_size=&total_required=true`` for
  sync; PayPal's list has no date filter, so ``since`` is applied here.

Status mapping: DRAFT → draft; SENT, SCHEDULED, UNPAID, PARTIALLY_PAID,
PAYMENT_PENDING → open; PAID, MARKED_AS_PAID and the refunded states →
paid (refunds are their own objects); CANCELLED → void. A PayPal invoice
names its recipient by email only, never by payer id, so it carries no
``customer_external_id``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from billbox.gateways.base import GatewayError, NormalisedObject, Page
from billbox.gateways.paypal_mapping import Json, opt_str, parse_time, req_str, to_minor
from billbox.gateways.types import GatewayInvoiceData
from billbox.models import GatewayInvoiceStatus

if TYPE_CHECKING:  # the SDK is imported only by code that calls PayPal
    from billbox.gateways.paypal_client import PayPalClient

INVOICES_PATH = "/v2/invoicing/invoices"

INVOICE_STATUS = {
    "DRAFT": GatewayInvoiceStatus.DRAFT,
    "SENT": GatewayInvoiceStatus.OPEN,
    "SCHEDULED": GatewayInvoiceStatus.OPEN,
    "UNPAID": GatewayInvoiceStatus.OPEN,
    "PARTIALLY_PAID": GatewayInvoiceStatus.OPEN,
    "PAYMENT_PENDING": GatewayInvoiceStatus.OPEN,
    "PAID": GatewayInvoiceStatus.PAID,
    "MARKED_AS_PAID": GatewayInvoiceStatus.PAID,
    "REFUNDED": GatewayInvoiceStatus.PAID,
    "PARTIALLY_REFUNDED": GatewayInvoiceStatus.PAID,
    "MARKED_AS_REFUNDED": GatewayInvoiceStatus.PAID,
    "CANCELLED": GatewayInvoiceStatus.VOID,
}


def invoice_to_invoice(obj: Json, fallback: datetime) -> GatewayInvoiceData:
    """One invoice; an event resource wrapping it as ``{"invoice": {…}}`` is unwrapped."""
    if isinstance(obj.get("invoice"), dict) and "detail" not in obj:
        obj = obj["invoice"]
    status_text = req_str(obj, "status")
    status = INVOICE_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown invoice status {status_text!r}")
    amount, currency = to_minor(obj.get("amount"))
    detail = obj.get("detail") if isinstance(obj.get("detail"), dict) else {}
    assert isinstance(detail, dict)
    metadata = detail.get("metadata") if isinstance(detail.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    payments = obj.get("payments") if isinstance(obj.get("payments"), dict) else {}
    assert isinstance(payments, dict)
    paid = 0
    if isinstance(payments.get("paid_amount"), dict):
        paid, _ = to_minor(payments["paid_amount"])
    term = detail.get("payment_term")
    due = _date(term.get("due_date")) if isinstance(term, dict) else None
    transactions = payments.get("transactions")
    paid_dates = [
        _date(t.get("payment_date"))
        for t in (transactions if isinstance(transactions, list) else [])
        if isinstance(t, dict)
    ]
    url = opt_str(metadata.get("recipient_view_url"))
    return GatewayInvoiceData(
        external_id=req_str(obj, "id"),
        customer_external_id=None,
        status=status,
        amount_due=amount,
        amount_paid=paid,
        currency=currency,
        number=opt_str(detail.get("invoice_number")),
        due_at=due,
        paid_at=max((d for d in paid_dates if d), default=None),
        hosted_url=url[:500] if url else None,
        created_at=parse_time(metadata.get("create_time")),
        updated_at=parse_time(metadata.get("last_update_time")) or fallback,
    )


def send_invoice(
    client: PayPalClient, invoice_id: str, *, send: bool, idempotency_key: str
) -> GatewayInvoiceData:
    """Send (or, with ``send=False``, finalize for a share link) and re-read the invoice."""
    path = f"{INVOICES_PATH}/{quote(invoice_id, safe='')}"
    notification = {"send_to_invoicer": False, "send_to_recipient": send}
    client.rest(
        "POST",
        f"{path}/send",
        json.dumps(notification).encode(),
        {"PayPal-Request-Id": idempotency_key},
    )
    invoice = client.rest("GET", path)
    if invoice is None:
        raise GatewayError("paypal: empty answer where an invoice was expected")
    return invoice_to_invoice(invoice, datetime.now(UTC))


def invoices_page(
    client: PayPalClient, cursor: str | None, *, since: datetime | None, limit: int
) -> Page:
    """One page of the invoice list (page size at most 100); the cursor is the page number."""
    page = int(cursor) if cursor and cursor.isdigit() else 1
    size = max(1, min(limit, 100))
    answer = client.rest("GET", f"{INVOICES_PATH}?page={page}&page_size={size}&total_required=true")
    answer = answer or {}
    now = datetime.now(UTC)
    objects: list[NormalisedObject] = []
    items: Any = answer.get("items")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            invoice = invoice_to_invoice(item, now)
            if since is None or invoice.created_at is None or invoice.created_at >= since:
                objects.append(invoice)
    total = answer.get("total_pages")
    more = isinstance(total, int) and page < total
    return Page(objects, str(page + 1) if more else None)


def _date(value: Any) -> datetime | None:
    """PayPal's ``date_no_time`` (``2026-01-31``, sometimes with a zone suffix) as UTC midnight."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
