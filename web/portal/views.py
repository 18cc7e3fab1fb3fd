"""The billing pages: overview (payments, documents, subscriptions, open invoices),
PDF downloads, tax details and a billing question."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any, cast

from flask import (
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlmodel import Session, col, select

from billbox import actions
from billbox.actions import ActionError, Actor, new_idempotency_key
from billbox.customers import find_by_email, normalise_email
from billbox.models import (
    ActorKind,
    Brand,
    Customer,
    Document,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    InboundSource,
    Payment,
    PaymentStatus,
    Role,
    Subscription,
    utcnow,
)
from billbox.portal_links import LinkRefused, PortalGrant
from billbox.taxids import InvalidTaxId, can_validate, validate_tax_id
from mailbridge import store_inbound
from mailbridge.portal_mail import queue_link_emails
from mailbridge.tokens import make_reply_token, reply_address
from web.app import services
from web.portal import SESSION_KEY, bp, current_grant, links
from web.portal.i18n import language_of, translate
from web.security import LoginThrottle

MAX_QUESTION = 10_000
#: Where a PayPal buyer reviews and cancels the automatic payments (billing agreements) they
#: approved; PayPal has no per-merchant link for it.
PAYPAL_AUTOPAY_URL = "https://www.paypal.com/myaccount/autopay/"
CUSTOMER_STATUS = {
    PaymentStatus.SUCCEEDED: "paid",
    PaymentStatus.REFUNDED: "refunded",
    PaymentStatus.PARTIALLY_REFUNDED: "partially refunded",
    PaymentStatus.DISPUTED: "disputed",
    PaymentStatus.FAILED: "failed",
    PaymentStatus.CANCELED: "failed",
    PaymentStatus.PENDING: "pending",
    PaymentStatus.REQUIRES_ACTION: "pending",
    PaymentStatus.AUTHORIZED: "pending",
}


def _require() -> PortalGrant:
    grant = current_grant()
    if grant is None:
        abort(403)
    return grant


def _page(template: str, db: Session, grant: PortalGrant, **context: Any) -> str:
    customer = db.get(Customer, grant.customer_id)
    brand = db.get(Brand, grant.brand_id)
    if customer is None or brand is None:
        abort(404)
    language = language_of(customer.locale or brand.locale)
    return render_template(
        template,
        customer=customer,
        brand=brand,
        lang=language,
        t=lambda text: translate(text, language),
        **context,
    )


def _brand_accounts(db: Session, brand_id: int) -> list[int]:
    return [
        a
        for a in db.exec(select(GatewayAccount.id).where(GatewayAccount.brand_id == brand_id))
        if a is not None
    ]


@bp.get("/open/<token>")
def open_link(token: str) -> Any:
    with services().factory() as db:
        try:
            grant = links().verify(db, token)
        except LinkRefused as exc:
            return render_template("portal/refused.html", message=str(exc)), 403
        customer = db.get(Customer, grant.customer_id)
        assert customer is not None
        session[SESSION_KEY] = [grant.customer_id, grant.brand_id, customer.portal_nonce]
    return redirect(url_for("portal.overview"))


def can_update_card(db: Session, grant: PortalGrant) -> bool:
    """The customer pays this brand through a Stripe account whose publishable key we have."""
    from billbox.gateways.accounts import stripe_browser_settings
    from web.portal.card import stripe_customer

    found = stripe_customer(db, grant)
    return found is not None and bool(stripe_browser_settings(found[0], services().settings)[0])


@bp.get("/")
def overview() -> Any:
    grant = current_grant()
    if grant is None:
        return render_template("portal/start.html")
    with services().factory() as db:
        accounts = _brand_accounts(db, grant.brand_id)
        gateway_of = {
            a.id: a.gateway.value
            for a in db.exec(select(GatewayAccount).where(col(GatewayAccount.id).in_(accounts)))
        }
        payments = list(
            db.exec(
                select(Payment)
                .where(
                    Payment.customer_id == grant.customer_id, col(Payment.account_id).in_(accounts)
                )
                .order_by(col(Payment.gateway_created_at).desc())
            )
        )
        documents = list(
            db.exec(
                select(Document)
                .where(
                    Document.customer_id == grant.customer_id, Document.brand_id == grant.brand_id
                )
                .order_by(col(Document.id).desc())
            )
        )
        subscriptions = list(
            db.exec(
                select(Subscription).where(
                    Subscription.customer_id == grant.customer_id,
                    col(Subscription.account_id).in_(accounts),
                )
            )
        )
        invoices = list(
            db.exec(
                select(GatewayInvoice).where(
                    GatewayInvoice.customer_id == grant.customer_id,
                    col(GatewayInvoice.account_id).in_(accounts),
                    GatewayInvoice.status == GatewayInvoiceStatus.OPEN,
                )
            )
        )
        return _page(
            "portal/overview.html", db, grant,
            payments=payments, documents=documents, subscriptions=subscriptions,
            invoices=invoices, status_of=CUSTOMER_STATUS,
            can_update_card=can_update_card(db, grant),
            paypal_autopay=any(gateway_of.get(s.account_id) == "paypal" for s in subscriptions),
            paypal_autopay_url=PAYPAL_AUTOPAY_URL,
        )  # fmt: skip


LINK_SENT = (
    "If that address has billing history with us, we have emailed it a link to its billing "
    "page. It can take a few minutes to arrive."
)


@bp.post("/link")
def email_link() -> Any:
    """Email a fresh link: the same answer for known and unknown addresses (no enumeration),
    rate-limited per address and per client."""
    address = normalise_email(request.form.get("email", "")) or ""
    client = request.remote_addr or "unknown"
    throttle = cast(LoginThrottle, current_app.extensions["billbox_link_throttle"])
    if throttle.retry_after(address, client) > 0:
        return render_template(
            "portal/start.html", message="Too many requests; try again later."
        ), 429
    throttle.failed(address, client)  # every request counts against the budget
    if address:
        with services().factory() as db:
            customer = find_by_email(db, address)
            if customer is not None and customer.id is not None:
                brand_ids = _brands_of(db, customer.id)
                queue_link_emails(db, customer.id, brand_ids)
                db.commit()
    return render_template("portal/start.html", message=LINK_SENT)


def _brands_of(db: Session, customer_id: int) -> list[int]:
    """Brands the customer has documents or payments with."""
    from_documents = set(
        db.exec(select(Document.brand_id).where(Document.customer_id == customer_id)).all()
    )
    from_payments = set(
        db.exec(
            select(GatewayAccount.brand_id)
            .join(Payment, col(Payment.account_id) == col(GatewayAccount.id))
            .where(Payment.customer_id == customer_id)
        ).all()
    )
    return sorted(from_documents | from_payments)


def _cancellable(db: Session, grant: PortalGrant, subscription_id: int) -> Subscription:
    """The customer's own subscription of this brand, if the brand lets customers cancel it."""
    subscription = db.get(Subscription, subscription_id)
    brand = db.get(Brand, grant.brand_id)
    account = db.get(GatewayAccount, subscription.account_id) if subscription else None
    if (
        subscription is None
        or brand is None
        or account is None
        or subscription.customer_id != grant.customer_id
        or account.brand_id != grant.brand_id
    ):
        abort(404)
    if not brand.customer_can_cancel:
        abort(403)
    return subscription


