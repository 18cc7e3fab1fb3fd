"""Signed links to a customer's billing pages: no password, one customer, one brand.

A link carries ``(customer id, brand id, nonce)`` signed with the secret
key (itsdangerous, HMAC-SHA1 over a salted key derivation) and a timestamp.
It is refused when the signature is wrong, when it is older than
``BILLBOX_PORTAL_LINK_DAYS``, or when the customer's ``portal_nonce`` has
changed since it was made: rotating the nonce revokes every link at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlmodel import Session

from billbox.errors import BillboxError
from billbox.models import Customer

SALT = "billbox.portal-link.v1"


class LinkRefused(BillboxError):
    """A billing-page link that cannot be used; the message is safe to show."""


@dataclass(frozen=True)
class PortalGrant:
    customer_id: int
    brand_id: int


def ensure_nonce(session: Session, customer: Customer) -> str:
    """The customer's current nonce, created on first use."""
    if not customer.portal_nonce:
        customer.portal_nonce = secrets.token_urlsafe(16)
        session.add(customer)
        session.flush()
    return customer.portal_nonce


def rotate_nonce(session: Session, customer: Customer) -> None:
    """Revoke every link issued so far for this customer."""
    customer.portal_nonce = secrets.token_urlsafe(16)
    session.add(customer)
    session.flush()


class PortalLinks:
    def __init__(self, secret: str, max_age_days: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=SALT)
        self._max_age = max_age_days * 86400

    def make(self, session: Session, customer: Customer, brand_id: int) -> str:
        assert customer.id is not None
        nonce = ensure_nonce(session, customer)
        return self._serializer.dumps([customer.id, brand_id, nonce])

    def verify(self, session: Session, token: str) -> PortalGrant:
        try:
            customer_id, brand_id, nonce = self._serializer.loads(token, max_age=self._max_age)
        except SignatureExpired:
            raise LinkRefused("This link has expired. Ask for a new one below.") from None
        except (BadSignature, ValueError, TypeError):
            raise LinkRefused("This link is not valid. Ask for a new one below.") from None
        customer = session.get(Customer, customer_id)
        if customer is None or not customer.portal_nonce or customer.portal_nonce != nonce:
            raise LinkRefused("This link is no longer valid. Ask for a new one below.")
        return PortalGrant(int(customer_id), int(brand_id))

    def still_valid(self, session: Session, grant: PortalGrant, nonce: str) -> bool:
        customer = session.get(Customer, grant.customer_id)
        return customer is not None and bool(nonce) and customer.portal_nonce == nonce
