"""``billbox sync``: the resumable page loop, and Stripe backfills against localstripe.

The loop's rules (resume, fresh passes, rate limits) are tested with a lister
that implements our own :class:`GatewayLister` protocol over in-memory
objects; the Stripe listing is tested against localstripe (real SDK, real
HTTP) and against a small local HTTP server that answers 429 with
``Retry-After``, as Stripe does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe
from click.testing import CliRunner
from sqlmodel import col, func, select

from billbox.errors import SettingsError
from billbox.gateways.base import (
    GatewayUnavailable,
    NormalisedObject,
    ObjectKind,
    Page,
)
from billbox.gateways.stripe import StripeGateway
from billbox.gateways.stripe_listing import listing_stamp
from billbox.gateways.types import GatewayCustomer, GatewayPayment, GatewayRefund
from billbox.ledger import apply_payment
from billbox.models import (
    Brand,
    Customer,
    CustomerIdentity,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    GatewayKind,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
)
from billbox.sync import COMPLETE, RUNNING, SYNC_ORDER, sync_account
from tests.servers import LOCALSTRIPE_API_KEY, free_port, running_localstripe

T0 = datetime(2025, 3, 1, tzinfo=UTC)


class Interrupted(Exception):
    """Stands for a crash (kill, power loss) between two pages."""


class ListLister:
    """A :class:`GatewayLister` over in-memory lists, newest first, with scripted failures."""

    def __init__(self, objects: dict[ObjectKind, list[NormalisedObject]]) -> None:
        self.objects = objects
        self.calls: list[tuple[ObjectKind, str | None]] = []
        self.failures: list[GatewayUnavailable] = []

    def list_page(
        self, kind: ObjectKind, cursor: str | None, *, since: datetime | None, limit: int = 100
    ) -> Page:
        self.calls.append((kind, cursor))
        if self.failures:
            raise self.failures.pop(0)
        items = [o for o in self.objects.get(kind, []) if _since_ok(o, since)]
        start = 0 if cursor is None else int(cursor)
        chunk = items[start : start + limit]
        more = start + limit < len(items)
        return Page(chunk, str(start + limit) if more else None)


def _since_ok(obj: NormalisedObject, since: datetime | None) -> bool:
    return since is None or (obj.created_at is not None and obj.created_at >= since)


def _world(n_customers: int = 5, n_payments: int = 5) -> dict[ObjectKind, list[NormalisedObject]]:
    customers: list[NormalisedObject] = [
        GatewayCustomer(f"cus_{i}", email=f"c{i}@example.org", created_at=T0 + timedelta(days=i))
        for i in range(n_customers)
    ]
    payments: list[NormalisedObject] = [
        GatewayPayment(
            f"pi_{i}",
            f"cus_{i % n_customers}",
            PaymentStatus.SUCCEEDED,
            1000 + i,
            "eur",
            created_at=T0 + timedelta(days=i),
            updated_at=T0 + timedelta(days=30),
        )
        for i in range(n_payments)
    ]
    refunds: list[NormalisedObject] = [
        GatewayRefund(
            "re_0",
            "pi_0",
            RefundStatus.SUCCEEDED,
            100,
            "eur",
            created_at=T0 + timedelta(days=1),
            updated_at=T0 + timedelta(days=30),
        )
    ]
    return {
        ObjectKind.CUSTOMER: customers,
        ObjectKind.PAYMENT: payments,
        ObjectKind.REFUND: refunds,
    }


@pytest.fixture
def account(factory) -> GatewayAccount:
    with factory() as s:
        brand = Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE")
        s.add(brand)
        s.flush()
        assert brand.id is not None
        acc = GatewayAccount(brand_id=brand.id, gateway=GatewayKind.STRIPE, name="default")
        s.add(acc)
        s.commit()
        s.refresh(acc)
        return acc


def _counts(factory) -> dict[str, int]:
    with factory() as s:
        return {
            model.__name__: s.exec(select(func.count()).select_from(model)).one()
            for model in (Customer, CustomerIdentity, Payment, Refund, Subscription, GatewayInvoice)
        }


def _cursor(factory, account: GatewayAccount) -> dict[str, str]:
    with factory() as s:
        row = s.get(GatewayAccount, account.id)
        assert row is not None
        return dict(row.sync_cursor)


# --- the loop, with our own protocol -------------------------------------------------


def test_a_pass_applies_every_page_and_records_completion(factory, account):
    """Five customers in pages of two: three pages, all applied; the cursor says complete."""
    lister = ListLister(_world())
    seen: list[tuple[ObjectKind, int, bool]] = []
    report = sync_account(
        factory,
        account,
        lister,
        since=None,
        page_size=2,
        progress=lambda kind, n, done: seen.append((kind, n, done)),
    )
    assert report.objects[ObjectKind.CUSTOMER] == 5
    assert report.objects[ObjectKind.PAYMENT] == 5 and report.total == 11
    assert not report.resumed
    assert _counts(factory)["Customer"] == 5 and _counts(factory)["Payment"] == 5
    assert [n for kind, n, _ in seen if kind == ObjectKind.CUSTOMER] == [2, 4, 5]
    state = _cursor(factory, account)
    assert state["state"] == COMPLETE and all(state[k.value] == "done" for k in SYNC_ORDER)
    with factory() as s:
        refunded = s.exec(select(Payment).where(Payment.external_id == "pi_0")).one()
    assert (refunded.amount_refunded, refunded.status) == (100, PaymentStatus.PARTIALLY_REFUNDED)


def test_a_crash_after_one_page_resumes_at_the_next_page_without_duplicates(factory, account):
    """The first page is committed with its cursor; the re-run asks for page two, not page one."""
    lister = ListLister(_world())

    def crash(kind: ObjectKind, n: int, done: bool) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        sync_account(factory, account, lister, since=None, page_size=2, progress=crash)
    assert _counts(factory)["Customer"] == 2
    assert _cursor(factory, account)["state"] == RUNNING
    lister.calls.clear()
    report = sync_account(factory, account, lister, since=None, page_size=2)
    assert report.resumed
    assert lister.calls[0] == (ObjectKind.CUSTOMER, "2")  # page two first
    assert report.objects[ObjectKind.CUSTOMER] == 3
    counts = _counts(factory)
    assert (counts["Customer"], counts["Payment"], counts["Refund"]) == (5, 5, 1)
    assert counts["CustomerIdentity"] == 10  # one gateway id + one email each, no duplicates


def test_after_a_complete_pass_the_next_run_starts_a_new_full_pass(factory, account):
    """No --since and nothing unfinished: everything is listed again, changing nothing."""
    lister = ListLister(_world())
    sync_account(factory, account, lister, since=None, page_size=2)
    before = _counts(factory)
    lister.calls.clear()
    report = sync_account(factory, account, lister, since=None, page_size=2)
    assert not report.resumed and report.objects[ObjectKind.CUSTOMER] == 5
    assert lister.calls[0] == (ObjectKind.CUSTOMER, None)
    assert _counts(factory) == before


def test_since_starts_a_fresh_pass_even_when_one_is_unfinished(factory, account):
    """--since discards an interrupted pass's cursor; the pass remembers its since for resuming."""
    lister = ListLister(_world())

    def crash(kind: ObjectKind, n: int, done: bool) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        sync_account(factory, account, lister, since=None, page_size=2, progress=crash)
    since = T0 + timedelta(days=3)
    lister.calls.clear()
    report = sync_account(factory, account, lister, since=since, page_size=2)
    assert not report.resumed and lister.calls[0] == (ObjectKind.CUSTOMER, None)
    assert report.objects[ObjectKind.CUSTOMER] == 2  # days 3 and 4
    state = _cursor(factory, account)
    assert state["since"] == since.isoformat() and state["state"] == COMPLETE


