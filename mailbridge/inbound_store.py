"""Commit a received message's raw bytes and its processing job in one transaction.

This runs before the SMTP server answers 250 (and before the IMAP poller
flags a message), so an accepted message is always on disk with the job
that will process it.

The SMTP group writer (:mod:`mailbridge.group_commit`) inserts its group's
message rows with one statement on the driver's own cursor
(:func:`insert_inbound_many`): there SQLAlchemy's execution machinery
(statement cache, per-row parameter processing, insertmanyvalues batching,
result rows) cost more Python than the statement, and that Python holds the
GIL the SMTP event loop needs. The values still go through the columns' own
SQLAlchemy bind processors, so a row reads back exactly as if SQLAlchemy had
written it. Single messages (IMAP, the billing page) keep the Core path,
whose errors are SQLAlchemy's (the IMAP poller catches ``IntegrityError``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.db import transaction
from billbox.jobs import insert_returning_ids, submit_many
from billbox.models import InboundMessage, InboundSource, InboundState, utcnow
from mailbridge.pipeline import INBOUND_JOB


@dataclass(frozen=True)
class InboundRecord:
    """One received message as the servers hand it over, before it has a row."""

    raw: bytes
    source: InboundSource
    envelope_from: str
    envelope_to: list[str]
    mailbox: str = ""
    imap_uidvalidity: int | None = None
    imap_uid: int | None = None


_INBOUND: sa.Table = InboundMessage.__table__  # type: ignore[attr-defined]
_COLUMNS = (
    "source",
    "mailbox",
    "envelope_from",
    "envelope_to",
    "raw",
    "size",
    "sha256",
    "state",
    "rule_hits",
    "imap_uidvalidity",
    "imap_uid",
    "received_at",
)
# Rows per statement: 13 parameters or fewer each, well under SQLite's 32,766 and
# PostgreSQL's 65,535.
_CHUNK = 500


def _rows(records: Sequence[InboundRecord]) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "source": record.source,
            "mailbox": record.mailbox,
            "envelope_from": record.envelope_from[:254],
            "envelope_to": list(record.envelope_to),
            "raw": record.raw,
            "size": len(record.raw),
            "sha256": hashlib.sha256(record.raw).hexdigest(),
            "state": InboundState.RECEIVED,
            "rule_hits": {},
            "imap_uidvalidity": record.imap_uidvalidity,
            "imap_uid": record.imap_uid,
            "received_at": now,
        }
        for record in records
    ]


def insert_inbound_many(session: Session, records: Sequence[InboundRecord]) -> list[int]:
    """Add the message rows and their processing jobs to ``session`` (the caller commits).

    The message rows go in with one multi-row statement on the driver's
    cursor (:func:`_driver_insert`), the jobs with
    :func:`billbox.jobs.submit_many`, which keeps the jobs' contract: rows in
    this transaction, ids sent to the broker after its commit. Returns the
    message ids in the order of ``records``.
    """
    if not records:
        return []
    connection = session.connection()
    if connection.dialect.name in _DRIVER_INSERTS:
        ids = _driver_insert(connection, records)
    else:
        ids = insert_returning_ids(session, _INBOUND, _rows(records))
    # No dedupe key: the message rows are new, so their jobs are too (saves a SELECT).
    submit_many(session, INBOUND_JOB, [{"inbound_message_id": i} for i in ids])
    return ids


def _driver_insert(connection: sa.Connection, records: Sequence[InboundRecord]) -> list[int]:
    """Insert ``records`` on the DBAPI cursor of ``connection``'s transaction; ids in order."""
    dialect = connection.dialect
    bind = _bind_processors(dialect)
    # The same for every row of the group: converted once.
    state = bind["state"](InboundState.RECEIVED)
    rule_hits = bind["rule_hits"]({})
    received_at = bind["received_at"](utcnow())
    source, to_json, sha256 = bind["source"], bind["envelope_to"], hashlib.sha256
    rows = [
        (
            source(record.source),
            record.mailbox,
            record.envelope_from[:254],
            to_json(list(record.envelope_to)),
            record.raw,
            len(record.raw),
            sha256(record.raw).hexdigest(),
            state,
            rule_hits,
            record.imap_uidvalidity,
            record.imap_uid,
            received_at,
        )
        for record in records
    ]
    cursor = connection.connection.cursor()
    try:
        return _DRIVER_INSERTS[dialect.name](cursor, rows)
    finally:
        cursor.close()


