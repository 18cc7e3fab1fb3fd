"""Which adapter acts for a gateway account: the one place that maps accounts to adapters.

The environment-configured accounts (``STRIPE_*``/``PAYPAL_*`` variables,
stored as the account named ``default`` by
``billbox.webhooks.ensure_env_account``) use the settings; accounts added in
the admin use their own sealed keys (:mod:`billbox.gateways.accounts`).

Adapter modules are imported inside the branch that needs them, so the SDK
of a gateway nobody uses is never loaded.
"""

from __future__ import annotations

from typing import Protocol

from billbox.gateways.base import GatewayActions, GatewayAdapter, UnsupportedAction
from billbox.models import GatewayAccount, GatewayKind
from billbox.settings import Settings


class ActingAdapter(GatewayAdapter, GatewayActions, Protocol):
    """An adapter that can both fetch and act: what ``billbox.actions`` needs."""


def adapter_for(account: GatewayAccount, settings: Settings) -> ActingAdapter:
    """The adapter for ``account``, built from ``settings`` or the account's own sealed keys.

    Raises :class:`UnsupportedAction` with a sentence for the agent when the
    account's gateway has no acting adapter or its keys are missing or
    cannot be opened.
    """
    from billbox.gateways.accounts import adapter_for_account
    from billbox.sealed import SealedError

    try:
        return adapter_for_account(account, settings)
    except SealedError as exc:
        message = f"{account.gateway.value} account {account.name!r}: {exc}"
        raise UnsupportedAction(message) from None


def capabilities_of(gateway: GatewayKind) -> frozenset[str]:
    """What an adapter for ``gateway`` can do (no credentials needed); the admin shows these."""
    from billbox.gateways.accounts import adapter_class

    try:
        return adapter_class(gateway).capabilities
    except UnsupportedAction:
        return frozenset()
