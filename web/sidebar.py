"""``/sidebar``: the billing panel inside a helpdesk, for signed requests only.

``?helpdesk=`` names the helpdesk account (or its kind, e.g. ``zendesk``);
that account's :class:`~mailbridge.helpdesks.external.SidebarVerifier`
checks the vendor's signature or token and yields the customer email. An
unsigned or wrongly signed request gets 401 and no data, whatever email it
names. The answer has each vendor's shape: HTML for Zendesk, Freshdesk and
Front; ``{"html": …}`` for Help Scout; a Canvas Kit object for Intercom.

The panel is read from the same billing context as ``/api/v1/context``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from sqlmodel import col, select

from billbox.billing_context import snapshot
from billbox.customers import find_by_email
from billbox.models import Document, HelpdeskAccount
from billbox.money import Money
from billbox.sealed import SealedError
from mailbridge.helpdesks.accounts import verifier_for
from mailbridge.helpdesks.external import HelpdeskAuthError
from web.app import services
from web.sidebar_actions import action_token

bp = Blueprint("sidebar", __name__)
INTEGRATIONS = Path(__file__).resolve().parent.parent / "integrations"


def account_named(name: str) -> HelpdeskAccount | None:
    """The helpdesk account with this name, else the (active first) one of this kind."""
    with services().factory() as db:
        found = db.exec(select(HelpdeskAccount).where(HelpdeskAccount.name == name)).first()
        if found is None:
            found = db.exec(
                select(HelpdeskAccount)
                .where(HelpdeskAccount.kind == name)
                .order_by(col(HelpdeskAccount.active).desc(), col(HelpdeskAccount.id))
            ).first()
        if found is not None:
            db.expunge(found)
        return found


def _canvas(context: dict[str, Any], email: str) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    customer = context.get("customer")
    if not customer:
        components.append({"type": "text", "text": f"No Billbox customer for {email}"})
    else:
        components.append({"type": "text", "style": "header",
                           "text": f"*{customer.get('name') or email}* — {email}"})  # fmt: skip
        for p in (context.get("payments") or [])[:5]:
            money = str(Money(int(p["amount"]), str(p["currency"])))
            components.append({"type": "text", "text": f"{(p.get('created_at') or '')[:10]} "
                               f"{money} ({p.get('status')})"})  # fmt: skip
        for s in context.get("subscriptions") or []:
            components.append({"type": "text", "text": f"{s.get('plan')}: {s.get('status')}"})
    return {"canvas": {"content": {"components": components}}}


@bp.route("/sidebar", methods=["GET", "POST"])
def sidebar() -> Any:
    name = request.args.get("helpdesk", "")
    account = account_named(name) if name else None
    if account is None:
        return jsonify(error="unknown helpdesk"), 404
    body = request.get_data(cache=True)
    try:
        email = verifier_for(account, services().settings.secret()).verify(
            dict(request.headers), dict(request.args), body
        )
    except (HelpdeskAuthError, SealedError, ValueError):
        return jsonify(error="this request is not signed by the helpdesk"), 401
    with services().factory() as db:
        customer = find_by_email(db, email)
        context = snapshot(db, customer.id) if customer is not None and customer.id else {}
        documents = (
            [
                {"number": d.number, "kind": d.kind.value, "total": d.total,
                 "currency": d.currency, "issued_at": d.issued_at}
                for d in db.exec(
                    select(Document)
                    .where(Document.customer_id == customer.id)
                    .order_by(col(Document.id).desc())
                    .limit(5)
                )
            ]
            if customer is not None and customer.id
            else []
        )  # fmt: skip
    if account.kind == "intercom":
        return jsonify(_canvas(context, email))
    act_url = None
    if customer is not None and customer.id is not None and account.id is not None:
        act_url = url_for("sidebar_actions.act", token=action_token(account.id, customer.id),
                          _external=False)  # fmt: skip
        act_url = services().settings.effective_public_url.rstrip("/") + act_url
    html = render_template(
        "sidebar/panel.html", context=context, email=email, act_url=act_url, documents=documents,
        admin_url=services().settings.effective_public_url.rstrip("/") + "/admin/",
    )  # fmt: skip
    if account.kind == "helpscout":
        return jsonify(html=html)
    response = Response(html, mimetype="text/html")
    # Shown inside the vendor's UI: allow framing there only, still no script of ours.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
        "frame-ancestors https://*.zendesk.com https://*.freshdesk.com https://*.frontapp.com "
        "https://app.frontapp.com"
    )
    return response


@bp.get("/integrations/front/plugin.html")
def front_plugin() -> Any:
    """Front's plugin page, served from our origin so it can call ``/sidebar`` without CORS."""
    if not (INTEGRATIONS / "front" / "plugin.html").is_file():
        abort(404)
    return send_from_directory(INTEGRATIONS / "front", "plugin.html")
