"""Real SMTP relays for the outbound tests, and documents to send.

:class:`RelaySink` is a plain aiosmtpd ``Controller`` (a real server on a
loopback port, in its own thread) whose handler keeps every accepted
message and can be told what to answer next: ``451`` or ``554`` at the end
of DATA, ``550`` to RCPT, or to keep the message and then not answer at all
(the relay accepted, the client never heard). It runs plain, with STARTTLS
and AUTH, or with implicit TLS, using trustme certificates.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlmodel import Session

from billbox.models import Brand, Customer, Document, DocumentKind, DocumentState

SECRET = "test-secret-key-0123456789"
REPLY_DOMAIN = "reply.billbox.test"
USER, PASSWORD = "billbox", "s3cret:pass"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 120 + b"\n%%EOF\n"  # ~30 KB, binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Delivery:
    """One message the relay accepted: the envelope and the bytes as received."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool
    peer: Any = None  # the client's (host, port): equal for messages on one connection


@dataclass
class SinkHandler:
    """Accepts everything unless told otherwise; ``replies`` are consumed one per DATA."""

    deliveries: list[Delivery] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    rcpt_reply: str | None = None
    hang_seconds: float = 3.0
    # Runs (in the server's thread) when RCPT arrives: a test's way to act
    # while the client is between "recipient accepted" and the message.
    on_rcpt: Callable[[], None] | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.on_rcpt is not None:
            self.on_rcpt()
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.replies.pop(0) if self.replies else "250 2.0.0 queued as 1"
        if reply.startswith("250") or reply == "HANG":
            self.deliveries.append(
                Delivery(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    content=envelope.original_content,
                    # session.ssl is set by STARTTLS; implicit TLS shows on the transport
                    tls=session.ssl is not None
                    or server.transport.get_extra_info("ssl_object") is not None,
                    authenticated=bool(session.authenticated),
                    peer=session.peer,
                )
            )
        if reply == "HANG":  # accepted, but the answer never reaches the client in time
            await asyncio.sleep(self.hang_seconds)
            return "250 2.0.0 queued late"
        return reply


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@dataclass
class Certificates:
    """A trustme CA and a server certificate for 127.0.0.1."""

    ca: trustme.CA
    server: ssl.SSLContext
    client: ssl.SSLContext

    @classmethod
    def make(cls) -> Certificates:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server)
        client = ssl.create_default_context()
        ca.configure_trust(client)
        return cls(ca, server, client)


@dataclass
class RelaySink:
    handler: SinkHandler
    port: int
    mode: str  # "plain", "starttls" (STARTTLS required, AUTH required) or "smtps"

    @property
    def url(self) -> str:
        if self.mode == "starttls":
            return f"smtp+starttls://{USER}:s3cret%3Apass@127.0.0.1:{self.port}"
        if self.mode == "smtps":
            return f"smtps://{USER}:s3cret%3Apass@127.0.0.1:{self.port}"
        return f"smtp://127.0.0.1:{self.port}"


@contextmanager
def relay_sink(
    mode: str = "plain", certs: Certificates | None = None, port: int | None = None
) -> Iterator[RelaySink]:
    """Run a sink relay for the duration of the block (on ``port``, or a free one)."""
    handler = SinkHandler()
    port = port or free_port()
    kwargs: dict[str, Any] = {"server_hostname": "relay.test", "enable_SMTPUTF8": True}
    if mode == "starttls":
        assert certs is not None
        kwargs.update(
            tls_context=certs.server,
            require_starttls=True,
            authenticator=_authenticator,
            auth_required=True,
            auth_require_tls=True,
        )
    elif mode == "smtps":
        assert certs is not None
        kwargs.update(
            ssl_context=certs.server,
            authenticator=_authenticator,
            auth_required=True,
            auth_require_tls=False,
        )
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield RelaySink(handler, port, mode)
    finally:
        controller.stop()


@dataclass
class World:
    brand: Brand
    customer: Customer


def make_world(session: Session, *, locale: str = "en") -> World:
    brand = Brand(
        slug="nw",
        name="Northwind",
        legal_name="Northwind GmbH",
        country="DE",
        email_from="billing@northwind.test",
        primary_color="#0f766e",
        footer="Northwind GmbH · Hauptstr. 1 · Berlin",
    )
    customer = Customer(name="Ana López", email="ana@example.org", locale=locale)
    session.add_all([brand, customer])
    session.commit()
    return World(brand, customer)


def make_document(
    session: Session,
    world: World,
    *,
    number: str = "NW-R-2026-000001",
    kind: DocumentKind = DocumentKind.RECEIPT,
    locale: str = "en",
    total: int = 123450,
    currency: str = "EUR",
    pdf: bytes | None = PDF,
    buyer: dict[str, object] | None = None,
) -> Document:
    """An issued document as the documents module stores it, with its PDF bytes."""
    assert world.brand.id is not None and world.customer.id is not None
    document = Document(
        brand_id=world.brand.id,
        customer_id=world.customer.id,
        kind=kind,
        state=DocumentState.ISSUED,
        series=str(kind),
        sequence=int(number.rsplit("-", 1)[-1]) if number[-1].isdigit() else 1,
        number=number,
        source_key=f"test:{number}",
        currency=currency,
        subtotal=total,
        total=total,
        locale=locale,
        buyer=buyer or {"name": world.customer.name, "email": world.customer.email},
        seller={"name": world.brand.legal_name},
        issued_at=datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        pdf=pdf,
    )
    session.add(document)
    session.commit()
    return document
