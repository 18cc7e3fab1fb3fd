"""The staff pages under ``/admin``: inbox, ticket view with billing panel, notes.

Every view needs a logged-in user (``web.auth.require_roles``) and every
unsafe request a CSRF token; the checks run here once for the blueprint.
"""

from __future__ import annotations

from flask import Blueprint

from web.security import check_csrf

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _csrf() -> None:
    check_csrf()


from web.admin import account as _account  # noqa: E402,F401  (registers the routes)
from web.admin import actions as _actions  # noqa: E402,F401
from web.admin import audit as _audit  # noqa: E402,F401
from web.admin import gateways as _gateways  # noqa: E402,F401
from web.admin import helpdesks as _helpdesks  # noqa: E402,F401
from web.admin import reports as _reports  # noqa: E402,F401
from web.admin import settings as _settings  # noqa: E402,F401
from web.admin import views as _views  # noqa: E402,F401
