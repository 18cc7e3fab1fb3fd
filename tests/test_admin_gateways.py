"""Admin → Settings → Gateways: sealed keys per account, webhook URL, test connection.

PayPal runs as the local fake (PayPal's documented JSON); the account added
here is not the environment's ``default`` one, so the refund at the end
proves that actions use the account's own sealed keys.
"""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr
from sqlmodel import select

from billbox import actions
from billbox.actions import Actor
from billbox.gateways.accounts import adapter_for_account, credentials
from billbox.gateways.base import UnsupportedAction
from billbox.gateways.registry import adapter_for
from billbox.models import AuditEvent, Brand, GatewayAccount, GatewayKind, Payment, Role
from billbox.users import create_user
from billbox.webhooks import apply_objects
from tests.paypal_fake import PayPalFake
from web import create_app

PASSWORD = "correct horse battery staple"
SECRET_KEY = "k" * 40


@pytest.fixture
def paypal():
    fake = PayPalFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def configured(settings):
    return settings.model_copy(
        update={"public_url": "https://billbox.example.com", "secret_key": SecretStr(SECRET_KEY)}
    )


@pytest.fixture
def client(configured, engine, factory):
    with factory() as s:
        for role in (Role.ADMIN, Role.AGENT, Role.FINANCE):
            create_user(s, f"{role.value}@example.com", role, PASSWORD)
        s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
        s.commit()
    client = create_app(configured, engine=engine, build_worker=False).test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


def csrf(client, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page)[1]


def login(client, who: str) -> str:
    client.post(
        "/admin/login",
        data={
            "email": f"{who}@example.com",
            "password": PASSWORD,
            "csrf_token": csrf(client, "/admin/login"),
        },
    )
    return csrf(client, "/admin/")


def brand_id(factory) -> int:
    with factory() as s:
        return s.exec(select(Brand.id).where(Brand.slug == "acme")).one()


def save_paypal(client, token: str, paypal: PayPalFake, factory, **override: str):
    form = {
        "csrf_token": token,
        "gateway": "paypal",
        "name": "paypal-eu",
        "brand_id": str(brand_id(factory)),
        "client_id": paypal.client_id,
        "client_secret": paypal.client_secret,
        "webhook_id": "WH-1",
        "api_base": paypal.base_url,
        **override,
    }
    return client.post("/admin/settings/gateways", data=form, follow_redirects=True)


def the_account(factory, name: str = "paypal-eu") -> GatewayAccount:
    with factory() as s:
        return s.exec(select(GatewayAccount).where(GatewayAccount.name == name)).one()


def test_an_admin_adds_an_account_copies_its_webhook_url_and_tests_it(client, factory, paypal):
    token = login(client, "admin")
    page = save_paypal(client, token, paypal, factory).get_data(as_text=True)
    assert "Saved PayPal account" in page
    assert 'value="https://billbox.example.com/webhooks/paypal/paypal-eu"' in page
    assert 'data-copy="https://billbox.example.com/webhooks/paypal/paypal-eu"' in page
    assert paypal.client_secret not in page  # never shown again
    assert "<td>stored</td>" in page  # where the keys come from

    account = the_account(factory)
    assert paypal.client_secret not in (account.credentials_encrypted or "")
    assert credentials(account, SECRET_KEY) == {"client_secret": paypal.client_secret}
    assert account.settings["client_id"] == paypal.client_id
    assert account.live_mode is True  # a non-sandbox API base counts as live

    answer = client.post(
        f"/admin/settings/gateways/{account.id}/test",
        data={"csrf_token": token},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "PayPal issued an access token" in answer
    tested = the_account(factory)
    assert tested.last_ok_at is not None and tested.last_error is None
    assert paypal.calls("POST", "/v1/oauth2/token")

    with factory() as s:
        [event] = s.exec(select(AuditEvent).where(AuditEvent.action == "gateway_account.save"))
    assert event.actor == "admin@example.com"
    assert event.data["changed"] == ["api_base", "client_id", "client_secret", "webhook_id"]
    assert paypal.client_secret not in str(event.data)


def test_an_empty_secret_keeps_the_stored_one_and_a_wrong_one_shows_the_refusal(
    client, factory, paypal
):
    token = login(client, "admin")
    save_paypal(client, token, paypal, factory)
    save_paypal(client, token, paypal, factory, client_secret="", webhook_id="WH-2")
    account = the_account(factory)
    assert credentials(account, SECRET_KEY)["client_secret"] == paypal.client_secret
    assert account.settings["webhook_id"] == "WH-2"

    save_paypal(client, token, paypal, factory, client_secret="not-the-secret")
    answer = client.post(
        f"/admin/settings/gateways/{account.id}/test",
        data={"csrf_token": token},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "invalid_client" in answer or "Client Authentication failed" in answer
    failed = the_account(factory)
    assert failed.last_error and failed.last_error.startswith("test connection:")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": "default"}, "configured by environment variables"),
        ({"name": "EU Shop"}, "lower-case letters"),
        ({"client_id": ""}, "Missing: Client id."),
        ({"api_base": "ftp://paypal.example.com"}, "must start with https://"),
        ({"brand_id": "999"}, "Choose the brand"),
    ],
)
def test_bad_forms_are_refused_with_a_reason(client, factory, paypal, override, message):
    token = login(client, "admin")
    page = save_paypal(client, token, paypal, factory, **override).get_data(as_text=True)
    assert message in page
    with factory() as s:
        assert s.exec(select(GatewayAccount)).all() == []


