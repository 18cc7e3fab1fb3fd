"""The Stripe adapter: SDK calls, webhook verification and fetching, behind our interface.

Webhooks are verified with ``stripe.WebhookSignature.verify_header`` (an
HMAC-SHA256 of ``"{t}.{body}"``) and the body is read with ``json.loads``;
``stripe.Webhook.construct_event`` is never used on the request path
because building StripeObjects costs ~350 µs against ~15 µs for both steps
(BASELINES.md). Event bodies, old (2016-2020) and current API shapes alike,
are mapped to the ledger's normalised types by plain functions over dicts in
:mod:`billbox.gateways.stripe_objects`; actions live in
:mod:`billbox.gateways.stripe_actions`, listing in
:mod:`billbox.gateways.stripe_listing`.

Event types mirrored (others are :class:`~billbox.gateways.base.Ignored`):

========================== ============== =====================================
event type                 data.object    normalised as
========================== ============== =====================================
payment_intent.*           payment_intent GatewayPayment
charge.* (not dispute)     charge         GatewayPayment when it has no
                                          payment_intent (pre-2019 charges),
                                          plus a GatewayRefund per listed refund
charge.refund.*, refund.*  refund         GatewayRefund
customer.* (customer obj)  customer       GatewayCustomer
customer.subscription.*    subscription   GatewaySubscription
invoice.* (not upcoming)   invoice        GatewayInvoiceData
========================== ============== =====================================
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import stripe as stripe_sdk

from billbox.gateways.base import (
    WEBHOOK_TOLERANCE,
    Capability,
    GatewayActions,
    GatewayAdapter,
    GatewayError,
    GatewayLister,
    GatewayUnavailable,
    ObjectKind,
    Page,
    ParseResult,
    VerifiedEvent,
    WebhookVerificationError,
)
from billbox.gateways.stripe_objects import (
    _ts,
    customer_from_object,
    parse_event,
    payment_from_charge,
    payment_from_intent,
)
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.retry_after import retry_after_header
from billbox.settings import Settings

NAME = "stripe"
SIGNATURE_HEADER = "Stripe-Signature"
DEFAULT_TIMEOUT = 10.0

Json = dict[str, Any]


class StripeGateway:
    """A Stripe account: webhook secret for verifying, API key for fetching.

    Either may be missing: the web process needs only the secret, the
    worker parses without any; a call needing the missing one raises
    :class:`GatewayError`. The SDK client is built on first use.
    """

    name = NAME
    capabilities: frozenset[str] = frozenset(
        {
            Capability.WEBHOOKS,
            Capability.FETCH,
            Capability.LIST,
            # Actions (implemented in stripe_actions.py):
            Capability.REFUND,
            Capability.CAPTURE,
            Capability.VOID,
            Capability.CANCEL_SUBSCRIPTION,
            Capability.CANCEL_AT_PERIOD_END,
            Capability.CREATE_SUBSCRIPTION,
            Capability.APPLY_COUPON,
            Capability.ADD_TAX_ID,
            Capability.FINALIZE_INVOICE,
        }
    )

    def __init__(
        self,
        *,
        api_key: str | None = None,
        webhook_secret: str | None = None,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tolerance: int = WEBHOOK_TOLERANCE,
    ) -> None:
        self._api_key = api_key
        self._webhook_secret = webhook_secret
        self._api_base = api_base
        self._timeout = timeout
        self._tolerance = tolerance
        self._client: stripe_sdk.StripeClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeGateway:
        """Build from :class:`billbox.settings.Settings` (``STRIPE_*`` variables)."""
        key = settings.stripe_api_key
        secret = settings.stripe_webhook_secret
        return cls(
            api_key=key.get_secret_value() if key else None,
            webhook_secret=secret.get_secret_value() if secret else None,
            api_base=settings.stripe_api_base,
        )

    @property
    def can_verify(self) -> bool:
        return bool(self._webhook_secret)

    # Webhooks -----------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        if not self._webhook_secret:
            raise WebhookVerificationError("STRIPE_WEBHOOK_SECRET is not configured")
        header = _header(headers, SIGNATURE_HEADER)
        if not header:
            raise WebhookVerificationError(f"missing {SIGNATURE_HEADER} header")
        try:
            stripe_sdk.WebhookSignature.verify_header(
                body, header, self._webhook_secret, tolerance=self._tolerance
            )
        except stripe_sdk.SignatureVerificationError as exc:
            raise WebhookVerificationError(str(exc)) from None
        except UnicodeDecodeError:
            raise WebhookVerificationError("body is not UTF-8") from None
        try:
            event = json.loads(body)
        except ValueError:
            raise WebhookVerificationError("signed body is not JSON") from None
        if not isinstance(event, dict):
            raise WebhookVerificationError("signed body is not a JSON object")
        event_id, event_type = event.get("id"), event.get("type")
        if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
            raise WebhookVerificationError("signed body has no event id or type")
        created = _ts(event.get("created")) or datetime.now(UTC)
        return VerifiedEvent(event_id=event_id[:128], event_type=event_type[:128], created=created)

    def parse_event(self, body: bytes) -> ParseResult:
        return parse_event(body)

    # Fetching the source of truth ---------------------------------------

    def fetch_customer(self, external_id: str) -> GatewayCustomer:
        with _mapped_errors():
            obj = self._sdk().v1.customers.retrieve(external_id)
        return customer_from_object(obj.to_dict())

    def fetch_payment(self, external_id: str) -> GatewayPayment:
        """A PaymentIntent (``pi_…``) or, for pre-PaymentIntent payments, a charge."""
        now = datetime.now(UTC)
        with _mapped_errors():
            if external_id.startswith("ch_") or external_id.startswith("py_"):
                charge = self._sdk().v1.charges.retrieve(external_id).to_dict()
                return payment_from_charge(charge, now)
            intent = self._sdk().v1.payment_intents.retrieve(external_id).to_dict()
        return payment_from_intent(intent, now)

    # Actions (GatewayActions; the work is in stripe_actions.py) ----------

    def refund(
        self,
        payment_external_id: str,
        amount: int,
        currency: str,
        *,
        reason: str,
        idempotency_key: str,
    ) -> GatewayRefund:
        """Stripe refunds in the payment's own currency; the caller checked ``currency``."""
        from billbox.gateways import stripe_actions

        return stripe_actions.refund(
            self._sdk(), payment_external_id, amount, reason=reason, idempotency_key=idempotency_key
        )

    def capture(
        self, payment_external_id: str, amount: int | None, *, idempotency_key: str
    ) -> GatewayPayment:
        from billbox.gateways import stripe_actions

        return stripe_actions.capture(
            self._sdk(), payment_external_id, amount, idempotency_key=idempotency_key
        )

    def void(self, payment_external_id: str, *, idempotency_key: str) -> GatewayPayment:
        from billbox.gateways import stripe_actions

        return stripe_actions.void(
            self._sdk(), payment_external_id, idempotency_key=idempotency_key
        )

    def cancel_subscription(
        self, subscription_external_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> GatewaySubscription:
        from billbox.gateways import stripe_actions

        return stripe_actions.cancel_subscription(
            self._sdk(),
            subscription_external_id,
            at_period_end=at_period_end,
            idempotency_key=idempotency_key,
        )

    def create_subscription(
        self,
        customer_external_id: str,
        price_external_id: str,
        *,
        coupon: str | None,
        idempotency_key: str,
    ) -> GatewaySubscription:
        from billbox.gateways import stripe_actions

        return stripe_actions.create_subscription(
            self._sdk(),
            customer_external_id,
            price_external_id,
            coupon=coupon,
            idempotency_key=idempotency_key,
        )

    def apply_coupon(
        self,
        customer_external_id: str,
        coupon: str,
        *,
        subscription_external_id: str | None,
        idempotency_key: str,
    ) -> GatewayCustomer | GatewaySubscription:
        from billbox.gateways import stripe_actions

        return stripe_actions.apply_coupon(
            self._sdk(),
            customer_external_id,
            coupon,
            subscription_external_id=subscription_external_id,
            idempotency_key=idempotency_key,
        )

    def add_tax_id(
        self, customer_external_id: str, scheme: str, value: str, *, idempotency_key: str
    ) -> GatewayCustomer:
        from billbox.gateways import stripe_actions

        return stripe_actions.add_tax_id(
            self._sdk(), customer_external_id, scheme, value, idempotency_key=idempotency_key
        )

    def create_setup_intent(
        self, customer_external_id: str, *, idempotency_key: str
    ) -> tuple[str, str]:
        """For the billing page's card form (Stripe.js): (SetupIntent id, client secret)."""
        from billbox.gateways import stripe_actions

        return stripe_actions.create_setup_intent(
            self._sdk(), customer_external_id, idempotency_key=idempotency_key
        )

    def use_setup_intent(self, customer_external_id: str, setup_intent_id: str) -> str:
        """Make the card a succeeded SetupIntent saved the customer's default payment method."""
        from billbox.gateways import stripe_actions

        return stripe_actions.use_setup_intent(self._sdk(), customer_external_id, setup_intent_id)

    def finalize_invoice(
        self, invoice_external_id: str, *, send: bool, idempotency_key: str
    ) -> GatewayInvoiceData:
        from billbox.gateways import stripe_actions

        return stripe_actions.finalize_invoice(
            self._sdk(), invoice_external_id, send=send, idempotency_key=idempotency_key
        )

    def check_connection(self) -> str:
        """List one customer: the call Billbox needs most, so a restricted key lacking it fails.

        The mode comes from the key's own prefix (``sk_live_``/``rk_live_``).
        """
        with _mapped_errors():
            self._sdk().v1.customers.list(params={"limit": 1})
        mode = "live" if "_live_" in (self._api_key or "") else "test"
        return f"Stripe accepted the key ({mode} mode)"

    def _sdk(self) -> stripe_sdk.StripeClient:
        if self._client is None:
            if not self._api_key:
                raise GatewayError("STRIPE_API_KEY is not configured")
            self._client = stripe_sdk.StripeClient(
                self._api_key,
                base_addresses={"api": self._api_base} if self._api_base else None,
                http_client=stripe_sdk.new_default_http_client(timeout=self._timeout),
                max_network_retries=2,
            )
        return self._client

    def list_page(
        self, kind: ObjectKind, cursor: str | None, *, since: datetime | None, limit: int = 100
    ) -> Page:
        """One page for ``billbox sync``; the rules: :mod:`billbox.gateways.stripe_listing`."""
        from billbox.gateways import stripe_listing

        now = datetime.now(UTC)
        with _mapped_errors():
            return stripe_listing.list_page(
                self._sdk(), kind, cursor, since=since, limit=limit, now=now
            )


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Turn ``stripe.StripeError`` into our errors, like httpx's ``map_httpcore_exceptions``."""
    try:
        yield
    except stripe_sdk.RateLimitError as exc:
        retry_after = _retry_after(exc.headers)
        raise GatewayUnavailable(
            f"stripe: {exc.user_message or exc}", retry_after=retry_after
        ) from exc
    except stripe_sdk.APIConnectionError as exc:
        raise GatewayUnavailable(f"stripe: {exc.user_message or exc}") from exc
    except stripe_sdk.StripeError as exc:
        raise GatewayError(f"stripe: {exc.__class__.__name__}: {exc.user_message or exc}") from exc


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a 429's ``Retry-After``; None when absent."""
    return retry_after_header(headers)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


if TYPE_CHECKING:  # mypy proves the adapter satisfies the protocol
    _conforms: GatewayAdapter = StripeGateway()
    _acts: GatewayActions = StripeGateway()
    _lists: GatewayLister = StripeGateway()
