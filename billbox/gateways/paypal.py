"""The PayPal adapter: webhooks, fetching, actions and sync listing for one PayPal REST app.

Webhook authenticity is checked with PayPal's documented verification
call: the delivery's ``PAYPAL-TRANSMISSION-ID/-TIME/-SIG``, ``PAYPAL-CERT-URL`` and
``PAYPAL-AUTH-ALGO`` headers, our ``PAYPAL_WEBHOOK_ID`` and the event are
posted to ``/v1/notifications/verify-webhook-signature``, and only
``"verification_status": "SUCCESS"`` passes. This costs one network call on
the request path (the base protocol prefers none), chosen over the offline
certificate check because the latter needs its own certificate download,
cache, chain and host validation — more code that could be subtly wrong
for a request path that is not hot (one delivery per payment event).
Missing headers and a transmission time more than ``WEBHOOK_TOLERANCE``
seconds away from our clock are refused *before* any call. The event is
embedded byte for byte in the verification request: PayPal checks a CRC32
of the event as it sent it, and re-serialising could change it.

See :mod:`~billbox.gateways.paypal_mapping` for how PayPal objects map onto
the ledger, :mod:`~billbox.gateways.paypal_events` for the event types
mirrored, :mod:`~billbox.gateways.paypal_listing` for sync, and
:mod:`~billbox.gateways.paypal_client` for tokens and error mapping.

Not PayPal features (:class:`UnsupportedAction`, not in ``capabilities``):
cancel at period end, coupons, tax ids, reading a payer by id.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from billbox.gateways.base import (
    WEBHOOK_TOLERANCE,
    Capability,
    GatewayActions,
    GatewayAdapter,
    GatewayDeclined,
    GatewayError,
    GatewayLister,
    ObjectKind,
    Page,
    ParseResult,
    UnsupportedAction,
    VerifiedEvent,
    WebhookVerificationError,
)
from billbox.gateways.paypal_client import DEFAULT_TIMEOUT, Json, PayPalClient, SdkCall
from billbox.gateways.paypal_events import parse_event
from billbox.gateways.paypal_invoices import invoices_page, send_invoice
from billbox.gateways.paypal_listing import subscriptions_page, transactions_page
from billbox.gateways.paypal_mapping import (
    authorization_to_payment,
    capture_to_payment,
    from_minor,
    opt_str,
    payer_to_customer,
    refund_to_refund,
    subscription_to_subscription,
)
from billbox.gateways.paypal_verify import Transmission, event_head
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.models import SubscriptionStatus
from billbox.settings import Settings

__all__ = ["NAME", "PayPalGateway", "parse_event"]

NAME = "paypal"
VERIFY_PATH = "/v1/notifications/verify-webhook-signature"
#: Ask for the full object on POSTs that would otherwise answer 204 or a minimal body.
PREFER_FULL = "return=representation"


class PayPalGateway:
    """A PayPal REST app: client id/secret for the API, webhook id for verification.

    The worker parses without any; a call needing missing ones raises :class:`GatewayError`.
    """

    name = NAME
    capabilities: frozenset[str] = frozenset(
        {
            Capability.WEBHOOKS,
            Capability.FETCH,
            Capability.LIST,
            Capability.REFUND,
            Capability.CAPTURE,
            Capability.VOID,
            Capability.CANCEL_SUBSCRIPTION,
            Capability.CREATE_SUBSCRIPTION,
            Capability.FINALIZE_INVOICE,
        }
    )

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        webhook_id: str | None = None,
        api_base: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        tolerance: int = WEBHOOK_TOLERANCE,
    ) -> None:
        self._client_id = client_id
        self._client_secret = client_secret
        self._webhook_id = webhook_id
        self._api_base = api_base
        self._timeout = timeout
        self._tolerance = tolerance
        self._client: PayPalClient | None = None
        self._client_lock = threading.Lock()  # one client (one token cache) per adapter

    @classmethod
    def from_settings(cls, settings: Settings) -> PayPalGateway:
        """Build from :class:`billbox.settings.Settings` (``PAYPAL_*`` variables)."""
        secret = settings.paypal_client_secret
        return cls(
            client_id=settings.paypal_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            webhook_id=settings.paypal_webhook_id,
            api_base=settings.paypal_api_base,
        )

    @property
    def can_verify(self) -> bool:
        """Verification needs the webhook id and API credentials (it is an API call)."""
        return bool(self._webhook_id and self._client_id and self._client_secret)

    # Webhooks ------------------------------------------------------------------------

    def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> VerifiedEvent:
        """Local checks (headers, freshness, JSON), then PayPal's verification call.

        Raises :class:`WebhookVerificationError` for a delivery that is not
        provably PayPal's, and :class:`~billbox.gateways.base.GatewayUnavailable`
        when PayPal cannot answer (the caller answers 503 so PayPal retries).
        """
        if not self.can_verify:
            raise WebhookVerificationError("PAYPAL_WEBHOOK_ID or API credentials not configured")
        transmission = Transmission.from_headers(headers)
        transmission.check_fresh(self._tolerance)
        event = event_head(body)
        assert self._webhook_id is not None
        request = transmission.verification_request(self._webhook_id, body)
        answer = self._api().rest("POST", VERIFY_PATH, request)
        if not answer or answer.get("verification_status") != "SUCCESS":
            raise WebhookVerificationError("PayPal did not confirm the signature")
        return event

    def parse_event(self, body: bytes) -> ParseResult:
        return parse_event(body)

    # Fetching --------------------------------------------------------------------------

    def fetch_customer(self, external_id: str) -> GatewayCustomer:
        raise UnsupportedAction("PayPal has no API to read a payer by payer_id")

    def fetch_payment(self, external_id: str) -> GatewayPayment:
        """A capture (with its order's payer), else an authorization, by id."""
        now = datetime.now(UTC)
        try:
            capture = self._get(
                lambda c: c.payments.get_captured_payment({"capture_id": external_id})
            )
        except GatewayDeclined as exc:
            if exc.code not in ("RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"):
                raise
        else:
            return capture_to_payment(capture, now, self._order_payer(capture))
        authorization = self._get(
            lambda c: c.payments.get_authorized_payment({"authorization_id": external_id})
        )
        return authorization_to_payment(authorization, now, self._order_payer(authorization))

    def fetch_subscription(self, external_id: str) -> GatewaySubscription:
        """The subscription priced by its plan (one extra call for the plan)."""
        return self._subscription(
            self._get(lambda c: c.subscriptions.get_subscription({"id": external_id}))
        )

    def _subscription(
        self, obj: Json, customer_external_id: str | None = None
    ) -> GatewaySubscription:
        plan_id = opt_str(obj.get("plan_id"))
        plan = self._get(lambda c: c.subscriptions.get_billing_plan(plan_id)) if plan_id else None
        mapped = subscription_to_subscription(obj, datetime.now(UTC), plan)
        if customer_external_id and mapped.customer_external_id is None:
            mapped = replace(mapped, customer_external_id=customer_external_id)
        return mapped

    def _order_payer(self, obj: Json) -> GatewayCustomer | None:
        supplementary = obj.get("supplementary_data")
        related = supplementary.get("related_ids") if isinstance(supplementary, dict) else None
        order_id = opt_str(related.get("order_id")) if isinstance(related, dict) else None
        if order_id is None:
            return None
        order = self._get(lambda c: c.orders.get_order({"id": order_id}))
        return payer_to_customer(order.get("payer"))

    # Actions ---------------------------------------------------------------------------

    def refund(
        self,
        payment_external_id: str,
        amount: int,
        currency: str,
        *,
        reason: str,
        idempotency_key: str,
    ) -> GatewayRefund:
        """``captures/{id}/refund``; the note reaches the payer (PayPal caps it at 255)."""
        body: Json = {"amount": from_minor(amount, currency)}
        if reason:
            body["note_to_payer"] = reason[:255]
        answer = self._get(
            lambda c: c.payments.refund_captured_payment(
                {
                    "capture_id": payment_external_id,
                    "paypal_request_id": idempotency_key,
                    "prefer": PREFER_FULL,
                    "body": json.dumps(body),
                }
            )
        )
        return refund_to_refund(answer, datetime.now(UTC), payment_external_id)

    def capture(
        self, payment_external_id: str, amount: int | None, *, idempotency_key: str
    ) -> GatewayPayment:
        """``authorizations/{id}/capture``: the answer is the new *capture* (its own Payment)."""
        body: Json = {"final_capture": True}
        if amount is not None:
            authorization = self._get(
                lambda c: c.payments.get_authorized_payment(
                    {"authorization_id": payment_external_id}
                )
            )
            money = authorization.get("amount")
            currency = opt_str(money.get("currency_code")) if isinstance(money, dict) else None
            if currency is None:
                raise GatewayError("paypal: authorization has no currency")
            body["amount"] = from_minor(amount, currency)
        answer = self._get(
            lambda c: c.payments.capture_authorized_payment(
                {
                    "authorization_id": payment_external_id,
                    "paypal_request_id": idempotency_key,
                    "prefer": PREFER_FULL,
                    "body": json.dumps(body),
                }
            )
        )
        return capture_to_payment(answer, datetime.now(UTC))

    def void(self, payment_external_id: str, *, idempotency_key: str) -> GatewayPayment:
        """``authorizations/{id}/void``; the voided authorization comes back ``canceled``."""
        answer = self._api().call(
            lambda c: c.payments.void_payment(
                {
                    "authorization_id": payment_external_id,
                    "paypal_request_id": idempotency_key,
                    "prefer": PREFER_FULL,
                }
            )
        )
        if answer is None:  # 204: PayPal ignored the Prefer header
            answer = self._get(
                lambda c: c.payments.get_authorized_payment(
                    {"authorization_id": payment_external_id}
                )
            )
        return authorization_to_payment(answer, datetime.now(UTC))

    def cancel_subscription(
        self, subscription_external_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> GatewaySubscription:
        """``subscriptions/{id}/cancel`` (immediate; the SDK sends no request id for it).

        Cancelling twice is safe without one: PayPal refuses the second with
        422 SUBSCRIPTION_STATUS_INVALID, and an already cancelled
        subscription is returned as it stands. The reason is stored by
        PayPal and may be shown to the payer, so it names no internal ids.
        """
        if at_period_end:
            raise UnsupportedAction("PayPal cancels subscriptions immediately, not at period end")
        reason = "Cancelled by the merchant's support team"
        try:
            self._api().call(
                lambda c: c.subscriptions.cancel_subscription(
                    {"id": subscription_external_id, "body": json.dumps({"reason": reason})}
                )
            )
        except GatewayDeclined as exc:
            if exc.code != "SUBSCRIPTION_STATUS_INVALID":
                raise
            current = self.fetch_subscription(subscription_external_id)
            if current.status != SubscriptionStatus.CANCELED:
                raise
            return current
        return self.fetch_subscription(subscription_external_id)

    def create_subscription(
        self,
        customer_external_id: str,
        price_external_id: str,
        *,
        coupon: str | None,
        idempotency_key: str,
    ) -> GatewaySubscription:
        """``billing/subscriptions`` with ``plan_id``; the payer still has to approve it.

        PayPal cannot attach a subscription to a payer id directly: the new
        subscription is APPROVAL_PENDING (``incomplete``) until the payer
        follows its ``approve`` link. Our customer id travels as
        ``custom_id`` so the subscription maps back to the customer.
        """
        if coupon:
            raise UnsupportedAction("PayPal subscriptions have no coupons")
        body = {"plan_id": price_external_id, "custom_id": customer_external_id[:127]}
        answer = self._get(
            lambda c: c.subscriptions.create_subscription(
                {
                    "paypal_request_id": idempotency_key,
                    "prefer": PREFER_FULL,
                    "body": json.dumps(body),
                }
            )
        )
        return self._subscription(answer, customer_external_id)

    def apply_coupon(
        self,
        customer_external_id: str,
        coupon: str,
        *,
        subscription_external_id: str | None,
        idempotency_key: str,
    ) -> GatewayCustomer | GatewaySubscription:
        raise UnsupportedAction("PayPal has no coupons")

    def add_tax_id(
        self, customer_external_id: str, scheme: str, value: str, *, idempotency_key: str
    ) -> GatewayCustomer:
        raise UnsupportedAction("PayPal keeps no tax ids on payers")

    def finalize_invoice(
        self, invoice_external_id: str, *, send: bool, idempotency_key: str
    ) -> GatewayInvoiceData:
        """Invoicing v2 ``send`` (not in the SDK; see :mod:`.paypal_invoices`)."""
        return send_invoice(
            self._api(), invoice_external_id, send=send, idempotency_key=idempotency_key
        )

    # Sync listing ---------------------------------------------------------------------

    def list_page(
        self, kind: ObjectKind, cursor: str | None, *, since: datetime | None, limit: int = 100
    ) -> Page:
        """Payments, refunds and customers from Transaction Search; subscriptions and
        invoices from their own list calls."""
        if kind == ObjectKind.SUBSCRIPTION:
            return subscriptions_page(self._api(), cursor, since=since, limit=limit)
        if kind == ObjectKind.INVOICE:
            return invoices_page(self._api(), cursor, since=since, limit=limit)
        return transactions_page(self._api(), kind, cursor, since=since, limit=limit)

    def check_connection(self) -> str:
        """Ask PayPal for an OAuth2 token with the client id and secret: what every call needs."""
        client = self._api()
        client.access_token()
        return f"PayPal issued an access token ({client.api_base})"

    # Plumbing --------------------------------------------------------------------------

    def _api(self) -> PayPalClient:
        with self._client_lock:
            if self._client is None:
                if not (self._client_id and self._client_secret):
                    raise GatewayError("PAYPAL_CLIENT_ID / PAYPAL_CLIENT_SECRET are not configured")
                self._client = PayPalClient(
                    self._client_id,
                    self._client_secret,
                    api_base=self._api_base,
                    timeout=self._timeout,
                )
            return self._client

    def _get(self, operation: SdkCall) -> Json:
        return self._api().get_object(operation)


if TYPE_CHECKING:  # mypy proves the adapter satisfies the protocols
    _adapter: GatewayAdapter = PayPalGateway()
    _actions: GatewayActions = PayPalGateway()
    _lister: GatewayLister = PayPalGateway()
