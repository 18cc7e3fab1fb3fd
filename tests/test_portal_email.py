"""The receipt email carries the customer's signed billing-page link, and it opens their page."""

from __future__ import annotations

import re
from email import message_from_bytes, policy

from pydantic import SecretStr

from billbox.jobs import run_job
from billbox.portal_links import PortalLinks
from mailbridge.compose import ComposeConfig
from mailbridge.relay import parse_relay_url
from mailbridge.send import (
    SEND_DOCUMENT_JOB,
    MailerConfig,
    make_send_document,
    queue_document_email,
)
from tests.mail_world import REPLY_DOMAIN, SECRET, make_document, make_world, relay_sink
from web import create_app

PUBLIC = "https://billing.example.com"


def test_the_receipt_links_to_the_customers_billing_page(factory, settings, engine):
    with relay_sink("plain") as sink:
        config = MailerConfig(
            ComposeConfig(secret=SECRET, reply_domain=REPLY_DOMAIN),
            parse_relay_url(sink.url, helo_name=REPLY_DOMAIN),
            portal=PortalLinks(SECRET, 30),
            public_url=PUBLIC,
        )
        with factory() as session:
            world = make_world(session)
            document = make_document(session, world)
            job = queue_document_email(session, document.id)
            session.commit()
            job_id = job.id
        assert (
            run_job(factory, job_id, {SEND_DOCUMENT_JOB: make_send_document(config)}).outcome
            == "done"
        )
        [delivery] = sink.handler.deliveries
    message = message_from_bytes(delivery.content, policy=policy.default)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    link = re.search(rf"{PUBLIC}/billing/open/([A-Za-z0-9._-]+)", text)
    assert link and link.group(0) in html

    app = create_app(
        settings.model_copy(update={"secret_key": SecretStr(SECRET), "public_url": PUBLIC}),
        engine=engine,
        build_worker=False,
    )
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    assert client.get(f"/billing/open/{link.group(1)}").status_code == 302
    page = client.get("/billing/").get_data(as_text=True)
    assert document.number in page
