"""PayPal webhooks end to end: signed deliveries over HTTP, storage, the worker, the ledger.

Deliveries go through the Flask test client into ``POST /webhooks/paypal``;
the adapter verifies each with the local PayPal fake's
``verify-webhook-signature`` (real HTTP on loopback), and jobs run with
``billbox.jobs.run_job`` and the registered handlers. Event resources are
the fake's own objects (captures, refunds, orders, subscriptions), which
follow PayPal's documented JSON, wrapped in PayPal's event envelope.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from billbox.gateways.base import GatewayParseError, Ignored
from billbox.gateways.paypal import parse_event
from billbox.gateways.types import GatewayCustomer, GatewayPayment, GatewayRefund
from billbox.jobs import run_job
from billbox.models import (
    Brand,
    Customer,
    CustomerIdentity,
    GatewayInvoice,
    GatewayInvoiceStatus,
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
from billbox.webhooks import WEBHOOK_JOB
from tests.paypal_fake import PayPalFake, error_body, iso, paypal_id
from web import create_app
from workers.registry import default_handlers

WEBHOOK_ID = "1JE4291016473214C"


@pytest.fixture
def paypal():
    fake = PayPalFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def app(settings, engine, paypal):
    configured = settings.model_copy(
        update={
            "paypal_client_id": paypal.client_id,
            "paypal_client_secret": SecretStr(paypal.client_secret),
            "paypal_webhook_id": WEBHOOK_ID,
            "paypal_api_base": paypal.base_url,
        }
    )
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


def event(event_type: str, resource: dict[str, Any], *, resource_type: str, **extra: Any):
    """PayPal's event envelope (notifications v1 ``event``) around ``resource``."""
    return {
        "id": extra.get("event_id") or f"WH-{paypal_id(17)}-{paypal_id(17)}",
        "event_version": "1.0",
        "create_time": extra.get("create_time") or iso(datetime.now(UTC)),
        "resource_type": resource_type,
        "resource_version": "2.0",
        "event_type": event_type,
        "summary": f"{event_type} summary",
        "resource": copy.deepcopy(resource),
        "links": [
            {
                "href": "https://api.paypal.com/v1/notifications/webhooks-events/WH-1",
                "rel": "self",
                "method": "GET",
            }
        ],
    }


