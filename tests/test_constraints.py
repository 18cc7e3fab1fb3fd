"""Database constraints that keep the data honest, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, StatementError

from billbox.models import (
    Brand,
    GatewayAccount,
    GatewayKind,
    Payment,
    PaymentStatus,
    WebhookEvent,
    WebhookStatus,
    metadata,
)


def webhook(event_id: str, gateway: str = "stripe") -> WebhookEvent:
    return WebhookEvent(
        gateway=gateway,
        event_id=event_id,
        event_type="charge.succeeded",
        status=WebhookStatus.RECEIVED,
        body=b"{}",
    )


def test_a_duplicate_webhook_event_is_refused(session):
    """(gateway, event id) is unique: a replayed delivery cannot be stored twice."""
    session.add(webhook("evt_1"))
    session.commit()
    session.add(webhook("evt_1"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    session.add(webhook("evt_1", gateway="paypal"))
    session.commit()


def test_every_money_column_is_an_integer(engine):
    """Amounts are integer minor units: in the models and in the migrated database."""
    money_names = (
        "amount",
        "amount_refunded",
        "amount_due",
        "amount_paid",
        "subtotal",
        "tax_total",
        "total",
        "unit_amount",
        "net_amount",
        "taxable_amount",
        "tax_amount",
    )
    seen = 0
    for table in metadata.tables.values():
        for column in table.columns:
            if column.name in money_names:
                seen += 1
                assert isinstance(column.type, sa.BigInteger), f"{table.name}.{column.name}"
            assert not isinstance(column.type, sa.Float), f"{table.name}.{column.name}"
    assert seen >= 13
    inspector = sa.inspect(engine)
    for table in metadata.tables:
        for column in inspector.get_columns(table):
            if column["name"] in money_names:
                assert isinstance(column["type"], sa.BigInteger | sa.Integer), (table, column)
                assert "INT" in str(column["type"]).upper(), (table, column)


def test_money_columns_reject_a_fraction_on_the_way_in(session):
    """A float amount is refused before it reaches the database."""
    brand = Brand(slug="b", name="B", legal_name="B Ltd", country="GB")
    session.add(brand)
    session.flush()
    account = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name="s")
    session.add(account)
    session.flush()
    payment = Payment(
        account_id=account.id,
        external_id="pi_1",
        status=PaymentStatus.SUCCEEDED,
        amount=1999,
        currency="GBP",
        gateway_created_at=datetime.now(UTC),
    )
    session.add(payment)
    session.commit()
    stored = session.execute(sa.text("SELECT amount FROM payment")).scalar_one()
    assert stored == 1999 and isinstance(stored, int)


def test_a_payment_id_is_unique_per_gateway_account(session):
    """The same gateway payment id cannot be mirrored twice into one account."""
    brand = Brand(slug="b", name="B", legal_name="B Ltd", country="GB")
    session.add(brand)
    session.flush()
    account = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name="s")
    session.add(account)
    session.flush()
    for _ in range(2):
        session.add(
            Payment(
                account_id=account.id,
                external_id="pi_1",
                status=PaymentStatus.SUCCEEDED,
                amount=1,
                currency="GBP",
                gateway_created_at=datetime.now(UTC),
            )
        )
    with pytest.raises(IntegrityError):
        session.commit()


def test_an_unknown_state_is_refused(session):
    """States are enums: a value outside the enum cannot be written."""
    with pytest.raises((StatementError, LookupError)):
        session.execute(
            sa.insert(WebhookEvent).values(
                gateway="stripe",
                event_id="e",
                event_type="t",
                status="exploded",
                body=b"",
                headers={},
                received_at=datetime.now(UTC),
            )
        )


def test_naive_timestamps_are_refused_and_utc_comes_back(session):
    """Timestamps are UTC: naive datetimes are refused, stored ones return aware."""
    event = webhook("evt_tz")
    event.received_at = datetime(2026, 1, 1, 12, 0)
    session.add(event)
    with pytest.raises(StatementError):
        session.commit()
    session.rollback()
    event = webhook("evt_tz2")
    session.add(event)
    session.commit()
    session.expire_all()
    loaded = session.get(WebhookEvent, event.id)
    assert loaded.received_at.tzinfo is not None
    assert loaded.received_at.utcoffset().total_seconds() == 0
