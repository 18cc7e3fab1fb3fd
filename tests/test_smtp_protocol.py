"""SMTP at the protocol level: real sessions over loopback into the real database.

The server is the one ``billbox smtp`` runs (``start_smtp_server`` on an
event loop in a thread) and it stores through ``GroupCommitStore``, so a
250 here means a committed row. Clients are ``smtplib``, or a raw socket
where smtplib would hide what is on the wire (pipelining, a client that
vanishes mid-DATA).
"""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from billbox.jobs import install_enqueuer
from billbox.models import InboundMessage, Job
from mailbridge import GroupCommitStore, InboundSMTPHandler, RecipientPolicy, start_smtp_server
from mailbridge.smtp import SMTPServer, StoreFn, server_tls_context

T = TypeVar("T")
MAX_SIZE = 64 * 1024
REPLY = "r-1@reply.example.com"
SUPPORT = "billing@example.com"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    """``start_smtp_server`` on its own event loop thread, as ``billbox smtp`` runs it."""

    port: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    server: SMTPServer
    writer: GroupCommitStore

    @classmethod
    def start(
        cls,
        factory: sessionmaker[Session],
        tls_context: ssl.SSLContext | None = None,
        store: StoreFn | None = None,
    ) -> RunningServer:
        writer = GroupCommitStore(factory)
        policy = RecipientPolicy.of("reply.example.com", [SUPPORT])
        handler = InboundSMTPHandler(store or writer.store_async, policy)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="smtp-test-loop", daemon=True)
        thread.start()
        port = free_port()
        started = asyncio.run_coroutine_threadsafe(
            start_smtp_server(
                handler, "127.0.0.1", port, max_size=MAX_SIZE, tls_context=tls_context
            ),
            loop,
        )
        return cls(port, loop, thread, started.result(10), writer)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        self.call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        self.writer.close()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)


@pytest.fixture
def enqueued(factory: sessionmaker[Session]) -> list[list[int]]:
    """Job ids handed to the (recording) enqueuer after each commit."""
    sent: list[list[int]] = []
    install_enqueuer(factory, lambda ids, delay=0.0: sent.append(list(ids)))
    return sent


@pytest.fixture
def server(factory: sessionmaker[Session], enqueued: list[list[int]]) -> Iterator[RunningServer]:
    running = RunningServer.start(factory)
    yield running
    running.stop()


def stored(factory: sessionmaker[Session]) -> list[InboundMessage]:
    with factory() as session:
        return list(session.exec(select(InboundMessage).order_by(col(InboundMessage.id))))


def message(subject: str, body: bytes = b"hello\r\n") -> bytes:
    return (
        b"From: Ana <ana@example.org>\r\nTo: " + REPLY.encode() + b"\r\n"
        b"Subject: " + subject.encode() + b"\r\n\r\n" + body
    )


# --- recipients ---------------------------------------------------------------


def test_a_bad_recipient_is_refused_while_the_good_ones_of_the_transaction_get_the_message(
    server: RunningServer, factory: sessionmaker[Session], enqueued: list[list[int]]
) -> None:
    """One RCPT is refused 550 5.1.1; the message is stored once, for the two accepted ones."""
    with server.client() as client:
        refused = client.sendmail(
            "ana@example.org",
            [REPLY, "someone@elsewhere.example", SUPPORT],
            message("mixed"),
        )
    assert list(refused) == ["someone@elsewhere.example"]
    code, text = refused["someone@elsewhere.example"]
    assert code == 550 and text.startswith(b"5.1.1 ")
    rows = stored(factory)
    assert len(rows) == 1
    assert rows[0].envelope_to == [REPLY, SUPPORT]
    with factory() as session:
        job = session.exec(select(Job)).one()
    assert enqueued == [[job.id]]


def test_a_transaction_whose_every_recipient_is_refused_never_reaches_data(
    server: RunningServer, factory: sessionmaker[Session]
) -> None:
    """With no accepted RCPT, DATA is refused 503 and nothing is stored."""
    with server.client() as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            client.sendmail("ana@example.org", ["a@elsewhere.example"], message("none"))
        assert info.value.recipients["a@elsewhere.example"][0] == 550
        client.ehlo()
        client.mail("ana@example.org")
        assert client.docmd("DATA")[0] == 503
    assert stored(factory) == []


# --- size limits ----------------------------------------------------------------


