"""The Stripe adapter against a real Stripe-like server: localstripe, over HTTP both ways.

localstripe runs as a subprocess; our app is served by a real WSGI server in a
thread and registered as localstripe's webhook target, so the signed
deliveries travel over the network exactly as Stripe's would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import stripe
from pydantic import SecretStr
from sqlmodel import select
from werkzeug.serving import make_server

from billbox.gateways.base import GatewayError
from billbox.gateways.stripe import StripeGateway
from billbox.jobs import run_job
from billbox.models import (
    Brand,
    Customer,
    Job,
    Payment,
    PaymentStatus,
    WebhookEvent,
    WebhookStatus,
)
from billbox.webhooks import WEBHOOK_JOB
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

SECRET = LOCALSTRIPE_WEBHOOK_SECRET
API_KEY = LOCALSTRIPE_API_KEY


@pytest.fixture
def localstripe(tmp_path) -> Iterator[str]:
    """A fresh localstripe for each test."""
    with running_localstripe(tmp_path) as base:
        yield base


@pytest.fixture
def served_app(settings, engine, factory, localstripe) -> Iterator[str]:
    """Our app behind a real HTTP server in a thread, configured for localstripe."""
    configured = settings.model_copy(
        update={
            "stripe_webhook_secret": SecretStr(SECRET),
            "stripe_api_key": SecretStr(API_KEY),
            "stripe_api_base": localstripe,
        }
    )
    app = create_app(configured, engine=engine)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


register_webhook = register_localstripe_webhook


def stored_event(factory, event_type: str) -> WebhookEvent | None:
    with factory() as s:
        return s.exec(select(WebhookEvent).where(WebhookEvent.event_type == event_type)).first()


def test_a_confirmed_payment_intent_reaches_the_ledger_through_a_signed_delivery(
    localstripe, served_app, factory
):
    """Customer + confirmed PaymentIntent via the SDK; the signed delivery lands as succeeded."""
    with factory() as s:
        s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
        s.commit()
    register_webhook(localstripe, f"{served_app}/webhooks/stripe")
    client = stripe.StripeClient(API_KEY, base_addresses={"api": localstripe})
    customer = client.v1.customers.create(params={"email": "pat@example.org", "name": "Pat"})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 4200,
            "currency": "eur",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    assert intent.status == "succeeded"

    wait_until(
        lambda: stored_event(factory, "payment_intent.succeeded") is not None,
        10,
        "the payment_intent.succeeded delivery",
    )
    with factory() as s:
        jobs = s.exec(select(Job).where(Job.kind == WEBHOOK_JOB)).all()
    outcomes = {run_job(factory, j.id, default_handlers()).outcome for j in jobs if j.id}
    assert outcomes == {"done"}

    row = stored_event(factory, "payment_intent.succeeded")
    assert row is not None and row.status == WebhookStatus.PROCESSED
    with factory() as s:
        payment = s.exec(select(Payment).where(Payment.external_id == intent.id)).one()
        owner = s.get(Customer, payment.customer_id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert (payment.amount, payment.currency) == (4200, "EUR")
    assert owner is not None and owner.email == "pat@example.org"


def test_the_adapter_fetches_the_source_of_truth_through_the_sdk(localstripe):
    """fetch_customer/fetch_payment return normalised objects; a missing id is a GatewayError."""
    adapter = StripeGateway(api_key=API_KEY, api_base=localstripe)
    client = stripe.StripeClient(API_KEY, base_addresses={"api": localstripe})
    customer = client.v1.customers.create(params={"email": "lee@example.org", "name": "Lee"})
    intent = client.v1.payment_intents.create(
        params={
            "amount": 990,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    fetched_customer = adapter.fetch_customer(customer.id)
    assert (fetched_customer.external_id, fetched_customer.email) == (customer.id, customer.email)
    payment = adapter.fetch_payment(intent.id)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert (payment.amount, payment.currency, payment.customer_external_id) == (
        990,
        "usd",
        customer.id,
    )
    with pytest.raises(GatewayError):
        adapter.fetch_payment("pi_does_not_exist")


def test_an_unreachable_api_is_a_retryable_gateway_error():
    """Connection refused maps to GatewayUnavailable, never a stripe exception."""
    from billbox.gateways.base import GatewayUnavailable

    adapter = StripeGateway(api_key=API_KEY, api_base=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(GatewayUnavailable):
        adapter.fetch_customer("cus_nowhere")
