"""The web app's health endpoint and status page, through Flask's test client."""

from __future__ import annotations

from billbox.db import make_engine
from web import create_app


def test_healthz_reports_database_and_broker(settings, engine):
    """/healthz is 200 with both checks ok when the database and broker answer."""
    app = create_app(settings, engine=engine)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_healthz_is_503_when_the_database_is_unreachable(settings):
    """A database that cannot be reached makes /healthz answer 503 naming it."""
    dead = make_engine("postgresql://nobody@127.0.0.1:1/none")
    app = create_app(settings, engine=dead)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable" and body["database"].startswith("error")
    assert body["broker"] == "ok"


def test_the_status_page_shows_work_by_state(settings, engine, factory):
    """/ lists inbound messages and jobs by state from the database."""
    from billbox.models import InboundSource
    from mailbridge import store_inbound

    store_inbound(
        factory,
        b"From: a@example.org\r\n\r\nx",
        source=InboundSource.SMTP,
        envelope_from="a@example.org",
        envelope_to=["r@reply.test"],
    )
    app = create_app(settings, engine=engine)
    page = app.test_client().get("/").get_data(as_text=True)
    assert "Inbound messages" in page and "received" in page
    assert "Jobs" in page and "queued" in page
