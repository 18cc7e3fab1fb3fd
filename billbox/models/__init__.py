"""The data model: every table Billbox keeps, re-exported from one place.

Alembic's ``env.py`` imports this package so ``SQLModel.metadata`` knows
every table; application code imports names from here, not submodules.
"""

from sqlmodel import SQLModel

from billbox.models.actions import GatewayAction
from billbox.models.audit import AuditEvent
from billbox.models.base import UTCDateTime, utcnow
from billbox.models.brands import Brand, BrandBase, NumberSeries
from billbox.models.config import HelpdeskAccount, SupportAddress
from billbox.models.customers import Customer, CustomerBase, CustomerIdentity
from billbox.models.documents import Document, DocumentLine, DocumentTaxLine
from billbox.models.enums import (
    FINAL_JOB_STATES,
    PAID_PAYMENT_STATUSES,
    ActionState,
    ActorKind,
    DocumentKind,
    DocumentState,
    GatewayInvoiceStatus,
    GatewayKind,
    IdentityKind,
    InboundSource,
    InboundState,
    JobState,
    MessageClass,
    MessageDirection,
    OutboundState,
    PaymentStatus,
    RefundStatus,
    Role,
    SubscriptionStatus,
    TaxScheme,
    ThreadRule,
    TicketStatus,
    WebhookStatus,
)
from billbox.models.jobs import Job
from billbox.models.ledger import GatewayAccount, GatewayInvoice, Payment, Refund, Subscription
from billbox.models.mail import ImapCursor, InboundMessage, OutboundEmail
from billbox.models.tickets import Ticket, TicketMessage
from billbox.models.users import ApiToken, User
from billbox.models.webhooks import WebhookEvent

metadata = SQLModel.metadata

__all__ = [
    "FINAL_JOB_STATES",
    "PAID_PAYMENT_STATUSES",
    "ActionState",
    "ActorKind",
    "ApiToken",
    "AuditEvent",
    "Brand",
    "BrandBase",
    "Customer",
    "CustomerBase",
    "CustomerIdentity",
    "Document",
    "DocumentKind",
    "DocumentLine",
    "DocumentState",
    "DocumentTaxLine",
    "GatewayAccount",
    "GatewayAction",
    "GatewayInvoice",
    "GatewayInvoiceStatus",
    "GatewayKind",
    "HelpdeskAccount",
    "IdentityKind",
    "ImapCursor",
    "InboundMessage",
    "InboundSource",
    "InboundState",
    "Job",
    "JobState",
    "MessageClass",
    "MessageDirection",
    "NumberSeries",
    "OutboundEmail",
    "OutboundState",
    "Payment",
    "PaymentStatus",
    "Refund",
    "RefundStatus",
    "Role",
    "Subscription",
    "SubscriptionStatus",
    "SupportAddress",
    "TaxScheme",
    "ThreadRule",
    "Ticket",
    "TicketMessage",
    "TicketStatus",
    "UTCDateTime",
    "User",
    "WebhookEvent",
    "WebhookStatus",
    "metadata",
    "utcnow",
]
