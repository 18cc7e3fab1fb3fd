"""Agent actions on a gateway (refund, capture, …), one row per idempotency key.

The row is written before the gateway is called and finished after, so a
double click, a retry or a crash in between never acts twice: the same key
reaches the gateway again, and the gateway's own idempotency returns the
first answer.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, enum_column, json_field, ts_field
from billbox.models.enums import ActionState


class GatewayAction(SQLModel, table=True):
    __tablename__ = "gateway_action"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=128, unique=True)
    account_id: int = Field(foreign_key="gateway_account.id", index=True)
    action: str = Field(max_length=64)
    target_kind: str = Field(max_length=32)
    target_external_id: str = Field(max_length=128, index=True)
    actor: str = Field(max_length=254, description="user email or token name")
    reason: str = Field(default="", sa_type=sa.Text)
    amount: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=True)
    currency: str | None = Field(default=None, max_length=3)
    state: ActionState = Field(sa_column=enum_column(ActionState, nullable=False, index=True))
    request: dict[str, object] = json_field()
    response_id: str | None = Field(default=None, max_length=128)
    error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = ts_field()
