"""Stripe webhooks end to end: real HMAC signatures, storage, and the worker's ledger updates.

Deliveries go through the Flask test client into ``POST /webhooks/stripe``;
jobs run with ``billbox.jobs.run_job`` and the registered handlers. Recorded
payloads come from ``../shared/corpora/payment_webhooks/stripe`` (third-party,
see its SOURCE.md).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from billbox.gateways.base import Ignored
from billbox.gateways.stripe import parse_event
from billbox.jobs import run_job
from billbox.models import (
    Brand,
    Customer,
    CustomerIdentity,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    GatewayKind,
    Job,
    JobState,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
    WebhookEvent,
    WebhookStatus,
)
from billbox.webhooks import WEBHOOK_JOB, process_webhook
from web import create_app
from workers.registry import default_handlers

SECRET = "whsec_test_0123456789abcdef"
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
STRIPE_CORPUS = CORPUS / "payment_webhooks" / "stripe"


def sign(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header computed as Stripe does: HMAC-SHA256 of ``t.body``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def event(event_id: str, event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2020-08-27",
        "type": event_type,
        "created": created,
        "data": {"object": obj},
    }


@pytest.fixture
def app(settings, engine, factory):
    configured = settings.model_copy(update={"stripe_webhook_secret": SecretStr(SECRET)})
    return create_app(configured, engine=engine)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def brand(factory):
    with factory() as s:
        row = Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE")
        s.add(row)
        s.commit()
        return row


def post(client, payload: dict[str, Any] | bytes, **kwargs: Any):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if "signature" in kwargs:
        if kwargs["signature"] is not None:
            headers["Stripe-Signature"] = kwargs["signature"]
    else:
        headers["Stripe-Signature"] = sign(body)
    return client.post("/webhooks/stripe", data=body, headers=headers)


def run_pending_jobs(factory) -> list[str]:
    with factory() as s:
        ids = s.exec(
            select(Job.id)
            .where(Job.kind == WEBHOOK_JOB, Job.state == JobState.QUEUED)
            .order_by(col(Job.id))
        ).all()
    return [run_job(factory, job_id, default_handlers()).outcome for job_id in ids if job_id]


def rows(factory) -> list[WebhookEvent]:
    with factory() as s:
        return list(s.exec(select(WebhookEvent).order_by(col(WebhookEvent.id))).all())


def intent(status: str, *, amount: int = 2000, customer: str | None = "cus_A") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "pi_A",
        "object": "payment_intent",
        "amount": amount,
        "currency": "eur",
        "created": 1_700_000_000,
        "customer": customer,
        "status": status,
        "payment_method_types": ["card"],
    }
    if status == "succeeded":
        obj["charges"] = {
            "object": "list",
            "data": [
                {
                    "id": "ch_A",
                    "object": "charge",
                    "amount": amount,
                    "amount_refunded": 0,
                    "created": 1_700_000_010,
                    "currency": "eur",
                    "payment_intent": "pi_A",
                    "status": "succeeded",
                    "captured": True,
                    "payment_method_details": {
                        "type": "card",
                        "card": {"brand": "visa", "last4": "4242"},
                    },
                }
            ],
        }
    return obj


# Verification -----------------------------------------------------------------


def test_a_correctly_signed_delivery_is_stored_with_its_job(client, factory):
    """200, one received row holding the exact body and headers, one queued job naming it."""
    payload = event("evt_1", "payment_intent.created", intent("requires_payment_method"), 1)
    body = json.dumps(payload).encode()
    response = post(client, body)
    assert response.status_code == 200
    [row] = rows(factory)
    assert (row.gateway, row.event_id, row.event_type) == ("stripe", "evt_1", payload["type"])
    assert row.status == WebhookStatus.RECEIVED and row.body == body
    assert row.headers["Stripe-Signature"].startswith("t=")
    assert row.remote_addr == "127.0.0.1"
    with factory() as s:
        [job] = s.exec(select(Job)).all()
    assert job.kind == WEBHOOK_JOB and job.payload == {"webhook_event_id": row.id}


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(sign(b"{}", secret="whsec_someone_else"), id="wrong-secret"),
        pytest.param("t=1,v1=deadbeef", id="garbage"),
        pytest.param(None, id="missing-header"),
        pytest.param("", id="empty-header"),
    ],
)
def test_a_delivery_without_a_valid_signature_is_refused_and_not_stored(client, factory, signature):
    """Bad, foreign or missing signatures answer 400 and leave no row and no job."""
    payload = event("evt_bad", "customer.created", {"id": "cus_X", "object": "customer"}, 1)
    response = post(client, payload, signature=signature)
    assert response.status_code == 400
    assert rows(factory) == []
    with factory() as s:
        assert s.exec(select(Job)).all() == []


def test_a_body_changed_after_signing_is_refused(client, factory):
    """The signature covers the exact bytes: one changed byte fails verification."""
    body = json.dumps(event("evt_t", "customer.created", {"id": "cus_X"}, 1)).encode()
    response = post(client, body.replace(b"cus_X", b"cus_Y"), signature=sign(body))
    assert response.status_code == 400 and rows(factory) == []


def test_a_stale_timestamp_is_refused_even_with_a_valid_signature(client, factory):
    """A signature older than the 300 s tolerance is a possible replay: 400, nothing stored."""
    body = json.dumps(event("evt_old", "customer.created", {"id": "cus_X"}, 1)).encode()
    response = post(client, body, signature=sign(body, timestamp=int(time.time()) - 301))
    assert response.status_code == 400 and rows(factory) == []


def test_an_oversized_body_is_refused(client, factory):
    """Bodies over 256 KiB answer 400 before any verification or storage."""
    payload = event("evt_big", "customer.created", {"id": "cus_X", "pad": "x" * 300_000}, 1)
    response = post(client, payload)
    assert response.status_code == 400 and rows(factory) == []


def test_a_redelivered_event_answers_200_and_stores_nothing_new(client, factory):
    """Stripe retries until it gets a 2xx; a replayed event id keeps exactly one row and job."""
    payload = event("evt_r", "customer.created", {"id": "cus_X", "object": "customer"}, 1)
    assert post(client, payload).status_code == 200
    again = post(client, payload)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert len(rows(factory)) == 1
    with factory() as s:
        assert len(s.exec(select(Job)).all()) == 1


def test_without_a_configured_secret_deliveries_are_refused_with_503(settings, engine, factory):
    """No secret, no verification: 503 (the gateway retries later), nothing stored."""
    app = create_app(settings, engine=engine)
    payload = event("evt_n", "customer.created", {"id": "cus_X"}, 1)
    response = post(app.test_client(), payload)
    assert response.status_code == 503 and rows(factory) == []


# Processing ------------------------------------------------------------------


def test_a_payment_event_lands_in_the_ledger_linked_to_its_customer(client, factory, brand):
    """customer.created then payment_intent.succeeded: a succeeded EUR payment of that customer."""
    customer = {"id": "cus_A", "object": "customer", "email": "Ann@Example.org", "name": "Ann"}
    post(client, event("evt_c", "customer.created", customer, 1_700_000_001))
    post(client, event("evt_p", "payment_intent.succeeded", intent("succeeded"), 1_700_000_020))
    assert run_pending_jobs(factory) == ["done", "done"]
    assert [r.status for r in rows(factory)] == [WebhookStatus.PROCESSED] * 2
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
        customer_row = s.get(Customer, payment.customer_id)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.amount == 2000
    assert (payment.currency, payment.payment_method, payment.card_last4) == ("EUR", "visa", "4242")
    assert customer_row is not None and customer_row.email == "ann@example.org"


def test_events_wait_for_a_brand_and_are_processed_once_one_exists(client, factory):
    """With no brand to own the account the job is retried, the row stays received."""
    post(client, event("evt_w", "customer.created", {"id": "cus_W", "object": "customer"}, 5))
    assert run_pending_jobs(factory) == ["retry"]
    [row] = rows(factory)
    assert row.status == WebhookStatus.RECEIVED
    with factory() as s:
        s.add(Brand(slug="late", name="Late", legal_name="Late Ltd", country="GB"))
        s.commit()
    with factory() as s:
        from billbox.jobs import JobContext

        process_webhook(s, JobContext(0, WEBHOOK_JOB, {"webhook_event_id": row.id}, 2))
        s.commit()
    assert rows(factory)[0].status == WebhookStatus.PROCESSED


def test_an_unknown_event_type_is_ignored_without_error(client, factory, brand):
    """payout.paid is not mirrored: the row becomes ignored and the job is done."""
    post(client, event("evt_u", "payout.paid", {"id": "po_1", "object": "payout"}, 1))
    assert run_pending_jobs(factory) == ["done"]
    [row] = rows(factory)
    assert row.status == WebhookStatus.IGNORED and row.processed_at is not None


def test_a_known_event_that_cannot_be_parsed_fails_with_the_error_kept(client, factory, brand):
    """A payment_intent with no status: row failed with error and traceback, job failed."""
    broken = {"id": "pi_B", "object": "payment_intent", "amount": 1, "currency": "eur"}
    post(client, event("evt_b", "payment_intent.created", broken, 1))
    assert run_pending_jobs(factory) == ["failed"]
    [row] = rows(factory)
    assert row.status == WebhookStatus.FAILED
    assert row.error and "status" in row.error and row.traceback
    with factory() as s:
        assert s.exec(select(Payment)).all() == []


def test_an_older_event_arriving_late_does_not_undo_a_succeeded_payment(client, factory, brand):
    """succeeded (t=30) first, then created (t=10) and processing (t=20): still succeeded."""
    post(client, event("evt_s", "payment_intent.succeeded", intent("succeeded"), 1_700_000_030))
    post(
        client,
        event("evt_0", "payment_intent.created", intent("requires_payment_method"), 1_700_000_010),
    )
    post(client, event("evt_1", "payment_intent.processing", intent("processing"), 1_700_000_020))
    assert run_pending_jobs(factory) == ["done", "done", "done"]
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
    assert payment.status == PaymentStatus.SUCCEEDED and payment.card_last4 == "4242"


@pytest.mark.parametrize(
    ("stripe_status", "extra", "expected"),
    [
        ("requires_payment_method", {}, PaymentStatus.PENDING),
        ("requires_payment_method", {"last_payment_error": {"code": "card_declined"}}, "failed"),
        ("requires_confirmation", {}, PaymentStatus.PENDING),
        ("processing", {}, PaymentStatus.PENDING),
        ("requires_action", {}, PaymentStatus.REQUIRES_ACTION),
        ("requires_source_action", {}, PaymentStatus.REQUIRES_ACTION),
        ("requires_capture", {}, PaymentStatus.AUTHORIZED),
        ("succeeded", {}, PaymentStatus.SUCCEEDED),
        ("canceled", {}, PaymentStatus.CANCELED),
    ],
)
def test_payment_intent_statuses_map_to_ledger_statuses(stripe_status, extra, expected):
    """Each PaymentIntent status has one ledger status; a declined attempt reads as failed."""
    payload = event("evt_m", "payment_intent.updated", dict(intent(stripe_status), **extra), 7)
    [payment] = parse_event(json.dumps(payload).encode())
    assert payment.status == expected
    assert payment.updated_at.timestamp() == 7  # the event's time, not the object's


def scenario() -> list[dict[str, Any]]:
    """A small life: customer, subscription, invoice, payment, partial refund, refund update."""
    t = 1_700_000_000
    customer = {"id": "cus_S", "object": "customer", "email": "sam@example.org", "name": "Sam"}
    sub = {
        "id": "sub_S",
        "object": "subscription",
        "customer": "cus_S",
        "status": "incomplete",
        "created": t,
        "current_period_end": t + 2_592_000,
        "cancel_at_period_end": False,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_S",
                    "quantity": 2,
                    "price": {
                        "id": "price_S",
                        "currency": "eur",
                        "unit_amount": 1000,
                        "nickname": "Pro",
                        "recurring": {"interval": "month"},
                    },
                }
            ],
        },
    }
    invoice = {
        "id": "in_S",
        "object": "invoice",
        "customer": "cus_S",
        "status": "open",
        "amount_due": 2000,
        "amount_paid": 0,
        "currency": "eur",
        "number": "S-0001",
        "subscription": "sub_S",
        "created": t,
    }
    paid_invoice = dict(invoice, status="paid", amount_paid=2000)
    paid_invoice["status_transitions"] = {"paid_at": t + 40}
    refund = {
        "id": "re_S",
        "object": "refund",
        "amount": 500,
        "currency": "eur",
        "charge": "ch_A",
        "payment_intent": "pi_A",
        "created": t + 60,
        "status": "pending",
    }
    refunded_charge = copy.deepcopy(intent("succeeded", customer="cus_S")["charges"]["data"][0])
    refunded_charge.update(amount_refunded=500, refunds={"object": "list", "data": [refund]})
    return [
        event("evt_s01", "customer.created", customer, t + 1),
        event("evt_s02", "customer.subscription.created", sub, t + 2),
        event("evt_s03", "invoice.created", invoice, t + 3),
        event(
            "evt_s04",
            "payment_intent.created",
            intent("requires_payment_method", customer="cus_S"),
            t + 4,
        ),
        event("evt_s05", "payment_intent.succeeded", intent("succeeded", customer="cus_S"), t + 40),
        event("evt_s06", "invoice.paid", paid_invoice, t + 41),
        event("evt_s07", "customer.subscription.updated", dict(sub, status="active"), t + 42),
        event("evt_s08", "charge.refunded", refunded_charge, t + 60),
        event("evt_s09", "charge.refund.updated", dict(refund, status="succeeded"), t + 70),
        event("evt_s10", "customer.updated", dict(customer, description="vip"), t + 80),
    ]


def ledger_snapshot(factory) -> dict[str, Any]:
    """The ledger's content without our own ids and clocks."""
    with factory() as s:
        emails = {c.id: c.email for c in s.exec(select(Customer)).all()}
        return {
            "customers": sorted((c.email, c.name) for c in s.exec(select(Customer)).all()),
            "identities": sorted(
                (i.namespace.split(":")[0], i.value) for i in s.exec(select(CustomerIdentity)).all()
            ),
            "payments": sorted(
                (
                    p.external_id,
                    p.status,
                    p.amount,
                    p.amount_refunded,
                    p.currency,
                    p.card_last4,
                    emails.get(p.customer_id),
                )
                for p in s.exec(select(Payment)).all()
            ),
            "refunds": sorted(
                (r.external_id, r.payment_external_id, r.status, r.amount, r.payment_id is not None)
                for r in s.exec(select(Refund)).all()
            ),
            "subscriptions": sorted(
                (x.external_id, x.status, x.amount, x.plan_name, emails.get(x.customer_id))
                for x in s.exec(select(Subscription)).all()
            ),
            "invoices": sorted(
                (
                    i.external_id,
                    i.status,
                    i.amount_paid,
                    i.number,
                    emails.get(i.customer_id),
                    i.subscription_id is not None,
                )
                for i in s.exec(select(GatewayInvoice)).all()
            ),
        }


