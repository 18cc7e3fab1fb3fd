"""What a document says, in the reader's language: labels, titles and Babel formatting.

The PDF template and the email both print documents, so the wording and
the formatting of dates, amounts and rates live here, once. Labels exist in
English, Spanish, German and French; any other locale gets English labels
but keeps its own number and date formats when Babel knows it (``it`` ->
"1.190,00 €" with English words), which is what a reader expects from a
foreign-language document.

Amounts are integer minor units converted to an exact ``Decimal`` before
Babel sees them; no float is ever formatted. Dates are printed in UTC (the
document's own timestamps are UTC; a customer's time zone is not known).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_format_date
from babel.numbers import format_currency, format_decimal

from billbox.money import exponent

__all__ = [
    "LANGUAGES",
    "format_date",
    "format_money",
    "format_rate",
    "label",
    "labels",
    "language_of",
    "line_tax_amounts",
    "local_legal_note",
    "normalise_locale",
    "registration_label",
    "translate_title",
]

LANGUAGES = ("en", "es", "de", "fr")

_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "number": "Number", "issue_date": "Date of issue", "supply_date": "Date of supply",
        "seller": "From", "buyer": "Bill to", "tax_id": "Tax ID", "description": "Description",
        "quantity": "Qty", "unit_price": "Unit price", "tax_rate": "Tax rate",
        "tax_amount": "Tax", "amount": "Amount", "tax_summary": "Tax summary",
        "tax_category": "Category",
        "taxable_amount": "Taxable amount", "subtotal": "Subtotal (net)",
        "tax_total": "Total tax", "total": "Total", "rounding": "Rounding",
        "amount_paid": "Amount paid", "amount_credited": "Amount credited",
        "payment_method": "Payment method", "billing_page": "Your billing page",
        "currency": "Currency", "credits": "Credits document", "page": "Page",
        "email": "Email", "payment": "Payment", "refund": "Refund",
        "category_S": "Standard rate", "category_AE": "Reverse charge",
        "category_Z": "Zero rated", "category_E": "Exempt",
        "category_O": "Not subject to tax",
    },
    "de": {
        "number": "Nummer", "issue_date": "Ausstellungsdatum", "tax_category": "Kategorie",
        "supply_date": "Leistungsdatum",
        "seller": "Von", "buyer": "Rechnung an", "tax_id": "USt-IdNr.",
        "description": "Beschreibung", "quantity": "Menge", "unit_price": "Einzelpreis",
        "tax_rate": "Steuersatz", "tax_amount": "Steuer", "amount": "Betrag",
        "tax_summary": "Steuerübersicht", "taxable_amount": "Nettobetrag",
        "subtotal": "Summe netto", "tax_total": "Steuer gesamt",
        "total": "Gesamtbetrag", "rounding": "Rundung", "amount_paid": "Bezahlt",
        "amount_credited": "Gutgeschrieben", "payment_method": "Zahlungsart",
        "billing_page": "Ihre Abrechnungsseite", "currency": "Währung",
        "credits": "Korrektur zu", "page": "Seite", "email": "E-Mail", "payment": "Zahlung",
        "refund": "Erstattung", "category_S": "Regelsteuersatz",
        "category_AE": "Steuerschuldnerschaft des Leistungsempfängers",
        "category_Z": "Nullsatz", "category_E": "Steuerbefreit",
        "category_O": "Nicht steuerbar",
    },
    "fr": {
        "number": "Numéro", "issue_date": "Date d\u2019émission", "tax_category": "Catégorie",
        "supply_date": "Date de la prestation", "seller": "Émetteur", "buyer": "Facturé à",
        "tax_id": "N° TVA", "description": "Désignation", "quantity": "Qté",
        "unit_price": "Prix unitaire", "tax_rate": "Taux", "tax_amount": "TVA",
        "amount": "Montant", "tax_summary": "Récapitulatif TVA",
        "taxable_amount": "Base imposable", "subtotal": "Total HT", "tax_total": "Total TVA",
        "total": "Total TTC", "rounding": "Arrondi", "amount_paid": "Montant payé",
        "amount_credited": "Montant crédité", "payment_method": "Moyen de paiement",
        "billing_page": "Votre espace de facturation", "currency": "Devise",
        "credits": "Avoir sur", "page": "Page", "email": "E-mail", "payment": "Paiement",
        "refund": "Remboursement", "category_S": "Taux normal",
        "category_AE": "Autoliquidation", "category_Z": "Taux zéro",
        "category_E": "Exonéré", "category_O": "Hors champ de la TVA",
    },
    "es": {
        "number": "Número", "issue_date": "Fecha de emisión", "tax_category": "Categoría",
        "supply_date": "Fecha de la operación", "seller": "Emisor", "buyer": "Facturar a",
        "tax_id": "NIF/IVA", "description": "Concepto", "quantity": "Cant.",
        "unit_price": "Precio unitario", "tax_rate": "Tipo", "tax_amount": "Impuesto",
        "amount": "Importe", "tax_summary": "Resumen de impuestos",
        "taxable_amount": "Base imponible", "subtotal": "Subtotal (base)",
        "tax_total": "Total impuestos", "total": "Total", "rounding": "Redondeo",
        "amount_paid": "Importe pagado", "amount_credited": "Importe abonado",
        "payment_method": "Forma de pago", "billing_page": "Su página de facturación",
        "currency": "Moneda", "credits": "Rectifica", "page": "Página",
        "email": "Correo electrónico", "payment": "Pago", "refund": "Reembolso",
        "category_S": "Tipo general", "category_AE": "Inversión del sujeto pasivo",
        "category_Z": "Tipo cero", "category_E": "Exento",
        "category_O": "No sujeto",
    },
}  # fmt: skip

_TITLES: dict[str, dict[str, str]] = {
    "Receipt": {"en": "Receipt", "de": "Quittung", "fr": "Reçu", "es": "Recibo"},
    "Invoice": {"en": "Invoice", "de": "Rechnung", "fr": "Facture", "es": "Factura"},
    # AU/NZ: the words the GST Acts require, kept in English whatever the language.
    "Tax invoice": {"en": "Tax invoice", "de": "Tax invoice", "fr": "Tax invoice",
                    "es": "Tax invoice"},
    "Credit note": {"en": "Credit note", "de": "Gutschrift", "fr": "Avoir",
                    "es": "Factura rectificativa"},
    "Adjustment note": {"en": "Adjustment note", "de": "Adjustment note",
                        "fr": "Adjustment note", "es": "Adjustment note"},
}  # fmt: skip

#: The reverse-charge mention in the reader's language, printed above the
#: English legal note (Article 226(11a) of Directive 2006/112/EC asks for the
#: words "Reverse charge"; member states accept their own language too).
_REVERSE_CHARGE = {
    "de": "Steuerschuldnerschaft des Leistungsempfängers (Reverse Charge)",
    "fr": "Autoliquidation",
    "es": "Inversión del sujeto pasivo",
}


#: Seller registration labels stored on the document (English) in the reader's language.
_REGISTRATION_LABELS = {
    "de": {"VAT": "USt-IdNr.", "VAT (OSS)": "USt-IdNr. (OSS)"},
    "fr": {"VAT": "N° TVA", "VAT (OSS)": "N° TVA (OSS)"},
    "es": {"VAT": "NIF-IVA", "VAT (OSS)": "NIF-IVA (OSS)"},
}


def registration_label(text: str, locale: str) -> str:
    """``VAT`` -> ``USt-IdNr.`` in German; ABN and GST stay as the law names them."""
    return _REGISTRATION_LABELS.get(language_of(locale), {}).get(text, text)


@cache
def normalise_locale(value: str | None) -> str:
    """A locale Babel knows (``de_AT``, ``fr``), or ``en``; never raises."""
    text = (value or "").strip().replace("-", "_")
    if not text:
        return "en"
    try:
        return str(Locale.parse(text))
    except (UnknownLocaleError, ValueError, TypeError):
        return "en"


def language_of(locale: str) -> str:
    """The label language for ``locale``: its language if we have labels, else English."""
    language = normalise_locale(locale).split("_")[0]
    return language if language in _LABELS else "en"


def labels(locale: str) -> Mapping[str, str]:
    return _LABELS[language_of(locale)]


def label(locale: str, key: str) -> str:
    return labels(locale)[key]


def translate_title(title: str, locale: str) -> str:
    """The document title in the reader's language (unknown titles unchanged)."""
    return _TITLES.get(title, {}).get(language_of(locale), title)


