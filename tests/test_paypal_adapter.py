"""The PayPal adapter against the local PayPal fake: SDK calls, REST calls, errors, listing.

Every call goes over real HTTP on loopback to ``tests/paypal_fake.py``,
which answers with PayPal's documented JSON; assertions read the fake's
request log to prove what was sent (``PayPal-Request-Id``, amounts, tokens).
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from billbox.gateways.base import (
    Capability,
    GatewayDeclined,
    GatewayError,
    GatewayUnavailable,
    ObjectKind,
    UnsupportedAction,
    WebhookVerificationError,
)
from billbox.gateways.paypal import PayPalGateway
from billbox.gateways.paypal_listing import WindowCursor
from billbox.gateways.types import GatewayCustomer, GatewayPayment, GatewayRefund
from billbox.models import GatewayInvoiceStatus, PaymentStatus, RefundStatus, SubscriptionStatus
from tests.paypal_fake import PayPalFake, error_body

WEBHOOK_ID = "8PT597110X687430LKGECATA"


@pytest.fixture
def paypal():
    fake = PayPalFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def gateway(paypal: PayPalFake) -> PayPalGateway:
    return PayPalGateway(
        client_id=paypal.client_id,
        client_secret=paypal.client_secret,
        webhook_id=WEBHOOK_ID,
        api_base=paypal.base_url,
    )


def sent_json(logged) -> dict:
    return json.loads(logged.body)


# Fetching ----------------------------------------------------------------------------------


def test_a_capture_is_fetched_with_the_payer_of_its_order(gateway, paypal):
    """The capture has no payer; the adapter reads its order so the payment links to the payer."""
    payer = paypal.add_payer("Ada@Example.com", "PAYERADA1")
    order_id, capture_id = paypal.add_capture("25.99", "EUR", payer=payer)
    payment = gateway.fetch_payment(capture_id)
    assert payment.external_id == capture_id
    assert (payment.amount, payment.currency, payment.status) == (
        2599,
        "EUR",
        PaymentStatus.SUCCEEDED,
    )
    assert payment.customer_external_id == "PAYERADA1" and payment.payer_email == "Ada@Example.com"
    assert paypal.calls("GET", f"/v2/checkout/orders/{order_id}")


def test_an_authorization_id_is_fetched_as_an_authorized_payment(gateway, paypal):
    """Not a capture (PayPal 404) → the same id is read as an authorization."""
    _, auth_id = paypal.add_authorization("40.00", "USD")
    payment = gateway.fetch_payment(auth_id)
    assert payment.status == PaymentStatus.AUTHORIZED and payment.amount == 4000
    assert payment.currency == "USD" and payment.customer_external_id is not None


def test_an_unknown_payment_id_is_declined_with_paypals_issue(gateway):
    with pytest.raises(GatewayDeclined) as info:
        gateway.fetch_payment("NOSUCHID000000000")
    assert info.value.code == "INVALID_RESOURCE_ID" and info.value.request_id


def test_the_oauth_token_is_fetched_once_and_reused(gateway, paypal):
    """Client-credentials token cached until expiry: three calls, one token request."""
    _, capture_id = paypal.add_capture()
    for _ in range(3):
        gateway.fetch_payment(capture_id)
    assert len(paypal.calls("POST", "/v1/oauth2/token")) == 1
    [token] = paypal.tokens
    assert all(
        r.headers["Authorization"] == f"Bearer {token}"
        for r in paypal.log
        if r.path != "/v1/oauth2/token"
    )


# Actions -----------------------------------------------------------------------------------


def test_a_refund_sends_the_idempotency_key_and_a_replay_refunds_nothing_more(gateway, paypal):
    """Same ``PayPal-Request-Id`` → PayPal replays the first answer; one refund exists."""
    _, capture_id = paypal.add_capture("25.00", "EUR")
    first = gateway.refund(capture_id, 1050, "EUR", reason="damaged", idempotency_key="refund-1")
    again = gateway.refund(capture_id, 1050, "EUR", reason="damaged", idempotency_key="refund-1")
    assert isinstance(first, GatewayRefund) and first == again
    assert (first.amount, first.currency, first.status) == (1050, "EUR", RefundStatus.SUCCEEDED)
    assert first.payment_external_id == capture_id and first.reason == "damaged"
    calls = paypal.calls("POST", f"/v2/payments/captures/{capture_id}/refund")
    assert [c.headers["PayPal-Request-Id"] for c in calls] == ["refund-1", "refund-1"]
    assert sent_json(calls[0]) == {
        "amount": {"currency_code": "EUR", "value": "10.50"},
        "note_to_payer": "damaged",
    }
    assert len(paypal.refunds) == 1
    assert paypal.captures[capture_id]["status"] == "PARTIALLY_REFUNDED"


def test_a_zero_decimal_currency_is_sent_without_decimals(gateway, paypal):
    _, capture_id = paypal.add_capture("5000", "JPY")
    refund = gateway.refund(capture_id, 1200, "JPY", reason="", idempotency_key="jpy-1")
    [call] = paypal.calls("POST", f"/v2/payments/captures/{capture_id}/refund")
    assert sent_json(call)["amount"] == {"currency_code": "JPY", "value": "1200"}
    assert refund.amount == 1200


def test_a_refund_paypal_refuses_is_declined_with_its_message_issue_and_debug_id(gateway, paypal):
    """422 UNPROCESSABLE_ENTITY → GatewayDeclined(details[0].description, code=issue)."""
    _, capture_id = paypal.add_capture("25.00", "EUR")
    with pytest.raises(GatewayDeclined) as info:
        gateway.refund(capture_id, 3000, "EUR", reason="", idempotency_key="too-much")
    assert info.value.code == "REFUND_AMOUNT_EXCEEDED"
    assert "less than or equal to the capture amount" in str(info.value)
    assert len(info.value.request_id) == 13
    gateway.refund(capture_id, 2500, "EUR", reason="", idempotency_key="all")
    with pytest.raises(GatewayDeclined) as info:
        gateway.refund(capture_id, 100, "EUR", reason="", idempotency_key="again")
    assert info.value.code == "CAPTURE_FULLY_REFUNDED"


def test_a_scripted_400_without_details_uses_name_and_message(gateway, paypal):
    _, capture_id = paypal.add_capture()
    paypal.fail_next("/refund$", 400, body=error_body(400))
    with pytest.raises(GatewayDeclined) as info:
        gateway.refund(capture_id, 100, "EUR", reason="", idempotency_key="bad")
    assert info.value.code == "INVALID_REQUEST"
    assert str(info.value).startswith("Request is not well-formed")


def test_capturing_an_authorization_returns_the_new_capture(gateway, paypal):
    """A partial capture: amount in the authorization's currency, final_capture, request id."""
    _, auth_id = paypal.add_authorization("40.00", "EUR")
    capture = gateway.capture(auth_id, 1500, idempotency_key="cap-1")
    assert isinstance(capture, GatewayPayment) and capture.external_id != auth_id
    assert (capture.amount, capture.status) == (1500, PaymentStatus.SUCCEEDED)
    [call] = paypal.calls("POST", f"/v2/payments/authorizations/{auth_id}/capture")
    assert call.headers["PayPal-Request-Id"] == "cap-1"
    assert sent_json(call) == {
        "final_capture": True,
        "amount": {"currency_code": "EUR", "value": "15.00"},
    }
    assert gateway.fetch_payment(auth_id).status == PaymentStatus.CANCELED  # the hold is gone
    with pytest.raises(GatewayDeclined) as info:
        gateway.capture(auth_id, None, idempotency_key="cap-2")
    assert info.value.code == "AUTHORIZATION_ALREADY_CAPTURED"


