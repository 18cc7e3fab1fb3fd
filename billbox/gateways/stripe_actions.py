"""Stripe's one-click actions: refund, capture, void, subscriptions, coupons, tax ids, invoices.

The second half of the Stripe adapter (``stripe.py`` holds webhooks and
fetching); :class:`~billbox.gateways.stripe.StripeGateway` exposes these as
thin methods. Each function takes a ``stripe.StripeClient`` and sends the
caller's idempotency key in the request options, so a repeated call with
the same key gets Stripe's first answer instead of acting twice. Answers
are normalised with the mapping functions of ``stripe.py``; SDK objects
never leave this module.

Errors are mapped for actions, where the question is "did it happen?":

========================================= =====================================
stripe error                              raised as
========================================= =====================================
CardError, InvalidRequestError,           GatewayDeclined (did not happen;
AuthenticationError, PermissionError      message, code and request id kept)
APIConnectionError, RateLimitError,       GatewayUnavailable (unknown or not
APIError (5xx), IdempotencyError (409)    yet; retry with the same key)
========================================= =====================================

Parameter choices, each the one both Stripe and localstripe accept:
subscriptions are created with ``items[0][plan]`` (Stripe accepts a price
id there), the agent's free-text reason goes to refund ``metadata``
(Stripe's own ``reason`` takes three fixed values), and coupons go in
``discounts`` (API 2025-03-31.basil removed the ``coupon`` parameter).
Subscription answers are asked for with ``expand[]=discounts`` so the
ledger learns which coupon is on them (unexpanded, ``discounts`` holds
only ``di_…`` ids); Stripe documents that expansion on the field itself.
An unknown coupon (``resource_missing`` on a ``discounts`` parameter) is
reported to the agent as such rather than with Stripe's bare sentence.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import stripe as stripe_sdk

from billbox.gateways.base import GatewayDeclined, GatewayUnavailable, UnsupportedAction
from billbox.gateways.stripe_objects import (
    customer_from_object,
    invoice_from_object,
    payment_from_charge,
    payment_from_intent,
    refund_from_object,
    subscription_from_object,
)
from billbox.gateways.types import (
    GatewayCustomer,
    GatewayInvoiceData,
    GatewayPayment,
    GatewayRefund,
    GatewaySubscription,
)
from billbox.retry_after import retry_after_header

Client = stripe_sdk.StripeClient

#: Stripe keeps metadata values up to 500 characters.
_METADATA_MAX = 500


def _options(idempotency_key: str) -> Any:
    return {"idempotency_key": idempotency_key}


def _is_charge(external_id: str) -> bool:
    """Pre-2019 payments are charges (``ch_``/``py_``); later ones PaymentIntents."""
    return external_id.startswith(("ch_", "py_"))


#: Ask Stripe for the Discount objects, not just their ids, on subscription answers.
_EXPAND_DISCOUNTS = ["discounts"]


@contextmanager
def _coupon_errors(coupon: str) -> Iterator[None]:
    """Name the coupon when Stripe has none by that id; other errors map as usual."""
    with mapped_action_errors():
        try:
            yield
        except stripe_sdk.InvalidRequestError as exc:
            if exc.code == "resource_missing" and (exc.param or "").startswith("discounts"):
                raise GatewayDeclined(
                    f"Stripe has no coupon {coupon!r} (coupon ids are case-sensitive); "
                    "nothing was changed.",
                    code=exc.code,
                    request_id=exc.request_id or "",
                ) from exc
            raise


def _retry_after(exc: stripe_sdk.StripeError) -> float | None:
    return retry_after_header(exc.headers)


@contextmanager
def mapped_action_errors() -> Iterator[None]:
    """Map stripe errors to GatewayDeclined (did not happen) or GatewayUnavailable (retry)."""
    try:
        yield
    except (stripe_sdk.CardError, stripe_sdk.InvalidRequestError) as exc:
        raise GatewayDeclined(
            exc.user_message or str(exc), code=exc.code or "", request_id=exc.request_id or ""
        ) from exc
    except (stripe_sdk.AuthenticationError, stripe_sdk.PermissionError) as exc:
        raise GatewayDeclined(
            f"Stripe refused our API key: {exc.user_message or exc}",
            code=exc.code or "authentication",
            request_id=exc.request_id or "",
        ) from exc
    except stripe_sdk.IdempotencyError as exc:
        raise GatewayUnavailable(
            f"stripe: a request with this idempotency key is still in progress: {exc.user_message}"
        ) from exc
    except (
        stripe_sdk.APIConnectionError,
        stripe_sdk.RateLimitError,
        stripe_sdk.APIError,
    ) as exc:
        raise GatewayUnavailable(
            f"stripe: {exc.user_message or exc.__class__.__name__}", retry_after=_retry_after(exc)
        ) from exc
    except stripe_sdk.StripeError as exc:  # anything else: we cannot tell whether it acted
        raise GatewayUnavailable(
            f"stripe: {exc.__class__.__name__}: {exc.user_message or exc}"
        ) from exc


def _payment(obj: Any, now: datetime) -> GatewayPayment:
    data = obj.to_dict()
    if data.get("object") == "charge":
        return payment_from_charge(data, now)
    return payment_from_intent(data, now)


def refund(
    client: Client,
    payment_external_id: str,
    amount: int,
    *,
    reason: str,
    idempotency_key: str,
) -> GatewayRefund:
    """Refund part or all of a captured PaymentIntent (or legacy charge)."""
    params: Any = {"amount": amount}
    if reason:
        params["metadata"] = {"billbox_reason": reason[:_METADATA_MAX]}
    params["charge" if _is_charge(payment_external_id) else "payment_intent"] = payment_external_id
    with mapped_action_errors():
        obj = client.v1.refunds.create(params=params, options=_options(idempotency_key))
    return refund_from_object(obj.to_dict(), datetime.now(UTC), payment_external_id)


def capture(
    client: Client, payment_external_id: str, amount: int | None, *, idempotency_key: str
) -> GatewayPayment:
    """Capture an authorized payment; ``amount=None`` captures all of it."""
    with mapped_action_errors():
        if _is_charge(payment_external_id):
            charge_params: Any = {} if amount is None else {"amount": amount}
            obj: Any = client.v1.charges.capture(
                payment_external_id, params=charge_params, options=_options(idempotency_key)
            )
        else:
            intent_params: Any = {} if amount is None else {"amount_to_capture": amount}
            obj = client.v1.payment_intents.capture(
                payment_external_id, params=intent_params, options=_options(idempotency_key)
            )
    return _payment(obj, datetime.now(UTC))


def void(client: Client, payment_external_id: str, *, idempotency_key: str) -> GatewayPayment:
    """Release an uncaptured authorization.

    A PaymentIntent is canceled; a legacy uncaptured charge is released by
    refunding it (Stripe's documented way), then re-read.
    """
    with mapped_action_errors():
        if _is_charge(payment_external_id):
            client.v1.refunds.create(
                params={"charge": payment_external_id}, options=_options(idempotency_key)
            )
            obj: Any = client.v1.charges.retrieve(payment_external_id)
        else:
            obj = client.v1.payment_intents.cancel(
                payment_external_id, options=_options(idempotency_key)
            )
    return _payment(obj, datetime.now(UTC))


def cancel_subscription(
    client: Client, subscription_external_id: str, *, at_period_end: bool, idempotency_key: str
) -> GatewaySubscription:
    """Cancel now (``DELETE``), or flag ``cancel_at_period_end`` so it runs out."""
    with mapped_action_errors():
        if at_period_end:
            obj = client.v1.subscriptions.update(
                subscription_external_id,
                params={"cancel_at_period_end": True},
                options=_options(idempotency_key),
            )
        else:
            obj = client.v1.subscriptions.cancel(
                subscription_external_id, options=_options(idempotency_key)
            )
    return subscription_from_object(obj.to_dict(), datetime.now(UTC))


def create_subscription(
    client: Client,
    customer_external_id: str,
    price_external_id: str,
    *,
    coupon: str | None,
    idempotency_key: str,
) -> GatewaySubscription:
    """Subscribe the customer to a price (charged to their default payment method)."""
    params: Any = {
        "customer": customer_external_id,
        "items": [{"plan": price_external_id}],
    }
    if coupon:
        params["discounts"] = [{"coupon": coupon}]
        params["expand"] = _EXPAND_DISCOUNTS
    with _coupon_errors(coupon or ""):
        obj = client.v1.subscriptions.create(params=params, options=_options(idempotency_key))
    return subscription_from_object(obj.to_dict(), datetime.now(UTC))


def apply_coupon(
    client: Client,
    customer_external_id: str,
    coupon: str,
    *,
    subscription_external_id: str | None,
    idempotency_key: str,
) -> GatewaySubscription:
    """Put a coupon on a subscription; Stripe's current API has no customer-wide coupon."""
    if subscription_external_id is None:
        raise UnsupportedAction(
            f"Stripe applies coupons to a subscription, not to customer {customer_external_id}; "
            "choose one of the customer's subscriptions"
        )
    params: Any = {"discounts": [{"coupon": coupon}], "expand": _EXPAND_DISCOUNTS}
    with _coupon_errors(coupon):
        obj = client.v1.subscriptions.update(
            subscription_external_id, params=params, options=_options(idempotency_key)
        )
    return subscription_from_object(obj.to_dict(), datetime.now(UTC))


#: Our tax-id kinds (billbox.taxids) to Stripe's tax id ``type``.
TAX_ID_TYPES = {"eu_vat": "eu_vat", "gb_vat": "gb_vat", "au_abn": "au_abn", "nz_ird": "nz_gst"}


def add_tax_id(
    client: Client, customer_external_id: str, scheme: str, value: str, *, idempotency_key: str
) -> GatewayCustomer:
    """Attach a validated tax id (``scheme`` is Stripe's type, ``eu_vat``); re-read the customer."""
    params: Any = {"type": scheme, "value": value}
    with mapped_action_errors():
        client.v1.customers.tax_ids.create(
            customer_external_id, params=params, options=_options(idempotency_key)
        )
        obj = client.v1.customers.retrieve(customer_external_id)
    return customer_from_object(obj.to_dict())


def finalize_invoice(
    client: Client, invoice_external_id: str, *, send: bool, idempotency_key: str
) -> GatewayInvoiceData:
    """Finalize a draft invoice; with ``send``, have Stripe email it to the customer.

    The send is a second request with its own derived key (``…:send``) so
    a retry after a failure between the two requests finalizes once and
    sends once.
    """
    with mapped_action_errors():
        obj = client.v1.invoices.finalize_invoice(
            invoice_external_id,
            params={"auto_advance": False},
            options=_options(idempotency_key),
        )
        if send:
            obj = client.v1.invoices.send_invoice(
                invoice_external_id, options=_options(f"{idempotency_key}:send")
            )
    return invoice_from_object(obj.to_dict(), datetime.now(UTC))


def create_setup_intent(
    client: Client, customer_external_id: str, *, idempotency_key: str
) -> tuple[str, str]:
    """A SetupIntent for the customer to enter a new card in Stripe.js: (id, client secret)."""
    params: Any = {"customer": customer_external_id, "usage": "off_session"}
    with mapped_action_errors():
        intent = client.v1.setup_intents.create(params=params, options=_options(idempotency_key))
    return str(intent.id), str(intent.client_secret)


def use_setup_intent(client: Client, customer_external_id: str, setup_intent_id: str) -> str:
    """Make the card a succeeded SetupIntent saved the customer's default; its payment method id.

    The intent is re-read from Stripe (never trusted from the browser): it must
    belong to this customer and have succeeded.
    """
    with mapped_action_errors():
        intent = client.v1.setup_intents.retrieve(setup_intent_id)
        owner = (
            intent.customer
            if isinstance(intent.customer, str)
            else getattr(intent.customer, "id", None)
        )
        if owner != customer_external_id or intent.status != "succeeded":
            raise GatewayDeclined("this card setup did not complete for this customer")
        method = intent.payment_method
        method_id = method if isinstance(method, str) else getattr(method, "id", "")
        params: Any = {"invoice_settings": {"default_payment_method": method_id}}
        client.v1.customers.update(customer_external_id, params=params)
    return str(method_id)