def test_replaying_a_scenario_three_times_shuffled_gives_the_in_order_ledger(
    client, factory, brand, engine
):
    """Each event delivered 3 times (distinct ids, so all are processed) in random order."""
    from tests.conftest import empty_all_tables

    for payload in scenario():
        assert post(client, payload).status_code == 200
    run_pending_jobs(factory)
    expected = ledger_snapshot(factory)
    assert expected["payments"] == [
        ("pi_A", PaymentStatus.PARTIALLY_REFUNDED, 2000, 500, "EUR", "4242", "sam@example.org")
    ]
    assert expected["customers"] == [("sam@example.org", "Sam")]
    assert expected["refunds"] == [("re_S", "pi_A", RefundStatus.SUCCEEDED, 500, True)]
    assert expected["subscriptions"] == [
        ("sub_S", SubscriptionStatus.ACTIVE, 2000, "Pro", "sam@example.org")
    ]
    assert expected["invoices"] == [
        ("in_S", GatewayInvoiceStatus.PAID, 2000, "S-0001", "sam@example.org", True)
    ]

    for seed in (1, 2, 3):
        empty_all_tables(engine)
        with factory() as s:
            s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
            s.commit()
        copies = [
            dict(payload, id=f"{payload['id']}_{n}") for payload in scenario() for n in range(3)
        ]
        random.Random(seed).shuffle(copies)
        for payload in copies:
            assert post(client, payload).status_code == 200
        outcomes = run_pending_jobs(factory)
        assert outcomes == ["done"] * len(copies)
        assert ledger_snapshot(factory) == expected, f"seed {seed}"


