"""Test-mode payments at Stripe for ``billbox demo``: customers who really paid, so agents can act.

The demo's agent actions (refunds, a cancellation) go through
``billbox.actions`` and so through the gateway; they need objects the
gateway knows. This creates them in a Stripe *test* account (or in
localstripe, which ``make demo`` starts) with Stripe's test card
``pm_card_visa``. A live key is refused before any call: a demo must never
charge anyone.

Vendor objects stay here: callers get Stripe ids and fetch the normalised
objects through :class:`~billbox.gateways.stripe.StripeGateway`.
"""

from __future__ import annotations

import stripe as stripe_sdk

from billbox.gateways.base import GatewayError
from billbox.gateways.stripe import _mapped_errors

TEST_CARD = "pm_card_visa"


def is_test_key(api_key: str) -> bool:
    return api_key.startswith(("sk_test_", "rk_test_"))


class StripeTestAccount:
    """Creates demo customers, payments and a plan with a test-mode key."""

    def __init__(self, api_key: str, *, api_base: str | None = None) -> None:
        if not is_test_key(api_key):
            raise GatewayError(
                "billbox demo only creates payments with a Stripe test key (sk_test_…); "
                "STRIPE_API_KEY is not one"
            )
        self._client = stripe_sdk.StripeClient(
            api_key, base_addresses={"api": api_base} if api_base else None
        )

    def customer(self, email: str, name: str, country: str) -> str:
        """A customer whose default payment method is the test card."""
        with _mapped_errors():
            created = self._client.v1.customers.create(
                params={
                    "email": email,
                    "name": name,
                    "address": {"country": country},
                    "payment_method": TEST_CARD,
                    "invoice_settings": {"default_payment_method": TEST_CARD},
                }
            )
        return str(created.id)

    def payment(self, customer: str, amount: int, currency: str) -> str:
        """A confirmed (succeeded) PaymentIntent of ``amount`` minor units."""
        with _mapped_errors():
            intent = self._client.v1.payment_intents.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "customer": customer,
                    "payment_method": TEST_CARD,
                    "confirm": True,
                }
            )
        return str(intent.id)

    def monthly_plan(self, name: str, amount: int, currency: str) -> str:
        """A product with a monthly plan, for the demo's subscription."""
        with _mapped_errors():
            product = self._client.v1.products.create(params={"name": name})
            plan = self._client.v1.plans.create(
                params={
                    "amount": amount,
                    "currency": currency.lower(),
                    "interval": "month",
                    "product": product.id,
                    "nickname": f"{name} monthly",
                }
            )
        return str(plan.id)