def test_a_resumed_pass_keeps_the_since_it_was_started_with(factory, account):
    """Interrupted `--since` pass, then a plain re-run: it resumes with the stored since."""
    lister = ListLister(_world())
    since = T0 + timedelta(days=1)

    def crash(kind: ObjectKind, n: int, done: bool) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        sync_account(factory, account, lister, since=since, page_size=2, progress=crash)
    report = sync_account(factory, account, lister, since=None, page_size=2)
    assert report.resumed and report.since == since
    assert _counts(factory)["Customer"] == 4


def test_a_rate_limit_waits_retry_after_capped_and_asks_for_the_same_page(factory, account):
    """429 Retry-After 7 s then 600 s: waits 7 then the cap, then the same page succeeds."""
    lister = ListLister(_world())
    lister.failures = [
        GatewayUnavailable("slow down", retry_after=7),
        GatewayUnavailable("slow down", retry_after=600),
    ]
    waits: list[float] = []
    report = sync_account(
        factory, account, lister, since=None, page_size=2, sleep=waits.append, max_wait=60
    )
    assert waits == [7, 60]
    assert lister.calls[:3] == [(ObjectKind.CUSTOMER, None)] * 3
    assert report.retries == 2 and report.objects[ObjectKind.CUSTOMER] == 5