def test_a_size_announced_in_mail_from_over_the_limit_is_refused_552_5_3_4_before_data(
    server: RunningServer, factory: sessionmaker[Session]
) -> None:
    """``MAIL FROM SIZE=`` above the limit gets 552 5.3.4; the session stays usable."""
    with server.client() as client:
        client.ehlo()
        assert client.esmtp_features["size"] == str(MAX_SIZE)
        code, text = client.mail("ana@example.org", [f"SIZE={MAX_SIZE + 1}"])
        assert (code, text[:6]) == (552, b"5.3.4 ")
        # No envelope was started: RCPT needs a MAIL first.
        assert client.rcpt(REPLY)[0] == 503
        assert client.mail("ana@example.org", [f"SIZE={MAX_SIZE}"])[0] == 250
        assert client.rcpt(REPLY)[0] == 250
        assert client.data(message("fits"))[0] == 250
    assert [row.raw for row in stored(factory)] == [message("fits")]


def test_a_message_growing_past_the_limit_during_data_gets_552_5_3_4_and_is_not_stored(
    server: RunningServer, factory: sessionmaker[Session]
) -> None:
    """Without SIZE, the server counts DATA bytes: 552 5.3.4 after the dot, no row, no job."""
    with server.client() as client:
        client.ehlo()
        assert client.mail("ana@example.org")[0] == 250
        assert client.rcpt(REPLY)[0] == 250
        code, text = client.data(message("big", b"x" * 76 + b"\r\n") * (MAX_SIZE // 80 + 10))
        assert (code, text[:6]) == (552, b"5.3.4 ")
        # The refusal ends the transaction cleanly; the next one on the same session works.
        assert client.sendmail("ana@example.org", [REPLY], message("after")) == {}
    assert [row.raw for row in stored(factory)] == [message("after")]
    with factory() as session:
        assert len(session.exec(select(Job)).all()) == 1
    assert server.writer.messages == 1


# --- pipelining -----------------------------------------------------------------


def read_replies(sock: socket.socket, count: int) -> list[str]:
    """Read ``count`` complete SMTP replies from ``sock``; a multi-line reply is one
    string with its lines joined by newlines."""
    buffer = b""
    replies: list[str] = []
    lines: list[str] = []
    while len(replies) < count:
        while b"\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {replies!r}")
            buffer += chunk
        line, buffer = buffer.split(b"\r\n", 1)
        lines.append(line.decode())
        if line[3:4] != b"-":  # "NNN-" continues a reply, "NNN " ends it
            replies.append("\n".join(lines))
            lines = []
    assert buffer == b"", f"more replies than expected: {buffer!r}"
    return replies


def test_pipelining_is_not_advertised_but_a_pipelined_client_gets_every_reply_in_order(
    server: RunningServer, factory: sessionmaker[Session]
) -> None:
    """aiosmtpd 1.4 does not offer PIPELINING (RFC 2920). Clients that pipeline anyway
    (some do, after EHLO) are served correctly: the server reads one line at a time
    from its buffer, so MAIL/RCPT/RCPT/RCPT/DATA in one write get five replies, in order,
    and the bad recipient in the middle does not disturb the others.
    """
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert read_replies(sock, 1)[0].startswith("220 ")
        sock.sendall(b"EHLO client.example\r\n")
        (ehlo,) = read_replies(sock, 1)
        keywords = {line[4:].split(" ")[0].upper() for line in ehlo.splitlines()[1:]}
        assert "PIPELINING" not in keywords
        assert {"SIZE", "8BITMIME", "SMTPUTF8"} <= keywords

        sock.sendall(
            b"MAIL FROM:<ana@example.org>\r\n"
            b"RCPT TO:<" + REPLY.encode() + b">\r\n"
            b"RCPT TO:<nobody@elsewhere.example>\r\n"
            b"RCPT TO:<" + SUPPORT.encode() + b">\r\n"
            b"DATA\r\n"
        )
        replies = read_replies(sock, 5)
        assert [r[:3] for r in replies] == ["250", "250", "550", "250", "354"]
        assert replies[2].startswith("550 5.1.1 <nobody@elsewhere.example>")
        # RFC 2920: DATA ends a group, so the body waits for 354; the end of data
        # and the next transaction's commands go in one write again.
        sock.sendall(
            message("pipelined")
            + b".\r\n"
            + b"MAIL FROM:<bo@example.org>\r\nRCPT TO:<"
            + SUPPORT.encode()
            + b">\r\nDATA\r\n"
        )
        replies = read_replies(sock, 4)
        assert [r[:3] for r in replies] == ["250", "250", "250", "354"]
        assert replies[0].startswith("250 2.0.0 OK queued as ")
        sock.sendall(message("second") + b".\r\nQUIT\r\n")
        replies = read_replies(sock, 2)
        assert [r[:3] for r in replies] == ["250", "221"]
    rows = stored(factory)
    assert [row.raw for row in rows] == [message("pipelined"), message("second")]
    assert rows[0].envelope_to == [REPLY, SUPPORT]
    assert rows[1].envelope_from == "bo@example.org"
    assert replies[0] == f"250 2.0.0 OK queued as {rows[1].id}"


# --- 8-bit and SMTPUTF8 ----------------------------------------------------------


def test_8bit_bodies_and_raw_utf8_headers_sent_with_smtputf8_are_stored_byte_for_byte(
    server: RunningServer, factory: sessionmaker[Session]
) -> None:
    """RFC 6531/6532 mail: UTF-8 addresses and headers, an 8-bit body that is not even
    valid UTF-8 in one part, and a line starting with a dot (dot-stuffed on the wire).
    The row holds exactly the bytes the client meant, and the UTF-8 envelope."""
    raw = (
        "From: Zoë Ångström <zoë@exämple.org>\r\n"
        "To: Über Billing <billing@example.com>\r\n"
        "Subject: Rechnung Nr. 42 — bitte prüfen ✓\r\n"
        "Message-ID: <smtputf8-1@exämple.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Grüße aus Köln, 請求書, счёт.\r\n"
        ".a line that starts with a dot\r\n"
        "..two dots\r\n"
    ).encode() + b"latin-1 in an 8-bit body: caf\xe9\r\n"
    with server.client() as client:
        client.ehlo()
        assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
        refused = client.sendmail(
            "zoë@exämple.org",
            ["Ünïcode@reply.example.com"],
            raw,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
    assert refused == {}
    (row,) = stored(factory)
    assert row.raw == raw
    assert row.size == len(raw)
    assert row.envelope_from == "zoë@exämple.org"
    assert row.envelope_to == ["Ünïcode@reply.example.com"]


# --- clients that go away -----------------------------------------------------------


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_a_client_that_disconnects_mid_data_leaves_nothing_and_the_next_client_is_served(
    server: RunningServer, factory: sessionmaker[Session], how: str
) -> None:
    """Half a message then a close (FIN) or a reset (RST): no row, no job, no 250 owed;
    the server keeps serving: the next client's message is stored."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        assert read_replies(sock, 1)[0].startswith("220 ")
        sock.sendall(b"HELO client.example\r\n")
        assert read_replies(sock, 1)[0].startswith("250 ")
        sock.sendall(b"MAIL FROM:<ana@example.org>\r\nRCPT TO:<" + REPLY.encode() + b">\r\n")
        assert [r[:3] for r in read_replies(sock, 2)] == ["250", "250"]
        sock.sendall(b"DATA\r\n")
        assert read_replies(sock, 1)[0].startswith("354 ")
        sock.sendall(message("cut off", b"first half of the body\r\n" * 200) + b"no newline yet")
        time.sleep(0.1)  # let the server read what was sent before we vanish
        if how == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()
    with server.client() as client:
        assert client.sendmail("bo@example.org", [REPLY], message("next")) == {}
    assert [row.raw for row in stored(factory)] == [message("next")]
    with factory() as session:
        assert len(session.exec(select(Job)).all()) == 1
    assert server.writer.messages == 1


# --- STARTTLS -------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    """PEM files as an operator would configure them (BILLBOX_SMTP_TLS_CERT / _KEY)."""
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    issued.cert_chain_pems[0].write_to_path(cert)
    for pem in issued.cert_chain_pems[1:]:
        pem.write_to_path(cert, append=True)
    issued.private_key_pem.write_to_path(key)
    return cert, key


@pytest.fixture
def tls_server(
    factory: sessionmaker[Session], enqueued: list[list[int]], cert_files: tuple[Path, Path]
) -> Iterator[RunningServer]:
    running = RunningServer.start(factory, server_tls_context(*cert_files))
    yield running
    running.stop()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_with_a_certificate_starttls_is_offered_and_mail_sent_after_it_is_stored(
    tls_server: RunningServer, factory: sessionmaker[Session], ca: trustme.CA
) -> None:
    """EHLO offers STARTTLS; the handshake verifies against the CA (TLS 1.2 or newer);
    the second EHLO no longer offers it, nor AUTH; mail sent encrypted is committed."""
    with tls_server.client() as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        code, _ = client.starttls(context=client_context(ca))
        assert code == 220
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.ehlo()
        assert not client.has_extn("starttls")
        assert not client.has_extn("auth")
        assert client.has_extn("size") and client.has_extn("smtputf8")
        assert client.sendmail("ana@example.org", [REPLY], message("over tls")) == {}
        assert client.docmd("AUTH", "PLAIN AGFuYQBzZWNyZXQ=")[0] == 504
    assert [row.raw for row in stored(factory)] == [message("over tls")]


def test_with_a_certificate_starttls_is_optional_and_plaintext_mail_is_still_accepted(
    tls_server: RunningServer, factory: sessionmaker[Session]
) -> None:
    """An MX must take mail from senders that cannot encrypt: STARTTLS is offered,
    never required."""
    with tls_server.client() as client:
        assert client.sendmail("ana@example.org", [REPLY], message("plain")) == {}
    assert [row.raw for row in stored(factory)] == [message("plain")]


def test_a_client_that_does_not_trust_the_certificate_fails_the_handshake_and_nothing_is_stored(
    tls_server: RunningServer, factory: sessionmaker[Session]
) -> None:
    """STARTTLS with a client that trusts another CA fails verification; the server
    survives and serves the next client."""
    with tls_server.client() as client:
        client.ehlo()
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(context=client_context(trustme.CA()))
    with tls_server.client() as client:
        assert client.sendmail("ana@example.org", [REPLY], message("next")) == {}
    assert [row.raw for row in stored(factory)] == [message("next")]


def test_without_a_certificate_starttls_is_neither_advertised_nor_accepted(
    server: RunningServer,
) -> None:
    """No certificate configured: EHLO has no STARTTLS, and the command is refused."""
    with server.client() as client:
        client.ehlo()
        assert not client.has_extn("starttls")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            client.starttls()
        code, _ = client.docmd("STARTTLS")
        assert code == 454  # aiosmtpd: "TLS not available"
        assert client.noop()[0] == 250


def test_server_tls_context_requires_tls_1_2_and_asks_for_no_client_certificate(
    cert_files: tuple[Path, Path],
) -> None:
    """The context built from the PEM files refuses TLS 1.0/1.1 and does not demand
    client certificates (sending MTAs rarely have one)."""
    context = server_tls_context(*cert_files)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_server_tls_context_refuses_a_key_that_does_not_belong_to_the_certificate(
    ca: trustme.CA, cert_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A mismatched key pair fails at startup, not at a sender's first STARTTLS."""
    cert, _ = cert_files
    other_key = tmp_path / "other.key"
    ca.issue_cert("other.example").private_key_pem.write_to_path(other_key)
    with pytest.raises(ssl.SSLError):
        server_tls_context(cert, other_key)
    with pytest.raises(FileNotFoundError):
        server_tls_context(tmp_path / "missing.crt", other_key)


# --- stopping -------------------------------------------------------------------


def test_stopping_answers_the_message_being_stored_and_refuses_new_data_with_421(
    factory: sessionmaker[Session], enqueued: list[list[int]]
) -> None:
    """``close()`` stops listening and answers 421 to a new DATA on an open session;
    ``wait_closed()`` returns only after the message already being stored got its 250,
    so nothing committed during shutdown is left unanswered (and sent twice)."""
    release = threading.Event()
    writer = GroupCommitStore(factory)

    def slow_store(raw: bytes, mail_from: str, rcpts: Sequence[str]) -> int:
        release.wait(10)
        return writer.store(raw, mail_from, rcpts)

    running = RunningServer.start(factory, store=slow_store)
    pool = ThreadPoolExecutor(1)
    idle = running.client()
    try:
        idle.ehlo()

        def send_first() -> dict[str, tuple[int, bytes]]:
            with running.client() as client:
                return client.sendmail("a@example.org", [REPLY], message("first"))

        first = pool.submit(send_first)
        wait_for(lambda: running.server.in_progress == 1, "the first DATA to start")

        async def close() -> None:
            running.server.close()

        running.call(close())
        stopped = asyncio.run_coroutine_threadsafe(running.server.wait_closed(), running.loop)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", running.port), timeout=2)
        assert idle.mail("b@example.org")[0] == 250
        assert idle.rcpt(REPLY)[0] == 250
        assert idle.docmd("DATA") == (421, b"4.3.2 Service shutting down, try again later")
        time.sleep(0.2)
        assert not stopped.done(), "wait_closed returned while a message was being stored"
        release.set()
        assert first.result(10) == {}
        stopped.result(10)
    finally:
        release.set()
        idle.close()
        pool.shutdown()
        writer.close()
        running.stop()
    assert [row.raw for row in stored(factory)] == [message("first")]


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
