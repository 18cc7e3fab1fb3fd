"""Customer billing pages: signed links, history, downloads, tax details, questions."""

from __future__ import annotations

import re
import time

import pytest
from pydantic import SecretStr
from sqlmodel import select

from billbox.jobs import run_job
from billbox.models import (
    Customer,
    Document,
    DocumentKind,
    DocumentState,
    InboundMessage,
    InboundSource,
    Job,
    JobState,
    Ticket,
    TicketMessage,
)
from billbox.portal_links import PortalLinks, rotate_nonce
from tests.billing_world import make_receipt
from web import create_app
from workers.registry import default_handlers

SECRET = "portal-test-secret-0123456789"
DOMAIN = "reply.example.com"


@pytest.fixture
def portal_settings(settings):
    return settings.model_copy(
        update={
            "secret_key": SecretStr(SECRET),
            "reply_domain": DOMAIN,
            "public_url": "https://billbox.test",
        }
    )


@pytest.fixture
def client(portal_settings, engine):
    client = create_app(portal_settings, engine=engine, build_worker=False).test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


@pytest.fixture
def world(factory):
    """Ana (German locale) with a paid receipt whose PDF is stored, and Bob with his own."""
    with factory() as s:
        receipt = make_receipt(
            s, secret=SECRET, domain=DOMAIN, pdf=b"%PDF-1.4 ana's receipt", locale="de"
        )
        bob = Customer(name="Bob", email="bob@example.org")
        s.add(bob)
        s.flush()
        bobs = Document(
            brand_id=receipt.brand.id, customer_id=bob.id, kind=DocumentKind.RECEIPT,
            state=DocumentState.ISSUED, series="R", sequence=2, number="NW-R-2",
            source_key="test:bob", currency="EUR", total=100, pdf=b"%PDF-1.4 bob's",
        )  # fmt: skip
        s.add(bobs)
        s.flush()
        links = PortalLinks(SECRET, 30)
        token = links.make(s, receipt.customer, receipt.brand.id)
        bob_token = links.make(s, bob, receipt.brand.id)
        s.commit()
        return {
            "token": token, "bob_token": bob_token, "customer_id": receipt.customer.id,
            "document_id": receipt.document.id, "bob_document_id": bobs.id,
        }  # fmt: skip


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page)[1]


def test_a_link_opens_the_customers_page_in_her_language(client, world):
    response = client.get(f"/billing/open/{world['token']}")
    assert response.status_code == 302 and response.headers["Location"].endswith("/billing/")
    page = client.get("/billing/").get_data(as_text=True)
    assert "Zahlungen" in page and "Dokumente" in page  # German labels
    assert "49,00\xa0€" in page  # German money format
    assert "bezahlt" in page and "NW-R-1" in page
    assert "NW-R-2" not in page  # Bob's document is not listed


def test_tampered_expired_and_revoked_links_are_refused(client, world, factory, monkeypatch):
    token = world["token"]
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert client.get(f"/billing/open/{tampered}").status_code == 403
    assert "not valid" in client.get(f"/billing/open/{tampered}").get_data(as_text=True)

    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 40 * 86400)
    with factory() as s:
        old = PortalLinks(SECRET, 30).make(s, s.get(Customer, world["customer_id"]), 1)
    monkeypatch.setattr(time, "time", real_time)
    expired = client.get(f"/billing/open/{old}")
    assert expired.status_code == 403 and "expired" in expired.get_data(as_text=True)

    assert client.get(f"/billing/open/{token}").status_code == 302
    assert "Zahlungen" in client.get("/billing/").get_data(as_text=True)
    with factory() as s:
        rotate_nonce(s, s.get(Customer, world["customer_id"]))
        s.commit()
    assert "Zahlungen" not in client.get("/billing/").get_data(as_text=True)  # session ended
    assert client.get(f"/billing/open/{token}").status_code == 403


