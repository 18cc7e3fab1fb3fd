"""The ledger's own view of gateway objects; adapters return these, never SDK objects.

Amounts are integers in the currency's minor unit; ``updated_at`` is the
gateway's own last-change time (or a version-derived timestamp) used to
refuse stale updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billbox.models import GatewayInvoiceStatus, PaymentStatus, RefundStatus, SubscriptionStatus


@dataclass(frozen=True)
class GatewayCustomer:
    external_id: str
    email: str | None
    name: str = ""
    country: str | None = None
    address: str = ""
    locale: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class GatewayPayment:
    external_id: str
    customer_external_id: str | None
    status: PaymentStatus
    amount: int
    currency: str
    created_at: datetime
    updated_at: datetime | None = None
    amount_refunded: int = 0
    description: str = ""
    payment_method: str = ""
    card_last4: str | None = None
    payer_email: str | None = None
    invoice_external_id: str | None = None


@dataclass(frozen=True)
class GatewayRefund:
    external_id: str
    payment_external_id: str
    status: RefundStatus
    amount: int
    currency: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class GatewaySubscription:
    external_id: str
    customer_external_id: str | None
    status: SubscriptionStatus
    plan_name: str
    amount: int
    currency: str
    interval: str = "month"
    price_external_id: str | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class GatewayInvoiceData:
    external_id: str
    customer_external_id: str | None
    status: GatewayInvoiceStatus
    amount_due: int
    amount_paid: int
    currency: str
    number: str | None = None
    subscription_external_id: str | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None
    hosted_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: The payments that settled it, as the gateway names them: how a payment
    #: that arrived before its invoice gets linked once the invoice does.
    payment_external_ids: tuple[str, ...] = ()