def test_voiding_an_authorization_cancels_it_and_a_second_void_is_declined(gateway, paypal):
    _, auth_id = paypal.add_authorization()
    voided = gateway.void(auth_id, idempotency_key="void-1")
    assert voided.external_id == auth_id and voided.status == PaymentStatus.CANCELED
    [call] = paypal.calls("POST", f"/v2/payments/authorizations/{auth_id}/void")
    assert call.headers["PayPal-Request-Id"] == "void-1"
    with pytest.raises(GatewayDeclined) as info:
        gateway.void(auth_id, idempotency_key="void-2")
    assert info.value.code == "PREVIOUSLY_VOIDED"


def test_cancelling_a_subscription_is_immediate_and_safe_to_repeat(gateway, paypal):
    """Cancel → the subscription as PayPal now holds it; a repeat returns it, not an error."""
    plan_id = paypal.add_plan("Pro monthly", "12.00", "EUR")
    sub_id = paypal.add_subscription(plan_id)
    canceled = gateway.cancel_subscription(sub_id, at_period_end=False, idempotency_key="c-1")
    assert canceled.status == SubscriptionStatus.CANCELED and canceled.canceled_at is not None
    assert (canceled.amount, canceled.currency, canceled.plan_name) == (1200, "EUR", "Pro monthly")
    again = gateway.cancel_subscription(sub_id, at_period_end=False, idempotency_key="c-1")
    assert again.status == SubscriptionStatus.CANCELED
    assert len(paypal.calls("POST", f"/v1/billing/subscriptions/{sub_id}/cancel")) == 2


