"""Agent actions end to end against localstripe: through billbox.actions, then the ledger.

localstripe runs as a subprocess; our app is served over HTTP and registered
as its webhook target, so customers and payments reach the ledger through
signed deliveries as they would from Stripe. Authorizations (localstripe
sends no event for ``requires_capture``) are mirrored with the adapter's
fetch, as ``billbox sync`` would. Every action goes through
``billbox.actions`` and is then checked in the ledger, in the
``gateway_action`` row, in the audit log and, where it matters, by
counting objects at localstripe.

localstripe does not implement idempotency keys (see the tests named for
them for what is checked instead), subscription ``discounts`` or invoice
finalization: the coupon and finalize tests run against
:mod:`tests.localstripe_discounts`, localstripe with those added as Stripe
documents them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe
from pydantic import SecretStr
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select
from werkzeug.serving import make_server

from billbox import actions
from billbox.actions import ActionDeclined, ActionRefused, ActionRetryable, Actor
from billbox.audit import verify_chain
from billbox.customers import account_namespace, find_by_identity
from billbox.gateways.stripe import StripeGateway
from billbox.jobs import run_job
from billbox.models import (
    ActionState,
    AuditEvent,
    Brand,
    Customer,
    GatewayAction,
    GatewayInvoice,
    GatewayInvoiceStatus,
    GatewayKind,
    Job,
    JobState,
    Payment,
    PaymentStatus,
    Refund,
    Role,
    Subscription,
    SubscriptionStatus,
    WebhookEvent,
)
from billbox.settings import Settings
from billbox.webhooks import WEBHOOK_JOB, apply_objects, ensure_env_account
from tests.localstripe_discounts import running_localstripe_with_discounts
from tests.servers import (
    LOCALSTRIPE_API_KEY,
    LOCALSTRIPE_WEBHOOK_SECRET,
    free_port,
    register_localstripe_webhook,
    running_localstripe,
    wait_until,
)
from web import create_app
from workers.registry import default_handlers

pytestmark = pytest.mark.slow

AGENT = Actor("ana@example.org", Role.AGENT)
ADMIN = Actor("root@example.org", Role.ADMIN)
FINANCE = Actor("fin@example.org", Role.FINANCE)


@dataclass
class World:
    factory: sessionmaker[Session]
    settings: Settings
    sdk: stripe.StripeClient
    localstripe: str

    def payment(self, payment_id: int) -> Payment:
        with self.factory() as s:
            row = s.get(Payment, payment_id)
            assert row is not None
            return row

    def audit(self, action: str) -> list[AuditEvent]:
        with self.factory() as s:
            return list(
                s.exec(
                    select(AuditEvent)
                    .where(AuditEvent.action == action)
                    .order_by(col(AuditEvent.id))
                ).all()
            )

    def action_rows(self) -> list[GatewayAction]:
        with self.factory() as s:
            return list(s.exec(select(GatewayAction).order_by(col(GatewayAction.id))).all())


@pytest.fixture
def world(settings, engine, factory, tmp_path) -> Iterator[World]:
    """localstripe, our app served over HTTP as its webhook target, and one brand."""
    yield from _world(settings, engine, factory, running_localstripe(tmp_path))


@pytest.fixture
def discount_world(settings, engine, factory, tmp_path) -> Iterator[World]:
    """The same with localstripe extended by subscription discounts and invoice finalize."""
    yield from _world(settings, engine, factory, running_localstripe_with_discounts(tmp_path))


def _world(
    settings: Settings, engine: Any, factory: Any, launcher: AbstractContextManager[str]
) -> Iterator[World]:
    with launcher as base:
        configured = settings.model_copy(
            update={
                "stripe_webhook_secret": SecretStr(LOCALSTRIPE_WEBHOOK_SECRET),
                "stripe_api_key": SecretStr(LOCALSTRIPE_API_KEY),
                "stripe_api_base": base,
                "refund_limits": "agent=EUR:5000",
            }
        )
        app = create_app(configured, engine=engine)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            register_localstripe_webhook(
                base, f"http://127.0.0.1:{server.server_port}/webhooks/stripe"
            )
            with factory() as s:
                s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
                s.commit()
            sdk = stripe.StripeClient(LOCALSTRIPE_API_KEY, base_addresses={"api": base})
            yield World(factory, configured, sdk, base)
        finally:
            server.shutdown()
            thread.join(5)


def deliver(world: World, event_type: str, object_id: str) -> None:
    """Wait for localstripe's signed delivery of ``event_type`` for ``object_id``; process it."""

    def arrived() -> bool:
        with world.factory() as s:
            rows = s.exec(select(WebhookEvent).where(WebhookEvent.event_type == event_type)).all()
            return any(object_id.encode() in row.body for row in rows)

    wait_until(arrived, 15, f"the {event_type} delivery for {object_id}")
    with world.factory() as s:
        jobs = s.exec(
            select(Job.id).where(Job.kind == WEBHOOK_JOB, Job.state == JobState.QUEUED)
        ).all()
    for job_id in jobs:
        assert run_job(world.factory, job_id, default_handlers()).outcome == "done"


