"""Sellers, buyers and payments for the document tests: one case per tax jurisdiction.

Every tax id here is valid for python-stdnum. Each case states what its
PDF must say (title, wording, amounts in the buyer's locale), so the PDF
tests and the sample-rendering script share one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from billbox.models import (
    Brand,
    Customer,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    GatewayKind,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
)

PAID_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    """One jurisdiction: who sells to whom, what was paid, and what the PDF must show."""

    key: str
    brand: dict[str, Any]
    customer: dict[str, Any]
    amount: int
    currency: str
    description: str
    method: tuple[str, str | None, str | None]  # payment_method, card_last4, payer_email
    title: str
    expect: tuple[str, ...]  # strings the extracted text must contain
    net: int
    tax: int
    invoice_number: str | None = None
    absent: tuple[str, ...] = field(default=())


def _brand(slug: str, name: str, legal: str, address: str, country: str, regs, **kw) -> dict:
    return dict(
        slug=slug,
        name=name,
        legal_name=legal,
        address=address,
        country=country,
        tax_registrations=regs,
        footer=f"{legal} · {address.splitlines()[0]}",
        legal_text=kw.pop("legal_text", ""),
        email_from=f"billing@{slug}.example.com",
        **kw,
    )


CASES: dict[str, Case] = {
    "de_domestic": Case(
        key="de_domestic",
        brand=_brand(
            "northwind", "Northwind Cloud", "Northwind Cloud GmbH",
            "Friedrichstraße 123\n10117 Berlin", "DE",
            [{"scheme": "eu_vat", "country": "DE", "number": "DE136695976"}],
            primary_color="#0b3954", accent_color="#00a6a6", locale="de",
            legal_text="Amtsgericht Charlottenburg HRB 123456 B",
        ),
        customer=dict(name="Jürgen Groß", email="juergen@example.com", country="DE",
                      address="Hauptstraße 5\n10115 Berlin", locale="de"),
        amount=11900, currency="EUR", description="Team-Tarif, November 2026",
        method=("visa", "4242", None), title="Rechnung", invoice_number="NW-0042",
        net=10000, tax=1900,
        expect=("Rechnung", "INV-2026-000001", "Northwind Cloud GmbH", "Friedrichstraße 123",
                "USt-IdNr.: DE136695976", "Jürgen Groß", "Hauptstraße 5", "Deutschland",
                "Team-Tarif, November 2026", "Regelsteuersatz", "19 %", "100,00 €", "19,00 €",
                "119,00 €", "Ausstellungsdatum", "Leistungsdatum: 20. November 2026",
                "Visa •••• 4242", "Amtsgericht Charlottenburg"),
    ),
    "fr_de_reverse_charge": Case(
        key="fr_de_reverse_charge",
        brand=_brand(
            "lumiere", "Atelier Lumière", "Atelier Lumière SAS",
            "12 rue de Rivoli\n75001 Paris", "FR",
            [{"scheme": "eu_vat", "country": "FR", "number": "FR40303265045"}],
            primary_color="#3d2c8d", accent_color="#c84b31", locale="fr",
        ),
        customer=dict(name="Müller Maschinenbau GmbH", email="einkauf@example.com",
                      country="DE", address="Industriestraße 7\n70565 Stuttgart",
                      tax_id="DE 136 695 976", locale="fr"),
        amount=125000, currency="EUR", description="Licence annuelle Studio",
        method=("mastercard", "5454", None), title="Reçu",
        net=125000, tax=0,
        expect=("Reçu", "RCT-2026-000001", "Atelier Lumière SAS", "N° TVA: FR40303265045",
                "Müller Maschinenbau GmbH", "DE136695976", "Allemagne", "Autoliquidation",
                "Reverse charge: VAT to be accounted for by the recipient, Article 196",
                "1 250,00 €", "0,00 €", "20 novembre 2026", "Mastercard •••• 5454"),
    ),
    "es_it_oss": Case(
        key="es_it_oss",
        brand=_brand(
            "nunez", "Soluciones Núñez", "Soluciones Núñez S.L.",
            "Calle de Alcalá 45\n28014 Madrid", "ES",
            [{"scheme": "eu_vat", "country": "ES", "number": "ESB58378431"},
             {"scheme": "eu_oss", "country": "ES", "number": "ESB58378431"}],
            primary_color="#8b0000", accent_color="#e0a100", locale="es",
        ),
        customer=dict(name="Giulia Rossi", email="giulia@example.com", country="IT",
                      address="Via del Corso 10\n00186 Roma", locale="es"),
        amount=2440, currency="EUR", description="Suscripción mensual Pro",
        method=("paypal", None, "giulia@example.com"), title="Recibo",
        net=2000, tax=440,
        expect=("Recibo", "Soluciones Núñez S.L.", "NIF-IVA: ESB58378431", "Giulia Rossi",
                "Italia", "Tipo general (IT)", "22 %",
                "IVA de Italia a su tipo, declarado en la ventanilla única (OSS)",
                "20,00 €", "4,40 €", "24,40 €",
                "20 de noviembre de 2026", "PayPal (giulia@example.com)"),
    ),
    "uk": Case(
        key="uk",
        brand=_brand(
            "thames", "Thames Software", "Thames Software Ltd",
            "221B Baker Street\nLondon NW1 6XE", "GB",
            [{"scheme": "gb_vat", "country": "GB", "number": "GB980780684"}],
            primary_color="#012169", accent_color="#c8102e", locale="en_GB",
        ),
        customer=dict(name="Siobhán O'Brien", email="siobhan@example.com", country="GB",
                      address="10 Downing Street\nLondon SW1A 2AA", locale="en_GB"),
        amount=1200, currency="GBP", description="Pro plan, November 2026",
        method=("amex", "0005", None), title="Receipt",
        net=1000, tax=200,
        expect=("Receipt", "Thames Software Ltd", "VAT: GB980780684", "Siobhán O'Brien",
                "United Kingdom", "Standard rate", "20%", "£10.00", "£2.00", "£12.00",
                "20 November 2026", "American Express •••• 0005"),
    ),
    "au": Case(
        key="au",
        brand=_brand(
            "kangaroo", "Kangaroo Kits", "Kangaroo Kits Pty Ltd",
            "12 Wattle Street\nFitzroy VIC 3065", "AU",
            [{"scheme": "au_gst", "country": "AU", "number": "51824753556"}],
            primary_color="#2f4f2f", accent_color="#e07a1f", locale="en_AU",
        ),
        customer=dict(name="Isla Nguyen", email="isla@example.com", country="AU",
                      address="1 George Street\nSydney NSW 2000", locale="en_AU"),
        amount=8995, currency="AUD", description="Bushwalker Hydration Kit",
        method=("visa", "1881", None), title="Tax invoice",
        net=8177, tax=818,
        expect=("Tax invoice", "Kangaroo Kits Pty Ltd", "ABN: 51824753556", "Isla Nguyen",
                "Australia", "10%", "$81.77", "$8.18", "$89.95", "20 November 2026"),
    ),
    "nz": Case(
        key="nz",
        brand=_brand(
            "kiwi", "Kiwi Widgets", "Kiwi Widgets Ltd",
            "5 Queen Street\nAuckland 1010", "NZ",
            [{"scheme": "nz_gst", "country": "NZ", "number": "49091850"}],
            primary_color="#00247d", accent_color="#cc142b", locale="en_NZ",
        ),
        customer=dict(name="Aroha Walker", email="aroha@example.com", country="NZ",
                      address="20 Cuba Street\nWellington 6011", locale="en_NZ"),
        amount=2300, currency="NZD", description="Widget subscription, November",
        method=("mastercard", "4444", None), title="Tax invoice",
        net=2000, tax=300,
        expect=("Tax invoice", "Kiwi Widgets Ltd", "GST: 49091850", "Aroha Walker",
                "New Zealand", "15%", "$20.00", "$3.00", "$23.00"),
    ),
    "us_no_tax": Case(
        key="us_no_tax",
        brand=_brand(
            "acme", "Acme Apps", "Acme Apps Inc.",
            "500 Market Street\nSan Francisco, CA 94103", "US", [],
            primary_color="#333333", accent_color="#ff6600", locale="en_US",
        ),
        customer=dict(name="Дмитрий Иванов", email="dmitry@example.com", country="US",
                      address="77 Mass Ave\nCambridge, MA 02139", locale="en_US"),
        amount=4900, currency="USD", description="Acme Pro, annual",
        method=("visa", "0077", None), title="Receipt",
        net=4900, tax=0,
        expect=("Receipt", "Acme Apps Inc.", "Дмитрий Иванов", "United States",
                "Not subject to tax", "0%", "$49.00", "$0.00", "November 20, 2026"),
        absent=("VAT", "GST", "ABN"),
    ),
}  # fmt: skip


@dataclass
class World:
    brand: Brand
    account: GatewayAccount
    customer: Customer
    payment: Payment


def make_world(session: Session, case: Case, *, status: PaymentStatus = PaymentStatus.SUCCEEDED,
               external_id: str = "pi_1") -> World:  # fmt: skip
    """Brand, account, customer and one payment (and a paid gateway invoice if the case says)."""
    brand = Brand(**case.brand)
    session.add(brand)
    session.flush()
    assert brand.id is not None
    account = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name=case.key)
    customer = Customer(**case.customer)
    session.add_all([account, customer])
    session.flush()
    payment = add_payment(session, account, customer, case, status=status, external_id=external_id)
    return World(brand, account, customer, payment)


def add_payment(session: Session, account: GatewayAccount, customer: Customer, case: Case, *,
                status: PaymentStatus = PaymentStatus.SUCCEEDED, external_id: str = "pi_1",
                amount: int | None = None) -> Payment:  # fmt: skip
    assert account.id is not None
    invoice_id = None
    if case.invoice_number:
        invoice = GatewayInvoice(
            account_id=account.id, customer_id=customer.id, external_id=f"in_{external_id}",
            number=case.invoice_number, status=GatewayInvoiceStatus.PAID,
            amount_due=case.amount, amount_paid=case.amount, currency=case.currency,
        )  # fmt: skip
        session.add(invoice)
        session.flush()
        invoice_id = invoice.id
    method, last4, email = case.method
    payment = Payment(
        account_id=account.id, customer_id=customer.id, gateway_invoice_id=invoice_id,
        external_id=external_id, status=status, amount=case.amount if amount is None else amount,
        currency=case.currency, description=case.description, payment_method=method,
        card_last4=last4, payer_email=email, gateway_created_at=PAID_AT,
    )  # fmt: skip
    session.add(payment)
    session.flush()
    return payment


def add_refund(session: Session, payment: Payment, amount: int, external_id: str = "re_1",
               status: RefundStatus = RefundStatus.SUCCEEDED) -> Refund:  # fmt: skip
    refund = Refund(
        account_id=payment.account_id, payment_id=payment.id,
        payment_external_id=payment.external_id, external_id=external_id, status=status,
        amount=amount, currency=payment.currency, reason="requested_by_customer",
        gateway_created_at=PAID_AT,
    )  # fmt: skip
    session.add(refund)
    session.flush()
    return refund
