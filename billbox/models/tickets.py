"""Tickets and the messages, notes and replies threaded into them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import created_at_field, enum_column, json_field
from billbox.models.enums import MessageDirection, ThreadRule, TicketStatus


class Ticket(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    brand_id: int | None = Field(default=None, foreign_key="brand.id", index=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    subject: str = Field(default="", max_length=500)
    status: TicketStatus = Field(sa_column=enum_column(TicketStatus, nullable=False, index=True))
    requester_email: str = Field(max_length=254, index=True)
    unverified_sender: bool = False
    helpdesk: str | None = Field(default=None, max_length=32)
    helpdesk_external_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = created_at_field()
    updated_at: datetime = created_at_field()


class TicketMessage(SQLModel, table=True):
    __tablename__ = "ticket_message"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", index=True)
    direction: MessageDirection = Field(sa_column=enum_column(MessageDirection, nullable=False))
    inbound_message_id: int | None = Field(
        default=None, foreign_key="inbound_message.id", index=True
    )
    outbound_email_id: int | None = Field(default=None, foreign_key="outbound_email.id")
    author: str = Field(default="", max_length=254)
    body_text: str = Field(default="", sa_type=sa.Text)
    body_html: str | None = Field(default=None, sa_type=sa.Text)
    message_id: str | None = Field(default=None, max_length=255, index=True)
    thread_rule: ThreadRule | None = Field(
        default=None, sa_column=enum_column(ThreadRule, nullable=True)
    )
    billing_context: dict[str, object] = json_field()
    helpdesk_external_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = created_at_field()