def test_downloads_check_ownership(client, world):
    assert client.get(f"/billing/documents/{world['document_id']}.pdf").status_code == 403
    client.get(f"/billing/open/{world['token']}")
    own = client.get(f"/billing/documents/{world['document_id']}.pdf")
    assert own.status_code == 200 and own.data == b"%PDF-1.4 ana's receipt"
    assert own.headers["Content-Type"] == "application/pdf"
    assert "NW-R-1.pdf" in own.headers["Content-Disposition"]
    assert client.get(f"/billing/documents/{world['bob_document_id']}.pdf").status_code == 404
    assert client.get("/billing/documents/999999.pdf").status_code == 404


def test_tax_details_refuse_an_invalid_id_and_save_a_valid_one(client, world, factory):
    client.get(f"/billing/open/{world['token']}")
    page = client.get("/billing/tax").get_data(as_text=True)
    form = {"name": "Ana López SL", "address": "Calle 1\nMadrid", "country": "es",
            "csrf_token": csrf(page)}  # fmt: skip
    bad = client.post("/billing/tax", data={**form, "tax_id": "ESX1234567Z"})
    assert bad.status_code == 422
    assert 'role="alert"' in bad.get_data(as_text=True)
    with factory() as s:
        assert s.get(Customer, world["customer_id"]).tax_id is None
    good = client.post("/billing/tax", data={**form, "tax_id": "ES A-1234567-4"})
    assert good.status_code == 200
    with factory() as s:
        customer = s.get(Customer, world["customer_id"])
    assert (customer.tax_id, customer.country, customer.name) == (
        "ESA12345674",
        "ES",
        "Ana López SL",
    )
    assert client.post("/billing/tax", data={**form, "csrf_token": "forged"}).status_code == 400


def test_a_question_becomes_a_ticket_with_billing_context(client, world, factory, portal_settings):
    client.get(f"/billing/open/{world['token']}")
    page = client.get("/billing/question").get_data(as_text=True)
    response = client.post(
        "/billing/question",
        data={"subject": "Double charge?", "body": "I see two charges in October.",
              "csrf_token": csrf(page)},
    )  # fmt: skip
    assert response.status_code == 200
    with factory() as s:
        inbound = s.exec(select(InboundMessage)).one()
        job = s.exec(select(Job).where(Job.state == JobState.QUEUED)).one()
    assert inbound.source == InboundSource.PORTAL
    assert run_job(factory, job.id, default_handlers(portal_settings)).outcome == "done"
    with factory() as s:
        ticket = s.exec(select(Ticket)).one()
        message = s.exec(select(TicketMessage)).one()
    assert ticket.customer_id == world["customer_id"] and ticket.subject == "Double charge?"
    assert not ticket.unverified_sender
    assert message.body_text == "I see two charges in October."
    assert message.billing_context["payments"][0]["amount"] == 4900


def test_pages_need_a_link(client):
    assert "receipt email" in client.get("/billing/").get_data(as_text=True)
    assert client.get("/billing/tax").status_code == 403
    assert client.get("/billing/question").status_code == 403


def test_email_me_a_link_answers_alike_for_unknown_addresses_and_is_rate_limited(
    client, world, factory
):
    from billbox.models import Job
    from mailbridge.portal_mail import PORTAL_LINK_JOB

    page = client.get("/billing/").get_data(as_text=True)
    token = csrf(page)
    known = client.post("/billing/link", data={"email": "ANA@example.org", "csrf_token": token})
    unknown = client.post("/billing/link", data={"email": "x@example.org", "csrf_token": token})
    assert known.status_code == unknown.status_code == 200
    assert known.get_data(as_text=True) == unknown.get_data(as_text=True)
    with factory() as s:
        jobs = s.exec(select(Job).where(Job.kind == PORTAL_LINK_JOB)).all()
    assert [j.payload["customer_id"] for j in jobs] == [world["customer_id"]]
    for _ in range(2):
        client.post("/billing/link", data={"email": "ana@example.org", "csrf_token": token})
    throttled = client.post("/billing/link", data={"email": "ana@example.org", "csrf_token": token})
    assert throttled.status_code == 429


