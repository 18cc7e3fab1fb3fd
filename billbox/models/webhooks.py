"""Webhook events as received: stored verified, processed later by a worker."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, enum_column, json_field, ts_field
from billbox.models.enums import WebhookStatus


class WebhookEvent(SQLModel, table=True):
    """One delivery per (gateway, event id); a replay hits the unique constraint."""

    __tablename__ = "webhook_event"
    __table_args__ = (sa.UniqueConstraint("gateway", "event_id", name="uq_webhook_event"),)

    id: int | None = Field(default=None, primary_key=True)
    gateway: str = Field(max_length=32)
    account_id: int | None = Field(default=None, foreign_key="gateway_account.id")
    event_id: str = Field(max_length=128)
    event_type: str = Field(max_length=128, index=True)
    status: WebhookStatus = Field(sa_column=enum_column(WebhookStatus, nullable=False, index=True))
    headers: dict[str, str] = json_field()
    body: bytes = Field(sa_type=sa.LargeBinary)
    remote_addr: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_type=sa.Text)
    traceback: str | None = Field(default=None, sa_type=sa.Text)
    received_at: datetime = created_at_field()
    processed_at: datetime | None = ts_field()
