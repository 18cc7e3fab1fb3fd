"""The ledger: idempotent upserts that never move backwards, and one customer per person."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from billbox.customers import link_gateway_customer, normalise_email
from billbox.gateways import GatewayCustomer, GatewayPayment, GatewayRefund, GatewaySubscription
from billbox.ledger import apply_payment, apply_refund, apply_subscription
from billbox.models import (
    Brand,
    Customer,
    CustomerIdentity,
    GatewayAccount,
    GatewayKind,
    Payment,
    PaymentStatus,
    RefundStatus,
    SubscriptionStatus,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def accounts(session):
    brand = Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE")
    session.add(brand)
    session.flush()
    stripe = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name="acme-stripe")
    paypal = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.PAYPAL, name="acme-paypal")
    session.add_all([stripe, paypal])
    session.commit()
    return stripe, paypal


def payment(**overrides) -> GatewayPayment:
    values = dict(
        external_id="pi_1",
        customer_external_id="cus_1",
        status=PaymentStatus.SUCCEEDED,
        amount=4900,
        currency="eur",
        created_at=T0,
        updated_at=T0,
    )
    values.update(overrides)
    return GatewayPayment(**values)


def test_emails_are_normalised():
    """Domain case and surrounding space never split one address into two."""
    assert normalise_email("  Ana.Lopez@Example.COM ") == "ana.lopez@example.com"
    assert normalise_email("not an address") is None


def test_one_person_on_two_gateways_is_one_customer(session, accounts):
    """The same email on Stripe and PayPal links both gateway ids to one customer."""
    stripe, paypal = accounts
    a = link_gateway_customer(session, stripe, GatewayCustomer("cus_1", "Ana@Example.com", "Ana"))
    b = link_gateway_customer(session, paypal, GatewayCustomer("PAYER123", "ana@example.com"))
    again = link_gateway_customer(session, stripe, GatewayCustomer("cus_1", None))
    session.commit()
    assert a.id == b.id == again.id
    identities = session.exec(
        select(CustomerIdentity).where(CustomerIdentity.customer_id == a.id)
    ).all()
    assert sorted((i.namespace.split(":")[0], i.value) for i in identities) == [
        ("email", "ana@example.com"),
        ("paypal", "PAYER123"),
        ("stripe", "cus_1"),
    ]
    assert len(session.exec(select(Customer)).all()) == 1


def test_a_replayed_payment_changes_nothing(session, accounts):
    """Applying the same payment twice leaves one row with the same values."""
    stripe, _ = accounts
    link_gateway_customer(session, stripe, GatewayCustomer("cus_1", "ana@example.com"))
    first = apply_payment(session, stripe, payment())
    second = apply_payment(session, stripe, payment())
    session.commit()
    assert first.row.id == second.row.id
    assert first.row.customer_id is not None
    assert first.row.currency == "EUR"
    assert len(session.exec(select(Payment)).all()) == 1


def test_an_older_update_never_moves_the_ledger_backwards(session, accounts):
    """A stale event (older gateway timestamp) is refused; newer state stays."""
    stripe, _ = accounts
    apply_payment(session, stripe, payment(status=PaymentStatus.PENDING, updated_at=T0))
    apply_payment(
        session,
        stripe,
        payment(status=PaymentStatus.SUCCEEDED, updated_at=T0 + timedelta(minutes=5)),
    )
    stale = apply_payment(
        session, stripe, payment(status=PaymentStatus.PENDING, updated_at=T0 + timedelta(minutes=1))
    )
    session.commit()
    assert stale.changed is False
    assert session.exec(select(Payment)).one().status == PaymentStatus.SUCCEEDED


def test_a_refund_before_its_payment_is_linked_when_the_payment_arrives(session, accounts):
    """Out-of-order delivery: the refund waits, then marks the payment partially refunded."""
    stripe, _ = accounts
    refund = apply_refund(
        session,
        stripe,
        GatewayRefund(
            "re_1", "pi_1", RefundStatus.SUCCEEDED, 1000, "EUR", created_at=T0, updated_at=T0
        ),
    )
    assert refund.row.payment_id is None
    stored = apply_payment(session, stripe, payment()).row
    session.commit()
    session.refresh(refund.row)
    assert refund.row.payment_id == stored.id
    assert stored.amount_refunded == 1000
    assert stored.status == PaymentStatus.PARTIALLY_REFUNDED
    apply_refund(
        session,
        stripe,
        GatewayRefund(
            "re_2", "pi_1", RefundStatus.SUCCEEDED, 3900, "EUR", created_at=T0, updated_at=T0
        ),
    )
    session.commit()
    session.refresh(stored)
    assert stored.amount_refunded == 4900 and stored.status == PaymentStatus.REFUNDED


def test_an_older_subscription_update_is_ignored(session, accounts):
    """subscription.updated events out of order: the newest one wins."""
    stripe, _ = accounts
    base = dict(
        external_id="sub_1", customer_external_id=None, plan_name="Pro", amount=1900, currency="EUR"
    )
    apply_subscription(
        session,
        stripe,
        GatewaySubscription(
            status=SubscriptionStatus.CANCELED, updated_at=T0 + timedelta(days=2), **base
        ),
    )
    old = apply_subscription(
        session,
        stripe,
        GatewaySubscription(status=SubscriptionStatus.ACTIVE, updated_at=T0, **base),
    )
    session.commit()
    assert old.changed is False and old.row.status == SubscriptionStatus.CANCELED


def test_a_payment_resync_keeps_it_refunded(session, accounts):
    """Stripe keeps a refunded PaymentIntent "succeeded"; a newer sync must not undo the refund."""
    stripe, _ = accounts
    apply_payment(session, stripe, payment())
    apply_refund(
        session,
        stripe,
        GatewayRefund(
            "re_1", "pi_1", RefundStatus.SUCCEEDED, 4900, "EUR", created_at=T0, updated_at=T0
        ),
    )
    resync = apply_payment(session, stripe, payment(updated_at=T0 + timedelta(hours=1)))
    session.commit()
    assert resync.row.status == PaymentStatus.REFUNDED
    assert resync.row.amount_refunded == 4900


def test_a_refund_that_fails_later_stops_counting(session, accounts):
    """refund.failed after refund.succeeded: the payment is whole again."""
    stripe, _ = accounts
    apply_payment(session, stripe, payment())
    apply_refund(
        session,
        stripe,
        GatewayRefund(
            "re_1", "pi_1", RefundStatus.SUCCEEDED, 400, "EUR", created_at=T0, updated_at=T0
        ),
    )
    failed = apply_refund(
        session,
        stripe,
        GatewayRefund(
            "re_1",
            "pi_1",
            RefundStatus.FAILED,
            400,
            "EUR",
            created_at=T0,
            updated_at=T0 + timedelta(minutes=3),
        ),
    )
    session.commit()
    stored = session.get(Payment, failed.row.payment_id)
    assert stored.amount_refunded == 0 and stored.status == PaymentStatus.SUCCEEDED


def test_the_gateway_refunded_figure_counts_when_no_refund_rows_exist(session, accounts):
    """A payment synced with amount_refunded but no refund objects is partially refunded."""
    stripe, _ = accounts
    row = apply_payment(session, stripe, payment(amount_refunded=900)).row
    session.commit()
    assert row.amount_refunded == 900 and row.status == PaymentStatus.PARTIALLY_REFUNDED
