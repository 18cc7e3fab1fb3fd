"""The shared JSON client of the Help Scout/Intercom/Front connectors: Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime

from mailbridge.helpdesks._http_b import parse_retry_after


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    """RFC 9110 allows both forms; past dates and garbage never give a negative or a crash."""
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("30", now=now) == 30.0
    assert parse_retry_after("Wed, 25 Nov 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0