# The recorded corpus -------------------------------------------------------------


def corpus_events() -> list[tuple[str, dict[str, Any]]]:
    """Every event payload in the Stripe corpus, each with its own event id.

    pay-rails files hold only ``data.object``; they get an envelope whose type
    is the file name (``subscription.*`` is ``customer.subscription.*`` at Stripe).
    Many recorded events share placeholder ids (``evt_000…``), so each gets a
    unique id here or the replay protection would drop them.
    """
    index = json.loads((STRIPE_CORPUS / "index.json").read_text())
    out = []
    for n, entry in enumerate(index):
        path = CORPUS / "payment_webhooks" / entry["file"]
        if entry["kind"] == "event":
            payload = json.loads(path.read_text())
        elif entry["kind"] == "event_data_object_only":
            obj = json.loads(path.read_text())["object"]
            event_type = entry["event_type_from_filename"]
            if event_type.startswith("subscription."):
                event_type = "customer." + event_type
            payload = event("", event_type, obj, obj.get("created") or 1_700_000_000)
        else:
            continue
        payload["id"] = f"evt_corpus_{n:03d}_{payload.get('id') or 'none'}"[:128]
        out.append((entry["file"], payload))
    return out


def test_every_recorded_stripe_event_is_processed_or_ignored_never_failed(client, factory, brand):
    """All recorded events (2016-2025 API shapes) go through HTTP and the worker cleanly."""
    if not STRIPE_CORPUS.exists():
        if os.environ.get("CI"):
            pytest.fail(f"corpus missing: {STRIPE_CORPUS}")
        pytest.skip("shared Stripe corpus not present")
    events = corpus_events()
    assert len(events) >= 170
    for name, payload in events:
        assert post(client, payload).status_code == 200, name
    outcomes = run_pending_jobs(factory)
    stored = rows(factory)
    assert len(stored) == len(events)
    bad = [
        (r.event_type, r.status, r.error)
        for r in stored
        if r.status not in (WebhookStatus.PROCESSED, WebhookStatus.IGNORED)
    ]
    assert bad == [] and set(outcomes) == {"done"}
    by_status = {s: sum(r.status == s for r in stored) for s in WebhookStatus}
    # What Billbox mirrors must not be ignored; what it does not, must be.
    for row in stored:
        parsed = parse_event(row.body)
        assert (row.status == WebhookStatus.IGNORED) == isinstance(parsed, Ignored)
    assert by_status[WebhookStatus.PROCESSED] >= 45
    with factory() as s:
        assert s.exec(select(Payment)).first() is not None
        assert s.exec(select(Subscription)).first() is not None
        assert s.exec(select(GatewayInvoice)).first() is not None
        assert s.exec(select(Refund)).first() is not None


