"""Run a group of child processes for ``billbox up``: restart crashes, stop all on signal.

Each child is a plain ``billbox <command>`` process, exactly what the
Procfile runs on several machines, so one machine and many behave alike.
A child that exits while we are not stopping is logged and restarted with
a backoff (1 s doubling to 30 s, reset after a minute of good health).
SIGTERM or SIGINT stops children in reverse start order with SIGTERM,
then SIGKILL for any still alive after the grace period, well within 10 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from billbox.logs import get_logger

log = get_logger("billbox.supervisor")


@dataclass
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    # Wait until this returns True before starting the next child (e.g. broker ready).
    ready: object | None = None


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 1.0
    next_start: float = 0.0


@dataclass
class Supervisor:
    children: list[ChildSpec]
    # SIGTERM → SIGKILL budgets; together well inside the 10 s promised to operators.
    grace_services: float = 6.0
    grace_broker: float = 2.0
    poll_interval: float = 0.2
    _stop: threading.Event = field(default_factory=threading.Event)

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if not self._stop.is_set():
            log.info("supervisor_stopping", signal=signum)
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def _start(self, child: _Child) -> None:
        env = dict(os.environ)
        env.update(child.spec.env or {})
        # Children ignore Ctrl-C in the terminal's process group; we forward SIGTERM.
        child.process = subprocess.Popen(list(child.spec.argv), env=env, start_new_session=True)
        child.started_at = time.monotonic()
        log.info(
            "child_started", child=child.spec.name, pid=child.process.pid, restarts=child.restarts
        )
        ready = child.spec.ready
        if callable(ready):
            deadline = time.monotonic() + 15
            while not ready() and time.monotonic() < deadline and not self._stop.is_set():
                if child.process.poll() is not None:
                    break
                time.sleep(0.05)

    def run(self) -> int:
        """Start every child and watch them until asked to stop; return an exit code."""
        children = [_Child(spec) for spec in self.children]
        for child in children:
            if self._stop.is_set():
                break
            self._start(child)
        while not self._stop.wait(self.poll_interval):
            now = time.monotonic()
            for child in children:
                process = child.process
                if process is not None and process.poll() is not None:
                    ran_for = now - child.started_at
                    if ran_for > 60:
                        child.backoff = 1.0
                    log.error(
                        "child_exited",
                        child=child.spec.name,
                        pid=process.pid,
                        returncode=process.returncode,
                        ran_for=round(ran_for, 1),
                        restart_in=child.backoff,
                    )
                    child.process = None
                    child.next_start = now + child.backoff
                    child.backoff = min(child.backoff * 2, 30.0)
                elif process is None and now >= child.next_start:
                    child.restarts += 1
                    self._start(child)
        self._stop_all(children)
        return 0

    def _stop_all(self, children: list[_Child]) -> None:
        running = [c for c in reversed(children) if c.process and c.process.poll() is None]
        # Services first (web, smtp, worker), the broker last so workers can ack.
        broker = [c for c in running if c.spec.name == "broker"]
        others = [c for c in running if c.spec.name != "broker"]
        for group in (others, broker):
            for child in group:
                assert child.process is not None
                child.process.send_signal(signal.SIGTERM)
            grace = self.grace_services if group is others else self.grace_broker
            deadline = time.monotonic() + grace
            for child in group:
                assert child.process is not None
                remaining = max(0.0, deadline - time.monotonic())
                try:
                    child.process.wait(timeout=remaining)
                except subprocess.TimeoutExpired:
                    log.warning("child_killed", child=child.spec.name, pid=child.process.pid)
                    child.process.kill()
                    child.process.wait()
                log.info(
                    "child_stopped", child=child.spec.name, returncode=child.process.returncode
                )