def paying_customer(world: World, *, country: str = "DE") -> Any:
    return world.sdk.v1.customers.create(
        params={
            "email": "pat@example.org",
            "name": "Pat",
            "address": {"country": country, "city": "Berlin"},
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )


def paid_through_webhook(world: World, amount: int, currency: str = "eur") -> tuple[int, str]:
    """A customer pays; the payment reaches the ledger through the signed delivery."""
    customer = paying_customer(world)
    intent = world.sdk.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    deliver(world, "payment_intent.succeeded", intent.id)
    with world.factory() as s:
        payment = s.exec(select(Payment).where(Payment.external_id == intent.id)).one()
        assert payment.status == PaymentStatus.SUCCEEDED and payment.id is not None
        return payment.id, intent.id


def authorized(world: World, amount: int) -> tuple[int, str]:
    """A manual-capture PaymentIntent, mirrored into the ledger with the adapter's fetch."""
    customer = paying_customer(world)
    intent = world.sdk.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "eur",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
            "capture_method": "manual",
        }
    )
    adapter = StripeGateway.from_settings(world.settings)
    with world.factory() as s:
        account = ensure_env_account(s, GatewayKind.STRIPE)
        apply_objects(s, account, [adapter.fetch_customer(customer.id)])
        apply_objects(s, account, [adapter.fetch_payment(intent.id)])
        s.commit()
        payment = s.exec(select(Payment).where(Payment.external_id == intent.id)).one()
        assert payment.status == PaymentStatus.AUTHORIZED and payment.id is not None
        return payment.id, intent.id


def refunds_at_stripe(world: World, intent_id: str) -> list[Any]:
    return list(world.sdk.v1.refunds.list(params={"payment_intent": intent_id}).data)


def test_a_partial_then_a_full_refund_update_the_ledger_and_the_audit_log(world):
    """1,000 of 4,200 EUR by an agent, then the rest by an admin: two refunds, each audited."""
    payment_id, intent_id = paid_through_webhook(world, 4200)

    first = actions.refund(
        world.factory,
        world.settings,
        AGENT,
        payment_id,
        1000,
        "EUR",
        reason="customer was charged twice for shipping",
        idempotency_key="refund-key-0001",
    )
    assert not first.replayed and first.response_id and first.response_id.startswith("re_")
    assert "10.00 EUR" in first.message
    payment = world.payment(payment_id)
    assert (payment.status, payment.amount_refunded) == (PaymentStatus.PARTIALLY_REFUNDED, 1000)

    second = actions.refund(
        world.factory,
        world.settings,
        ADMIN,
        payment_id,
        None,
        "eur",
        reason="customer cancelled the order",
        idempotency_key="refund-key-0002",
    )
    assert second.amount == 3200
    payment = world.payment(payment_id)
    assert (payment.status, payment.amount_refunded) == (PaymentStatus.REFUNDED, 4200)

    at_stripe = refunds_at_stripe(world, intent_id)
    assert sorted(r.amount for r in at_stripe) == [1000, 3200]
    assert {r.metadata["billbox_reason"] for r in at_stripe} == {
        "customer was charged twice for shipping",
        "customer cancelled the order",
    }
    with world.factory() as s:
        refunds = s.exec(select(Refund).where(Refund.payment_id == payment_id)).all()
    assert sorted((r.external_id, r.amount) for r in refunds) == sorted(
        (r.id, r.amount) for r in at_stripe
    )
    assert [r.state for r in world.action_rows()] == [ActionState.SUCCEEDED] * 2

    events = world.audit("refund")
    assert [(e.actor, e.data["amount"], e.data["response_id"]) for e in events] == [
        ("ana@example.org", 1000, first.response_id),
        ("root@example.org", 3200, second.response_id),
    ]
    assert events[0].reason == "customer was charged twice for shipping"
    assert events[0].target_id == intent_id
    with world.factory() as s:
        assert verify_chain(s) is None

    with pytest.raises(ActionRefused, match="already fully refunded"):
        actions.refund(
            world.factory,
            world.settings,
            ADMIN,
            payment_id,
            1,
            "EUR",
            reason="again",
            idempotency_key="refund-key-0003",
        )


