"""Configured helpdesk accounts → vendor clients and sidebar verifiers.

Each vendor declares which fields it needs: plain ``settings`` (subdomain,
mailbox id — shown in the admin) and ``secrets`` (tokens — sealed with
:mod:`billbox.sealed`, never shown again). The admin page is generated from
these declarations, and the builders below are the only place that turns a
``HelpdeskAccount`` row into a client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billbox.models import HelpdeskAccount
from billbox.sealed import seal, unseal
from mailbridge.helpdesks.external import ExternalHelpdesk, SidebarVerifier

PURPOSE = "helpdesk-credentials"


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    hint: str = ""
    optional: bool = False


#: For ``/webhooks/helpdesk/<name>`` (tickets opened in the helpdesk itself); optional.
WEBHOOK_SECRET = Field(
    "webhook_secret",
    "Webhook secret",
    "optional: notes on tickets opened in the helpdesk (see integrations/<vendor>/README.md)",
    optional=True,
)


@dataclass(frozen=True)
class Vendor:
    kind: str
    title: str
    settings: tuple[Field, ...]
    secrets: tuple[Field, ...]


VENDORS: dict[str, Vendor] = {
    v.kind: v
    for v in (
        Vendor("zendesk", "Zendesk",
               (Field("subdomain", "Subdomain", "acme for acme.zendesk.com"),
                Field("email", "Agent email", "the API token's owner")),
               (Field("api_token", "API token"),
                Field("sidebar_secret", "Sidebar shared secret", "16+ characters; the app's "
                      "secure setting shared_secret"),
                WEBHOOK_SECRET)),
        Vendor("freshdesk", "Freshdesk",
               (Field("domain", "Domain", "acme for acme.freshdesk.com"),),
               (Field("api_key", "API key"),
                Field("sidebar_secret", "Sidebar token", "16+ characters; the app's secure "
                      "iparam sidebar_token"),
                WEBHOOK_SECRET)),
        Vendor("helpscout", "Help Scout",
               (Field("mailbox_id", "Mailbox id"),),
               (Field("client_id", "App id"), Field("client_secret", "App secret"),
                Field("sidebar_secret", "Dynamic app secret"), WEBHOOK_SECRET)),
        Vendor("intercom", "Intercom",
               (Field("admin_id", "Admin id", "the teammate notes are posted as"),),
               (Field("access_token", "Access token"),
                Field("sidebar_secret", "App client secret", "signs Canvas Kit requests"),
                WEBHOOK_SECRET)),
        Vendor("front", "Front",
               (Field("inbox_id", "Inbox id", "inb_…"), Field("inbox_address", "Inbox address")),
               (Field("api_token", "API token"),
                Field("sidebar_secret", "Plugin auth secret"), WEBHOOK_SECRET)),
    )
}  # fmt: skip


def seal_credentials(secret_key: str, values: dict[str, str]) -> str:
    return seal(secret_key, PURPOSE, values)


def credentials(account: HelpdeskAccount, secret_key: str) -> dict[str, Any]:
    if not account.credentials_encrypted:
        return {}
    return unseal(secret_key, PURPOSE, account.credentials_encrypted)


def client_for(
    account: HelpdeskAccount, secret_key: str, *, base_url: str | None = None
) -> ExternalHelpdesk:
    """The vendor client for ``account``; ``base_url`` points it at a test server."""
    s, c = account.settings, credentials(account, secret_key)
    if account.kind == "zendesk":
        from mailbridge.helpdesks.zendesk import ZendeskClient

        return ZendeskClient(subdomain=s["subdomain"], email=s["email"],
                             api_token=c["api_token"], base_url=base_url)  # fmt: skip
    if account.kind == "freshdesk":
        from mailbridge.helpdesks.freshdesk import FreshdeskClient

        return FreshdeskClient(domain=s["domain"], api_key=c["api_key"], base_url=base_url)
    if account.kind == "helpscout":
        from mailbridge.helpdesks.helpscout import DEFAULT_BASE_URL, HelpScout

        return HelpScout(client_id=c["client_id"], client_secret=c["client_secret"],
                         mailbox_id=int(s["mailbox_id"]),
                         base_url=base_url or DEFAULT_BASE_URL)  # fmt: skip
    if account.kind == "intercom":
        from mailbridge.helpdesks.intercom import DEFAULT_BASE_URL, Intercom

        return Intercom(access_token=c["access_token"], admin_id=s["admin_id"],
                        base_url=base_url or DEFAULT_BASE_URL)  # fmt: skip
    if account.kind == "front":
        from mailbridge.helpdesks.front import DEFAULT_BASE_URL, Front

        return Front(api_token=c["api_token"], inbox_id=s["inbox_id"],
                     inbox_address=s["inbox_address"],
                     base_url=base_url or DEFAULT_BASE_URL)  # fmt: skip
    raise ValueError(f"unknown helpdesk kind {account.kind!r}")


def verifier_for(account: HelpdeskAccount, secret_key: str) -> SidebarVerifier:
    secret = str(credentials(account, secret_key).get("sidebar_secret", ""))
    if account.kind == "zendesk":
        from mailbridge.helpdesks.zendesk import ZendeskSidebarVerifier

        return ZendeskSidebarVerifier(secret)
    if account.kind == "freshdesk":
        from mailbridge.helpdesks.freshdesk import FreshdeskSidebarVerifier

        return FreshdeskSidebarVerifier(secret)
    if account.kind == "helpscout":
        from mailbridge.helpdesks.helpscout import HelpScoutSidebarVerifier

        return HelpScoutSidebarVerifier(secret)
    if account.kind == "intercom":
        from mailbridge.helpdesks.intercom import IntercomSidebarVerifier

        return IntercomSidebarVerifier(secret)
    if account.kind == "front":
        from mailbridge.helpdesks.front import FrontSidebarVerifier

        return FrontSidebarVerifier(secret)
    raise ValueError(f"unknown helpdesk kind {account.kind!r}")
