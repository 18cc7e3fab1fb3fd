"""Tax identification numbers, checked offline with python-stdnum (format and checksum).

Every function returns the *compact* form of a valid number (no spaces, dots
or dashes; EU VAT numbers keep their two-letter prefix, Greece as ``EL``;
UK VAT numbers get the ``GB`` prefix) or raises :class:`InvalidTaxId` with a
sentence that can be shown to the person who typed the number, e.g.
``DE136695977 is not a valid German VAT number: checksum does not match``.

Nothing here goes over the network: a number that passes is well formed and
has a correct check digit, not necessarily *registered* (that needs VIES,
HMRC or ABN Lookup, which Billbox does not call). Nothing here ever returns
an invalid number "as is": the caller decides what to do with the error.

Supported: VAT numbers of the 27 EU member states plus Northern Ireland
(``XI``, via ``stdnum.eu.vat``), UK VAT (``stdnum.gb.vat``), Australian
Business Numbers (``stdnum.au.abn``) and New Zealand IRD numbers, which are
also GST numbers (``stdnum.nz.ird``).
"""

from __future__ import annotations

from collections.abc import Callable

from stdnum import exceptions as stdnum_errors
from stdnum.au import abn as au_abn
from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat
from stdnum.nz import ird as nz_ird
from stdnum.util import clean

from billbox.errors import BillboxError

__all__ = [
    "EU_MEMBER_STATES",
    "InvalidTaxId",
    "can_validate",
    "country_of_vat_number",
    "validate_abn",
    "validate_eu_vat",
    "validate_gb_vat",
    "validate_nz_ird",
    "validate_tax_id",
    "vat_prefix",
]

# ISO 3166-1 alpha-2 codes of the member states, with the adjective used in messages.
_EU_ADJECTIVES = {
    "AT": "Austrian", "BE": "Belgian", "BG": "Bulgarian", "CY": "Cypriot", "CZ": "Czech",
    "DE": "German", "DK": "Danish", "EE": "Estonian", "ES": "Spanish", "FI": "Finnish",
    "FR": "French", "GR": "Greek", "HR": "Croatian", "HU": "Hungarian", "IE": "Irish",
    "IT": "Italian", "LT": "Lithuanian", "LU": "Luxembourgish", "LV": "Latvian",
    "MT": "Maltese", "NL": "Dutch", "PL": "Polish", "PT": "Portuguese", "RO": "Romanian",
    "SE": "Swedish", "SI": "Slovenian", "SK": "Slovak",
}  # fmt: skip

EU_MEMBER_STATES: frozenset[str] = frozenset(_EU_ADJECTIVES)

# VAT prefixes that are not the ISO country code.
_PREFIX_TO_COUNTRY = {"EL": "GR", "XI": "GB"}
_COUNTRY_TO_PREFIX = {"GR": "EL"}


