"""``/api/v1`` with API tokens: auth, roles, context by email, tickets, and the OpenAPI document."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from sqlmodel import select

from billbox.api_tokens import create_token, revoke_token
from billbox.models import ApiToken, Role, Ticket, TicketStatus
from tests.billing_world import make_receipt
from web import create_app

SECRET = "api-test-secret-0123456789"


@pytest.fixture
def client(settings, engine):
    configured = settings.model_copy(update={"secret_key": SecretStr(SECRET)})
    return create_app(configured, engine=engine, build_worker=False).test_client()


@pytest.fixture
def tokens(factory):
    with factory() as s:
        made = {role: create_token(s, f"t-{role.value}", role).secret for role in Role}
        s.commit()
    return made


@pytest.fixture
def world(factory):
    with factory() as s:
        receipt = make_receipt(s, secret=SECRET, domain="reply.example.com")
        ticket = Ticket(
            subject="Charged twice",
            status=TicketStatus.OPEN,
            requester_email="ana@example.org",
            customer_id=receipt.customer.id,
        )
        s.add(ticket)
        s.commit()
        return {"customer_id": receipt.customer.id, "ticket_id": ticket.id}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_requests_without_a_valid_token_get_401_json(client, tokens, factory):
    response = client.get("/api/v1/tickets")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/tickets", headers=bearer("bbx_nope")).status_code == 401
    with factory() as s:
        revoke_token(s, "t-agent")
        s.commit()
    assert client.get("/api/v1/tickets", headers=bearer(tokens[Role.AGENT])).status_code == 401
    assert client.get("/api/v1/tickets", headers=bearer(tokens[Role.ADMIN])).status_code == 200


def test_only_the_hash_is_stored(factory, tokens):
    with factory() as s:
        stored = s.exec(select(ApiToken)).all()
    for token in stored:
        assert token.token_hash not in tokens.values()
        assert all(not secret.endswith(token.token_hash) for secret in tokens.values())
        assert any(secret.startswith(token.prefix) for secret in tokens.values())


def test_context_by_email_returns_the_billing_snapshot(client, tokens, world):
    response = client.get(
        "/api/v1/context",
        query_string={"email": " ANA@example.org "},
        headers=bearer(tokens[Role.AGENT]),
    )
    body = response.get_json()
    assert response.status_code == 200
    assert body["customer"]["email"] == "ana@example.org"
    assert [(p["amount"], p["currency"]) for p in body["payments"]] == [(4900, "EUR")]
    missing = client.get(
        "/api/v1/context",
        query_string={"email": "who@example.org"},
        headers=bearer(tokens[Role.AGENT]),
    )
    assert missing.status_code == 404
    bad = client.get(
        "/api/v1/context", query_string={"email": "x"}, headers=bearer(tokens[Role.AGENT])
    )
    assert bad.status_code == 400


def test_tickets_list_one_ticket_and_a_customer(client, tokens, world):
    headers = bearer(tokens[Role.FINANCE])
    listing = client.get("/api/v1/tickets", query_string={"q": "ana@example.org"}, headers=headers)
    assert [t["subject"] for t in listing.get_json()["tickets"]] == ["Charged twice"]
    one = client.get(f"/api/v1/tickets/{world['ticket_id']}", headers=headers).get_json()
    assert one["status"] == "open" and one["messages"] == []
    customer = client.get(f"/api/v1/customers/{world['customer_id']}", headers=headers)
    assert customer.get_json()["customer"]["name"] == "Ana López"
    assert client.get("/api/v1/tickets/999999", headers=headers).status_code == 404
    assert client.get("/api/v1/tickets?status=nope", headers=headers).status_code == 400


def test_every_documented_path_answers(client, tokens, world):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.1")
    headers = bearer(tokens[Role.ADMIN])
    for path, operations in document["paths"].items():
        if "get" not in operations:
            continue
        url = path.replace("{customer_id}", str(world["customer_id"])).replace(
            "{ticket_id}", str(world["ticket_id"])
        )
        response = client.get(url, query_string={"email": "ana@example.org"}, headers=headers)
        assert response.status_code == 200, path


def test_the_cli_creates_and_revokes_tokens(settings, engine, monkeypatch):
    from billbox.cli import cli

    monkeypatch.setenv("BILLBOX_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("BILLBOX_SECRET_KEY", SECRET)
    monkeypatch.setenv("BILLBOX_VAR_DIR", str(settings.var_dir))
    runner = CliRunner()
    created = runner.invoke(cli, ["api-token", "create", "zendesk", "--role", "agent"])
    assert created.exit_code == 0, created.output
    assert created.stdout.strip().startswith("bbx_")
    again = runner.invoke(cli, ["api-token", "create", "zendesk"])
    assert again.exit_code == 1 and "already exists" in again.output
    assert runner.invoke(cli, ["api-token", "revoke", "zendesk"]).exit_code == 0
    assert runner.invoke(cli, ["api-token", "create", "Bad Name"]).exit_code == 1