def post(client, paypal: PayPalFake, payload: dict[str, Any] | bytes, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = paypal.sign(body, WEBHOOK_ID) if headers is None else headers
    return client.post(
        "/webhooks/paypal", data=body, headers={"Content-Type": "application/json", **sent}
    )


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


def nothing_stored(factory) -> bool:
    with factory() as s:
        return s.exec(select(WebhookEvent)).all() == [] and s.exec(select(Job)).all() == []


def at(capture: dict[str, Any], minutes: int, **changes: Any) -> dict[str, Any]:
    """A copy of a PayPal object as it stood ``minutes`` after now (its update_time moved)."""
    moved = copy.deepcopy(capture)
    moved["update_time"] = iso(datetime.now(UTC) + timedelta(minutes=minutes))
    moved.update(changes)
    return moved


# Verification ----------------------------------------------------------------------------------


def test_a_signed_delivery_is_stored_with_its_job(client, factory, paypal):
    """200; one received row with the exact body and PayPal's headers; one job naming it."""
    _, capture_id = paypal.add_capture()
    payload = event(
        "PAYMENT.CAPTURE.COMPLETED", paypal.captures[capture_id], resource_type="capture"
    )
    body = json.dumps(payload).encode()
    response = post(client, paypal, body)
    assert response.status_code == 200 and response.get_json()["duplicate"] is False
    [row] = rows(factory)
    assert (row.gateway, row.event_id, row.event_type) == (
        "paypal",
        payload["id"],
        "PAYMENT.CAPTURE.COMPLETED",
    )
    assert row.status == WebhookStatus.RECEIVED and row.body == body
    assert row.headers["Paypal-Transmission-Id"]
    with factory() as s:
        [job] = s.exec(select(Job)).all()
    assert job.kind == WEBHOOK_JOB and job.payload == {"webhook_event_id": row.id}
    assert len(paypal.calls("POST", "/v1/notifications/verify-webhook-signature")) == 1


@pytest.mark.parametrize("tamper", ["body", "signature", "other-webhook", "no-headers", "garbage"])
def test_a_delivery_without_a_valid_signature_is_refused_and_not_stored(
    client, factory, paypal, tamper
):
    """Changed body, forged signature, another webhook's delivery, no headers: 400, nothing kept."""
    payload = event("PAYMENT.CAPTURE.COMPLETED", {"id": "X"}, resource_type="capture")
    body = json.dumps(payload).encode()
    headers = paypal.sign(body, "OTHER" if tamper == "other-webhook" else WEBHOOK_ID)
    if tamper == "body":
        body = body.replace(b'"X"', b'"Y"')
    elif tamper == "signature":
        headers["PAYPAL-TRANSMISSION-SIG"] = "Zm9yZ2Vk" + headers["PAYPAL-TRANSMISSION-SIG"][8:]
    elif tamper == "no-headers":
        headers = {}
    elif tamper == "garbage":
        body = b"not json"
        headers = paypal.sign(b"{}", WEBHOOK_ID)
    response = post(client, paypal, body, headers=headers)
    assert response.status_code == 400
    assert nothing_stored(factory)


def test_a_stale_transmission_is_refused_without_asking_paypal(client, factory, paypal):
    body = json.dumps(event("PAYMENT.CAPTURE.COMPLETED", {}, resource_type="capture")).encode()
    stale = paypal.sign(body, WEBHOOK_ID, sent=datetime.now(UTC) - timedelta(seconds=301))
    assert post(client, paypal, body, headers=stale).status_code == 400
    assert nothing_stored(factory) and paypal.log == []


def test_an_oversized_body_is_refused_before_verification(client, factory, paypal):
    payload = event("PAYMENT.CAPTURE.COMPLETED", {"pad": "x" * 300_000}, resource_type="capture")
    assert post(client, paypal, payload).status_code == 400
    assert nothing_stored(factory) and paypal.log == []


def test_paypal_unreachable_while_verifying_answers_503_and_stores_nothing(client, factory, paypal):
    """PayPal redelivers on non-2xx; a 503 loses nothing and stores nothing unverified."""
    paypal.fail_next("verify-webhook-signature", 500, body=error_body(500))
    payload = event("PAYMENT.CAPTURE.COMPLETED", {}, resource_type="capture")
    assert post(client, paypal, payload).status_code == 503
    assert nothing_stored(factory)


def test_without_paypal_settings_deliveries_answer_503(settings, engine, factory, paypal):
    client = create_app(settings, engine=engine).test_client()
    payload = event("PAYMENT.CAPTURE.COMPLETED", {}, resource_type="capture")
    assert post(client, paypal, payload).status_code == 503
    assert nothing_stored(factory)


def test_a_replayed_event_is_a_no_op(client, factory, paypal, brand):
    """Same event id again (even freshly signed): 200 duplicate, one row, one job, one payment."""
    _, capture_id = paypal.add_capture()
    payload = event(
        "PAYMENT.CAPTURE.COMPLETED", paypal.captures[capture_id], resource_type="capture"
    )
    assert post(client, paypal, payload).status_code == 200
    assert run_pending_jobs(factory) == ["done"]
    again = post(client, paypal, payload)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert run_pending_jobs(factory) == []
    assert len(rows(factory)) == 1
    with factory() as s:
        assert len(s.exec(select(Job).where(Job.kind == WEBHOOK_JOB)).all()) == 1
        assert len(s.exec(select(Payment)).all()) == 1


# Processing into the ledger ------------------------------------------------------------------


def test_an_order_and_its_capture_land_in_the_ledger_linked_to_the_payer(
    client, factory, paypal, brand
):
    """CHECKOUT.ORDER.COMPLETED: the payer becomes a customer (email + payer_id), the capture
    a succeeded payment of that customer; the later capture event keeps the link."""
    payer = paypal.add_payer("Ada@Example.ORG", "PAYERADA77")
    order_id, capture_id = paypal.add_capture("49.90", "EUR", payer=payer)
    post(
        client,
        paypal,
        event("CHECKOUT.ORDER.COMPLETED", paypal.orders[order_id], resource_type="checkout-order"),
    )
    post(
        client,
        paypal,
        event("PAYMENT.CAPTURE.COMPLETED", paypal.captures[capture_id], resource_type="capture"),
    )
    assert run_pending_jobs(factory) == ["done", "done"]
    assert [r.status for r in rows(factory)] == [WebhookStatus.PROCESSED] * 2
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
        customer = s.get(Customer, payment.customer_id)
        identities = {i.value for i in s.exec(select(CustomerIdentity)).all()}
    assert (payment.external_id, payment.amount, payment.currency) == (capture_id, 4990, "EUR")
    assert payment.status == PaymentStatus.SUCCEEDED and payment.payer_email == "Ada@Example.ORG"
    assert customer is not None and customer.email == "ada@example.org"
    assert customer.name == "Ada Lovelace" and customer.country == "DE"
    assert {"PAYERADA77", "ada@example.org"} <= identities


def test_a_refund_arriving_before_its_capture_is_linked_when_the_capture_arrives(
    client, factory, paypal, gateway_refund
):
    """PAYMENT.CAPTURE.REFUNDED (resource = refund, links[up] = capture) first: kept as an
    orphan; the capture event then links it and the payment reads partially refunded."""
    capture_id, refund = gateway_refund
    post(client, paypal, event("PAYMENT.CAPTURE.REFUNDED", refund, resource_type="refund"))
    assert run_pending_jobs(factory) == ["done"]
    with factory() as s:
        [orphan] = s.exec(select(Refund)).all()
    assert orphan.payment_id is None and orphan.payment_external_id == capture_id
    completed = at(paypal.captures[capture_id], -5, status="COMPLETED")
    post(client, paypal, event("PAYMENT.CAPTURE.COMPLETED", completed, resource_type="capture"))
    assert run_pending_jobs(factory) == ["done"]
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
        [linked] = s.exec(select(Refund)).all()
    assert linked.payment_id == payment.id and linked.status == RefundStatus.SUCCEEDED
    assert (payment.amount, payment.amount_refunded) == (2500, 1000)
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED


@pytest.fixture
def gateway_refund(paypal, brand):
    """A 25.00 capture refunded 10.00 through the fake's API; (capture id, refund resource)."""
    from billbox.gateways.paypal import PayPalGateway

    gateway = PayPalGateway(
        client_id=paypal.client_id, client_secret=paypal.client_secret, api_base=paypal.base_url
    )
    _, capture_id = paypal.add_capture("25.00", "EUR")
    made = gateway.refund(capture_id, 1000, "EUR", reason="late", idempotency_key="wr-1")
    resource = {k: v for k, v in paypal.refunds[made.external_id].items() if not k.startswith("_")}
    paypal.log.clear()
    return capture_id, resource


def test_an_older_update_after_a_newer_one_is_ignored(client, factory, paypal, brand):
    """COMPLETED (newer update_time) processed first; a late PENDING must not move it back."""
    _, capture_id = paypal.add_capture()
    newer = at(paypal.captures[capture_id], 0, status="COMPLETED")
    older = at(
        paypal.captures[capture_id], -10, status="PENDING", status_details={"reason": "ECHECK"}
    )
    post(client, paypal, event("PAYMENT.CAPTURE.COMPLETED", newer, resource_type="capture"))
    post(client, paypal, event("PAYMENT.CAPTURE.PENDING", older, resource_type="capture"))
    assert run_pending_jobs(factory) == ["done", "done"]
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
    assert payment.status == PaymentStatus.SUCCEEDED


def test_a_denied_capture_is_a_failed_payment(client, factory, paypal, brand):
    _, capture_id = paypal.add_capture(status="DECLINED")
    post(
        client,
        paypal,
        event("PAYMENT.CAPTURE.DENIED", paypal.captures[capture_id], resource_type="capture"),
    )
    assert run_pending_jobs(factory) == ["done"]
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
    assert payment.status == PaymentStatus.FAILED


def test_an_authorization_is_authorized_then_canceled_when_voided(client, factory, paypal, brand):
    _, auth_id = paypal.add_authorization("40.00", "USD")
    created = copy.deepcopy(paypal.authorizations[auth_id])
    post(
        client,
        paypal,
        event("PAYMENT.AUTHORIZATION.CREATED", created, resource_type="authorization"),
    )
    voided = at(created, 3, status="VOIDED")
    post(
        client, paypal, event("PAYMENT.AUTHORIZATION.VOIDED", voided, resource_type="authorization")
    )
    assert run_pending_jobs(factory) == ["done", "done"]
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
    assert payment.external_id == auth_id and payment.amount == 4000
    assert payment.status == PaymentStatus.CANCELED


def test_subscription_events_arriving_out_of_order_end_canceled(client, factory, paypal, brand):
    """CANCELLED (newer) before ACTIVATED (older): the subscription stays canceled, and the
    subscriber becomes a customer of it."""
    plan_id = paypal.add_plan("Pro", "12.00", "EUR")
    sub_id = paypal.add_subscription(
        plan_id, payer=paypal.add_payer("sub@example.com", "PAYERSUB1")
    )
    active = copy.deepcopy(paypal.subscriptions[sub_id])
    cancelled = at(
        active,
        2,
        status="CANCELLED",
        status_update_time=iso(datetime.now(UTC) + timedelta(minutes=2)),
    )
    post(
        client,
        paypal,
        event("BILLING.SUBSCRIPTION.CANCELLED", cancelled, resource_type="subscription"),
    )
    post(
        client,
        paypal,
        event("BILLING.SUBSCRIPTION.ACTIVATED", active, resource_type="subscription"),
    )
    assert run_pending_jobs(factory) == ["done", "done"]
    with factory() as s:
        [subscription] = s.exec(select(Subscription)).all()
        customer = s.get(Customer, subscription.customer_id)
    assert subscription.status == SubscriptionStatus.CANCELED and subscription.canceled_at
    assert (subscription.amount, subscription.currency) == (1200, "EUR")  # last payment
    assert customer is not None and customer.email == "sub@example.com"


def test_invoice_events_land_as_gateway_invoices(client, factory, paypal, brand):
    """INVOICING.INVOICE.CREATED then .PAID (newer): one paid invoice with its number."""
    invoice_id = paypal.add_invoice("80.00", "EUR")
    draft = copy.deepcopy(paypal.invoices[invoice_id])
    paid = copy.deepcopy(draft)
    paid["status"] = "PAID"
    paid["payments"] = {
        "paid_amount": {"currency_code": "EUR", "value": "80.00"},
        "transactions": [
            {
                "payment_id": "3ML56789AB012345C",
                "payment_date": "2026-11-26",
                "method": "PAYPAL",
                "type": "PAYPAL",
            }
        ],
    }
    paid["detail"]["metadata"]["last_update_time"] = iso(datetime.now(UTC) + timedelta(minutes=1))
    post(client, paypal, event("INVOICING.INVOICE.PAID", paid, resource_type="invoices"))
    post(client, paypal, event("INVOICING.INVOICE.CREATED", draft, resource_type="invoices"))
    assert run_pending_jobs(factory) == ["done", "done"]
    with factory() as s:
        [invoice] = s.exec(select(GatewayInvoice)).all()
    assert invoice.status == GatewayInvoiceStatus.PAID and invoice.number == "#0001"
    assert (invoice.amount_due, invoice.amount_paid) == (8000, 8000)
    assert invoice.paid_at is not None and invoice.paid_at.day == 26


def dispute(capture: dict[str, Any], minutes: int, status: str, outcome: str | None = None):
    """A customer_disputes v1 ``dispute`` over one capture, updated ``minutes`` from now."""
    when = iso(datetime.now(UTC) + timedelta(minutes=minutes))
    resource: dict[str, Any] = {
        "dispute_id": "PP-D-27803",
        "create_time": capture["create_time"],
        "update_time": when,
        "disputed_transactions": [
            {
                "buyer_transaction_id": "0BE85793AK0577429",
                "seller_transaction_id": capture["id"],
                "create_time": capture["create_time"],
                "transaction_status": "COMPLETED",
                "gross_amount": capture["amount"],
                "buyer": {"name": "Ada Lovelace"},
                "seller": {"email": "merchant@example.com", "merchant_id": "8NMUX5SLNT2C6"},
            }
        ],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": status,
        "dispute_amount": capture["amount"],
        "dispute_life_cycle_stage": "INQUIRY",
        "dispute_channel": "INTERNAL",
        "links": [],
    }
    if outcome:
        resource["dispute_outcome"] = {"outcome_code": outcome}
    return resource


@pytest.mark.parametrize(
    ("outcome", "final"),
    [
        ("RESOLVED_SELLER_FAVOUR", PaymentStatus.SUCCEEDED),
        ("RESOLVED_BUYER_FAVOUR", PaymentStatus.DISPUTED),
    ],
)
def test_a_dispute_marks_the_capture_disputed_until_won(
    client, factory, paypal, brand, outcome, final
):
    """CUSTOMER.DISPUTE.CREATED → disputed; RESOLVED restores the status only when won."""
    _, capture_id = paypal.add_capture("25.00", "EUR")
    capture = paypal.captures[capture_id]
    post(client, paypal, event("PAYMENT.CAPTURE.COMPLETED", capture, resource_type="capture"))
    post(
        client,
        paypal,
        event("CUSTOMER.DISPUTE.CREATED", dispute(capture, 1, "OPEN"), resource_type="dispute"),
    )
    assert run_pending_jobs(factory) == ["done", "done"]
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
    assert payment.status == PaymentStatus.DISPUTED and payment.amount == 2500
    resolved = dispute(capture, 2, "RESOLVED", outcome)
    post(client, paypal, event("CUSTOMER.DISPUTE.RESOLVED", resolved, resource_type="dispute"))
    assert run_pending_jobs(factory) == ["done"]
    with factory() as s:
        [payment] = s.exec(select(Payment)).all()
    assert payment.status == final


def test_an_unknown_event_type_is_ignored_without_error(client, factory, paypal, brand):
    payload = event("PAYMENT.PAYOUTSBATCH.SUCCESS", {"batch_header": {}}, resource_type="payouts")
    post(client, paypal, payload)
    post(
        client, paypal, event("CATALOG.PRODUCT.CREATED", {"id": "PROD-1"}, resource_type="product")
    )
    assert run_pending_jobs(factory) == ["done", "done"]
    assert [r.status for r in rows(factory)] == [WebhookStatus.IGNORED] * 2


def test_a_known_event_that_cannot_be_parsed_fails_with_the_error_kept(
    client, factory, paypal, brand
):
    broken = {
        "id": "CAP1",
        "status": "COMPLETED",
        "amount": {"currency_code": "EUR", "value": "1.234"},
    }
    post(client, paypal, event("PAYMENT.CAPTURE.COMPLETED", broken, resource_type="capture"))
    assert run_pending_jobs(factory) == ["failed"]
    [row] = rows(factory)
    assert row.status == WebhookStatus.FAILED and row.error and "more digits" in row.error
    with factory() as s:
        assert s.exec(select(Payment)).all() == []


# parse_event alone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paypal_status", "expected"),
    [
        ("COMPLETED", PaymentStatus.SUCCEEDED),
        ("PENDING", PaymentStatus.PENDING),
        ("DECLINED", PaymentStatus.FAILED),
        ("FAILED", PaymentStatus.FAILED),
        ("REFUNDED", PaymentStatus.REFUNDED),
        ("PARTIALLY_REFUNDED", PaymentStatus.PARTIALLY_REFUNDED),
    ],
)
def test_capture_statuses_map_to_ledger_statuses(paypal, paypal_status, expected):
    _, capture_id = paypal.add_capture("10.00", "GBP", status=paypal_status)
    payload = event(
        "PAYMENT.CAPTURE.COMPLETED", paypal.captures[capture_id], resource_type="capture"
    )
    [payment] = parse_event(json.dumps(payload).encode())
    assert isinstance(payment, GatewayPayment) and payment.status == expected
    assert payment.updated_at == datetime.fromisoformat(paypal.captures[capture_id]["update_time"])


