"""Brands cap what an agent may refund per currency; above it, finance or an admin.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 20:17:49.386879
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("brand", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("agent_refund_caps", sa.JSON(), nullable=False, server_default="{}")
        )


def downgrade() -> None:
    with op.batch_alter_table("brand", schema=None) as batch_op:
        batch_op.drop_column("agent_refund_caps")
