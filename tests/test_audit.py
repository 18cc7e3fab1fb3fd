"""The audit log is a hash chain: appended in order, and any edit or deletion is found."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlmodel import col, select

from billbox.audit import GENESIS, record, verify_chain
from billbox.models import ActorKind, AuditEvent


def _append(factory, n: int, actor: str = "ana@example.org") -> list[int]:
    ids = []
    for i in range(n):
        with factory() as s:
            row = record(
                s,
                actor_kind=ActorKind.USER,
                actor=actor,
                action="payment.refund",
                target_kind="payment",
                target_id=str(i),
                reason=f"customer asked ({i})",
                data={"amount": 100 * i, "currency": "EUR", "nested": {"b": 1, "a": [1, 2]}},
            )
            s.commit()
            assert row.id is not None
            ids.append(row.id)
    return ids


def test_each_row_chains_to_the_previous_one_and_the_chain_verifies(factory):
    """The first row links to the genesis hash, every later one to its predecessor."""
    _append(factory, 3)
    with factory() as s:
        rows = s.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
        assert rows[0].prev_hash == GENESIS
        assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
        assert len({r.hash for r in rows}) == 3
        assert verify_chain(s) is None


def test_an_empty_log_verifies(factory):
    with factory() as s:
        assert verify_chain(s) is None


def test_an_edited_field_is_found_at_the_edited_row(factory):
    """Changing the amount in a stored row's data (in SQL, behind our back) breaks that row."""
    ids = _append(factory, 4)
    with factory() as s:
        row = s.get(AuditEvent, ids[2])
        assert row is not None
        row.data = {**row.data, "amount": 1}
        s.add(row)
        s.commit()
    with factory() as s:
        assert verify_chain(s) == ids[2]


def test_an_edited_reason_is_found_even_when_reading_in_small_batches(factory):
    ids = _append(factory, 5)
    with factory() as s:
        s.execute(
            sa.text("UPDATE audit_event SET reason = 'nothing' WHERE id = :id"), {"id": ids[3]}
        )
        s.commit()
    with factory() as s:
        assert verify_chain(s, batch=2) == ids[3]


def test_a_deleted_row_breaks_the_link_of_the_row_after_it(factory):
    ids = _append(factory, 4)
    with factory() as s:
        s.execute(sa.text("DELETE FROM audit_event WHERE id = :id"), {"id": ids[1]})
        s.commit()
    with factory() as s:
        assert verify_chain(s) == ids[2]


def test_a_rehashed_row_still_breaks_the_next_link(factory):
    """A forger who recomputes the edited row's own hash is caught by the next row's prev_hash."""
    from billbox.audit import compute_hash

    ids = _append(factory, 3)
    with factory() as s:
        row = s.get(AuditEvent, ids[0])
        assert row is not None
        row.actor = "mallory@example.org"
        row.hash = compute_hash(
            row.prev_hash,
            at=row.at,
            actor_kind=row.actor_kind.value,
            actor=row.actor,
            action=row.action,
            target_kind=row.target_kind,
            target_id=row.target_id,
            reason=row.reason,
            data=row.data,
        )
        s.add(row)
        s.commit()
    with factory() as s:
        assert verify_chain(s) == ids[1]


def test_a_rolled_back_transaction_leaves_no_audit_row(factory):
    with factory() as s:
        record(s, actor_kind=ActorKind.SYSTEM, actor="billbox", action="noop")
        s.rollback()
    with factory() as s:
        assert s.exec(select(AuditEvent)).all() == []


def test_concurrent_writers_never_fork_the_chain(factory):
    """Four threads appending at once still produce one unbroken chain."""
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            _append(factory, 5, actor=name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}@example.org",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with factory() as s:
        assert len(s.exec(select(AuditEvent)).all()) == 20
        assert verify_chain(s) is None


def test_long_fields_are_cut_to_their_columns_and_still_verify(factory):
    with factory() as s:
        record(
            s,
            actor_kind=ActorKind.API_TOKEN,
            actor="t" * 400,
            action="a" * 100,
            target_kind="k" * 40,
            target_id="i" * 100,
            reason="r" * 5000,
        )
        s.commit()
    with factory() as s:
        row = s.exec(select(AuditEvent)).one()
        assert (len(row.actor), len(row.action), len(row.target_id)) == (254, 64, 64)
        assert verify_chain(s) is None


def test_billbox_audit_verify_reports_the_first_broken_row(factory, database_url, monkeypatch):
    """The CLI says the log is intact, then names the tampered row and exits 1."""
    from click.testing import CliRunner

    from billbox.cli import cli

    monkeypatch.setenv("BILLBOX_DATABASE_URL", database_url)
    monkeypatch.setenv("BILLBOX_SECRET_KEY", "test-secret-key-0123456789")
    ids = _append(factory, 3)
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert (ok.exit_code, ok.output.strip()) == (0, "audit log intact")
    with factory() as s:
        s.execute(sa.text("UPDATE audit_event SET actor = 'x' WHERE id = :id"), {"id": ids[1]})
        s.commit()
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"audit log broken at row {ids[1]}" in broken.output
