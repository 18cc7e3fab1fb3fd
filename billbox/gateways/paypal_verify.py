"""The local half of PayPal webhook verification: headers, freshness, event head, request body.

Everything here runs before the network call to
``/v1/notifications/verify-webhook-signature`` so a delivery with missing
headers, a stale or future transmission time, or a body that is not a
PayPal event is refused without spending a call (and without letting an
attacker make us spend one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from billbox.gateways.base import VerifiedEvent, WebhookVerificationError
from billbox.gateways.paypal_mapping import parse_time

TRANSMISSION_HEADERS = (
    "PAYPAL-TRANSMISSION-ID",
    "PAYPAL-TRANSMISSION-TIME",
    "PAYPAL-TRANSMISSION-SIG",
    "PAYPAL-CERT-URL",
    "PAYPAL-AUTH-ALGO",
)


@dataclass(frozen=True)
class Transmission:
    """The five ``PAYPAL-*`` headers of one delivery."""

    transmission_id: str
    transmission_time: str
    transmission_sig: str
    cert_url: str
    auth_algo: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Transmission:
        values = {name: _header(headers, name) for name in TRANSMISSION_HEADERS}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise WebhookVerificationError(f"missing {', '.join(missing)}")
        return cls(*(str(values[name]) for name in TRANSMISSION_HEADERS))

    def check_fresh(self, tolerance: int, now: datetime | None = None) -> None:
        """Refuse a transmission time more than ``tolerance`` seconds from ``now``, either way."""
        sent = parse_time(self.transmission_time)
        if sent is None:
            raise WebhookVerificationError("PAYPAL-TRANSMISSION-TIME is not a date-time")
        if abs(((now or datetime.now(UTC)) - sent).total_seconds()) > tolerance:
            raise WebhookVerificationError("transmission time outside the tolerance")

    def verification_request(self, webhook_id: str, body: bytes) -> bytes:
        """The verify request, with the event's exact bytes (not re-serialised) as webhook_event.

        PayPal checks a CRC32 of the event as it sent it; parsing and
        re-serialising could reorder keys or change number formatting.
        """
        fields = {
            "auth_algo": self.auth_algo,
            "cert_url": self.cert_url,
            "transmission_id": self.transmission_id,
            "transmission_sig": self.transmission_sig,
            "transmission_time": self.transmission_time,
            "webhook_id": webhook_id,
        }
        head = json.dumps(fields)[:-1].encode()
        return head + b', "webhook_event": ' + body.strip() + b"}"


def event_head(body: bytes) -> VerifiedEvent:
    """Id, type and time from the body, refusing anything that is not a PayPal event object."""
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookVerificationError("body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookVerificationError("body is not a JSON object")
    event_id, event_type = event.get("id"), event.get("event_type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise WebhookVerificationError("body has no event id or event_type")
    created = parse_time(event.get("create_time")) or datetime.now(UTC)
    return VerifiedEvent(event_id=event_id[:128], event_type=event_type[:128], created=created)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value.strip()
    return None