def test_a_v1_sale_and_its_refund_are_mirrored():
    """Subscription charges still arrive as PAYMENT.SALE.* with the v1 shapes."""
    sale = {
        "id": "80021663DE681814L",
        "state": "completed",
        "amount": {"total": "1000", "currency": "JPY"},
        "billing_agreement_id": "I-PE7JWXKGVN0R",
        "create_time": "2026-01-01T10:00:00Z",
        "update_time": "2026-01-01T10:00:05Z",
    }
    [payment] = parse_event(
        json.dumps(event("PAYMENT.SALE.COMPLETED", sale, resource_type="sale")).encode()
    )
    assert isinstance(payment, GatewayPayment)
    assert (payment.amount, payment.currency, payment.status) == (
        1000,
        "JPY",
        PaymentStatus.SUCCEEDED,
    )
    refund = {
        "id": "1K097577WA8372123",
        "state": "completed",
        "amount": {"total": "-300", "currency": "JPY"},
        "sale_id": "80021663DE681814L",
        "create_time": "2026-01-02T10:00:00Z",
    }
    [mapped] = parse_event(
        json.dumps(event("PAYMENT.SALE.REFUNDED", refund, resource_type="refund")).encode()
    )
    assert isinstance(mapped, GatewayRefund) and (mapped.amount, mapped.payment_external_id) == (
        300,
        "80021663DE681814L",
    )


