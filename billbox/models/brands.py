"""Brands: the seller identities documents and emails are issued under."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, enum_column, json_field
from billbox.models.enums import DocumentKind


class BrandBase(SQLModel):
    slug: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    legal_name: str = Field(max_length=200)
    address: str = Field(default="", sa_type=sa.Text)
    country: str = Field(max_length=2, description="ISO 3166-1 alpha-2 of the seller")
    # [{"scheme": "eu_vat", "country": "DE", "number": "DE136695976"}, ...]
    tax_registrations: list[dict[str, str]] = json_field(default_factory=list)
    email_from: str = Field(default="", max_length=254)
    primary_color: str = Field(default="#1f2937", max_length=7)
    accent_color: str = Field(default="#2563eb", max_length=7)
    locale: str = Field(default="en", max_length=16)
    default_currency: str = Field(default="EUR", max_length=3)
    footer: str = Field(default="", sa_type=sa.Text)
    legal_text: str = Field(default="", sa_type=sa.Text)
    issue_credit_notes: bool = True
    # Customers may cancel their subscription (at period end) on their billing page.
    customer_can_cancel: bool = False
    # Largest refund an agent may make on this brand's payments, per currency (minor units);
    # above it, finance or an admin must do it. {} = no brand cap.
    agent_refund_caps: dict[str, int] = json_field()


class Brand(BrandBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    logo: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    logo_content_type: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()


class NumberSeries(SQLModel, table=True):
    """A gapless counter per brand and series, incremented under a row lock.

    The number is taken in the same transaction that inserts the document,
    so a rollback gives the number back and no gap can appear.
    """

    __tablename__ = "number_series"
    __table_args__ = (sa.UniqueConstraint("brand_id", "series", name="uq_number_series"),)

    id: int | None = Field(default=None, primary_key=True)
    brand_id: int = Field(foreign_key="brand.id", index=True)
    series: str = Field(max_length=32)
    kind: DocumentKind = Field(sa_column=enum_column(DocumentKind, nullable=False))
    # str.format pattern with {prefix}, {year} and {seq}
    format: str = Field(default="{prefix}-{year}-{seq:06d}", max_length=64)
    prefix: str = Field(max_length=16)
    next_value: int = Field(default=1, sa_type=sa.BigInteger)
