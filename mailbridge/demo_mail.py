"""Customer replies for ``billbox demo``, filed through the real inbound pipeline.

A new installation's inbox should look like a working one: customers
replying to their billing emails, one out-of-office that opens nothing.
Each message is a plain RFC 5322 email from a demo customer to that
customer's signed reply address, stored with
:func:`~mailbridge.inbound_store.store_inbound` as the SMTP server stores
mail, then processed by the same ``inbound.process`` handler the worker
runs — so parsing, classification, threading, customer matching and the
billing-context snapshot are the production ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from billbox.jobs import run_job
from billbox.models import Customer, GatewayAccount, InboundSource, Job, Payment
from mailbridge.inbound_store import store_inbound
from mailbridge.pipeline import INBOUND_JOB, PipelineConfig, make_process_inbound
from mailbridge.tokens import make_reply_token, reply_address

#: What each scenario's customer writes: (subject, body).
LETTERS: dict[str, tuple[str, str]] = {
    "charged_twice": (
        "Charged twice this month?",
        "Hello,\n\nmy card statement shows two payments of the same amount for this "
        "month's Pro plan. Could you refund one of them?\n\nThanks,\n{first}",
    ),
    "outage": (
        "Service was down on the 12th",
        "Hi,\n\nwe could not use the service for most of the 12th. Is there any "
        "credit for that?\n\nBest regards,\n{first}",
    ),
    "cancel": (
        "Please cancel the Pro plan",
        "Hello,\n\nI started the Pro plan by mistake today. Please cancel it right "
        "away.\n\n{first}",
    ),
    "invoice_copy": (
        "Invoice for our accounts department",
        "Hi,\n\ncould you send last month's invoice again? Our accounts department "
        "cannot find it.\n\nKind regards,\n{first}",
    ),
    "vat_id": (
        "Add our VAT number to future invoices",
        "Hello,\n\nplease show our VAT number on future invoices.\n\n{first}",
    ),
    "card_update": (
        "New card",
        "Hi, my card expires next week. How do I update it before the renewal?\n\n{first}",
    ),
}
OUT_OF_OFFICE = (
    "Out of office: Re: Your receipt",
    "I am out of the office until Monday and will read your message when I return.",
)


@dataclass(frozen=True)
class DemoLetter:
    customer_id: int
    scenario: str


def _brand_of(session: Session, customer_id: int) -> int | None:
    """The brand of the customer's first payment's account: who they buy from."""
    return session.exec(
        select(GatewayAccount.brand_id)
        .join(Payment, col(Payment.account_id) == col(GatewayAccount.id))
        .where(Payment.customer_id == customer_id)
        .order_by(col(Payment.id))
        .limit(1)
    ).first()


def _compose(
    customer: Customer, to: str, subject: str, body: str, sent: datetime, *, auto: bool
) -> bytes:
    message = EmailMessage()
    message["From"] = f"{customer.name} <{customer.email}>" if customer.name else customer.email
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(sent)
    message["Message-ID"] = make_msgid(domain=customer.email.rpartition("@")[2])
    if auto:
        message["Auto-Submitted"] = "auto-replied"
    message.set_content(body.format(first=customer.name.split(" ")[0] or customer.email))
    return message.as_bytes()


def file_demo_letters(
    factory: sessionmaker[Session],
    config: PipelineConfig,
    letters: Sequence[DemoLetter],
    *,
    now: datetime | None = None,
) -> int:
    """Store each letter (and one out-of-office) and run its pipeline job; return jobs done.

    Needs ``config.secret`` and ``config.reply_domain``: the letters go to
    the customers' signed reply addresses, which is how they are threaded
    to the right customer and brand.
    """
    if not (config.secret and config.reply_domain):
        raise ValueError("demo letters need BILLBOX_SECRET_KEY and BILLBOX_REPLY_DOMAIN")
    sent = (now or datetime.now(UTC)) - timedelta(hours=len(letters) + 1)
    ids: list[int] = []
    mails: list[tuple[str, str, bytes]] = []
    with factory() as session:
        for number, letter in enumerate(letters):
            customer = session.get(Customer, letter.customer_id)
            if customer is None or not customer.email:
                continue
            token = make_reply_token(
                config.secret,
                document_id=None,
                customer_id=letter.customer_id,
                brand_id=_brand_of(session, letter.customer_id),
            )
            to = reply_address(token, config.reply_domain)
            subject, body = LETTERS[letter.scenario]
            at = sent + timedelta(hours=number)
            mails.append(
                (customer.email, to, _compose(customer, to, subject, body, at, auto=False))
            )
            if number == 0:  # one customer is away: an auto-reply that must open nothing
                away = _compose(customer, to, *OUT_OF_OFFICE, at, auto=True)
                mails.append((customer.email, to, away))
    for sender, to, raw in mails:
        ids.append(
            store_inbound(
                factory, raw, source=InboundSource.SMTP, envelope_from=sender, envelope_to=[to]
            )
        )
    handlers = {INBOUND_JOB: make_process_inbound(config)}
    with factory() as session:
        queued = session.exec(select(Job).where(Job.kind == INBOUND_JOB)).all()
        wanted = sorted(
            job.id
            for job in queued
            if job.id is not None and job.payload.get("inbound_message_id") in ids
        )
    return sum(run_job(factory, job_id, handlers).outcome == "done" for job_id in wanted)
