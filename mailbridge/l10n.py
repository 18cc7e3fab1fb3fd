"""The customer's locale for outgoing email: words from ``templates/email/strings.json``,
formats from :mod:`billbox.documents.view`.

Money and dates are formatted by the very functions the PDF uses
(:func:`~billbox.documents.view.format_money`, ``format_date``), so an
email and its attachment never disagree about ``1.234,50 €``: integers of
minor units become an exact ``Decimal`` and Babel formats them with the
customer's full locale (``de_CH`` keeps Swiss formats). The *words* are the
email's own and are chosen by language alone; a language we have no words
for gets English words with its own number and date formats, as the PDF does.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from billbox.documents.view import format_date, format_money, language_of, normalise_locale

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
    """A normalised customer locale (``de_CH``) and the language of its words (``de``)."""

    locale: str
    language: str

    @property
    def words(self) -> dict[str, Any]:
        return _strings()[self.language]

    def money(self, amount: int, currency: str) -> str:
        """``amount`` minor units of ``currency``, formatted exactly as on the PDF."""
        return format_money(amount, currency, self.locale)

    def day(self, when: datetime) -> str:
        """The long calendar date of ``when`` (UTC), as on the PDF: ``1. November 2026``."""
        return format_date(when, self.locale)


@functools.cache
def email_locale(tag: str | None) -> EmailLocale:
    """Parse ``de``, ``de_DE`` or ``de-DE``; anything unknown or malformed is English.

    Cached: the handful of locales a deployment sees are parsed once.
    """
    locale = normalise_locale(tag)
    language = language_of(locale)
    return EmailLocale(locale, language if language in SUPPORTED_LANGUAGES else "en")