def _sqlite_insert(cursor: Any, rows: list[tuple[Any, ...]]) -> list[int]:
    """``INSERT … VALUES (…), (…) RETURNING id``, the ids sorted.

    SQLite returns RETURNING rows in no promised order, but it inserts a
    ``VALUES`` list in order, each row getting ``max(rowid) + 1``, and our
    transaction holds the database's one write lock (``BEGIN IMMEDIATE``),
    so the ids of one statement ascend in row order.
    """
    ids: list[int] = []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        cursor.execute(_sqlite_sql(len(chunk)), [value for row in chunk for value in row])
        ids.extend(sorted(int(found[0]) for found in cursor.fetchall()))
    return ids


def _postgresql_insert(cursor: Any, rows: list[tuple[Any, ...]]) -> list[int]:
    """Take the ids from the table's sequence first, then insert the rows with them.

    PostgreSQL promises no order for RETURNING rows and other sessions draw
    from the same sequence concurrently, so the ids are drawn (one query)
    and given to the rows explicitly: no assumption about order remains.
    """
    cursor.execute(_PG_NEXTVAL, (len(rows),))
    ids = [int(found[0]) for found in cursor.fetchall()]
    for start in range(0, len(rows), _CHUNK):
        chunk = zip(ids[start : start + _CHUNK], rows[start : start + _CHUNK], strict=True)
        values = [value for inbound_id, row in chunk for value in (inbound_id, *row)]
        cursor.execute(_pg_sql(len(values) // (len(_COLUMNS) + 1)), values)
    return ids


_DRIVER_INSERTS: dict[str, Callable[[Any, list[tuple[Any, ...]]], list[int]]] = {
    "sqlite": _sqlite_insert,
    "postgresql": _postgresql_insert,
}
# Table and column names in the SQL below are our own constants; values are parameters.
_PG_NEXTVAL = (
    f"SELECT nextval(pg_get_serial_sequence('{_INBOUND.name}', 'id')) "  # noqa: S608
    "FROM generate_series(1, %s)"
)


@functools.lru_cache(maxsize=16)
def _bind_processors(dialect: Dialect) -> dict[str, Callable[[Any], Any]]:
    """Each column's SQLAlchemy bind processor for ``dialect`` (identity where it has none)."""

    def unchanged(value: Any) -> Any:
        return value

    processors: dict[str, Callable[[Any], Any]] = {}
    for name in _COLUMNS:
        column_type = _INBOUND.c[name].type
        processors[name] = column_type.dialect_impl(dialect).bind_processor(dialect) or unchanged
    return processors


@functools.lru_cache(maxsize=64)
def _sqlite_sql(count: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * len(_COLUMNS)) + ")"] * count)
    columns = ", ".join(_COLUMNS)
    return f"INSERT INTO {_INBOUND.name} ({columns}) VALUES {values} RETURNING id"  # noqa: S608


@functools.lru_cache(maxsize=64)
def _pg_sql(count: int) -> str:
    values = ", ".join(["(" + ", ".join(["%s"] * (len(_COLUMNS) + 1)) + ")"] * count)
    columns = ", ".join(_COLUMNS)
    return f"INSERT INTO {_INBOUND.name} (id, {columns}) VALUES {values}"  # noqa: S608


def insert_inbound(session: Session, record: InboundRecord) -> int:
    """Add one message row and its processing job to ``session`` (the caller commits).

    The Core path: a single row gains nothing from the driver's cursor, and
    callers (the IMAP poller) rely on SQLAlchemy's ``IntegrityError``.
    """
    ids = insert_returning_ids(session, _INBOUND, _rows([record]))
    submit_many(session, INBOUND_JOB, [{"inbound_message_id": i} for i in ids])
    return ids[0]


def store_inbound(
    factory: sessionmaker[Session],
    raw: bytes,
    *,
    source: InboundSource,
    envelope_from: str,
    envelope_to: Sequence[str],
    mailbox: str = "",
    imap_uidvalidity: int | None = None,
    imap_uid: int | None = None,
) -> int:
    """Store ``raw`` and queue its processing in one transaction; return the message id."""
    record = InboundRecord(
        raw, source, envelope_from, list(envelope_to), mailbox, imap_uidvalidity, imap_uid
    )
    with transaction(factory) as session:
        return insert_inbound(session, record)