@bp.route("/subscriptions/<int:subscription_id>/cancel", methods=["GET", "POST"])
def cancel_subscription(subscription_id: int) -> Any:
    """A confirmation step, then cancel at period end through ``billbox.actions`` (audited,
    the customer as actor)."""
    grant = _require()
    error = ""
    with services().factory() as db:
        subscription = _cancellable(db, grant, subscription_id)
        customer = db.get(Customer, grant.customer_id)
        assert customer is not None
        email = customer.email
    if request.method == "POST":
        # Customers act with an agent's permissions on their own subscription only (checked
        # above); the audit log names them, with actor kind "customer".
        actor = Actor(email, Role.AGENT, ActorKind.CUSTOMER)
        try:
            actions.cancel_subscription(
                services().factory, services().settings, actor, subscription_id,
                at_period_end=True, reason="cancelled by the customer on the billing page",
                idempotency_key=request.form.get("idempotency_key", "")[:100],
            )  # fmt: skip
        except ActionError as exc:
            error = str(exc)
        else:
            return redirect(url_for("portal.overview"))
    with services().factory() as db:
        page = _page("portal/cancel.html", db, grant, subscription=subscription, error=error,
                     key=new_idempotency_key())  # fmt: skip
    return page, 422 if error else 200


@bp.get("/documents/<int:document_id>.pdf")
def download(document_id: int) -> Any:
    """Ownership is checked on every download; someone else's id is a plain 404."""
    grant = _require()
    with services().factory() as db:
        document = db.get(Document, document_id)
        if (
            document is None
            or document.customer_id != grant.customer_id
            or document.brand_id != grant.brand_id
            or not document.pdf
        ):
            abort(404)
        response = Response(document.pdf, mimetype="application/pdf")
        response.headers.set("Content-Disposition", "attachment", filename=f"{document.number}.pdf")
        return response


