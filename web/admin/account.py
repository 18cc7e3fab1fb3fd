"""The staff member's own account: turn the TOTP second factor on or off.

Turning it on shows a new secret (and its ``otpauth://`` URI for the app)
and takes effect only once a code from the app proves it was set up;
turning it off also needs a current code, so a stolen session alone cannot
remove the second factor.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, session, url_for

from billbox import totp
from billbox.models import Role, User
from web.admin import bp
from web.app import services
from web.auth import current_user, require_roles

STAFF = (Role.ADMIN, Role.AGENT, Role.FINANCE)
PENDING = "totp_pending"


@bp.route("/account", methods=["GET", "POST"])
@require_roles(*STAFF)
def account() -> Any:
    user = current_user()
    assert user is not None and user.id is not None
    step = request.form.get("step", "")
    code = request.form.get("code", "")
    if request.method == "POST" and step == "start":
        session[PENDING] = totp.new_secret()
    elif request.method == "POST" and step in ("confirm", "disable"):
        with services().factory() as db:
            row = db.get(User, user.id)
            assert row is not None
            if step == "confirm":
                pending = session.get(PENDING)
                if isinstance(pending, str) and totp.verify(pending, code):
                    row.totp_secret = pending
                    session.pop(PENDING, None)
                    flash("Two-factor login is on.", "ok")
                else:
                    flash("That code does not match the new secret; try the current one.", "error")
            elif row.totp_secret and totp.verify(row.totp_secret, code):
                row.totp_secret = None
                flash("Two-factor login is off.", "ok")
            else:
                flash("That code is not right; two-factor login stays on.", "error")
            db.add(row)
            db.commit()
        return redirect(url_for("admin.account"))
    pending = session.get(PENDING) if not user.totp_secret else None
    return render_template(
        "admin/account.html",
        user=user,
        pending=pending,
        uri=totp.provisioning_uri(pending, user.email) if isinstance(pending, str) else None,
    )