def test_cancelling_an_unapproved_subscription_is_declined(gateway, paypal):
    plan_id = paypal.add_plan()
    sub_id = paypal.add_subscription(plan_id, status="APPROVAL_PENDING")
    with pytest.raises(GatewayDeclined) as info:
        gateway.cancel_subscription(sub_id, at_period_end=False, idempotency_key="c-2")
    assert info.value.code == "SUBSCRIPTION_STATUS_INVALID"


def test_cancel_at_period_end_is_unsupported_and_calls_nothing(gateway, paypal):
    with pytest.raises(UnsupportedAction):
        gateway.cancel_subscription("I-ANY", at_period_end=True, idempotency_key="c-3")
    assert paypal.log == []


def test_creating_a_subscription_awaits_payer_approval(gateway, paypal):
    """plan_id + custom_id, request id sent; the answer is an incomplete, priced subscription."""
    plan_id = paypal.add_plan("Team", "30.00", "USD")
    created = gateway.create_subscription("PAYERBOB1", plan_id, coupon=None, idempotency_key="s-1")
    assert created.status == SubscriptionStatus.INCOMPLETE
    assert created.customer_external_id == "PAYERBOB1"
    assert (created.amount, created.currency, created.price_external_id) == (3000, "USD", plan_id)
    [call] = paypal.calls("POST", "/v1/billing/subscriptions")
    assert call.headers["PayPal-Request-Id"] == "s-1"
    assert sent_json(call) == {"plan_id": plan_id, "custom_id": "PAYERBOB1"}


def test_actions_paypal_does_not_have_are_unsupported_and_not_in_capabilities(gateway, paypal):
    with pytest.raises(UnsupportedAction):
        gateway.create_subscription("P", "P-1", coupon="SUMMER", idempotency_key="x")
    with pytest.raises(UnsupportedAction):
        gateway.apply_coupon("P", "SUMMER", subscription_external_id=None, idempotency_key="x")
    with pytest.raises(UnsupportedAction):
        gateway.add_tax_id("P", "eu_vat", "DE123456789", idempotency_key="x")
    with pytest.raises(UnsupportedAction):
        gateway.fetch_customer("PAYER")
    assert paypal.log == []
    assert gateway.capabilities == {
        Capability.WEBHOOKS,
        Capability.FETCH,
        Capability.LIST,
        Capability.REFUND,
        Capability.CAPTURE,
        Capability.VOID,
        Capability.CANCEL_SUBSCRIPTION,
        Capability.CREATE_SUBSCRIPTION,
        Capability.FINALIZE_INVOICE,
    }


def test_finalizing_an_invoice_sends_it_through_paypal(gateway, paypal):
    """Invoicing v2 send (REST, not in the SDK), then the invoice re-read: open, due, linked."""
    invoice_id = paypal.add_invoice("80.00", "EUR")
    sent = gateway.finalize_invoice(invoice_id, send=True, idempotency_key="inv-1")
    assert (
        sent.status == GatewayInvoiceStatus.OPEN and paypal.invoices[invoice_id]["status"] == "SENT"
    )
    assert (sent.amount_due, sent.currency, sent.number) == (8000, "EUR", "#0001")
    assert sent.due_at is not None and sent.hosted_url and invoice_id in sent.hosted_url
    [call] = paypal.calls("POST", f"/v2/invoicing/invoices/{invoice_id}/send")
    assert call.headers["PayPal-Request-Id"] == "inv-1"
    assert sent_json(call) == {"send_to_invoicer": False, "send_to_recipient": True}


