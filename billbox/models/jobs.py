"""The job table: the transactional outbox behind every queue message.

A job row is inserted in the same transaction as the work it stands for;
the queue message (carrying only the row id) is sent after commit. If the
message is lost, the sweep finds the row still ``queued`` or its lease
expired and sends it again, so work is delayed, never lost.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from billbox.models.base import UTCDateTime, created_at_field, enum_column, json_field, ts_field
from billbox.models.enums import JobState


class Job(SQLModel, table=True):
    __table_args__ = (
        sa.Index("ix_job_state_run_after", "state", "run_after"),
        sa.UniqueConstraint("dedupe_key", name="uq_job_dedupe_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64, index=True)
    payload: dict[str, object] = json_field()
    # Optional: the same unit of work submitted twice becomes one row.
    dedupe_key: str | None = Field(default=None, max_length=160)
    state: JobState = Field(sa_column=enum_column(JobState, nullable=False))
    attempts: int = 0
    max_attempts: int = 8
    run_after: datetime = Field(sa_type=UTCDateTime, nullable=False)
    enqueued_at: datetime | None = ts_field()
    lease_until: datetime | None = ts_field()
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    correlation_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = created_at_field()
    finished_at: datetime | None = ts_field()
