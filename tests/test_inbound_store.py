"""The group writer's rows: written on the driver's cursor, read back like SQLAlchemy's own.

``insert_inbound_many`` (SMTP's group commit) bypasses SQLAlchemy's execution
for speed, ``insert_inbound`` (IMAP, the billing page) does not; both must
leave the same row. The writer keeps one connection between groups and must
get a new one after a failure.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from billbox.jobs import install_enqueuer
from billbox.models import InboundMessage, InboundSource, Job
from mailbridge.group_commit import GroupCommitStore
from mailbridge.inbound_store import InboundRecord, insert_inbound, insert_inbound_many

RAW = "From: Zoë <z@example.org>\r\nSubject: ü\r\n\r\nbody\r\n".encode()


def test_a_row_written_on_the_driver_reads_back_like_one_written_by_sqlalchemy(
    factory: sessionmaker[Session],
) -> None:
    """Every column of the driver's row equals the Core path's, timestamps still UTC-aware."""
    sent: list[list[int]] = []
    install_enqueuer(factory, lambda ids, delay=0.0: sent.append(list(ids)))
    record = InboundRecord(RAW, InboundSource.SMTP, "z@example.org", ["r@reply.example.com"])
    with factory() as session:
        core_id = insert_inbound(session, record)
        driver_id = insert_inbound_many(session, [record])[0]
        session.commit()
    with factory() as session:
        core = session.get(InboundMessage, core_id)
        driver = session.get(InboundMessage, driver_id)
        assert core is not None and driver is not None
        skip = {"id", "received_at"}
        assert {k: v for k, v in driver.model_dump().items() if k not in skip} == {
            k: v for k, v in core.model_dump().items() if k not in skip
        }
        assert driver.received_at.utcoffset() is not None
        assert abs((driver.received_at - core.received_at).total_seconds()) < 5
        jobs = session.exec(select(Job).order_by(col(Job.id))).all()
        assert [job.payload for job in jobs] == [
            {"inbound_message_id": core_id},
            {"inbound_message_id": driver_id},
        ]
    assert sorted(i for ids in sent for i in ids) == [job.id for job in jobs]


def test_after_a_failed_group_the_writer_stores_the_next_one_on_a_new_connection(
    factory: sessionmaker[Session],
) -> None:
    """A group whose insert fails gets the error (451 upstream); the next group is stored."""
    install_enqueuer(factory, lambda ids, delay=0.0: None)
    writer = GroupCommitStore(factory)
    try:
        unstorable = writer.submit(RAW, "a@example.org", [object()])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            unstorable.result(timeout=10)
        inbound_id = writer.store(RAW, "b@example.org", ["r@reply.example.com"])
    finally:
        writer.close()
    with factory() as session:
        rows = session.exec(select(InboundMessage)).all()
    assert [(row.id, row.envelope_from) for row in rows] == [(inbound_id, "b@example.org")]


def test_a_writer_whose_postgresql_connection_was_killed_reconnects(
    factory: sessionmaker[Session],
) -> None:
    """The held connection dies (server restart, idle kill): one group fails, then all is well."""
    if factory.kw["bind"].dialect.name != "postgresql":
        pytest.skip("only PostgreSQL can end another session's connection")
    install_enqueuer(factory, lambda ids, delay=0.0: None)
    writer = GroupCommitStore(factory)
    try:
        first = writer.store(RAW, "a@example.org", ["r@reply.example.com"])
        with factory() as session:
            session.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        stored = [first]
        for _ in range(3):
            try:
                stored.append(writer.store(RAW, "b@example.org", ["r@reply.example.com"]))
            except sa.exc.SQLAlchemyError:
                continue
            except Exception as exc:  # the driver's own error for the dead connection
                assert "terminat" in str(exc) or "closed" in str(exc), exc
    finally:
        writer.close()
    assert len(stored) >= 3
    with factory() as session:
        ids = session.exec(select(InboundMessage.id)).all()
    assert sorted(ids) == sorted(stored)
