"""Small helpers for tests that start real servers: free ports, waiting, localstripe.

One place for them so every test that needs localstripe (adapter, actions,
sync, benchmarks) starts it the same way.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: The key localstripe accepts (any ``sk_test_…`` works) and the webhook secret we register.
LOCALSTRIPE_API_KEY = "sk_test_billbox_localstripe"
LOCALSTRIPE_WEBHOOK_SECRET = "whsec_localstripe_0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    """True once anything answers HTTP at ``url`` (an error status counts)."""
    try:
        urllib.request.urlopen(url, timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@contextmanager
def running_localstripe(workdir: Path) -> Iterator[str]:
    """``python -m localstripe`` on a free port, from scratch; yields its URL, kills it after."""
    port = free_port()
    log = (workdir / "localstripe.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/v1/customers"), 15, "localstripe to answer")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def register_localstripe_webhook(localstripe: str, url: str) -> None:
    """Make localstripe deliver signed events to ``url`` (its ``/_config/webhooks`` API)."""
    data = urllib.parse.urlencode({"url": url, "secret": LOCALSTRIPE_WEBHOOK_SECRET}).encode()
    request = urllib.request.Request(f"{localstripe}/_config/webhooks/billbox", data=data)
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