def test_the_sync_gives_up_after_consecutive_failures_and_keeps_its_cursor(factory, account):
    """Unavailable every time: after max_attempts the error says so; the next run resumes."""
    lister = ListLister(_world())
    sync_account(factory, account, lister, since=None, page_size=2)  # a complete pass first

    class Flaky(ListLister):
        def list_page(
            self, kind: ObjectKind, cursor: str | None, *, since: datetime | None, limit: int = 100
        ) -> Page:
            if kind == ObjectKind.PAYMENT:
                raise GatewayUnavailable("connection refused")
            return super().list_page(kind, cursor, since=since, limit=limit)

    waits: list[float] = []
    with pytest.raises(GatewayUnavailable, match="gave up listing payments after 4 attempts"):
        sync_account(
            factory, account, Flaky(_world()), since=None, max_attempts=4, sleep=waits.append
        )
    assert waits == [1, 2, 4]  # back-off when the gateway names no wait
    state = _cursor(factory, account)
    assert state["state"] == RUNNING and state["customer"] == "done" and state["payment"] == "start"


def test_a_sync_never_overwrites_a_newer_webhook_state(factory, account):
    """A listed payment stamped before a stored event's time is refused; a later one applies."""
    event_time = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
    with factory() as s:
        acc = s.get(GatewayAccount, account.id)
        assert acc is not None
        webhook = GatewayPayment(
            "pi_x", None, PaymentStatus.CANCELED, 500, "eur", T0, updated_at=event_time
        )
        apply_payment(s, acc, webhook)
        s.commit()
    # The page was requested in the same second the event happened: it may predate it.
    stale = GatewayPayment(
        "pi_x",
        None,
        PaymentStatus.AUTHORIZED,
        500,
        "eur",
        T0,
        updated_at=listing_stamp(event_time + timedelta(microseconds=900_000)),
    )
    sync_account(factory, account, ListLister({ObjectKind.PAYMENT: [stale]}), since=None)
    with factory() as s:
        assert s.exec(select(Payment.status)).one() == PaymentStatus.CANCELED
    newer = GatewayPayment(
        "pi_x",
        None,
        PaymentStatus.SUCCEEDED,
        500,
        "eur",
        T0,
        updated_at=listing_stamp(event_time + timedelta(seconds=2)),
    )
    sync_account(factory, account, ListLister({ObjectKind.PAYMENT: [newer]}), since=None)
    with factory() as s:
        assert s.exec(select(Payment.status)).one() == PaymentStatus.SUCCEEDED


# --- Stripe rate limits over real HTTP ---------------------------------------------------


