"""The ``helpdesk.push`` job: copy one filed ticket message into each active helpdesk.

Billbox's own inbox is the record; the push happens after, as a job, so a
helpdesk outage delays the copy and never loses or blocks a reply.

Exactly once, as far as the vendor allows: the first inbound message of a
ticket creates the external ticket (the clients look for a ticket an earlier
attempt made before creating one), later messages wait until it exists and
then append (the clients check for the reply on the ticket before posting).
The HTTP call happens between two short transactions, so no database lock is
held while a vendor answers slowly.

Failures: bad credentials fail the job at once and are shown on the helpdesk
settings page; everything else is retried with backoff (honouring
``Retry-After``), the vendor's message kept on the account for the admin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from sqlmodel import Session, col, select

from billbox.billing_context import snapshot
from billbox.customers import find_by_email
from billbox.errors import JobError, PermanentError
from billbox.jobs import JobContext, submit
from billbox.models import (
    HelpdeskAccount,
    MessageDirection,
    Ticket,
    TicketMessage,
    utcnow,
)
from mailbridge.helpdesks.accounts import client_for
from mailbridge.helpdesks.external import (
    ExternalHelpdesk,
    ExternalTicket,
    HelpdeskAuthError,
    HelpdeskError,
    MessageBody,
    Requester,
)
from mailbridge.helpdesks.note import billing_note

PUSH_JOB = "helpdesk.push"
log = structlog.get_logger(__name__)


class WaitForTicket(JobError):
    """A later message waits until the ticket's first message created the external ticket."""


def queue_pushes(session: Session, message: TicketMessage) -> int:
    """One push job per active helpdesk for this message; returns how many were queued."""
    accounts = session.exec(
        select(HelpdeskAccount).where(col(HelpdeskAccount.active).is_(True))
    ).all()
    for account in accounts:
        submit(
            session,
            PUSH_JOB,
            {"ticket_message_id": message.id, "account_id": account.id},
            dedupe_key=f"helpdesk:{account.id}:{message.id}",
        )
    return len(accounts)


@dataclass(frozen=True)
class _Work:
    account: HelpdeskAccount
    ticket_id: int
    external_ticket_id: str | None
    first: bool
    requester: Requester
    subject: str
    body: MessageBody
    context: dict[str, object]


def _read(session: Session, job: JobContext, reply_domain: str) -> _Work | None:
    message = session.get(TicketMessage, int(job.payload["ticket_message_id"]))
    account = session.get(HelpdeskAccount, int(job.payload["account_id"]))
    if message is None or account is None:
        raise PermanentError("the ticket message or helpdesk account no longer exists")
    if not account.active or message.helpdesk_external_id:
        return None  # switched off since, or already pushed
    ticket = session.get(Ticket, message.ticket_id)
    assert ticket is not None and ticket.id is not None and message.id is not None
    first_id = session.exec(
        select(col(TicketMessage.id))
        .where(TicketMessage.ticket_id == ticket.id,
               TicketMessage.direction == MessageDirection.INBOUND)
        .order_by(col(TicketMessage.id))
        .limit(1)
    ).first()  # fmt: skip
    external = ticket.helpdesk_external_id if ticket.helpdesk == account.name else None
    session.expunge(account)
    return _Work(
        account=account,
        ticket_id=ticket.id,
        external_ticket_id=external,
        first=first_id == message.id,
        requester=Requester(email=ticket.requester_email, name=message.author),
        subject=ticket.subject or "(no subject)",
        body=MessageBody(
            text=message.body_text,
            html=message.body_html,
            message_id=message.message_id
            or f"<billbox-ticket-message-{message.id}@{reply_domain}>",
        ),
        context=dict(message.billing_context or {}),
    )


def _call(client: ExternalHelpdesk, work: _Work) -> ExternalTicket:
    note = billing_note(work.context)
    if work.external_ticket_id is None:
        if not work.first:
            raise WaitForTicket(f"ticket {work.ticket_id} is not in {work.account.name} yet")
        return client.create_ticket(work.requester, work.subject, work.body, note)
    return client.append_reply(work.external_ticket_id, work.requester, work.body, note)


def _record_error(session: Session, account_id: int, error: str) -> None:
    account = session.get(HelpdeskAccount, account_id)
    if account is not None:
        account.last_error = error[:2000]
        session.add(account)
        session.commit()


def make_push_handler(
    secret_key: str,
    reply_domain: str,
    *,
    base_urls: Mapping[str, str] | None = None,
) -> Callable[[Session, JobContext], None]:
    """The job handler; ``base_urls`` (by account name) points clients at test servers."""

    def push(session: Session, job: JobContext) -> None:
        work = _read(session, job, reply_domain)
        session.commit()  # end the read transaction before talking to the vendor
        if work is None:
            return
        account_id = work.account.id
        assert account_id is not None
        base_url = (base_urls or {}).get(work.account.name)
        client = client_for(work.account, secret_key, base_url=base_url)
        try:
            created = _call(client, work)
        except HelpdeskAuthError as exc:
            _record_error(session, account_id, f"credentials refused: {exc}")
            raise PermanentError(f"{work.account.name}: {exc}") from exc
        except HelpdeskError as exc:
            _record_error(session, account_id, str(exc))
            raise
        ticket = session.get(Ticket, work.ticket_id)
        message = session.get(TicketMessage, int(job.payload["ticket_message_id"]))
        account = session.get(HelpdeskAccount, account_id)
        assert ticket is not None and message is not None and account is not None
        if ticket.helpdesk_external_id is None:
            ticket.helpdesk = account.name
            ticket.helpdesk_external_id = created.ticket_id
        message.helpdesk_external_id = created.message_id or created.ticket_id
        account.last_ok_at, account.last_error = utcnow(), None
        session.add_all([ticket, message, account])
        log.info("helpdesk_pushed", helpdesk=account.name, ticket_id=work.ticket_id,
                 external_ticket_id=created.ticket_id)  # fmt: skip

    return push


NOTE_JOB = "helpdesk.note"


def make_note_handler(
    secret_key: str,
    reply_domain: str,
    *,
    base_urls: Mapping[str, str] | None = None,
) -> Callable[[Session, JobContext], None]:
    """``helpdesk.note``: the billing note on a ticket opened in the helpdesk itself.

    The note's key is derived from the account and ticket, so a redelivered
    webhook or a retried job finds the note it already added.
    """

    def note(session: Session, job: JobContext) -> None:
        account = session.get(HelpdeskAccount, int(job.payload["account_id"]))
        if account is None:
            raise PermanentError("the helpdesk account no longer exists")
        customer = find_by_email(session, str(job.payload["email"]))
        if customer is None or customer.id is None:
            log.info("helpdesk_note_no_customer", helpdesk=account.name)
            return
        billing = billing_note(snapshot(session, customer.id))
        session.expunge(account)
        session.commit()  # no transaction while the vendor answers
        if billing is None:
            return
        ticket_id = str(job.payload["ticket_id"])
        key = f"<helpdesk-ticket-{account.id}-{ticket_id}@{reply_domain}>"
        client = client_for(account, secret_key, base_url=(base_urls or {}).get(account.name))
        assert account.id is not None
        try:
            client.add_note(ticket_id, billing, key)
        except HelpdeskAuthError as exc:
            _record_error(session, account.id, f"credentials refused: {exc}")
            raise PermanentError(f"{account.name}: {exc}") from exc
        except HelpdeskError as exc:
            _record_error(session, account.id, str(exc))
            raise
        log.info("helpdesk_noted", helpdesk=account.name, external_ticket_id=ticket_id)

    return note
