"""Settings → Gateways in a real browser: add a PayPal account, copy its webhook URL, test it.

The copy button is script from a file (the CSP allows no inline script);
the test reads the clipboard back, and fails on any console error, which is
where a CSP violation would show.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from billbox.models import Brand, Role
from billbox.users import create_user
from tests.browser import chromium, live_server, screenshot
from tests.paypal_fake import PayPalFake
from web import create_app

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"


@pytest.fixture
def site(settings, engine, factory):
    paypal = PayPalFake().start()
    configured = settings.model_copy(
        update={"secret_key": SecretStr("gateway-browser-secret-0123"), "demo": True}
    )
    with factory() as s:
        create_user(s, "admin@example.com", Role.ADMIN, PASSWORD)
        s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
        s.commit()
    app = create_app(configured, engine=engine, build_worker=False)
    with live_server(app) as url:
        yield url, paypal
    paypal.stop()


def test_an_admin_adds_a_paypal_account_copies_the_url_and_tests_the_connection(site):
    url, paypal = site
    errors: list[str] = []
    with chromium() as browser:
        context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.on(
            "console",
            lambda m: (
                errors.append(m.text)
                if m.type == "error" and not m.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on(
            "response",
            lambda r: (
                errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico")
                else None
            ),
        )
        page.goto(f"{url}/admin/login")
        page.fill("input[name=email]", "admin@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{url}/admin/settings/gateways")
        page.click("summary:has-text('Add or update a PayPal account')")
        form = page.locator("form.settings:has(input[name=gateway][value=paypal])")
        form.locator("input[name=name]").fill("paypal-eu")
        form.locator("input[name=client_id]").fill(paypal.client_id)
        form.locator("input[name=api_base]").fill(paypal.base_url)
        form.locator("input[name=client_secret]").fill(paypal.client_secret)
        form.locator("button[type=submit]").click()
        page.wait_for_selector("text=Saved PayPal account")

        row = page.locator("tr[data-account='paypal/paypal-eu']")
        row.locator("button.copy").click()
        row.locator("button.copy:text-is('Copied')").wait_for()  # no eval: the CSP forbids it
        copied = page.evaluate("navigator.clipboard.readText()")
        shown = row.locator("input.copy-source").input_value()
        assert copied == shown and shown.endswith("/webhooks/paypal/paypal-eu")

        row.locator("button:has-text('Test connection')").click()
        page.wait_for_selector("text=PayPal issued an access token")
        screenshot(page, "admin-gateways")
        context.close()
    assert errors == []
