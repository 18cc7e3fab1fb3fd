"""Updating the card on the billing page, in Chromium, against localstripe and its Stripe.js.

The card is typed into (localstripe's) Stripe.js, which confirms a SetupIntent
with the Stripe server directly; Billbox only receives the SetupIntent id,
re-reads it, makes its card the customer's default and audits the change.
"""

from __future__ import annotations

import pytest
import stripe
from pydantic import SecretStr
from sqlmodel import select

from billbox.gateways.accounts import adapter_for_account, seal_credentials
from billbox.models import ActorKind, AuditEvent, Brand, Customer, GatewayAccount, GatewayKind
from billbox.portal_links import PortalLinks
from billbox.webhooks import apply_objects, ensure_env_account
from tests.browser import chromium, live_server, screenshot
from tests.servers import LOCALSTRIPE_API_KEY, running_localstripe
from web import create_app

pytestmark = pytest.mark.slow
SECRET = "card-test-secret-0123456789"


@pytest.mark.parametrize("keys_from", ["environment", "admin"])
def test_a_customer_replaces_the_card_through_stripe_js(
    settings, engine, factory, tmp_path, keys_from
):
    """Keys of the ``default`` account from the environment, or of an account added in the admin."""
    with running_localstripe(tmp_path) as base:
        stripe_env = {
            "stripe_api_key": SecretStr(LOCALSTRIPE_API_KEY),
            "stripe_api_base": base,
            "stripe_publishable_key": "pk_test_billbox",
        }
        configured = settings.model_copy(
            update={
                "secret_key": SecretStr(SECRET),
                "stripe_js_url": f"{base}/js.stripe.com/v3/",
                "demo": True,
                **(stripe_env if keys_from == "environment" else {}),
            }
        )
        sdk = stripe.StripeClient(LOCALSTRIPE_API_KEY, base_addresses={"api": base})
        remote = sdk.v1.customers.create(params={"email": "pat@example.org", "name": "Pat"})
        with factory() as s:
            brand = Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE")
            s.add(brand)
            s.flush()
            if keys_from == "environment":
                account = ensure_env_account(s, GatewayKind.STRIPE)
            else:
                account = GatewayAccount(
                    brand_id=brand.id,
                    gateway=GatewayKind.STRIPE,
                    name="stripe-eu",
                    settings={"publishable_key": "pk_test_eu", "api_base": base},
                    credentials_encrypted=seal_credentials(
                        SECRET, {"api_key": LOCALSTRIPE_API_KEY, "webhook_secret": "whsec_x"}
                    ),
                )
                s.add(account)
                s.flush()
            adapter = adapter_for_account(account, configured)
            apply_objects(s, account, [adapter.fetch_customer(remote.id)])
            customer = s.exec(select(Customer)).one()
            token = PortalLinks(SECRET, 30).make(s, customer, brand.id)
            s.commit()
        app = create_app(configured, engine=engine, build_worker=False)
        with live_server(app) as url, chromium() as browser:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(f"{url}/billing/open/{token}")
            page.click("text=Update card")
            page.wait_for_selector("#card-element input")
            page.fill("#card-element input[placeholder=number]", "4242424242424242")
            page.fill("#card-element input[placeholder=exp_month]", "12")
            page.fill("#card-element input[placeholder=exp_year]", "34")
            page.fill("#card-element input[placeholder=cvc]", "123")
            page.fill("#card-element input[placeholder=postal_code]", "10115")
            page.click("button:has-text('Save card')")
            page.wait_for_selector(".saved", timeout=15000)
            assert page.locator("[data-publishable-key]").get_attribute("data-publishable-key") == (
                "pk_test_billbox" if keys_from == "environment" else "pk_test_eu"
            )
            screenshot(page, f"portal-card-{keys_from}")
            assert not [p for p in problems if "Content Security Policy" in p]
        default = sdk.v1.customers.retrieve(remote.id).invoice_settings.default_payment_method
        assert default and str(default).startswith("pm_")
        with factory() as s:
            event = s.exec(
                select(AuditEvent).where(AuditEvent.action == "portal.update_card")
            ).one()
        assert (event.actor, event.actor_kind) == ("pat@example.org", ActorKind.CUSTOMER)
        assert event.data["payment_method"] == default
