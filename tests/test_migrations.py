"""Migrations: the one revision upgrades and downgrades cleanly on this run's backend."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from billbox.db import make_engine
from billbox.errors import MigrationError
from billbox.migrate import current_revision, downgrade, head_revision, require_head, upgrade
from billbox.models import metadata
from billbox.testing import throwaway_postgres
from tests.conftest import DEFAULT_PG, backend


@pytest.fixture
def blank_url(tmp_path):
    """An empty database of this run's backend, dropped afterwards."""
    if backend() == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    server = os.environ.get("BILLBOX_TEST_DATABASE_URL", DEFAULT_PG)
    with throwaway_postgres(server, "billbox_mig") as url:
        yield url


def test_upgrade_creates_every_table_and_downgrade_removes_them(blank_url):
    """Upgrade to head creates all model tables; downgrade to base leaves none; again works."""
    engine = make_engine(blank_url)
    with pytest.raises(MigrationError):
        require_head(engine)
    upgrade(blank_url)
    assert current_revision(engine) == head_revision()
    tables = set(sa.inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables
    require_head(engine)
    downgrade(blank_url, "base")
    assert current_revision(engine) is None
    assert set(sa.inspect(engine).get_table_names()) - {"alembic_version"} == set()
    upgrade(blank_url)
    assert set(metadata.tables) <= set(sa.inspect(engine).get_table_names())
    engine.dispose()


def test_the_migration_matches_the_models(blank_url):
    """Autogenerate finds nothing to add: the models and the migration agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    upgrade(blank_url)
    engine = make_engine(blank_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    significant = [d for d in diff if not (isinstance(d, list) and d and d[0][0] == "modify_type")]
    assert significant == []
