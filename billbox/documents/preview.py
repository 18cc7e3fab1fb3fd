"""A sample receipt for a brand, built in memory: what the admin's preview buttons show.

Nothing is stored or numbered: the document, its lines and tax lines are
plain objects made the way the issuer makes them (same tax decision, same
snapshots, same rounding), for a made-up customer in the brand's own
country, so the preview shows the brand's real title, registrations,
colours, logo, footer and language.
"""

from __future__ import annotations

from datetime import UTC, datetime

from billbox.documents.content import (
    decide,
    document_title,
    line_rows,
    seller_snapshot,
    tax_rows,
)
from billbox.models import (
    Brand,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentState,
    DocumentTaxLine,
)
from billbox.tax import Line, compute_totals

SAMPLE_LINES = (("Pro plan, monthly", 1, 2900), ("Extra seats", 3, 700))


def sample_receipt(
    brand: Brand, *, public_url: str = ""
) -> tuple[Document, list[DocumentLine], list[DocumentTaxLine]]:
    buyer: dict[str, object] = {
        "name": "Alex Example",
        "email": "alex@example.com",
        "address": "1 Sample Street",
        "country": brand.country,
        "tax_id": "",
    }
    decision = decide(brand, buyer)
    items = [Line(description, quantity, amount) for description, quantity, amount in SAMPLE_LINES]
    currency = brand.default_currency or "EUR"
    totals = compute_totals(items, decision, currency)
    now = datetime.now(UTC)
    document = Document(
        id=0,
        customer_id=0,  # no real customer: the preview is written to the sample buyer
        brand_id=brand.id or 0,
        kind=DocumentKind.RECEIPT,
        state=DocumentState.NUMBERED,
        series="preview",
        sequence=1,
        number="PREVIEW-000001",
        source_key="preview",
        currency=currency,
        subtotal=totals.subtotal,
        tax_total=totals.tax_total,
        total=totals.total,
        tax_treatment=decision.treatment.value,
        locale=brand.locale,
        title=document_title(DocumentKind.RECEIPT, decision, brand.country),
        legal_note=decision.legal_note,
        payment_method="Visa •••• 4242",
        billing_url=f"{public_url.rstrip('/')}/billing" if public_url else None,
        seller=seller_snapshot(brand, decision),
        buyer=buyer,
        issued_at=now,
        supplied_at=now,
    )
    lines = line_rows(0, items, decision)
    taxes = tax_rows(0, totals)
    return document, lines, taxes
