"""API tokens for ``/api/v1``: shown once at creation, stored only as a SHA-256 hash.

A token is ``bbx_`` followed by 43 random URL-safe characters (256 bits),
so a plain SHA-256 is enough to store it (no salt or slow hash needed: it
cannot be guessed from a dictionary, unlike a password). The first
characters are kept as ``prefix`` so an admin can tell tokens apart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, select

from billbox.errors import BillboxError
from billbox.models import ApiToken, Role, utcnow

PREFIX = "bbx_"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
#: last_used_at is refreshed at most this often, so reads do not each cost a write.
TOUCH_EVERY = timedelta(minutes=5)


class ApiTokenError(BillboxError):
    """A token cannot be created as asked."""


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, name: str, role: Role) -> NewToken:
    if not NAME_PATTERN.match(name):
        raise ApiTokenError(
            f"token name {name!r} must be lower-case letters, digits, '.', '_' or '-'"
        )
    if session.exec(select(ApiToken).where(ApiToken.name == name)).first() is not None:
        raise ApiTokenError(f"a token named {name!r} already exists; revoke it or pick another")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, role=role, prefix=secret[:10], token_hash=_digest(secret))
    session.add(token)
    session.flush()
    return NewToken(token, secret)


def authenticate(session: Session, secret: str) -> ApiToken | None:
    """The live token this secret belongs to, or None (unknown, malformed or revoked)."""
    if not secret.startswith(PREFIX) or len(secret) > 100:
        return None
    digest = _digest(secret)
    token = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    if token is None or token.revoked_at is not None:
        return None
    if not hmac.compare_digest(token.token_hash, digest):
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        token.last_used_at = now
        session.add(token)
        session.commit()
    return token


def revoke_token(session: Session, name: str) -> ApiToken:
    token = session.exec(select(ApiToken).where(ApiToken.name == name)).first()
    if token is None:
        raise ApiTokenError(f"no token named {name!r}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.add(token)
    return token
