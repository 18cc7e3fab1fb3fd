"""Email rows: outbound mail we send, inbound mail we accepted, IMAP cursors.

Inbound messages keep their raw bytes exactly as received; the row is
committed before the SMTP server answers 250, so nothing is lost.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, enum_column, json_field, ts_field
from billbox.models.enums import InboundSource, InboundState, MessageClass, OutboundState


class OutboundEmail(SQLModel, table=True):
    __tablename__ = "outbound_email"

    id: int | None = Field(default=None, primary_key=True)
    brand_id: int | None = Field(default=None, foreign_key="brand.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    document_id: int | None = Field(default=None, foreign_key="document.id", index=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    # Idempotency: "receipt:<document id>" etc.; a retry never sends twice.
    purpose_key: str = Field(max_length=128, unique=True)
    state: OutboundState = Field(sa_column=enum_column(OutboundState, nullable=False, index=True))
    to_address: str = Field(max_length=254, index=True)
    from_address: str = Field(max_length=254)
    reply_to: str | None = Field(default=None, max_length=254)
    subject: str = Field(max_length=500)
    message_id: str = Field(max_length=255, unique=True)
    in_reply_to: str | None = Field(default=None, max_length=255)
    raw: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    sent_at: datetime | None = ts_field()
    bounced_at: datetime | None = ts_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class InboundMessage(SQLModel, table=True):
    __tablename__ = "inbound_message"
    __table_args__ = (
        sa.UniqueConstraint("mailbox", "imap_uidvalidity", "imap_uid", name="uq_inbound_imap_uid"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: InboundSource = Field(sa_column=enum_column(InboundSource, nullable=False))
    mailbox: str = Field(default="", max_length=254)
    envelope_from: str = Field(default="", max_length=254)
    envelope_to: list[str] = json_field(default_factory=list)
    raw: bytes = Field(sa_type=sa.LargeBinary)
    size: int = 0
    sha256: str = Field(max_length=64, index=True)
    message_id: str | None = Field(default=None, max_length=255, index=True)
    state: InboundState = Field(sa_column=enum_column(InboundState, nullable=False, index=True))
    classification: MessageClass | None = Field(
        default=None, sa_column=enum_column(MessageClass, nullable=True)
    )
    # Rule hits recorded by classify/trust, e.g. {"classify": ["auto_submitted"]}.
    rule_hits: dict[str, list[str]] = json_field()
    quarantine_reason: str | None = Field(default=None, sa_type=sa.Text)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", index=True)
    imap_uidvalidity: int | None = Field(default=None, sa_type=sa.BigInteger)
    imap_uid: int | None = Field(default=None, sa_type=sa.BigInteger)
    received_at: datetime = created_at_field()
    processed_at: datetime | None = ts_field()


class ImapCursor(SQLModel, table=True):
    """How far the poller got in one mailbox; reset when UIDVALIDITY changes."""

    __tablename__ = "imap_cursor"

    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=254, unique=True)
    uidvalidity: int = Field(sa_type=sa.BigInteger)
    last_uid: int = Field(default=0, sa_type=sa.BigInteger)
    updated_at: datetime = created_at_field()