def test_a_double_click_with_the_same_key_refunds_once(world):
    """The second call returns the stored outcome without calling Stripe."""
    payment_id, intent_id = paid_through_webhook(world, 2500)
    calls = [
        actions.refund(
            world.factory,
            world.settings,
            AGENT,
            payment_id,
            500,
            "EUR",
            reason="goodwill",
            idempotency_key="double-click-key",
        )
        for _ in range(2)
    ]
    assert [c.replayed for c in calls] == [False, True]
    assert calls[0].response_id == calls[1].response_id
    assert len(refunds_at_stripe(world, intent_id)) == 1
    assert world.payment(payment_id).amount_refunded == 500
    assert len(world.audit("refund")) == 1


def test_refunds_over_what_remains_over_the_limit_or_in_another_currency_never_reach_stripe(
    world,
):
    """Each is refused with a message for the agent; nothing is sent, each attempt audited."""
    payment_id, intent_id = paid_through_webhook(world, 9000)

    def attempt(actor: Actor, amount: int | None, currency: str, key: str) -> str:
        with pytest.raises(ActionRefused) as info:
            actions.refund(
                world.factory,
                world.settings,
                actor,
                payment_id,
                amount,
                currency,
                reason="test",
                idempotency_key=key,
            )
        return str(info.value)

    assert "Only 90.00 EUR" in attempt(ADMIN, 9001, "EUR", "key-over-refund")
    assert "over the agent limit of 50.00 EUR" in attempt(AGENT, 5001, "EUR", "key-over-limit")
    assert "over the agent limit" in attempt(AGENT, None, "EUR", "key-over-limit-full")
    assert "is in EUR" in attempt(ADMIN, 100, "USD", "key-currency")
    assert "more than zero" in attempt(ADMIN, 0, "EUR", "key-zero")
    assert refunds_at_stripe(world, intent_id) == []
    assert world.action_rows() == []
    assert world.payment(payment_id).amount_refunded == 0
    assert len(world.audit("refund.refused")) == 5

    # Under the limit the agent may refund; an admin is not limited.
    actions.refund(
        world.factory,
        world.settings,
        AGENT,
        payment_id,
        5000,
        "EUR",
        reason="ok",
        idempotency_key="key-agent-ok",
    )
    actions.refund(
        world.factory,
        world.settings,
        ADMIN,
        payment_id,
        4000,
        "EUR",
        reason="ok",
        idempotency_key="key-admin-ok",
    )
    assert world.payment(payment_id).status == PaymentStatus.REFUNDED


def test_a_manual_capture_and_a_void_move_authorizations_in_the_ledger(world):
    """Capture one authorization, void another; the ledger follows Stripe's answers."""
    captured_id, captured_intent = authorized(world, 3000)
    voided_id, voided_intent = authorized(world, 1800)

    result = actions.capture(
        world.factory,
        world.settings,
        FINANCE,
        captured_id,
        reason="goods shipped",
        idempotency_key="capture-key-1",
    )
    assert result.amount == 3000 and "Captured 30.00 EUR" in result.message
    assert world.payment(captured_id).status == PaymentStatus.SUCCEEDED
    assert world.sdk.v1.payment_intents.retrieve(captured_intent).status == "succeeded"

    actions.void(
        world.factory,
        world.settings,
        AGENT,
        voided_id,
        reason="order cancelled before shipping",
        idempotency_key="void-key-1",
    )
    assert world.payment(voided_id).status == PaymentStatus.CANCELED
    assert world.sdk.v1.payment_intents.retrieve(voided_intent).status == "canceled"
    assert [e.action for e in world.audit("capture") + world.audit("void")] == [
        "capture",
        "void",
    ]

    with pytest.raises(ActionRefused, match="only an authorized payment can be voided"):
        actions.void(
            world.factory,
            world.settings,
            AGENT,
            voided_id,
            reason="again",
            idempotency_key="void-key-2",
        )
    with pytest.raises(ActionRefused, match="Refund it instead"):
        actions.void(
            world.factory,
            world.settings,
            AGENT,
            captured_id,
            reason="wrong button",
            idempotency_key="void-key-3",
        )


def test_a_refusal_by_stripe_leaves_nothing_half_applied(world):
    """Captured behind our back, the ledger still says authorized: Stripe refuses our capture.

    The action row is failed, the attempt is audited with Stripe's answer,
    the payment row is untouched, and the same key does not call Stripe again.
    """
    payment_id, intent_id = authorized(world, 2000)
    world.sdk.v1.payment_intents.capture(intent_id)
    before = world.payment(payment_id)

    with pytest.raises(ActionDeclined, match=r"^Capture refused by Stripe: ") as info:
        actions.capture(
            world.factory,
            world.settings,
            AGENT,
            payment_id,
            reason="ship",
            idempotency_key="capture-refused",
        )
    assert info.value.action_id is not None
    after = world.payment(payment_id)
    assert (after.status, after.amount_refunded, after.updated_at) == (
        before.status,
        before.amount_refunded,
        before.updated_at,
    )
    [row] = world.action_rows()
    assert row.state == ActionState.FAILED and row.error
    [failed] = world.audit("capture.failed")
    assert failed.data["error"] == row.error and failed.reason == "ship"
    assert world.audit("capture") == []

    with pytest.raises(ActionDeclined, match="already refused with this key"):
        actions.capture(
            world.factory,
            world.settings,
            AGENT,
            payment_id,
            reason="ship",
            idempotency_key="capture-refused",
        )


