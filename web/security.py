"""Browser-session safety for the staff pages: CSRF tokens and login throttling.

CSRF uses the synchroniser-token pattern: one random token per session,
sent back in every form (``csrf_token`` field) or in ``X-CSRF-Token`` for
scripts, compared in constant time. Webhooks and the token API do not use
cookies and so do not need it.

Login throttling counts failures in memory, per address and per client IP,
in a sliding window. It is per process: with N gunicorn workers an attacker
gets at most N times the budget, which still turns a password guess into a
slow affair while costing no table or Redis round-trip on each login.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from flask import abort, request, session

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token() -> str:
    """The session's CSRF token, created on first use (templates call this)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """Abort with 400 when an unsafe request does not carry the session's token."""
    if request.method not in UNSAFE_METHODS:
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="The form expired or did not come from this site; reload it.")


class LoginThrottle:
    """Refuse logins after too many recent failures for one address or one client."""

    def __init__(
        self,
        *,
        per_address: int = 5,
        per_client: int = 20,
        window: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"address": per_address, "client": per_client}
        self._window = window
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _keys(self, address: str, client: str) -> list[tuple[str, str]]:
        return [("address", address.strip().lower()), ("client", client)]

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        stamps = self._failures[key]
        while stamps and now - stamps[0] > self._window:
            stamps.popleft()
        return stamps

    def retry_after(self, address: str, client: str) -> float:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key in self._keys(address, client):
                stamps = self._recent(key, now)
                if len(stamps) >= self._limits[key[0]]:
                    wait = max(wait, self._window - (now - stamps[0]))
        return wait

    def failed(self, address: str, client: str) -> None:
        now = self._clock()
        with self._lock:
            for key in self._keys(address, client):
                self._recent(key, now).append(now)

    def succeeded(self, address: str) -> None:
        """A correct password clears that address's failures (not the client's)."""
        with self._lock:
            self._failures.pop(("address", address.strip().lower()), None)
