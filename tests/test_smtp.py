"""Inbound SMTP: a real aiosmtpd server, talked to with smtplib, storing into the real DB."""

from __future__ import annotations

import smtplib
import socket
import threading
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from billbox.jobs import install_enqueuer
from billbox.models import InboundMessage, InboundSource, InboundState, Job
from mailbridge import InboundSMTPHandler, RecipientPolicy, store_inbound
from mailbridge.smtp import smtp_factory

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Controller(Controller):
    def __init__(self, handler, max_size):
        self._max_size = max_size
        super().__init__(handler, hostname="127.0.0.1", port=free_port())

    def factory(self):
        return smtp_factory(self.handler, max_size=self._max_size)()


@pytest.fixture
def smtp_server(factory):
    sent: list[list[int]] = []
    install_enqueuer(factory, lambda ids, delay=0.0: sent.append(list(ids)))
    fail = threading.Event()

    def store(raw, mail_from, rcpts):
        if fail.is_set():
            raise OSError("disk full")
        return store_inbound(
            factory, raw, source=InboundSource.SMTP, envelope_from=mail_from, envelope_to=rcpts
        )

    policy = RecipientPolicy.of("reply.example.com", ["billing@example.com"])
    controller = _Controller(InboundSMTPHandler(store, policy), max_size=1024 * 1024)
    controller.start()
    controller.fail = fail
    controller.sent = sent
    yield controller
    controller.stop()


def connect(server) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.port, timeout=10)


def test_an_accepted_message_is_committed_before_250(smtp_server, factory):
    """After 250 the raw bytes are in the database, byte for byte, with a queued job."""
    raw = (
        b"From: Ana <ana@example.org>\r\nTo: r-1@reply.example.com\r\nSubject: hi\r\n\r\nhello\r\n"
    )
    with connect(smtp_server) as client:
        assert client.sendmail("ana@example.org", ["r-1@reply.example.com"], raw) == {}
    with factory() as session:
        row = session.exec(select(InboundMessage)).one()
        assert row.raw.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
        assert row.state == InboundState.RECEIVED
        assert row.envelope_to == ["r-1@reply.example.com"]
        job = session.exec(select(Job)).one()
        assert job.payload == {"inbound_message_id": row.id}
    assert smtp_server.sent == [[job.id]]


def test_unknown_recipients_get_550_and_support_addresses_are_accepted(smtp_server):
    """RCPT for other domains is refused 550 5.1.1; a configured support address is taken."""
    with connect(smtp_server) as client:
        client.ehlo()
        client.mail("x@example.org")
        code, message = client.rcpt("someone@elsewhere.example")
        assert code == 550 and b"5.1.1" in message
        code, _ = client.rcpt("Billing@Example.com")
        assert code == 250


def test_a_store_failure_answers_451_so_the_sender_retries(smtp_server, factory):
    """If the database write fails the server answers 451 4.3.0 and nothing is half-stored."""
    smtp_server.fail.set()
    with connect(smtp_server) as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail("x@example.org", ["r@reply.example.com"], b"Subject: x\r\n\r\nbody")
    assert info.value.smtp_code == 451
    with factory() as session:
        assert session.exec(select(InboundMessage)).all() == []


def test_the_size_limit_is_announced_and_enforced(smtp_server):
    """EHLO announces SIZE; a bigger message is refused with 552."""
    with connect(smtp_server) as client:
        client.ehlo()
        assert client.has_extn("size") and client.esmtp_features["size"] == str(1024 * 1024)
        assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
        with pytest.raises(smtplib.SMTPException) as info:
            client.sendmail(
                "x@example.org",
                ["r@reply.example.com"],
                b"Subject: big\r\n\r\n" + b"x" * (1100 * 1024),
            )
    assert "552" in str(info.value) and "5.3.4" in str(info.value)


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpora not beside the repository")
def test_corpus_messages_are_stored_byte_for_byte(smtp_server, factory):
    """Real messages from the shared corpus (8-bit, bad encodings) survive untouched."""
    names = [
        "flanker/8bitmime.eml",
        "flanker/enclosed-bad-encoding.eml",
        "flanker/russian-attachment-yahoo.eml",
        "mimekit/japanese.eml",
    ]
    sent = []
    with connect(smtp_server) as client:
        for name in names:
            raw = (CORPUS / "bounces_autoreplies" / name).read_bytes()
            raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            # smtplib dot-stuffs; the server un-stuffs: what arrives is what we sent.
            client.sendmail("x@example.org", ["r@reply.example.com"], raw)
            sent.append(raw)
    with factory() as session:
        stored = [m.raw for m in session.exec(select(InboundMessage).order_by(InboundMessage.id))]
    assert [s.rstrip(b"\r\n") for s in stored] == [s.rstrip(b"\r\n") for s in sent]


