"""Gateway adapters, the interface they share and the normalised types they return.

Vendor SDK objects stop at the adapter module (``billbox.gateways.stripe``
is the only importer of ``stripe``, and is imported only where used);
everything else in Billbox sees only the names re-exported here.
"""

from billbox.gateways.base import (
    Capability,
    GatewayAdapter,
    GatewayError,
    GatewayParseError,
    GatewayUnavailable,
    Ignored,
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
    "GatewayAdapter",
    "GatewayCustomer",
    "GatewayError",
    "GatewayInvoiceData",
    "GatewayParseError",
    "GatewayPayment",
    "GatewayRefund",
    "GatewaySubscription",
    "GatewayUnavailable",
    "Ignored",
    "VerifiedEvent",
    "WebhookVerificationError",
]
