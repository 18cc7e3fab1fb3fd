"""Agent actions on PayPal through ``billbox.actions``, against the PayPal fake.

The same seam as Stripe: refund, capture, void, cancel and create
subscriptions go through our checks, the adapter (PayPal-Request-Id = our
idempotency key) and the ledger, and each is audited. What PayPal cannot do
(cancel at period end, coupons, tax ids) is refused before any call.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlmodel import select

from billbox import actions
from billbox.actions import ActionRefused, Actor
from billbox.audit import verify_chain
from billbox.gateways.paypal import PayPalGateway
from billbox.models import (
    AuditEvent,
    Brand,
    GatewayKind,
    Payment,
    PaymentStatus,
    Refund,
    Role,
    Subscription,
    SubscriptionStatus,
)
from billbox.webhooks import apply_objects, ensure_env_account
from tests.paypal_fake import PayPalFake

AGENT = Actor("ana@example.org", Role.AGENT)


@pytest.fixture
def paypal():
    fake = PayPalFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def world(settings, factory, paypal):
    configured = settings.model_copy(
        update={
            "paypal_client_id": paypal.client_id,
            "paypal_client_secret": SecretStr(paypal.client_secret),
            "paypal_api_base": paypal.base_url,
        }
    )
    with factory() as s:
        s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
        s.commit()
    return configured


def mirror(factory, settings, *objects_of):
    adapter = PayPalGateway.from_settings(settings)
    with factory() as s:
        account = ensure_env_account(s, GatewayKind.PAYPAL)
        for fetch, external_id in objects_of:
            apply_objects(s, account, [getattr(adapter, fetch)(external_id)])
        s.commit()


def payment_id(factory, external_id: str) -> int:
    with factory() as s:
        return s.exec(select(Payment.id).where(Payment.external_id == external_id)).one()


def test_refund_partial_then_rest_and_a_replayed_key(world, factory, paypal):
    _, capture = paypal.add_capture("40.00")
    mirror(factory, world, ("fetch_payment", capture))
    pid = payment_id(factory, capture)
    first = actions.refund(
        factory, world, AGENT, pid, 1500, "EUR", reason="damaged", idempotency_key="paypal-r-key-1"
    )
    again = actions.refund(
        factory, world, AGENT, pid, 1500, "EUR", reason="damaged", idempotency_key="paypal-r-key-1"
    )
    assert again.replayed and again.response_id == first.response_id
    assert len(paypal.calls("POST", f"/v2/payments/captures/{capture}/refund")) == 1
    actions.refund(
        factory, world, AGENT, pid, None, "EUR", reason="rest", idempotency_key="paypal-r-key-2"
    )
    with factory() as s:
        payment = s.get(Payment, pid)
        refunds = s.exec(select(Refund)).all()
        audited = s.exec(select(AuditEvent).where(AuditEvent.action == "refund")).all()
        assert verify_chain(s) is None
    assert (payment.status, payment.amount_refunded) == (PaymentStatus.REFUNDED, 4000)
    assert sorted(r.amount for r in refunds) == [1500, 2500]
    assert len(audited) == 2
    with pytest.raises(ActionRefused):
        actions.refund(
            factory, world, AGENT, pid, 1, "EUR", reason="x", idempotency_key="paypal-r-key-3"
        )


def test_capture_and_void_authorizations(world, factory, paypal):
    _, to_capture = paypal.add_authorization("25.00")
    _, to_void = paypal.add_authorization("10.00")
    mirror(factory, world, ("fetch_payment", to_capture), ("fetch_payment", to_void))
    captured = actions.capture(
        factory,
        world,
        AGENT,
        payment_id(factory, to_capture),
        reason="shipped",
        idempotency_key="paypal-c-key-1",
    )
    voided = actions.void(
        factory,
        world,
        AGENT,
        payment_id(factory, to_void),
        reason="out of stock",
        idempotency_key="paypal-v-key-1",
    )
    assert captured.response_id and voided.target_external_id == to_void
    with factory() as s:
        statuses = {p.external_id: p.status for p in s.exec(select(Payment))}
    assert statuses[to_void] == PaymentStatus.CANCELED
    assert PaymentStatus.SUCCEEDED in statuses.values()  # the new capture
    assert paypal.authorizations[to_void]["status"] == "VOIDED"


def test_subscriptions_cancel_now_and_create_but_not_at_period_end(world, factory, paypal):
    plan = paypal.add_plan()
    subscription = paypal.add_subscription(plan)
    mirror(factory, world, ("fetch_subscription", subscription))
    with factory() as s:
        row = s.exec(select(Subscription)).one()
    with pytest.raises(ActionRefused):
        actions.cancel_subscription(
            factory,
            world,
            AGENT,
            row.id,
            at_period_end=True,
            reason="x",
            idempotency_key="paypal-s-key-0",
        )
    actions.cancel_subscription(
        factory,
        world,
        AGENT,
        row.id,
        at_period_end=False,
        reason="moving away",
        idempotency_key="paypal-s-key-1",
    )
    with factory() as s:
        assert s.get(Subscription, row.id).status == SubscriptionStatus.CANCELED
        customer_id, account_id = row.customer_id, row.account_id
    created = actions.create_subscription(
        factory,
        world,
        AGENT,
        customer_id,
        account_id,
        plan,
        reason="win back",
        idempotency_key="paypal-s-key-2",
    )
    assert created.response_id and created.response_id.startswith("I-")
    with factory() as s:
        assert len(s.exec(select(Subscription)).all()) == 2
    with pytest.raises(ActionRefused):
        actions.add_tax_id(
            factory,
            world,
            AGENT,
            customer_id,
            account_id,
            "DE136695976",
            reason="x",
            idempotency_key="paypal-t-key-1",
        )


def test_a_brands_agent_cap_sends_larger_refunds_to_finance_or_an_admin(world, factory, paypal):
    _, capture = paypal.add_capture("40.00")
    mirror(factory, world, ("fetch_payment", capture))
    pid = payment_id(factory, capture)
    with factory() as s:
        brand = s.exec(select(Brand)).one()
        brand.agent_refund_caps = {"EUR": 1000}
        s.add(brand)
        s.commit()
    with pytest.raises(ActionRefused, match=r"over Acme's agent cap of 10\.00 EUR"):
        actions.refund(
            factory,
            world,
            AGENT,
            pid,
            1500,
            "EUR",
            reason="too much",
            idempotency_key="paypal-cap-key-1",
        )
    actions.refund(
        factory,
        world,
        AGENT,
        pid,
        1000,
        "EUR",
        reason="within the cap",
        idempotency_key="paypal-cap-key-2",
    )
    finance = Actor("fin@example.org", Role.FINANCE)
    actions.refund(
        factory,
        world,
        finance,
        pid,
        1500,
        "EUR",
        reason="approved by finance",
        idempotency_key="paypal-cap-key-3",
    )
    with factory() as s:
        assert s.get(Payment, pid).amount_refunded == 2500
