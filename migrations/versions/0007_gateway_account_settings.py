"""Gateway accounts added in the admin: plain settings, and the last connection test.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 21:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("gateway_account", schema=None) as batch_op:
        batch_op.add_column(sa.Column("settings", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gateway_account", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("last_ok_at")
        batch_op.drop_column("settings")
