"""Issue 5's "done when", as a user tries it: ``billbox demo`` data, then a payment event,
then exactly one branded receipt at the configured relay.

The demo's history issues no documents (it is history); the new payment, a
signed Stripe delivery for a demo customer, is issued, rendered and emailed
once, even when the delivery is repeated.
"""

from __future__ import annotations

import time
from email import message_from_bytes, policy

from pydantic import SecretStr
from sqlmodel import col, select

from billbox.demo import seed_demo
from billbox.jobs import run_job
from billbox.models import Customer, Document, DocumentState, Job, JobState, OutboundEmail
from tests.mail_world import relay_sink
from tests.test_stripe_webhooks import SECRET, event, intent, post
from web import create_app
from workers.registry import default_handlers


def run_until_idle(factory, handlers) -> None:
    for _ in range(10):
        with factory() as s:
            ids = s.exec(
                select(Job.id).where(Job.state == JobState.QUEUED).order_by(col(Job.id))
            ).all()
        if not ids:
            return
        for job_id in ids:
            assert run_job(factory, job_id, handlers).outcome == "done"
    raise AssertionError("jobs kept coming")


def test_demo_then_a_payment_event_delivers_one_branded_receipt(settings, engine, factory):
    seed_demo(factory, customers=6, payments=12)
    with factory() as s:
        assert s.exec(select(Job)).all() == []  # the demo's history issues nothing
        customer = s.exec(select(Customer).order_by(col(Customer.id))).first()
        email = customer.email
    with relay_sink("plain") as sink:
        configured = settings.model_copy(update={
            "stripe_webhook_secret": SecretStr(SECRET), "smtp_relay": sink.url,
            "public_url": "https://billing.example.com"})  # fmt: skip
        handlers = default_handlers(configured)
        client = create_app(configured, engine=engine, build_worker=False).test_client()
        now = int(time.time())
        created = event("evt_demo_0", "customer.created", {
            "id": "cus_DEMO", "object": "customer", "email": email, "name": "Demo Customer",
            "created": now}, now)  # fmt: skip
        assert post(client, created).status_code == 200
        payment = intent("succeeded", amount=4900, customer="cus_DEMO")
        payment["charges"] = {"object": "list", "data": [{
            "id": "ch_A", "object": "charge", "amount": 4900, "currency": "eur",
            "status": "succeeded", "paid": True, "created": int(time.time()),
            "billing_details": {"email": email},
            "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242"}},
        }]}  # fmt: skip
        delivery = event("evt_demo_1", "payment_intent.succeeded", payment, int(time.time()))
        assert post(client, delivery).status_code == 200
        assert post(client, delivery).status_code == 200  # a redelivery
        run_until_idle(factory, handlers)
        [received] = sink.handler.deliveries
    with factory() as s:
        [document] = s.exec(select(Document)).all()
        [outbound] = s.exec(select(OutboundEmail)).all()
    assert document.state is DocumentState.ISSUED and document.pdf
    message = message_from_bytes(received.content, policy=policy.default)
    assert message["From"].addresses[0].display_name == "Northwind Cloud"
    assert document.number in message["Subject"]
    [pdf] = list(message.iter_attachments())
    assert pdf.get_content() == document.pdf
    assert received.rcpt_tos == [email] and outbound.to_address == email
    with factory() as s:  # the payer was recognised as the demo customer by email
        assert (
            document.customer_id == s.exec(select(Customer.id).where(Customer.email == email)).one()
        )
