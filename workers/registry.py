"""Which function handles which job kind; the one table a new kind is added to."""

from __future__ import annotations

from billbox.jobs import NOOP_JOB, Handler, noop
from mailbridge.pipeline import INBOUND_JOB, process_inbound


def default_handlers() -> dict[str, Handler]:
    return {
        NOOP_JOB: noop,
        INBOUND_JOB: process_inbound,
    }
