"""The checks every action runs before any gateway call, without a network.

The settings here carry no Stripe key at all: an action that got past its
checks would fail to reach Stripe, so every refusal below provably
happened before the gateway, and a replayed key provably never called it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from billbox import actions
from billbox.actions import ActionRefused, ActionRetryable, Actor, check_refund_limit
from billbox.errors import SettingsError
from billbox.models import (
    ActionState,
    AuditEvent,
    Brand,
    Customer,
    CustomerIdentity,
    GatewayAccount,
    GatewayAction,
    GatewayInvoice,
    GatewayInvoiceStatus,
    GatewayKind,
    IdentityKind,
    Payment,
    PaymentStatus,
    Role,
    Subscription,
    SubscriptionStatus,
)
from billbox.settings import load_settings

AGENT = Actor("ana@example.org", Role.AGENT)
ADMIN = Actor("root@example.org", Role.ADMIN)
FINANCE = Actor("fin@example.org", Role.FINANCE)


@pytest.fixture
def limited(settings):
    return settings.model_copy(update={"refund_limits": "agent=EUR:5000;USD:4000"})


@pytest.fixture
def ledger(factory):
    """One Stripe account with a customer, payments in several states, a subscription, invoices."""
    with factory() as s:
        brand = Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE")
        s.add(brand)
        s.flush()
        assert brand.id is not None
        account = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name="default")
        other = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name="second")
        s.add(account)
        s.add(other)
        s.flush()
        assert account.id is not None
        customer = Customer(email="pat@example.org", name="Pat")
        s.add(customer)
        s.flush()
        assert customer.id is not None
        s.add(
            CustomerIdentity(
                customer_id=customer.id,
                kind=IdentityKind.GATEWAY_CUSTOMER,
                namespace=f"stripe:{account.id}",
                value="cus_1",
            )
        )
        ids: dict[str, int] = {}
        created = datetime(2026, 1, 1, tzinfo=UTC)
        for name, status, amount, refunded, acct in [
            ("paid", PaymentStatus.SUCCEEDED, 9000, 0, account),
            ("partly", PaymentStatus.PARTIALLY_REFUNDED, 9000, 8000, account),
            ("authorized", PaymentStatus.AUTHORIZED, 3000, 0, account),
            ("failed", PaymentStatus.FAILED, 3000, 0, account),
            ("elsewhere", PaymentStatus.SUCCEEDED, 3000, 0, other),
        ]:
            assert acct.id is not None
            payment = Payment(
                account_id=acct.id,
                external_id=f"pi_{name}",
                status=status,
                amount=amount,
                amount_refunded=refunded,
                currency="EUR",
                gateway_created_at=created,
                customer_id=customer.id,
            )
            s.add(payment)
            s.flush()
            assert payment.id is not None
            ids[name] = payment.id
        subscription = Subscription(
            account_id=account.id,
            external_id="sub_1",
            status=SubscriptionStatus.CANCELED,
            currency="EUR",
            customer_id=customer.id,
        )
        invoice = GatewayInvoice(
            account_id=account.id,
            external_id="in_1",
            status=GatewayInvoiceStatus.OPEN,
            currency="EUR",
            amount_due=1000,
        )
        s.add(subscription)
        s.add(invoice)
        s.flush()
        assert subscription.id is not None and invoice.id is not None
        ids.update(
            customer=customer.id,
            account=account.id,
            other_account=other.id or 0,
            subscription=subscription.id,
            invoice=invoice.id,
        )
        s.commit()
    return ids


def _refund(factory, settings, actor, payment_id, amount, currency="EUR", key="key-00000001"):
    return actions.refund(
        factory,
        settings,
        actor,
        payment_id,
        amount,
        currency,
        reason="because",
        idempotency_key=key,
    )


def _nothing_sent(factory) -> None:
    with factory() as s:
        assert s.exec(select(GatewayAction)).all() == []


def test_refund_limits_parse_and_a_bad_value_stops_the_program_naming_the_setting(monkeypatch):
    monkeypatch.setenv("BILLBOX_REFUND_LIMITS", "agent=EUR:50000;USD:50000;finance=EUR:9")
    settings = load_settings(secret_key="x" * 20, _env_file=None)
    assert settings.refund_limit_table == {
        "agent": {"EUR": 50000, "USD": 50000},
        "finance": {"EUR": 9},
    }
    for bad, fragment in [
        ("agent=EUR:500.00", "whole minor units"),
        ("boss=EUR:1", "unknown role 'boss'"),
        ("EUR:1", "names no role"),
        ("agent=EUR:1;agent=USD:1", "listed twice"),
    ]:
        monkeypatch.setenv("BILLBOX_REFUND_LIMITS", bad)
        with pytest.raises(SettingsError) as info:
            load_settings(secret_key="x" * 20, _env_file=None)
        assert info.value.variable == "BILLBOX_REFUND_LIMITS"
        assert fragment in str(info.value)


def test_the_refund_limit_applies_per_role_and_currency(limited):
    check_refund_limit(limited, AGENT, 5000, "EUR")
    check_refund_limit(limited, ADMIN, 10**9, "EUR")  # not listed: not limited
    check_refund_limit(limited, FINANCE, 10**9, "JPY")
    with pytest.raises(ActionRefused, match=r"over the agent limit of 40\.00 USD"):
        check_refund_limit(limited, AGENT, 4001, "USD")
    with pytest.raises(ActionRefused, match="may not refund in JPY"):
        check_refund_limit(limited, AGENT, 1, "JPY")


def test_refund_checks_refuse_before_any_gateway_call(factory, limited, ledger):
    """State, amount, currency and limit are checked against the ledger; refusals are audited."""
    cases = [
        (ADMIN, ledger["partly"], 1001, "EUR", "Only 10.00 EUR"),
        (ADMIN, ledger["paid"], -5, "EUR", "more than zero"),
        (ADMIN, ledger["paid"], 100, "GBP", "is in EUR"),
        (ADMIN, ledger["paid"], 100, "euro", "not an ISO 4217"),
        (AGENT, ledger["paid"], 5001, "EUR", "over the agent limit of 50.00 EUR"),
        (ADMIN, ledger["authorized"], 100, "EUR", "capture it or void"),
        (ADMIN, ledger["failed"], 100, "EUR", "is failed"),
        (ADMIN, 999999, 100, "EUR", "no payment #999999"),
    ]
    for actor, payment_id, amount, currency, fragment in cases:
        with pytest.raises(ActionRefused) as info:
            _refund(factory, limited, actor, payment_id, amount, currency)
        assert fragment in str(info.value)
    _nothing_sent(factory)
    with factory() as s:
        refused = s.exec(select(AuditEvent).where(AuditEvent.action == "refund.refused")).all()
    assert len(refused) == len(cases)
    assert refused[4].actor == "ana@example.org" and "limit" in str(refused[4].data["refused"])


def test_a_bad_key_an_empty_reason_or_a_forbidden_role_is_refused(factory, settings, ledger):
    with pytest.raises(ActionRefused, match="idempotency key"):
        _refund(factory, settings, ADMIN, ledger["paid"], 100, key="short")
    with pytest.raises(ActionRefused, match="give a reason"):
        actions.refund(
            factory,
            settings,
            ADMIN,
            ledger["paid"],
            100,
            "EUR",
            reason="   ",
            idempotency_key="key-00000002",
        )
    with pytest.raises(ActionRefused, match="finance role may not"):
        actions.cancel_subscription(
            factory,
            settings,
            FINANCE,
            ledger["subscription"],
            at_period_end=False,
            reason="x",
            idempotency_key="key-00000003",
        )
    _nothing_sent(factory)


def test_a_stored_outcome_is_returned_without_calling_the_gateway(factory, settings, ledger):
    """A succeeded key replays from the row (no Stripe key is configured here at all)."""
    with factory() as s:
        s.add(
            GatewayAction(
                idempotency_key="clicked-twice",
                account_id=ledger["account"],
                action="refund",
                target_kind="payment",
                target_external_id="pi_paid",
                actor="ana@example.org",
                amount=700,
                currency="EUR",
                state=ActionState.SUCCEEDED,
                request={
                    "target_ref": f"payment:{ledger['paid']}",
                    "args": {"amount": 700, "currency": "EUR"},
                },
                response_id="re_first",
            )
        )
        s.commit()
    result = _refund(factory, settings, AGENT, ledger["paid"], 700, key="clicked-twice")
    assert (result.replayed, result.response_id) == (True, "re_first")
    assert "7.00 EUR" in result.message
    with pytest.raises(ActionRefused, match="already used for another request"):
        _refund(factory, settings, AGENT, ledger["partly"], 700, key="clicked-twice")
    with pytest.raises(ActionRefused, match="already used for another request"):
        _refund(factory, settings, AGENT, ledger["paid"], 701, key="clicked-twice")


def test_without_a_reachable_gateway_the_action_stays_pending(factory, settings, ledger):
    """Past the checks, a gateway that cannot be used leaves a pending row and says: retry."""
    with pytest.raises(ActionRetryable, match="same request"):
        _refund(factory, settings, ADMIN, ledger["paid"], 100)
    with factory() as s:
        [row] = s.exec(select(GatewayAction)).all()
        payment = s.get(Payment, ledger["paid"])
    assert row.state == ActionState.PENDING and (row.amount, row.currency) == (100, "EUR")
    assert payment is not None and payment.amount_refunded == 0
    # The pending 1.00 EUR counts against what remains until its key is retried.
    with pytest.raises(ActionRefused, match=r"1\.00 EUR in refunds still in progress"):
        _refund(factory, settings, ADMIN, ledger["paid"], 8901, key="key-00000009")
    with pytest.raises(ActionRetryable):
        _refund(factory, settings, ADMIN, ledger["paid"], 8900, key="key-00000010")


def test_an_account_without_known_credentials_cannot_act(factory, settings, ledger):
    with pytest.raises(ActionRefused, match="has no keys; an admin can add them"):
        _refund(factory, settings, ADMIN, ledger["elsewhere"], 100)
    _nothing_sent(factory)


def test_subscription_coupon_tax_id_and_invoice_checks(factory, settings, ledger):
    def refused(fragment: str, call) -> None:
        with pytest.raises(ActionRefused) as info:
            call()
        assert fragment in str(info.value)

    common = {"reason": "r", "idempotency_key": "key-billing-1"}
    refused(
        "already canceled",
        lambda: actions.cancel_subscription(
            factory, settings, AGENT, ledger["subscription"], at_period_end=True, **common
        ),
    )
    refused(
        "is canceled",
        lambda: actions.apply_coupon(
            factory, settings, AGENT, ledger["subscription"], "TENOFF", **common
        ),
    )
    refused(
        "has no stripe customer in account 'second'",
        lambda: actions.create_subscription(
            factory,
            settings,
            AGENT,
            ledger["customer"],
            ledger["other_account"],
            "price_1",
            **common,
        ),
    )
    refused(
        "has no country",
        lambda: actions.add_tax_id(
            factory,
            settings,
            AGENT,
            ledger["customer"],
            ledger["account"],
            "DE136695976",
            **common,
        ),
    )
    refused(
        "is not a valid UK VAT number",
        lambda: actions.add_tax_id(
            factory,
            settings,
            AGENT,
            ledger["customer"],
            ledger["account"],
            "GB123",
            country="GB",
            **common,
        ),
    )
    refused(
        "only a draft can be finalized",
        lambda: actions.finalize_invoice(
            factory, settings, FINANCE, ledger["invoice"], send=True, **common
        ),
    )
    _nothing_sent(factory)


def test_billbox_actions_exports_exactly_its_public_names():
    """The admin UI and the API build on these; changing the list is deliberate."""
    assert sorted(actions.__all__) == [
        "ActionDeclined",
        "ActionError",
        "ActionRefused",
        "ActionResult",
        "ActionRetryable",
        "Actor",
        "PERMISSIONS",
        "add_tax_id",
        "apply_coupon",
        "cancel_subscription",
        "capture",
        "check_refund_limit",
        "create_subscription",
        "finalize_invoice",
        "new_idempotency_key",
        "refund",
        "void",
    ]
    assert actions.PERMISSIONS[Role.FINANCE] == {"refund", "capture", "void", "finalize_invoice"}
