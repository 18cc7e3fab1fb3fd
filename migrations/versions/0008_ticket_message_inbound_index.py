"""Index ticket_message.inbound_message_id: the inbox's "already filed?" check per reply.

Without it every filed reply scanned the whole table while holding the
write transaction (6.8 ms at 3,000 rows on SQLite, growing with the table).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 21:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_message_inbound_message_id", ["inbound_message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_message", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_message_inbound_message_id")
