"""Fixtures shared by the suite: a real database per run, emptied after each test.

The backend comes from ``BILLBOX_TEST_BACKEND`` (``sqlite``, the default, or
``postgresql``); ``make test`` runs the suite once with each. PostgreSQL
tests get their own throwaway database, created from
``BILLBOX_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
and dropped at the end, so runs never see each other's data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.db import make_engine, session_factory
from billbox.migrate import upgrade
from billbox.models import metadata
from billbox.settings import Settings, load_settings
from billbox.testing import throwaway_postgres

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def backend() -> str:
    return os.environ.get("BILLBOX_TEST_BACKEND", "sqlite")


def pytest_report_header(config: pytest.Config) -> str:
    return f"billbox database backend: {backend()}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database for this test run."""
    if backend() == "sqlite":
        path = tmp_path_factory.mktemp("db") / "billbox.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    server = os.environ.get("BILLBOX_TEST_DATABASE_URL", DEFAULT_PG)
    with throwaway_postgres(server, "billbox_test") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def empty_all_tables(engine: Engine) -> None:
    tables = [t.name for t in metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            quoted = ", ".join(f'"{t}"' for t in tables)
            conn.execute(sa.text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(sa.text(f'DELETE FROM "{table}"'))
            has_sequence = conn.execute(
                sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
            ).first()
            if has_sequence:
                conn.execute(sa.text("DELETE FROM sqlite_sequence"))


@pytest.fixture
def factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """A session factory on the run's database; every table is emptied afterwards."""
    yield session_factory(engine)
    empty_all_tables(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for in-process tests: the run's database, the stub broker, a temp var dir."""
    return load_settings(
        database_url=database_url,
        broker_url="stub",
        secret_key="test-secret-key-0123456789",
        var_dir=tmp_path / "var",
        _env_file=None,
    )
