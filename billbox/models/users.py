"""Staff users and API tokens. Passwords and tokens are stored only as hashes."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, enum_column, ts_field
from billbox.models.enums import Role


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    name: str = Field(default="", max_length=200)
    role: Role = Field(sa_column=enum_column(Role, nullable=False))
    password_hash: str = Field(max_length=255)
    totp_secret: str | None = Field(default=None, max_length=64)
    active: bool = True
    created_at: datetime = created_at_field()
    last_login_at: datetime | None = ts_field()


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    role: Role = Field(sa_column=enum_column(Role, nullable=False))
    prefix: str = Field(max_length=16, description="first characters, to recognise a token")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = created_at_field()
    last_used_at: datetime | None = ts_field()
    revoked_at: datetime | None = ts_field()