class InvalidTaxId(BillboxError):
    """A tax id failed the format or checksum test; ``str(error)`` is for the user.

    ``value`` is the number as given and ``kind`` a short name of what it was
    checked as (``"eu_vat"``, ``"gb_vat"``, ``"au_abn"``, ``"nz_ird"``).
    """

    def __init__(self, message: str, *, value: str = "", kind: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.value = value
        self.kind = kind


def vat_prefix(country: str) -> str:
    """The VAT number prefix of a member state (``GR`` -> ``EL``)."""
    country = country.strip().upper()
    return _COUNTRY_TO_PREFIX.get(country, country)


def country_of_vat_number(value: str) -> str | None:
    """The ISO country a VAT number's prefix names (``EL`` -> ``GR``, ``XI`` -> ``GB``).

    Only looks at the first two letters; ``None`` when they name no EU member
    state, Northern Ireland or the UK. Does not validate the number.
    """
    head = value.strip().upper()[:2]
    if not head.isalpha():
        return None
    country = _PREFIX_TO_COUNTRY.get(head, head)
    if country in EU_MEMBER_STATES or country == "GB":
        return country
    return None


def _reason(error: stdnum_errors.ValidationError) -> str:
    if isinstance(error, stdnum_errors.InvalidChecksum):
        return "checksum does not match"
    if isinstance(error, stdnum_errors.InvalidLength):
        return "it has the wrong number of characters"
    if isinstance(error, stdnum_errors.InvalidFormat):
        return "it is not in the expected format"
    if isinstance(error, stdnum_errors.InvalidComponent):
        return "it contains a part that is not allowed"
    return str(error)


def validate_eu_vat(value: str, country: str | None = None) -> str:
    """Check an EU (or Northern Ireland ``XI``) VAT number; return it compact, with prefix.

    ``country`` (ISO code, e.g. ``"DE"`` or ``"GR"``) lets callers accept a
    number typed without its prefix and refuses a number of another country.
    """
    shown = value.strip()
    if not shown:
        raise InvalidTaxId("The VAT number is empty.", value=value, kind="eu_vat")
    compact = clean(shown, " -./,:").upper()
    expected = country.strip().upper() if country else None
    if expected is not None and expected not in EU_MEMBER_STATES and expected != "GB":
        raise InvalidTaxId(
            f"{shown} cannot be an EU VAT number: {expected} is not an EU member state.",
            value=value,
            kind="eu_vat",
        )
    if compact[:2].isdigit() and expected is not None:
        compact = (vat_prefix(expected) if expected != "GB" else "XI") + compact
    named = country_of_vat_number(compact)
    if named is None or compact[:2] == "GB":
        raise InvalidTaxId(
            f"{shown} is not a valid EU VAT number: it must start with the member state "
            "code (e.g. DE, FR, EL).",
            value=value,
            kind="eu_vat",
        )
    adjective = _EU_ADJECTIVES.get(named, "Northern Irish")
    if expected is not None and named != expected:
        raise InvalidTaxId(
            f"{shown} is a {adjective} VAT number, but the country given is {expected}.",
            value=value,
            kind="eu_vat",
        )
    try:
        checked: str = eu_vat.validate(compact)
    except stdnum_errors.ValidationError as error:
        raise InvalidTaxId(
            f"{shown} is not a valid {adjective} VAT number: {_reason(error)}",
            value=value,
            kind="eu_vat",
        ) from error
    if checked.startswith("GR"):
        checked = "EL" + checked[2:]
    return checked


def _checked(
    value: str, kind: str, what: str, validate: Callable[[str], str], prefix: str = ""
) -> str:
    shown = value.strip()
    if not shown:
        raise InvalidTaxId(f"The {what} is empty.", value=value, kind=kind)
    try:
        return prefix + validate(shown)
    except stdnum_errors.ValidationError as error:
        raise InvalidTaxId(
            f"{shown} is not a valid {what}: {_reason(error)}", value=value, kind=kind
        ) from error


def validate_gb_vat(value: str) -> str:
    """Check a UK VAT number (``GB`` prefix optional); return ``GB`` + compact digits."""
    shown = value.strip()
    if shown[:2].upper() == "XI":
        raise InvalidTaxId(
            f"{shown} is a Northern Ireland (XI) number; give the GB VAT number.",
            value=value,
            kind="gb_vat",
        )
    return _checked(value, "gb_vat", "UK VAT number", gb_vat.validate, prefix="GB")


def validate_abn(value: str) -> str:
    """Check an Australian Business Number; return its 11 digits."""
    return _checked(value, "au_abn", "Australian Business Number (ABN)", au_abn.validate)


def validate_nz_ird(value: str) -> str:
    """Check a New Zealand IRD number (the GST number); return its 8 or 9 digits."""
    return _checked(value, "nz_ird", "New Zealand IRD/GST number", nz_ird.validate)


_BY_COUNTRY: dict[str, Callable[[str], str]] = {
    "GB": validate_gb_vat,
    "AU": validate_abn,
    "NZ": validate_nz_ird,
}


def can_validate(country: str) -> bool:
    """Whether Billbox can check tax ids of ``country`` (ISO 3166-1 alpha-2)."""
    country = country.strip().upper()
    return country in EU_MEMBER_STATES or country in _BY_COUNTRY


def validate_tax_id(value: str, country: str) -> str:
    """Check the business tax id of a party in ``country``; return it compact.

    EU member states: VAT number (prefix optional, must be that country's);
    GB: UK VAT number; AU: ABN; NZ: IRD/GST number. Any other country raises
    :class:`InvalidTaxId` saying the number cannot be checked; use
    :func:`can_validate` first when such ids should be kept unchecked.
    """
    country = country.strip().upper()
    if country in EU_MEMBER_STATES:
        return validate_eu_vat(value, country)
    validate = _BY_COUNTRY.get(country)
    if validate is None:
        raise InvalidTaxId(
            f"{value.strip()}: Billbox cannot check tax ids from "
            f"{country or 'an unknown country'}.",
            value=value,
        )
    return validate(value)
