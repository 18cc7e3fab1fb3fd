"""A small JSON-over-HTTP client for the Help Scout, Intercom and Front connectors.

Why stdlib ``urllib`` and not httpx: httpx is not a dependency of Billbox and
these clients make a handful of synchronous calls from a worker job, so a
thin wrapper that does exactly what they need (timeouts, JSON bodies,
mapping failures onto the helpdesk error tree) is cheaper than a new
dependency. The mapping happens here, at the boundary, like
``map_httpcore_exceptions`` in httpx:

* 401/403            → :class:`HelpdeskAuthError` (retrying cannot help)
* 429                → :class:`HelpdeskUnavailable` with ``retry_after`` from ``Retry-After``
* 5xx, timeouts, resets, refused connections → :class:`HelpdeskUnavailable`
* any other 4xx      → :class:`HelpdeskError` carrying the vendor's own message

Each vendor module passes a function that pulls the human message out of
its error JSON, so the admin sees "Validation error: customer.email may not
be empty" rather than "HTTP 400".

A timeout is deliberately *not* retried here: the request may have been
committed by the vendor, so the caller must look up what it made before
sending it again (see the connectors' ``find_ticket``/``has_message``).
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from billbox.retry_after import retry_after_seconds
from mailbridge.helpdesks.external import HelpdeskAuthError, HelpdeskError, HelpdeskUnavailable

#: Seconds to wait for connect and for each read, unless a connector says otherwise.
DEFAULT_TIMEOUT = 10.0

ErrorExtractor = Callable[[Any], str | None]


@dataclass(frozen=True)
class HttpResponse:
    """A successful (2xx) answer: status, lower-cased headers and the raw body."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body, e.g. 201/204 answers)."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HelpdeskError(
                f"answered {self.status} with a body that is not JSON", status=self.status
            ) from exc


parse_retry_after = retry_after_seconds  # the shared parser, under this module's name


class JsonHttp:
    """Calls one vendor's API; ``auth_headers`` is asked for fresh headers on every call."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        auth_headers: Callable[[], Mapping[str, str]],
        error_message: ErrorExtractor,
        timeout: float = DEFAULT_TIMEOUT,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self._auth_headers = auth_headers
        self._error_message = error_message
        self.timeout = timeout
        self._extra_headers = dict(extra_headers or {})

    def url(self, path: str, query: Mapping[str, str | int] | None = None) -> str:
        """The absolute URL for ``path`` (already quoted by the caller) plus a query string."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        if query:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        query: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
    ) -> HttpResponse:
        """Send one request; return a 2xx answer or raise a mapped helpdesk error."""
        data: bytes | None = None
        all_headers = {"Accept": "application/json", "User-Agent": "billbox-helpdesk/1"}
        all_headers.update(self._extra_headers)
        if authenticated:
            all_headers.update(self._auth_headers())
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        all_headers.update(headers or {})
        url = self.url(path, query)
        if not url.startswith(("http://", "https://")):
            raise HelpdeskError(f"{self.vendor}: base URL must be http(s), got {url!r}")
        req = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                body = resp.read()
                return HttpResponse(resp.status, _lower(resp.headers.items()), body)
        except urllib.error.HTTPError as exc:
            with exc:
                raise self._map_status(
                    method, path, exc.code, _lower(exc.headers.items()), _read(exc)
                ) from None
        except TimeoutError as exc:
            raise HelpdeskUnavailable(
                f"{self.vendor}: {method} {path} timed out after {self.timeout:g} s"
            ) from exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise HelpdeskUnavailable(f"{self.vendor}: {method} {path} failed: {reason}") from exc

    def _map_status(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> HelpdeskError:
        try:
            parsed: Any = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = None
        detail = None
        if parsed is not None:
            try:
                detail = self._error_message(parsed)
            except (AttributeError, KeyError, IndexError, TypeError):
                detail = None
        if not detail:
            detail = body[:200].decode("utf-8", "replace").strip() or "no message"
        message = f"{self.vendor}: {method} {path} → {status}: {detail}"
        if status in (401, 403):
            return HelpdeskAuthError(message, status=status)
        if status == 429:
            return HelpdeskUnavailable(
                message, status=status, retry_after=parse_retry_after(headers.get("retry-after"))
            )
        if status >= 500:
            return HelpdeskUnavailable(message, status=status)
        return HelpdeskError(message, status=status)


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def _read(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except (OSError, http.client.HTTPException):
        return b""
