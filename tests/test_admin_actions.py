"""One-click actions from the ticket page against localstripe: the gateway, the ledger,
the ticket note and the audit log agree; a double submit acts once; refusals change nothing.

The happy path runs in Chromium (log in, open the ticket, partial refund with a
reason, see the note, see the audit row); the edge cases use the test client.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import stripe
from pydantic import SecretStr
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from billbox.gateways.stripe import StripeGateway
from billbox.models import (
    AuditEvent,
    Brand,
    GatewayKind,
    MessageDirection,
    Payment,
    Refund,
    Role,
    Ticket,
    TicketMessage,
    TicketStatus,
)
from billbox.settings import Settings
from billbox.users import create_user
from billbox.webhooks import apply_objects, ensure_env_account
from tests.browser import chromium, live_server, screenshot
from tests.servers import LOCALSTRIPE_API_KEY, running_localstripe
from web import create_app

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery staple"


@dataclass
class Shop:
    factory: sessionmaker[Session]
    settings: Settings
    sdk: stripe.StripeClient
    app: Any
    ticket_id: int
    payment_id: int
    intent_id: str


@pytest.fixture
def shop(settings, engine, factory, tmp_path) -> Iterator[Shop]:
    """localstripe with a paid 42.00 EUR intent mirrored into the ledger, and a ticket about it."""
    with running_localstripe(tmp_path) as base:
        configured = settings.model_copy(
            update={
                "stripe_api_key": SecretStr(LOCALSTRIPE_API_KEY),
                "stripe_api_base": base,
                "refund_limits": "agent=EUR:3000",
                "demo": True,  # plain-http cookies for the browser
            }
        )
        sdk = stripe.StripeClient(LOCALSTRIPE_API_KEY, base_addresses={"api": base})
        customer = sdk.v1.customers.create(params={"email": "pat@example.org", "name": "Pat"})
        intent = sdk.v1.payment_intents.create(
            params={
                "amount": 4200,
                "currency": "eur",
                "customer": customer.id,
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
        adapter = StripeGateway.from_settings(configured)
        with factory() as s:
            s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
            s.flush()
            account = ensure_env_account(s, GatewayKind.STRIPE)
            apply_objects(s, account, [adapter.fetch_customer(customer.id)])
            apply_objects(s, account, [adapter.fetch_payment(intent.id)])
            payment = s.exec(select(Payment).where(Payment.external_id == intent.id)).one()
            ticket = Ticket(
                subject="Charged too much",
                status=TicketStatus.OPEN,
                requester_email="pat@example.org",
                customer_id=payment.customer_id,
            )
            s.add(ticket)
            create_user(s, "agent@example.com", Role.AGENT, PASSWORD)
            create_user(s, "admin@example.com", Role.ADMIN, PASSWORD)
            s.commit()
            ids = (ticket.id, payment.id)
        app = create_app(configured, engine=engine, build_worker=False)
        yield Shop(factory, configured, sdk, app, ids[0], ids[1], intent.id)


def login(client, email: str) -> None:
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    client.post("/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token})


def refund_form(page: str) -> dict[str, str]:
    form = re.search(
        r'<form class="action" method="post" action="([^"]+/actions/refund)">(.*?)</form>',
        page,
        re.S,
    )
    assert form, "no refund form on the ticket page"
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form.group(2)))
    return {"url": form.group(1), **fields}


def refunds_at_stripe(shop: Shop) -> int:
    return len(shop.sdk.v1.refunds.list(params={"payment_intent": shop.intent_id}).data)


def notes(shop: Shop) -> list[str]:
    with shop.factory() as s:
        return [
            m.body_text
            for m in s.exec(
                select(TicketMessage).where(TicketMessage.direction == MessageDirection.NOTE)
            )
        ]


def test_an_agent_refunds_part_of_a_payment_in_the_browser(shop):
    with live_server(shop.app) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/admin/login")
        page.fill("input[name=email]", "agent@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{url}/admin/tickets/{shop.ticket_id}")
        page.click("summary:has-text('Refund')")
        page.fill("details[open] input[name=amount]", "12.50")
        page.fill("details[open] input[name=reason]", "shipping was charged twice")
        page.click("details[open] button:has-text('Refund')")
        page.wait_for_selector(".flash.ok")
        assert "12.50" in page.locator(".flash.ok").inner_text()
        assert "shipping was charged twice" in page.locator("article.note").inner_text()
        screenshot(page, "admin-refund")
        page.click("button:has-text('Log out')")
        page.fill("input[name=email]", "admin@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{url}/admin/audit?action=refund")
        assert "shipping was charged twice" in page.locator("table.report").inner_text()
        screenshot(page, "admin-audit")
    with shop.factory() as s:
        payment = s.get(Payment, shop.payment_id)
        refunds = s.exec(select(Refund)).all()
        audit = s.exec(select(AuditEvent).where(AuditEvent.action == "refund")).all()
    assert payment.amount_refunded == 1250
    assert [r.amount for r in refunds] == [1250]
    assert [(a.actor, a.reason) for a in audit] == [
        ("agent@example.com", "shipping was charged twice")
    ]
    assert refunds_at_stripe(shop) == 1


def test_a_double_submit_refunds_once_and_notes_once(shop):
    client = shop.app.test_client()
    login(client, "agent@example.com")
    form = refund_form(client.get(f"/admin/tickets/{shop.ticket_id}").get_data(as_text=True))
    data = {**form, "amount": "5", "reason": "goodwill"}
    url = data.pop("url")
    for _ in range(2):
        assert client.post(url, data=data).status_code == 302
    assert refunds_at_stripe(shop) == 1
    assert len(notes(shop)) == 1
    with shop.factory() as s:
        assert s.get(Payment, shop.payment_id).amount_refunded == 500


def test_refusals_are_shown_and_change_nothing(shop):
    client = shop.app.test_client()
    login(client, "agent@example.com")
    form = refund_form(client.get(f"/admin/tickets/{shop.ticket_id}").get_data(as_text=True))
    url = form.pop("url")
    over_limit = client.post(
        url, data={**form, "amount": "40", "reason": "x"}, follow_redirects=True
    )
    assert "limit" in over_limit.get_data(as_text=True).lower()
    no_reason = client.post(
        url,
        data={**form, "amount": "1", "reason": " ", "idempotency_key": "k2"},
        follow_redirects=True,
    )
    assert "give a reason" in no_reason.get_data(as_text=True)
    bad_amount = client.post(
        url,
        data={**form, "amount": "1.234", "reason": "x", "idempotency_key": "k3"},
        follow_redirects=True,
    )
    assert "more decimals than EUR allows" in bad_amount.get_data(as_text=True)
    assert refunds_at_stripe(shop) == 0 and notes(shop) == []
    with shop.factory() as s:
        assert s.get(Payment, shop.payment_id).amount_refunded == 0


def test_the_api_runs_actions_with_the_token_as_actor(shop):
    from billbox.api_tokens import create_token

    with shop.factory() as s:
        secret = create_token(s, "zendesk-app", Role.AGENT).secret
        finance = create_token(s, "books", Role.FINANCE).secret
        s.commit()
    client = shop.app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"target": shop.payment_id, "amount": 300, "reason": "API goodwill",
            "idempotency_key": "zd-1"}  # fmt: skip
    first = client.post("/api/v1/actions/refund", json=body, headers=headers)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["amount"] == 300 and first.get_json()["replayed"] is False
    again = client.post("/api/v1/actions/refund", json=body, headers=headers)
    assert again.get_json()["replayed"] is True
    assert refunds_at_stripe(shop) == 1
    with shop.factory() as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "refund")).one()
    assert (event.actor, event.actor_kind.value) == ("zendesk-app", "api_token")

    too_much = client.post(
        "/api/v1/actions/refund",
        json={**body, "amount": 10_000, "idempotency_key": "zd-2"},
        headers=headers,
    )
    assert too_much.status_code == 422 and too_much.get_json()["error"]["code"] == "refused"
    finance_cancel = client.post(
        "/api/v1/actions/cancel_subscription",
        json={"target": 1, "reason": "x", "idempotency_key": "f-1"},
        headers={"Authorization": f"Bearer {finance}"},
    )
    assert finance_cancel.status_code in (404, 422)
    assert (
        client.post("/api/v1/actions/refund", json={"target": "x"}, headers=headers).status_code
        == 400
    )
    assert client.post("/api/v1/actions/explode", json={}, headers=headers).status_code == 404
