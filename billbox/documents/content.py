"""What a document says, decided from the ledger: amounts, tax decision, snapshots, title.

Pure functions over rows already loaded; no session, no numbering, no PDF.
See :mod:`billbox.documents.issue` for why a gateway amount is the gross
total and how the net is found from it.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from billbox.errors import PermanentError
from billbox.logs import get_logger
from billbox.models import (
    Brand,
    Customer,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentTaxLine,
    Payment,
)
from billbox.tax import (
    Buyer,
    Category,
    InvalidTaxId,
    Line,
    Registration,
    Seller,
    TaxDecision,
    TaxError,
    Totals,
    Treatment,
    compute_totals,
    determine,
)

__all__ = [
    "buyer_snapshot",
    "decide",
    "decision_of",
    "document_title",
    "net_from_gross",
    "payment_method_label",
    "seller_snapshot",
]

log = get_logger("billbox.documents")

_CARD_BRANDS = {
    "visa": "Visa", "mastercard": "Mastercard", "amex": "American Express", "jcb": "JCB",
    "discover": "Discover", "diners": "Diners Club", "unionpay": "UnionPay",
    "cartes_bancaires": "Cartes Bancaires",
}  # fmt: skip
_TAX_LABELS = {"eu_vat": "VAT", "eu_oss": "VAT (OSS)", "gb_vat": "VAT", "au_gst": "ABN",
               "nz_gst": "GST"}  # fmt: skip


# --- amounts ------------------------------------------------------------------


def net_from_gross(gross: int, decision: TaxDecision, currency: str) -> tuple[int, Totals]:
    """The largest net whose EN 16931 total does not exceed ``gross``, with its totals."""

    def totals(net: int) -> Totals:
        return compute_totals([Line("", 1, net)], decision, currency)

    if decision.rate == 0 or gross <= 0:
        return gross, totals(gross)
    net = int((Decimal(gross) * 100 / (100 + decision.rate)).to_integral_value(ROUND_FLOOR))
    while totals(net + 1).total <= gross:
        net += 1
    while net > 0 and totals(net).total > gross:
        net -= 1
    return net, totals(net)


# --- snapshots ----------------------------------------------------------------


def seller_snapshot(brand: Brand, decision: TaxDecision) -> dict[str, object]:
    registrations: list[dict[str, str]] = []
    seen: set[str] = set()
    if decision.seller_tax_number:
        registrations.append(
            {"label": decision.seller_tax_label or "Tax ID", "number": decision.seller_tax_number}
        )
        seen.add(decision.seller_tax_number)
    for reg in brand.tax_registrations:
        number = str(reg.get("number", "")).strip().upper().replace(" ", "")
        if number and number not in seen:
            seen.add(number)
            registrations.append(
                {"label": _TAX_LABELS.get(str(reg.get("scheme")), "Tax ID"), "number": number}
            )
    return {
        "name": brand.name,
        "legal_name": brand.legal_name,
        "address": brand.address,
        "country": brand.country,
        "email": brand.email_from,
        "registrations": registrations,
    }


def buyer_snapshot(customer: Customer | None, payment: Payment) -> dict[str, object]:
    email = (customer.email if customer and customer.email else None) or payment.payer_email or ""
    return {
        "name": (customer.name if customer else "") or email,
        "email": email,
        "address": customer.address if customer else "",
        "country": (customer.country or "").upper() if customer else "",
        "tax_id": (customer.tax_id or "") if customer else "",
    }


def decide(brand: Brand, buyer: dict[str, object]) -> TaxDecision:
    seller = Seller(
        country=brand.country,
        registrations=tuple(
            Registration(str(r["scheme"]), str(r["country"]), str(r["number"]))
            for r in brand.tax_registrations
        ),
    )
    country = str(buyer.get("country") or "") or None
    tax_id = str(buyer.get("tax_id") or "") or None
    try:
        decision = determine(seller, Buyer(country=country, tax_id=tax_id))
    except InvalidTaxId as exc:
        if tax_id is None or exc.value.strip() != tax_id.strip():
            raise PermanentError(f"brand {brand.slug}: {exc}") from exc  # seller's number
        log.warning("buyer_tax_id_invalid", brand=brand.slug, reason=str(exc))
        buyer["tax_id_invalid"], buyer["tax_id"] = tax_id, ""
        decision = determine(seller, Buyer(country=country, tax_id=None))
    except TaxError as exc:
        if tax_id is None:
            raise PermanentError(f"brand {brand.slug}: {exc}") from exc
        log.warning("buyer_tax_id_unusable", brand=brand.slug, reason=str(exc))
        buyer["tax_id_invalid"], buyer["tax_id"] = tax_id, ""
        decision = determine(seller, Buyer(country=country, tax_id=None))
    if decision.buyer_tax_number:
        buyer["tax_id"] = decision.buyer_tax_number
    if not buyer.get("country"):
        buyer["country"] = decision.jurisdiction if country is None else country
    return decision


def payment_method_label(payment: Payment) -> str:
    """``Visa •••• 4242``, ``PayPal (payer@example.com)``; empty when unknown."""
    method = (payment.payment_method or "").strip()
    if method.lower() == "paypal":
        return f"PayPal ({payment.payer_email})" if payment.payer_email else "PayPal"
    name = _CARD_BRANDS.get(method.lower(), method.replace("_", " ").title())
    if payment.card_last4:
        return f"{name or 'Card'} \u2022\u2022\u2022\u2022 {payment.card_last4}"
    return name


def document_title(kind: DocumentKind, decision: TaxDecision, seller_country: str) -> str:
    if kind is DocumentKind.CREDIT_NOTE:
        resident_gst = decision.document_title == "Tax invoice"
        return "Adjustment note" if resident_gst and seller_country == "AU" else "Credit note"
    if decision.document_title == "Tax invoice":
        return "Tax invoice"
    return "Invoice" if kind is DocumentKind.INVOICE else "Receipt"


def decision_of(document: Document, tax: DocumentTaxLine | None) -> TaxDecision:
    """The tax decision an issued document was made with, from what it stored."""
    return TaxDecision(
        treatment=Treatment(document.tax_treatment),
        jurisdiction=tax.jurisdiction if tax else str(document.seller.get("country", "")),
        rate=Decimal(tax.rate) if tax else Decimal(0),
        category=Category(tax.category) if tax else Category.OUTSIDE_SCOPE,
        document_title="Tax invoice" if document.title == "Tax invoice" else "Invoice",
        legal_note=document.legal_note,
        seller_tax_number=None,
    )


def line_rows(document_id: int, items: list[Line], decision: TaxDecision) -> list[DocumentLine]:
    """The document's line rows, in order, each carrying the decision's rate and category."""
    return [
        DocumentLine(
            document_id=document_id,
            position=i + 1,
            description=item.description[:500],
            quantity=item.quantity,
            unit_amount=item.unit_amount,
            net_amount=item.net_amount,
            tax_rate=decision.rate,
            tax_category=decision.category.value,
        )
        for i, item in enumerate(items)
    ]


def tax_rows(document_id: int, totals: Totals) -> list[DocumentTaxLine]:
    """One row per (jurisdiction, category, rate) of the computed totals."""
    return [
        DocumentTaxLine(
            document_id=document_id,
            jurisdiction=t.jurisdiction,
            category=t.category.value,
            rate=t.rate,
            taxable_amount=t.taxable_amount,
            tax_amount=t.tax_amount,
        )
        for t in totals.tax_lines
    ]
