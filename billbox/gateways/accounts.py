"""Gateway accounts added in the admin: which fields each gateway needs, and their adapters.

A brand may sell through several Stripe or PayPal accounts (one per
region, a test account beside the live one). The account configured from
environment variables is the one named ``default``; every other account
keeps its own keys here: plain ``settings`` (publishable key, client id,
API base — shown in the admin) and ``secrets`` sealed with
:mod:`billbox.sealed` under their own purpose label, never shown again.
Each account gets its own webhook URL, ``/webhooks/<gateway>/<name>``, so
its deliveries are checked with its own signing secret and land in its own
ledger namespace.

The admin page is generated from :data:`GATEWAYS`, and :func:`adapter_for_account`
is the only place that turns a stored account into an adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from billbox.models import GatewayAccount, GatewayKind
from billbox.sealed import seal, unseal
from billbox.settings import Settings
from billbox.webhooks import ENV_ACCOUNT_NAME

if TYPE_CHECKING:
    from billbox.gateways.paypal import PayPalGateway
    from billbox.gateways.registry import ActingAdapter
    from billbox.gateways.stripe import StripeGateway

PURPOSE = "gateway-credentials"

#: Account names appear in webhook URLs: lower-case letters, digits and '-'.
ACCOUNT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    hint: str = ""
    optional: bool = False
    #: Passed to the adapter's constructor under ``name`` (the publishable key is not:
    #: only the browser uses it).
    adapter_arg: bool = True


@dataclass(frozen=True)
class GatewaySpec:
    kind: GatewayKind
    title: str
    settings: tuple[Field, ...]
    secrets: tuple[Field, ...]
    #: Where the gateway's dashboard asks for the webhook endpoint, for the admin's hint.
    webhook_hint: str


GATEWAYS: dict[GatewayKind, GatewaySpec] = {
    GatewayKind.STRIPE: GatewaySpec(
        GatewayKind.STRIPE,
        "Stripe",
        (
            Field("publishable_key", "Publishable key", "pk_… (card updates on billing pages)",
                  optional=True, adapter_arg=False),
            Field("api_base", "API base URL", "empty for https://api.stripe.com", optional=True),
        ),
        (
            Field("api_key", "Secret key", "sk_… or a restricted rk_… key"),
            Field("webhook_secret", "Webhook signing secret", "whsec_… of this endpoint"),
        ),
        "Stripe Dashboard → Developers → Webhooks → Add endpoint",
    ),
    GatewayKind.PAYPAL: GatewaySpec(
        GatewayKind.PAYPAL,
        "PayPal",
        (
            Field("client_id", "Client id", "REST app's client id"),
            Field("webhook_id", "Webhook id", "shown by PayPal after adding the URL below",
                  optional=True),
            Field("api_base", "API base URL",
                  "empty for live; https://api-m.sandbox.paypal.com for sandbox", optional=True),
        ),
        (Field("client_secret", "Client secret"),),
        "PayPal Developer Dashboard → Apps & Credentials → your app → Webhooks",
    ),
}  # fmt: skip


def seal_credentials(secret_key: str, values: dict[str, str]) -> str:
    return seal(secret_key, PURPOSE, values)


def credentials(account: GatewayAccount, secret_key: str) -> dict[str, Any]:
    """The account's secrets; ``{}`` when none were stored. Raises ``SealedError``."""
    if not account.credentials_encrypted:
        return {}
    return unseal(secret_key, PURPOSE, account.credentials_encrypted)


def is_env_account(account: GatewayAccount) -> bool:
    return account.name == ENV_ACCOUNT_NAME


def webhook_path(account: GatewayAccount) -> str:
    """The path the gateway must post this account's events to."""
    if is_env_account(account):
        return f"/webhooks/{account.gateway.value}"
    return f"/webhooks/{account.gateway.value}/{account.name}"


def live_mode_of(gateway: GatewayKind, settings: dict[str, str], secrets: dict[str, str]) -> bool:
    """Whether the keys are live ones: Stripe says so in the key, PayPal by its API base."""
    if gateway == GatewayKind.STRIPE:
        return "_live_" in secrets.get("api_key", "")
    return not settings.get("api_base") or "sandbox" not in settings["api_base"]


def stripe_browser_settings(account: GatewayAccount, settings: Settings) -> tuple[str, str]:
    """(publishable key, API base) for Stripe.js on the billing page; "" when there is no key."""
    if is_env_account(account):
        return settings.stripe_publishable_key or "", settings.stripe_api_base or ""
    return account.settings.get("publishable_key", ""), account.settings.get("api_base", "")


def adapter_for_account(account: GatewayAccount, settings: Settings) -> ActingAdapter:
    """The adapter for ``account``: environment settings for ``default``, its own keys otherwise.

    Raises ``SealedError`` when the stored keys cannot be opened (the secret
    key changed), ``UnsupportedAction`` when the account has no keys at all.
    """
    from billbox.gateways.base import UnsupportedAction

    cls = adapter_class(account.gateway)
    if is_env_account(account):
        return cls.from_settings(settings)
    secrets = credentials(account, settings.secret())
    if not secrets:
        raise UnsupportedAction(
            f"{account.gateway.value} account {account.name!r} has no keys; an admin can add "
            "them under Settings → Gateways"
        )
    values = {**account.settings, **secrets}
    spec = GATEWAYS[account.gateway]
    # Any: the keyword names are the fields' names, which mypy cannot match to parameters.
    keys: dict[str, Any] = {f.name: values.get(f.name) or None
                            for f in (*spec.settings, *spec.secrets) if f.adapter_arg}  # fmt: skip
    return cls(**keys)


def adapter_class(gateway: GatewayKind) -> type[StripeGateway] | type[PayPalGateway]:
    """The adapter class of ``gateway``, imported only when asked for (its SDK with it)."""
    from billbox.gateways.base import UnsupportedAction

    if gateway == GatewayKind.STRIPE:
        from billbox.gateways.stripe import StripeGateway

        return StripeGateway
    if gateway == GatewayKind.PAYPAL:
        from billbox.gateways.paypal import PayPalGateway

        return PayPalGateway
    raise UnsupportedAction(f"Billbox cannot act on {gateway.value} accounts yet")