RECORDED_OBJECT_EVENTS = {
    "payment_intent": ("payment_intent.updated", "GatewayPayment"),
    "invoice": ("invoice.updated", "GatewayInvoiceData"),
    "subscription": ("customer.subscription.updated", "GatewaySubscription"),
    "customer": ("customer.updated", "GatewayCustomer"),
    "refund": ("charge.refund.updated", "GatewayRefund"),
}


def recorded_objects() -> list[tuple[str, dict[str, Any]]]:
    """API objects (dj-stripe 2016-2020 fixtures, stripe-mock's current-spec examples)."""
    if not STRIPE_CORPUS.exists():
        return []
    out = []
    index = json.loads((STRIPE_CORPUS / "index.json").read_text())
    for entry in index:
        if entry["kind"] == "api_object":
            obj = json.loads((CORPUS / "payment_webhooks" / entry["file"]).read_text())
            if obj.get("object") in RECORDED_OBJECT_EVENTS:
                out.append((entry["file"].rsplit("/", 1)[-1], obj))
    resources = json.loads((STRIPE_CORPUS / "openapi" / "fixtures3.json").read_text())
    for name in RECORDED_OBJECT_EVENTS:
        out.append((f"fixtures3:{name}", resources["resources"][name]))
    return out


@pytest.mark.parametrize(
    ("name", "obj"), recorded_objects(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_recorded_api_objects_of_every_api_age_normalise(name, obj):
    """Old and current object shapes, wrapped as an update event, become our own types."""
    event_type, expected_type = RECORDED_OBJECT_EVENTS[obj["object"]]
    parsed = parse_event(json.dumps(event("evt_o", event_type, obj, 1_700_000_000)).encode())
    assert not isinstance(parsed, Ignored), name
    assert [type(o).__name__ for o in parsed] == [expected_type]
    assert parsed[0].external_id == obj["id"]


# Accounts added in the admin: their own endpoint and signing secret ----------


def _eu_account(factory, brand, *, with_keys: bool = True) -> int:
    from billbox.gateways.accounts import seal_credentials

    keys = {"api_key": "sk_test_eu", "webhook_secret": "whsec_eu_account_secret"}
    with factory() as s:
        account = GatewayAccount(
            brand_id=brand.id,
            gateway=GatewayKind.STRIPE,
            name="stripe-eu",
            credentials_encrypted=seal_credentials(SETTINGS_SECRET, keys) if with_keys else None,
        )
        s.add(account)
        s.commit()
        assert account.id is not None
        return account.id


SETTINGS_SECRET = "test-secret-key-0123456789"


@pytest.fixture
def keyed_client(settings, engine):
    configured = settings.model_copy(
        update={
            "stripe_webhook_secret": SecretStr(SECRET),
            "secret_key": SecretStr(SETTINGS_SECRET),
        }
    )
    return create_app(configured, engine=engine).test_client()


def _post_to(client, path: str, payload: dict[str, Any], secret: str):
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, secret)}
    return client.post(path, data=body, headers=headers)


