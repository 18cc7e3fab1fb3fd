"""``/sidebar`` for helpdesk apps: signed requests get the billing panel, others get nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from pydantic import SecretStr

from billbox.models import HelpdeskAccount, Role
from billbox.users import create_user
from mailbridge.helpdesks.accounts import seal_credentials
from tests.billing_world import make_receipt
from web import create_app

SECRET = "sidebar-test-secret-0123456789"
SIDEBAR = "a-long-shared-sidebar-secret-0123456"


@pytest.fixture
def client(settings, engine, factory):
    with factory() as s:
        make_receipt(s, secret=SECRET, domain="reply.example.com")
        for kind in ("zendesk", "helpscout", "intercom", "freshdesk"):
            s.add(HelpdeskAccount(kind=kind, name=kind, active=True, settings={},
                                  credentials_encrypted=seal_credentials(
                                      SECRET, {"sidebar_secret": SIDEBAR})))  # fmt: skip
        create_user(s, "admin@example.com", Role.ADMIN, "correct horse battery staple")
        s.commit()
    configured = settings.model_copy(update={"secret_key": SecretStr(SECRET)})
    return create_app(configured, engine=engine, build_worker=False).test_client()


def zendesk_token(email: str, secret: str = SIDEBAR) -> str:
    claims = {"aud": "billbox-sidebar", "exp": int(time.time()) + 60, "email": email}
    return jwt.encode(claims, secret, algorithm="HS256")


def test_a_signed_zendesk_request_gets_the_panel(client):
    response = client.get(
        "/sidebar?helpdesk=zendesk&email=ana@example.org",
        headers={"Authorization": f"Bearer {zendesk_token('ana@example.org')}"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "Ana López" in page and "€49.00" in page
    assert "NW-R-1" in page and "receipt" in page  # her documents too
    assert "frame-ancestors https://*.zendesk.com" in response.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in response.headers


def test_unsigned_or_wrongly_signed_requests_get_nothing(client):
    wrong = zendesk_token("ana@example.org", "x" * 32)
    for headers in ({}, {"Authorization": f"Bearer {wrong}"}):
        response = client.get("/sidebar?helpdesk=zendesk&email=ana@example.org", headers=headers)
        assert response.status_code == 401
        assert "Ana" not in response.get_data(as_text=True)
    assert client.get("/sidebar?helpdesk=nobody&email=a@b.c").status_code == 404
    forged = client.post(
        "/sidebar?helpdesk=helpscout",
        data=json.dumps({"customer": {"email": "ana@example.org"}}),
        headers={"X-HelpScout-Signature": "AAAA", "Content-Type": "application/json"},
    )
    assert forged.status_code == 401


def test_help_scout_gets_json_html_and_intercom_a_canvas(client):
    body = json.dumps({"customer": {"email": "ana@example.org"}}).encode()
    signature = base64.b64encode(hmac.new(SIDEBAR.encode(), body, hashlib.sha1).digest()).decode()
    helpscout = client.post("/sidebar?helpdesk=helpscout", data=body,
                            headers={"X-HelpScout-Signature": signature,
                                     "Content-Type": "application/json"})  # fmt: skip
    assert helpscout.status_code == 200 and "€49.00" in helpscout.get_json()["html"]

    body = json.dumps({"contact": {"email": "ana@example.org"}}).encode()
    signature = hmac.new(SIDEBAR.encode(), body, hashlib.sha256).hexdigest()
    intercom = client.post("/sidebar?helpdesk=intercom", data=body,
                           headers={"X-Body-Signature": signature,
                                    "Content-Type": "application/json"})  # fmt: skip
    components = intercom.get_json()["canvas"]["content"]["components"]
    assert components[0]["text"].startswith("*Ana López*")
    assert any("49.00 EUR" in c.get("text", "") for c in components)


def test_an_unknown_customer_gets_a_polite_panel(client):
    response = client.get(
        "/sidebar?helpdesk=freshdesk&email=who@example.org",
        headers={"Authorization": f"Bearer {SIDEBAR}"},
    )
    assert response.status_code == 200 and "No Billbox customer" in response.get_data(as_text=True)


def test_the_admin_saves_a_helpdesk_with_sealed_secrets(client, factory):
    import re

    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    client.environ_base["wsgi.url_scheme"] = "https"
    client.post("/admin/login", data={"email": "admin@example.com",
                                      "password": "correct horse battery staple",
                                      "csrf_token": token})  # fmt: skip
    page = client.get("/admin/settings/helpdesks").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    response = client.post("/admin/settings/helpdesks", data={
        "kind": "front", "name": "front-eu", "inbox_id": "inb_1", "inbox_address": "a@b.c",
        "api_token": "front-token-123", "sidebar_secret": "plugin-secret-456", "active": "1",
        "csrf_token": token})  # fmt: skip
    assert response.status_code == 302
    from sqlmodel import select

    with factory() as s:
        account = s.exec(select(HelpdeskAccount).where(HelpdeskAccount.name == "front-eu")).one()
    assert "front-token-123" not in account.credentials_encrypted
    assert account.settings == {"inbox_id": "inb_1", "inbox_address": "a@b.c"} and account.active
    page = client.get("/admin/settings/helpdesks").get_data(as_text=True)
    assert "front-token-123" not in page and "front-eu" in page
