"""``/billing/card``: replace the card on file through Stripe.js and a SetupIntent.

The card is typed into Stripe.js and confirmed with Stripe directly, so the
card number never reaches Billbox; the form posts only the SetupIntent id,
which is re-read from Stripe before its card becomes the customer's default.
The page's CSP admits Stripe.js and the Stripe API and nothing else.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, request
from sqlmodel import Session, select

from billbox.actions import new_idempotency_key
from billbox.audit import record
from billbox.customers import account_namespace
from billbox.gateways.accounts import stripe_browser_settings
from billbox.gateways.base import GatewayError, UnsupportedAction
from billbox.gateways.registry import adapter_for
from billbox.gateways.stripe import StripeGateway
from billbox.models import ActorKind, Customer, CustomerIdentity, GatewayAccount, GatewayKind
from billbox.portal_links import PortalGrant
from web.app import services
from web.portal import bp
from web.portal.views import _page, _require


def stripe_customer(db: Session, grant: PortalGrant) -> tuple[GatewayAccount, str] | None:
    """The brand's Stripe account and this customer's id there, if they have one."""
    accounts = db.exec(
        select(GatewayAccount).where(
            GatewayAccount.brand_id == grant.brand_id, GatewayAccount.gateway == GatewayKind.STRIPE
        )
    ).all()
    for account in accounts:
        identity = db.exec(
            select(CustomerIdentity).where(
                CustomerIdentity.customer_id == grant.customer_id,
                CustomerIdentity.namespace == account_namespace(account),
            )
        ).first()
        if identity is not None:
            return account, identity.value
    return None


def _card_adapter(account: GatewayAccount) -> StripeGateway:
    settings = services().settings
    if not stripe_browser_settings(account, settings)[0]:
        abort(404)
    try:
        adapter = adapter_for(account, settings)
    except UnsupportedAction:
        abort(404)
    if not isinstance(adapter, StripeGateway):
        abort(404)
    return adapter


@bp.route("/card", methods=["GET", "POST"])
def card() -> Any:
    """Replace the card on file: Stripe.js confirms a SetupIntent in the browser (the card
    never touches Billbox), then the intent is re-read here and made the default."""
    grant = _require()
    settings = services().settings
    with services().factory() as db:
        found = stripe_customer(db, grant)
        if found is None:
            abort(404)
        account, gateway_customer = found
        db.expunge(account)
    adapter = _card_adapter(account)
    error, saved = "", False
    if request.method == "POST":
        setup_intent = request.form.get("setup_intent", "")[:100]
        try:
            method = adapter.use_setup_intent(gateway_customer, setup_intent)
        except GatewayError as exc:
            error = str(exc)
        else:
            with services().factory() as db:
                customer = db.get(Customer, grant.customer_id)
                record(
                    db, actor_kind=ActorKind.CUSTOMER, actor=customer.email if customer else "",
                    action="portal.update_card", target_kind="customer",
                    target_id=str(grant.customer_id), reason="new card on the billing page",
                    data={"payment_method": method, "gateway_customer": gateway_customer},
                )  # fmt: skip
                db.commit()
            saved = True
    try:
        _, client_secret = adapter.create_setup_intent(
            gateway_customer, idempotency_key=f"portal-card-{new_idempotency_key()}"
        )
    except GatewayError as exc:
        unavailable = f"Card changes are unavailable right now: {exc}"
        return _card_page(grant, account, "", unavailable, saved), 503
    page = _card_page(grant, account, client_secret, error, saved)
    response = Response(page, 422 if error else 200)
    js = urlsplit(settings.stripe_js_url)
    api = urlsplit(stripe_browser_settings(account, settings)[1] or "https://api.stripe.com")
    js_origin, api_origin = f"{js.scheme}://{js.netloc}", f"{api.scheme}://{api.netloc}"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {js_origin}; frame-src {js_origin}; "
        f"connect-src 'self' {api_origin} {js_origin}; object-src 'none'"
    )
    return response


def _card_page(
    grant: PortalGrant, account: GatewayAccount, client_secret: str, error: str, saved: bool
) -> str:
    settings = services().settings
    with services().factory() as db:
        return _page(
            "portal/card.html", db, grant, client_secret=client_secret, error=error,
            saved=saved, publishable_key=stripe_browser_settings(account, settings)[0],
            stripe_js=settings.stripe_js_url,
        )  # fmt: skip
