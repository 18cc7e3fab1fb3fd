"""The one interface every gateway adapter implements, and the errors it raises.

Modelled on httpx's ``_transports/base.py``: a small protocol, vendor code
behind it, vendor errors mapped at the boundary. An adapter verifies a
webhook delivery (cheaply, on the request path), turns an event body into
the ledger's normalised types (in the worker) and re-fetches single objects
as the source of truth. Actions (refund, capture, cancel, …) join the
protocol with their own capability names when they are implemented; until
then ``capabilities`` lets the admin hide what an adapter cannot do.

Errors (all :class:`~billbox.errors.BillboxError`)::

    GatewayError                 a gateway call or payload failed
    ├── GatewayUnavailable       network trouble, rate limit: retry later
    ├── GatewayParseError        an event body we cannot understand (permanent)
    └── WebhookVerificationError bad or missing signature, stale timestamp
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from billbox.errors import BillboxError
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)

#: Seconds a signed webhook timestamp may lag behind our clock.
WEBHOOK_TOLERANCE = 300

NormalisedObject = (
    GatewayCustomer | GatewayPayment | GatewayRefund | GatewaySubscription | GatewayInvoiceData
)


class Capability(StrEnum):
    """What an adapter can do; the admin shows only the matching buttons."""

    WEBHOOKS = "webhooks"
    FETCH = "fetch"


class GatewayError(BillboxError):
    """A gateway call failed or returned something we cannot use."""


class GatewayUnavailable(GatewayError):
    """The gateway could not be reached or asked us to slow down; retrying may help."""


class GatewayParseError(GatewayError):
    """An event body is not in a shape the adapter understands; retrying cannot help."""


class WebhookVerificationError(GatewayError):
    """A delivery is not provably from the gateway: bad/missing signature or stale timestamp."""


@dataclass(frozen=True)
class VerifiedEvent:
    """What the request path learns from a delivery whose signature checked out."""

    event_id: str
    event_type: str
    created: datetime


@dataclass(frozen=True)
class Ignored:
    """``parse_event``'s answer for an event type Billbox does not mirror."""

    reason: str


ParseResult = list[NormalisedObject] | Ignored


class GatewayAdapter(Protocol):
    """One gateway account's adapter; one module per vendor under ``billbox/gateways``."""

    @property
    def name(self) -> str:
        """The gateway's name as stored in ``webhook_event.gateway`` (``"stripe"``)."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """:class:`Capability` values this adapter supports."""
        ...

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        """Check the delivery's signature and freshness; raise :class:`WebhookVerificationError`.

        Cheap enough for the request path: no SDK object building, no network.
        """
        ...

    def parse_event(self, body: bytes) -> ParseResult:
        """Normalise a (previously verified) event body, or say it is :class:`Ignored`.

        Raises :class:`GatewayParseError` for a body of a known type that
        cannot be understood. Pure: no network, no database.
        """
        ...

    def fetch_customer(self, external_id: str) -> GatewayCustomer:
        """The customer as the gateway holds it now."""
        ...

    def fetch_payment(self, external_id: str) -> GatewayPayment:
        """The payment as the gateway holds it now."""
        ...
