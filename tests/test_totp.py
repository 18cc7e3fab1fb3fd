"""TOTP: RFC 6238 vectors, and the staff login's optional second factor end to end."""

from __future__ import annotations

import base64
import re
import time

import pytest
from pydantic import SecretStr
from sqlmodel import select

from billbox import totp
from billbox.models import Role, User
from billbox.users import create_user
from web import create_app

PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize(
    ("moment", "expected"),
    [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_codes_match_rfc_6238(moment, expected):
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp.code_at(secret, moment) == expected
    assert totp.verify(secret, expected, now=moment)
    assert totp.verify(secret, expected, now=moment + 30)  # one step of drift
    assert not totp.verify(secret, expected, now=moment + 120)
    assert not totp.verify(secret, "12345", now=moment)


def test_the_provisioning_uri_names_the_account_and_issuer():
    uri = totp.provisioning_uri("JBSWY3DPEHPK3PXP", "ana@example.com")
    assert uri.startswith("otpauth://totp/Billbox%3Aana%40example.com?secret=JBSWY3DPEHPK3PXP")


@pytest.fixture
def client(settings, engine, factory):
    with factory() as s:
        create_user(s, "agent@example.com", Role.AGENT, PASSWORD)
        s.commit()
    configured = settings.model_copy(
        update={"public_url": "https://billbox.test", "secret_key": SecretStr("t" * 32)}
    )
    client = create_app(configured, engine=engine, build_worker=False).test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page)[1]


def login(client) -> object:
    token = csrf(client.get("/admin/login").get_data(as_text=True))
    return client.post(
        "/admin/login",
        data={"email": "agent@example.com", "password": PASSWORD, "csrf_token": token},
    )


def test_an_agent_turns_on_totp_and_then_needs_a_code_to_log_in(client, factory):
    login(client)
    page = client.get("/admin/account").get_data(as_text=True)
    client.post("/admin/account", data={"step": "start", "csrf_token": csrf(page)})
    page = client.get("/admin/account").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page)[1]
    client.post(
        "/admin/account", data={"step": "confirm", "code": "000000", "csrf_token": csrf(page)}
    )
    with factory() as s:
        assert s.exec(select(User)).one().totp_secret is None  # a wrong code changes nothing
    client.post(
        "/admin/account",
        data={
            "step": "confirm",
            "code": totp.code_at(secret, time.time()),
            "csrf_token": csrf(page),
        },
    )
    with factory() as s:
        assert s.exec(select(User)).one().totp_secret == secret

    client.post(
        "/admin/logout", data={"csrf_token": csrf(client.get("/admin/").get_data(as_text=True))}
    )
    response = login(client)
    assert response.status_code == 302 and "/admin/login/totp" in response.headers["Location"]
    assert client.get("/admin/").status_code == 302  # the password alone logs nobody in
    page = client.get("/admin/login/totp").get_data(as_text=True)
    wrong = client.post("/admin/login/totp", data={"code": "123456", "csrf_token": csrf(page)})
    assert wrong.status_code == 401
    right = client.post(
        "/admin/login/totp",
        data={"code": totp.code_at(secret, time.time()), "csrf_token": csrf(page)},
    )
    assert right.status_code == 302
    assert client.get("/admin/").status_code == 200
