"""Staff accounts: create and look up users (roles admin, agent, finance)."""

from __future__ import annotations

from sqlmodel import Session, select

from billbox.customers import normalise_email
from billbox.errors import BillboxError
from billbox.models import Role, User
from billbox.passwords import hash_password

MIN_PASSWORD_LENGTH = 12


class UserError(BillboxError):
    """A user cannot be created as asked (bad email, weak password, duplicate)."""


def create_user(session: Session, email: str, role: Role, password: str, name: str = "") -> User:
    address = normalise_email(email)
    if address is None:
        raise UserError(f"{email!r} is not a valid email address")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if session.exec(select(User).where(User.email == address)).first() is not None:
        raise UserError(f"a user with email {address} already exists")
    user = User(email=address, name=name, role=role, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user