def test_an_accounts_brand_is_fixed_once_it_exists(client, factory, paypal):
    token = login(client, "admin")
    save_paypal(client, token, paypal, factory)
    with factory() as s:
        other = Brand(slug="other", name="Other", legal_name="Other Ltd", country="GB")
        s.add(other)
        s.commit()
        other_id = other.id
    page = save_paypal(client, token, paypal, factory, brand_id=str(other_id))
    assert "already belongs to another brand" in page.get_data(as_text=True)
    assert the_account(factory).brand_id == brand_id(factory)


@pytest.mark.parametrize("who", ["agent", "finance"])
def test_only_admins_reach_gateway_settings(client, factory, paypal, who):
    token = login(client, who)
    assert client.get("/admin/settings/gateways").status_code == 403
    assert save_paypal(client, token, paypal, factory).status_code == 403


def test_the_added_account_acts_with_its_own_keys(client, factory, paypal, configured):
    """A refund on a payment of the admin-added account reaches PayPal with that account's keys."""
    token = login(client, "admin")
    save_paypal(client, token, paypal, factory)
    _, capture = paypal.add_capture("30.00")
    account = the_account(factory)
    adapter = adapter_for_account(account, configured)
    with factory() as s:
        apply_objects(s, s.get(GatewayAccount, account.id), [adapter.fetch_payment(capture)])
        s.commit()
        payment_id = s.exec(select(Payment.id).where(Payment.external_id == capture)).one()
    result = actions.refund(
        factory,
        configured,
        Actor("agent@example.com", Role.AGENT),
        payment_id,
        1000,
        "EUR",
        reason="late delivery",
        idempotency_key="per-account-refund",
    )
    assert result.response_id
    assert len(paypal.calls("POST", f"/v2/payments/captures/{capture}/refund")) == 1
    with factory() as s:
        assert s.get(Payment, payment_id).amount_refunded == 1000


def test_an_account_without_keys_or_with_an_unreadable_box_cannot_act(configured, factory):
    with factory() as s:
        s.add(Brand(slug="acme", name="Acme", legal_name="Acme GmbH", country="DE"))
        s.flush()
        bare = GatewayAccount(brand_id=1, gateway=GatewayKind.STRIPE, name="bare")
        sealed = GatewayAccount(
            brand_id=1,
            gateway=GatewayKind.STRIPE,
            name="moved",
            credentials_encrypted="gAAAAA-not-a-fernet-token",
        )
        s.add_all([bare, sealed])
        s.commit()
        s.refresh(bare)
        s.refresh(sealed)
    with pytest.raises(UnsupportedAction, match="has no keys"):
        adapter_for(bare, configured)
    with pytest.raises(UnsupportedAction, match="BILLBOX_SECRET_KEY changed"):
        adapter_for(sealed, configured)


@pytest.mark.slow
def test_a_stripe_account_is_tested_and_synced_with_its_own_keys(
    client, factory, tmp_path, database_url
):
    """localstripe as the account's API base: test connection, then `billbox sync --account`."""
    from click.testing import CliRunner

    from billbox.cli import cli
    from tests.servers import LOCALSTRIPE_API_KEY, running_localstripe

    with running_localstripe(tmp_path) as base:
        import stripe

        sdk = stripe.StripeClient(LOCALSTRIPE_API_KEY, base_addresses={"api": base})
        sdk.v1.customers.create(params={"email": "lena@example.org", "name": "Lena"})
        token = login(client, "admin")
        client.post(
            "/admin/settings/gateways",
            data={
                "csrf_token": token,
                "gateway": "stripe",
                "name": "stripe-eu",
                "brand_id": str(brand_id(factory)),
                "api_key": LOCALSTRIPE_API_KEY,
                "webhook_secret": "whsec_eu_0123456789",
                "api_base": base,
            },
        )
        account = the_account(factory, "stripe-eu")
        assert account.live_mode is False
        answer = client.post(
            f"/admin/settings/gateways/{account.id}/test",
            data={"csrf_token": token},
            follow_redirects=True,
        ).get_data(as_text=True)
        assert "Stripe accepted the key (test mode)" in answer

        env = {
            "BILLBOX_DATABASE_URL": database_url,
            "BILLBOX_SECRET_KEY": SECRET_KEY,
            "BILLBOX_LOG_LEVEL": "WARNING",
            "STRIPE_API_KEY": "",
        }
        result = CliRunner().invoke(cli, ["sync", "stripe", "--account", "stripe-eu"], env=env)
        assert result.exit_code == 0, result.output
        missing = CliRunner().invoke(cli, ["sync", "stripe", "--account", "nope"], env=env)
        assert missing.exit_code == 1 and "no stripe account named 'nope'" in missing.output
    with factory() as s:
        from billbox.models import Customer, CustomerIdentity

        lena = s.exec(select(Customer).where(Customer.email == "lena@example.org")).one()
        namespaces = {
            i.namespace
            for i in s.exec(select(CustomerIdentity).where(CustomerIdentity.customer_id == lena.id))
        }
    assert f"stripe:{account.id}" in namespaces
