"""``billbox smtp`` killed with SIGKILL under load: every 250 it gave is on disk, once.

This is the promise of ``mailbridge/group_commit.py`` tested from outside:
a real ``billbox smtp`` process, ten clients sending as fast as they can,
``kill -9`` mid-stream, a restart, and then a look at the database. A
message that got 250 must be there exactly once; a message that did not may
be there (committed, killed before the 250 went out; a real sender would
retry it: SMTP's at-least-once window, RFC 5321 section 6.1) but never twice.

SIGTERM is stricter: a graceful stop answers every message it committed,
so nothing is stored without its 250 and no sender has a reason to resend.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from billbox.models import InboundMessage
from workers.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.slow

CLIENTS = 10
MESSAGE_ID = re.compile(rb"^Message-ID: <([^>]+)>\r?$", re.MULTILINE | re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class SmtpProcess:
    """``billbox smtp`` as the Procfile runs it, logging to a file beside the test."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "billbox", "smtp"],
                env=self.env,
                cwd=self.log_path.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.greets, 30, "billbox smtp to answer")

    def greets(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"billbox smtp exited with {self.process.returncode}")
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as client:
                return client.noop()[0] == 250
        except OSError:
            return False

    def signal(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=15)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture
def smtp_process(database_url: str, tmp_path: Path) -> Iterator[SmtpProcess]:
    var_dir = tmp_path / "var"
    env = dict(
        os.environ,
        BILLBOX_DATABASE_URL=database_url,
        BILLBOX_VAR_DIR=str(var_dir),
        BILLBOX_BROKER_URL="embedded",
        BILLBOX_SECRET_KEY="subprocess-test-secret",
        BILLBOX_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
        BILLBOX_REPLY_DOMAIN="reply.test",
        BILLBOX_LOG_LEVEL="WARNING",
    )
    port = int(env["BILLBOX_SMTP_LISTEN"].rsplit(":", 1)[1])
    server = SmtpProcess(env, port, tmp_path / "smtp.log")
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait()
        # `billbox smtp` started the embedded broker as a daemon; it outlives SIGKILL.
        EmbeddedRedis(var_dir).stop()
        print(server.log_tail())


@dataclass
class Senders:
    """Client threads sending uniquely identified messages until told to stop."""

    port: int
    acked: set[str] = field(default_factory=set)
    attempted: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int) -> None:
        for n in range(clients):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)
            assert not thread.is_alive(), "a sender thread hung"

    def send(self, client: smtplib.SMTP, message_id: str) -> None:
        raw = (
            f"From: s@example.org\r\nTo: r@reply.test\r\nMessage-ID: <{message_id}>\r\n"
            f"Subject: {message_id}\r\n\r\nbody of {message_id}\r\n"
        ).encode()
        with self.lock:
            self.attempted.add(message_id)
        client.sendmail("s@example.org", ["r@reply.test"], raw)  # raises unless 250
        with self.lock:
            self.acked.add(message_id)

    def _run(self, n: int) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                    while not self.stop.is_set():
                        i += 1
                        self.send(client, f"kill-{n}-{i}@test")
            except (OSError, smtplib.SMTPException):
                time.sleep(0.01)  # the server is gone (or going); try again until told to stop


def stored_message_ids(factory: sessionmaker[Session]) -> Counter[str]:
    with factory() as session:
        raws = session.exec(select(InboundMessage.raw)).all()
    ids: Counter[str] = Counter()
    for raw in raws:
        match = MESSAGE_ID.search(raw)
        assert match is not None, raw[:200]
        ids[match.group(1).decode()] += 1
    return ids


def under_load(smtp_process: SmtpProcess, signum: int) -> tuple[Senders, int]:
    """Start the server, let ten clients send for about 1.5 s, send it ``signum``;
    return the senders (stopped) and the server's exit status."""
    smtp_process.start()
    senders = Senders(smtp_process.port)
    senders.start(CLIENTS)
    wait_for(lambda: len(senders.acked) >= 50, 15, "50 messages to be accepted")
    time.sleep(1.0)
    status = smtp_process.signal(signum)
    senders.join()
    return senders, status


def test_every_message_answered_250_survives_a_kill_9_exactly_once(
    smtp_process: SmtpProcess, factory: sessionmaker[Session]
) -> None:
    """Ten clients send flat out; SIGKILL after ~1.5 s; after a restart and a few more
    messages, each message that got 250 is stored once and nothing is stored twice."""
    senders, status = under_load(smtp_process, signal.SIGKILL)
    assert status == -signal.SIGKILL
    acked_before_kill = set(senders.acked)
    in_flight = senders.attempted - acked_before_kill

    smtp_process.start()
    with smtplib.SMTP("127.0.0.1", smtp_process.port, timeout=10) as client:
        for i in range(5):
            senders.send(client, f"after-restart-{i}@test")
    assert smtp_process.signal(signal.SIGTERM) == 0

    stored = stored_message_ids(factory)
    missing = senders.acked - set(stored)
    duplicated = {mid: count for mid, count in stored.items() if count > 1}
    assert not missing, f"{len(missing)} messages got 250 but are not stored: {sorted(missing)}"
    assert not duplicated, f"stored more than once: {duplicated}"
    assert set(stored) <= senders.attempted
    # Committed but killed before the 250 went out: at most one group per client.
    unacked_but_stored = set(stored) - senders.acked
    assert unacked_but_stored <= in_flight
    assert len(unacked_but_stored) <= CLIENTS
    print(
        f"acked before kill: {len(acked_before_kill)}, in flight at kill: {len(in_flight)}, "
        f"stored without a 250: {len(unacked_but_stored)}"
    )


@contextmanager
def inbound_writes_blocked(engine: Engine) -> Iterator[None]:
    """Hold a lock that makes the server's next commit of inbound messages wait."""
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            table = InboundMessage.__tablename__
            conn.exec_driver_sql(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')
        else:  # every Billbox SQLite transaction is BEGIN IMMEDIATE: the write lock is ours
            conn.exec_driver_sql("SELECT 1")
        yield


def test_sigterm_answers_every_message_committed_while_it_stops(
    smtp_process: SmtpProcess, factory: sessionmaker[Session], engine: Engine
) -> None:
    """SIGTERM arrives while every client's message waits on a slow commit: the server
    stops listening, lets that commit finish, answers all ten 250, and exits 0. The
    stored messages are exactly the ones answered 250, each once; a message committed
    but cut off before its 250 would be sent again by its sender."""
    smtp_process.start()
    senders = Senders(smtp_process.port)
    senders.start(CLIENTS)
    wait_for(lambda: len(senders.acked) >= 50, 15, "50 messages to be accepted")
    with inbound_writes_blocked(engine):
        previous = -1
        while previous != len(senders.acked):  # until every client waits for its 250
            previous = len(senders.acked)
            time.sleep(0.5)
        assert smtp_process.process is not None
        smtp_process.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert smtp_process.process.poll() is None, "exited before its last commit"
    assert smtp_process.process.wait(timeout=10) == 0
    senders.join()
    assert len(senders.acked) == previous + CLIENTS
    stored = stored_message_ids(factory)
    assert {mid: n for mid, n in stored.items() if n > 1} == {}
    assert sorted(senders.acked - set(stored)) == [], "answered 250 but not stored"
    assert sorted(set(stored) - senders.acked) == [], "stored but never answered 250"
