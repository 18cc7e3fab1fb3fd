"""``/api/v1``: JSON for helpdesk sidebars and scripts, authenticated by API token.

``Authorization: Bearer bbx_…``; no cookies, so no CSRF. Errors are
``{"error": {"code": …, "message": …}}`` with a matching HTTP status.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from billbox.api_tokens import authenticate
from billbox.models import ApiToken, Role
from web.app import services

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PUBLIC = frozenset({"api.openapi"})


def error(status: int, code: str, message: str) -> Any:
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="billbox"'
    return response


@bp.before_request
def _authenticate() -> Any:
    if request.endpoint in PUBLIC:
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret:
        return error(401, "unauthenticated", "send Authorization: Bearer <API token>")
    with services().factory() as db:
        token = authenticate(db, secret.strip())
        if token is not None:
            db.expunge(token)
    if token is None:
        return error(401, "unauthenticated", "unknown or revoked API token")
    g.api_token = token
    return None


def api_token() -> ApiToken:
    return cast(ApiToken, g.api_token)


def require_role(*roles: Role) -> Any:
    """None when the token's role may do this, else a 403 response to return."""
    if api_token().role not in roles:
        return error(403, "forbidden", f"a {api_token().role.value} token cannot do this")
    return None


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    code = (exc.name or "error").lower().replace(" ", "_")
    return error(exc.code or 500, code, exc.description or exc.name or "error")


from web.api import actions as _actions  # noqa: E402,F401  (registers the routes)
from web.api import routes as _routes  # noqa: E402,F401
