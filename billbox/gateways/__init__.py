"""Gateway adapters and the normalised types they return.

Vendor SDK objects stop at the adapter module; everything else in Billbox
sees only the dataclasses re-exported here.
"""

from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)

__all__ = [
    "GatewayCustomer",
    "GatewayInvoiceData",
    "GatewayPayment",
    "GatewayRefund",
    "GatewaySubscription",
]
