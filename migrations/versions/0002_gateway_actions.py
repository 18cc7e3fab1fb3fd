"""Gateway actions: one row per agent action and idempotency key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:27:36.365023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=False),
        sa.Column("target_external_id", sa.String(length=128), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "pending", "succeeded", "failed", name="actionstate", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("response_id", sa.String(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["gateway_account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("gateway_action", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_action_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_gateway_action_state"), ["state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_gateway_action_target_external_id"), ["target_external_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("gateway_action", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_action_target_external_id"))
        batch_op.drop_index(batch_op.f("ix_gateway_action_state"))
        batch_op.drop_index(batch_op.f("ix_gateway_action_account_id"))

    op.drop_table("gateway_action")
