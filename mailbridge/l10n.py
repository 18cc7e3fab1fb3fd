"""Locale handling for outgoing email: which language, and Babel formatting of money and dates.

Amounts stay integers of minor units until the last moment: they become an
exact :class:`~decimal.Decimal` through :class:`billbox.money.Money` and are
formatted by Babel with the customer's full locale, so ``de`` gets
``1.234,50 €``, ``de_CH`` gets ``EUR 1'234.50`` (with a typographic apostrophe) and ``fr`` gets
``1 234,50 €``. The *words* come from ``templates/email/strings.json``,
chosen by language alone; a language we have no words for falls back to
English words while keeping the customer's number and date formats, which
is still better than a foreign decimal separator on a bill.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency

from billbox.money import Money

__all__ = ["EMAIL_TEMPLATES", "SUPPORTED_LANGUAGES", "EmailLocale", "email_locale"]

EMAIL_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"
SUPPORTED_LANGUAGES = ("en", "es", "de", "fr")


@functools.cache
def _strings() -> dict[str, dict[str, Any]]:
    """The word table, read once per process (it is part of the installed code)."""
    with (EMAIL_TEMPLATES / "strings.json").open(encoding="utf-8") as handle:
        table: dict[str, dict[str, Any]] = json.load(handle)
    missing = [lang for lang in SUPPORTED_LANGUAGES if lang not in table]
    if missing:
        raise RuntimeError(f"templates/email/strings.json lacks languages {missing}")
    return table


@dataclass(frozen=True)
class EmailLocale:
    """A parsed customer locale: Babel's for formats, our language key for words."""

    babel: Locale
    language: str

    @property
    def words(self) -> dict[str, Any]:
        return _strings()[self.language]

    def money(self, amount: int, currency: str) -> str:
        """``amount`` minor units of ``currency`` in this locale (exact, never via float)."""
        return format_currency(Money(amount, currency).to_decimal(), currency, locale=self.babel)

    def day(self, when: datetime) -> str:
        """The calendar date of ``when`` (UTC), long form: ``1. November 2026``."""
        return format_date(when.date(), format="long", locale=self.babel)


@functools.cache
def email_locale(tag: str | None) -> EmailLocale:
    """Parse ``de``, ``de_DE`` or ``de-DE``; anything unknown or malformed is English.

    Cached: the handful of locales a deployment sees are parsed once.
    """
    try:
        babel = Locale.parse((tag or "en").strip().replace("-", "_") or "en")
    except (ValueError, TypeError, UnknownLocaleError):
        babel = Locale("en")
    language = babel.language if babel.language in SUPPORTED_LANGUAGES else "en"
    return EmailLocale(babel=babel, language=language)
