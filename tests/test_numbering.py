"""Document numbers: sequential per brand and series, no gap, no duplicate, rollback gives back."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from billbox.errors import NumberingError
from billbox.models import Brand, DocumentKind, NumberSeries
from billbox.numbering import format_number, next_number
from tests.conftest import backend


def brand_id(factory, slug: str = "b") -> int:
    with factory() as s:
        brand = Brand(slug=slug, name=slug, legal_name=slug, country="DE")
        s.add(brand)
        s.commit()
        assert brand.id is not None
        return brand.id


def test_the_first_number_creates_the_series_with_the_default_prefix(factory):
    """No series yet: it is created on first use and the first number is 1."""
    bid = brand_id(factory)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    with factory() as s:
        first = next_number(s, bid, DocumentKind.INVOICE, issued_at=at)
        second = next_number(s, bid, DocumentKind.INVOICE, issued_at=at)
        receipt = next_number(s, bid, DocumentKind.RECEIPT, issued_at=at)
        s.commit()
    assert (first.series, first.sequence, first.number) == ("invoice", 1, "INV-2026-000001")
    assert second.number == "INV-2026-000002"
    assert receipt.number == "RCT-2026-000001"
    with factory() as s:
        series = s.exec(select(NumberSeries).where(NumberSeries.series == "invoice")).one()
        assert (series.prefix, series.next_value) == ("INV", 3)


def test_a_brand_series_keeps_its_own_prefix_and_format(factory):
    """An existing series (as the demo or the admin creates it) is used as configured."""
    bid = brand_id(factory)
    with factory() as s:
        s.add(
            NumberSeries(
                brand_id=bid,
                series="credit_note",
                kind=DocumentKind.CREDIT_NOTE,
                prefix="NW-CN",
                format="{prefix}/{seq:04d}",
                next_value=41,
            )
        )
        s.commit()
        number = next_number(s, bid, DocumentKind.CREDIT_NOTE)
        s.commit()
    assert number.number == "NW-CN/0041" and number.sequence == 41


def test_series_are_per_brand(factory):
    """Two brands each start at 1."""
    a, b = brand_id(factory, "a"), brand_id(factory, "b")
    with factory() as s:
        assert next_number(s, a, DocumentKind.RECEIPT).sequence == 1
        assert next_number(s, b, DocumentKind.RECEIPT).sequence == 1
        assert next_number(s, a, DocumentKind.RECEIPT).sequence == 2
        s.commit()


def test_a_rolled_back_transaction_gives_its_number_back(factory):
    """The number is part of the transaction: rollback, and the next issuer gets it."""
    bid = brand_id(factory)
    with factory() as s:
        assert next_number(s, bid, DocumentKind.RECEIPT).sequence == 1
        s.commit()
        assert next_number(s, bid, DocumentKind.RECEIPT).sequence == 2
        s.rollback()
        assert next_number(s, bid, DocumentKind.RECEIPT).sequence == 2
        s.commit()


def test_a_bad_format_is_a_clear_error():
    """Unknown fields and over-long results raise NumberingError naming the format."""
    with pytest.raises(NumberingError, match="unknown"):
        format_number("{prefix}-{unknown}", "X", 2026, 1)
    with pytest.raises(NumberingError, match="1-64"):
        format_number("{prefix}" + "x" * 70, "X", 2026, 1)
    assert format_number("{prefix}{year}{seq:03d}", "R", 2026, 7) == "R2026007"


@pytest.mark.postgres_only
@pytest.mark.skipif(backend() != "postgresql", reason="row locks are PostgreSQL's")
def test_eight_concurrent_issuers_get_one_to_n_without_gap_or_duplicate(factory):
    """8 threads, separate sessions, 25 numbers each, some rolled back: exactly 1..N are kept."""
    bid = brand_id(factory)
    kept: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def issuer(worker: int) -> None:
        try:
            start.wait()
            for i in range(25):
                with factory() as s:
                    number = next_number(s, bid, DocumentKind.INVOICE)
                    if (worker + i) % 5 == 0:
                        s.rollback()  # a failed issue gives its number back
                        continue
                    s.commit()
                with lock:
                    kept.append(number.sequence)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=issuer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(kept) == list(range(1, len(kept) + 1))
    assert len(kept) == 8 * 25 - sum(1 for w in range(8) for i in range(25) if (w + i) % 5 == 0)
