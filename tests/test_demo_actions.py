"""`billbox demo` files customer emails through the pipeline and acts on a Stripe test account.

The test account is localstripe (what ``make demo`` starts). Every check
is made where a user would look: the audit log (and its hash chain), the
gateway itself (refunds and subscriptions at localstripe), the ledger, and
the inbox (tickets with notes; the out-of-office opened none).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe
from click.testing import CliRunner
from sqlmodel import col, select

from billbox.audit import verify_chain
from billbox.cli import cli
from billbox.demo_actions import DEMO_AGENT
from billbox.models import (
    AuditEvent,
    GatewayAccount,
    InboundMessage,
    MessageClass,
    MessageDirection,
    Payment,
    Refund,
    Subscription,
    SubscriptionStatus,
    Ticket,
    TicketMessage,
)
from tests.servers import LOCALSTRIPE_API_KEY, running_localstripe

SECRET = "test-secret-key-0123456789"


@pytest.fixture
def localstripe(tmp_path) -> Iterator[str]:
    with running_localstripe(tmp_path) as base:
        yield base


def run_demo(database_url: str, **stripe_env: str):
    env = {
        "BILLBOX_DATABASE_URL": database_url,
        "BILLBOX_SECRET_KEY": SECRET,
        "BILLBOX_LOG_LEVEL": "WARNING",
        "STRIPE_API_KEY": "",
        **stripe_env,
    }
    return CliRunner().invoke(
        cli, ["demo", "--customers", "12", "--payments", "60"], env=env, catch_exceptions=False
    )


@pytest.mark.slow
def test_the_demo_refunds_and_cancels_through_the_gateway_and_notes_it_on_tickets(
    database_url, factory, localstripe
):
    result = run_demo(database_url, STRIPE_API_KEY=LOCALSTRIPE_API_KEY, STRIPE_API_BASE=localstripe)
    assert result.exit_code == 0, result.output
    assert "demo actions: 4 audited, 4 ticket notes" in result.output

    with factory() as s:
        audited = s.exec(
            select(AuditEvent)
            .where(AuditEvent.actor == DEMO_AGENT.email)
            .order_by(col(AuditEvent.id))
        ).all()
        assert [e.action for e in audited] == [
            "refund",
            "refund",
            "create_subscription",
            "cancel_subscription",
        ]
        assert all(e.reason for e in audited)
        assert verify_chain(s) is None

        default = s.exec(select(GatewayAccount).where(GatewayAccount.name == "default")).one()
        refunds = s.exec(select(Refund).where(Refund.account_id == default.id)).all()
        assert sorted(r.amount for r in refunds) == [1000, 1900]
        refunded = {r.payment_id for r in refunds}
        payments = [s.get(Payment, pid) for pid in refunded]
        assert sorted(p.amount_refunded for p in payments) == [1000, 1900]
        subscription = s.exec(
            select(Subscription).where(Subscription.account_id == default.id)
        ).one()
        assert subscription.status == SubscriptionStatus.CANCELED

        tickets = s.exec(select(Ticket)).all()
        assert len(tickets) == 6 and all(t.brand_id and t.customer_id for t in tickets)
        notes = s.exec(
            select(TicketMessage).where(TicketMessage.direction == MessageDirection.NOTE)
        ).all()
        assert len(notes) == 4 and all(n.author == DEMO_AGENT.email for n in notes)
        assert any("Reason: Charged twice" in n.body_text for n in notes)
        noted_customers = {s.get(Ticket, n.ticket_id).customer_id for n in notes}
        assert {p.customer_id for p in payments} <= noted_customers
        away = s.exec(
            select(InboundMessage).where(InboundMessage.classification == MessageClass.AUTO_REPLY)
        ).all()
        assert len(away) == 1

    # The gateway agrees with the ledger.
    client = stripe.StripeClient(LOCALSTRIPE_API_KEY, base_addresses={"api": localstripe})
    at_gateway = client.v1.refunds.list(params={"limit": 100}).data
    assert sorted(r.amount for r in at_gateway) == [1000, 1900]
    gone = client.v1.subscriptions.retrieve(subscription.external_id)
    assert gone.status == "canceled"


@pytest.mark.slow
def test_without_a_stripe_key_the_inbox_is_filled_and_actions_are_skipped(database_url, factory):
    result = run_demo(database_url)
    assert result.exit_code == 0, result.output
    assert "demo actions skipped: no Stripe test key" in result.output
    with factory() as s:
        assert len(s.exec(select(Ticket)).all()) == 3
        assert s.exec(select(AuditEvent).where(AuditEvent.actor == DEMO_AGENT.email)).all() == []


@pytest.mark.slow
def test_a_live_key_is_refused_before_anything_is_charged(database_url, factory):
    """(``factory`` empties the tables afterwards: the seed before the refusal stays otherwise.)"""
    result = run_demo(database_url, STRIPE_API_KEY="sk_live_not_for_demos")
    assert result.exit_code == 1
    assert "only creates payments with a Stripe test key" in result.output
