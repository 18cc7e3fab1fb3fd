"""Helpers for tests and benchmarks that need a real database of their own.

Shipped with the code (like dramatiq's StubBroker) so the suite, the
benchmarks and anyone testing a deployment create and drop throwaway
PostgreSQL databases the same way.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from billbox.db import normalise_url


@contextmanager
def throwaway_postgres(server_url: str, prefix: str = "billbox_tmp") -> Iterator[str]:
    """Create an empty database next to ``server_url``'s, yield its URL, drop it after.

    ``server_url`` names any database the user may connect to (e.g.
    ``postgresql://postgres@127.0.0.1:5432/test``); the new one is dropped
    WITH (FORCE), so connections left open by the caller do not keep it alive.
    """
    base = make_url(normalise_url(server_url))
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