def test_an_unreachable_stripe_leaves_the_action_pending_and_the_same_key_completes_it(world):
    """Connection refused: retryable, nothing applied; the retry with the key refunds once."""
    payment_id, intent_id = paid_through_webhook(world, 1500)
    down = world.settings.model_copy(update={"stripe_api_base": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(ActionRetryable, match="same request"):
        actions.refund(
            world.factory,
            down,
            AGENT,
            payment_id,
            700,
            "EUR",
            reason="late delivery",
            idempotency_key="retry-me-key",
        )
    [row] = world.action_rows()
    assert row.state == ActionState.PENDING
    assert world.payment(payment_id).amount_refunded == 0
    assert world.audit("refund") == []

    done = actions.refund(
        world.factory,
        world.settings,
        AGENT,
        payment_id,
        700,
        "EUR",
        reason="late delivery",
        idempotency_key="retry-me-key",
    )
    assert not done.replayed
    assert [r.amount for r in refunds_at_stripe(world, intent_id)] == [700]
    assert world.payment(payment_id).amount_refunded == 700
    assert [r.state for r in world.action_rows()] == [ActionState.SUCCEEDED]


def _plan(world: World) -> str:
    product = world.sdk.v1.products.create(params={"name": "Pro"})
    plan = world.sdk.v1.plans.create(
        params={
            "amount": 1500,
            "currency": "eur",
            "interval": "month",
            "product": product.id,
            "nickname": "Pro monthly",
        }
    )
    return str(plan.id)


def _ledger_customer(world: World, customer_external_id: str) -> tuple[int, int]:
    """(customer id, account id) once the customer.created delivery is processed."""
    deliver(world, "customer.created", customer_external_id)
    with world.factory() as s:
        account = ensure_env_account(s, GatewayKind.STRIPE)
        customer = find_by_identity(s, account_namespace(account), customer_external_id)
        assert customer is not None and customer.id is not None and account.id is not None
        return customer.id, account.id


def test_a_subscription_is_created_set_to_end_with_its_period_then_canceled(world):
    customer = paying_customer(world)
    customer_id, account_id = _ledger_customer(world, customer.id)
    plan = _plan(world)

    created = actions.create_subscription(
        world.factory,
        world.settings,
        AGENT,
        customer_id,
        account_id,
        plan,
        reason="upgrade requested by mail",
        idempotency_key="sub-create-1",
    )
    assert created.response_id and created.response_id.startswith("sub_")
    with world.factory() as s:
        sub = s.exec(
            select(Subscription).where(Subscription.external_id == created.response_id)
        ).one()
        assert (sub.status, sub.amount, sub.currency, sub.customer_id) == (
            SubscriptionStatus.ACTIVE,
            1500,
            "EUR",
            customer_id,
        )
        subscription_id = sub.id
    assert subscription_id is not None

    actions.cancel_subscription(
        world.factory,
        world.settings,
        AGENT,
        subscription_id,
        at_period_end=True,
        reason="customer leaves at the end of the month",
        idempotency_key="sub-cancel-end",
    )
    with world.factory() as s:
        sub = s.get(Subscription, subscription_id)
        assert sub is not None
        assert (sub.status, sub.cancel_at_period_end) == (SubscriptionStatus.ACTIVE, True)
    with pytest.raises(ActionRefused, match="already set to end"):
        actions.cancel_subscription(
            world.factory,
            world.settings,
            AGENT,
            subscription_id,
            at_period_end=True,
            reason="again",
            idempotency_key="sub-cancel-end-2",
        )

    actions.cancel_subscription(
        world.factory,
        world.settings,
        ADMIN,
        subscription_id,
        at_period_end=False,
        reason="chargeback threat, stop now",
        idempotency_key="sub-cancel-now",
    )
    with world.factory() as s:
        sub = s.get(Subscription, subscription_id)
        assert sub is not None and sub.status == SubscriptionStatus.CANCELED
    at_stripe = world.sdk.v1.subscriptions.retrieve(created.response_id)
    assert at_stripe.status == "canceled"
    assert [e.action for e in world.audit("create_subscription")] == ["create_subscription"]
    assert len(world.audit("cancel_subscription")) == 2

    with pytest.raises(ActionRefused, match="finance role may not"):
        actions.create_subscription(
            world.factory,
            world.settings,
            FINANCE,
            customer_id,
            account_id,
            plan,
            reason="not my job",
            idempotency_key="sub-create-finance",
        )


def test_a_valid_tax_id_is_added_at_stripe_and_kept_on_the_customer(world):
    """An invalid number is refused with the validator's sentence and never sent."""
    customer = paying_customer(world, country="DE")
    customer_id, account_id = _ledger_customer(world, customer.id)

    with pytest.raises(ActionRefused, match="not a valid German VAT number"):
        actions.add_tax_id(
            world.factory,
            world.settings,
            AGENT,
            customer_id,
            account_id,
            "DE136695977",
            reason="customer sent their VAT id",
            idempotency_key="tax-id-bad",
        )
    assert list(world.sdk.v1.customers.tax_ids.list(customer.id).data) == []

    actions.add_tax_id(
        world.factory,
        world.settings,
        AGENT,
        customer_id,
        account_id,
        "de 136 695 976",
        reason="customer sent their VAT id",
        idempotency_key="tax-id-good",
    )
    ids = world.sdk.v1.customers.tax_ids.list(customer.id).data
    assert [(t.type, t.value) for t in ids] == [("eu_vat", "DE136695976")]
    with world.factory() as s:
        row = s.get(Customer, customer_id)
        assert row is not None and row.tax_id == "DE136695976"
    [event] = world.audit("add_tax_id")
    assert event.target_id == customer.id


def _ledger_subscription(world: World, external_id: str) -> Subscription:
    with world.factory() as s:
        return s.exec(select(Subscription).where(Subscription.external_id == external_id)).one()


def _subscribe(world: World, key: str, coupon: str | None = None) -> tuple[Any, int, int, str]:
    """A paying customer in the ledger, subscribed through the action: (customer, ids, sub id)."""
    customer = paying_customer(world)
    customer_id, account_id = _ledger_customer(world, customer.id)
    created = actions.create_subscription(
        world.factory,
        world.settings,
        AGENT,
        customer_id,
        account_id,
        _plan(world),
        coupon=coupon,
        reason="subscribed by mail",
        idempotency_key=key,
    )
    assert created.response_id and created.response_id.startswith("sub_")
    return customer, customer_id, account_id, created.response_id


def test_a_subscription_created_with_a_coupon_is_discounted_at_stripe_and_named_in_the_ledger(
    discount_world,
):
    """10 % off forever: Stripe charges 13.50 of 15.00 EUR; the ledger names the coupon."""
    world = discount_world
    world.sdk.v1.coupons.create(params={"id": "TENOFF", "percent_off": 10, "duration": "forever"})
    customer, customer_id, _account_id, sub_id = _subscribe(world, "sub-with-coupon", "TENOFF")

    at_stripe = world.sdk.v1.subscriptions.retrieve(sub_id, params={"expand": ["discounts"]})
    [discount] = at_stripe.discounts
    assert discount.id.startswith("di_")
    assert (discount.source.coupon, discount.customer, discount.subscription, discount.end) == (
        "TENOFF",
        customer.id,
        sub_id,
        None,
    )
    invoice = world.sdk.v1.invoices.retrieve(at_stripe.latest_invoice)
    assert (invoice.subtotal, invoice.total, invoice.status) == (1500, 1350, "paid")
    assert [(t.amount, t.discount) for t in invoice.total_discount_amounts] == [(150, discount.id)]

    sub = _ledger_subscription(world, sub_id)
    assert (sub.status, sub.amount, sub.currency, sub.customer_id, sub.plan_name) == (
        SubscriptionStatus.ACTIVE,
        1500,
        "EUR",
        customer_id,
        "Pro monthly (coupon TENOFF)",
    )
    [row] = world.action_rows()
    assert (row.state, row.request["coupon"], row.response_id) == (
        ActionState.SUCCEEDED,
        "TENOFF",
        sub_id,
    )
    [event] = world.audit("create_subscription")
    assert event.data["arguments"]["coupon"] == "TENOFF"  # which coupon, readable in the log
    assert (event.actor, event.target_id, event.reason) == (
        "ana@example.org",
        customer.id,
        "subscribed by mail",
    )
    assert (event.data["response_id"], event.data["action_id"]) == (sub_id, row.id)

    # localstripe's own deliveries: the discounted charge reaches the ledger, and the
    # subscription's created event (discount ids only, and older than the action's
    # answer) does not take the coupon's name away.
    deliver(world, "customer.subscription.created", sub_id)
    deliver(world, "payment_intent.succeeded", invoice.payment_intent)
    with world.factory() as s:
        payment = s.exec(select(Payment).where(Payment.external_id == invoice.payment_intent)).one()
        assert (payment.status, payment.amount, payment.customer_id) == (
            PaymentStatus.SUCCEEDED,
            1350,
            customer_id,
        )
    assert _ledger_subscription(world, sub_id).plan_name == "Pro monthly (coupon TENOFF)"


def test_a_coupon_put_on_a_running_subscription_is_kept_in_the_ledger_and_audited(
    discount_world,
):
    """5 EUR off for three months on a subscription that had no discount; a replay is stored."""
    world = discount_world
    world.sdk.v1.coupons.create(
        params={
            "id": "FIVEOFF3",
            "amount_off": 500,
            "currency": "eur",
            "duration": "repeating",
            "duration_in_months": 3,
        }
    )
    customer, _customer_id, _account_id, sub_id = _subscribe(world, "sub-plain")
    before = _ledger_subscription(world, sub_id)
    assert before.plan_name == "Pro monthly" and before.id is not None

    result = actions.apply_coupon(
        world.factory,
        world.settings,
        AGENT,
        before.id,
        " FIVEOFF3 ",
        reason="loyalty: three months at 10 EUR",
        idempotency_key="coupon-key-1",
    )
    assert result.message == f"Applied the coupon to subscription {sub_id}."

    at_stripe = world.sdk.v1.subscriptions.retrieve(sub_id, params={"expand": ["discounts"]})
    [discount] = at_stripe.discounts
    assert (discount.source.coupon, discount.subscription) == ("FIVEOFF3", sub_id)
    assert discount.end is not None and discount.end > discount.start + 88 * 86400
    until = datetime.fromtimestamp(discount.end, UTC).date().isoformat()
    preview = world.sdk.v1.invoices.create_preview(
        params={"customer": customer.id, "subscription": sub_id}
    )
    assert (preview.subtotal, preview.total) == (1500, 1000)

    after = _ledger_subscription(world, sub_id)
    assert after.plan_name == f"Pro monthly (coupon FIVEOFF3 until {until})"
    assert (after.status, after.amount, after.currency) == (SubscriptionStatus.ACTIVE, 1500, "EUR")
    assert before.gateway_updated_at is not None and after.gateway_updated_at is not None
    assert after.gateway_updated_at > before.gateway_updated_at
    [row] = [r for r in world.action_rows() if r.action == "apply_coupon"]
    assert (row.state, row.request["coupon"], row.target_external_id) == (
        ActionState.SUCCEEDED,
        "FIVEOFF3",
        sub_id,
    )
    [event] = world.audit("apply_coupon")
    assert event.data["arguments"] == {"coupon": "FIVEOFF3"}
    assert (event.actor, event.target_kind, event.target_id, event.reason) == (
        "ana@example.org",
        "subscription",
        sub_id,
        "loyalty: three months at 10 EUR",
    )
    assert event.data["action_id"] == row.id

    again = actions.apply_coupon(
        world.factory,
        world.settings,
        AGENT,
        before.id,
        "FIVEOFF3",
        reason="loyalty: three months at 10 EUR",
        idempotency_key="coupon-key-1",
    )
    assert again.replayed and len(world.audit("apply_coupon")) == 1
    assert world.sdk.v1.subscriptions.retrieve(sub_id).discounts == [discount.id]
    assert world.sdk.v1.coupons.retrieve("FIVEOFF3").times_redeemed == 1

    # localstripe's customer.subscription.updated names only the discount's id; it is
    # older than the action's answer, so the ledger keeps the coupon's name.
    deliver(world, "customer.subscription.updated", sub_id)
    assert _ledger_subscription(world, sub_id).plan_name == after.plan_name


def test_an_unknown_coupon_is_refused_by_stripe_and_nothing_is_half_applied(discount_world):
    """A typo in the coupon: no subscription is created, none is changed, the agent is told."""
    world = discount_world
    world.sdk.v1.coupons.create(params={"id": "TENOFF", "percent_off": 10, "duration": "once"})
    customer = paying_customer(world)
    customer_id, account_id = _ledger_customer(world, customer.id)
    plan = _plan(world)

    with pytest.raises(ActionDeclined) as info:
        actions.create_subscription(
            world.factory,
            world.settings,
            AGENT,
            customer_id,
            account_id,
            plan,
            coupon="TENOF",
            reason="promo",
            idempotency_key="sub-typo-coupon",
        )
    assert str(info.value) == (
        "New subscription refused by Stripe: Stripe has no coupon 'TENOF' (coupon ids are "
        "case-sensitive); nothing was changed."
    )
    assert info.value.code == "resource_missing"
    with world.factory() as s:
        assert s.exec(select(Subscription)).all() == []
    assert list(world.sdk.v1.subscriptions.list(params={"status": "all"}).data) == []
    [failed] = world.audit("create_subscription.failed")
    assert failed.data["code"] == "resource_missing" and "'TENOF'" in str(failed.data["error"])
    assert world.audit("create_subscription") == []

    created = actions.create_subscription(
        world.factory,
        world.settings,
        AGENT,
        customer_id,
        account_id,
        plan,
        reason="promo",
        idempotency_key="sub-no-coupon",
    )
    assert created.response_id is not None
    before = _ledger_subscription(world, created.response_id)
    assert before.id is not None

    def lowercase_coupon() -> None:
        assert before.id is not None
        actions.apply_coupon(
            world.factory,
            world.settings,
            AGENT,
            before.id,
            "tenoff",
            reason="loyalty",
            idempotency_key="coupon-lowercase",
        )

    with pytest.raises(ActionDeclined, match=r"^Coupon refused by Stripe: Stripe has no coupon "):
        lowercase_coupon()
    after = _ledger_subscription(world, created.response_id)
    assert (after.plan_name, after.gateway_updated_at, after.updated_at) == (
        before.plan_name,
        before.gateway_updated_at,
        before.updated_at,
    )
    assert world.sdk.v1.subscriptions.retrieve(created.response_id).discounts == []
    assert world.sdk.v1.coupons.retrieve("TENOFF").times_redeemed == 0
    assert world.audit("apply_coupon") == [] and len(world.audit("apply_coupon.failed")) == 1
    assert {r.idempotency_key: r.state for r in world.action_rows()} == {
        "sub-typo-coupon": ActionState.FAILED,
        "sub-no-coupon": ActionState.SUCCEEDED,
        "coupon-lowercase": ActionState.FAILED,
    }
    with pytest.raises(ActionDeclined, match="already refused with this key"):
        lowercase_coupon()
    assert len(world.audit("apply_coupon.failed")) == 1


def test_a_draft_invoice_is_finalized_at_stripe_and_open_in_the_ledger(discount_world):
    """The next period's draft of a discounted subscription: finalized, numbered, audited."""
    world = discount_world
    world.sdk.v1.coupons.create(params={"id": "TENOFF", "percent_off": 10, "duration": "forever"})
    customer, _customer_id, _account_id, sub_id = _subscribe(world, "sub-for-invoice", "TENOFF")
    draft = world.sdk.v1.invoices.create(params={"customer": customer.id, "subscription": sub_id})
    assert (draft.status, draft.total) == ("draft", 1350)
    deliver(world, "invoice.created", draft.id)
    with world.factory() as s:
        row = s.exec(select(GatewayInvoice).where(GatewayInvoice.external_id == draft.id)).one()
        assert (row.status, row.amount_due, row.currency, row.number) == (
            GatewayInvoiceStatus.DRAFT,
            1350,
            "EUR",
            None,
        )
        invoice_id = row.id
    assert invoice_id is not None

    result = actions.finalize_invoice(
        world.factory,
        world.settings,
        FINANCE,
        invoice_id,
        reason="customer needs the invoice for their books",
        idempotency_key="finalize-key-1",
    )
    assert result.message == f"Finalized invoice {draft.id}."
    at_stripe = world.sdk.v1.invoices.retrieve(draft.id)
    assert (at_stripe.status, at_stripe.auto_advance) == ("open", False)
    assert at_stripe.number and at_stripe.status_transitions.finalized_at
    with world.factory() as s:
        row = s.get(GatewayInvoice, invoice_id)
        assert row is not None
        assert (row.status, row.number, row.amount_due) == (
            GatewayInvoiceStatus.OPEN,
            at_stripe.number,
            1350,
        )
    [event] = world.audit("finalize_invoice")
    assert (event.actor, event.target_id, event.data["amount"], event.data["currency"]) == (
        "fin@example.org",
        draft.id,
        1350,
        "EUR",
    )

    deliver(world, "invoice.finalized", draft.id)  # Stripe's event agrees with the answer
    with world.factory() as s:
        row = s.get(GatewayInvoice, invoice_id)
        assert row is not None and (row.status, row.number) == (
            GatewayInvoiceStatus.OPEN,
            at_stripe.number,
        )
    with pytest.raises(ActionRefused, match="is open; only a draft can be finalized"):
        actions.finalize_invoice(
            world.factory,
            world.settings,
            FINANCE,
            invoice_id,
            reason="again",
            idempotency_key="finalize-key-2",
        )


class RecordingProxy:
    """A loopback HTTP proxy in front of localstripe that records each request's headers.

    localstripe ignores ``Idempotency-Key``, so this is how the tests see
    that the key really travels to the gateway; the answers are
    localstripe's own, passed through unchanged.
    """

    def __init__(self, upstream: str) -> None:
        import http.server
        import urllib.error
        import urllib.request

        self.seen: list[tuple[str, str, str | None]] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.seen.append((self.command, self.path, self.headers.get("Idempotency-Key")))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                request = urllib.request.Request(
                    upstream + self.path, data=body, headers=headers, method=self.command
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as answer:
                        status, payload, kept = answer.status, answer.read(), answer.headers
                except urllib.error.HTTPError as error:
                    status, payload, kept = error.code, error.read(), error.headers
                self.send_response(status)
                self.send_header("Content-Type", kept.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def keys(self, method: str, path_prefix: str) -> list[str | None]:
        return [k for m, p, k in self.seen if m == method and p.startswith(path_prefix)]


def test_the_idempotency_key_travels_to_stripe_with_every_action_request(world):
    """Refund, capture and cancel each send our key as Stripe's Idempotency-Key header."""
    proxy = RecordingProxy(world.localstripe)
    try:
        via_proxy = world.settings.model_copy(update={"stripe_api_base": proxy.url})
        payment_id, _intent = paid_through_webhook(world, 2000)
        actions.refund(
            world.factory,
            via_proxy,
            AGENT,
            payment_id,
            300,
            "EUR",
            reason="damaged box",
            idempotency_key="key-travels-1",
        )
        authorized_id, _ = authorized(world, 1000)
        actions.capture(
            world.factory,
            via_proxy,
            AGENT,
            authorized_id,
            reason="shipped",
            idempotency_key="key-travels-2",
        )
    finally:
        proxy.close()
    assert proxy.keys("POST", "/v1/refunds") == ["key-travels-1"]
    assert proxy.keys("POST", "/v1/payment_intents/") == ["key-travels-2"]


def test_simultaneous_clicks_with_one_key_reach_stripe_once(world):
    """Four threads refund with the same key at once: one refund at Stripe (which here,
    being localstripe, would not deduplicate by key itself); the others see the stored
    outcome or are told the action is in progress."""
    payment_id, intent_id = paid_through_webhook(world, 4000)
    start = threading.Barrier(4)
    outcomes: list[object] = []

    def click() -> None:
        start.wait()
        try:
            outcomes.append(
                actions.refund(
                    world.factory,
                    world.settings,
                    AGENT,
                    payment_id,
                    900,
                    "EUR",
                    reason="simultaneous",
                    idempotency_key="same-key-4-threads",
                )
            )
        except ActionRetryable as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 4
    done = [o for o in outcomes if not isinstance(o, ActionRetryable)]
    assert done and all("in progress" in str(o) for o in outcomes if o not in done)
    assert len(refunds_at_stripe(world, intent_id)) == 1
    assert world.payment(payment_id).amount_refunded == 900
    assert len(world.audit("refund")) == 1


def test_a_pending_action_left_by_a_dead_process_is_sent_again_with_its_key(world):
    """A pending row older than the attempt lease is retried with its stored request."""
    from datetime import timedelta

    from billbox.actions._core import ATTEMPT_LEASE
    from billbox.models import utcnow

    payment_id, intent_id = paid_through_webhook(world, 3000)
    with world.factory() as s:
        account = ensure_env_account(s, GatewayKind.STRIPE)
        assert account.id is not None
        s.add(
            GatewayAction(
                idempotency_key="left-by-a-crash",
                account_id=account.id,
                action="refund",
                target_kind="payment",
                target_external_id=intent_id,
                actor="ana@example.org",
                reason="crashed before the answer",
                amount=1200,
                currency="EUR",
                state=ActionState.PENDING,
                request={
                    "payment": intent_id,
                    "amount": 1200,
                    "currency": "EUR",
                    "reason": "crashed before the answer",
                    "target_ref": f"payment:{payment_id}",
                    "args": {"amount": 1200, "currency": "EUR"},
                    "actor_kind": "user",
                },
                created_at=utcnow() - ATTEMPT_LEASE - timedelta(seconds=1),
            )
        )
        s.commit()
    result = actions.refund(
        world.factory,
        world.settings,
        AGENT,
        payment_id,
        1200,
        "EUR",
        reason="crashed before the answer",
        idempotency_key="left-by-a-crash",
    )
    assert (result.amount, result.replayed) == (1200, False)
    assert [r.amount for r in refunds_at_stripe(world, intent_id)] == [1200]
    assert world.payment(payment_id).amount_refunded == 1200


def test_two_agents_refunding_one_payment_at_once_cannot_refund_more_than_was_paid(world):
    """30 EUR each of a 40 EUR payment, different keys, same moment: one refund, one refusal."""
    payment_id, intent_id = paid_through_webhook(world, 4000)
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def click(key: str) -> None:
        start.wait()
        try:
            outcomes.append(
                actions.refund(
                    world.factory,
                    world.settings,
                    ADMIN,
                    payment_id,
                    3000,
                    "EUR",
                    reason="both saw the ticket",
                    idempotency_key=key,
                )
            )
        except ActionRefused as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=click, args=(f"agent-{i}-key",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    refused = [o for o in outcomes if isinstance(o, ActionRefused)]
    assert len(outcomes) == 2 and len(refused) == 1
    assert "can still be refunded" in str(refused[0])
    assert [r.amount for r in refunds_at_stripe(world, intent_id)] == [3000]
    assert world.payment(payment_id).amount_refunded == 3000
