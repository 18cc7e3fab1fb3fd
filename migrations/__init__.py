"""Alembic migrations for Billbox; run them with ``billbox db upgrade``."""
