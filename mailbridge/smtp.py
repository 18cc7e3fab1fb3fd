"""Inbound SMTP: accept mail for our addresses, commit it, then answer 250.

Following aiosmtpd's handler model we implement only the hooks we need:
``handle_RCPT`` refuses addresses that are neither on the reply domain nor
a support address (550 5.1.1); ``handle_DATA`` stores the raw bytes through
the injected ``store`` callable in a thread (never blocking the event loop)
and answers 250 only after the commit. If storing fails we answer 451
4.3.0 so the sending server retries: nothing is dropped.

With a certificate configured the server offers STARTTLS (RFC 3207) but
does not require it: an MX must accept mail from senders that cannot
encrypt. It offers no AUTH either before or after STARTTLS, since nobody
logs in to an MX.

Stopping is graceful: :meth:`SMTPServer.close` stops listening and answers
421 to any new DATA, and :meth:`SMTPServer.wait_closed` returns once every
DATA transaction in progress has been answered (or a grace period ran
out), so a message committed during shutdown still gets its 250 and its
sender does not send it again.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AnyStr, Protocol

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from billbox.context import new_correlation_id
from billbox.logs import get_logger

log = get_logger("mailbridge.smtp")

StoreFn = Callable[[bytes, str, Sequence[str]], int]
AsyncStoreFn = Callable[[bytes, str, Sequence[str]], Awaitable[int]]


class SMTPHooks(Protocol):
    """The aiosmtpd hooks our handler implements."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str: ...

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str: ...


@dataclass(frozen=True)
class RecipientPolicy:
    """Which recipients we accept: anything @reply_domain, plus the support addresses."""

    reply_domain: str
    support_addresses: frozenset[str]

    @classmethod
    def of(cls, reply_domain: str, support_addresses: Iterable[str]) -> RecipientPolicy:
        return cls(reply_domain.lower(), frozenset(a.lower() for a in support_addresses))

    def accepts(self, address: str) -> bool:
        address = address.strip().lower()
        local, at, domain = address.rpartition("@")
        if not at or not local:
            return False
        return domain == self.reply_domain or address in self.support_addresses


class InboundSMTPHandler:
    """``store`` is either a blocking function (run in a thread) or a coroutine
    function such as :meth:`GroupCommitStore.store_async`.

    ``handle_DATA`` runs on the event loop once per message, beside aiosmtpd's
    own parsing, so it does only what the answer needs: which kind of
    ``store`` it has is decided once, the session's correlation id and peer
    are bound once per connection (:meth:`BillboxSMTP.connection_made`), and
    the accept line is built only when INFO is logged.
    """

    def __init__(self, store: StoreFn | AsyncStoreFn, policy: RecipientPolicy) -> None:
        self.store = store
        self.policy = policy
        self._store_is_async = inspect.iscoroutinefunction(store)

    async def _store(self, raw: bytes, mail_from: str, rcpts: list[str]) -> int:
        if self._store_is_async:
            return await self.store(raw, mail_from, rcpts)  # type: ignore[misc]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self.store, raw, mail_from, rcpts)  # type: ignore[arg-type]

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self.policy.accepts(address):
            log.info("smtp_rcpt_refused", rcpt=address, peer=str(session.peer))
            return f"550 5.1.1 <{address}>: recipient not handled here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # decode_data=True servers; keep bytes everywhere
            raw = raw.encode("utf-8", "surrogateescape")
        mail_from = envelope.mail_from or ""
        rcpts = list(envelope.rcpt_tos)
        try:
            inbound_id = await self._store(raw, mail_from, rcpts)
        except Exception as exc:  # any storage failure: the sender must retry
            log.error("smtp_store_failed", error=f"{exc.__class__.__name__}: {exc}", size=len(raw))
            return "451 4.3.0 Temporary failure storing the message, try again later"
        if log.is_enabled_for(logging.INFO):
            log.info(
                "smtp_accepted",
                inbound_message_id=inbound_id,
                size=len(raw),
                mail_from=mail_from,
                rcpt_count=len(rcpts),
            )
        return f"250 2.0.0 OK queued as {inbound_id}"


class _Transactions:
    """Shared by the sessions of one listening server: DATA transactions in progress,
    and whether new ones are refused because the server is stopping."""

    def __init__(self) -> None:
        self.in_progress = 0
        self.closing = False


