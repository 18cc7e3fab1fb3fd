"""Documents we issue (receipts, invoices, credit notes) with their lines and tax lines.

Seller and buyer are copied onto the document when it is created, so
later edits to the brand or customer never change an issued document.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import (
    created_at_field,
    currency_field,
    enum_column,
    json_field,
    money_field,
    ts_field,
)
from billbox.models.enums import DocumentKind, DocumentState


class Document(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("brand_id", "number", name="uq_document_number"),
        sa.UniqueConstraint("brand_id", "series", "sequence", name="uq_document_sequence"),
    )

    id: int | None = Field(default=None, primary_key=True)
    brand_id: int = Field(foreign_key="brand.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    kind: DocumentKind = Field(sa_column=enum_column(DocumentKind, nullable=False))
    state: DocumentState = Field(sa_column=enum_column(DocumentState, nullable=False))
    series: str = Field(max_length=32)
    sequence: int = Field(sa_type=sa.BigInteger)
    number: str = Field(max_length=64, index=True)
    # "payment:<id>", "refund:<id>": one document per source, ever.
    source_key: str = Field(max_length=128, unique=True)
    payment_id: int | None = Field(default=None, foreign_key="payment.id", index=True)
    refund_id: int | None = Field(default=None, foreign_key="refund.id")
    gateway_invoice_id: int | None = Field(default=None, foreign_key="gateway_invoice.id")
    credits_document_id: int | None = Field(default=None, foreign_key="document.id")
    currency: str = currency_field()
    subtotal: int = money_field()
    tax_total: int = money_field()
    total: int = money_field()
    # EN 16931 BT-114: added to ``total`` to reach the amount paid (BT-115), so a
    # receipt shows exactly what the gateway charged; 0 or +-1 minor unit.
    rounding_amount: int = money_field()
    tax_treatment: str = Field(default="none", max_length=32)
    locale: str = Field(default="en", max_length=16)
    # "Receipt", "Invoice", "Tax invoice", "Credit note", "Adjustment note" (English;
    # the PDF and the email translate it).
    title: str = Field(default="", max_length=64)
    legal_note: str | None = Field(default=None, sa_type=sa.Text)
    # e.g. "Visa •••• 4242", "PayPal (payer@example.com)"
    payment_method: str = Field(default="", max_length=300)
    billing_url: str | None = Field(default=None, max_length=500)
    seller: dict[str, object] = json_field()
    buyer: dict[str, object] = json_field()
    issued_at: datetime | None = ts_field()
    supplied_at: datetime | None = ts_field()
    pdf: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    pdf_sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()


class DocumentLine(SQLModel, table=True):
    __tablename__ = "document_line"

    id: int | None = Field(default=None, primary_key=True)
    document_id: int = Field(foreign_key="document.id", index=True)
    position: int
    description: str = Field(max_length=500)
    quantity: int = Field(default=1)
    unit_amount: int = money_field()
    net_amount: int = money_field()
    tax_rate: Decimal = Field(default=Decimal(0), sa_type=sa.Numeric(7, 4))
    tax_category: str = Field(default="S", max_length=8)


class DocumentTaxLine(SQLModel, table=True):
    __tablename__ = "document_tax_line"

    id: int | None = Field(default=None, primary_key=True)
    document_id: int = Field(foreign_key="document.id", index=True)
    jurisdiction: str = Field(max_length=8)
    category: str = Field(default="S", max_length=8)
    rate: Decimal = Field(sa_type=sa.Numeric(7, 4))
    taxable_amount: int = money_field()
    tax_amount: int = money_field()