def test_the_link_email_reaches_the_relay_and_its_link_opens_the_page(
    client, world, factory, portal_settings
):
    from email import message_from_bytes, policy

    from billbox.models import Brand, Job
    from mailbridge.portal_mail import PORTAL_LINK_JOB
    from tests.mail_world import relay_sink

    with factory() as s:
        brand = s.exec(select(Brand)).one()
        brand.email_from = "billing@northwind.example.com"
        s.add(brand)
        s.commit()
    token = csrf(client.get("/billing/").get_data(as_text=True))
    client.post("/billing/link", data={"email": "ana@example.org", "csrf_token": token})
    with relay_sink("plain") as sink:
        configured = portal_settings.model_copy(update={"smtp_relay": sink.url})
        with factory() as s:
            [job] = s.exec(select(Job).where(Job.kind == PORTAL_LINK_JOB)).all()
        assert run_job(factory, job.id, default_handlers(configured)).outcome == "done"
        [delivery] = sink.handler.deliveries
    message = message_from_bytes(delivery.content, policy=policy.default)
    assert message["Subject"] == "Ihre Abrechnungsseite bei Northwind"  # Ana reads German
    link = re.search(r"/billing/open/([A-Za-z0-9._-]+)", message.get_content())
    assert link and client.get(link.group(0)).status_code == 302


def test_an_open_invoice_is_paid_on_the_gateways_page_and_then_leaves_the_list(
    client, world, factory
):
    """ "Pay now" links the gateway's hosted invoice; once its invoice.paid arrives, it is gone."""
    from datetime import UTC, datetime, timedelta

    from billbox.gateways.types import GatewayInvoiceData
    from billbox.ledger import apply_invoice
    from billbox.models import GatewayAccount, GatewayInvoiceStatus

    hosted = "https://invoice.stripe.com/i/acct_1/test_inv_1"
    now = datetime.now(UTC)

    def invoice(status: GatewayInvoiceStatus, at: datetime) -> GatewayInvoiceData:
        return GatewayInvoiceData(
            "in_1", None, status, 2500, 2500 if status is GatewayInvoiceStatus.PAID else 0,
            "EUR", number="NW-0042", hosted_url=hosted, updated_at=at,
        )  # fmt: skip

    with factory() as s:
        account = s.exec(select(GatewayAccount)).one()
        row = apply_invoice(s, account, invoice(GatewayInvoiceStatus.OPEN, now)).row
        row.customer_id = world["customer_id"]
        s.add(row)
        s.commit()
    client.get(f"/billing/open/{world['token']}")
    page = client.get("/billing/").get_data(as_text=True)
    assert "NW-0042" in page and f'href="{hosted}"' in page and "25,00" in page
    with factory() as s:
        account = s.exec(select(GatewayAccount)).one()
        apply_invoice(s, account, invoice(GatewayInvoiceStatus.PAID, now + timedelta(seconds=5)))
        s.commit()
    assert "NW-0042" not in client.get("/billing/").get_data(as_text=True)


def test_paypal_subscribers_get_the_link_to_manage_automatic_payments(client, world, factory):
    from billbox.models import GatewayAccount, GatewayKind, Subscription, SubscriptionStatus

    with factory() as s:
        brand_id = s.exec(select(GatewayAccount.brand_id)).first()
        paypal = GatewayAccount(brand_id=brand_id, gateway=GatewayKind.PAYPAL, name="pp")
        s.add(paypal)
        s.flush()
        s.add(Subscription(account_id=paypal.id, customer_id=world["customer_id"],
                           external_id="I-1", status=SubscriptionStatus.ACTIVE,
                           plan_name="Pro", amount=1200, currency="EUR"))  # fmt: skip
        s.commit()
    client.get(f"/billing/open/{world['token']}")
    page = client.get("/billing/").get_data(as_text=True)
    assert "https://www.paypal.com/myaccount/autopay/" in page


def test_another_customers_link_shows_only_their_own_billing(client, world):
    """Bob's valid link opens Bob's page: Ana's documents are neither listed nor downloadable."""
    assert client.get(f"/billing/open/{world['bob_token']}").status_code == 302
    page = client.get("/billing/").get_data(as_text=True)
    assert "NW-R-2" in page and "NW-R-1" not in page
    assert client.get(f"/billing/documents/{world['document_id']}.pdf").status_code == 404
    assert client.get(f"/billing/documents/{world['bob_document_id']}.pdf").status_code == 200
