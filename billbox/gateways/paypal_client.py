"""The PayPal HTTP layer: the official SDK where it has the call, documented REST where not.

``paypal-server-sdk`` covers orders v2, payments v2, subscriptions v1 and
transaction search; those go through it. Webhook signature verification
(``/v1/notifications/verify-webhook-signature``) is not in the SDK, so
:meth:`PayPalClient.rest` calls it with ``urllib`` using the same OAuth
token. Answers are read from the response's raw JSON text (not the SDK's
models) so API objects and webhook resources share one set of mappers.

OAuth2 client-credentials tokens are cached until a minute before they
expire (one cache for SDK and REST calls, through the SDK's token-provider
hook). A 401 means PayPal dropped the token early: it is discarded and the
call retried once with a fresh one. Errors are mapped at this boundary,
like httpx's ``map_httpcore_exceptions``:

================================ ===========================================
PayPal answer                    raised
================================ ===========================================
400, 403, 404, 409, 422          GatewayDeclined(message from
                                 ``details[].description`` or ``message``,
                                 code = ``details[].issue`` or ``name``,
                                 request_id = ``debug_id``)
401 twice (bad credentials)      GatewayError
429, 5xx, connection, timeout    GatewayUnavailable(retry_after from
                                 ``Retry-After``)
================================ ===========================================
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from paypalserversdk.configuration import Configuration, Server
from paypalserversdk.exceptions.api_exception import ApiException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from billbox.gateways.base import GatewayDeclined, GatewayError, GatewayUnavailable
from billbox.retry_after import retry_after_header

LIVE_API_BASE = "https://api-m.paypal.com"
DEFAULT_TIMEOUT = 10.0
#: Seconds before a token's stated expiry at which it is treated as expired.
TOKEN_SKEW = 60

Json = dict[str, Any]
SdkCall = Callable[[PaypalServersdkClient], Any]


class _Configuration(Configuration):
    """The SDK's configuration with one base URI instead of its fixed live/sandbox table."""

    def __init__(self, base_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._billbox_base_uri = base_uri.rstrip("/")

    def get_base_uri(self, server: Server = Server.DEFAULT) -> str:
        return self._billbox_base_uri


class PayPalClient:
    """One PayPal REST app (client id + secret) at one API base; thread-safe token cache."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.api_base = (api_base or LIVE_API_BASE).rstrip("/")
        if not self.api_base.startswith(("https://", "http://")):
            raise GatewayError(f"PAYPAL_API_BASE must be an http(s) URL, not {self.api_base!r}")
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: Any = None  # paypalserversdk OAuthToken
        credentials = ClientCredentialsAuthCredentials(
            o_auth_client_id=client_id,
            o_auth_client_secret=client_secret,
            o_auth_token_provider=self._provide_token,
            o_auth_clock_skew=TOKEN_SKEW,
        )
        config = _Configuration(
            self.api_base,
            timeout=timeout,
            max_retries=0,  # retries are the caller's decision (GatewayUnavailable)
            client_credentials_auth_credentials=credentials,
        )
        self.sdk = PaypalServersdkClient(config=config)

    # Tokens ---------------------------------------------------------------------

    def _provide_token(self, _last: Any, auth: Any) -> Any:
        """The SDK's token hook: the cached token, or a new one when none is valid."""
        with self._lock:
            if self._token is None or auth.is_token_expired(self._token):
                self._token = auth.fetch_token()
            return self._token

    def _invalidate_token(self) -> None:
        """Forget the token; marking it expired makes the SDK ask the provider again."""
        with self._lock:
            if self._token is not None:
                self._token.expiry = 0
            self._token = None

    def access_token(self) -> str:
        """A valid bearer token (cached); PayPal's refusal is mapped to our errors."""
        try:
            token = self._provide_token(None, self.sdk.oauth_2)
        except ApiException as exc:
            raise _mapped(exc.response_code, exc.response.headers, exc.response.text) from exc
        except OSError as exc:
            raise GatewayUnavailable(f"paypal: cannot reach {self.api_base}: {exc}") from exc
        return str(token.access_token)

    # Calls ------------------------------------------------------------------------

    def call(self, operation: SdkCall) -> Json | None:
        """Run one SDK call; its JSON answer, or None for an empty (204) one."""
        for attempt in (1, 2):
            try:
                response = operation(self.sdk)
            except ApiException as exc:
                if exc.response_code == 401 and attempt == 1:
                    self._invalidate_token()
                    continue
                raise _mapped(exc.response_code, exc.response.headers, exc.response.text) from exc
            except OSError as exc:  # requests' ConnectionError/Timeout are OSErrors
                raise GatewayUnavailable(f"paypal: cannot reach {self.api_base}: {exc}") from exc
            return _json(response.text)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_object(self, operation: SdkCall) -> Json:
        """Like :meth:`call`, for calls whose answer must be an object."""
        answer = self.call(operation)
        if answer is None:
            raise GatewayError("paypal: empty answer where an object was expected")
        return answer

    def rest(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Json | None:
        """One documented REST call the SDK lacks, with the same token, retry and mapping."""
        for attempt in (1, 2):
            # S310: the scheme is checked to be http(s) in __init__.
            request = urllib.request.Request(  # noqa: S310
                self.api_base + path,
                data=body,
                method=method,
                headers={
                    "Authorization": f"Bearer {self.access_token()}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    **(headers or {}),
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                    return _json(response.read().decode("utf-8", "replace"))
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")
                if exc.code == 401 and attempt == 1:
                    self._invalidate_token()
                    continue
                raise _mapped(exc.code, exc.headers, text) from None
            except (urllib.error.URLError, OSError) as exc:
                raise GatewayUnavailable(f"paypal: cannot reach {self.api_base}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


def _json(text: str | None) -> Json | None:
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise GatewayError("paypal: answer is not JSON") from None
    if not isinstance(value, dict):
        raise GatewayError("paypal: answer is not a JSON object")
    return value


def _mapped(status: int, headers: Any, text: str | None) -> GatewayError:
    """PayPal's error JSON (``name``, ``message``, ``debug_id``, ``details[]``) as our error."""
    try:
        body = json.loads(text or "")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    details = body.get("details")
    first = details[0] if isinstance(details, list) and details else {}
    first = first if isinstance(first, dict) else {}
    name = _s(body.get("name")) or _s(body.get("error"))  # OAuth errors use error/_description
    code = _s(first.get("issue")) or name
    message = (
        _s(first.get("description"))
        or _s(body.get("message"))
        or _s(body.get("error_description"))
        or f"HTTP {status}"
    )
    debug_id = _s(body.get("debug_id"))
    if status == 429 or status >= 500:
        return GatewayUnavailable(
            f"paypal: {message} ({code or status})", retry_after=_retry_after(headers)
        )
    if status == 401:
        return GatewayError(f"paypal: authentication failed: {message}")
    return GatewayDeclined(message, code=code, request_id=debug_id)


def _retry_after(headers: Any) -> float | None:
    return retry_after_header(headers if isinstance(headers, Mapping) else None)


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ""
