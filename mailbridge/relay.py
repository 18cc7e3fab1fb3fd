"""Hand one message to the configured SMTP relay, telling exactly how far it got.

``BILLBOX_SMTP_RELAY`` forms (the settings validator accepts these schemes)::

    smtp://host[:25]                       plain SMTP, no TLS (a relay on localhost)
    smtp+starttls://user:pass@host[:587]   STARTTLS required, then AUTH
    smtps://user:pass@host[:465]           TLS from the first byte, then AUTH

User and password are percent-decoded. ``?helo=name`` sets the EHLO name
(default: the reply domain). Certificates are verified against the system
store, or against ``BILLBOX_SMTP_RELAY_CA_FILE``.

Why not ``smtplib.sendmail``: it runs MAIL, RCPT and DATA as one call, so a
caller cannot tell "the relay refused the sender" from "the connection died
after the whole message was on the wire". :func:`deliver` runs the steps
itself and calls ``before_body`` after the relay's ``354`` and before the
first byte of the message, which is where the sender commits "sending".
Its errors say which side of that line a failure fell on:

- :class:`RelayTemporaryError` — connection, TLS or AUTH trouble, or a 4xx
  reply, or the socket failed while the body was still being written (the
  terminating ``.`` never left, so no relay can have accepted it): retry.
- :class:`RelayRejectedError` — a 5xx reply to MAIL, RCPT or the message:
  the relay will not take this message, retrying cannot help.
- :class:`DeliveryUnknownError` — the whole body was written and then the
  reply never came: the relay may or may not have accepted it.

:class:`RelayConnections` keeps one idle session per thread for the next
message (checked with ``RSET`` first), so a worker pays the TCP, TLS and
AUTH handshakes once, not per receipt.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "DeliveryUnknownError",
    "RelayConfig",
    "RelayConnections",
    "RelayError",
    "RelayRejectedError",
    "RelayTemporaryError",
    "TlsMode",
    "deliver",
    "parse_relay_url",
]

DEFAULT_TIMEOUT = 30.0
_DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
_EOLS = re.compile(rb"\r\n|\r|\n")


class RelayError(Exception):
    """A delivery attempt did not end in ``250``; ``reply`` is what the relay said."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        super().__init__(reply)


class RelayTemporaryError(RelayError):
    """Not delivered, and trying again later may work (4xx, network, TLS, AUTH)."""


class RelayRejectedError(RelayError):
    """Not delivered, and never will be: the relay answered 5xx for this message."""


class DeliveryUnknownError(RelayError):
    """The message was fully written but no reply came: it may have been accepted."""


