"""A small threaded HTTP server for vendor API fakes, with scriptable failures.

Subclasses give the routes, the auth check and the vendor's error shapes;
this base records every request, and can be told to fail the next matching
request in the ways real networks do:

* answer a status instead (401, 429 with ``Retry-After``, 500 …) without
  touching the state;
* ``drop``: do the work (commit the ticket, the note …) and then close the
  connection without a response, which is what a client sees when its
  request timed out after the server had already acted;
* ``delay``: do the work and answer only after ``delay`` seconds.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


class Reject(Exception):
    """Raised by a route to answer an error in the vendor's own shape."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    delay: float = 0.0
    times: int = 1


class FakeApi:
    """Routes are ``(METHOD, regex on the path, method name)``; groups go to the method."""

    routes: ClassVar[list[tuple[str, str, str]]] = []

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._compiled = [(m, re.compile(f"^{p}$"), name) for m, p, name in self.routes]
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeApi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self)

            do_POST = do_PUT = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- scripting ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path: str,
        *,
        status: int | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        drop: bool = False,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` requests matching (method, path regex) misbehave."""
        with self.lock:
            self._faults.append(
                Fault(
                    method, re.compile(f"^{path}$"), status, body, headers or {}, drop, delay, times
                )
            )

    def calls(self, method: str, path: str) -> list[Recorded]:
        pattern = re.compile(f"^{path}$")
        with self.lock:
            return [r for r in self.requests if r.method == method and pattern.match(r.path)]

    # -- hooks for subclasses ---------------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> Answer | None:
        """None if the credentials are good, else the vendor's 401 answer."""
        return None

    def bad_json(self) -> Answer:
        return Answer(400, {"error": "invalid JSON"})

    def not_found(self) -> Answer:
        return Answer(404, {"error": "not found"})

    # -- the request cycle ------------------------------------------------------------------

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self._faults:
                if fault.method == method and fault.path.match(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        method = handler.command
        body: Any = None
        answer: Answer | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                answer = self.bad_json()
        with self.lock:
            self.requests.append(Recorded(method, parts.path, query, headers, body))
        fault = self._fault_for(method, parts.path)
        if answer is None:
            answer = self.authenticate(headers)
        if answer is None and fault is not None and fault.status is not None:
            answer = Answer(fault.status, fault.body, dict(fault.headers))
        if answer is None:
            answer = self._route(method, parts.path, query, body)
        if fault is not None and fault.drop:
            handler.close_connection = True
            return
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        payload = b"" if answer.body is None else json.dumps(answer.body).encode()
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(payload)))
            for key, value in answer.headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        for route_method, pattern, name in self._compiled:
            match = pattern.match(path)
            if route_method == method and match:
                try:
                    with self.lock:
                        result: Answer = getattr(self, name)(
                            *match.groups(), query=query, body=body
                        )
                        return result
                except Reject as rejected:
                    return Answer(rejected.status, rejected.body, rejected.headers)
        return self.not_found()
