"""Brand settings as an admin edits them: parse a form, say what is wrong, apply it.

Validation is here (not in the view) so the CLI, the API and tests share
it. A field error is a sentence naming the field, e.g. ``accent_color:
use a colour like #1f2937``. A tax registration is checked like a tax id
(python-stdnum), and a logo is re-encoded as PNG by Pillow, which both
proves it is an image and drops whatever else the file carried.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlmodel import Session, select

from billbox.models import Brand, DocumentKind, NumberSeries
from billbox.money import Money, check_currency
from billbox.tax import Registration, TaxError, checked_registration
from billbox.taxids import InvalidTaxId

LOCALES = ("en", "es", "de", "fr")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
MAX_LOGO_BYTES = 512 * 1024
MAX_LOGO_PIXELS = 2000
TEXT_LIMITS = {"name": 200, "legal_name": 200, "address": 2000, "footer": 2000, "legal_text": 4000}


@dataclass
class BrandForm:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_registrations(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """One registration per line, ``scheme country number`` (``eu_vat DE DE136695976``)."""
    registrations: list[dict[str, str]] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(None, 2)
        if len(parts) != 3:
            problems.append(f"line {number}: write 'scheme country number'")
            continue
        try:
            reg = checked_registration(Registration(parts[0].lower(), parts[1], parts[2]))
        except (TaxError, InvalidTaxId) as exc:
            problems.append(f"line {number}: {exc}")
            continue
        registrations.append({"scheme": reg.scheme, "country": reg.country, "number": reg.number})
    return registrations, problems


def parse_caps(text: str) -> tuple[dict[str, int], str | None]:
    """``EUR 500; USD 250.50`` (major units) → ``{"EUR": 50000, "USD": 25050}``, or an error."""
    caps: dict[str, int] = {}
    for entry in re.split(r"[;,\n]", text):
        parts = entry.split()
        if not parts:
            continue
        if len(parts) != 2:
            return {}, f"write each cap as 'CUR amount', e.g. EUR 500 (got {entry.strip()!r})"
        try:
            money = Money.from_decimal(parts[1], check_currency(parts[0]))
        except (ValueError, ArithmeticError) as exc:
            return {}, f"{entry.strip()!r}: {exc}"
        if money.amount <= 0:
            return {}, f"{entry.strip()!r}: a cap is more than zero"
        caps[money.currency] = money.amount
    return caps, None


def caps_text(caps: dict[str, int]) -> str:
    return "; ".join(f"{c} {Money(int(v), c).to_decimal()}" for c, v in sorted(caps.items()))


def registrations_text(registrations: list[dict[str, str]]) -> str:
    return "\n".join(f"{r['scheme']} {r['country']} {r['number']}" for r in registrations)


def parse_brand_form(
    form: Mapping[str, str], *, session: Session, brand_id: int | None
) -> BrandForm:
    result = BrandForm()
    values = result.values
    errors = result.errors
    for name, limit in TEXT_LIMITS.items():
        values[name] = form.get(name, "").strip().replace("\r\n", "\n")
        if len(values[name]) > limit:
            errors[name] = f"at most {limit} characters"
    for required in ("name", "legal_name"):
        if not values[required]:
            errors[required] = "required"
    slug = form.get("slug", "").strip().lower()
    if not SLUG.match(slug):
        errors["slug"] = "lower-case letters, digits and '-' (it appears in URLs)"
    else:
        clash = session.exec(select(Brand).where(Brand.slug == slug)).first()
        if clash is not None and clash.id != brand_id:
            errors["slug"] = f"{slug!r} is used by brand {clash.name!r}"
    values["slug"] = slug
    country = form.get("country", "").strip().upper()
    if not (len(country) == 2 and country.isalpha()):
        errors["country"] = "a two-letter ISO 3166 code, e.g. DE"
    values["country"] = country
    for colour in ("primary_color", "accent_color"):
        values[colour] = form.get(colour, "").strip()
        if not COLOUR.match(values[colour]):
            errors[colour] = "use a colour like #1f2937"
    values["email_from"] = form.get("email_from", "").strip()
    if values["email_from"] and not EMAIL.match(values["email_from"]):
        errors["email_from"] = "an email address, e.g. billing@example.com"
    values["locale"] = form.get("locale", "en")
    if values["locale"] not in LOCALES:
        errors["locale"] = f"one of {', '.join(LOCALES)}"
    try:
        values["default_currency"] = check_currency(form.get("default_currency", ""))
    except ValueError as exc:
        values["default_currency"] = form.get("default_currency", "")
        errors["default_currency"] = str(exc)
    values["issue_credit_notes"] = form.get("issue_credit_notes") in ("1", "on", "true")
    values["customer_can_cancel"] = form.get("customer_can_cancel") in ("1", "on", "true")
    caps, problem = parse_caps(form.get("agent_refund_caps", ""))
    values["agent_refund_caps"] = caps
    if problem:
        errors["agent_refund_caps"] = problem
    registrations, problems = parse_registrations(form.get("tax_registrations", ""))
    values["tax_registrations"] = registrations
    if problems:
        errors["tax_registrations"] = "; ".join(problems)
    return result


def apply_brand_form(brand: Brand, form: BrandForm) -> Brand:
    for name, value in form.values.items():
        setattr(brand, name, value)
    return brand


class LogoError(ValueError):
    """An upload that is not a usable logo image."""


def normalise_logo(data: bytes) -> bytes:
    """The upload re-encoded as PNG, or :class:`LogoError` saying why not."""
    if not data:
        raise LogoError("choose an image file")
    if len(data) > MAX_LOGO_BYTES:
        raise LogoError(f"the logo must be at most {MAX_LOGO_BYTES // 1024} KB")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG", "GIF", "WEBP"):
                raise LogoError("upload a PNG, JPEG, GIF or WebP image")
            if max(image.size) > MAX_LOGO_PIXELS:
                raise LogoError(f"the logo must be at most {MAX_LOGO_PIXELS} pixels wide and high")
            image.load()
            converted = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        raise LogoError(f"not a readable image ({exc.__class__.__name__})") from None
    out = io.BytesIO()
    converted.save(out, format="PNG", optimize=True)
    return out.getvalue()


SERIES_DEFAULTS = {
    DocumentKind.RECEIPT: "RCT",
    DocumentKind.INVOICE: "INV",
    DocumentKind.CREDIT_NOTE: "CN",
}
SERIES_FORMAT = re.compile(r"^[^{}]*(\{(prefix|year|seq(:0\dd)?)\}[^{}]*)+$")


def check_series_format(pattern: str, prefix: str) -> str | None:
    """An error sentence for a numbering format, or None; it must contain ``{seq}``."""
    if not SERIES_FORMAT.match(pattern) or "{seq" not in pattern:
        return "use {prefix}, {year} and {seq} (or {seq:06d}), e.g. {prefix}-{year}-{seq:06d}"
    if not re.match(r"^[A-Za-z0-9-]{1,16}$", prefix):
        return "the prefix is 1-16 letters, digits or '-'"
    return None


def series_of(session: Session, brand_id: int) -> list[NumberSeries]:
    return list(session.exec(select(NumberSeries).where(NumberSeries.brand_id == brand_id)))
