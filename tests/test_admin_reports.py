"""Finance reports: revenue per month/brand/currency, refund rate, invoice aging, tax, CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr

from billbox.models import (
    Brand,
    Document,
    DocumentKind,
    DocumentState,
    DocumentTaxLine,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    GatewayKind,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Role,
)
from billbox.reports import invoices_by_status, refund_rates, revenue_by_month, tax_summary
from billbox.users import create_user
from web import create_app

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def at(month: int, day: int = 10) -> datetime:
    return datetime(2026, month, day, 9, 30, tzinfo=UTC)


@pytest.fixture
def books(factory):
    """Two brands; EUR and USD payments over two months; a refund; invoices; documents."""
    with factory() as s:
        north = Brand(slug="nw", name="Northwind", legal_name="Northwind GmbH", country="DE")
        south = Brand(slug="sw", name="Southwind", legal_name="Southwind Ltd", country="GB")
        s.add_all([north, south])
        s.flush()
        accounts = [
            GatewayAccount(brand_id=north.id, gateway=GatewayKind.STRIPE, name="n"),
            GatewayAccount(brand_id=south.id, gateway=GatewayKind.PAYPAL, name="s"),
        ]
        s.add_all(accounts)
        s.flush()
        rows = [
            (accounts[0], "pi_1", 4900, "EUR", at(9), PaymentStatus.SUCCEEDED, 0),
            (accounts[0], "pi_2", 10001, "EUR", at(9, 30), PaymentStatus.PARTIALLY_REFUNDED, 2500),
            (accounts[0], "pi_3", 999, "EUR", at(10), PaymentStatus.SUCCEEDED, 0),
            (accounts[0], "pi_4", 5000, "EUR", at(10), PaymentStatus.PENDING, 0),  # not revenue
            (accounts[1], "CAP-1", 1234, "USD", at(10, 1), PaymentStatus.REFUNDED, 1234),
        ]
        for account, ext, amount, currency, when, status, refunded in rows:
            s.add(
                Payment(
                    account_id=account.id, external_id=ext, status=status, amount=amount,
                    amount_refunded=refunded, currency=currency, gateway_created_at=when,
                )
            )  # fmt: skip
        s.flush()
        s.add_all(
            [
                Refund(account_id=accounts[0].id, payment_external_id="pi_2", external_id="re_1",
                       status=RefundStatus.SUCCEEDED, amount=2500, currency="EUR"),
                Refund(account_id=accounts[1].id, payment_external_id="CAP-1", external_id="R-1",
                       status=RefundStatus.SUCCEEDED, amount=1234, currency="USD"),
            ]
        )  # fmt: skip
        for ext, status, due in [
            ("in_overdue_45", GatewayInvoiceStatus.OPEN, NOW - timedelta(days=45)),
            ("in_overdue_100", GatewayInvoiceStatus.OPEN, NOW - timedelta(days=100)),
            ("in_open", GatewayInvoiceStatus.OPEN, NOW + timedelta(days=5)),
            ("in_paid", GatewayInvoiceStatus.PAID, NOW - timedelta(days=10)),
            ("in_void", GatewayInvoiceStatus.VOID, None),
        ]:
            s.add(
                GatewayInvoice(
                    account_id=accounts[0].id, external_id=ext, status=status, amount_due=1000,
                    amount_paid=0, currency="EUR", due_at=due,
                )
            )  # fmt: skip
        for seq, kind, taxable, tax in [
            (1, DocumentKind.INVOICE, 24167 * 50, 241670),
            (2, DocumentKind.RECEIPT, 4900, 931),
            (3, DocumentKind.CREDIT_NOTE, 4900, 931),
        ]:
            document = Document(
                brand_id=north.id, kind=kind, state=DocumentState.ISSUED, series="S",
                sequence=seq, number=f"S-{seq}", source_key=f"test:{seq}", currency="EUR",
                subtotal=taxable, tax_total=tax, total=taxable + tax, issued_at=at(10),
            )  # fmt: skip
            s.add(document)
            s.flush()
            rate = Decimal("20") if seq == 1 else Decimal("19")
            s.add(
                DocumentTaxLine(
                    document_id=document.id, jurisdiction="GB" if seq == 1 else "DE",
                    rate=rate, taxable_amount=taxable, tax_amount=tax,
                )
            )  # fmt: skip
        for role in (Role.AGENT, Role.FINANCE):
            create_user(s, f"{role.value}@example.com", role, PASSWORD)
        s.commit()


def test_revenue_groups_paid_payments_by_month_brand_and_currency(factory, books):
    with factory() as s:
        rows = revenue_by_month(s)
        rates = refund_rates(rows, s)
    assert [
        (r.month, r.brand, r.currency, r.payments, r.gross, r.refunded, r.net) for r in rows
    ] == [
        ("2026-09", "Northwind", "EUR", 2, 14901, 2500, 12401),
        ("2026-10", "Northwind", "EUR", 1, 999, 0, 999),
        ("2026-10", "Southwind", "USD", 1, 1234, 1234, 0),
    ]
    assert [(r.currency, r.rate, r.refunds) for r in rates] == [
        ("EUR", Decimal("15.7"), 1),
        ("USD", Decimal("100.0"), 1),
    ]
    with factory() as s:
        october = revenue_by_month(s, since=at(10, 1), until=at(11, 1))
    assert [r.month for r in october] == ["2026-10", "2026-10"]


def test_invoices_are_listed_by_status_with_aging(factory, books):
    with factory() as s:
        lists = invoices_by_status(s, now=NOW)
    overdue = {line.invoice.external_id: line.bucket for line in lists["overdue"]}
    assert overdue == {"in_overdue_45": "31-60 days", "in_overdue_100": "over 90 days"}
    assert [line.invoice.external_id for line in lists["open"]] == ["in_open"]
    assert [line.invoice.external_id for line in lists["paid"]] == ["in_paid"]
    assert [line.invoice.external_id for line in lists["void"]] == ["in_void"]


def test_the_tax_summary_nets_credit_notes_and_matches_the_documents(factory, books):
    with factory() as s:
        rows = tax_summary(s)
    assert [(r.jurisdiction, r.rate, r.documents, r.taxable, r.tax) for r in rows] == [
        ("DE", Decimal("19"), 2, 0, 0),
        ("GB", Decimal("20"), 1, 1208350, 241670),
    ]


@pytest.fixture
def client(settings, engine):
    configured = settings.model_copy(
        update={"public_url": "https://billbox.test", "secret_key": SecretStr("r" * 32)}
    )
    client = create_app(configured, engine=engine, build_worker=False).test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


def login(client, email):
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post("/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token})


def test_finance_sees_reports_with_a_chart_and_an_agent_does_not(client, books):
    login(client, "agent@example.com")
    assert client.get("/admin/reports").status_code == 403
    client.post("/admin/logout", data={"csrf_token": "x"})  # refused (bad token): stay logged in
    client.delete_cookie("billbox_session")
    login(client, "finance@example.com")
    response = client.get("/admin/reports")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<svg" in page and "Net revenue per month in EUR" in page
    assert "€124.01" in page and "15.7 %" in page and "over 90 days" in page
    assert client.get("/admin/reports?from=yesterday").status_code == 400


def test_csv_exports_carry_exact_decimal_strings(client, books):
    login(client, "finance@example.com")
    revenue = client.get("/admin/reports/revenue.csv")
    assert revenue.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(revenue.get_data(as_text=True))))
    assert rows[0] == {
        "month": "2026-09", "brand": "Northwind", "currency": "EUR", "payments": "2",
        "gross": "149.01", "refunded": "25.00", "net": "124.01",
    }  # fmt: skip
    tax = list(
        csv.DictReader(io.StringIO(client.get("/admin/reports/tax.csv").get_data(as_text=True)))
    )
    assert [(r["jurisdiction"], r["taxable"], r["tax"]) for r in tax] == [
        ("DE", "0.00", "0.00"),
        ("GB", "12083.50", "2416.70"),
    ]
    invoices = client.get("/admin/reports/invoices.csv").get_data(as_text=True)
    assert "in_overdue_100" in invoices and "10.00" in invoices
