"""An agent replies from the ticket: the email reaches the relay threaded, and the customer's
answer to it comes back to the same ticket."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage

from pydantic import SecretStr
from sqlmodel import col, select

from billbox.jobs import run_job
from billbox.models import (
    Brand,
    InboundSource,
    Job,
    JobState,
    MessageDirection,
    OutboundEmail,
    OutboundState,
    Role,
    Ticket,
    TicketMessage,
    TicketStatus,
)
from billbox.users import create_user
from mailbridge import store_inbound
from mailbridge.agent_reply import SEND_OUTBOUND_JOB
from mailbridge.tokens import read_reply_token, token_from_address
from tests.billing_world import make_receipt
from tests.mail_world import relay_sink
from web import create_app
from workers.registry import default_handlers

SECRET = "reply-test-secret-0123456789"
DOMAIN = "reply.example.com"
PASSWORD = "correct horse battery staple"


def customer_mail(factory, to: str, message_id: str, in_reply_to: str | None = None) -> None:
    message = EmailMessage()
    message["From"] = "Ana López <ana@example.org>"
    message["To"] = to
    message["Subject"] = "Re: Your receipt"
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    message.set_content("Why two charges?")
    store_inbound(factory, message.as_bytes(), source=InboundSource.SMTP,
                  envelope_from="ana@example.org", envelope_to=[to])  # fmt: skip


def run_all(factory, handlers, kind: str) -> list[str]:
    with factory() as s:
        ids = s.exec(select(Job.id).where(Job.kind == kind, Job.state == JobState.QUEUED)
                     .order_by(col(Job.id))).all()  # fmt: skip
    return [run_job(factory, i, handlers).outcome for i in ids]


def test_an_agent_reply_is_emailed_threaded_and_the_answer_returns_to_the_ticket(
    settings, engine, factory
):
    with relay_sink("plain") as sink:
        configured = settings.model_copy(update={
            "secret_key": SecretStr(SECRET), "reply_domain": DOMAIN, "smtp_relay": sink.url,
            "public_url": "https://billbox.test"})  # fmt: skip
        handlers = default_handlers(configured)
        with factory() as s:
            receipt = make_receipt(s, secret=SECRET, domain=DOMAIN)
            brand = s.exec(select(Brand)).one()
            brand.email_from = "billing@northwind.example.com"
            s.add(brand)
            create_user(s, "agent@example.com", Role.AGENT, PASSWORD)
            s.commit()
            token_address = receipt.token_address
        customer_mail(factory, token_address, "<first@example.org>")
        assert run_all(factory, handlers, "inbound.process") == ["done"]
        with factory() as s:
            ticket_id = s.exec(select(Ticket.id)).one()

        client = create_app(configured, engine=engine, build_worker=False).test_client()
        client.environ_base["wsgi.url_scheme"] = "https"
        page = client.get("/admin/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        client.post("/admin/login", data={"email": "agent@example.com", "password": PASSWORD,
                                          "csrf_token": csrf})  # fmt: skip
        page = client.get(f"/admin/tickets/{ticket_id}").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
        url = f"/admin/tickets/{ticket_id}/reply"
        empty = client.post(url, data={"body": " ", "csrf_token": csrf}, follow_redirects=True)
        assert "write a reply first" in empty.get_data(as_text=True)
        client.post(f"/admin/tickets/{ticket_id}/reply",
                    data={"body": "Only one charge went through; the other was an authorisation.",
                          "csrf_token": csrf})  # fmt: skip
        assert run_all(factory, handlers, SEND_OUTBOUND_JOB) == ["done"]
        [delivery] = sink.handler.deliveries

    email = message_from_bytes(delivery.content, policy=policy.default)
    assert email["In-Reply-To"] == "<first@example.org>"
    assert email["Subject"] == f"Re: Your receipt [#{ticket_id}]"
    assert "Auto-Submitted" not in email
    claims = read_reply_token(SECRET, token_from_address(email["Reply-To"].addresses[0].addr_spec,
                                                         DOMAIN))  # fmt: skip
    assert claims is not None and claims.document_id is None
    with factory() as s:
        ticket = s.get(Ticket, ticket_id)
        outbound = s.exec(
            select(OutboundEmail).where(col(OutboundEmail.purpose_key).startswith("reply:"))
        ).one()
        ours = s.exec(select(TicketMessage).where(
            TicketMessage.direction == MessageDirection.OUTBOUND)).one()  # fmt: skip
    assert ticket.status == TicketStatus.PENDING
    assert outbound.state == OutboundState.SENT and ours.message_id == email["Message-ID"]

    customer_mail(factory, "billing@example.org", "<second@example.org>", email["Message-ID"])
    run_all(factory, handlers, "inbound.process")
    with factory() as s:
        tickets = s.exec(select(Ticket)).all()
        inbound_only = TicketMessage.direction == MessageDirection.INBOUND
        inbound = s.exec(
            select(TicketMessage).where(inbound_only).order_by(col(TicketMessage.id))
        ).all()
    assert len(tickets) == 1 and tickets[0].status == TicketStatus.OPEN
    assert [m.message_id for m in inbound] == ["<first@example.org>", "<second@example.org>"]