def test_finalizing_without_send_emails_nobody(gateway, paypal):
    invoice_id = paypal.add_invoice()
    final = gateway.finalize_invoice(invoice_id, send=False, idempotency_key="inv-2")
    assert final.status == GatewayInvoiceStatus.OPEN
    assert paypal.invoices[invoice_id]["status"] == "UNPAID"  # share-link flow


def test_finalizing_a_cancelled_invoice_is_declined(gateway, paypal):
    invoice_id = paypal.add_invoice(status="CANCELLED")
    with pytest.raises(GatewayDeclined) as info:
        gateway.finalize_invoice(invoice_id, send=True, idempotency_key="inv-3")
    assert info.value.code == "UNPROCESSABLE_ENTITY" and info.value.request_id


def test_a_rest_call_refreshes_an_expired_token_too(gateway, paypal):
    invoice_id = paypal.add_invoice()
    gateway.finalize_invoice(invoice_id, send=True, idempotency_key="inv-4")
    paypal.expire_tokens()
    gateway.finalize_invoice(invoice_id, send=True, idempotency_key="inv-5")
    assert len(paypal.calls("POST", "/v1/oauth2/token")) == 2


# Tokens and transient errors ----------------------------------------------------------------


def test_a_401_refreshes_the_token_once_and_retries(gateway, paypal):
    """PayPal dropped the token early: one new token, the call repeated, the answer returned."""
    _, capture_id = paypal.add_capture()
    gateway.fetch_payment(capture_id)
    paypal.expire_tokens()
    assert gateway.fetch_payment(capture_id).external_id == capture_id
    assert len(paypal.calls("POST", "/v1/oauth2/token")) == 2
    statuses = [r.path for r in paypal.log]
    assert statuses.count(f"/v2/payments/captures/{capture_id}") == 3


def test_a_401_after_a_fresh_token_is_an_error_not_a_loop(gateway, paypal):
    _, capture_id = paypal.add_capture()
    unauthorized = {
        "error": "invalid_token",
        "error_description": "Token signature verification failed",
    }
    paypal.fail_next("/v2/payments/captures/", 401, body=unauthorized, times=5)
    with pytest.raises(GatewayError, match="authentication failed") as info:
        gateway.fetch_payment(capture_id)
    assert not isinstance(info.value, GatewayDeclined | GatewayUnavailable)
    assert len(paypal.calls("GET", f"/v2/payments/captures/{capture_id}")) == 2


def test_wrong_client_credentials_are_an_authentication_error(paypal):
    gateway = PayPalGateway(client_id="someone", client_secret="else", api_base=paypal.base_url)
    with pytest.raises(GatewayError, match="Client Authentication failed"):
        gateway.fetch_payment("ANY")


def test_a_429_is_unavailable_with_paypals_retry_after(gateway, paypal):
    _, capture_id = paypal.add_capture()
    paypal.fail_next("/refund$", 429, body=error_body(429), headers={"Retry-After": "7"})
    with pytest.raises(GatewayUnavailable) as info:
        gateway.refund(capture_id, 100, "EUR", reason="", idempotency_key="r-429")
    assert info.value.retry_after == 7.0
    assert "RATE_LIMIT_REACHED" in str(info.value)
    refund = gateway.refund(capture_id, 100, "EUR", reason="", idempotency_key="r-429")
    assert refund.amount == 100 and len(paypal.refunds) == 1


def test_a_5xx_is_unavailable(gateway, paypal):
    _, capture_id = paypal.add_capture()
    paypal.fail_next("/v2/payments/captures/", 503, body=error_body(503))
    with pytest.raises(GatewayUnavailable) as info:
        gateway.fetch_payment(capture_id)
    assert info.value.retry_after is None


def test_an_unreachable_paypal_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = PayPalGateway(
        client_id="a", client_secret="b", api_base=f"http://127.0.0.1:{port}", timeout=2
    )
    with pytest.raises(GatewayUnavailable):
        gateway.fetch_payment("ANY")


