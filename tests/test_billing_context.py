"""The billing context snapshot attached to ticket messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlmodel import func, select

from billbox.billing_context import snapshot
from billbox.demo import seed_demo
from billbox.models import Customer, CustomerIdentity, IdentityKind, Payment


def test_the_snapshot_of_a_two_gateway_customer_covers_both(factory):
    """A customer paying through Stripe and PayPal sees payments of both in one snapshot."""
    seed_demo(factory, customers=30, payments=250, anchor=datetime(2026, 11, 1, tzinfo=UTC))
    with factory() as session:
        two = session.exec(
            select(CustomerIdentity.customer_id)
            .where(CustomerIdentity.kind == IdentityKind.GATEWAY_CUSTOMER)
            .group_by(CustomerIdentity.customer_id)
            .having(func.count() > 1)
        ).first()
        assert two is not None
        snap = snapshot(session, two)
        customer = session.get(Customer, two)
        total = session.exec(
            select(func.count()).select_from(Payment).where(Payment.customer_id == two)
        ).one()
    json.dumps(snap)  # storable as JSON as it is
    assert snap["customer"]["email"] == customer.email
    assert {i["namespace"].split(":")[0] for i in snap["identities"]} >= {
        "email",
        "stripe",
        "paypal",
    }
    assert snap["payment_count"] == total
    assert len(snap["payments"]) == min(total, 10)
    dates = [p["created_at"] for p in snap["payments"]]
    assert dates == sorted(dates, reverse=True)
    for currency, value in snap["lifetime_value"].items():
        assert isinstance(value, int) and len(currency) == 3


def test_an_unknown_customer_has_an_empty_snapshot(session):
    """No customer, no context (the ticket still opens)."""
    assert snapshot(session, 12345) == {}
