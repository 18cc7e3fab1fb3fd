"""Admin settings for gateway accounts: keys (sealed), webhook URL to copy, test connection.

Saving keys is audited (which fields changed, never their values), since
whoever holds a gateway key can move money.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlmodel import col, select

from billbox import audit
from billbox.gateways.accounts import (
    ACCOUNT_NAME,
    GATEWAYS,
    adapter_for_account,
    credentials,
    is_env_account,
    live_mode_of,
    seal_credentials,
    webhook_path,
)
from billbox.gateways.base import GatewayError
from billbox.gateways.registry import capabilities_of
from billbox.models import ActorKind, Brand, GatewayAccount, GatewayKind, Role, utcnow
from billbox.sealed import SealedError
from billbox.webhooks import ENV_ACCOUNT_NAME
from web.admin import bp
from web.app import services
from web.auth import current_user, require_roles

ADMIN = (Role.ADMIN,)


def _env_configured() -> dict[GatewayKind, bool]:
    """Which gateways have keys in the environment (the ``default`` accounts)."""
    s = services().settings
    return {
        GatewayKind.STRIPE: s.stripe_api_key is not None,
        GatewayKind.PAYPAL: bool(s.paypal_client_id and s.paypal_client_secret),
    }


@bp.get("/settings/gateways")
@require_roles(*ADMIN)
def gateways() -> Any:
    base = services().settings.effective_public_url
    with services().factory() as db:
        brands = {b.id: b for b in db.exec(select(Brand).order_by(col(Brand.name)))}
        accounts = list(
            db.exec(
                select(GatewayAccount).order_by(
                    col(GatewayAccount.gateway), col(GatewayAccount.name)
                )
            )
        )
    env = _env_configured()
    rows = [
        {
            "account": a,
            "brand": brands.get(a.brand_id),
            "spec": GATEWAYS.get(a.gateway),
            "env": is_env_account(a),
            "key_source": "environment" if is_env_account(a) else
                    ("stored" if a.credentials_encrypted else "none"),
            "webhook_url": base + webhook_path(a),
            "capabilities": sorted(capabilities_of(a.gateway)),
        }
        for a in accounts
    ]  # fmt: skip
    shown = {(a.gateway, a.name) for a in accounts}
    env_only = [
        (spec, base + f"/webhooks/{kind.value}")
        for kind, spec in GATEWAYS.items()
        if env[kind] and (kind, ENV_ACCOUNT_NAME) not in shown
    ]
    return render_template(
        "admin/gateways.html", rows=rows, env_only=env_only, gateways=GATEWAYS,
        brands=list(brands.values()), user=current_user(),
    )  # fmt: skip


@bp.post("/settings/gateways")
@require_roles(*ADMIN)
def save_gateway() -> Any:
    """Create or update one account; a secret left empty keeps the stored one."""
    try:
        kind = GatewayKind(request.form.get("gateway", ""))
    except ValueError:
        abort(400, description="unknown gateway")
    spec = GATEWAYS.get(kind)
    if spec is None:
        abort(400, description="unknown gateway")
    name = request.form.get("name", "").strip().lower()
    back = redirect(url_for("admin.gateways"))
    if not ACCOUNT_NAME.match(name):
        flash("The name is lower-case letters, digits and '-' (it is part of the webhook URL).",
              "error")  # fmt: skip
        return back
    if name == ENV_ACCOUNT_NAME:
        flash(f"{ENV_ACCOUNT_NAME!r} is the account configured by environment variables; "
              "choose another name.", "error")  # fmt: skip
        return back
    user = current_user()
    assert user is not None
    secret_key = services().settings.secret()
    with services().factory() as db:
        account = db.exec(
            select(GatewayAccount).where(
                GatewayAccount.gateway == kind, GatewayAccount.name == name
            )
        ).first()
        brand_id = request.form.get("brand_id", type=int)
        if account is None and (brand_id is None or db.get(Brand, brand_id) is None):
            flash("Choose the brand this account sells for.", "error")
            return back
        if account is not None and brand_id is not None and brand_id != account.brand_id:
            flash(f"{name!r} already belongs to another brand; its history stays there. "
                  "Add a new account instead.", "error")  # fmt: skip
            return back
        try:
            stored = credentials(account, secret_key) if account else {}
        except SealedError:
            stored = {}
        secrets = {f.name: request.form.get(f.name, "").strip() or str(stored.get(f.name, ""))
                   for f in spec.secrets}  # fmt: skip
        plain = {f.name: request.form.get(f.name, "").strip() for f in spec.settings}
        missing = [
            f.label
            for f in (*spec.settings, *spec.secrets)
            if not f.optional and not (plain.get(f.name) or secrets.get(f.name))
        ]
        if missing:
            flash("Missing: " + ", ".join(missing) + ".", "error")
            return back
        api_base = plain.get("api_base", "")
        if api_base and not api_base.startswith(("https://", "http://")):
            flash("The API base URL must start with https://.", "error")
            return back
        changed = sorted(
            [f.name for f in spec.secrets if request.form.get(f.name, "").strip()]
            + [k for k, v in plain.items() if account is None or account.settings.get(k, "") != v]
        )
        if account is None:
            assert brand_id is not None
            account = GatewayAccount(brand_id=brand_id, gateway=kind, name=name)
        account.settings = plain
        account.credentials_encrypted = seal_credentials(secret_key, secrets)
        account.live_mode = live_mode_of(kind, plain, secrets)
        db.add(account)
        db.flush()
        audit.record(
            db,
            actor_kind=ActorKind.USER,
            actor=user.email,
            action="gateway_account.save",
            target_kind="gateway_account",
            target_id=str(account.id),
            data={"gateway": kind.value, "name": name, "changed": changed},
        )
        db.commit()
    flash(f"Saved {spec.title} account {name!r}. Use “Test connection” to check the keys.", "ok")
    return back


@bp.post("/settings/gateways/<int:account_id>/test")
@require_roles(*ADMIN)
def test_gateway(account_id: int) -> Any:
    """One authenticated call with the account's keys; the outcome is kept on the row."""
    settings = services().settings
    with services().factory() as db:
        account = db.get(GatewayAccount, account_id)
        if account is None:
            abort(404)
        try:
            line = adapter_for_account(account, settings).check_connection()
        except (GatewayError, SealedError) as exc:
            account.last_error = f"test connection: {exc}"[:2000]
            flash(f"{account.gateway.value} {account.name}: {exc}", "error")
        else:
            account.last_ok_at, account.last_error = utcnow(), None
            flash(f"{account.gateway.value} {account.name}: {line}", "ok")
        db.add(account)
        db.commit()
    return redirect(url_for("admin.gateways"))