def test_from_settings_reads_the_paypal_variables(settings, paypal):
    configured = settings.model_copy(
        update={
            "paypal_client_id": paypal.client_id,
            "paypal_client_secret": SecretStr(paypal.client_secret),
            "paypal_webhook_id": WEBHOOK_ID,
            "paypal_api_base": paypal.base_url,
        }
    )
    gateway = PayPalGateway.from_settings(configured)
    assert gateway.can_verify
    _, capture_id = paypal.add_capture()
    assert gateway.fetch_payment(capture_id).external_id == capture_id
    assert not PayPalGateway.from_settings(settings).can_verify


# Webhook verification -------------------------------------------------------------------------


def event_body(event_id: str = "WH-1XY23456AB789012C-3DE45678FG901234H") -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "event_version": "1.0",
            "create_time": "2026-01-01T10:00:00Z",
            "resource_type": "capture",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "summary": "Payment completed for EUR 25.0 EUR",
            "resource": {},
        },
        indent=1,
    ).encode()


def test_a_signed_delivery_is_verified_by_paypal_with_the_exact_event(gateway, paypal):
    body = event_body()
    verified = gateway.verify_webhook(paypal.sign(body, WEBHOOK_ID), body)
    assert verified.event_type == "PAYMENT.CAPTURE.COMPLETED"
    assert verified.created == datetime(2026, 1, 1, 10, tzinfo=UTC)
    [call] = paypal.calls("POST", "/v1/notifications/verify-webhook-signature")
    assert call.body.endswith(b'"webhook_event": ' + body + b"}")  # byte for byte
    assert sent_json(call)["webhook_id"] == WEBHOOK_ID


@pytest.mark.parametrize("change", ["body", "webhook-id", "signature"])
def test_a_delivery_paypal_does_not_confirm_is_refused(gateway, paypal, change):
    body = event_body()
    headers = paypal.sign(body, "OTHER-WEBHOOK" if change == "webhook-id" else WEBHOOK_ID)
    if change == "signature":
        headers["PAYPAL-TRANSMISSION-SIG"] = (
            "c2lnbmF0dXJl" + headers["PAYPAL-TRANSMISSION-SIG"][12:]
        )
    if change == "body":
        body = body.replace(b"25.0", b"2500.0")
    with pytest.raises(WebhookVerificationError):
        gateway.verify_webhook(headers, body)


def test_stale_or_incomplete_deliveries_are_refused_without_calling_paypal(gateway, paypal):
    body = event_body()
    stale = paypal.sign(body, WEBHOOK_ID, sent=datetime.now(UTC) - timedelta(minutes=6))
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        gateway.verify_webhook(stale, body)
    future = paypal.sign(body, WEBHOOK_ID, sent=datetime.now(UTC) + timedelta(minutes=6))
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        gateway.verify_webhook(future, body)
    headers = paypal.sign(body, WEBHOOK_ID)
    del headers["PAYPAL-CERT-URL"]
    with pytest.raises(WebhookVerificationError, match="PAYPAL-CERT-URL"):
        gateway.verify_webhook(headers, body)
    with pytest.raises(WebhookVerificationError):
        gateway.verify_webhook(paypal.sign(b"[1]", WEBHOOK_ID), b"[1]")
    assert paypal.log == []


def test_paypal_down_while_verifying_is_unavailable_not_a_rejection(gateway, paypal):
    body = event_body()
    paypal.fail_next("verify-webhook-signature", 503, body=error_body(503))
    with pytest.raises(GatewayUnavailable):
        gateway.verify_webhook(paypal.sign(body, WEBHOOK_ID), body)


# Listing for sync ---------------------------------------------------------------------------


def walk(gateway, kind, *, since, limit):
    objects, cursor, pages = [], None, 0
    while True:
        page = gateway.list_page(kind, cursor, since=since, limit=limit)
        objects.extend(page.objects)
        pages += 1
        if page.next_cursor is None:
            return objects, pages
        cursor = page.next_cursor


