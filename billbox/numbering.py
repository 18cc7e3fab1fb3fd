"""Gapless document numbers per brand and series, taken in the caller's transaction.

A number is one ``UPDATE number_series SET next_value = next_value + 1 …
RETURNING`` on the series row. On PostgreSQL the UPDATE takes the row lock,
so a concurrent issuer waits at that statement until the first transaction
commits (and then reads the incremented value) or rolls back (and then
takes the same value again): the number belongs to the transaction that
inserts the document, a rollback gives it back, and no gap or duplicate can
appear. On SQLite every transaction already begins ``IMMEDIATE``
(``billbox.db``), which serialises writers for the whole transaction.

The series row is created on first use. Two issuers may both find it
missing; each INSERTs inside a savepoint, the unique constraint
(brand_id, series) lets exactly one win, and the loser's savepoint is rolled
back before it runs the UPDATE like everyone else.

Numbers do not restart each year: ``{year}`` in the format is the year of
issue, printed for the reader, and the sequence continues across years
(``INV-2026-000123`` is followed by ``INV-2027-000124``). That keeps one
counter per series and still satisfies "sequential, no gaps".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from billbox.errors import NumberingError
from billbox.models import DocumentKind, NumberSeries, utcnow

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_PREFIXES",
    "DocumentNumber",
    "NumberingError",
    "default_series",
    "format_number",
    "next_number",
]

DEFAULT_FORMAT = "{prefix}-{year}-{seq:06d}"
#: Prefix of a series created on first use; the series itself is named after the kind.
DEFAULT_PREFIXES = {
    DocumentKind.RECEIPT: "RCT",
    DocumentKind.INVOICE: "INV",
    DocumentKind.CREDIT_NOTE: "CN",
}
_MAX_NUMBER_LENGTH = 64

_SERIES: sa.Table = NumberSeries.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DocumentNumber:
    """What goes onto the document row: series name, sequence and the printed number."""

    series: str
    sequence: int
    number: str


def default_series(kind: DocumentKind) -> str:
    """The series a kind draws from unless the caller names another (the kind's value)."""
    return kind.value


def format_number(pattern: str, prefix: str, year: int, sequence: int) -> str:
    """Apply a series format (``{prefix}``, ``{year}``, ``{seq}``); NumberingError if bad."""
    try:
        number = pattern.format(prefix=prefix, year=year, seq=sequence)
    except (KeyError, IndexError, ValueError) as exc:
        raise NumberingError(
            f"number format {pattern!r} is not usable: {exc!r}; "
            "use the fields {prefix}, {year} and {seq}"
        ) from None
    if not number or len(number) > _MAX_NUMBER_LENGTH:
        raise NumberingError(
            f"number format {pattern!r} gives {number!r}; a number has 1-64 characters"
        )
    return number


def _take(session: Session, brand_id: int, series: str) -> tuple[int, str, str] | None:
    statement = (
        sa.update(_SERIES)
        .where(_SERIES.c.brand_id == brand_id, _SERIES.c.series == series)
        .values(next_value=_SERIES.c.next_value + 1)
        .returning(_SERIES.c.next_value, _SERIES.c.format, _SERIES.c.prefix)
    )
    row = session.connection().execute(statement).first()
    if row is None:
        return None
    return int(row[0]) - 1, str(row[1]), str(row[2])


def _create_series(session: Session, brand_id: int, series: str, kind: DocumentKind) -> None:
    """Insert the series row unless a concurrent transaction just did (savepoint)."""
    try:
        with session.begin_nested():
            session.connection().execute(
                sa.insert(_SERIES).values(
                    brand_id=brand_id,
                    series=series,
                    kind=kind,
                    format=DEFAULT_FORMAT,
                    prefix=DEFAULT_PREFIXES[kind],
                    next_value=1,
                )
            )
    except IntegrityError:
        pass  # another issuer created it; the UPDATE below waits for its commit


def next_number(
    session: Session,
    brand_id: int,
    kind: DocumentKind,
    *,
    series: str | None = None,
    issued_at: datetime | None = None,
) -> DocumentNumber:
    """Take the next number of (brand, series) inside ``session``'s transaction.

    The caller must insert the document and commit in that same
    transaction; rolling back returns the number to the series.
    """
    name = series or default_series(kind)
    taken = _take(session, brand_id, name)
    if taken is None:
        _create_series(session, brand_id, name, kind)
        taken = _take(session, brand_id, name)
    if taken is None:  # pragma: no cover - the row exists after _create_series
        raise NumberingError(f"number series {name!r} of brand {brand_id} could not be created")
    sequence, pattern, prefix = taken
    year = (issued_at or utcnow()).year
    return DocumentNumber(name, sequence, format_number(pattern, prefix, year, sequence))
