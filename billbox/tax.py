"""Which tax a sale carries, and the document totals: pure functions, no database.

Two steps, both deterministic and offline::

    decision = determine(seller, buyer)            # treatment, rate, category, title, note
    totals = compute_totals(lines, decision, "GBP")  # line nets, tax lines, sums

Prices are **net** (tax-exclusive): ``Line.unit_amount`` is the price before
tax in the currency's minor unit (pence, cents, yen, fils). Gross prices are
not supported.

Rounding follows EN 16931: a line's net is ``quantity * unit_amount``, an
exact integer; tax is computed once per (jurisdiction, category, rate) on the
*sum* of the line nets with that rate and rounded once, half up (away from
zero, so a credit note mirrors its invoice), to the currency's minor unit.
Line-level tax is never rounded and never shown. The total is the sum of the
nets plus the sum of the tax amounts. No float is used anywhere: amounts are
``int``, rates are ``Decimal`` percentages (``Decimal("25.5")``).

How the treatment is chosen (place of supply for electronically supplied
services, which is what Billbox sells for its users), in this order:

1. **EU buyer**, seller has an EU registration:
   - buyer in the seller's own member state -> ``domestic`` at that rate (S);
   - buyer has a VAT number of another member state -> ``reverse_charge``,
     rate 0, category AE, note citing Article 196 of Directive 2006/112/EC;
   - consumer and seller registered for OSS (``eu_oss``; union scheme for EU
     sellers, non-union scheme ``EU…`` for others) -> ``oss`` at the
     *buyer's* country rate;
   - consumer and seller has a plain VAT registration in the buyer's state ->
     ``domestic`` there;
   - consumer, EU seller without OSS -> ``origin``: the *seller's* country
     rate. Simplification: this is only right while the seller's cross-border
     B2C sales to the EU stay under the EUR 10,000 threshold of Article 59c;
     Billbox does not track the threshold — a seller above it must add its OSS
     registration (then step 3 applies).
2. **UK, Australian or New Zealand buyer** and the seller is registered for
   ``gb_vat`` / ``au_gst`` / ``nz_gst``: ``domestic`` at 20 / 10 / 15 %.
   AU and NZ documents are titled "Tax invoice" when the seller is resident.
   Non-resident AU/NZ registrants (simplified GST, remote services) charge
   consumers but not registered businesses: a buyer with a valid ABN gets no
   GST (``outside_scope``, O), a buyer with a valid NZ GST number is
   zero-rated (``export``, Z). An ABN is taken as proof of GST registration.
3. **Buyer outside the seller's home tax area**, seller registered at home:
   EU seller -> ``outside_scope`` (O, note: Articles 44/59); UK seller ->
   ``outside_scope`` (O). Choice: services whose place of supply is outside
   the UK are *outside the scope* of UK VAT, not zero-rated (zero rating is
   for exported goods); the same holds for EU consumers of a UK seller, whose
   EU VAT is due only through an EU (non-union OSS) registration. AU seller ->
   ``export``, GST-free (Z, s 38-190); NZ seller -> ``export``, zero-rated
   (Z, s 11A(1)(k)).
4. Anything else (e.g. a US seller with no registration) -> ``no_tax``,
   rate 0, category O, no seller tax number. Registrations of scheme
   ``other`` never make Billbox charge tax.

The buyer's tax id is always validated when its country is one Billbox can
check (EU, GB, AU, NZ). An invalid id raises :class:`~billbox.taxids.InvalidTaxId`;
it never silently turns a business sale into a consumer sale — the caller
decides (ask the customer, or retry with ``tax_id=None`` on purpose). Ids of
other countries are printed as given and never influence the tax. A buyer
without a country is assumed to buy in the seller's country (e.g. a walk-in
receipt); a buyer with a tax id but no country gets the country the VAT
prefix names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import cache
from importlib import resources
from typing import Any

from billbox.errors import BillboxError
from billbox.models.base import StrEnum
from billbox.models.enums import TaxScheme
from billbox.money import check_currency, exponent
from billbox.taxids import (
    EU_MEMBER_STATES,
    InvalidTaxId,
    can_validate,
    country_of_vat_number,
    validate_abn,
    validate_eu_vat,
    validate_gb_vat,
    validate_nz_ird,
    validate_tax_id,
)

__all__ = [
    "Buyer",
    "Category",
    "InvalidTaxId",
    "Line",
    "LineTotal",
    "RateTable",
    "Registration",
    "Seller",
    "TaxDecision",
    "TaxError",
    "TaxLine",
    "Totals",
    "Treatment",
    "compute_totals",
    "determine",
    "load_rates",
]

_HUNDRED = Decimal(100)
_ZERO = Decimal(0)


class TaxError(BillboxError):
    """The inputs do not allow a tax decision (unknown country, missing rate, …)."""


class Treatment(StrEnum):
    DOMESTIC = "domestic"  # tax of the buyer's (= a registration's) country
    REVERSE_CHARGE = "reverse_charge"  # EU B2B cross-border, buyer accounts for VAT
    OSS = "oss"  # EU B2C cross-border, buyer's country rate, declared via OSS
    ORIGIN = "origin"  # EU B2C cross-border under the EUR 10,000 threshold
    EXPORT = "export"  # zero-rated / GST-free (AU, NZ)
    OUTSIDE_SCOPE = "outside_scope"  # place of supply outside the seller's tax area
    NO_TAX = "no_tax"  # the seller is not registered anywhere relevant


class Category(StrEnum):
    """EN 16931 VAT category codes (UNCL5305 subset)."""

    STANDARD = "S"
    REVERSE_CHARGE = "AE"
    ZERO_RATED = "Z"
    EXEMPT = "E"
    OUTSIDE_SCOPE = "O"


# --- inputs -----------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """One tax registration of the seller: ``scheme`` is a ``TaxScheme`` value."""

    scheme: str
    country: str
    number: str


@dataclass(frozen=True)
class Seller:
    country: str
    registrations: tuple[Registration, ...] = ()


@dataclass(frozen=True)
class Buyer:
    country: str | None = None
    tax_id: str | None = None


@dataclass(frozen=True)
class Line:
    """A document line; ``unit_amount`` is the **net** unit price in minor units."""

    description: str
    quantity: int
    unit_amount: int

    def __post_init__(self) -> None:
        for name in ("quantity", "unit_amount"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")

    @property
    def net_amount(self) -> int:
        return self.quantity * self.unit_amount


# --- outputs ----------------------------------------------------------------


@dataclass(frozen=True)
class TaxDecision:
    treatment: Treatment
    jurisdiction: str  # ISO country whose tax applies (or the seller's, if none)
    rate: Decimal  # percent, e.g. Decimal("19"); 0 unless category S
    category: Category
    document_title: str  # "Invoice", or "Tax invoice" for AU/NZ GST
    legal_note: str | None
    seller_tax_number: str | None  # compact; the number to print for the seller
    seller_tax_label: str | None = None  # "VAT", "ABN", "GST" — printed before it
    buyer_tax_number: str | None = None  # compact if checked; as given otherwise


@dataclass(frozen=True)
class LineTotal:
    net_amount: int
    rate: Decimal
    category: Category


@dataclass(frozen=True)
class TaxLine:
    jurisdiction: str
    category: Category
    rate: Decimal
    taxable_amount: int
    tax_amount: int


@dataclass(frozen=True)
class Totals:
    lines: tuple[LineTotal, ...]
    tax_lines: tuple[TaxLine, ...]
    subtotal: int
    tax_total: int
    total: int
    currency: str

    def major(self, amount: int) -> Decimal:
        """``amount`` minor units as an exact major-unit Decimal (``241670`` -> ``2416.70``)."""
        places = exponent(self.currency)
        return Decimal(amount).scaleb(-places).quantize(Decimal(1).scaleb(-places))


# --- rates ------------------------------------------------------------------


@dataclass(frozen=True)
class RateTable:
    """The contents of ``billbox/data/tax_rates.json``."""

    source: str
    as_of: str
    standard: Mapping[str, Decimal]
    notes: Mapping[str, str]

    def rate(self, country: str) -> Decimal:
        try:
            return self.standard[country]
        except KeyError:
            raise TaxError(f"no tax rate known for {country}") from None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RateTable:
        standard = {
            code: Decimal(str(entry["standard"])) for code, entry in data["countries"].items()
        }
        return cls(
            source=str(data["source"]),
            as_of=str(data["as_of"]),
            standard=standard,
            notes={key: str(text) for key, text in data["legal_notes"].items()},
        )


@cache
def load_rates() -> RateTable:
    """The shipped rate table (read once, with ``importlib.resources``)."""
    text = resources.files("billbox.data").joinpath("tax_rates.json").read_text("utf-8")
    return RateTable.from_json(json.loads(text, parse_float=Decimal))


# --- determination -----------------------------------------------------------

_LABELS = {
    TaxScheme.EU_VAT: "VAT",
    TaxScheme.EU_OSS: "VAT",
    TaxScheme.GB_VAT: "VAT",
    TaxScheme.AU_GST: "ABN",
    TaxScheme.NZ_GST: "GST",
}
_HOME_SCHEMES = {"GB": TaxScheme.GB_VAT, "AU": TaxScheme.AU_GST, "NZ": TaxScheme.NZ_GST}


def _checked_registration(reg: Registration) -> Registration:
    """The registration with its number validated and compacted (InvalidTaxId otherwise)."""
    try:
        scheme = TaxScheme(reg.scheme)
    except ValueError:
        known = ", ".join(member.value for member in TaxScheme)
        raise TaxError(f"unknown tax scheme {reg.scheme!r} (known: {known})") from None
    country = reg.country.strip().upper()
    number = reg.number
    if scheme is TaxScheme.EU_VAT:
        number = validate_eu_vat(number, country)
    elif scheme is TaxScheme.EU_OSS:
        compact = number.strip().upper().replace(" ", "")
        if compact.startswith("EU") and compact[2:].isdigit() and len(compact) == 11:
            number = compact  # non-union scheme id: format only, it has no check digit
        else:
            number = validate_eu_vat(number)
    elif scheme is TaxScheme.GB_VAT:
        number = validate_gb_vat(number)
    elif scheme is TaxScheme.AU_GST:
        number = validate_abn(number)
    elif scheme is TaxScheme.NZ_GST:
        number = validate_nz_ird(number)
    else:
        number = number.strip()
    return Registration(scheme=scheme, country=country, number=number)


def _find(
    regs: Iterable[Registration], scheme: TaxScheme, country: str | None = None
) -> Registration | None:
    for reg in regs:
        if reg.scheme == scheme and (country is None or reg.country == country):
            return reg
    return None


def _buyer_country_and_id(buyer: Buyer, seller_country: str) -> tuple[str, str | None, bool]:
    """(country, tax id, whether the id was checked) for the buyer."""
    tax_id = buyer.tax_id.strip() if buyer.tax_id and buyer.tax_id.strip() else None
    country = buyer.country.strip().upper() if buyer.country else None
    if country is None and tax_id is not None:
        country = country_of_vat_number(tax_id)
        if country is None:
            raise TaxError(
                f"cannot tell which country the tax id {tax_id} belongs to; "
                "give the buyer's country"
            )
    if country is None:
        country = seller_country
    if tax_id is None:
        return country, None, False
    if not can_validate(country):
        return country, tax_id, False
    return country, validate_tax_id(tax_id, country), True


def determine(seller: Seller, buyer: Buyer, rates: RateTable | None = None) -> TaxDecision:
    """Decide treatment, rate and wording for a sale; see the module docstring for the rules.

    Raises :class:`InvalidTaxId` for an invalid buyer tax id or seller
    registration number, :class:`TaxError` for inputs that allow no decision.
    """
    table = rates or load_rates()
    seller_country = seller.country.strip().upper()
    regs = tuple(_checked_registration(reg) for reg in seller.registrations)
    country, buyer_id, checked = _buyer_country_and_id(buyer, seller_country)
    is_business = buyer_id is not None and checked

    def decision(
        treatment: Treatment,
        jurisdiction: str,
        category: Category,
        reg: Registration | None,
        note: str | None = None,
        title: str = "Invoice",
    ) -> TaxDecision:
        rate = table.rate(jurisdiction) if category is Category.STANDARD else _ZERO
        return TaxDecision(
            treatment=treatment,
            jurisdiction=jurisdiction,
            rate=rate,
            category=category,
            document_title=title,
            legal_note=table.notes[note] if note else None,
            seller_tax_number=reg.number if reg else None,
            seller_tax_label=_LABELS.get(TaxScheme(reg.scheme)) if reg else None,
            buyer_tax_number=buyer_id,
        )

    # 1. EU buyer
    if country in EU_MEMBER_STATES:
        home = (
            _find(regs, TaxScheme.EU_VAT, seller_country)
            if seller_country in EU_MEMBER_STATES
            else None
        )
        local = _find(regs, TaxScheme.EU_VAT, country)
        oss = _find(regs, TaxScheme.EU_OSS)
        any_eu = home or local or oss
        if home and country == seller_country:
            return decision(Treatment.DOMESTIC, country, Category.STANDARD, home)
        if any_eu and is_business:
            return decision(
                Treatment.REVERSE_CHARGE,
                country,
                Category.REVERSE_CHARGE,
                any_eu,
                note="reverse_charge",
            )
        if oss:
            shown = home or _find(regs, TaxScheme.EU_VAT) or oss
            return decision(Treatment.OSS, country, Category.STANDARD, shown)
        if local:
            return decision(Treatment.DOMESTIC, country, Category.STANDARD, local)
        if home:
            return decision(Treatment.ORIGIN, seller_country, Category.STANDARD, home)

    # 2. UK / AU / NZ buyer with a matching registration
    scheme = _HOME_SCHEMES.get(country)
    reg = _find(regs, scheme) if scheme else None
    if scheme and reg:
        resident = seller_country == country
        if scheme is TaxScheme.GB_VAT:
            return decision(Treatment.DOMESTIC, country, Category.STANDARD, reg)
        if not resident and is_business and scheme is TaxScheme.AU_GST:
            return decision(
                Treatment.OUTSIDE_SCOPE,
                country,
                Category.OUTSIDE_SCOPE,
                reg,
                note="au_business_no_gst",
            )
        if not resident and is_business:
            return decision(
                Treatment.EXPORT, country, Category.ZERO_RATED, reg, note="nz_business_zero_rated"
            )
        title = "Tax invoice" if resident else "Invoice"
        return decision(Treatment.DOMESTIC, country, Category.STANDARD, reg, title=title)

    # 3. Buyer outside the seller's home tax area
    if seller_country in EU_MEMBER_STATES and country not in EU_MEMBER_STATES:
        home = _find(regs, TaxScheme.EU_VAT, seller_country)
        if home:
            return decision(
                Treatment.OUTSIDE_SCOPE,
                seller_country,
                Category.OUTSIDE_SCOPE,
                home,
                note="eu_outside_scope",
            )
    home_scheme = _HOME_SCHEMES.get(seller_country)
    home_reg = _find(regs, home_scheme, None) if home_scheme else None
    if home_reg and country != seller_country:
        if home_scheme is TaxScheme.GB_VAT:
            return decision(
                Treatment.OUTSIDE_SCOPE,
                seller_country,
                Category.OUTSIDE_SCOPE,
                home_reg,
                note="gb_outside_scope",
            )
        note = "au_gst_free_export" if home_scheme is TaxScheme.AU_GST else "nz_zero_rated_export"
        return decision(Treatment.EXPORT, seller_country, Category.ZERO_RATED, home_reg, note=note)

    # 4. No registration applies
    return decision(Treatment.NO_TAX, seller_country, Category.OUTSIDE_SCOPE, None)


# --- totals -----------------------------------------------------------------


def _round_tax(taxable: int, rate: Decimal) -> int:
    """``taxable * rate %`` rounded once, half up, to whole minor units."""
    if not isinstance(rate, Decimal):
        raise TypeError(f"rate must be a Decimal, got {rate!r}")
    with localcontext() as ctx:
        ctx.prec = 50
        exact = Decimal(taxable) * rate / _HUNDRED
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def compute_totals(lines: Iterable[Line], decision: TaxDecision, currency: str) -> Totals:
    """Line nets, one tax line per (jurisdiction, category, rate), and the sums.

    Amounts are net minor units of ``currency`` (``billbox.money.exponent``
    tells how many digits the minor unit has); see the module docstring for
    the rounding rule.
    """
    currency = check_currency(currency)
    line_totals = tuple(
        LineTotal(net_amount=line.net_amount, rate=decision.rate, category=decision.category)
        for line in lines
    )
    groups: dict[tuple[str, Category, Decimal], int] = {}
    for line_total in line_totals:
        key = (decision.jurisdiction, line_total.category, line_total.rate)
        groups[key] = groups.get(key, 0) + line_total.net_amount
    tax_lines = tuple(
        TaxLine(
            jurisdiction=jurisdiction,
            category=category,
            rate=rate,
            taxable_amount=taxable,
            tax_amount=_round_tax(taxable, rate),
        )
        for (jurisdiction, category, rate), taxable in groups.items()
    )
    subtotal = sum(line.net_amount for line in line_totals)
    tax_total = sum(tax.tax_amount for tax in tax_lines)
    return Totals(
        lines=line_totals,
        tax_lines=tax_lines,
        subtotal=subtotal,
        tax_total=tax_total,
        total=subtotal + tax_total,
        currency=currency,
    )


#: Public name for forms that take a seller's registrations (the brand settings page).
checked_registration = _checked_registration
