"""Documents: title, legal note, payment method, billing link and rounding amount.

Everything the PDF and the email print is kept on the document row, so an
issued document never depends on today's brand, customer or rate table.
Existing rows (none are issued before this revision) get empty defaults.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:32:51.571868
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rounding_amount", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("title", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("legal_note", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("payment_method", sa.String(length=300), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("billing_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.drop_column("billing_url")
        batch_op.drop_column("payment_method")
        batch_op.drop_column("legal_note")
        batch_op.drop_column("title")
        batch_op.drop_column("rounding_amount")
