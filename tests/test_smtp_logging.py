"""The SMTP session's log context: bound once per connection, not once per message."""

from __future__ import annotations

import logging
import smtplib

import structlog
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.jobs import install_enqueuer
from mailbridge import GroupCommitStore, InboundSMTPHandler, RecipientPolicy
from mailbridge import smtp as smtp_module
from tests.test_smtp import _Controller


def test_each_connection_logs_its_messages_under_its_own_correlation_id_and_peer(
    factory: sessionmaker[Session], monkeypatch, caplog
) -> None:
    """Two messages on one connection share a correlation id; another connection has its own."""
    # The accept line is built only when INFO is on; an earlier test may have set WARNING,
    # and a CLI test may have configured structlog to cache loggers (capture_logs cannot
    # see a cached one): a fresh logger at INFO for this test.
    caplog.set_level(logging.INFO, logger="mailbridge.smtp")  # setLevel clears level caches
    monkeypatch.setattr(smtp_module, "log", structlog.stdlib.get_logger("mailbridge.smtp"))
    install_enqueuer(factory, lambda ids, delay=0.0: None)
    writer = GroupCommitStore(factory)
    handler = InboundSMTPHandler(writer.store_async, RecipientPolicy.of("reply.example.com", []))
    controller = _Controller(handler, max_size=1 << 20)
    controller.start()
    raw = b"Subject: hi\r\n\r\nhello\r\n"
    try:
        with structlog.testing.capture_logs(
            processors=[structlog.contextvars.merge_contextvars]
        ) as logs:
            for count in (2, 1):
                with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as client:
                    local_port = client.sock.getsockname()[1]
                    for _ in range(count):
                        client.sendmail("a@example.org", ["r@reply.example.com"], raw)
                        logs.append({"event": "sent", "local_port": local_port})
    finally:
        controller.stop()
        writer.close()
    accepted = [entry for entry in logs if entry["event"] == "smtp_accepted"]
    assert len(accepted) == 3
    first, second, third = accepted
    assert first["correlation_id"] == second["correlation_id"] != third["correlation_id"]
    ports = [entry["local_port"] for entry in logs if entry["event"] == "sent"]
    assert f", {ports[0]})" in first["smtp_peer"]
    assert f", {ports[2]})" in third["smtp_peer"]
    assert structlog.contextvars.get_contextvars() == {}
