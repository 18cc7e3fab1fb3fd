"""Sync listing for PayPal: windows over the Transaction Search API, and a resumable cursor.

PayPal has no "list captures" call. ``GET /v1/reporting/transactions``
lists every balance-affecting transaction, at most 31 days per request
and three years back, page by page. A backfill walks 31-day windows from
``since`` (or three years ago) to now; the cursor names the window start
and the page, so an interrupted sync resumes exactly where it stopped.
PayPal notes that a transaction can take up to three hours to appear.

Transaction rows map by event code (PayPal's "Transaction event codes"):
``T00xx`` are payments (the transaction id is the capture or sale id),
``T1106``/``T1107`` are reversals/refunds whose ``paypal_reference_id``
names the original payment. Status letters: S success, P pending,
D denied, V reversed. The payer block (``payer_info.account_id`` is the
payer id) gives the customers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from billbox.gateways.base import NormalisedObject, ObjectKind, Page
from billbox.gateways.paypal_mapping import (
    Json,
    format_time,
    opt_str,
    parse_time,
    payer_to_customer,
    subscription_to_subscription,
    to_minor,
)
from billbox.gateways.types import GatewayCustomer, GatewayPayment, GatewayRefund
from billbox.models import PaymentStatus, RefundStatus

if TYPE_CHECKING:  # the SDK is imported only by code that calls PayPal
    from billbox.gateways.paypal_client import PayPalClient, SdkCall

WINDOW = timedelta(days=31)
HISTORY = timedelta(days=3 * 365)
REFUND_CODES = frozenset({"T1106", "T1107"})

_PAYMENT_STATUS = {
    "S": PaymentStatus.SUCCEEDED,
    "P": PaymentStatus.PENDING,
    "D": PaymentStatus.FAILED,
    "V": PaymentStatus.REFUNDED,
}
_REFUND_STATUS = {
    "S": RefundStatus.SUCCEEDED,
    "P": RefundStatus.PENDING,
    "D": RefundStatus.FAILED,
    "V": RefundStatus.CANCELED,
}


@dataclass(frozen=True)
class WindowCursor:
    """Where a transaction-search walk stands: window start (epoch seconds) and 1-based page."""

    start: int
    page: int

    def encode(self) -> str:
        return f"w{self.start}:p{self.page}"

    @classmethod
    def decode(cls, cursor: str) -> WindowCursor:
        try:
            start_text, page_text = cursor.split(":", 1)
            if not (start_text.startswith("w") and page_text.startswith("p")):
                raise ValueError
            return cls(start=int(start_text[1:]), page=max(1, int(page_text[1:])))
        except ValueError:
            raise ValueError(f"not a PayPal sync cursor: {cursor!r}") from None

    @classmethod
    def first(cls, since: datetime | None, now: datetime) -> WindowCursor:
        start = max(since, now - HISTORY) if since else now - HISTORY
        return cls(start=int(start.timestamp()), page=1)

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        start = datetime.fromtimestamp(self.start, UTC)
        return start, min(start + WINDOW, now)

    def after(self, total_pages: int, now: datetime) -> WindowCursor | None:
        """The next page of this window, else the next window, else None (caught up)."""
        if self.page < total_pages:
            return WindowCursor(self.start, self.page + 1)
        _, end = self.window(now)
        if end >= now:
            return None
        return WindowCursor(int(end.timestamp()), 1)


def transactions_page(
    client: PayPalClient,
    kind: ObjectKind,
    cursor: str | None,
    *,
    since: datetime | None,
    limit: int,
) -> Page:
    """One Transaction Search page (``page_size`` at most 500, PayPal's cap) as ``kind`` objects."""
    now = datetime.now(UTC)
    position = WindowCursor.decode(cursor) if cursor else WindowCursor.first(since, now)
    start, end = position.window(now)
    if end <= start:  # ``since`` is in the future: nothing to list yet
        return Page([], None)
    options = {
        "start_date": format_time(start),
        "end_date": format_time(end),
        "fields": "transaction_info,payer_info",
        "page_size": max(1, min(limit, 500)),
        "page": position.page,
    }
    answer = client.get_object(lambda c: c.transaction_search.search_transactions(options))
    total = answer.get("total_pages")
    following = position.after(total if isinstance(total, int) else 1, now)
    return Page(transactions_to_objects(answer, kind), following.encode() if following else None)


def subscriptions_page(
    client: PayPalClient, cursor: str | None, *, since: datetime | None, limit: int
) -> Page:
    """One page of ``GET /v1/billing/subscriptions`` (page size at most 20); cursor = page."""
    page = int(cursor) if cursor and cursor.isdigit() else 1
    options: dict[str, Any] = {"page_size": max(1, min(limit, 20)), "page": page}
    if since is not None:
        options["created_after"] = format_time(since)
    answer = client.get_object(lambda c: c.subscriptions.list_subscriptions(options))
    items = answer.get("subscriptions")
    now = datetime.now(UTC)
    objects: list[NormalisedObject] = []
    plans: dict[str, Json] = {}  # the list does not price subscriptions; their plans do
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        subscriber = payer_to_customer(item.get("subscriber"))
        objects.extend([subscriber] if subscriber else [])
        plan_id = opt_str(item.get("plan_id"))
        if plan_id and plan_id not in plans:
            plans[plan_id] = client.get_object(_plan_getter(plan_id))
        plan = plans.get(plan_id) if plan_id else None
        objects.append(subscription_to_subscription(item, now, plan))
    total = answer.get("total_pages")
    more = isinstance(total, int) and page < total
    return Page(objects, str(page + 1) if more else None)


def _plan_getter(plan_id: str) -> SdkCall:
    return lambda c: c.subscriptions.get_billing_plan(plan_id)


def transactions_to_objects(answer: Json, kind: ObjectKind) -> list[NormalisedObject]:
    """The ``kind`` objects in one Transaction Search answer (``transaction_details``)."""
    details = answer.get("transaction_details")
    out: list[NormalisedObject] = []
    seen: set[str] = set()
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict) or not isinstance(detail.get("transaction_info"), dict):
            continue
        info: Json = detail["transaction_info"]
        code = opt_str(info.get("transaction_event_code")) or ""
        if kind == ObjectKind.PAYMENT and code.startswith("T00"):
            out.append(_payment(info, _payer(detail.get("payer_info"))))
        elif kind == ObjectKind.REFUND and code in REFUND_CODES:
            out.append(_refund(info))
        elif kind == ObjectKind.CUSTOMER and code.startswith("T00"):
            customer = _payer(detail.get("payer_info"))
            if customer is not None and customer.external_id not in seen:
                seen.add(customer.external_id)
                out.append(customer)
    return out


