"""JSON over HTTPS for the five helpdesk connectors, with failures mapped once.

Zendesk, Freshdesk, Help Scout, Intercom and Front all speak JSON with Basic
or bearer auth. This client does the transport and maps every failure onto
the helpdesk error tree (:mod:`mailbridge.helpdesks.external`) at the
boundary, like httpx's ``map_httpcore_exceptions``:

* 401/403 → :class:`HelpdeskAuthError` (retrying cannot help; fix the settings);
* 429 → :class:`HelpdeskUnavailable` with ``retry_after`` from ``Retry-After``
  (seconds or an HTTP date, read by :func:`billbox.retry_after.retry_after_seconds`);
* 408, 5xx, timeouts, refused or dropped connections, a truncated or non-JSON
  success body → :class:`HelpdeskUnavailable`;
* any other answer that is not 2xx (4xx, and 3xx: redirects are refused) →
  :class:`HelpdeskError` carrying the vendor's own message, which each vendor
  module pulls out of its error JSON with an ``error_text`` function so the
  admin reads "subject: Mandatory attribute missing" rather than "HTTP 400".

A timeout is deliberately *not* retried here: the vendor may have committed
the request, so the connector looks up what it made (``find_ticket``,
``has_message``) before sending it again, in the job's next attempt.

It uses the standard library's ``urllib`` (the connectors make a handful of
synchronous calls from a worker job; no HTTP client is a dependency of
Billbox), refuses redirects (urllib would resend our ``Authorization`` header
to wherever one points) and refuses plain ``http://`` except on loopback,
where the tests' fakes run.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from billbox.retry_after import retry_after_seconds
from mailbridge.helpdesks.external import HelpdeskAuthError, HelpdeskError, HelpdeskUnavailable

#: Seconds to connect and for each read (STYLE: "every network call has a default timeout").
DEFAULT_TIMEOUT = 10.0
USER_AGENT = "billbox-helpdesk/1"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_MAX_MESSAGE = 300

#: Pulls the human message out of a vendor's JSON error body (None if it has none).
ErrorText = Callable[[Any], str | None]
#: Asked for the auth headers on every call, so a connector can refresh an OAuth token.
Auth = Callable[[], Mapping[str, str]]


def basic_auth(username: str, password: str) -> Auth:
    """``Authorization: Basic …`` (Zendesk's ``email/token``, Freshdesk's ``key:X``)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    header = {"Authorization": f"Basic {token}"}
    return lambda: header


def bearer_auth(token: str) -> Auth:
    """``Authorization: Bearer …`` with a token that does not change."""
    header = {"Authorization": f"Bearer {token}"}
    return lambda: header


@dataclass(frozen=True)
class JsonResponse:
    """A 2xx answer: status, headers (names in lower case), JSON body (None when empty)."""

    status: int
    headers: Mapping[str, str]
    data: Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Turn any 3xx into an ``HTTPError`` instead of following it with our credentials."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; https, or http only on loopback."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError(f"refusing to send API credentials over plain http: {base_url!r}")
    return base_url.rstrip("/")


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"


class JsonClient:
    """One vendor account: a base URL, its auth, its error-message shape and a timeout."""

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        auth: Auth,
        error_text: ErrorText,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.vendor = vendor
        self.base_url = _check_base_url(base_url)
        self.timeout = timeout
        self._auth = auth
        self._error_text = error_text
        self._headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        self._opener = urllib.request.build_opener(_NoRedirects())

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        form: Mapping[str, str] | None = None,
        authenticated: bool = True,
    ) -> JsonResponse:
        """Call ``path`` (starting with ``/``, already quoted) on the base URL.

        ``body`` is sent as JSON; ``form`` sends ``application/x-www-form-urlencoded`` (OAuth token
        endpoints); ``authenticated=False`` leaves the auth headers out.
        """
        url = self.base_url + path
        if query:
            pairs = {k: str(v) for k, v in query.items()}
            url += "?" + urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
        headers = dict(self._headers)
        if authenticated:
            headers.update(self._auth())
        data: bytes | None = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self._send(urllib.request.Request(url, data, headers, method=method))  # noqa: S310

    def get_url(self, url: str) -> JsonResponse:
        """GET a next-page link the vendor handed us, only if it points at the same account."""
        if not url.startswith(self.base_url + "/"):
            raise HelpdeskError(f"{self.vendor} sent a next-page link off {self.base_url}: {url!r}")
        headers = {**self._headers, **self._auth()}
        return self._send(urllib.request.Request(url, None, headers))  # noqa: S310

    def _send(self, request: urllib.request.Request) -> JsonResponse:
        path = urllib.parse.urlsplit(request.full_url).path  # no query: it may hold an email
        what = f"{self.vendor} {request.get_method()} {path}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                headers = {k.lower(): v for k, v in response.headers.items()}
                raw = response.read()
        except urllib.error.HTTPError as error:
            with error:
                raise self._http_error(what, error) from error
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error
            if isinstance(reason, TimeoutError):
                reason = f"timed out after {self.timeout:g} s"
            text = _one_line(str(reason) or type(reason).__name__)
            raise HelpdeskUnavailable(f"{what}: no answer ({text})") from error
        if status == 204 or not raw.strip():
            return JsonResponse(status, headers, None)
        try:
            return JsonResponse(status, headers, json.loads(raw))
        except ValueError as error:
            raise HelpdeskUnavailable(
                f"{what}: answered {status} with a body that is not JSON", status=status
            ) from error

    def _http_error(self, what: str, error: urllib.error.HTTPError) -> HelpdeskError:
        status = error.code
        try:
            raw = error.read()
        except (OSError, http.client.HTTPException):
            raw = b""
        try:
            message = self._error_text(json.loads(raw)) if raw.strip() else None
        except (ValueError, AttributeError, KeyError, IndexError, TypeError):
            message = None  # not JSON, or not the vendor's usual error shape
        message = message or raw.decode("utf-8", "replace").strip() or error.reason or "no message"
        text = f"{what} answered {status}: {_one_line(str(message))}"
        if status in (401, 403):
            return HelpdeskAuthError(text, status=status)
        if status == 429:
            retry_after = retry_after_seconds(error.headers.get("Retry-After"))
            return HelpdeskUnavailable(text, status=status, retry_after=retry_after)
        if status == 408 or status >= 500:
            return HelpdeskUnavailable(text, status=status)
        return HelpdeskError(text, status=status)


__all__ = ["DEFAULT_TIMEOUT", "JsonClient", "JsonResponse", "basic_auth", "bearer_auth"]