class BillboxSMTP(SMTP):
    """aiosmtpd's server with RFC 3463 enhanced codes on its size refusals, no AUTH,
    and a count of DATA transactions in progress for a graceful stop.

    aiosmtpd advertises ``AUTH LOGIN PLAIN`` once a session is encrypted,
    backed by a callback that refuses every login. We pass no mechanisms
    (so ``AUTH`` answers 504) and drop the then-empty ``250-AUTH`` line.
    """

    def __init__(
        self, handler: Any, *, transactions: _Transactions | None = None, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self.transactions = transactions or _Transactions()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Bind a correlation id and the peer for this session's log lines.

        aiosmtpd starts the session's task here, and a task copies the
        context it is created in; the binding is undone right after, so it
        stays with this session and does not leak into the event loop.
        """
        tokens = structlog.contextvars.bind_contextvars(
            correlation_id=new_correlation_id(),
            smtp_peer=str(transport.get_extra_info("peername")),
        )
        try:
            super().connection_made(transport)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if self.transactions.closing:
            await self.push("421 4.3.2 Service shutting down, try again later")
            if self.transport is not None:
                self.transport.close()
            return
        self.transactions.in_progress += 1
        try:
            await super().smtp_DATA(arg)
        finally:
            self.transactions.in_progress -= 1

    async def push(self, status: AnyStr) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        if text.startswith("552 Error:"):
            text = "552 5.3.4 Message size exceeds fixed maximum message size"
        elif text.rstrip() == "250-AUTH":
            return
        await super().push(text)


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side context for STARTTLS: the PEM chain and key, TLS 1.2 or newer.

    Client certificates are not asked for (``Purpose.CLIENT_AUTH`` leaves
    ``verify_mode`` at ``CERT_NONE``), as aiosmtpd recommends. Raises
    ``OSError`` for unreadable files and ``ssl.SSLError`` for a key that does
    not match the certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    return context


def smtp_factory(
    handler: InboundSMTPHandler,
    *,
    max_size: int,
    hostname: str | None = None,
    tls_context: ssl.SSLContext | None = None,
    transactions: _Transactions | None = None,
) -> Callable[[], BillboxSMTP]:
    """A protocol factory for ``loop.create_server`` with our limits and extensions.

    With ``tls_context`` the server offers STARTTLS; it never requires it.
    The host name for the greeting is looked up once here: aiosmtpd would
    call the blocking ``socket.getfqdn()`` on the event loop per connection.
    """
    hostname = hostname or socket.getfqdn()
    shared = transactions or _Transactions()

    def make() -> BillboxSMTP:
        return BillboxSMTP(
            handler,
            transactions=shared,
            data_size_limit=max_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="Billbox ESMTP",
            tls_context=tls_context,
            require_starttls=False,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )

    return make


class SMTPServer:
    """A listening SMTP server that stops without leaving a committed message unanswered.

    Python 3.11's ``asyncio.Server.wait_closed`` returns at once without
    waiting for connections, and ``asyncio.run`` then cancels every session:
    a message committed in the last moments would lose its 250 and be sent
    again. (From 3.12 it waits for every connection instead, idle ones
    included, for up to aiosmtpd's 300 s timeout.) Here ``close`` stops
    listening and refuses new DATA with 421; ``wait_closed`` waits for the
    DATA transactions in progress to be answered, for at most ``grace``
    seconds (within ``billbox up``'s 6 s), and not for idle sessions.
    """

    def __init__(self, server: asyncio.Server, transactions: _Transactions, grace: float) -> None:
        self._server = server
        self._transactions = transactions
        self.grace = grace

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets)

    @property
    def in_progress(self) -> int:
        """DATA transactions being received, stored or answered right now."""
        return self._transactions.in_progress

    def close(self) -> None:
        self._transactions.closing = True
        self._server.close()

    async def wait_closed(self) -> None:
        deadline = time.monotonic() + self.grace
        while self._transactions.in_progress and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self._transactions.in_progress:
            log.warning("smtp_stopped_mid_data", transactions=self._transactions.in_progress)


async def start_smtp_server(
    handler: InboundSMTPHandler,
    host: str,
    port: int,
    *,
    max_size: int,
    tls_context: ssl.SSLContext | None = None,
    grace: float = 5.0,
    **kwargs: Any,
) -> SMTPServer:
    """Listen on ``host:port``; ``close()`` then ``await wait_closed()`` to stop gracefully."""
    loop = asyncio.get_running_loop()
    transactions = _Transactions()
    server = await loop.create_server(
        smtp_factory(
            handler, max_size=max_size, tls_context=tls_context, transactions=transactions
        ),
        host=host,
        port=port,
        **kwargs,
    )
    log.info(
        "smtp_listening", host=host, port=port, max_size=max_size, starttls=tls_context is not None
    )
    return SMTPServer(server, transactions, grace)