def test_an_admin_added_account_has_its_own_endpoint_secret_and_ledger(
    keyed_client, factory, brand
):
    account_id = _eu_account(factory, brand)
    customer = {"id": "cus_EU", "object": "customer", "email": "eva@example.org", "name": "Eva"}
    payload = event("evt_eu_1", "customer.created", customer, 1_700_000_001)
    # The default account's secret does not open the EU account's endpoint.
    assert _post_to(keyed_client, "/webhooks/stripe/stripe-eu", payload, SECRET).status_code == 400
    assert rows(factory) == []
    answer = _post_to(
        keyed_client, "/webhooks/stripe/stripe-eu", payload, "whsec_eu_account_secret"
    )
    assert answer.status_code == 200
    [row] = rows(factory)
    assert row.account_id == account_id
    assert run_pending_jobs(factory) == ["done"]
    with factory() as s:
        identity = s.exec(select(CustomerIdentity).where(CustomerIdentity.value == "cus_EU")).one()
        assert identity.namespace == f"stripe:{account_id}"
        assert s.exec(select(GatewayAccount).where(GatewayAccount.name == "default")).all() == []


def test_unknown_and_keyless_accounts_store_nothing(keyed_client, factory, brand):
    payload = event("evt_x", "customer.created", {"id": "cus_X", "object": "customer"}, 1)
    assert _post_to(keyed_client, "/webhooks/stripe/nope", payload, SECRET).status_code == 404
    assert _post_to(keyed_client, "/webhooks/stripe/default", payload, SECRET).status_code == 404
    _eu_account(factory, brand, with_keys=False)
    assert _post_to(keyed_client, "/webhooks/stripe/stripe-eu", payload, SECRET).status_code == 503
    assert rows(factory) == []


@pytest.mark.parametrize(
    "names_payment",
    [
        {"payment_intent": "pi_A", "charge": "ch_A"},  # up to the 2025-03-31 API
        {"payments": {"object": "list", "data": [{"payment": {"payment_intent": "pi_A"}}]}},
    ],
)
def test_a_payment_that_arrives_before_its_invoice_is_linked_when_the_invoice_does(
    client, factory, brand, names_payment
):
    post(client, event("evt_p", "payment_intent.succeeded", intent("succeeded"), 1_700_000_020))
    invoice = {
        "id": "in_A",
        "object": "invoice",
        "customer": "cus_A",
        "status": "paid",
        "amount_due": 2000,
        "amount_paid": 2000,
        "currency": "eur",
        "created": 1_700_000_000,
        **names_payment,
    }
    post(client, event("evt_i", "invoice.paid", invoice, 1_700_000_030))
    assert run_pending_jobs(factory) == ["done", "done"]
    with factory() as s:
        payment = s.exec(select(Payment)).one()
        gateway_invoice = s.exec(select(GatewayInvoice)).one()
    assert payment.gateway_invoice_id == gateway_invoice.id