_OSS = {
    "en": "VAT of {country} charged at its rate and declared under the EU One-Stop Shop (OSS)",
    "de": "Umsatzsteuer von {country} zu deren Satz, erklärt im One-Stop-Shop-Verfahren (OSS)",
    "fr": "TVA de {country} appliquée à son taux et déclarée via le guichet unique (OSS)",
    "es": "IVA de {country} a su tipo, declarado en la ventanilla única (OSS)",
}


def local_legal_note(treatment: str, locale: str, jurisdiction: str | None = None) -> str | None:
    """A mention in the reader's language: the reverse-charge words, or the OSS country."""
    language = language_of(locale)
    if treatment == "reverse_charge":
        return _REVERSE_CHARGE.get(language)
    if treatment == "oss" and jurisdiction:
        return _OSS[language].format(country=country_name(jurisdiction, locale))
    return None


def major(amount: int, currency: str) -> Decimal:
    """Minor units as an exact major-unit Decimal with the currency's digits."""
    places = exponent(currency)
    return Decimal(amount).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def format_money(amount: int, currency: str, locale: str) -> str:
    """``119000, "EUR", "de"`` -> ``1.190,00 €``."""
    return str(format_currency(major(amount, currency), currency, locale=normalise_locale(locale)))


def format_rate(rate: Decimal, locale: str) -> str:
    """A percentage rate: ``19 %`` (de, fr), ``19%`` (en), ``25,5 %``."""
    loc = normalise_locale(locale)
    number = format_decimal(rate.normalize(), locale=loc, decimal_quantization=False)
    spaced = language_of(loc) in ("de", "fr", "es")
    return f"{number}\u00a0%" if spaced else f"{number}%"


