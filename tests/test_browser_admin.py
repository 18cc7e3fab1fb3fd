"""The staff inbox in a real browser: log in, open a reply, add a note; hostile mail stays inert.

The hostile reply carries the usual XSS payloads (script, event handlers,
javascript: links, remote images, CSS). The test listens for dialogs and
for every request the page makes: none may leave our origin and no dialog
may open.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from pydantic import SecretStr
from sqlmodel import select

from billbox.jobs import run_job
from billbox.models import InboundSource, Job, JobState, Role
from billbox.users import create_user
from mailbridge import store_inbound
from tests.billing_world import make_receipt
from tests.browser import chromium, live_server, screenshot
from web import create_app
from workers.registry import default_handlers

pytestmark = pytest.mark.slow

SECRET = "browser-test-secret-0123456789"
DOMAIN = "reply.example.com"
PASSWORD = "correct horse battery staple"
XSS_HTML = """
<p>Hello, why was I charged <b>twice</b>?</p>
<script>alert('script')</script>
<img src="http://127.0.0.1:9/pixel.gif" onerror="alert('img')">
<a href="javascript:alert('link')" onclick="alert('click')">my invoice</a>
<div style="background:url(http://127.0.0.1:9/bg.png)" onmouseover="alert('over')">hover</div>
<svg onload="alert('svg')"><circle r="5"/></svg>
<iframe src="http://127.0.0.1:9/frame"></iframe>
<form action="http://127.0.0.1:9/steal"><input name="x"></form>
<math><mi xlink:href="javascript:alert('math')">x</mi></math>
"""


@pytest.fixture
def site(settings, engine, factory):
    configured = settings.model_copy(
        update={"reply_domain": DOMAIN, "secret_key": SecretStr(SECRET), "demo": True}
    )
    with factory() as s:
        receipt = make_receipt(s, secret=SECRET, domain=DOMAIN)
        create_user(s, "agent@example.com", Role.AGENT, PASSWORD)
        s.commit()
        token_address = receipt.token_address
    message = EmailMessage()
    message["From"] = "Ana López <ana@example.org>"
    message["To"] = token_address
    message["Subject"] = "Re: Your receipt <script>alert('subject')</script>"
    message["Message-ID"] = "<hostile-1@example.org>"
    message.set_content("Hello, why was I charged twice?")
    message.add_alternative(XSS_HTML, subtype="html")
    store_inbound(
        factory,
        message.as_bytes(),
        source=InboundSource.SMTP,
        envelope_from="ana@example.org",
        envelope_to=[token_address],
    )
    with factory() as s:
        job = s.exec(select(Job).where(Job.state == JobState.QUEUED)).one()
    assert run_job(factory, job.id, default_handlers(configured)).outcome == "done"
    app = create_app(configured, engine=engine, build_worker=False)
    with live_server(app) as url:
        yield url


def test_an_agent_reads_a_hostile_reply_and_no_script_runs(site):
    dialogs: list[str] = []
    foreign: list[str] = []
    with chromium() as browser:
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: None if r.url.startswith(site) else foreign.append(r.url))
        page.goto(f"{site}/admin/")
        page.fill("input[name=email]", "agent@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{site}/admin/")
        screenshot(page, "admin-inbox")
        page.click("text=Your receipt")
        page.wait_for_selector("article.message")
        assert page.locator("article.message b").first.inner_text() == "twice"
        page.hover("text=hover")
        page.click("text=my invoice")
        assert "€49.00" in page.locator("aside.panel").inner_text()
        page.fill("#note-body", "Looked at it: one charge only.")
        page.click("button:has-text('Add note')")
        page.wait_for_selector("article.note")
        assert "one charge only" in page.locator("article.note").inner_text()
        screenshot(page, "admin-ticket")
    assert dialogs == []
    assert foreign == []
