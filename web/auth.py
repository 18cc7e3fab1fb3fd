"""Staff login and the role checks every staff page goes through.

The session cookie holds only the user id and a stamp derived from the
password hash, so changing a password or deactivating a user ends every
session at the next request. Roles: ``admin`` (everything), ``agent``
(inbox and actions), ``finance`` (reports, refunds within policy).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlmodel import select

from billbox import totp
from billbox.customers import normalise_email
from billbox.models import Role, User, utcnow
from billbox.passwords import verify_password
from web.app import services
from web.security import LoginThrottle, check_csrf

bp = Blueprint("auth", __name__, url_prefix="/admin")

F = TypeVar("F", bound=Callable[..., Any])

# A hash of a password nobody has, checked when the address is unknown so a
# wrong address costs as much time as a wrong password.
_DUMMY_HASH = (
    "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


def _stamp(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def throttle() -> LoginThrottle:
    return cast(LoginThrottle, current_app.extensions["billbox_login_throttle"])


def current_user() -> User | None:
    """The logged-in staff user for this request, or None (cached on ``g``)."""
    if "user" in g:
        return cast(User | None, g.user)
    user = None
    uid = session.get("uid")
    if isinstance(uid, int):
        with services().factory() as db:
            found = db.get(User, uid)
            if found is not None and found.active and session.get("stamp") == _stamp(found):
                db.expunge(found)
                user = found
    g.user = user
    return user


def require_roles(*roles: Role) -> Callable[[F], F]:
    """Log in first (redirect), then the user's role must be listed (else 403)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if roles and user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _safe_next(target: str | None) -> str:
    """Only same-site admin paths; anything else could send the user elsewhere."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/admin"):
            return target
    return url_for("admin.tickets")


@bp.before_request
def _csrf() -> None:
    check_csrf()


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = ""
    status = 200
    if request.method == "POST":
        address = normalise_email(request.form.get("email", "")) or ""
        password = request.form.get("password", "")
        client = request.remote_addr or "unknown"
        wait = throttle().retry_after(address, client)
        if wait > 0:
            error = f"Too many failed attempts. Try again in {int(wait // 60) + 1} minutes."
            status = 429
        else:
            with services().factory() as db:
                user = db.exec(select(User).where(User.email == address)).first()
                stored = user.password_hash if user is not None else _DUMMY_HASH
                valid = verify_password(password, stored) and user is not None and user.active
                if valid and user is not None:
                    throttle().succeeded(address)
                    session.clear()
                    if user.totp_secret:  # second factor: the password alone logs nobody in
                        session["totp_uid"] = user.id
                        session["totp_stamp"] = _stamp(user)
                        return redirect(url_for("auth.login_totp", next=request.args.get("next")))
                    _log_in(db, user)
                    return redirect(_safe_next(request.args.get("next")))
            throttle().failed(address, client)
            error = "Wrong email or password."
            status = 401
    return render_template("admin/login.html", error=error), status


def _log_in(db: Any, user: User) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = user.id
    session["stamp"] = _stamp(user)
    user.last_login_at = utcnow()
    db.add(user)
    db.commit()


@bp.route("/login/totp", methods=["GET", "POST"])
def login_totp() -> Any:
    """The second step for users with a TOTP secret: the 6-digit code from their app."""
    uid = session.get("totp_uid")
    if not isinstance(uid, int):
        return redirect(url_for("auth.login"))
    error, status = "", 200
    if request.method == "POST":
        client = request.remote_addr or "unknown"
        with services().factory() as db:
            user = db.get(User, uid)
            if user is None or not user.active or session.get("totp_stamp") != _stamp(user):
                session.clear()
                return redirect(url_for("auth.login"))
            wait = throttle().retry_after(user.email, client)
            if wait > 0:
                error, status = "Too many failed attempts. Try again later.", 429
            elif user.totp_secret and totp.verify(user.totp_secret, request.form.get("code", "")):
                throttle().succeeded(user.email)
                _log_in(db, user)
                return redirect(_safe_next(request.args.get("next")))
            else:
                throttle().failed(user.email, client)
                error, status = "That code is not right; use the current one from your app.", 401
    return render_template("admin/login_totp.html", error=error), status


@bp.post("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
