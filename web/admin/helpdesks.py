"""Admin settings for external helpdesks: credentials (sealed), test connection, on/off."""

from __future__ import annotations

import re
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlmodel import col, select

from billbox.models import HelpdeskAccount, Role, utcnow
from billbox.sealed import SealedError
from mailbridge.helpdesks.accounts import VENDORS, client_for, credentials, seal_credentials
from mailbridge.helpdesks.external import HelpdeskError
from web.admin import bp
from web.app import services
from web.auth import current_user, require_roles

ADMIN = (Role.ADMIN,)
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@bp.get("/settings/helpdesks")
@require_roles(*ADMIN)
def helpdesks() -> Any:
    with services().factory() as db:
        accounts = list(db.exec(select(HelpdeskAccount).order_by(col(HelpdeskAccount.name))))
    return render_template(
        "admin/helpdesks.html", accounts=accounts, vendors=VENDORS, user=current_user(),
        public_url=services().settings.effective_public_url,
    )  # fmt: skip


@bp.post("/settings/helpdesks")
@require_roles(*ADMIN)
def save_helpdesk() -> Any:
    """Create or update one account; a secret left empty keeps the stored one."""
    kind = request.form.get("kind", "")
    vendor = VENDORS.get(kind)
    name = request.form.get("name", "").strip().lower()
    if vendor is None:
        abort(400, description="unknown helpdesk")
    if not NAME.match(name):
        flash("The name is lower-case letters, digits and '-'.", "error")
        return redirect(url_for("admin.helpdesks"))
    secret_key = services().settings.secret()
    with services().factory() as db:
        account = db.exec(select(HelpdeskAccount).where(HelpdeskAccount.name == name)).first()
        if account is not None and account.kind != kind:
            flash(f"{name!r} is already a {account.kind} account.", "error")
            return redirect(url_for("admin.helpdesks"))
        try:
            stored = credentials(account, secret_key) if account else {}
        except SealedError:
            stored = {}
        secrets = {f.name: request.form.get(f.name, "").strip() or stored.get(f.name, "")
                   for f in vendor.secrets}  # fmt: skip
        settings = {f.name: request.form.get(f.name, "").strip() for f in vendor.settings}
        fields = (*vendor.settings, *vendor.secrets)
        missing = [
            f.label
            for f in fields
            if not f.optional and not (settings.get(f.name) or secrets.get(f.name))
        ]
        if missing:
            flash("Missing: " + ", ".join(missing) + ".", "error")
            return redirect(url_for("admin.helpdesks"))
        if account is None:
            account = HelpdeskAccount(kind=kind, name=name)
        account.settings = settings
        account.credentials_encrypted = seal_credentials(secret_key, secrets)
        account.active = request.form.get("active") == "1"
        db.add(account)
        db.commit()
    flash(f"Saved {vendor.title} account {name!r}.", "ok")
    return redirect(url_for("admin.helpdesks"))


@bp.post("/settings/helpdesks/<int:account_id>/test")
@require_roles(*ADMIN)
def test_helpdesk(account_id: int) -> Any:
    secret_key = services().settings.secret()
    with services().factory() as db:
        account = db.get(HelpdeskAccount, account_id)
        if account is None:
            abort(404)
        try:
            line = client_for(account, secret_key).test_connection()
        except (HelpdeskError, SealedError, KeyError, ValueError) as exc:
            account.last_error = f"test connection: {exc}"[:2000]
            flash(f"{account.name}: {exc}", "error")
        else:
            account.last_ok_at, account.last_error = utcnow(), None
            flash(f"{account.name}: {line}", "ok")
        db.add(account)
        db.commit()
    return redirect(url_for("admin.helpdesks"))
