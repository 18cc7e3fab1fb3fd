"""Inbound SMTP: accept mail for our addresses, commit it, then answer 250.

Following aiosmtpd's handler model we implement only the hooks we need:
``handle_RCPT`` refuses addresses that are neither on the reply domain nor
a support address (550 5.1.1); ``handle_DATA`` stores the raw bytes through
the injected ``store`` callable in a thread (never blocking the event loop)
and answers 250 only after the commit. If storing fails we answer 451
4.3.0 so the sending server retries: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, AnyStr, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session

from billbox.context import bound
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
    function such as :meth:`GroupCommitStore.store_async`."""

    def __init__(self, store: StoreFn | AsyncStoreFn, policy: RecipientPolicy) -> None:
        self.store = store
        self.policy = policy

    async def _store(self, raw: bytes, mail_from: str, rcpts: list[str]) -> int:
        if inspect.iscoroutinefunction(self.store):
            return await self.store(raw, mail_from, rcpts)
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
        with bound(smtp_peer=str(session.peer)):
            try:
                inbound_id = await self._store(raw, mail_from, rcpts)
            except Exception as exc:  # any storage failure: the sender must retry
                log.error(
                    "smtp_store_failed", error=f"{exc.__class__.__name__}: {exc}", size=len(raw)
                )
                return "451 4.3.0 Temporary failure storing the message, try again later"
            log.info(
                "smtp_accepted",
                inbound_message_id=inbound_id,
                size=len(raw),
                mail_from=mail_from,
                rcpt_count=len(rcpts),
            )
        return f"250 2.0.0 OK queued as {inbound_id}"


class BillboxSMTP(SMTP):
    """aiosmtpd's server with RFC 3463 enhanced codes on its size refusals."""

    async def push(self, status: AnyStr) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        if text.startswith("552 Error:"):
            text = "552 5.3.4 Message size exceeds fixed maximum message size"
        await super().push(text)


def smtp_factory(
    handler: InboundSMTPHandler, *, max_size: int, hostname: str | None = None
) -> Callable[[], BillboxSMTP]:
    """A protocol factory for ``loop.create_server`` with our limits and extensions."""

    def make() -> BillboxSMTP:
        return BillboxSMTP(
            handler,
            data_size_limit=max_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="Billbox ESMTP",
        )

    return make


async def start_smtp_server(
    handler: InboundSMTPHandler, host: str, port: int, *, max_size: int, **kwargs: Any
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        smtp_factory(handler, max_size=max_size), host=host, port=port, **kwargs
    )
    log.info("smtp_listening", host=host, port=port, max_size=max_size)
    return server