def _payment(info: Json, payer: GatewayCustomer | None) -> GatewayPayment:
    amount, currency = to_minor(info.get("transaction_amount"))
    created = parse_time(info.get("transaction_initiation_date"))
    if created is None:
        raise ValueError("transaction has no transaction_initiation_date")
    status = _PAYMENT_STATUS.get(
        opt_str(info.get("transaction_status")) or "", PaymentStatus.PENDING
    )
    return GatewayPayment(
        external_id=_id(info),
        customer_external_id=payer.external_id if payer else None,
        status=status,
        amount=amount,
        currency=currency,
        created_at=created,
        updated_at=parse_time(info.get("transaction_updated_date")) or created,
        amount_refunded=amount if status == PaymentStatus.REFUNDED else 0,
        description=opt_str(info.get("invoice_id"))
        or opt_str(info.get("transaction_subject"))
        or "",
        payment_method="paypal",
        payer_email=payer.email if payer else None,
    )


def _refund(info: Json) -> GatewayRefund:
    amount, currency = to_minor(info.get("transaction_amount"))
    reference = opt_str(info.get("paypal_reference_id"))
    if reference is None:
        raise ValueError(f"refund transaction {_id(info)} names no paypal_reference_id")
    created = parse_time(info.get("transaction_initiation_date"))
    return GatewayRefund(
        external_id=_id(info),
        payment_external_id=reference,
        status=_REFUND_STATUS.get(
            opt_str(info.get("transaction_status")) or "", RefundStatus.PENDING
        ),
        amount=abs(amount),  # refunds are listed as negative amounts
        currency=currency,
        created_at=created,
        updated_at=parse_time(info.get("transaction_updated_date")) or created,
        reason=opt_str(info.get("transaction_note")) or "",
    )


def _payer(value: Any) -> GatewayCustomer | None:
    if not isinstance(value, dict):
        return None
    payer_id = opt_str(value.get("account_id"))
    if payer_id is None:
        return None
    name = value.get("payer_name") if isinstance(value.get("payer_name"), dict) else {}
    assert isinstance(name, dict)
    full = " ".join(p for p in (opt_str(name.get("given_name")), opt_str(name.get("surname"))) if p)
    country = opt_str(value.get("country_code"))
    return GatewayCustomer(
        external_id=payer_id,
        email=opt_str(value.get("email_address")),
        name=(full or opt_str(name.get("alternate_full_name")) or "")[:200],
        country=country.upper() if country else None,
    )


def _id(info: Json) -> str:
    value = opt_str(info.get("transaction_id"))
    if value is None:
        raise ValueError("transaction has no transaction_id")
    return value
