"""JSON over HTTPS for the Zendesk and Freshdesk clients, with errors mapped once.

Both vendors speak plain JSON with Basic auth, so one small helper does the
transport and turns every failure into the helpdesk error tree
(:mod:`mailbridge.helpdesks.external`) at the boundary, the way httpx's
``map_httpcore_exceptions`` does: the vendor modules never see a socket
error or an ``HTTPError``.

* 401/403 → :class:`HelpdeskAuthError` (retrying cannot help; fix the settings);
* 429 → :class:`HelpdeskUnavailable` with ``retry_after`` from ``Retry-After``
  (seconds or an HTTP date);
* 408, 5xx, timeouts, refused or dropped connections, a truncated or non-JSON
  success body → :class:`HelpdeskUnavailable` (our calls look before they
  write, so a retry is always safe);
* any other 4xx → :class:`HelpdeskError` carrying the vendor's own message.

It uses the standard library's ``urllib`` (no HTTP client is a dependency of
Billbox yet), refuses redirects (a redirect would carry the API token to
wherever it points) and refuses plain ``http://`` except on loopback, where
the tests' fakes run. Named ``_http_a`` because another helpdesk helper grows
its own transport in parallel; the two can be merged later.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billbox.retry_after import retry_after_seconds as shared_retry_after
from mailbridge.helpdesks.external import HelpdeskAuthError, HelpdeskError, HelpdeskUnavailable

#: Every call has a timeout (STYLE: "every network call has a default timeout").
DEFAULT_TIMEOUT = 10.0
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_MAX_MESSAGE = 300

#: Pulls the human message out of a vendor's JSON error body (None if it has none).
ErrorText = Callable[[Any], str | None]


@dataclass(frozen=True)
class JsonResponse:
    status: int
    #: Header names in lower case.
    headers: Mapping[str, str]
    data: Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Turn any 3xx into an error instead of following it with our credentials."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> None:
        return None


def check_base_url(base_url: str) -> str:
    """The base URL without a trailing slash; https, or http only on loopback."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {base_url!r}")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ValueError(f"refusing to send API credentials over plain http: {base_url!r}")
    return base_url.rstrip("/")


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (``now`` as a Unix time, for tests)."""
    moment = datetime.fromtimestamp(now, UTC) if now is not None else None
    return shared_retry_after(value, now=moment)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"


class JsonApi:
    """One vendor account: a base URL, an ``Authorization`` header and a timeout."""

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        authorization: str,
        error_text: ErrorText,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.vendor = vendor
        self.base_url = check_base_url(base_url)
        self._authorization = authorization
        self._error_text = error_text
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
    ) -> JsonResponse:
        """Call ``path`` (starting with ``/``) on the base URL and decode the JSON answer."""
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(
                {k: str(v) for k, v in query.items()}, quote_via=urllib.parse.quote
            )
        return self._send(method, url, body)

    def get_url(self, url: str) -> JsonResponse:
        """GET a pagination link the vendor handed us, only if it points at the same account."""
        if not url.startswith(self.base_url + "/"):
            raise HelpdeskError(f"{self.vendor} sent a next-page link to another host: {url!r}")
        return self._send("GET", url, None)

    def _send(self, method: str, url: str, body: Any) -> JsonResponse:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (scheme checked)
        request.add_header("Authorization", self._authorization)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "Billbox helpdesk connector")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        what = f"{self.vendor} {method} {urllib.parse.urlsplit(url).path}"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                headers = {k.lower(): v for k, v in response.headers.items()}
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise self._http_error(what, error) from error
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error.__class__.__name__
            raise HelpdeskUnavailable(f"{what}: no answer ({_one_line(str(reason))})") from error
        if status == 204 or not raw.strip():
            return JsonResponse(status, headers, None)
        try:
            decoded = json.loads(raw)
        except ValueError as error:
            raise HelpdeskUnavailable(
                f"{what}: answered {status} with a body that is not JSON", status=status
            ) from error
        return JsonResponse(status, headers, decoded)

    def _http_error(self, what: str, error: urllib.error.HTTPError) -> HelpdeskError:
        status = error.code
        try:
            raw = error.read()
        except (OSError, http.client.HTTPException):
            raw = b""
        message: str | None = None
        try:
            message = self._error_text(json.loads(raw)) if raw.strip() else None
        except ValueError:
            message = raw.decode("utf-8", "replace") or None
        text = f"{what} answered {status}: {_one_line(message or error.reason or 'no message')}"
        if status in (401, 403):
            return HelpdeskAuthError(text, status=status)
        if status == 429:
            retry_after = retry_after_seconds(error.headers.get("Retry-After"))
            return HelpdeskUnavailable(text, status=status, retry_after=retry_after)
        if status == 408 or status >= 500:
            return HelpdeskUnavailable(text, status=status)
        return HelpdeskError(text, status=status)


__all__ = ["DEFAULT_TIMEOUT", "JsonApi", "JsonResponse", "check_base_url", "retry_after_seconds"]
