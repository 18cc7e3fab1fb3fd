"""Every state and kind in the data model, one enum each.

States are enums, never booleans or free text: each row that carries work
has exactly one ``state`` and the set of final states is declared here, so
the sweep and ``billbox status`` know what "stuck" means.
"""

from __future__ import annotations

from billbox.models.base import StrEnum


class GatewayKind(StrEnum):
    STRIPE = "stripe"
    PAYPAL = "paypal"
    FAKE = "fake"


class TaxScheme(StrEnum):
    EU_VAT = "eu_vat"
    EU_OSS = "eu_oss"
    GB_VAT = "gb_vat"
    AU_GST = "au_gst"
    NZ_GST = "nz_gst"
    OTHER = "other"


class IdentityKind(StrEnum):
    EMAIL = "email"
    GATEWAY_CUSTOMER = "gateway_customer"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"
    DISPUTED = "disputed"


PAID_PAYMENT_STATUSES = frozenset(
    {
        PaymentStatus.SUCCEEDED,
        PaymentStatus.REFUNDED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.DISPUTED,
    }
)


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class SubscriptionStatus(StrEnum):
    INCOMPLETE = "incomplete"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    UNPAID = "unpaid"
    CANCELED = "canceled"


class GatewayInvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class DocumentKind(StrEnum):
    RECEIPT = "receipt"
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class DocumentState(StrEnum):
    """A document is numbered when created; it becomes immutable when issued."""

    NUMBERED = "numbered"
    ISSUED = "issued"


class OutboundState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"


class InboundSource(StrEnum):
    SMTP = "smtp"
    IMAP = "imap"
    # A question asked on the customer's billing page, filed like an email.
    PORTAL = "portal"


class InboundState(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    QUARANTINED = "quarantined"
    FAILED = "failed"


class MessageClass(StrEnum):
    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    LOOP = "loop"


class TicketStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    SOLVED = "solved"
    CLOSED = "closed"


class MessageDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    NOTE = "note"


class ThreadRule(StrEnum):
    REPLY_TOKEN = "reply_token"
    IN_REPLY_TO = "in_reply_to"
    REFERENCES = "references"
    SUBJECT_TAG = "subject_tag"
    NEW_TICKET = "new_ticket"


class WebhookStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class ActorKind(StrEnum):
    USER = "user"
    API_TOKEN = "api_token"
    CUSTOMER = "customer"
    SYSTEM = "system"


class ActionState(StrEnum):
    """An agent action: pending while the gateway is being asked, then final."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    FINANCE = "finance"


class JobState(StrEnum):
    """Life of a job row: the outbox entry that stands behind every queue message."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINAL_JOB_STATES = frozenset({JobState.DONE, JobState.FAILED})
