"""Start localstripe with the subscription discounts and invoice finalize Stripe documents.

localstripe 1.15.10 (the newest on PyPI on 2026-11-25) refuses ``discounts``
on subscriptions and has no ``POST /v1/invoices/{id}/finalize``, which our
coupon and finalize actions use. :func:`running_localstripe_with_discounts`
runs ``tests/localstripe_discounts_server.py`` instead of ``python -m
localstripe``: localstripe's own app with those added, in its own process.
That module says what it adds and which Stripe documentation it follows.
Tests only; nothing here is product code.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import answers, free_port, wait_until

_SERVER = Path(__file__).resolve().with_name("localstripe_discounts_server.py")


@contextmanager
def running_localstripe_with_discounts(workdir: Path) -> Iterator[str]:
    """The extended localstripe on a free port, from scratch; yields its URL, kills it after."""
    port = free_port()
    log = (workdir / "localstripe.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(_SERVER), "--port", str(port), "--from-scratch"],
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