def format_date(value: datetime | None, locale: str) -> str:
    """The long local date (``25. November 2026``); empty for None."""
    if value is None:
        return ""
    return str(babel_format_date(value.date(), format="long", locale=normalise_locale(locale)))


def country_name(code: str | None, locale: str) -> str:
    """``DE`` -> ``Deutschland`` in German; the code itself if Babel does not know it."""
    if not code:
        return ""
    territories = Locale.parse(normalise_locale(locale)).territories
    return str(territories.get(code.upper(), code.upper()))


def line_tax_amounts(
    nets: Sequence[int], rates: Sequence[Decimal], group_tax: Mapping[Decimal, int]
) -> list[int]:
    """Each line's share of its rate group's tax, adding up to the group's tax exactly.

    EN 16931 rounds tax once per rate on the sum of the nets
    (``billbox.tax``), so a line has no tax of its own. The documents still
    show one per line, so the group's rounded tax is distributed over its
    lines in proportion to their nets with the largest-remainder method:
    the printed line taxes always add up to the tax summary.
    """
    shares = [0] * len(nets)
    for rate, tax in group_tax.items():
        members = [i for i, r in enumerate(rates) if r == rate]
        base = sum(nets[i] for i in members)
        if not members or base == 0:
            continue
        exact = [(Decimal(tax) * nets[i] / base, i) for i in members]
        floors = {i: int(value.to_integral_value(rounding="ROUND_FLOOR")) for value, i in exact}
        left = tax - sum(floors.values())
        by_remainder = sorted(exact, key=lambda pair: (-(pair[0] - floors[pair[1]]), pair[1]))
        for _value, i in by_remainder[:left]:
            floors[i] += 1
        for i, value in floors.items():
            shares[i] = value
    return shares
