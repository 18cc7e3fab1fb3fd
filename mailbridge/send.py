"""Send a document's email through the relay exactly once: the ``send_document`` job.

One :class:`~billbox.models.OutboundEmail` row per *purpose* (``purpose_key``
is unique): ``document:<id>`` for the first email of a document and
``resend:<id>:<n>`` for the n-th resend. The row moves

    PENDING ──(relay said 354: commit)──▶ SENDING ──(250)──▶ SENT ──(DSN)──▶ BOUNCED
       ▲  │                                   │
       └──┘ 4xx, network, TLS, AUTH:           └─ 5xx: FAILED (the relay's reply in
            retried with backoff                   ``last_error``, shown to admins)

and a retry looks at the row first: SENT or BOUNCED means done, so running
the job again never sends again. The message bytes are composed once,
stored on the row with their Message-ID, and reused by every retry, so a
retried email is the same email.

The one window that cannot be closed: between writing the message's final
``.`` and committing SENT, the relay may have accepted the message while
we crash (or lose the connection before its reply). No SMTP client can
know; RFC 1047 describes the same race from the server side. We choose
*at most once*: a row found in SENDING when a job (re)starts, or a
connection lost after the whole message was written, is marked FAILED with
``last_error`` starting ``delivery unknown:`` and the job fails, for an
admin to check the relay log for the Message-ID and resend if needed. A
duplicate receipt would confuse a customer more than a missing one an
admin can see and resend. The window is kept small: SENDING is committed
only after the relay has answered MAIL, RCPT and DATA (``354``), so every
connection, TLS, AUTH and recipient problem happens while still PENDING
and is safely retried.

SENT is written in the job's own transaction: :func:`billbox.jobs.run_job`
commits it together with the job's ``done``.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from billbox.documents import SEND_DOCUMENT_JOB, SEND_MAX_ATTEMPTS
from billbox.errors import PermanentError
from billbox.jobs import Handler, JobContext, submit
from billbox.logs import get_logger
from billbox.models import (
    Brand,
    Customer,
    Document,
    Job,
    OutboundEmail,
    OutboundState,
    utcnow,
)
from billbox.portal_links import PortalLinks
from billbox.settings import Settings
from mailbridge.compose import (
    ComposeConfig,
    ComposeError,
    DkimKey,
    compose_document_email,
    new_message_id,
)
from mailbridge.relay import (
    DeliveryUnknownError,
    RelayConfig,
    RelayConnections,
    RelayRejectedError,
    RelayTemporaryError,
    deliver,
    parse_relay_url,
)
from mailbridge.verp import verp_address

__all__ = [
    "SEND_DOCUMENT_JOB",
    "DocumentNotReady",
    "MailerConfig",
    "mailer_config",
    "make_send_document",
    "purpose_key",
    "queue_document_email",
]

MAX_ATTEMPTS = SEND_MAX_ATTEMPTS  # the issuer's first send and resends retry alike
UNKNOWN_PREFIX = "delivery unknown: "

_RESEND = re.compile(r"resend:([1-9][0-9]{0,8})")
_OUTBOUND: sa.Table = OutboundEmail.__table__  # type: ignore[attr-defined]

log = get_logger("mailbridge.send")


class DocumentNotReady(Exception):
    """The document has no PDF yet; retried with backoff until it has one."""


@dataclass(frozen=True)
class MailerConfig:
    """What the send job needs: how to compose, and the relay (``None``: not configured)."""

    compose: ComposeConfig
    relay: RelayConfig | None
    #: Signs the customer's billing-page link put in every email (None: the document's URL).
    portal: PortalLinks | None = None
    public_url: str = ""


def mailer_config(settings: Settings) -> MailerConfig:
    """Build the send job's configuration from validated settings (relay, CA file, DKIM)."""
    dkim = None
    if settings.dkim_private_key_file and settings.dkim_selector and settings.dkim_domain:
        dkim = DkimKey.from_file(
            settings.dkim_selector, settings.dkim_domain, settings.dkim_private_key_file
        )
    relay = None
    if settings.smtp_relay:
        context = None
        if settings.smtp_relay_ca_file is not None:
            context = ssl.create_default_context(cafile=str(settings.smtp_relay_ca_file))
        relay = parse_relay_url(
            settings.smtp_relay, helo_name=settings.reply_domain, tls_context=context
        )
    compose = ComposeConfig(secret=settings.secret(), reply_domain=settings.reply_domain, dkim=dkim)
    portal = PortalLinks(settings.secret(), settings.portal_link_days)
    return MailerConfig(
        compose=compose, relay=relay, portal=portal, public_url=settings.effective_public_url
    )


