"""Settings an admin changes at run time: extra support addresses, helpdesk accounts.

Process-level settings (database, listen addresses, relay) stay in the
environment; these live in the database because the admin edits them and
every process must see the change without a restart.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, json_field, ts_field


class SupportAddress(SQLModel, table=True):
    """An address the SMTP server accepts besides ``*@BILLBOX_REPLY_DOMAIN``."""

    __tablename__ = "support_address"

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=254, unique=True)
    brand_id: int | None = Field(default=None, foreign_key="brand.id")
    created_at: datetime = created_at_field()


class HelpdeskAccount(SQLModel, table=True):
    """An external helpdesk Billbox files tickets into (Zendesk, Freshdesk, …).

    ``settings`` holds what is not secret (subdomain, mailbox id); secrets
    are sealed in ``credentials_encrypted`` (``billbox.sealed``).
    """

    __tablename__ = "helpdesk_account"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    name: str = Field(max_length=64, unique=True)
    active: bool = False
    settings: dict[str, str] = json_field()
    credentials_encrypted: str | None = Field(default=None, sa_type=sa.Text)
    last_ok_at: datetime | None = ts_field()
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = created_at_field()
