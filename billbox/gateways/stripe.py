"""The Stripe adapter: the only module that imports ``stripe``.

Webhooks are verified with ``stripe.WebhookSignature.verify_header`` (an
HMAC-SHA256 of ``"{t}.{body}"``) and the body is read with ``json.loads``;
``stripe.Webhook.construct_event`` is never used on the request path
because building StripeObjects costs ~350 µs against ~15 µs for both steps
(BASELINES.md). Event bodies, old (2016-2020) and current API shapes alike,
are mapped to the ledger's normalised types by plain functions over dicts.

Every normalised object carries the *event's* ``created`` as ``updated_at``
so an older event can never overwrite a newer one in the ledger; objects
re-fetched through the API carry the fetch time instead.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import stripe as stripe_sdk

from billbox.gateways.base import (
    WEBHOOK_TOLERANCE,
    Capability,
    GatewayActions,
    GatewayAdapter,
    GatewayError,
    GatewayLister,
    GatewayParseError,
    GatewayUnavailable,
    Ignored,
    NormalisedObject,
    ObjectKind,
    Page,
    ParseResult,
    VerifiedEvent,
    WebhookVerificationError,
)
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.models import GatewayInvoiceStatus, PaymentStatus, RefundStatus, SubscriptionStatus
from billbox.money import Money
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


# Parsing ------------------------------------------------------------------

Mapper = Callable[[Json, datetime], list[NormalisedObject]]


def parse_event(body: bytes) -> ParseResult:
    """Normalise one Stripe event body (a JSON envelope with ``data.object``)."""
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise GatewayParseError(f"event body is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise GatewayParseError("event body is not a JSON object")
    event_type = event.get("type")
    data = event.get("data")
    if not isinstance(event_type, str) or not isinstance(data, dict):
        raise GatewayParseError("event has no type or data")
    obj = data.get("object")
    if not isinstance(obj, dict):
        raise GatewayParseError(f"{event_type}: data.object is not an object")
    created = _ts(event.get("created"))
    if created is None:
        raise GatewayParseError(f"{event_type}: event has no created timestamp")
    route = _route(event_type)
    if route is None:
        return Ignored(f"event type {event_type} is not mirrored")
    object_types, mapper = route
    object_type = obj.get("object")
    if object_type is not None and object_type not in object_types:
        return Ignored(f"{event_type} carries a {object_type}, not a {'/'.join(object_types)}")
    try:
        return mapper(obj, created)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise GatewayParseError(f"{event_type}: {exc.__class__.__name__}: {exc}") from exc


def _route(event_type: str) -> tuple[tuple[str, ...], Mapper] | None:
    if event_type == "invoice.upcoming":
        return None  # a preview without an id; nothing exists yet
    if event_type.startswith("charge.dispute."):
        return None
    for prefix, object_types, mapper in _ROUTES:
        if event_type.startswith(prefix):
            return object_types, mapper
    return None


def _one(fn: Callable[[Json, datetime], NormalisedObject]) -> Mapper:
    return lambda obj, created: [fn(obj, created)]


def payment_from_intent(obj: Json, updated_at: datetime) -> GatewayPayment:
    status_text = _req_str(obj, "status")
    status = _INTENT_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown payment_intent status {status_text!r}")
    if (
        status == PaymentStatus.PENDING
        and obj.get("last_payment_error")
        and status_text
        in (
            "requires_payment_method",
            "requires_source",
        )
    ):
        # Stripe returns a failed attempt to requires_payment_method with the error attached.
        status = PaymentStatus.FAILED
    charge = _latest_charge(obj)
    brand, last4 = _card(charge, obj.get("payment_method"))
    refunded = sum(_int(c.get("amount_refunded")) for c in _charges(obj))
    return GatewayPayment(
        external_id=_req_str(obj, "id"),
        customer_external_id=_ref(obj.get("customer")),
        status=status,
        amount=_int(obj.get("amount")),
        currency=_req_str(obj, "currency"),
        created_at=_ts(obj.get("created")) or updated_at,
        updated_at=updated_at,
        amount_refunded=refunded,
        description=_str(obj.get("description")),
        payment_method=(brand or _payment_type(charge, obj))[:64],
        card_last4=last4,
        payer_email=_opt_str(obj.get("receipt_email")) or _billing_email(charge),
        invoice_external_id=_ref(obj.get("invoice")),
    )


def payment_from_charge(obj: Json, updated_at: datetime) -> GatewayPayment:
    status_text = obj.get("status")
    captured = obj.get("captured", True) is not False
    if status_text == "succeeded" or (status_text is None and obj.get("paid")):
        status = PaymentStatus.SUCCEEDED if captured else PaymentStatus.AUTHORIZED
    elif status_text == "pending":
        status = PaymentStatus.PENDING
    elif status_text == "failed" or (status_text is None and obj.get("paid") is False):
        status = PaymentStatus.FAILED
    else:
        raise ValueError(f"unknown charge status {status_text!r}")
    brand, last4 = _card(obj, obj.get("payment_method"))
    return GatewayPayment(
        external_id=_req_str(obj, "id"),
        customer_external_id=_ref(obj.get("customer")),
        status=status,
        amount=_int(obj.get("amount")),
        currency=_req_str(obj, "currency"),
        created_at=_ts(obj.get("created")) or updated_at,
        updated_at=updated_at,
        amount_refunded=_int(obj.get("amount_refunded")),
        description=_str(obj.get("description")),
        payment_method=(brand or _payment_type(obj, {}))[:64],
        card_last4=last4,
        payer_email=_opt_str(obj.get("receipt_email")) or _billing_email(obj),
        invoice_external_id=_ref(obj.get("invoice")),
    )


def _from_charge(obj: Json, updated_at: datetime) -> list[NormalisedObject]:
    """A charge is the payment only when no PaymentIntent owns it; its refunds always count."""
    out: list[NormalisedObject] = []
    intent = _ref(obj.get("payment_intent"))
    if intent is None:
        out.append(payment_from_charge(obj, updated_at))
    payment_id = intent or _req_str(obj, "id")
    refunds = obj.get("refunds")
    items = refunds.get("data") if isinstance(refunds, dict) else refunds
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            out.append(refund_from_object(item, updated_at, payment_id))
    return out


def refund_from_object(
    obj: Json, updated_at: datetime, payment_external_id: str | None = None
) -> GatewayRefund:
    status_text = _opt_str(obj.get("status")) or "succeeded"  # pre-2017 refunds had no status
    status = _REFUND_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown refund status {status_text!r}")
    payment = payment_external_id or _ref(obj.get("payment_intent")) or _ref(obj.get("charge"))
    if payment is None:
        raise ValueError("refund names neither a payment_intent nor a charge")
    return GatewayRefund(
        external_id=_req_str(obj, "id"),
        payment_external_id=payment,
        status=status,
        amount=_int(obj.get("amount")),
        currency=_req_str(obj, "currency"),
        created_at=_ts(obj.get("created")),
        updated_at=updated_at,
        reason=_str(obj.get("reason")),
    )


def _refund(obj: Json, updated_at: datetime) -> NormalisedObject:
    return refund_from_object(obj, updated_at)


def customer_from_object(obj: Json, _updated_at: datetime | None = None) -> GatewayCustomer:
    address = obj.get("address") if isinstance(obj.get("address"), dict) else {}
    assert isinstance(address, dict)
    locales = obj.get("preferred_locales")
    locale = locales[0] if isinstance(locales, list) and locales else None
    lines = [
        address.get("line1"),
        address.get("line2"),
        " ".join(str(p) for p in (address.get("postal_code"), address.get("city")) if p),
        address.get("state"),
    ]
    return GatewayCustomer(
        external_id=_req_str(obj, "id"),
        email=_opt_str(obj.get("email")),
        name=_str(obj.get("name")),
        country=_opt_str(address.get("country")),
        address="\n".join(str(line) for line in lines if line),
        locale=_opt_str(locale),
        created_at=_ts(obj.get("created")),
    )


def subscription_from_object(obj: Json, updated_at: datetime) -> GatewaySubscription:
    status_text = _req_str(obj, "status")
    status = _SUBSCRIPTION_STATUS.get(status_text)
    if status is None:
        raise ValueError(f"unknown subscription status {status_text!r}")
    items_field = obj.get("items")
    items = items_field.get("data") if isinstance(items_field, dict) else None
    lines: list[tuple[Json, int, Json]] = []  # (price, quantity, item)
    for item in items if isinstance(items, list) else []:
        price = item.get("price") or item.get("plan")
        if isinstance(price, dict):
            lines.append((price, _int(item.get("quantity"), 1), item))
    if not lines:
        price = obj.get("plan") or obj.get("price")
        if isinstance(price, dict):
            lines.append((price, _int(obj.get("quantity"), 1), obj))
    first = lines[0][0] if lines else {}
    currency = _opt_str(first.get("currency")) or _req_str(obj, "currency")
    amount = sum(
        _int(price.get("unit_amount", price.get("amount"))) * quantity
        for price, quantity, _ in lines
    )
    recurring = first.get("recurring") if isinstance(first.get("recurring"), dict) else None
    interval = _opt_str((recurring or first).get("interval")) or "month"
    period_ends = [_ts(item.get("current_period_end")) for _, _, item in lines]
    period_end = _ts(obj.get("current_period_end")) or max(
        (p for p in period_ends if p is not None), default=None
    )
    return GatewaySubscription(
        external_id=_req_str(obj, "id"),
        customer_external_id=_ref(obj.get("customer")),
        status=status,
        plan_name=_with_discounts(_plan_name(first), obj),
        amount=amount,
        currency=currency,
        interval=interval[:16],
        price_external_id=_opt_str(first.get("id")),
        current_period_end=period_end,
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        canceled_at=_ts(obj.get("canceled_at")),
        created_at=_ts(obj.get("created")),
        updated_at=updated_at,
    )


def invoice_from_object(
    obj: Json, updated_at: datetime, *, deleted: bool = False
) -> GatewayInvoiceData:
    status_text = _opt_str(obj.get("status"))
    if deleted or obj.get("deleted"):
        status = GatewayInvoiceStatus.VOID
    elif status_text is not None:
        found = _INVOICE_STATUS.get(status_text)
        if found is None:
            raise ValueError(f"unknown invoice status {status_text!r}")
        status = found
    elif obj.get("paid"):  # pre-2018 invoices had booleans, no status
        status = GatewayInvoiceStatus.PAID
    elif obj.get("forgiven"):
        status = GatewayInvoiceStatus.UNCOLLECTIBLE
    else:
        status = GatewayInvoiceStatus.OPEN
    transitions = obj.get("status_transitions")
    paid_at = _ts(transitions.get("paid_at")) if isinstance(transitions, dict) else None
    subscription = _ref(obj.get("subscription"))
    parent = obj.get("parent")
    if subscription is None and isinstance(parent, dict):
        details = parent.get("subscription_details")
        if isinstance(details, dict):
            subscription = _ref(details.get("subscription"))
    return GatewayInvoiceData(
        external_id=_req_str(obj, "id"),
        customer_external_id=_ref(obj.get("customer")),
        status=status,
        amount_due=_int(obj.get("amount_due", obj.get("total"))),
        amount_paid=_int(obj.get("amount_paid")),
        currency=_req_str(obj, "currency"),
        number=(_opt_str(obj.get("number")) or None),
        subscription_external_id=subscription,
        due_at=_ts(obj.get("due_date")),
        paid_at=paid_at,
        hosted_url=(_opt_str(obj.get("hosted_invoice_url")) or "")[:500] or None,
        created_at=_ts(obj.get("created") or obj.get("date")),
        updated_at=updated_at,
    )


def _invoice(obj: Json, updated_at: datetime) -> NormalisedObject:
    return invoice_from_object(obj, updated_at)


def _deleted_invoice(obj: Json, updated_at: datetime) -> list[NormalisedObject]:
    return [invoice_from_object(obj, updated_at, deleted=True)]


_ROUTES: tuple[tuple[str, tuple[str, ...], Mapper], ...] = (
    ("payment_intent.", ("payment_intent",), _one(payment_from_intent)),
    ("charge.refund.", ("refund",), _one(_refund)),
    ("refund.", ("refund",), _one(_refund)),
    ("charge.", ("charge",), _from_charge),
    ("customer.subscription.", ("subscription",), _one(subscription_from_object)),
    ("customer.", ("customer",), _one(customer_from_object)),
    ("invoice.deleted", ("invoice",), _deleted_invoice),
    ("invoice.", ("invoice",), _one(_invoice)),
)

_INTENT_STATUS = {
    "requires_payment_method": PaymentStatus.PENDING,
    "requires_source": PaymentStatus.PENDING,  # API < 2019-02-11
    "requires_confirmation": PaymentStatus.PENDING,
    "processing": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "requires_source_action": PaymentStatus.REQUIRES_ACTION,  # API < 2019-02-11
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}

_REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}

_SUBSCRIPTION_STATUS = {
    "incomplete": SubscriptionStatus.INCOMPLETE,
    "incomplete_expired": SubscriptionStatus.CANCELED,
    "trialing": SubscriptionStatus.TRIALING,
    "active": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "paused": SubscriptionStatus.PAUSED,
    "unpaid": SubscriptionStatus.UNPAID,
    "canceled": SubscriptionStatus.CANCELED,
}

_INVOICE_STATUS = {
    "draft": GatewayInvoiceStatus.DRAFT,
    "open": GatewayInvoiceStatus.OPEN,
    "paid": GatewayInvoiceStatus.PAID,
    "void": GatewayInvoiceStatus.VOID,
    "uncollectible": GatewayInvoiceStatus.UNCOLLECTIBLE,
    "deleted": GatewayInvoiceStatus.VOID,
}


# Small readers for untrusted dicts ------------------------------------------


def _ts(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(int(value), UTC)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _req_str(obj: Json, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"missing {key}")
    return value


def _ref(value: Any) -> str | None:
    """An id whether the field holds the id or the expanded object."""
    if isinstance(value, dict):
        return _opt_str(value.get("id"))
    return _opt_str(value)


def _charges(intent: Json) -> list[Json]:
    charges = intent.get("charges")
    data = charges.get("data") if isinstance(charges, dict) else None
    found = [c for c in data if isinstance(c, dict)] if isinstance(data, list) else []
    latest = intent.get("latest_charge")
    if isinstance(latest, dict) and all(c.get("id") != latest.get("id") for c in found):
        found.append(latest)
    return found


def _latest_charge(intent: Json) -> Json:
    charges = _charges(intent)
    return max(charges, key=lambda c: _int(c.get("created"))) if charges else {}


def _card(charge: Json, payment_method: Any) -> tuple[str | None, str | None]:
    details = charge.get("payment_method_details")
    card = details.get("card") if isinstance(details, dict) else None
    if not isinstance(card, dict):
        source = charge.get("source")  # pre-PaymentMethod charges
        card = source if isinstance(source, dict) and source.get("object") == "card" else None
    if not isinstance(card, dict) and isinstance(payment_method, dict):
        card = payment_method.get("card")
    if not isinstance(card, dict):
        return None, None
    last4 = _opt_str(card.get("last4"))
    brand = _opt_str(card.get("brand"))
    return (brand.lower() if brand else None), (last4 if last4 and len(last4) == 4 else None)


def _payment_type(charge: Json, intent: Json) -> str:
    details = charge.get("payment_method_details")
    if isinstance(details, dict) and _opt_str(details.get("type")):
        return str(details["type"])
    types = intent.get("payment_method_types")
    return str(types[0]) if isinstance(types, list) and types and isinstance(types[0], str) else ""


def _billing_email(charge: Json) -> str | None:
    billing = charge.get("billing_details")
    email = billing.get("email") if isinstance(billing, dict) else None
    return _opt_str(email) or _opt_str(charge.get("receipt_email"))


#: Room the subscription's plan name has in the ledger (``subscription.plan_name``).
_PLAN_NAME_MAX = 200


def _with_discounts(plan: str, subscription: Json) -> str:
    """The plan name, followed by the subscription's discounts when it has any.

    The ledger has no discount column, and the plan name is what the agent
    (billing context), the admin and the portal show for a subscription, so
    a coupon travels there: ``Pro monthly (coupon TENOFF)``. The listed
    ``amount`` stays the price before discounts.
    """
    note = _discount_note(subscription)
    if not note:
        return plan[:_PLAN_NAME_MAX]
    return f"{plan[: _PLAN_NAME_MAX - len(note) - 3]} ({note})"


def _discount_note(subscription: Json) -> str:
    """``coupon TENOFF until 2027-02-25``, ``coupons A, B``, or ``discounted``.

    Reads every API shape: ``discounts`` holding expanded Discount objects
    (the coupon under ``source.coupon`` since 2025-09-30.clover, as an
    embedded ``coupon`` before), holding bare ``di_…`` ids (events and
    unexpanded answers: a discount whose coupon cannot be named), and the
    single ``discount`` object of API versions before 2025-03-31.basil.
    """
    entries = subscription.get("discounts")
    items: list[Any] = list(entries) if isinstance(entries, list) else []
    legacy = subscription.get("discount")
    if not items and isinstance(legacy, dict):
        items = [legacy]
    named: list[str] = []
    unnamed = 0
    for item in items:
        source = item.get("source") if isinstance(item, dict) else None
        if isinstance(source, dict):
            coupon = source.get("coupon")
        else:
            coupon = item.get("coupon") if isinstance(item, dict) else None
        coupon_id = _ref(coupon)
        if coupon_id is None or not isinstance(item, dict):
            unnamed += 1
            continue
        terms = _coupon_terms(coupon) if isinstance(coupon, dict) else ""
        end = _ts(item.get("end"))
        until = f" until {end.date().isoformat()}" if end else ""
        named.append(f"{coupon_id}{terms}{until}")
    if not named:
        return "discounted" if unnamed else ""
    more = f" and {unnamed} more discount{'s' if unnamed > 1 else ''}" if unnamed else ""
    return f"coupon{'s' if len(named) > 1 else ''} {', '.join(named)}{more}"


def _coupon_terms(coupon: Json) -> str:
    """``: 10% off`` or ``: 5.00 EUR off`` from an expanded Coupon; empty when unreadable."""
    percent = coupon.get("percent_off")
    if isinstance(percent, int | float) and not isinstance(percent, bool):
        return f": {Decimal(str(percent)).normalize():f}% off"
    amount, currency = coupon.get("amount_off"), _opt_str(coupon.get("currency"))
    if isinstance(amount, int) and not isinstance(amount, bool) and currency:
        try:
            return f": {Money(amount, currency)} off"
        except ValueError:
            return ""
    return ""


def _plan_name(price: Json) -> str:
    product = price.get("product")
    if isinstance(product, dict) and _opt_str(product.get("name")):
        return str(product["name"])
    return (
        _opt_str(price.get("nickname"))
        or _opt_str(price.get("name"))  # plans before 2018 had a name
        or _opt_str(price.get("id"))
        or ""
    )


if TYPE_CHECKING:  # mypy proves the adapter satisfies the protocol
    _conforms: GatewayAdapter = StripeGateway()
    _acts: GatewayActions = StripeGateway()
    _lists: GatewayLister = StripeGateway()
