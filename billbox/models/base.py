"""Column types shared by every table: UTC timestamps, enums as text, money, JSON.

Enums are stored as short strings (``native_enum=False``) so adding a state
is an application change, not a PostgreSQL ``ALTER TYPE``; timestamps are
always timezone-aware UTC in Python whatever the database stores.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field


def utcnow() -> datetime:
    """Now, timezone-aware in UTC; the only clock the models use."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware.

    SQLite has no time zones, PostgreSQL has ``timestamptz``; this keeps
    both behaving the same and refuses naive datetimes on the way in.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use billbox.models.utcnow()")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_column(enum_type: type[enum.Enum], **kwargs: Any) -> Any:
    """A non-native enum column holding the member's value (lower-case text)."""
    return sa.Column(
        sa.Enum(
            enum_type,
            native_enum=False,
            length=32,
            validate_strings=True,
            values_callable=lambda members: [m.value for m in members],
        ),
        **kwargs,
    )


def created_at_field() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def ts_field(*, index: bool = False) -> Any:
    """An optional UTC timestamp column."""
    return Field(default=None, sa_type=UTCDateTime, nullable=True, index=index)


def money_field(*, default: int | None = 0, nullable: bool = False) -> Any:
    """An amount in the currency's minor unit: a 64-bit integer, never a float."""
    return Field(default=default, sa_type=sa.BigInteger, nullable=nullable)


def currency_field() -> Any:
    """An ISO 4217 code, upper case, three letters."""
    return Field(max_length=3, min_length=3, sa_type=sa.String(3), nullable=False)


def json_field(*, default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_type=sa.JSON, nullable=False)


StrEnum = enum.StrEnum
