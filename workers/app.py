"""Wire the broker, the database and the job handlers into one runnable worker.

Every process that enqueues (web, SMTP, IMAP, worker) builds a
:class:`WorkerApp` so that jobs it submits are sent to the queue after its
transactions commit; only ``billbox worker`` also consumes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.jobs import Handler, JobPolicy, install_enqueuer, run_job, sweep
from billbox.logs import get_logger
from billbox.settings import Settings
from workers.broker import build_broker

log = get_logger("workers")

QUEUE = "billbox"
ACTOR_NAME = "run_job"
#: Job ids in one broker message at most (see :meth:`WorkerApp.enqueue`).
IDS_PER_MESSAGE = 8


class ContextMiddleware(Middleware):
    """Log each message with its id so a job can be followed across retries."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        log.debug("message_received", message_id=message.message_id, args=message.args)


@dataclass
class WorkerApp:
    settings: Settings
    factory: sessionmaker[Session]
    broker: dramatiq.Broker
    handlers: Mapping[str, Handler]
    policy: JobPolicy
    actor: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def enqueue(self, job_ids: Sequence[int], delay: float = 0.0) -> None:
        """Send job ids to the queue, several to a message (:class:`billbox.jobs.Enqueuer`).

        Why: each message is one broker round trip (on Redis an ``EVALSHA``),
        ~0.4 ms of CPU and ~1 ms of wall time on a loaded 2-core machine, and
        the web and SMTP paths pay it after every commit. One message for
        the ids of one commit costs that once (``bench/webhooks.py``). A
        message holds at most :data:`IDS_PER_MESSAGE` ids because one worker
        thread runs them one after another: a sweep's thousand ids still
        spread over all the worker threads. The time limit grows with the
        ids, so each job keeps the lease's worth of time.
        """
        ids = list(job_ids)
        for start in range(0, len(ids), IDS_PER_MESSAGE):
            chunk = ids[start : start + IDS_PER_MESSAGE]
            self.actor.send_with_options(
                args=(chunk,),
                delay=int(delay * 1000) or None,
                time_limit=int(self.settings.job_lease * 1000) * len(chunk),
            )

    def process(self, job_ids: list[int] | int) -> None:
        """The actor body: run each job row, and re-send any scheduled for a retry.

        The state of each job is on its row (claimed, done, retried or failed
        by :func:`run_job` on its own), so a message redelivered after a
        worker died runs only what is not done. If the database fails
        mid-message, dramatiq retries the message; the sweep is the backstop.
        A bare int is a message queued before ids were grouped.
        """
        for job_id in [job_ids] if isinstance(job_ids, int) else job_ids:
            result = run_job(self.factory, job_id, self.handlers, self.policy)
            if result.outcome == "retry" and result.retry_in is not None:
                self.enqueue([job_id], result.retry_in)

    def sweep_once(self) -> int:
        stale = timedelta(seconds=self.settings.job_stale_after)
        return len(sweep(self.factory, self.enqueue, stale_after=stale).resent)

    def run_sweeper(self) -> threading.Thread:
        """Sweep every ``BILLBOX_SWEEP_INTERVAL`` seconds until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(self.settings.sweep_interval):
                try:
                    self.sweep_once()
                except Exception as exc:  # database briefly unavailable: try next tick
                    log.warning("sweep_failed", error=f"{exc.__class__.__name__}: {exc}")

        thread = threading.Thread(target=loop, name="billbox-sweeper", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def build(
    settings: Settings,
    factory: sessionmaker[Session],
    handlers: Mapping[str, Handler],
    *,
    broker: dramatiq.Broker | None = None,
) -> WorkerApp:
    """Build the broker and declare the job actor on it; install the after-commit enqueuer."""
    broker = broker or build_broker(settings)
    broker.add_middleware(ContextMiddleware())
    policy = JobPolicy(lease=timedelta(seconds=settings.job_lease))
    app = WorkerApp(
        settings=settings, factory=factory, broker=broker, handlers=handlers, policy=policy
    )
    app.actor = dramatiq.actor(
        broker=broker,
        actor_name=ACTOR_NAME,
        queue_name=QUEUE,
        max_retries=20,
        min_backoff=1000,
        max_backoff=300_000,
        time_limit=int(settings.job_lease * 1000),
    )(app.process)
    install_enqueuer(factory, app.enqueue)
    return app


def run_worker(app: WorkerApp, threads: int) -> dramatiq.Worker:
    """Start consuming in background threads; the caller waits and calls ``stop``."""
    worker = dramatiq.Worker(app.broker, worker_threads=threads, queues={QUEUE, f"{QUEUE}.DQ"})
    worker.start()
    app.run_sweeper()
    app.sweep_once()
    return worker
