"""Initial schema: brands, customers, ledger, documents, mail, tickets, webhooks, audit, users, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 15:45:11.648290
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "role",
            sa.Enum("admin", "agent", "finance", name="role", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "role",
            sa.Enum("admin", "agent", "finance", name="role", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_user_email"), ["email"], unique=True)

    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "actor_kind",
            sa.Enum(
                "user",
                "api_token",
                "customer",
                "system",
                name="actorkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_event_target_id"), ["target_id"], unique=False)

    op.create_table(
        "brand",
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_registrations", sa.JSON(), nullable=False),
        sa.Column("email_from", sa.String(length=254), nullable=False),
        sa.Column("primary_color", sa.String(length=7), nullable=False),
        sa.Column("accent_color", sa.String(length=7), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("default_currency", sa.String(length=3), nullable=False),
        sa.Column("footer", sa.Text(), nullable=False),
        sa.Column("legal_text", sa.Text(), nullable=False),
        sa.Column("issue_credit_notes", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("logo", sa.LargeBinary(), nullable=True),
        sa.Column("logo_content_type", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("brand", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_brand_slug"), ["slug"], unique=True)

    op.create_table(
        "customer",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("tax_id", sa.String(length=32), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("portal_nonce", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_email"), ["email"], unique=False)

    op.create_table(
        "imap_cursor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=254), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox"),
    )
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=160), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "queued", "running", "done", "failed", name="jobstate", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key", name="uq_job_dedupe_key"),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_kind"), ["kind"], unique=False)
        batch_op.create_index("ix_job_state_run_after", ["state", "run_after"], unique=False)

    op.create_table(
        "customer_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("email", "gateway_customer", name="identitykind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace", "value", name="uq_identity"),
    )
    with op.batch_alter_table("customer_identity", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_identity_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_customer_identity_value"), ["value"], unique=False)

    op.create_table(
        "gateway_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column(
            "gateway",
            sa.Enum("stripe", "paypal", "fake", name="gatewaykind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("live_mode", sa.Boolean(), nullable=False),
        sa.Column("external_account_id", sa.String(length=128), nullable=True),
        sa.Column("credentials_encrypted", sa.Text(), nullable=True),
        sa.Column("sync_cursor", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brand.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gateway", "name", name="uq_gateway_account"),
    )
    with op.batch_alter_table("gateway_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gateway_account_brand_id"), ["brand_id"], unique=False)

    op.create_table(
        "number_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("series", sa.String(length=32), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "receipt",
                "invoice",
                "credit_note",
                name="documentkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("format", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("next_value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brand.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("brand_id", "series", name="uq_number_series"),
    )
    with op.batch_alter_table("number_series", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_number_series_brand_id"), ["brand_id"], unique=False)

    op.create_table(
        "ticket",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "pending",
                "solved",
                "closed",
                name="ticketstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("requester_email", sa.String(length=254), nullable=False),
        sa.Column("unverified_sender", sa.Boolean(), nullable=False),
        sa.Column("helpdesk", sa.String(length=32), nullable=True),
        sa.Column("helpdesk_external_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brand.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ticket_requester_email"), ["requester_email"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ticket_status"), ["status"], unique=False)

    op.create_table(
        "inbound_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "source",
            sa.Enum("smtp", "imap", name="inboundsource", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("mailbox", sa.String(length=254), nullable=False),
        sa.Column("envelope_from", sa.String(length=254), nullable=False),
        sa.Column("envelope_to", sa.JSON(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "received",
                "processed",
                "ignored",
                "quarantined",
                "failed",
                name="inboundstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "classification",
            sa.Enum(
                "human",
                "auto_reply",
                "bounce",
                "loop",
                name="messageclass",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("rule_hits", sa.JSON(), nullable=False),
        sa.Column("quarantine_reason", sa.Text(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("imap_uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("imap_uid", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox", "imap_uidvalidity", "imap_uid", name="uq_inbound_imap_uid"),
    )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inbound_message_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_inbound_message_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_inbound_message_state"), ["state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_inbound_message_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "incomplete",
                "trialing",
                "active",
                "past_due",
                "paused",
                "unpaid",
                "canceled",
                name="subscriptionstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("plan_name", sa.String(length=200), nullable=False),
        sa.Column("price_external_id", sa.String(length=128), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=16), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_at_period_end", sa.Boolean(), nullable=False),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gateway_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gateway_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["gateway_account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "external_id", name="uq_subscription_ext"),
    )
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscription_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subscription_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_subscription_external_id"), ["external_id"], unique=False
        )

    op.create_table(
        "webhook_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "processed",
                "ignored",
                "failed",
                name="webhookstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["gateway_account.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gateway", "event_id", name="uq_webhook_event"),
    )
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_event_event_type"), ["event_type"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_webhook_event_status"), ["status"], unique=False)

    op.create_table(
        "gateway_invoice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "open",
                "paid",
                "void",
                "uncollectible",
                name="gatewayinvoicestatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hosted_url", sa.String(length=500), nullable=True),
        sa.Column("gateway_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gateway_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["gateway_account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "external_id", name="uq_gw_invoice_ext"),
    )
    with op.batch_alter_table("gateway_invoice", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_invoice_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_gateway_invoice_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_gateway_invoice_external_id"), ["external_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_gateway_invoice_number"), ["number"], unique=False)
        batch_op.create_index(batch_op.f("ix_gateway_invoice_status"), ["status"], unique=False)

    op.create_table(
        "payment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("gateway_invoice_id", sa.Integer(), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "requires_action",
                "authorized",
                "succeeded",
                "failed",
                "canceled",
                "refunded",
                "partially_refunded",
                "disputed",
                name="paymentstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("payment_method", sa.String(length=64), nullable=False),
        sa.Column("card_last4", sa.String(length=4), nullable=True),
        sa.Column("payer_email", sa.String(length=254), nullable=True),
        sa.Column("gateway_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gateway_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["gateway_account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["gateway_invoice_id"],
            ["gateway_invoice.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "external_id", name="uq_payment_ext"),
    )
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_external_id"), ["external_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_status"), ["status"], unique=False)

    op.create_table(
        "refund",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("payment_external_id", sa.String(length=128), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "succeeded",
                "failed",
                "canceled",
                name="refundstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("gateway_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gateway_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["gateway_account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payment.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "external_id", name="uq_refund_ext"),
    )
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refund_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_refund_payment_external_id"), ["payment_external_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_refund_payment_id"), ["payment_id"], unique=False)

    op.create_table(
        "document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "receipt",
                "invoice",
                "credit_note",
                name="documentkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum("numbered", "issued", name="documentstate", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("series", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("source_key", sa.String(length=128), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("refund_id", sa.Integer(), nullable=True),
        sa.Column("gateway_invoice_id", sa.Integer(), nullable=True),
        sa.Column("credits_document_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("tax_total", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("tax_treatment", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("seller", sa.JSON(), nullable=False),
        sa.Column("buyer", sa.JSON(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("supplied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brand.id"],
        ),
        sa.ForeignKeyConstraint(
            ["credits_document_id"],
            ["document.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["gateway_invoice_id"],
            ["gateway_invoice.id"],
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payment.id"],
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"],
            ["refund.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("brand_id", "number", name="uq_document_number"),
        sa.UniqueConstraint("brand_id", "series", "sequence", name="uq_document_sequence"),
        sa.UniqueConstraint("source_key"),
    )
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_number"), ["number"], unique=False)
        batch_op.create_index(batch_op.f("ix_document_payment_id"), ["payment_id"], unique=False)

    op.create_table(
        "document_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_amount", sa.BigInteger(), nullable=False),
        sa.Column("net_amount", sa.BigInteger(), nullable=False),
        sa.Column("tax_rate", sa.Numeric(precision=7, scale=4), nullable=False),
        sa.Column("tax_category", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("document_line", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_document_line_document_id"), ["document_id"], unique=False
        )

    op.create_table(
        "document_tax_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=8), nullable=False),
        sa.Column("category", sa.String(length=8), nullable=False),
        sa.Column("rate", sa.Numeric(precision=7, scale=4), nullable=False),
        sa.Column("taxable_amount", sa.BigInteger(), nullable=False),
        sa.Column("tax_amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("document_tax_line", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_document_tax_line_document_id"), ["document_id"], unique=False
        )

    op.create_table(
        "outbound_email",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("document_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("purpose_key", sa.String(length=128), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "failed",
                "bounced",
                name="outboundstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("from_address", sa.String(length=254), nullable=False),
        sa.Column("reply_to", sa.String(length=254), nullable=True),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("in_reply_to", sa.String(length=255), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bounced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brand.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["document.id"],
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
        sa.UniqueConstraint("purpose_key"),
    )
    with op.batch_alter_table("outbound_email", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbound_email_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbound_email_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outbound_email_document_id"), ["document_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbound_email_state"), ["state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_outbound_email_ticket_id"), ["ticket_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_outbound_email_to_address"), ["to_address"], unique=False
        )

    op.create_table(
        "ticket_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column(
            "direction",
            sa.Enum(
                "inbound", "outbound", "note", name="messagedirection", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("inbound_message_id", sa.Integer(), nullable=True),
        sa.Column("outbound_email_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=254), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column(
            "thread_rule",
            sa.Enum(
                "reply_token",
                "in_reply_to",
                "references",
                "subject_tag",
                "new_ticket",
                name="threadrule",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("billing_context", sa.JSON(), nullable=False),
        sa.Column("helpdesk_external_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_message.id"],
        ),
        sa.ForeignKeyConstraint(
            ["outbound_email_id"],
            ["outbound_email.id"],
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["ticket.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ticket_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_message_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_message_ticket_id"), ["ticket_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_message_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_message_message_id"))

    op.drop_table("ticket_message")
    with op.batch_alter_table("outbound_email", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_email_to_address"))
        batch_op.drop_index(batch_op.f("ix_outbound_email_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_outbound_email_state"))
        batch_op.drop_index(batch_op.f("ix_outbound_email_document_id"))
        batch_op.drop_index(batch_op.f("ix_outbound_email_customer_id"))
        batch_op.drop_index(batch_op.f("ix_outbound_email_brand_id"))

    op.drop_table("outbound_email")
    with op.batch_alter_table("document_tax_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_tax_line_document_id"))

    op.drop_table("document_tax_line")
    with op.batch_alter_table("document_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_line_document_id"))

    op.drop_table("document_line")
    with op.batch_alter_table("document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_payment_id"))
        batch_op.drop_index(batch_op.f("ix_document_number"))
        batch_op.drop_index(batch_op.f("ix_document_customer_id"))
        batch_op.drop_index(batch_op.f("ix_document_brand_id"))

    op.drop_table("document")
    with op.batch_alter_table("refund", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refund_payment_id"))
        batch_op.drop_index(batch_op.f("ix_refund_payment_external_id"))
        batch_op.drop_index(batch_op.f("ix_refund_account_id"))

    op.drop_table("refund")
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_status"))
        batch_op.drop_index(batch_op.f("ix_payment_external_id"))
        batch_op.drop_index(batch_op.f("ix_payment_customer_id"))
        batch_op.drop_index(batch_op.f("ix_payment_account_id"))

    op.drop_table("payment")
    with op.batch_alter_table("gateway_invoice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_invoice_status"))
        batch_op.drop_index(batch_op.f("ix_gateway_invoice_number"))
        batch_op.drop_index(batch_op.f("ix_gateway_invoice_external_id"))
        batch_op.drop_index(batch_op.f("ix_gateway_invoice_customer_id"))
        batch_op.drop_index(batch_op.f("ix_gateway_invoice_account_id"))

    op.drop_table("gateway_invoice")
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_event_status"))
        batch_op.drop_index(batch_op.f("ix_webhook_event_event_type"))

    op.drop_table("webhook_event")
    with op.batch_alter_table("subscription", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_external_id"))
        batch_op.drop_index(batch_op.f("ix_subscription_customer_id"))
        batch_op.drop_index(batch_op.f("ix_subscription_account_id"))

    op.drop_table("subscription")
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbound_message_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_inbound_message_state"))
        batch_op.drop_index(batch_op.f("ix_inbound_message_sha256"))
        batch_op.drop_index(batch_op.f("ix_inbound_message_message_id"))

    op.drop_table("inbound_message")
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_status"))
        batch_op.drop_index(batch_op.f("ix_ticket_requester_email"))
        batch_op.drop_index(batch_op.f("ix_ticket_customer_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_brand_id"))

    op.drop_table("ticket")
    with op.batch_alter_table("number_series", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_number_series_brand_id"))

    op.drop_table("number_series")
    with op.batch_alter_table("gateway_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_account_brand_id"))

    op.drop_table("gateway_account")
    with op.batch_alter_table("customer_identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_identity_value"))
        batch_op.drop_index(batch_op.f("ix_customer_identity_customer_id"))

    op.drop_table("customer_identity")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_state_run_after")
        batch_op.drop_index(batch_op.f("ix_job_kind"))

    op.drop_table("job")
    op.drop_table("imap_cursor")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_email"))

    op.drop_table("customer")
    with op.batch_alter_table("brand", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_brand_slug"))

    op.drop_table("brand")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_target_id"))
        batch_op.drop_index(batch_op.f("ix_audit_event_action"))

    op.drop_table("audit_event")
    with op.batch_alter_table("app_user", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_user_email"))

    op.drop_table("app_user")
    op.drop_table("api_token")
