"""Jinja filters that show stored values to people: money, dates, sizes.

Amounts are stored as integer minor units; they become a Decimal only here,
for display, via :meth:`billbox.money.Money.to_decimal` — never a float.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from flask import Flask

from billbox.money import Money

DEFAULT_LOCALE = "en"


def money(amount: int | None, currency: str | None, locale: str = DEFAULT_LOCALE) -> str:
    """``1234, "EUR"`` → ``€12.34``; exact to the currency's minor unit."""
    if amount is None or not currency:
        return ""
    value = Money(int(amount), currency).to_decimal()
    return format_currency(value, currency.upper(), locale=locale)


def when(value: datetime | str | None, locale: str = DEFAULT_LOCALE) -> str:
    """A UTC timestamp (or its ISO string, as snapshots store it) in medium form."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return format_datetime(value, "medium", tzinfo=None, locale=locale) + " UTC"


def day(value: datetime | None, locale: str = DEFAULT_LOCALE) -> str:
    """A date in the reader's language (``25 nov 2026``, ``25.11.2026``)."""
    if value is None:
        return ""
    return format_date(value.date(), "medium", locale=locale)


def size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n} B"


def install(app: Flask) -> None:
    filters: dict[str, Any] = {"money": money, "when": when, "day": day, "size": size}
    app.jinja_env.filters.update(filters)
