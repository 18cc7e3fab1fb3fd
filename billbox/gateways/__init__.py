"""Gateway adapters, the interface they share and the normalised types they return.

Vendor SDK objects stop at the adapter module (``billbox.gateways.stripe``
and its actions half ``stripe_actions`` are the only importers of
``stripe``, and are imported only where used);
everything else in Billbox sees only the names re-exported here.
"""

from billbox.gateways.base import (
    Capability,
    GatewayActions,
    GatewayAdapter,
    GatewayDeclined,
    GatewayError,
    GatewayLister,
    GatewayParseError,
    GatewayUnavailable,
    Ignored,
    ObjectKind,
    Page,
    UnsupportedAction,
    VerifiedEvent,
    WebhookVerificationError,
)
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)

__all__ = [
    "Capability",
    "GatewayActions",
    "GatewayAdapter",
    "GatewayCustomer",
    "GatewayDeclined",
    "GatewayError",
    "GatewayInvoiceData",
    "GatewayLister",
    "GatewayParseError",
    "GatewayPayment",
    "GatewayRefund",
    "GatewaySubscription",
    "GatewayUnavailable",
    "Ignored",
    "ObjectKind",
    "Page",
    "UnsupportedAction",
    "VerifiedEvent",
    "WebhookVerificationError",
]
