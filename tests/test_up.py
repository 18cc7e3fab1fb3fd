"""`billbox up` as a user runs it: a real process group answering HTTP and SMTP."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from sqlmodel import select

from billbox.models import InboundMessage, InboundState


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def healthz(port: int):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def children_of(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


@pytest.mark.slow
def test_up_serves_healthz_accepts_smtp_and_stops_on_sigterm(database_url, factory, tmp_path):
    """Health is ok, a message sent over SMTP gets processed, SIGTERM stops all within 10 s."""
    web_port, smtp_port = free_port(), free_port()
    env = dict(
        os.environ,
        BILLBOX_DATABASE_URL=database_url,
        BILLBOX_VAR_DIR=str(tmp_path / "var"),
        BILLBOX_SECRET_KEY="subprocess-test-secret",
        BILLBOX_WEB_LISTEN=f"127.0.0.1:{web_port}",
        BILLBOX_SMTP_LISTEN=f"127.0.0.1:{smtp_port}",
        BILLBOX_REPLY_DOMAIN="reply.test",
        BILLBOX_WEB_WORKERS="1",
        BILLBOX_LOG_LEVEL="WARNING",
    )
    env.pop("BILLBOX_BROKER_URL", None)
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115 - closed in finally
    up = subprocess.Popen(
        [sys.executable, "-m", "billbox", "up"],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        health = wait_for(lambda: healthz(web_port), 60, "/healthz")
        assert health == {"status": "ok", "database": "ok", "broker": "ok"}
        children = children_of(up.pid)
        assert len(children) == 4  # broker, web, smtp, worker
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.sendmail(
                "ana@example.org",
                ["r-1@reply.test"],
                b"From: ana@example.org\r\nMessage-ID: <up@test>\r\n\r\nhello",
            )

        def processed():
            with factory() as session:
                row = session.exec(select(InboundMessage)).first()
                return row is not None and row.state == InboundState.PROCESSED

        wait_for(processed, 30, "the worker to process the message")
        started = time.monotonic()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
        wait_for(lambda: not any(alive(pid) for pid in children), 2, "children to exit")
    finally:
        if up.poll() is None:
            up.kill()
        log.close()
        print((tmp_path / "up.log").read_text(errors="replace")[-3000:])


@pytest.mark.slow
def test_up_restarts_a_crashed_child(database_url, tmp_path):
    """A child killed from outside is restarted by the supervisor."""
    web_port, smtp_port = free_port(), free_port()
    env = dict(
        os.environ,
        BILLBOX_DATABASE_URL=database_url,
        BILLBOX_VAR_DIR=str(tmp_path / "var"),
        BILLBOX_SECRET_KEY="subprocess-test-secret",
        BILLBOX_WEB_LISTEN=f"127.0.0.1:{web_port}",
        BILLBOX_SMTP_LISTEN=f"127.0.0.1:{smtp_port}",
        BILLBOX_WEB_WORKERS="1",
        BILLBOX_LOG_LEVEL="INFO",
    )
    env.pop("BILLBOX_BROKER_URL", None)
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "billbox", "up"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: healthz(web_port), 60, "/healthz")

            def smtp_pid():
                for pid in children_of(up.pid):
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if f.read().split(b"\0")[-2:-1] == [b"smtp"]:
                            return pid
                return None

            first = wait_for(smtp_pid, 10, "the smtp child")
            os.kill(first, signal.SIGKILL)
            second = wait_for(lambda: (p := smtp_pid()) and p != first and p, 15, "a restart")
            assert second != first
            wait_for(lambda: b"child_exited" in log_path.read_bytes(), 5, "a log line")
            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=10) == 0
        finally:
            if up.poll() is None:
                up.kill()
