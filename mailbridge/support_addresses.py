"""Support addresses set by an admin, merged into the SMTP server's recipient policy.

``BILLBOX_SUPPORT_ADDRESSES`` is read once at start; addresses added in the
admin live in the ``support_address`` table and are re-read every
``REFRESH_SECONDS`` by the running server, so a new address starts
receiving mail within that time without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from billbox.customers import normalise_email
from billbox.errors import BillboxError
from billbox.models import SupportAddress
from mailbridge.smtp import InboundSMTPHandler, RecipientPolicy

REFRESH_SECONDS = 15.0
log = structlog.get_logger(__name__)


class AddressError(BillboxError):
    """An address an admin typed cannot be accepted."""


def stored_addresses(session: Session) -> list[str]:
    return list(session.exec(select(SupportAddress.address).order_by(col(SupportAddress.address))))


def add_address(
    session: Session, address: str, *, reply_domain: str, brand_id: int | None = None
) -> SupportAddress:
    normalised = normalise_email(address)
    if normalised is None:
        raise AddressError(f"{address!r} is not a valid email address")
    if normalised.rpartition("@")[2] == reply_domain.lower():
        raise AddressError(f"every address @{reply_domain} is accepted already")
    if session.exec(select(SupportAddress).where(SupportAddress.address == normalised)).first():
        raise AddressError(f"{normalised} is already a support address")
    row = SupportAddress(address=normalised, brand_id=brand_id)
    session.add(row)
    session.flush()
    return row


def current_policy(
    factory: sessionmaker[Session], reply_domain: str, configured: Iterable[str]
) -> RecipientPolicy:
    with factory() as session:
        stored = stored_addresses(session)
    return RecipientPolicy.of(reply_domain, [*configured, *stored])


async def keep_policy_fresh(
    handler: InboundSMTPHandler,
    factory: sessionmaker[Session],
    reply_domain: str,
    configured: Iterable[str],
    *,
    interval: float = REFRESH_SECONDS,
) -> None:
    """Swap the handler's policy for a fresh one every ``interval`` seconds, forever.

    A failed read keeps the previous policy (mail keeps flowing) and is logged.
    """
    configured = list(configured)
    loop = asyncio.get_running_loop()
    while True:
        try:
            handler.policy = await loop.run_in_executor(
                None, current_policy, factory, reply_domain, configured
            )
        except (SQLAlchemyError, BillboxError) as exc:
            log.warning("support_addresses_refresh_failed", error=str(exc))
        await asyncio.sleep(interval)
