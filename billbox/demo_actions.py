"""The demo's agent work: real payments at a Stripe test account, then audited actions on them.

``billbox demo`` seeds history, but history alone leaves the audit log
empty and gives an agent nothing to act on. With a Stripe *test* key
configured (``make demo`` starts localstripe and sets one), this module:

1. :func:`prepare_payers` — gives three demo customers a Stripe customer
   (same email, so they link to the demo customer) and real test payments,
   mirrored into the ledger the way ``billbox sync`` mirrors history;
2. :func:`perform_demo_actions` — acts on them through ``billbox.actions``
   exactly as an agent's click does: a duplicate charge refunded, a
   goodwill partial refund, a subscription created and then cancelled, each
   with a reason, an idempotency key and its audit row.

Idempotency keys are derived from the Stripe ids, so running the actions
twice on the same payments acts once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from billbox import actions
from billbox.actions import ActionResult, Actor
from billbox.db import transaction
from billbox.gateways.base import NormalisedObject
from billbox.gateways.registry import adapter_for
from billbox.gateways.stripe_demo import StripeTestAccount
from billbox.ledger import mark_backfill
from billbox.models import (
    Brand,
    Customer,
    GatewayKind,
    Payment,
    Role,
    Subscription,
    Ticket,
)
from billbox.settings import Settings
from billbox.ticket_notes import add_note
from billbox.webhooks import apply_objects, ensure_env_account

#: Who the demo's actions are audited as.
DEMO_AGENT = Actor("demo-agent@billbox.example.com", Role.AGENT)

#: (what the customer writes about, payments in minor units) per demo payer.
SCENARIOS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("charged_twice", (1900, 1900)),
    ("outage", (4900,)),
    ("cancel", ()),
)
PLAN_AMOUNT = 1500


@dataclass(frozen=True)
class DemoPayer:
    scenario: str
    customer_id: int
    email: str
    name: str
    account_id: int
    payment_ids: tuple[int, ...]
    currency: str


@dataclass(frozen=True)
class DemoAction:
    customer_id: int
    result: ActionResult
    reason: str


def stripe_test_account(settings: Settings) -> StripeTestAccount | None:
    """The test account the demo may use, or None when no Stripe key is set.

    Raises ``GatewayError`` for a live key (the demo never charges anyone).
    """
    if settings.stripe_api_key is None or not settings.stripe_api_key.get_secret_value():
        return None
    return StripeTestAccount(
        settings.stripe_api_key.get_secret_value(), api_base=settings.stripe_api_base
    )


def prepare_payers(
    factory: sessionmaker[Session], settings: Settings, stripe: StripeTestAccount
) -> list[DemoPayer]:
    """Three demo customers of the Stripe account's brand, with real test payments."""
    with transaction(factory) as session:
        account = ensure_env_account(session, GatewayKind.STRIPE)
        brand = session.get(Brand, account.brand_id)
        assert brand is not None and account.id is not None
        currency = brand.default_currency
        account_id = account.id
        chosen = session.exec(
            select(Customer)
            .where(Customer.email != "")
            .order_by(col(Customer.id))
            .limit(len(SCENARIOS))
        ).all()
        people = [(c.id, c.email, c.name, c.country or "DE") for c in chosen]
    if len(people) < len(SCENARIOS):
        raise ValueError("seed the demo first: it needs three customers with an email address")
    adapter = adapter_for(account, settings)
    payers = []
    for (scenario, amounts), (customer_id, email, name, country) in zip(
        SCENARIOS, people, strict=True
    ):
        assert customer_id is not None
        external = stripe.customer(email, name, country)
        intents = [stripe.payment(external, amount, currency) for amount in amounts]
        objects: list[NormalisedObject] = [adapter.fetch_customer(external)]
        objects += [adapter.fetch_payment(intent) for intent in intents]
        with transaction(factory) as session:
            mark_backfill(session)  # mirrored like `billbox sync`: no receipts emailed
            found = session.get(type(account), account_id)
            assert found is not None
            apply_objects(session, found, objects)
            payment_ids = tuple(_payment_id(session, account_id, intent) for intent in intents)
        payers.append(
            DemoPayer(scenario, customer_id, email, name, account_id, payment_ids, currency)
        )
    return payers


def _payment_id(session: Session, account_id: int, external_id: str) -> int:
    found = session.exec(
        select(Payment.id).where(
            Payment.account_id == account_id, Payment.external_id == external_id
        )
    ).one()
    assert found is not None
    return found


def perform_demo_actions(
    factory: sessionmaker[Session],
    settings: Settings,
    stripe: StripeTestAccount,
    payers: list[DemoPayer],
) -> list[DemoAction]:
    """Refund the duplicate, refund part of the outage month, create then cancel a plan."""
    by = {p.scenario: p for p in payers}
    done: list[DemoAction] = []

    def key(*parts: object) -> str:
        return "demo:" + ":".join(str(p) for p in parts)

    twice = by["charged_twice"]
    reason = "Charged twice for the same month; refunding the duplicate payment"
    result = actions.refund(
        factory, settings, DEMO_AGENT, twice.payment_ids[1], None, twice.currency,
        reason=reason, idempotency_key=key("refund", twice.payment_ids[1]),
    )  # fmt: skip
    done.append(DemoAction(twice.customer_id, result, reason))

    outage = by["outage"]
    reason = "Goodwill for the outage on the 12th: 10.00 back"
    result = actions.refund(
        factory, settings, DEMO_AGENT, outage.payment_ids[0], 1000, outage.currency,
        reason=reason, idempotency_key=key("refund", outage.payment_ids[0]),
    )  # fmt: skip
    done.append(DemoAction(outage.customer_id, result, reason))

    leaving = by["cancel"]
    plan = stripe.monthly_plan("Pro", PLAN_AMOUNT, leaving.currency)
    reason = "Asked by email to start the Pro plan"
    created = actions.create_subscription(
        factory, settings, DEMO_AGENT, leaving.customer_id, leaving.account_id, plan,
        reason=reason, idempotency_key=key("subscribe", leaving.customer_id, plan),
    )  # fmt: skip
    done.append(DemoAction(leaving.customer_id, created, reason))
    with factory() as session:
        subscription_id = session.exec(
            select(Subscription.id).where(Subscription.external_id == created.response_id)
        ).one()
    assert subscription_id is not None
    reason = "Changed their mind the same day and asked to cancel right away"
    result = actions.cancel_subscription(
        factory, settings, DEMO_AGENT, subscription_id, at_period_end=False,
        reason=reason, idempotency_key=key("cancel", subscription_id),
    )  # fmt: skip
    done.append(DemoAction(leaving.customer_id, result, reason))
    return done


def note_actions(factory: sessionmaker[Session], done: list[DemoAction]) -> int:
    """Each action as an internal note on its customer's latest ticket, as the admin writes it."""
    written = 0
    with transaction(factory) as session:
        for action in done:
            ticket_id = session.exec(
                select(Ticket.id)
                .where(Ticket.customer_id == action.customer_id)
                .order_by(col(Ticket.id).desc())
                .limit(1)
            ).first()
            if ticket_id is None:
                continue
            text = f"{action.result.message}\nReason: {action.reason}"
            add_note(session, ticket_id, DEMO_AGENT.email, text)
            written += 1
    return written
