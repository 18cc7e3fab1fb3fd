"""``billbox sync paypal`` against the PayPal fake: the ledger ends equal to what PayPal holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from billbox.gateways.paypal import PayPalGateway
from billbox.models import Brand, Customer, GatewayKind, Payment, PaymentStatus, Refund
from billbox.sync import sync_account
from billbox.webhooks import ensure_env_account
from tests.paypal_fake import PayPalFake


@pytest.fixture
def paypal():
    fake = PayPalFake().start()
    yield fake
    fake.stop()


def test_a_paypal_sync_backfills_payments_refunds_and_customers_once(factory, paypal):
    now = datetime.now(UTC)
    gateway = PayPalGateway(
        client_id=paypal.client_id, client_secret=paypal.client_secret, api_base=paypal.base_url
    )
    _, first = paypal.add_capture("20.00", created=now - timedelta(days=40))
    _, second = paypal.add_capture("30.00", payer=paypal.add_payer("b@example.com", "PAYERB"))
    gateway.refund(first, 500, "EUR", reason="", idempotency_key="r-1")
    with factory() as s:
        s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
        s.commit()
        account = ensure_env_account(s, GatewayKind.PAYPAL)
        s.commit()
        s.expunge(account)
    since = now - timedelta(days=90)
    report = sync_account(factory, account, gateway, since=since, page_size=1)
    assert report.total >= 4
    with factory() as s:
        payments = {p.external_id: p for p in s.exec(select(Payment))}
        refunds = s.exec(select(Refund)).all()
        emails = {c.email for c in s.exec(select(Customer))}
    assert set(payments) == {first, second}
    assert payments[first].status == PaymentStatus.PARTIALLY_REFUNDED
    assert payments[first].amount_refunded == 500
    assert [(r.payment_external_id, r.amount) for r in refunds] == [(first, 500)]
    assert "b@example.com" in emails

    again = sync_account(factory, account, gateway, since=since, page_size=100)
    assert again.total >= 4
    with factory() as s:
        assert len(s.exec(select(Payment)).all()) == 2
        assert len(s.exec(select(Refund)).all()) == 1


def test_a_sync_mirrors_history_without_documents_unless_asked(factory, paypal):
    from billbox.documents import ISSUE_DOCUMENT_JOB
    from billbox.models import Job

    gateway = PayPalGateway(
        client_id=paypal.client_id, client_secret=paypal.client_secret, api_base=paypal.base_url
    )
    paypal.add_capture("20.00")
    with factory() as s:
        s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
        s.commit()
        account = ensure_env_account(s, GatewayKind.PAYPAL)
        s.commit()
        s.expunge(account)
    since = datetime.now(UTC) - timedelta(days=5)

    def issue_jobs() -> int:
        with factory() as s:
            return len(s.exec(select(Job).where(Job.kind == ISSUE_DOCUMENT_JOB)).all())

    sync_account(factory, account, gateway, since=since)
    assert issue_jobs() == 0
    paypal.add_capture("35.00")
    sync_account(factory, account, gateway, since=since, issue_documents=True)
    assert issue_jobs() == 1  # only the new payment: the first was mirrored as paid before
