"""A stored document, its lines and tax lines -> the template's context -> PDF bytes.

Only the document row and its snapshots are read (never today's customer),
so rendering an issued document again gives the same text. The brand is
read for what is pure presentation: logo, colours, footer and legal text.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from billbox.documents.view import (
    country_name,
    format_date,
    format_money,
    format_rate,
    labels,
    language_of,
    line_tax_amounts,
    local_legal_note,
    registration_label,
    translate_title,
)
from billbox.models import Brand, Document, DocumentKind, DocumentLine, DocumentTaxLine
from billbox.pdf import PdfRenderer, logo_data_uri, renderer, safe_colour

__all__ = ["TEMPLATE", "document_context", "render_document"]

TEMPLATE = "documents/document.html"


def _lines_of(text: object) -> list[str]:
    return [line.strip() for line in str(text or "").splitlines() if line.strip()]


def _str(value: object) -> str:
    return "" if value is None else str(value)


def document_context(
    document: Document,
    lines: Sequence[DocumentLine],
    tax_lines: Sequence[DocumentTaxLine],
    brand: Brand,
    *,
    credits_number: str | None = None,
) -> dict[str, Any]:
    """Everything the template prints, already translated and formatted."""
    locale = document.locale or brand.locale
    cur = document.currency

    def money(amount: int) -> str:
        return format_money(amount, cur, locale)

    ordered = sorted(lines, key=lambda line: line.position)
    group_tax: dict[Decimal, int] = {}
    for tax in tax_lines:
        group_tax[Decimal(tax.rate)] = group_tax.get(Decimal(tax.rate), 0) + tax.tax_amount
    shares = line_tax_amounts(
        [line.net_amount for line in ordered],
        [Decimal(line.tax_rate) for line in ordered],
        group_tax,
    )
    text = labels(locale)
    seller, buyer = document.seller, document.buyer
    home = str(seller.get("country") or "")
    jurisdiction = tax_lines[0].jurisdiction if tax_lines else None
    stored = seller.get("registrations")
    registrations = stored if isinstance(stored, list) else []
    notes = [
        note
        for note in (
            local_legal_note(document.tax_treatment, locale, jurisdiction),
            document.legal_note,
        )
        if note
    ]
    credit = document.kind is DocumentKind.CREDIT_NOTE
    logo = logo_data_uri(brand.logo) if brand.logo else None
    return {
        "language": language_of(locale),
        "L": text,
        "colours": {
            "primary": safe_colour(brand.primary_color, "#1f2937"),
            "accent": safe_colour(brand.accent_color, "#2563eb"),
        },
        "logo": logo,
        "doc": {
            "title": translate_title(document.title or "Receipt", locale),
            "number": document.number,
            "issue_date": format_date(document.issued_at or document.created_at, locale),
            "supply_date": format_date(document.supplied_at, locale),
            "currency": cur,
            "credits": credits_number,
        },
        "seller": {
            "name": _str(seller.get("name")),
            "legal_name": _str(seller.get("legal_name")),
            "address_lines": _lines_of(seller.get("address")),
            "email": _str(seller.get("email")),
            "registrations": [
                {
                    "label": registration_label(_str(reg.get("label")), locale),
                    "number": _str(reg.get("number")),
                }
                for reg in registrations
                if isinstance(reg, dict)
            ],
        },
        "buyer": {
            "name": _str(buyer.get("name")),
            "address_lines": _lines_of(buyer.get("address")),
            "country_name": country_name(_str(buyer.get("country")) or None, locale),
            "tax_id": _str(buyer.get("tax_id")),
            "email": _str(buyer.get("email")),
        },
        "lines": [
            {
                "description": line.description,
                "quantity": line.quantity,
                "unit_price": money(line.unit_amount),
                "rate": format_rate(Decimal(line.tax_rate), locale),
                "tax_amount": money(share),
                "amount": money(line.net_amount),
            }
            for line, share in zip(ordered, shares, strict=True)
        ],
        "tax_rows": [
            {
                "category": text.get("category_" + tax.category, tax.category)
                + (f" ({tax.jurisdiction})" if home and tax.jurisdiction != home else ""),
                "rate": format_rate(Decimal(tax.rate), locale),
                "taxable": money(tax.taxable_amount),
                "tax": money(tax.tax_amount),
            }
            for tax in tax_lines
        ],
        "totals": {
            "subtotal": money(document.subtotal),
            "tax_total": money(document.tax_total),
            "total": money(document.total),
            "rounding": money(document.rounding_amount) if document.rounding_amount else None,
            "settled_label": text["amount_credited" if credit else "amount_paid"],
            "settled": money(document.total + document.rounding_amount),
        },
        "payment_method": document.payment_method,
        "billing_url": document.billing_url,
        "notes": notes,
        "legal_text": brand.legal_text,
        "footer": brand.footer,
    }


def render_document(
    document: Document,
    lines: Sequence[DocumentLine],
    tax_lines: Sequence[DocumentTaxLine],
    brand: Brand,
    *,
    media_dir: Path | None = None,
    credits_number: str | None = None,
    engine: PdfRenderer | None = None,
) -> bytes:
    """The document as PDF bytes (A4, DejaVu Sans, the brand's colours and logo)."""
    context = document_context(document, lines, tax_lines, brand, credits_number=credits_number)
    pdf = engine or renderer(media_dir)
    allowed = frozenset({context["logo"]}) if context["logo"] else frozenset()
    return pdf.render(TEMPLATE, context, allowed)
