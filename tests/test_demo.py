"""The demo seed: exact counts, determinism, idempotence and data a real gateway could send."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from billbox.customers import account_namespace
from billbox.demo import DemoSummary, seed_demo
from billbox.models import (
    Brand,
    Customer,
    CustomerIdentity,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    IdentityKind,
    NumberSeries,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
)
from tests.conftest import empty_all_tables

# Each test seeds a few hundred payments (~2 s); the module takes ~20 s.
pytestmark = pytest.mark.slow

ANCHOR = datetime(2026, 11, 1, tzinfo=UTC)
SMALL = {"customers": 30, "payments": 250}


def seed_small(factory, **overrides) -> DemoSummary:
    return seed_demo(factory, **{**SMALL, **overrides})


def dump(session: Session) -> dict[str, list[tuple]]:
    """Everything the demo creates, keyed by gateway ids (never database ids), sorted."""
    accounts = {a.id: a.name for a in session.exec(select(GatewayAccount)).all()}
    emails = {c.id: c.email for c in session.exec(select(Customer)).all()}
    invoices = {i.id: i.external_id for i in session.exec(select(GatewayInvoice)).all()}
    payments = {p.id: p.external_id for p in session.exec(select(Payment)).all()}
    return {
        "customers": sorted(
            (c.email, c.name, c.country, c.locale, c.tax_id, c.address)
            for c in session.exec(select(Customer)).all()
        ),
        "identities": sorted(
            (emails[i.customer_id], i.kind.value, i.namespace.split(":")[0], i.value)
            for i in session.exec(select(CustomerIdentity)).all()
        ),
        "payments": sorted(
            (
                accounts[p.account_id],
                p.external_id,
                emails.get(p.customer_id),
                p.amount,
                p.amount_refunded,
                p.currency,
                p.status.value,
                p.payment_method,
                p.card_last4,
                p.payer_email,
                p.description,
                p.gateway_created_at,
                invoices.get(p.gateway_invoice_id),
            )
            for p in session.exec(select(Payment)).all()
        ),
        "refunds": sorted(
            (
                accounts[r.account_id],
                r.external_id,
                payments.get(r.payment_id),
                r.amount,
                r.currency,
                r.status.value,
                r.gateway_created_at,
            )
            for r in session.exec(select(Refund)).all()
        ),
        "subscriptions": sorted(
            (
                accounts[s.account_id],
                s.external_id,
                emails.get(s.customer_id),
                s.status.value,
                s.plan_name,
                s.amount,
                s.currency,
                s.current_period_end,
                s.cancel_at_period_end,
            )
            for s in session.exec(select(Subscription)).all()
        ),
        "invoices": sorted(
            (
                accounts[i.account_id],
                i.external_id,
                i.number,
                i.status.value,
                i.amount_due,
                i.amount_paid,
                i.currency,
                i.due_at,
                i.paid_at,
            )
            for i in session.exec(select(GatewayInvoice)).all()
        ),
    }


def test_a_seed_creates_exactly_the_requested_customers_and_payments(factory, session):
    """The counts asked for are the counts stored, and progress reaches the total once per batch."""
    calls: list[tuple[int, int]] = []
    summary = seed_small(factory, progress=lambda done, total: calls.append((done, total)))

    assert summary.brands == 2
    assert summary.customers == len(session.exec(select(Customer)).all()) == 30
    assert summary.payments == len(session.exec(select(Payment)).all()) == 250
    assert summary.subscriptions == len(session.exec(select(Subscription)).all()) == 18
    assert summary.invoices == len(session.exec(select(GatewayInvoice)).all()) > 0
    assert summary.refunds == len(session.exec(select(Refund)).all()) > 0
    assert calls[-1] == (250, 250)
    dones = [done for done, _ in calls]
    assert dones == sorted(set(dones)) and len(dones) == 2  # a batch of ~200, then the rest
    from billbox.models import Job

    assert session.exec(select(Job)).all() == []  # history: no receipts issued or emailed


def test_the_same_seed_gives_identical_data_in_two_empty_databases(factory, engine, session):
    """Seeding, emptying and seeding again with the same seed stores the very same objects."""
    tiny = {"customers": 15, "payments": 80}  # three seeds must still finish in a few seconds
    seed_small(factory, **tiny)
    first = dump(session)
    session.close()
    empty_all_tables(engine)
    seed_small(factory, **tiny)
    second = dump(session)
    session.close()
    empty_all_tables(engine)
    seed_small(factory, **tiny, seed=7)
    other = dump(session)

    assert len(first["payments"]) == 80
    assert first == second
    assert first["payments"] != other["payments"]  # the dump does see a different seed


def test_a_second_seed_on_the_same_database_adds_nothing(factory, session):
    """The demo brands already exist, so nothing is added, even when asked for more."""
    first = seed_small(factory)
    before = dump(session)
    session.close()
    calls: list[tuple[int, int]] = []

    again = seed_demo(factory, customers=80, payments=600, progress=lambda *a: calls.append(a))

    assert again == first
    assert dump(session) == before
    assert calls == []


def test_a_customer_paying_through_both_gateways_is_one_customer_with_two_identities(
    factory, session
):
    """About 15 % pay through Stripe and PayPal with one address and become one customer."""
    seed_small(factory)
    accounts = session.exec(select(GatewayAccount)).all()
    gateway_of = {account_namespace(a): a.gateway.value for a in accounts}
    by_customer: dict[int, list[CustomerIdentity]] = {}
    for identity in session.exec(select(CustomerIdentity)).all():
        by_customer.setdefault(identity.customer_id, []).append(identity)

    dual = {
        customer_id: identities
        for customer_id, identities in by_customer.items()
        if {gateway_of.get(i.namespace) for i in identities} >= {"stripe", "paypal"}
    }
    assert len(dual) == round(30 * 0.15)
    for customer_id, identities in dual.items():
        kinds = Counter(i.kind for i in identities)
        assert kinds == {IdentityKind.GATEWAY_CUSTOMER: 2, IdentityKind.EMAIL: 1}
        customer = session.get(Customer, customer_id)
        assert customer is not None
        email_identity = next(i for i in identities if i.kind == IdentityKind.EMAIL)
        assert email_identity.value == customer.email
    emails = [c.email for c in session.exec(select(Customer)).all()]
    assert len(emails) == len(set(emails)) == 30


def test_amounts_are_integers_and_jpy_amounts_are_whole_yen_of_a_sensible_size(factory, session):
    """Minor units everywhere; 4800 JPY is stored as 4800, never as 480000 or 48.00."""
    seed_small(factory)
    payments = session.exec(select(Payment)).all()
    amounts = [v for p in payments for v in (p.amount, p.amount_refunded)]
    amounts += [r.amount for r in session.exec(select(Refund)).all()]
    amounts += [s.amount for s in session.exec(select(Subscription)).all()]
    amounts += [
        v for i in session.exec(select(GatewayInvoice)).all() for v in (i.amount_due, i.amount_paid)
    ]
    assert all(type(a) is int for a in amounts)
    assert all(a >= 0 for a in amounts)

    jpy = [p.amount for p in payments if p.currency == "JPY"]
    eur = [p.amount for p in payments if p.currency == "EUR"]
    assert jpy and eur
    assert all(100 <= a <= 500_000 for a in jpy)  # 100 yen to 500,000 yen
    assert all(100 <= a <= 500_000 for a in eur)  # 1.00 EUR to 5,000.00 EUR
    assert {p.currency for p in payments} == {"EUR", "GBP", "USD", "AUD", "JPY"}


def test_refunds_never_exceed_their_payment(factory, session):
    """Each refund belongs to a paid payment and the refunded total stays within its amount."""
    seed_small(factory)
    refunds = session.exec(select(Refund)).all()
    assert refunds
    refunded: Counter[int] = Counter()
    for refund in refunds:
        assert refund.payment_id is not None
        payment = session.get(Payment, refund.payment_id)
        assert payment is not None
        assert refund.currency == payment.currency
        assert 0 < refund.amount <= payment.amount
        assert refund.gateway_created_at is not None
        assert payment.gateway_created_at < refund.gateway_created_at < ANCHOR
        if refund.status == RefundStatus.SUCCEEDED:
            refunded[payment.id] += refund.amount
    for payment in session.exec(select(Payment)).all():
        assert refunded[payment.id] == payment.amount_refunded <= payment.amount
        if payment.amount_refunded == payment.amount:
            assert payment.status == PaymentStatus.REFUNDED
        elif payment.amount_refunded:
            assert payment.status == PaymentStatus.PARTIALLY_REFUNDED


def test_at_least_one_open_invoice_is_overdue_and_no_date_is_after_the_anchor(factory, session):
    """Dates come from the anchor: a year of history before it, open invoices past due."""
    seed_small(factory)
    invoices = session.exec(select(GatewayInvoice)).all()
    open_invoices = [i for i in invoices if i.status == GatewayInvoiceStatus.OPEN]
    assert any(i.due_at is not None and i.due_at < ANCHOR for i in open_invoices)
    assert {i.status for i in invoices} >= {
        GatewayInvoiceStatus.OPEN, GatewayInvoiceStatus.PAID,
        GatewayInvoiceStatus.VOID, GatewayInvoiceStatus.UNCOLLECTIBLE,
    }  # fmt: skip
    for payment in session.exec(select(Payment)).all():
        assert ANCHOR - timedelta(days=365) <= payment.gateway_created_at < ANCHOR
    paid_by_invoice = [
        p for p in session.exec(select(Payment)).all() if p.gateway_invoice_id is not None
    ]
    assert paid_by_invoice  # the invoice was applied before the payment that pays it


def test_a_different_anchor_moves_every_date_with_it(factory, session):
    """No date comes from the clock: an anchor in 2030 puts the whole history in 2029-2030."""
    anchor = datetime(2030, 3, 1, tzinfo=UTC)
    seed_small(factory, anchor=anchor)
    for payment in session.exec(select(Payment)).all():
        assert anchor - timedelta(days=365) <= payment.gateway_created_at < anchor


def test_gateway_ids_have_the_shapes_the_gateways_use(factory, session):
    """Stripe pi_/cus_/sub_/in_ ids and PayPal capture, payer, I- and INV2- ids."""
    seed_small(factory)
    names = {a.id: a.name for a in session.exec(select(GatewayAccount)).all()}
    shapes = {
        "stripe": {
            "payment": r"pi_[0-9A-Za-z]{24}", "refund": r"re_[0-9A-Za-z]{24}",
            "subscription": r"sub_[0-9A-Za-z]{24}", "invoice": r"in_[0-9A-Za-z]{24}",
            "number": r"[0-9A-Z]{8}-\d{4}", "customer": r"cus_[0-9A-Za-z]{14}",
        },
        "paypal": {
            "payment": r"[0-9A-Z]{17}", "refund": r"[0-9A-Z]{17}",
            "subscription": r"I-[0-9A-Z]{12}", "invoice": r"INV2(-[0-9A-Z]{4}){4}",
            "number": r"\d{4}", "customer": r"[0-9A-Z]{13}",
        },
    }  # fmt: skip

    def check(kind: str, account_id: int, value: str | None) -> None:
        gateway = names[account_id].rsplit("-", 1)[1]
        assert value is not None and re.fullmatch(shapes[gateway][kind], value), (kind, value)

    for p in session.exec(select(Payment)).all():
        check("payment", p.account_id, p.external_id)
        if names[p.account_id].endswith("paypal"):
            assert p.payer_email and p.payment_method == "paypal" and p.card_last4 is None
        else:
            assert p.payment_method in {"visa", "mastercard", "amex", "jcb"}
            assert p.card_last4 is not None and re.fullmatch(r"\d{4}", p.card_last4)
    for r in session.exec(select(Refund)).all():
        check("refund", r.account_id, r.external_id)
    for s in session.exec(select(Subscription)).all():
        check("subscription", s.account_id, s.external_id)
    for i in session.exec(select(GatewayInvoice)).all():
        check("invoice", i.account_id, i.external_id)
        check("number", i.account_id, i.number)
    accounts = {account_namespace(a): a.id for a in session.exec(select(GatewayAccount)).all()}
    for identity in session.exec(select(CustomerIdentity)).all():
        if identity.kind == IdentityKind.GATEWAY_CUSTOMER:
            assert identity.id is not None
            check("customer", accounts[identity.namespace], identity.value)
        else:
            assert re.fullmatch(r"[a-z0-9.]+@example\.(com|org|net)", identity.value)


def test_brands_come_with_number_series_and_test_mode_gateway_accounts(factory, session):
    """Two brands, three series each, one Stripe and one PayPal account each, none live."""
    seed_small(factory)
    brands = {b.slug: b for b in session.exec(select(Brand)).all()}
    assert set(brands) == {"northwind", "kangaroo-kits"}
    assert brands["northwind"].default_currency == "EUR"
    assert brands["kangaroo-kits"].default_currency == "AUD"
    assert {r["scheme"] for r in brands["northwind"].tax_registrations} == {"eu_vat", "eu_oss"}
    assert brands["kangaroo-kits"].tax_registrations[0]["number"] == "51824753556"
    prefixes = {s.prefix for s in session.exec(select(NumberSeries)).all()}
    assert prefixes == {"NW-R", "NW-INV", "NW-CN", "KK-R", "KK-INV", "KK-CN"}
    accounts = session.exec(select(GatewayAccount)).all()
    assert sorted(a.name for a in accounts) == [
        "kangaroo-paypal", "kangaroo-stripe", "northwind-paypal", "northwind-stripe",
    ]  # fmt: skip
    assert not any(a.live_mode for a in accounts)
    names = " ".join(c.name for c in session.exec(select(Customer)).all())
    assert re.search("[\u0370-\u03ff]", names) and re.search("[\u0400-\u04ff]", names)
