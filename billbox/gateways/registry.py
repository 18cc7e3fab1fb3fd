"""Which adapter acts for a gateway account: the one place that maps accounts to adapters.

Only the environment-configured accounts (``STRIPE_*``/``PAYPAL_*``
variables, stored as the account named ``default`` by
``billbox.webhooks.ensure_env_account``) have credentials today; an
account added in the admin with its own encrypted credentials will be
resolved here too, once the admin stores them.

Adapter modules are imported inside the branch that needs them, so the SDK
of a gateway nobody uses is never loaded.
"""

from __future__ import annotations

from typing import Protocol

from billbox.gateways.base import GatewayActions, GatewayAdapter, UnsupportedAction
from billbox.models import GatewayAccount, GatewayKind
from billbox.settings import Settings
from billbox.webhooks import ENV_ACCOUNT_NAME


class ActingAdapter(GatewayAdapter, GatewayActions, Protocol):
    """An adapter that can both fetch and act: what ``billbox.actions`` needs."""


def adapter_for(account: GatewayAccount, settings: Settings) -> ActingAdapter:
    """The adapter for ``account``, built from ``settings``.

    Raises :class:`UnsupportedAction` with a sentence for the agent when the
    account's gateway has no acting adapter or the account has no
    credentials Billbox knows of.
    """
    if account.name != ENV_ACCOUNT_NAME:
        raise UnsupportedAction(
            f"{account.gateway.value} account {account.name!r} has no credentials Billbox can "
            f"use; only the account configured from environment variables "
            f"({ENV_ACCOUNT_NAME!r}) can act"
        )
    if account.gateway == GatewayKind.STRIPE:
        from billbox.gateways.stripe import StripeGateway

        return StripeGateway.from_settings(settings)
    if account.gateway == GatewayKind.PAYPAL:
        from billbox.gateways.paypal import PayPalGateway

        return PayPalGateway.from_settings(settings)
    raise UnsupportedAction(f"Billbox cannot act on {account.gateway.value} accounts yet")


def capabilities_of(gateway: GatewayKind) -> frozenset[str]:
    """What an adapter for ``gateway`` can do (no credentials needed); the admin shows these."""
    if gateway == GatewayKind.STRIPE:
        from billbox.gateways.stripe import StripeGateway

        return StripeGateway.capabilities
    if gateway == GatewayKind.PAYPAL:
        from billbox.gateways.paypal import PayPalGateway

        return PayPalGateway.capabilities
    return frozenset()