def test_an_order_without_payments_yields_only_its_payer(paypal):
    payer = paypal.add_payer("p@example.com", "PAYERONLY")
    order = {
        "id": "5O190127TN364715T",
        "status": "APPROVED",
        "intent": "CAPTURE",
        "payer": payer,
        "purchase_units": [
            {"reference_id": "default", "amount": {"currency_code": "EUR", "value": "5.00"}}
        ],
        "create_time": "2026-01-01T10:00:00Z",
    }
    [customer] = parse_event(
        json.dumps(event("CHECKOUT.ORDER.APPROVED", order, resource_type="checkout-order")).encode()
    )
    assert isinstance(customer, GatewayCustomer) and customer.external_id == "PAYERONLY"


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        b'{"event_type": "PAYMENT.CAPTURE.COMPLETED"}',
        b'{"create_time": "2026-01-01T00:00:00Z"}',
    ],
)
def test_bodies_that_are_not_paypal_events_are_parse_errors(body):
    with pytest.raises(GatewayParseError):
        parse_event(body)


def test_unmirrored_types_are_ignored_by_the_parser():
    payload = event("RISK.DISPUTE.CREATED", {"id": "PP-1"}, resource_type="dispute")
    assert isinstance(parse_event(json.dumps(payload).encode()), Ignored)
