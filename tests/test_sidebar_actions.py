"""Acting from a helpdesk's billing panel: the signed action page refunds through
``billbox.actions`` (PayPal fake), audited as the helpdesk; bad or old links are refused."""

from __future__ import annotations

import html
import re

import pytest
from pydantic import SecretStr
from sqlmodel import select

from billbox.gateways import GatewayCustomer
from billbox.gateways.paypal import PayPalGateway
from billbox.models import ActorKind, AuditEvent, Brand, GatewayKind, HelpdeskAccount, Payment
from billbox.webhooks import apply_objects, ensure_env_account
from mailbridge.helpdesks.accounts import seal_credentials
from tests.paypal_fake import PayPalFake
from web import create_app

SECRET = "sidebar-act-secret-0123456789"
TOKEN = "freshdesk-sidebar-token-0123456789"


@pytest.fixture
def paypal():
    fake = PayPalFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def site(settings, engine, factory, paypal):
    configured = settings.model_copy(
        update={
            "secret_key": SecretStr(SECRET),
            "paypal_client_id": paypal.client_id,
            "paypal_client_secret": SecretStr(paypal.client_secret),
            "paypal_api_base": paypal.base_url,
            "public_url": "https://billbox.test",
        }
    )
    _, capture = paypal.add_capture("40.00", payer=paypal.add_payer("ana@example.org", "PAYERA"))
    with factory() as s:
        s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
        s.flush()
        account = ensure_env_account(s, GatewayKind.PAYPAL)
        payer = GatewayCustomer("PAYERA", "ana@example.org", "Ana López")
        apply_objects(s, account, [payer])
        apply_objects(s, account, [PayPalGateway.from_settings(configured).fetch_payment(capture)])
        s.add(
            HelpdeskAccount(
                kind="freshdesk",
                name="freshdesk",
                active=True,
                settings={},
                credentials_encrypted=seal_credentials(SECRET, {"sidebar_secret": TOKEN}),
            )
        )
        s.commit()
    client = create_app(configured, engine=engine, build_worker=False).test_client()
    return {"client": client, "capture": capture}


def act_path(client) -> str:
    panel = client.get(
        "/sidebar?helpdesk=freshdesk&email=ana@example.org",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).get_data(as_text=True)
    link = re.search(r'href="https://billbox\.test(/sidebar/act/[^"]+)"', panel)
    assert link, "the panel has no action link"
    return html.unescape(link.group(1))


def test_the_panel_links_to_a_signed_page_that_refunds_once(site, factory, paypal):
    client, path = site["client"], act_path(site["client"])
    page = client.get(path).get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)[1]
    with factory() as s:
        payment_id = s.exec(select(Payment.id)).one()
    form = {
        "action": "refund",
        "target": str(payment_id),
        "amount": "5.00",
        "reason": "goodwill from Freshdesk",
        "idempotency_key": key,
    }
    done = client.post(path, data=form)
    assert done.status_code == 200 and "Refunded 5.00 EUR" in done.get_data(as_text=True)
    client.post(path, data=form)  # the same form again: acts once
    refunds = paypal.calls("POST", f"/v2/payments/captures/{site['capture']}/refund")
    assert len(refunds) == 1
    with factory() as s:
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "refund")).one()
    assert (event.actor, event.actor_kind) == ("helpdesk:freshdesk", ActorKind.API_TOKEN)
    assert event.reason == "goodwill from Freshdesk"


def test_tampered_links_and_other_customers_objects_are_refused(site, factory):
    client, path = site["client"], act_path(site["client"])
    assert client.get(path[:-4] + "AAAA").status_code == 403
    assert (
        client.post(
            path,
            data={"action": "refund", "target": "999", "reason": "x", "idempotency_key": "k" * 12},
        ).status_code
        == 404
    )
    assert client.get("/sidebar?helpdesk=freshdesk&email=ana@example.org").status_code == 401
