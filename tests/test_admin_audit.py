"""The audit page: filters, permissions and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from billbox.models import ActorKind, AuditEvent, Role
from billbox.users import create_user
from web import create_app

PASSWORD = "correct horse battery staple"


@pytest.fixture
def client(settings, engine, factory):
    with factory() as s:
        for role in (Role.AGENT, Role.FINANCE):
            create_user(s, f"{role.value}@example.com", role, PASSWORD)
        previous = "0" * 64
        for i, (actor, action, target, day) in enumerate(
            [
                ("agent@example.com", "refund", "pi_1", 3),
                ("agent@example.com", "cancel_subscription", "sub_1", 4),
                ("ana@example.org", "portal.tax_details", "7", 5),
            ]
        ):
            digest = f"{i + 1:064x}"
            s.add(
                AuditEvent(
                    at=datetime(2026, 11, day, 10, tzinfo=UTC),
                    actor_kind=ActorKind.USER if "@example.com" in actor else ActorKind.CUSTOMER,
                    actor=actor, action=action, target_kind="payment", target_id=target,
                    reason="customer asked", data={"amount": 500, "currency": "EUR"},
                    prev_hash=previous, hash=digest,
                )
            )  # fmt: skip
            previous = digest
        s.commit()
    configured = settings.model_copy(
        update={"public_url": "https://billbox.test", "secret_key": SecretStr("a" * 32)}
    )
    client = create_app(configured, engine=engine, build_worker=False).test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


def login(client, email):
    page = client.get("/admin/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    client.post("/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token})


def test_finance_filters_the_audit_log_and_exports_it(client):
    login(client, "finance@example.com")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "3 events" in page and "cancel_subscription" in page
    page = client.get("/admin/audit", query_string={"action": "refund"}).get_data(as_text=True)
    assert "1 event" in page and "pi_1" in page and "sub_1" not in page
    page = client.get("/admin/audit", query_string={"from": "2026-11-05"}).get_data(as_text=True)
    assert "portal.tax_details" in page and "pi_1" not in page
    rows = list(
        csv.DictReader(
            io.StringIO(client.get("/admin/audit.csv?actor=agent").get_data(as_text=True))
        )
    )
    assert [r["action"] for r in rows] == ["refund", "cancel_subscription"]
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert client.get("/admin/audit?from=soon").status_code == 400


def test_agents_do_not_see_the_audit_log(client):
    login(client, "agent@example.com")
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/audit.csv").status_code == 403