def billing_link(
    session: Session, config: MailerConfig, customer: Customer | None, brand: Brand
) -> str | None:
    """The customer's signed billing-page link for this brand (it expires; see the portal)."""
    if config.portal is None or customer is None or brand.id is None or not config.public_url:
        return None
    token = config.portal.make(session, customer, brand.id)
    return f"{config.public_url.rstrip('/')}/billing/open/{token}"


def purpose_key(document_id: int, purpose: object = None) -> str:
    """``document:<id>`` for the first email (purpose absent, ``receipt`` or ``document``),
    ``resend:<id>:<n>`` for ``resend:<n>``; :class:`ValueError` for anything else."""
    if purpose in (None, "", "receipt", "document"):
        return f"document:{document_id}"
    match = _RESEND.fullmatch(purpose) if isinstance(purpose, str) else None
    if match is None:
        raise ValueError(f"unknown purpose {purpose!r}; use 'receipt' or 'resend:<n>'")
    return f"resend:{document_id}:{match.group(1)}"


def queue_document_email(session: Session, document_id: int) -> Job:
    """Submit the first email of a document (idempotent: a second call returns the same job)."""
    return submit(
        session,
        SEND_DOCUMENT_JOB,
        {"document_id": document_id},
        dedupe_key=f"{SEND_DOCUMENT_JOB}:{document_id}",  # as billbox.documents submits it
        max_attempts=MAX_ATTEMPTS,
    )


def make_send_document(config: MailerConfig) -> Handler:
    """The ``send_document`` handler for ``config``.

    Payload: ``{"document_id": int, "purpose": "receipt" | "resend:<n>"}``.
    """

    # One idle relay connection per worker thread, reused between receipts.
    connections = RelayConnections(config.relay) if config.relay is not None else None

    def send_document(session: Session, job: JobContext) -> None:
        document_id = job.payload.get("document_id")
        if isinstance(document_id, bool) or not isinstance(document_id, int):
            raise PermanentError(f"payload document_id must be an integer: {document_id!r}")
        try:
            key = purpose_key(document_id, job.payload.get("purpose"))
        except ValueError as exc:
            raise PermanentError(str(exc)) from None
        if connections is None:
            raise PermanentError("BILLBOX_SMTP_RELAY is not set; no email can be sent")
        row = _get_or_create(session, config, document_id, key)
        send_row(session, config, connections, row, job)

    return send_document


def send_row(
    session: Session,
    config: MailerConfig,
    connections: RelayConnections,
    row: OutboundEmail,
    job: JobContext,
) -> None:
    """Hand one composed outbound row to the relay, at most once (see the module doc)."""
    key = row.purpose_key
    session.commit()  # no transaction (no SQLite write lock) while we talk to the relay
    if row.state in (OutboundState.SENT, OutboundState.BOUNCED):
        log.info("outbound_already_sent", outbound_id=row.id, purpose_key=key)
        return
    if row.state == OutboundState.FAILED:
        raise PermanentError(f"outbound email {row.id} failed earlier: {row.last_error}")
    if row.state == OutboundState.SENDING:
        error = (
            f"{UNKNOWN_PREFIX}an earlier attempt was interrupted while handing "
            f"{row.message_id} to the relay; check the relay log, resend if it did not go out"
        )
        _finish(session, row, OutboundState.FAILED, error, count_attempt=False)
        session.commit()
        raise PermanentError(error)
    _attempt(session, config, connections, row, job)


def _get_or_create(
    session: Session, config: MailerConfig, document_id: int, key: str
) -> OutboundEmail:
    """The row for ``key``; created (composed, PENDING, committed) on the first run."""
    row = session.exec(select(OutboundEmail).where(OutboundEmail.purpose_key == key)).first()
    if row is not None:
        return row
    document = session.get(Document, document_id)
    if document is None:
        raise PermanentError(f"document {document_id} does not exist")
    if not document.pdf:
        raise DocumentNotReady(f"document {document.number} has no PDF yet")
    brand = session.get(Brand, document.brand_id)
    if brand is None:
        raise PermanentError(f"brand {document.brand_id} of document {document.number} is gone")
    customer = session.get(Customer, document.customer_id) if document.customer_id else None
    link = billing_link(session, config, customer, brand)
    # End the read transaction before composing: on SQLite every transaction
    # holds the write lock, and composing (and DKIM signing) takes milliseconds.
    session.commit()
    try:
        composed = compose_document_email(
            document,
            brand,
            customer=customer,
            config=config.compose,
            message_id=new_message_id(config.compose.reply_domain),
            resent=key.startswith("resend:"),
            billing_url=link,
        )
    except ComposeError as exc:
        raise PermanentError(str(exc)) from None
    row = OutboundEmail(
        brand_id=brand.id,
        customer_id=document.customer_id,
        document_id=document.id,
        purpose_key=key,
        state=OutboundState.PENDING,
        to_address=composed.to_address,
        from_address=composed.from_address,
        reply_to=composed.reply_to,
        subject=composed.subject[:500],
        message_id=composed.message_id,
        raw=composed.raw,
    )
    session.add(row)
    try:
        session.commit()
    except sa.exc.IntegrityError:  # another run created it first: use theirs
        session.rollback()
        row = session.exec(select(OutboundEmail).where(OutboundEmail.purpose_key == key)).one()
    return row