@bp.route("/tax", methods=["GET", "POST"])
def tax_details() -> Any:
    grant = _require()
    errors: dict[str, str] = {}
    saved = False
    with services().factory() as db:
        customer = db.get(Customer, grant.customer_id)
        assert customer is not None
        values = {"name": customer.name, "address": customer.address,
                  "country": customer.country or "", "tax_id": customer.tax_id or ""}  # fmt: skip
        if request.method == "POST":
            values = {k: request.form.get(k, "").strip()[:2000] for k in values}
            values["country"] = values["country"].upper()
            if values["country"] and not (
                len(values["country"]) == 2 and values["country"].isalpha()
            ):
                errors["country"] = "Use the two-letter country code, e.g. DE, FR, ES, GB."
            if values["tax_id"]:
                if not values["country"]:
                    errors["tax_id"] = "Choose your country first."
                elif not can_validate(values["country"]):
                    errors["tax_id"] = (
                        f"We cannot check tax numbers from {values['country']}; leave it empty."
                    )
                else:
                    try:
                        values["tax_id"] = validate_tax_id(values["tax_id"], values["country"])
                    except InvalidTaxId as exc:
                        errors["tax_id"] = str(exc)
            if not errors:
                customer.name = values["name"][:200]
                customer.address = values["address"]
                customer.country = values["country"] or None
                customer.tax_id = values["tax_id"] or None
                db.add(customer)
                db.commit()
                saved = True
        status = 422 if errors else 200
        return _page(
            "portal/tax.html", db, grant, values=values, errors=errors, saved=saved
        ), status


@bp.route("/question", methods=["GET", "POST"])
def question() -> Any:
    """Filed through the inbound pipeline as an email from the customer would be, so it gets
    the same ticket, threading and billing context."""
    grant = _require()
    sent = False
    errors: dict[str, str] = {}
    values = {"subject": "", "body": ""}
    if request.method == "POST":
        values = {"subject": request.form.get("subject", "").strip()[:200],
                  "body": request.form.get("body", "").strip()[:MAX_QUESTION]}  # fmt: skip
        if not values["body"]:
            errors["body"] = "Please write your question."
        else:
            _file_question(grant, values["subject"], values["body"])
            sent = True
            values = {"subject": "", "body": ""}
    with services().factory() as db:
        page = _page("portal/question.html", db, grant, values=values, errors=errors, sent=sent)
    return page, 422 if errors else 200


def _file_question(grant: PortalGrant, subject: str, body: str) -> None:
    """The question as an RFC 5322 message from the customer to their own reply address."""
    settings = services().settings
    with services().factory() as db:  # read, then close: storing takes the write lock
        customer = db.get(Customer, grant.customer_id)
        if customer is None:
            abort(404)
        name, address = customer.name, customer.email
    token = make_reply_token(
        settings.secret(), document_id=None, customer_id=grant.customer_id, brand_id=grant.brand_id
    )
    to = reply_address(token, settings.reply_domain)
    message = EmailMessage()
    message["From"] = formataddr((name, address))
    message["To"] = to
    message["Subject"] = subject or "Billing question"
    message["Date"] = format_datetime(utcnow())
    # Not on the reply domain: Message-IDs there are our own outbound mail, and one
    # coming back in is classified as a loop.
    message["Message-ID"] = make_msgid("billing-page", "portal." + settings.reply_domain)
    message["X-Billbox-Source"] = "billing-page"
    message.set_content(body)
    store_inbound(
        services().factory, message.as_bytes(), source=InboundSource.PORTAL,
        envelope_from=address, envelope_to=[to],
    )  # fmt: skip


@bp.get("/brand/<int:brand_id>.css")
def brand_css(brand_id: int) -> Any:
    """The brand's colours as CSS variables (a stylesheet, since the CSP forbids inline style)."""
    with services().factory() as db:
        brand = db.get(Brand, brand_id)
        if brand is None:
            abort(404)
        css = f":root {{ --brand: {brand.primary_color}; --accent: {brand.accent_color}; }}\n"
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/brand/<int:brand_id>/logo.png")
def brand_logo(brand_id: int) -> Any:
    with services().factory() as db:
        brand = db.get(Brand, brand_id)
        if brand is None or brand.logo is None:
            abort(404)
        return Response(brand.logo, mimetype="image/png")