class TlsMode(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"
    IMPLICIT = "implicit"


@dataclass(frozen=True)
class RelayConfig:
    """Where and how to connect; built from the URL by :func:`parse_relay_url`."""

    host: str
    port: int
    tls: TlsMode
    username: str | None = None
    password: str | None = None
    helo_name: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    tls_context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        return self.tls_context or ssl.create_default_context()

    def __repr__(self) -> str:  # never print the password
        return f"RelayConfig({self.tls}://{self.username or ''}@{self.host}:{self.port})"


def parse_relay_url(
    url: str,
    *,
    helo_name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    tls_context: ssl.SSLContext | None = None,
) -> RelayConfig:
    """Parse a ``BILLBOX_SMTP_RELAY`` URL; :class:`ValueError` for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"unknown relay scheme {parts.scheme!r}; use smtp, smtp+starttls, smtps")
    if not parts.hostname:
        raise ValueError("relay URL has no host")
    tls = {"smtp": TlsMode.NONE, "smtp+starttls": TlsMode.STARTTLS, "smtps": TlsMode.IMPLICIT}
    query = parse_qs(parts.query)
    return RelayConfig(
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[parts.scheme],
        tls=tls[parts.scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        helo_name=query["helo"][0] if query.get("helo") else helo_name,
        timeout=timeout,
        tls_context=tls_context,
    )


def _reply_text(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}".strip()


def _refused(step: str, code: int, message: bytes | str) -> RelayError:
    """The error for a non-success reply: 5xx is final, anything else may pass later."""
    reply = f"{step}: {_reply_text(code, message)}"
    if 500 <= code < 600:
        return RelayRejectedError(reply)
    return RelayTemporaryError(reply)


def _connect(config: RelayConfig) -> smtplib.SMTP:
    """An authenticated session ready for MAIL; :class:`RelayTemporaryError` otherwise."""
    where = f"{config.host}:{config.port}"
    client: smtplib.SMTP | None = None
    try:
        if config.tls == TlsMode.IMPLICIT:
            client = smtplib.SMTP_SSL(
                config.host,
                config.port,
                local_hostname=config.helo_name,
                timeout=config.timeout,
                context=config.context(),
            )
        else:
            client = smtplib.SMTP(
                config.host, config.port, local_hostname=config.helo_name, timeout=config.timeout
            )
        client.ehlo_or_helo_if_needed()
        if config.tls == TlsMode.STARTTLS:
            if not client.has_extn("starttls"):
                raise RelayTemporaryError(f"relay {where} does not offer STARTTLS")
            client.starttls(context=config.context())
            client.ehlo()
        if config.username:
            client.login(config.username, config.password or "")
        return client
    except smtplib.SMTPAuthenticationError as exc:
        _close(client)
        raise RelayTemporaryError(
            f"AUTH at {where} failed: {_reply_text(exc.smtp_code, exc.smtp_error)}"
        ) from None
    except smtplib.SMTPResponseException as exc:
        _close(client)
        raise RelayTemporaryError(
            f"relay {where}: {_reply_text(exc.smtp_code, exc.smtp_error)}"
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        _close(client)
        if isinstance(exc, RelayError):
            raise
        raise RelayTemporaryError(f"cannot talk to relay {where}: {exc!s}") from None


def _close(client: smtplib.SMTP | None) -> None:
    """Drop the connection without QUIT (the relay may be mid-DATA or gone)."""
    if client is not None:
        client.close()


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


def _body(raw: bytes) -> bytes:
    """CRLF line ends, leading dots doubled, the terminating ``.`` (RFC 5321 4.5.2)."""
    data = _LEADING_DOT.sub(b"..", _EOLS.sub(b"\r\n", raw))
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class RelayConnections:
    """One idle relay connection per thread, reused by the thread's next delivery.

    A worker thread sends receipts one after another; reusing its session
    saves the TCP, TLS and AUTH round trips of each. Only a connection whose
    last transaction ended in ``250`` is kept, and it must answer ``RSET``
    with ``250`` before it is used again (a relay that closed it meanwhile
    fails that, and a fresh connection is opened: nothing was in flight, so
    this is always safe). Connections idle longer than ``max_idle`` seconds
    are closed instead, well before relays time them out (Postfix: 300 s).
    """

    def __init__(self, config: RelayConfig, *, max_idle: float = 60.0) -> None:
        self.config = config
        self.max_idle = max_idle
        self._local = threading.local()

    def take(self) -> smtplib.SMTP:
        """The thread's idle connection if it still answers, else a new one."""
        idle: tuple[smtplib.SMTP, float] | None = getattr(self._local, "idle", None)
        self._local.idle = None
        if idle is not None:
            client, since = idle
            if time.monotonic() - since <= self.max_idle:
                try:
                    if client.rset()[0] == 250:
                        return client
                except (OSError, smtplib.SMTPException):
                    pass
            _close(client)
        return _connect(self.config)

    def give_back(self, client: smtplib.SMTP) -> None:
        """Keep ``client`` (its transaction just got ``250``) for this thread's next message."""
        previous: tuple[smtplib.SMTP, float] | None = getattr(self._local, "idle", None)
        if previous is not None:
            _quit(previous[0])
        self._local.idle = (client, time.monotonic())


def deliver(
    config: RelayConfig | RelayConnections,
    envelope_from: str,
    recipient: str,
    raw: bytes,
    *,
    smtputf8: bool = False,
    before_body: Callable[[], None] = lambda: None,
) -> str:
    """Send ``raw`` from ``envelope_from`` to ``recipient``; return the relay's 250 reply.

    ``before_body`` runs once the relay has said ``354``; if it raises, the
    connection is dropped before any byte of the message is written (so the
    relay discards the transaction) and the exception propagates. With
    :class:`RelayConnections` the connection is reused after a ``250``;
    after any failure it is closed, never reused.
    """
    pool: RelayConnections | None = None
    if isinstance(config, RelayConnections):
        pool, config = config, config.config
        client = pool.take()
    else:
        client = _connect(config)
    try:
        options: list[str] = []
        if smtputf8:
            if not client.has_extn("smtputf8"):
                raise RelayRejectedError("the relay lacks SMTPUTF8, needed for this address")
            options.append("SMTPUTF8")
        code, message = client.mail(envelope_from, options)
        if code != 250:
            raise _refused("MAIL FROM", code, message)
        code, message = client.rcpt(recipient)
        if code not in (250, 251):
            raise _refused("RCPT TO", code, message)
        code, message = client.docmd("DATA")
        if code != 354:
            raise _refused("DATA", code, message)
    except (OSError, smtplib.SMTPException) as exc:
        _close(client)
        raise RelayTemporaryError(f"relay {config.host}:{config.port}: {exc!s}") from None
    except BaseException:
        _quit(client)
        raise
    try:
        before_body()
    except BaseException:
        _close(client)
        raise
    try:
        client.send(_body(raw))
    except (OSError, smtplib.SMTPException) as exc:
        _close(client)
        raise RelayTemporaryError(f"connection lost while sending the message: {exc!s}") from None
    try:
        code, message = client.getreply()
    except (OSError, smtplib.SMTPException) as exc:
        _close(client)
        raise DeliveryUnknownError(f"no reply after the message was sent: {exc!s}") from None
    if code != 250:
        _quit(client)
        raise _refused("end of DATA", code, message)
    if pool is not None:
        pool.give_back(client)
    else:
        _quit(client)
    return _reply_text(code, message)