def test_payments_refunds_and_customers_are_listed_across_31_day_windows(gateway, paypal):
    """Transaction Search walked window by window and page by page; nothing twice."""
    now = datetime.now(UTC)
    _, old_capture = paypal.add_capture("10.00", created=now - timedelta(days=45))
    _, capture_a = paypal.add_capture("20.00", created=now - timedelta(days=2))
    _, capture_b = paypal.add_capture("30.00", payer=paypal.add_payer("b@example.com", "PAYERB"))
    gateway.refund(capture_a, 500, "EUR", reason="", idempotency_key="r-a")
    since = now - timedelta(days=60)
    payments, pages = walk(gateway, ObjectKind.PAYMENT, since=since, limit=1)
    assert sorted(p.external_id for p in payments) == sorted([old_capture, capture_a, capture_b])
    assert pages >= 3
    assert {p.amount for p in payments} == {1000, 2000, 3000}
    assert all(isinstance(p, GatewayPayment) and p.customer_external_id for p in payments)
    refunds, _ = walk(gateway, ObjectKind.REFUND, since=since, limit=100)
    assert [(r.payment_external_id, r.amount) for r in refunds] == [(capture_a, 500)]
    customers, _ = walk(gateway, ObjectKind.CUSTOMER, since=since, limit=100)
    assert all(isinstance(c, GatewayCustomer) for c in customers)
    assert "PAYERB" in {c.external_id for c in customers}
    searches = paypal.calls("GET", "/v1/reporting/transactions")
    for call in searches:
        start = datetime.fromisoformat(call.query["start_date"][0].replace("Z", "+00:00"))
        end = datetime.fromisoformat(call.query["end_date"][0].replace("Z", "+00:00"))
        assert timedelta(0) < end - start <= timedelta(days=31)


def test_a_rate_limited_page_can_be_fetched_again_with_the_same_cursor(gateway, paypal):
    paypal.add_capture("10.00")
    paypal.add_capture("11.00")
    since = datetime.now(UTC) - timedelta(days=1)
    first = gateway.list_page(ObjectKind.PAYMENT, None, since=since, limit=1)
    assert first.next_cursor is not None
    paypal.fail_next(
        "/v1/reporting/transactions", 429, body=error_body(429), headers={"Retry-After": "2"}
    )
    with pytest.raises(GatewayUnavailable) as info:
        gateway.list_page(ObjectKind.PAYMENT, first.next_cursor, since=since, limit=1)
    assert info.value.retry_after == 2.0
    second = gateway.list_page(ObjectKind.PAYMENT, first.next_cursor, since=since, limit=1)
    assert len(second.objects) == 1 and second.objects != first.objects
    assert second.next_cursor is None


def test_subscriptions_are_listed_page_by_page_and_priced_by_their_plans(gateway, paypal):
    plan_id = paypal.add_plan("Basic", "9.00", "EUR")
    ids = {paypal.add_subscription(plan_id) for _ in range(3)}
    objects, pages = walk(gateway, ObjectKind.SUBSCRIPTION, since=None, limit=2)
    subscriptions = [o for o in objects if not isinstance(o, GatewayCustomer)]
    assert {s.external_id for s in subscriptions} == ids and pages == 2
    assert {(s.amount, s.plan_name) for s in subscriptions} == {(900, "Basic")}
    assert len(paypal.calls("GET", f"/v1/billing/plans/{plan_id}")) == 2  # once per page


def test_invoices_are_listed_page_by_page(gateway, paypal):
    ids = {paypal.add_invoice("10.00"), paypal.add_invoice("20.00", status="PAID")}
    objects, pages = walk(gateway, ObjectKind.INVOICE, since=None, limit=1)
    assert {i.external_id for i in objects} == ids and pages == 2
    assert {(i.amount_due, i.status) for i in objects} == {
        (1000, GatewayInvoiceStatus.DRAFT),
        (2000, GatewayInvoiceStatus.PAID),
    }
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert walk(gateway, ObjectKind.INVOICE, since=later, limit=100)[0] == []


def test_a_since_in_the_future_lists_nothing_without_a_call(gateway, paypal):
    page = gateway.list_page(ObjectKind.PAYMENT, None, since=datetime.now(UTC) + timedelta(days=1))
    assert page.objects == [] and page.next_cursor is None
    assert paypal.calls("GET", "/v1/reporting/transactions") == []


def test_a_foreign_cursor_is_refused(gateway):
    with pytest.raises(ValueError):
        gateway.list_page(ObjectKind.PAYMENT, "starting_after=pi_1", since=None)
    assert WindowCursor.decode(WindowCursor(5, 3).encode()) == WindowCursor(5, 3)
