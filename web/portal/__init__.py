"""``/billing``: the customer's own pages, opened from a signed link, no password.

Opening ``/billing/open/<token>`` checks the link and keeps the grant
(customer, brand, nonce) in the session cookie, then redirects so the
token leaves the address bar and history. Every request re-checks the
nonce, so rotating it ends open sessions too. Forms carry a CSRF token.
"""

from __future__ import annotations

from typing import cast

from flask import Blueprint, current_app, g, session

from billbox.portal_links import PortalGrant, PortalLinks
from web.app import services
from web.security import check_csrf

bp = Blueprint("portal", __name__, url_prefix="/billing")

SESSION_KEY = "portal"


def links() -> PortalLinks:
    return cast(PortalLinks, current_app.extensions["billbox_portal_links"])


def current_grant() -> PortalGrant | None:
    """The customer and brand this browser may see, or None."""
    if "portal_grant" in g:
        return cast(PortalGrant | None, g.portal_grant)
    grant = None
    stored = session.get(SESSION_KEY)
    if isinstance(stored, list) and len(stored) == 3:
        customer_id, brand_id, nonce = stored
        candidate = PortalGrant(int(customer_id), int(brand_id))
        with services().factory() as db:
            if links().still_valid(db, candidate, str(nonce)):
                grant = candidate
    g.portal_grant = grant
    return grant


@bp.before_request
def _csrf() -> None:
    check_csrf()


from web.portal import card as _card  # noqa: E402,F401
from web.portal import views as _views  # noqa: E402,F401  (registers the routes)
