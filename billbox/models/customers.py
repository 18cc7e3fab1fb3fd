"""Customers and the identities (addresses, gateway customer ids) that point at them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, enum_column
from billbox.models.enums import IdentityKind


class CustomerBase(SQLModel):
    name: str = Field(default="", max_length=200)
    email: str = Field(max_length=254, index=True, description="normalised primary address")
    country: str | None = Field(default=None, max_length=2)
    address: str = Field(default="", sa_type=sa.Text)
    tax_id: str | None = Field(default=None, max_length=32)
    locale: str = Field(default="en", max_length=16)


class Customer(CustomerBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Rotating this revokes every signed billing-page link of the customer.
    portal_nonce: str = Field(default="", max_length=64)
    created_at: datetime = created_at_field()


class CustomerIdentity(SQLModel, table=True):
    """One way to recognise a customer: an email address or a gateway customer id.

    ``namespace`` is ``email`` for addresses and the gateway account key
    (e.g. ``stripe:1``) for gateway ids, so (namespace, value) is unique and
    one person paying through two gateways is one customer.
    """

    __tablename__ = "customer_identity"
    __table_args__ = (sa.UniqueConstraint("namespace", "value", name="uq_identity"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    kind: IdentityKind = Field(sa_column=enum_column(IdentityKind, nullable=False))
    namespace: str = Field(max_length=64)
    value: str = Field(max_length=254, index=True)
    created_at: datetime = created_at_field()
