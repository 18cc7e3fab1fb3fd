"""The one JSON-over-HTTP transport of the five helpdesk connectors.

Each vendor's tests check its own error shapes end to end against its fake;
these check, once, what ``mailbridge.helpdesks.http`` does alike for all of
them: ``Retry-After`` in both forms, the error mapping, redirects and plain
http refused, a timeout not retried. The server is a real HTTP server on
loopback that answers whatever bytes a test scripts, garbage included.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mailbridge.helpdesks.external import HelpdeskAuthError, HelpdeskError, HelpdeskUnavailable
from mailbridge.helpdesks.http import JsonClient, basic_auth, bearer_auth


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next scripted (status, headers, body); records headers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: list[tuple[int, dict[str, str], bytes]] = []
        self.seen: list[dict[str, str]] = []
        self.delay = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # the client hung up on a delayed answer, as the timeout test wants


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({k.lower(): v for k, v in self.headers.items()})
        status, headers, body = (self.server.answers or [(200, {}, b"{}")]).pop(0)
        time.sleep(self.server.delay)
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = _answer


@contextlib.contextmanager
def serving() -> Iterator[Scripted]:
    server = Scripted()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[Scripted]:
    with serving() as running:
        yield running


def client(base_url: str, *, timeout: float = 2.0, **kwargs: Any) -> JsonClient:
    kwargs.setdefault("auth", basic_auth("agent@acme.example/token", "s3cret"))
    return JsonClient(
        vendor="Acme",
        base_url=base_url,
        error_text=lambda data: data.get("message"),
        timeout=timeout,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("in 90 s", 90.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)],
)
def test_a_429_carries_retry_after_given_as_seconds_or_an_http_date(
    server: Scripted, header: str, expected: float | None
) -> None:
    """RFC 9110 allows delta-seconds or an HTTP date; a past date is now, garbage unsaid."""
    if header == "in 90 s":
        header = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    server.answers.append((429, {"Retry-After": header}, b'{"message": "slow down"}'))
    with pytest.raises(HelpdeskUnavailable, match="Acme GET /api/me answered 429: slow down") as e:
        client(server.url + "/api").request("GET", "/me", query={"email": "ana@example.com"})
    assert e.value.status == 429
    if expected is None:
        assert e.value.retry_after is None
    else:
        assert e.value.retry_after == pytest.approx(expected, abs=2)


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (401, b'{"message": "bad token"}', HelpdeskAuthError, "answered 401: bad token"),
        (403, b"", HelpdeskAuthError, "answered 403: Forbidden"),
        (408, b"", HelpdeskUnavailable, "answered 408: Request Timeout"),
        (502, b"<h1>Bad\n gateway</h1>", HelpdeskUnavailable, "answered 502: <h1>Bad gateway</h1>"),
        (422, b'{"message": "subject: missing"}', HelpdeskError, "answered 422: subject: missing"),
        (404, b'{"errors": []}', HelpdeskError, 'answered 404: {"errors": \\[\\]}'),
        (200, b"<html>maintenance</html>", HelpdeskUnavailable, "answered 200 with a body that"),
    ],
)
def test_answers_map_onto_the_helpdesk_errors(
    server: Scripted, status: int, body: bytes, error: type[HelpdeskError], text: str
) -> None:
    """Refused credentials cannot be retried, 408/5xx/garbage can; the vendor's words are kept."""
    server.answers.append((status, {}, body))
    with pytest.raises(error, match=text) as caught:
        client(server.url).request("GET", "/me")
    assert type(caught.value) is error and caught.value.status == status


def test_a_truncated_answer_is_temporary(server: Scripted) -> None:
    """A success whose body stops short of its Content-Length is no answer at all."""
    server.answers.append((200, {"Content-Length": "100"}, b'{"id": 1'))
    with pytest.raises(HelpdeskUnavailable, match=r"no answer \(IncompleteRead"):
        client(server.url).request("GET", "/me")


def test_a_timeout_is_temporary_and_not_retried(server: Scripted) -> None:
    """The vendor may have committed the request; the connector looks before sending it again."""
    server.delay = 0.6
    started = time.monotonic()
    with pytest.raises(HelpdeskUnavailable, match=r"no answer \(timed out after 0\.2 s\)"):
        client(server.url, timeout=0.2).request("POST", "/tickets", body={"subject": "Hi"})
    assert time.monotonic() - started < 0.5  # a hung vendor does not hang the worker
    time.sleep(0.6)
    assert len(server.seen) == 1


def test_a_refused_connection_is_temporary() -> None:
    """Nothing listening is a network problem, not a credentials one."""
    with serving() as gone:
        url = gone.url
    with pytest.raises(HelpdeskUnavailable, match=r"no answer \(.*refused"):
        client(url).request("GET", "/me")


def test_basic_or_bearer_auth_goes_on_every_call_unless_left_out(server: Scripted) -> None:
    """Zendesk/Freshdesk use Basic, the others a bearer token; an OAuth token call sends none."""
    client(server.url).request("GET", "/me")
    bearer = client(server.url, auth=bearer_auth("tok-1"), headers={"Intercom-Version": "2.16"})
    bearer.request("POST", "/oauth2/token", form={"grant_type": "x"}, authenticated=False)
    bearer.request("POST", "/conversations", body={"body": "Hi"})
    basic, anonymous, bearing = server.seen
    assert (
        basic["authorization"]
        == "Basic " + base64.b64encode(b"agent@acme.example/token:s3cret").decode()
    )
    assert "authorization" not in anonymous
    assert anonymous["content-type"] == "application/x-www-form-urlencoded"
    assert bearing["authorization"] == "Bearer tok-1" and bearing["intercom-version"] == "2.16"
    assert bearing["content-type"] == "application/json"


def test_a_redirect_is_an_error_and_our_credentials_stay_here(server: Scripted) -> None:
    """urllib would follow a 3xx with our Authorization header to wherever it points."""
    with serving() as elsewhere:
        server.answers.append((302, {"Location": elsewhere.url + "/me"}, b""))
        with pytest.raises(HelpdeskError) as caught:
            client(server.url).request("GET", "/me")
        assert caught.value.status == 302 and not isinstance(caught.value, HelpdeskUnavailable)
        assert elsewhere.seen == []


def test_a_next_page_link_off_the_account_is_not_followed(server: Scripted) -> None:
    """A pagination link is followed only under the account's own base URL."""
    api = client(server.url + "/api")
    for link in ("https://evil.example/api/me", server.url + "/apiary", server.url + "/other"):
        with pytest.raises(HelpdeskError, match="next-page link off"):
            api.get_url(link)
    assert server.seen == []
    assert api.get_url(server.url + "/api/me?page=2").data == {}


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://acme.zendesk.com/", "https://acme.zendesk.com"),
        ("http://127.0.0.1:8000/v2", "http://127.0.0.1:8000/v2"),
        ("http://localhost:1", "http://localhost:1"),
        ("http://[::1]:1", "http://[::1]:1"),
        ("http://acme.example", None),
        ("http://10.0.0.5:8080/api", None),
        ("ftp://127.0.0.1/", None),
        ("https://", None),
    ],
)
def test_plain_http_is_refused_except_on_loopback(url: str, accepted: str | None) -> None:
    """The API token never travels in clear; the tests' fakes on loopback are the exception."""
    if accepted is None:
        with pytest.raises(ValueError, match="http"):
            client(url)
    else:
        assert client(url).base_url == accepted
