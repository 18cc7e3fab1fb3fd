"""The staff inbox through Flask's test client: login, roles, CSRF, list, ticket, notes.

Tickets are filed by the real inbound pipeline (store → job → ticket), so
what the page shows is what a customer's mail really becomes.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest
from pydantic import SecretStr
from sqlmodel import select

from billbox.jobs import run_job
from billbox.models import (
    InboundSource,
    Job,
    JobState,
    MessageDirection,
    Role,
    Ticket,
    TicketMessage,
    TicketStatus,
    User,
)
from billbox.users import create_user
from mailbridge import store_inbound
from tests.billing_world import make_receipt
from web import create_app
from workers.registry import default_handlers

SECRET = "admin-test-secret-0123456789"
DOMAIN = "reply.example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def staff_settings(settings):
    return settings.model_copy(
        update={
            "reply_domain": DOMAIN,
            "public_url": "https://billbox.test",
            "secret_key": SecretStr(SECRET),
        }
    )


@pytest.fixture
def app(staff_settings, engine):
    return create_app(staff_settings, engine=engine, build_worker=False)


@pytest.fixture
def users(factory):
    with factory() as s:
        for role in Role:
            create_user(s, f"{role.value}@example.com", role, PASSWORD)
        s.commit()


@pytest.fixture
def world(factory, staff_settings):
    """A receipt emailed to Ana, and her reply (HTML with a script, a PDF) filed as a ticket."""
    with factory() as s:
        receipt = make_receipt(s, secret=SECRET, domain=DOMAIN)
        token_address = receipt.token_address
        customer_id = receipt.customer.id
    message = EmailMessage()
    message["From"] = "Ana López <ana@example.org>"
    message["To"] = token_address
    message["Subject"] = "Re: Your receipt"
    message["Message-ID"] = "<reply-1@example.org>"
    message.set_content("Why was I charged twice?\n")
    message.add_alternative(
        "<p>Why was I charged <b>twice</b>?</p><script>alert(1)</script>"
        '<img src="http://127.0.0.1:9/track.gif"><a href="javascript:alert(2)">x</a>',
        subtype="html",
    )
    message.add_attachment(
        b"%PDF-1.4 statement", maintype="application", subtype="pdf", filename="statement.pdf"
    )
    store_inbound(
        factory,
        message.as_bytes(),
        source=InboundSource.SMTP,
        envelope_from="ana@example.org",
        envelope_to=[token_address],
    )
    handlers = default_handlers(staff_settings)
    with factory() as s:
        job = s.exec(select(Job).where(Job.state == JobState.QUEUED)).one()
    assert run_job(factory, job.id, handlers).outcome == "done"
    with factory() as s:
        ticket = s.exec(select(Ticket)).one()
    return {"ticket_id": ticket.id, "customer_id": customer_id}


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(client, email: str, password: str = PASSWORD):
    token = csrf_of(client.get("/admin/login").get_data(as_text=True))
    return client.post(
        "/admin/login", data={"email": email, "password": password, "csrf_token": token}
    )


def https_client(app):
    """A test client speaking https, so the Secure session cookie is sent back."""
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    return client


def test_pages_need_a_login_and_the_session_cookie_is_locked_down(app, users):
    """Anonymous → redirect to login; the cookie is Secure, HttpOnly, SameSite=Lax."""
    client = https_client(app)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    response = login(client, "agent@example.com")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/admin/").status_code == 200


def test_a_wrong_password_is_refused_and_repeated_failures_are_throttled(app, users):
    client = https_client(app)
    for _ in range(5):
        response = login(client, "agent@example.com", "wrong password!!")
        assert response.status_code == 401
        assert "Wrong email or password" in response.get_data(as_text=True)
    response = login(client, "agent@example.com")  # right password, but throttled now
    assert response.status_code == 429
    assert "Too many failed attempts" in response.get_data(as_text=True)
    assert https_client(app).get("/admin/").status_code == 302


def test_a_post_without_the_csrf_token_is_refused(app, users, world):
    client = https_client(app)
    login(client, "agent@example.com")
    response = client.post(f"/admin/tickets/{world['ticket_id']}/notes", data={"body": "hi"})
    assert response.status_code == 400
    logged_out = https_client(app).post(
        "/admin/login", data={"email": "agent@example.com", "password": PASSWORD}
    )
    assert logged_out.status_code == 400


def test_a_deactivated_user_loses_the_session_at_the_next_request(app, users, factory):
    client = https_client(app)
    login(client, "agent@example.com")
    assert client.get("/admin/").status_code == 200
    with factory() as s:
        user = s.exec(select(User).where(User.email == "agent@example.com")).one()
        user.active = False
        s.add(user)
        s.commit()
    assert client.get("/admin/").status_code == 302


def test_the_login_redirect_never_leaves_the_admin(app, users):
    client = https_client(app)
    token = csrf_of(client.get("/admin/login").get_data(as_text=True))
    response = client.post(
        "/admin/login?next=https://evil.example/phish",
        data={"email": "agent@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"].endswith("/admin/")


def test_the_list_finds_a_ticket_by_email_name_payment_id_and_document_number(
    app, users, world, factory
):
    from billbox.models import Document, Payment

    with factory() as s:
        payment = s.exec(select(Payment)).one()
        document = s.exec(select(Document)).one()
    client = https_client(app)
    login(client, "agent@example.com")
    for query in ("ana@example.org", "lópez", payment.external_id, document.number):
        page = client.get("/admin/", query_string={"q": query}).get_data(as_text=True)
        assert "Your receipt" in page, query
    page = client.get("/admin/", query_string={"q": "nobody@nowhere.test"}).get_data(as_text=True)
    assert "No tickets match" in page
    page = client.get("/admin/", query_string={"status": "solved"}).get_data(as_text=True)
    assert "No tickets match" in page
    page = client.get("/admin/", query_string={"gateway": "stripe"}).get_data(as_text=True)
    assert "Your receipt" in page


def test_the_ticket_shows_the_thread_sanitised_the_attachment_and_the_billing_panel(
    app, users, world
):
    client = https_client(app)
    login(client, "agent@example.com")
    response = client.get(f"/admin/tickets/{world['ticket_id']}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "twice" in page and "<b>twice</b>" in page
    assert "<script" not in page.split("</header>", 1)[1]
    assert "alert(" not in page and "track.gif" not in page and "javascript:" not in page
    assert "statement.pdf" in page
    assert "€49.00" in page  # the payment in the billing panel
    assert "threaded by reply token" in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]

    link = re.search(r'href="(/admin/messages/\d+/attachments/0)"', page)
    assert link
    download = client.get(link.group(1))
    assert download.data == b"%PDF-1.4 statement"
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert "attachment" in download.headers["Content-Disposition"]


def test_notes_and_status_changes_and_who_may_make_them(app, users, world, factory):
    ticket_id = world["ticket_id"]
    agent = https_client(app)
    login(agent, "agent@example.com")
    page = agent.get(f"/admin/tickets/{ticket_id}").get_data(as_text=True)
    agent.post(
        f"/admin/tickets/{ticket_id}/notes",
        data={"body": "Checked Stripe: one charge.", "csrf_token": csrf_of(page)},
    )
    response = agent.post(
        f"/admin/tickets/{ticket_id}/status", data={"status": "solved", "csrf_token": csrf_of(page)}
    )
    assert response.status_code == 302
    with factory() as s:
        ticket = s.get(Ticket, ticket_id)
        notes = s.exec(
            select(TicketMessage).where(TicketMessage.direction == MessageDirection.NOTE)
        ).all()
    assert ticket is not None and ticket.status == TicketStatus.SOLVED
    assert [(n.author, n.body_text) for n in notes] == [
        ("agent@example.com", "Checked Stripe: one charge.")
    ]

    finance = https_client(app)
    login(finance, "finance@example.com")
    page = finance.get(f"/admin/tickets/{ticket_id}").get_data(as_text=True)
    assert "Set status" not in page
    response = finance.post(
        f"/admin/tickets/{ticket_id}/status", data={"status": "open", "csrf_token": csrf_of(page)}
    )
    assert response.status_code == 403


def test_an_unknown_ticket_is_404(app, users):
    client = https_client(app)
    login(client, "admin@example.com")
    assert client.get("/admin/tickets/999999").status_code == 404