def test_group_commit_stores_every_concurrent_message_once(factory):
    """Twenty concurrent senders: every 250 is backed by a row, commits are grouped."""
    from concurrent.futures import ThreadPoolExecutor

    from mailbridge.group_commit import GroupCommitStore

    install_enqueuer(factory, lambda ids, delay=0.0: None)
    writer = GroupCommitStore(factory)
    policy = RecipientPolicy.of("reply.example.com", [])
    controller = _Controller(InboundSMTPHandler(writer.store_async, policy), max_size=1 << 20)
    controller.start()

    def send(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
            for i in range(10):
                body = f"From: s{n}@example.org\r\nSubject: {n}-{i}\r\n\r\nbody {n}-{i}"
                client.sendmail(f"s{n}@example.org", ["r@reply.example.com"], body.encode())

    try:
        with ThreadPoolExecutor(20) as pool:
            list(pool.map(send, range(20)))
    finally:
        controller.stop()
        writer.close()
    with factory() as session:
        subjects = sorted(
            m.raw.split(b"Subject: ")[1].split(b"\r\n")[0]
            for m in session.exec(select(InboundMessage))
        )
        assert len(session.exec(select(Job)).all()) == 200
    assert subjects == sorted(f"{n}-{i}".encode() for n in range(20) for i in range(10))
    assert writer.messages == 200 and writer.groups <= 200


def test_messages_waiting_behind_a_commit_are_committed_as_one_group(factory):
    """While one commit is in progress, everything that arrives is committed together."""
    import threading

    from mailbridge.group_commit import GroupCommitStore

    install_enqueuer(factory, lambda ids, delay=0.0: None)
    gate = threading.Event()

    def slow_factory():
        gate.wait(5)  # the first group's commit is slow; the rest queue up behind it
        return factory()

    writer = GroupCommitStore(slow_factory)  # type: ignore[arg-type]
    futures = [
        writer.submit(f"Subject: {i}\r\n\r\nx".encode(), "x@example.org", ["r@reply.example.com"])
        for i in range(50)
    ]
    gate.set()
    ids = [f.result(timeout=10) for f in futures]
    writer.close()
    assert len(set(ids)) == 50
    assert writer.groups <= 2 and writer.messages == 50


def test_a_failed_group_commit_answers_451_to_each_sender(factory):
    """When the group's transaction fails, every sender in it gets 451 and nothing is stored."""
    from mailbridge.group_commit import GroupCommitStore

    def broken_factory():
        raise OSError("database gone")

    writer = GroupCommitStore(broken_factory)  # type: ignore[arg-type]
    controller = _Controller(
        InboundSMTPHandler(writer.store_async, RecipientPolicy.of("reply.example.com", [])),
        max_size=1 << 20,
    )
    controller.start()
    try:
        with (
            smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client,
            pytest.raises(smtplib.SMTPDataError) as info,
        ):
            client.sendmail("x@example.org", ["r@reply.example.com"], b"Subject: x\r\n\r\nb")
    finally:
        controller.stop()
        writer.close()
    assert info.value.smtp_code == 451


def test_a_batch_of_inbound_records_gets_one_row_and_job_each(factory):
    """insert_inbound_many: each record's id points at its own bytes and its own job."""
    from mailbridge.inbound_store import InboundRecord, insert_inbound_many

    install_enqueuer(factory, lambda ids, delay=0.0: None)
    records = [
        InboundRecord(
            raw=f"Subject: {i}\r\n\r\nbody {i}".encode(),
            source=InboundSource.SMTP,
            envelope_from="x@example.org",
            envelope_to=["r@reply.example.com"],
        )
        for i in range(120)
    ]
    with factory() as session:
        ids = insert_inbound_many(session, records)
        session.commit()
    with factory() as session:
        for inbound_id, record in zip(ids, records, strict=True):
            assert session.get(InboundMessage, inbound_id).raw == record.raw
        jobs = {j.payload["inbound_message_id"] for j in session.exec(select(Job))}
    assert jobs == set(ids)
