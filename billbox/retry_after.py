"""``Retry-After`` (RFC 9110 §10.2.3) as seconds, for every HTTP client Billbox has.

Gateways and helpdesks answer 429 (and some 503) with it, as delta-seconds
or as an HTTP date; a job then waits at least that long before trying again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait (never negative), or None when absent or unreadable."""
    if not value:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_after_header(headers: Mapping[str, Any] | None) -> float | None:
    """The ``Retry-After`` of a header mapping whatever its case."""
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            return retry_after_seconds(str(value))
    return None