class _RateLimitedStripe(BaseHTTPRequestHandler):
    """Answers the first request with 429 Retry-After: 3, then empty Stripe lists."""

    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if len(type(self).hits) == 1:
            body = json.dumps(
                {"error": {"type": "invalid_request_error", "message": "Too many requests"}}
            ).encode()
            self.send_response(429)
            self.send_header("Retry-After", "3")
        else:
            path = self.path.split("?")[0]
            body = json.dumps(
                {"object": "list", "data": [], "has_more": False, "url": path}
            ).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def rate_limited_stripe() -> Iterator[str]:
    _RateLimitedStripe.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RateLimitedStripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def test_a_stripe_429_is_waited_out_for_its_retry_after(factory, account, rate_limited_stripe):
    """The SDK's 429 becomes GatewayUnavailable(retry_after=3); the sync waits 3 s and goes on."""
    adapter = StripeGateway(api_key=LOCALSTRIPE_API_KEY, api_base=rate_limited_stripe)
    with pytest.raises(GatewayUnavailable) as caught:
        adapter.list_page(ObjectKind.CUSTOMER, None, since=None)
    assert caught.value.retry_after == 3
    _RateLimitedStripe.hits = []
    waits: list[float] = []
    report = sync_account(factory, account, adapter, since=None, sleep=waits.append)
    assert waits == [3]
    assert report.total == 0 and report.retries == 1
    assert _RateLimitedStripe.hits[0] == _RateLimitedStripe.hits[1]  # the same page again
    assert _cursor(factory, account)["state"] == COMPLETE


