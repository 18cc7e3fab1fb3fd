"""A customer cancels their subscription at period end on the billing page (localstripe).

A confirmation step, then ``billbox.actions`` (the customer as actor in the
audit log); only when the brand allows it, and only their own subscription.
"""

from __future__ import annotations

import re

import pytest
import stripe
from pydantic import SecretStr
from sqlmodel import select

from billbox.gateways.stripe import StripeGateway
from billbox.models import ActorKind, AuditEvent, Brand, Customer, GatewayKind, Subscription
from billbox.portal_links import PortalLinks
from billbox.webhooks import apply_objects, ensure_env_account
from tests.servers import LOCALSTRIPE_API_KEY, running_localstripe
from web import create_app

pytestmark = pytest.mark.slow
SECRET = "portal-cancel-secret-0123456789"


@pytest.fixture
def shop(settings, engine, factory, tmp_path):
    with running_localstripe(tmp_path) as base:
        configured = settings.model_copy(
            update={
                "secret_key": SecretStr(SECRET),
                "stripe_api_key": SecretStr(LOCALSTRIPE_API_KEY),
                "stripe_api_base": base,
                "public_url": "https://billing.example.com",
            }
        )
        sdk = stripe.StripeClient(LOCALSTRIPE_API_KEY, base_addresses={"api": base})
        customer = sdk.v1.customers.create(
            params={
                "email": "pat@example.org",
                "name": "Pat",
                "payment_method": "pm_card_visa",
                "invoice_settings": {"default_payment_method": "pm_card_visa"},
            }
        )
        product = sdk.v1.products.create(params={"name": "Pro"})
        plan = sdk.v1.plans.create(
            params={
                "amount": 1500,
                "currency": "eur",
                "interval": "month",
                "product": product.id,
                "nickname": "Pro monthly",
            }
        )
        sub = sdk.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"plan": plan.id}]}
        )
        adapter = StripeGateway.from_settings(configured)
        with factory() as s:
            brand = Brand(
                slug="acme",
                name="Acme",
                legal_name="Acme GmbH",
                country="DE",
                customer_can_cancel=True,
            )
            s.add(brand)
            s.flush()
            account = ensure_env_account(s, GatewayKind.STRIPE)
            apply_objects(s, account, [adapter.fetch_customer(customer.id)])
            from datetime import UTC, datetime

            from billbox.gateways.stripe_objects import subscription_from_object

            raw = sdk.v1.subscriptions.retrieve(sub.id).to_dict()
            apply_objects(s, account, [subscription_from_object(raw, datetime.now(UTC))])
            row = s.exec(select(Subscription)).one()
            ours = s.get(Customer, row.customer_id)
            token = PortalLinks(SECRET, 30).make(s, ours, brand.id)
            s.commit()
            ids = {"subscription": row.id, "brand": brand.id}
        client = create_app(configured, engine=engine, build_worker=False).test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        client.get(f"/billing/open/{token}")
        yield {"client": client, "sdk": sdk, "stripe_sub": sub.id, **ids}


def test_the_customer_cancels_at_period_end_after_confirming(shop, factory):
    client = shop["client"]
    page = client.get("/billing/").get_data(as_text=True)
    assert f"/billing/subscriptions/{shop['subscription']}/cancel" in page
    confirm = client.get(f"/billing/subscriptions/{shop['subscription']}/cancel")
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "cancel at the end of the period" in html
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', html))
    response = client.post(f"/billing/subscriptions/{shop['subscription']}/cancel", data=fields)
    assert response.status_code == 302
    with factory() as s:
        sub = s.get(Subscription, shop["subscription"])
        event = s.exec(select(AuditEvent).where(AuditEvent.action == "cancel_subscription")).one()
    assert sub.cancel_at_period_end
    assert (event.actor, event.actor_kind) == ("pat@example.org", ActorKind.CUSTOMER)
    assert shop["sdk"].v1.subscriptions.retrieve(shop["stripe_sub"]).cancel_at_period_end
    assert "/cancel" not in client.get("/billing/").get_data(as_text=True)


def test_not_when_the_brand_does_not_allow_it_nor_for_someone_else(shop, factory):
    client = shop["client"]
    with factory() as s:
        brand = s.get(Brand, shop["brand"])
        brand.customer_can_cancel = False
        s.add(brand)
        s.commit()
    assert client.get(f"/billing/subscriptions/{shop['subscription']}/cancel").status_code == 403
    assert client.get("/billing/subscriptions/999999/cancel").status_code == 404
