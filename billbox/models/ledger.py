"""The ledger: gateway objects mirrored in our own types.

Every row keeps the gateway's own id (unique per account) and the
gateway's own last-change time, so an event that arrives late can be
recognised as older and never moves the ledger backwards.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import (
    UTCDateTime,
    created_at_field,
    currency_field,
    enum_column,
    json_field,
    money_field,
    ts_field,
)
from billbox.models.enums import (
    GatewayInvoiceStatus,
    GatewayKind,
    PaymentStatus,
    RefundStatus,
    SubscriptionStatus,
)


class GatewayAccount(SQLModel, table=True):
    """A connection to one gateway account, owned by a brand."""

    __tablename__ = "gateway_account"
    __table_args__ = (sa.UniqueConstraint("gateway", "name", name="uq_gateway_account"),)

    id: int | None = Field(default=None, primary_key=True)
    brand_id: int = Field(foreign_key="brand.id", index=True)
    gateway: GatewayKind = Field(sa_column=enum_column(GatewayKind, nullable=False))
    name: str = Field(max_length=64)
    live_mode: bool = False
    external_account_id: str | None = Field(default=None, max_length=128)
    # Fernet tokens, key derived from BILLBOX_SECRET_KEY; never plain text.
    credentials_encrypted: str | None = Field(default=None, sa_type=sa.Text)
    # What is not secret (publishable key, PayPal client id, API base), shown in the admin.
    settings: dict[str, str] = json_field()
    sync_cursor: dict[str, str] = json_field()
    # The admin's "test connection": when it last worked, and the gateway's last refusal.
    last_ok_at: datetime | None = ts_field()
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = created_at_field()


class Payment(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("account_id", "external_id", name="uq_payment_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="gateway_account.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    gateway_invoice_id: int | None = Field(default=None, foreign_key="gateway_invoice.id")
    external_id: str = Field(max_length=128, index=True)
    status: PaymentStatus = Field(sa_column=enum_column(PaymentStatus, nullable=False, index=True))
    amount: int = money_field()
    amount_refunded: int = money_field()
    currency: str = currency_field()
    description: str = Field(default="", max_length=500)
    payment_method: str = Field(default="", max_length=64, description="e.g. visa, paypal")
    card_last4: str | None = Field(default=None, max_length=4)
    payer_email: str | None = Field(default=None, max_length=254)
    gateway_created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    gateway_updated_at: datetime | None = ts_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class Refund(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("account_id", "external_id", name="uq_refund_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="gateway_account.id", index=True)
    payment_id: int | None = Field(default=None, foreign_key="payment.id", index=True)
    # Kept so a refund that arrives before its payment can be linked later.
    payment_external_id: str = Field(max_length=128, index=True)
    external_id: str = Field(max_length=128)
    status: RefundStatus = Field(sa_column=enum_column(RefundStatus, nullable=False))
    amount: int = money_field()
    currency: str = currency_field()
    reason: str = Field(default="", max_length=500)
    gateway_created_at: datetime | None = ts_field()
    gateway_updated_at: datetime | None = ts_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class Subscription(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("account_id", "external_id", name="uq_subscription_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="gateway_account.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    external_id: str = Field(max_length=128, index=True)
    status: SubscriptionStatus = Field(sa_column=enum_column(SubscriptionStatus, nullable=False))
    plan_name: str = Field(default="", max_length=200)
    price_external_id: str | None = Field(default=None, max_length=128)
    amount: int = money_field()
    currency: str = currency_field()
    interval: str = Field(default="month", max_length=16)
    current_period_end: datetime | None = ts_field()
    cancel_at_period_end: bool = False
    canceled_at: datetime | None = ts_field()
    gateway_created_at: datetime | None = ts_field()
    gateway_updated_at: datetime | None = ts_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class GatewayInvoice(SQLModel, table=True):
    """An invoice as the gateway keeps it (Stripe invoice, PayPal invoice/bill)."""

    __tablename__ = "gateway_invoice"
    __table_args__ = (sa.UniqueConstraint("account_id", "external_id", name="uq_gw_invoice_ext"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="gateway_account.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    subscription_id: int | None = Field(default=None, foreign_key="subscription.id")
    external_id: str = Field(max_length=128, index=True)
    number: str | None = Field(default=None, max_length=64, index=True)
    status: GatewayInvoiceStatus = Field(
        sa_column=enum_column(GatewayInvoiceStatus, nullable=False, index=True)
    )
    amount_due: int = money_field()
    amount_paid: int = money_field()
    currency: str = currency_field()
    due_at: datetime | None = ts_field()
    paid_at: datetime | None = ts_field()
    hosted_url: str | None = Field(default=None, max_length=500)
    gateway_created_at: datetime | None = ts_field()
    gateway_updated_at: datetime | None = ts_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()