class _TakenElsewhere(Exception):
    """Another run moved the row out of PENDING first; it does the sending."""


def _attempt(
    session: Session,
    config: MailerConfig,
    relay: RelayConnections,
    row: OutboundEmail,
    job: JobContext,
) -> None:
    assert row.id is not None and row.raw is not None
    outbound_id = row.id
    envelope_from = verp_address(config.compose.secret, outbound_id, config.compose.reply_domain)
    claimed = False

    def commit_sending() -> None:
        nonlocal claimed
        result = session.connection().execute(
            sa.update(_OUTBOUND)
            .where(_OUTBOUND.c.id == outbound_id, _OUTBOUND.c.state == OutboundState.PENDING)
            .values(
                state=OutboundState.SENDING,
                attempts=_OUTBOUND.c.attempts + 1,
                updated_at=utcnow(),
            )
        )
        if result.rowcount != 1:
            session.rollback()
            raise _TakenElsewhere
        session.commit()
        claimed = True

    smtputf8 = not (row.to_address.isascii() and row.from_address.isascii())
    try:
        reply = deliver(
            relay,
            envelope_from,
            row.to_address,
            row.raw,
            smtputf8=smtputf8,
            before_body=commit_sending,
        )
    except _TakenElsewhere:
        log.info("outbound_taken_elsewhere", outbound_id=outbound_id)
        return
    except RelayTemporaryError as exc:
        if job.attempt >= _max_attempts(session, job):
            error = f"gave up after {job.attempt} attempts: {exc.reply}"
            _finish(session, row, OutboundState.FAILED, error, count_attempt=not claimed)
            session.commit()
            raise PermanentError(error) from None
        _finish(session, row, OutboundState.PENDING, exc.reply, count_attempt=not claimed)
        session.commit()
        raise
    except RelayRejectedError as exc:
        _finish(session, row, OutboundState.FAILED, exc.reply, count_attempt=not claimed)
        session.commit()
        error = f"the relay refused outbound email {outbound_id}: {exc.reply}"
        raise PermanentError(error) from None
    except DeliveryUnknownError as exc:
        error = f"{UNKNOWN_PREFIX}{exc.reply}; check the relay log for {row.message_id}"
        _finish(session, row, OutboundState.FAILED, error, count_attempt=False)
        session.commit()
        raise PermanentError(error) from None
    now = utcnow()
    session.connection().execute(
        sa.update(_OUTBOUND)
        .where(_OUTBOUND.c.id == outbound_id)
        .values(state=OutboundState.SENT, sent_at=now, updated_at=now, last_error=None)
    )
    log.info(
        "outbound_sent",
        outbound_id=outbound_id,
        message_id=row.message_id,
        purpose_key=row.purpose_key,
        relay_reply=reply,
    )


def _max_attempts(session: Session, job: JobContext) -> int:
    value = session.exec(select(Job.max_attempts).where(Job.id == job.job_id)).first()
    session.rollback()
    return int(value) if value is not None else MAX_ATTEMPTS


def _finish(
    session: Session,
    row: OutboundEmail,
    state: OutboundState,
    error: str,
    *,
    count_attempt: bool,
) -> None:
    """Record an attempt's outcome on the row (the caller commits)."""
    values: dict[str, Any] = {
        "state": state,
        "last_error": error[:4000],
        "updated_at": utcnow(),
    }
    if count_attempt:
        values["attempts"] = _OUTBOUND.c.attempts + 1
    session.connection().execute(
        sa.update(_OUTBOUND).where(_OUTBOUND.c.id == row.id).values(**values)
    )
    log.warning(
        "outbound_not_sent",
        outbound_id=row.id,
        message_id=row.message_id,
        state=str(state),
        error=error,
    )
