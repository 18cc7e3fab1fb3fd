"""The customer's billing pages in Chromium, starting from the receipt email.

The receipt goes through the real send job to an aiosmtpd relay sink; the
browser opens the link found in that email, downloads the PDF, is refused an
invalid VAT number and saves a valid one, and asks a question that an agent
then finds in the admin inbox with the billing context.
"""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from billbox.jobs import run_job
from billbox.models import Customer, Job, JobState, Role
from billbox.portal_links import PortalLinks
from billbox.users import create_user
from mailbridge.compose import ComposeConfig
from mailbridge.relay import parse_relay_url
from mailbridge.send import (
    SEND_DOCUMENT_JOB,
    MailerConfig,
    make_send_document,
    queue_document_email,
)
from tests.browser import chromium, live_server, screenshot
from tests.mail_world import PDF, REPLY_DOMAIN, SECRET, make_document, make_world, relay_sink
from web import create_app
from workers.registry import default_handlers

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery staple"


def test_a_customer_uses_the_billing_page_from_the_receipt_email(
    settings, engine, factory, tmp_path
):
    configured = settings.model_copy(
        update={"secret_key": SecretStr(SECRET), "reply_domain": REPLY_DOMAIN, "demo": True}
    )
    app = create_app(configured, engine=engine, build_worker=False)
    with live_server(app) as url, relay_sink("plain") as sink:
        with factory() as s:
            world = make_world(s)
            document = make_document(s, world)
            create_user(s, "agent@example.com", Role.AGENT, PASSWORD)
            job = queue_document_email(s, document.id)
            s.commit()
            job_id, number = job.id, document.number
        config = MailerConfig(
            ComposeConfig(secret=SECRET, reply_domain=REPLY_DOMAIN),
            parse_relay_url(sink.url, helo_name=REPLY_DOMAIN),
            portal=PortalLinks(SECRET, 30),
            public_url=url,
        )
        assert (
            run_job(factory, job_id, {SEND_DOCUMENT_JOB: make_send_document(config)}).outcome
            == "done"
        )
        [delivery] = sink.handler.deliveries
        body = message_from_bytes(delivery.content, policy=policy.default).get_body(("plain",))
        link = re.search(rf"{re.escape(url)}/billing/open/\S+", body.get_content()).group(0)

        with chromium() as browser:
            customer = browser.new_context(accept_downloads=True).new_page()
            customer.goto(link)
            customer.wait_for_url(f"{url}/billing/")
            assert number in customer.locator("main").inner_text()
            screenshot(customer, "portal-overview")
            with customer.expect_download() as download:
                customer.click("text=Download PDF")
            assert download.value.suggested_filename == f"{number}.pdf"
            assert Path(download.value.path()).read_bytes() == PDF

            customer.click("text=Tax details")
            customer.fill("#country", "DE")
            customer.fill("#tax_id", "DE136695977")
            customer.click("button:has-text('Save')")
            assert "DE136695977" in customer.locator("#tax-id-error").inner_text()
            customer.fill("#tax_id", "DE 136 695 976")
            customer.click("button:has-text('Save')")
            customer.wait_for_selector(".saved")
            screenshot(customer, "portal-tax-details")

            customer.click("text=Ask a billing question")
            customer.fill("#subject", "Invoice address")
            customer.fill("#body", "Please put our new address on the next invoice.")
            customer.click("button:has-text('Send')")
            customer.wait_for_selector(".saved")

            with factory() as s:
                ids = s.exec(
                    select(Job.id).where(
                        Job.state == JobState.QUEUED, Job.kind == "inbound.process"
                    )
                ).all()
            for i in ids:
                assert run_job(factory, i, default_handlers(configured)).outcome == "done"

            agent = browser.new_context().new_page()
            agent.goto(f"{url}/admin/login")
            agent.fill("input[name=email]", "agent@example.com")
            agent.fill("input[name=password]", PASSWORD)
            agent.click("button[type=submit]")
            agent.click("text=Invoice address")
            assert "new address" in agent.locator("article.message").inner_text()
            assert number in agent.locator("aside.panel").inner_text()
            screenshot(agent, "admin-portal-question")
    with factory() as s:
        stored = s.exec(select(Customer).order_by(col(Customer.id))).first()
    assert (stored.tax_id, stored.country) == ("DE136695976", "DE")
