"""Correlation ids bound through contextvars at every entry point.

An SMTP session, a web request and a worker actor each bind an id here;
every log line then carries it (structlog's ``merge_contextvars``), and job
rows record it so an operator can follow one message or payment from the
webhook or SMTP session to the sent email.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog


def new_correlation_id() -> str:
    return secrets.token_hex(8)


def current_correlation_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("correlation_id")
    return str(value) if value else None


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind ``values`` (and a correlation id if none is bound) for the block."""
    if "correlation_id" not in values and current_correlation_id() is None:
        values["correlation_id"] = new_correlation_id()
    with structlog.contextvars.bound_contextvars(**values):
        yield
