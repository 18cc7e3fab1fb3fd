"""A tiny threaded HTTP server that vendor fakes (Help Scout, Intercom, Front) build on.

Each fake registers routes (method + path regex → handler) and an
``authenticate`` hook; tests script failures per route:

* ``fail(method, pattern, status=429, headers={"Retry-After": "7"}, body=…)``
  answers that status *instead of* handling the request;
* ``delay(method, pattern, seconds)`` handles it and answers too late;
* ``drop(method, pattern)`` *handles* the request (the create is committed)
  and then closes the connection without an answer, which the client sees as
  a dropped response — exactly the case where a blind retry would duplicate.

Every request is recorded (method, path, query, headers, parsed JSON) so a
test can assert what the client sent.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: ../shared/corpora beside the checkout (a worktree sits one level deeper).
CORPORA = next(
    (p / "shared" / "corpora" for p in Path(__file__).resolve().parents
     if (p / "shared" / "corpora").is_dir()),
    Path("/nonexistent"),
)  # fmt: skip


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    params: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None

    @property
    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.raw.decode()))


@dataclass
class FakeResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Scripted:
    method: str
    pattern: re.Pattern[str]
    times: int
    response: FakeResponse | None  # None = drop (or delay) after handling
    delay: float = 0.0  # > 0: answer only after this many seconds (past the client's timeout)


Handler = Callable[[FakeRequest], FakeResponse]


class FakeServer:
    """Subclasses call :meth:`route` in ``__init__`` and may override :meth:`authenticate`."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._scripted: list[_Scripted] = []
        self.requests: list[FakeRequest] = []
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration ---------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        with self.lock:
            self._scripted.append(
                _Scripted(
                    method,
                    re.compile(f"^{pattern}$"),
                    times,
                    FakeResponse(status, body, dict(headers or {})),
                )
            )

    def drop(self, method: str, pattern: str, times: int = 1) -> None:
        with self.lock:
            self._scripted.append(_Scripted(method, re.compile(f"^{pattern}$"), times, None))

    def delay(self, method: str, pattern: str, seconds: float, times: int = 1) -> None:
        """Handle the request now, answer after ``seconds``: the client times out first."""
        with self.lock:
            self._scripted.append(
                _Scripted(method, re.compile(f"^{pattern}$"), times, None, delay=seconds)
            )

    def authenticate(self, req: FakeRequest) -> FakeResponse | None:
        """Return an error response to refuse the request; ``None`` lets it through."""
        return None

    def calls(self, method: str, pattern: str) -> list[FakeRequest]:
        rx = re.compile(f"^{pattern}$")
        return [r for r in self.requests if r.method == method and rx.match(r.path)]

    # -- lifecycle ---------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeServer:
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                server._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    # -- request handling --------------------------------------------------------

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        req = FakeRequest(
            method=h.command,
            path=urllib.parse.unquote(parts.path),
            query=dict(urllib.parse.parse_qsl(parts.query)),
            headers={k.lower(): v for k, v in h.headers.items()},
            raw=raw,
        )
        with self.lock:
            self.requests.append(req)
            scripted = self._take_scripted(req)
        if scripted is not None and scripted.response is not None:
            self._send(h, scripted.response)
            return
        resp = self.authenticate(req) or self._handle(req)
        if scripted is not None and scripted.delay:
            time.sleep(scripted.delay)
            with contextlib.suppress(OSError):
                self._send(h, resp)
            return
        if scripted is not None:  # drop: the work is done, the answer never arrives
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(h, resp)

    def _take_scripted(self, req: FakeRequest) -> _Scripted | None:
        for item in self._scripted:
            if item.method == req.method and item.pattern.match(req.path):
                item.times -= 1
                if item.times <= 0:
                    self._scripted.remove(item)
                return item
        return None

    def _handle(self, req: FakeRequest) -> FakeResponse:
        for method, pattern, handler in self._routes:
            m = pattern.match(req.path)
            if m and method == req.method:
                req.params = m.groupdict()
                with self.lock:
                    return handler(req)
        return self.not_found(req)

    def not_found(self, req: FakeRequest) -> FakeResponse:
        return FakeResponse(404, {"message": f"no route for {req.method} {req.path}"})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, resp: FakeResponse) -> None:
        payload = b"" if resp.body is None else json.dumps(resp.body).encode()
        h.send_response(resp.status)
        headers = {"Content-Type": "application/json"} if payload else {}
        headers.update(resp.headers)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)
