"""Schema migrations through Alembic, driven from code so ``billbox db`` needs no ini file."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import migrations
from billbox.db import normalise_url
from billbox.errors import MigrationError

SCRIPT_LOCATION = Path(migrations.__file__).parent


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "-1") -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_head(engine: Engine) -> None:
    """Refuse to run against a database that was not upgraded to this code's schema."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise MigrationError(
            f"database schema is at {current or 'nothing'}, this Billbox needs {head}; "
            "run: billbox db upgrade"
        )