class _LegacyChargesStripe(BaseHTTPRequestHandler):
    """No PaymentIntents; two charges, one made before PaymentIntents and one owned by an intent.

    localstripe cannot create a charge without a PaymentIntent, so this
    server answers Stripe's documented list shape for ``/v1/charges``.
    """

    charges = [
        {
            "id": "ch_new",
            "object": "charge",
            "amount": 2000,
            "currency": "usd",
            "created": 1700000000,
            "status": "succeeded",
            "captured": True,
            "payment_intent": "pi_owner",
            "customer": None,
        },
        {
            "id": "ch_2017",
            "object": "charge",
            "amount": 1500,
            "amount_refunded": 0,
            "currency": "usd",
            "created": 1500000000,
            "status": "succeeded",
            "paid": True,
            "captured": True,
            "payment_intent": None,
            "customer": "cus_old",
            "source": {"object": "card", "brand": "Visa", "last4": "4242"},
        },
    ]

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        data = self.charges if path == "/v1/charges" else []
        body = json.dumps({"object": "list", "data": data, "has_more": False, "url": path})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_charges_made_before_payment_intents_are_synced_as_payments(factory, account):
    """After the intents, charges without a PaymentIntent are listed; intent-owned ones skipped."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LegacyChargesStripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        adapter = StripeGateway(
            api_key=LOCALSTRIPE_API_KEY, api_base=f"http://127.0.0.1:{server.server_port}"
        )
        first = adapter.list_page(ObjectKind.PAYMENT, None, since=None)
        assert (first.objects, first.next_cursor) == ([], "ch:")
        charges = adapter.list_page(ObjectKind.PAYMENT, "ch:", since=None)
        assert charges.next_cursor is None
        assert [p.external_id for p in charges.objects] == ["ch_2017"]
        report = sync_account(factory, account, adapter, since=None)
    finally:
        server.shutdown()
        thread.join(5)
    assert report.objects[ObjectKind.PAYMENT] == 1
    with factory() as s:
        payment = s.exec(select(Payment)).one()
    assert (payment.external_id, payment.amount, payment.card_last4) == ("ch_2017", 1500, "4242")
    assert payment.customer_id is not None  # a bare identity for cus_old, filled in later


# --- Stripe backfill against localstripe ---------------------------------------------------


@pytest.fixture
def localstripe(tmp_path) -> Iterator[str]:
    with running_localstripe(tmp_path) as base:
        yield base


def _populate(base: str) -> dict[str, list[str]]:
    """Customers, payments (one refunded in part), a subscription with its paid invoice."""
    client = stripe.StripeClient(LOCALSTRIPE_API_KEY, base_addresses={"api": base})
    customers = [
        client.v1.customers.create(params={"email": f"buyer{i}@example.org", "name": f"B {i}"})
        for i in range(5)
    ]
    intents = [
        client.v1.payment_intents.create(
            params={
                "amount": 1000 + 100 * i,
                "currency": "eur",
                "customer": customers[i].id,
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
        for i in range(3)
    ]
    refund = client.v1.refunds.create(params={"payment_intent": intents[0].id, "amount": 300})
    product = client.v1.products.create(params={"name": "Pro"})
    plan = client.v1.plans.create(
        params={"product": product.id, "amount": 900, "currency": "eur", "interval": "month"}
    )
    method = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customers[4].id})
    client.v1.customers.update(
        customers[4].id, params={"invoice_settings": {"default_payment_method": method.id}}
    )
    subscription = client.v1.subscriptions.create(
        params={"customer": customers[4].id, "items": [{"plan": plan.id}]}
    )
    return {
        "customers": [c.id for c in customers],
        "intents": [i.id for i in intents],
        "refund": [refund.id],
        "subscription": [subscription.id],
    }


def _assert_ledger_matches_localstripe(factory, base: str) -> None:
    """Every object localstripe lists is in the ledger once, with its amounts and status."""
    client = stripe.StripeClient(LOCALSTRIPE_API_KEY, base_addresses={"api": base})
    remote_customers = client.v1.customers.list(params={"limit": 100}).data
    remote_intents = client.v1.payment_intents.list(params={"limit": 100}).data
    remote_refunds = client.v1.refunds.list(params={"limit": 100}).data
    remote_subs = client.v1.subscriptions.list(params={"limit": 100, "status": "all"}).data
    remote_invoices = client.v1.invoices.list(params={"limit": 100}).data
    counts = _counts(factory)
    assert counts["Customer"] == len(remote_customers) == 5
    assert counts["Payment"] == len(remote_intents) == 4  # 3 + the subscription's first
    assert counts["Refund"] == len(remote_refunds) == 1
    assert counts["Subscription"] == len(remote_subs) == 1
    assert counts["GatewayInvoice"] == len(remote_invoices) == 1
    with factory() as s:
        payments = {p.external_id: p for p in s.exec(select(Payment)).all()}
        for intent in remote_intents:
            row = payments[intent.id]
            assert (row.amount, row.currency) == (intent.amount, intent.currency.upper())
            assert row.customer_id is not None
        refunded = [p for p in payments.values() if p.amount_refunded]
        assert [(p.amount_refunded, p.status) for p in refunded] == [
            (300, PaymentStatus.PARTIALLY_REFUNDED)
        ]
        refund = s.exec(select(Refund)).one()
        assert refund.payment_id == refunded[0].id and refund.amount == 300
        sub = s.exec(select(Subscription)).one()
        assert (sub.status, sub.amount, sub.external_id) == (
            SubscriptionStatus.ACTIVE,
            900,
            remote_subs[0].id,
        )
        invoice = s.exec(select(GatewayInvoice)).one()
        assert invoice.status == GatewayInvoiceStatus.PAID and invoice.amount_paid == 900
        assert invoice.subscription_id == sub.id  # subscriptions are synced before invoices
        emails = set(s.exec(select(Customer.email)).all())
        assert emails == {c.email for c in remote_customers}
        assert (
            s.exec(select(func.count()).where(col(Payment.gateway_invoice_id).is_not(None))).one()
            == 1
        )


@pytest.mark.slow
def test_a_stripe_backfill_makes_the_ledger_equal_to_localstripe_and_a_rerun_changes_nothing(
    factory, account, localstripe
):
    """Empty ledger → sync → equal to localstripe; again → the same rows, nothing duplicated."""
    _populate(localstripe)
    adapter = StripeGateway(api_key=LOCALSTRIPE_API_KEY, api_base=localstripe)
    report = sync_account(factory, account, adapter, since=None)
    assert report.objects[ObjectKind.CUSTOMER] == 5 and report.objects[ObjectKind.PAYMENT] == 4
    _assert_ledger_matches_localstripe(factory, localstripe)
    with factory() as s:
        before = [(p.id, p.status, p.amount_refunded) for p in s.exec(select(Payment)).all()]
    again = sync_account(factory, account, adapter, since=None)
    assert not again.resumed and again.total == report.total
    _assert_ledger_matches_localstripe(factory, localstripe)
    with factory() as s:
        assert [
            (p.id, p.status, p.amount_refunded) for p in s.exec(select(Payment)).all()
        ] == before


@pytest.mark.slow
def test_an_interrupted_stripe_backfill_resumes_and_completes_without_duplicates(
    factory, account, localstripe
):
    """Pages of two, a crash after the first commit, a re-run: the same end state as one pass."""
    _populate(localstripe)
    adapter = StripeGateway(api_key=LOCALSTRIPE_API_KEY, api_base=localstripe)

    def crash(kind: ObjectKind, n: int, done: bool) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        sync_account(factory, account, adapter, since=None, page_size=2, progress=crash)
    assert _counts(factory)["Customer"] == 2
    state = _cursor(factory, account)
    assert state["state"] == RUNNING and state["customer"].startswith("next:cus_")
    report = sync_account(factory, account, adapter, since=None, page_size=2)
    assert report.resumed and report.objects[ObjectKind.CUSTOMER] == 3
    _assert_ledger_matches_localstripe(factory, localstripe)


@pytest.mark.slow
def test_since_lists_only_objects_created_from_that_day(factory, account, localstripe):
    """Everything in localstripe was created today: --since tomorrow lists nothing."""
    _populate(localstripe)
    adapter = StripeGateway(api_key=LOCALSTRIPE_API_KEY, api_base=localstripe)
    tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=1
    )
    report = sync_account(factory, account, adapter, since=tomorrow)
    assert report.total == 0 and _counts(factory)["Payment"] == 0
    today = tomorrow - timedelta(days=1)
    assert sync_account(factory, account, adapter, since=today).objects[ObjectKind.PAYMENT] == 4


@pytest.mark.slow
def test_the_sync_command_backfills_from_localstripe(factory, account, localstripe, database_url):
    """`billbox sync stripe` with STRIPE_API_BASE: progress, a summary table, exit 0."""
    from billbox.cli import cli

    _populate(localstripe)
    env = {
        "BILLBOX_DATABASE_URL": database_url,
        "BILLBOX_SECRET_KEY": "test-secret-key-0123456789",
        "BILLBOX_LOG_LEVEL": "WARNING",
        "STRIPE_API_KEY": LOCALSTRIPE_API_KEY,
        "STRIPE_API_BASE": localstripe,
    }
    result = CliRunner().invoke(cli, ["sync", "stripe"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "full pass complete" in result.output
    assert "payments" in result.output and "total" in result.output
    _assert_ledger_matches_localstripe(factory, localstripe)
    since = CliRunner().invoke(
        cli, ["sync", "stripe", "--since", "2020-01-01"], env=env, catch_exceptions=False
    )
    assert since.exit_code == 0 and "since 2020-01-01 pass complete" in since.output
    _assert_ledger_matches_localstripe(factory, localstripe)


def test_the_sync_command_fails_clearly_without_an_api_key(database_url):
    """No STRIPE_API_KEY: one line naming the variable, exit 2 (as every settings error)."""
    from billbox.cli import cli

    env = {
        "BILLBOX_DATABASE_URL": database_url,
        "BILLBOX_SECRET_KEY": "test-secret-key-0123456789",
        "STRIPE_API_KEY": None,
    }
    result = CliRunner().invoke(cli, ["sync", "stripe"], env=env)
    assert isinstance(result.exception, SettingsError)
    assert result.exception.variable == "STRIPE_API_KEY"


def test_an_unreachable_stripe_fails_the_command_with_a_message(
    factory, account, database_url, monkeypatch
):
    """Connection refused on every attempt: exit 1 with the gateway's error, not a traceback."""
    import time

    from billbox.cli import cli

    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)  # the SDK's and our back-off
    env = {
        "BILLBOX_DATABASE_URL": database_url,
        "BILLBOX_SECRET_KEY": "test-secret-key-0123456789",
        "BILLBOX_LOG_LEVEL": "ERROR",
        "STRIPE_API_KEY": LOCALSTRIPE_API_KEY,
        "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",
    }
    result = CliRunner().invoke(cli, ["sync", "stripe"], env=env)
    assert result.exit_code == 1, result.output
    assert "gave up listing customers after 6 attempts" in result.output
    assert [w for w in waits if w >= 1] == [1, 2, 4, 8, 16]
