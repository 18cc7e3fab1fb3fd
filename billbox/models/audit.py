"""The audit log: append-only, each row chained to the previous by its hash."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, enum_column, json_field
from billbox.models.enums import ActorKind


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = created_at_field()
    actor_kind: ActorKind = Field(sa_column=enum_column(ActorKind, nullable=False))
    actor: str = Field(max_length=254, description="user email, token name, customer id")
    action: str = Field(max_length=64, index=True)
    target_kind: str = Field(default="", max_length=32)
    target_id: str = Field(default="", max_length=64, index=True)
    reason: str = Field(default="", sa_type=sa.Text)
    data: dict[str, object] = json_field()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
