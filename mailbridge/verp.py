"""VERP envelope senders: ``bounce+<outbound id>-<tag>@<BILLBOX_REPLY_DOMAIN>``.

Every outgoing email gets its own envelope sender (the SMTP ``MAIL FROM``,
which the receiving server writes into ``Return-Path``), so a bounce,
which is addressed to that envelope sender, names the email it is about in
its *address*. That survives bounces that quote nothing of the original
message (qmail, many autoresponders), where matching by Message-ID fails.

Format::

    local part = "bounce+" decimal(outbound id) "-" tag
    tag        = hex(HMAC-SHA256(key, "v1:" decimal(id)))[:16]   ; 64 bits, lower case
    key        = HMAC-SHA256(secret, "billbox verp v1")

Why signed: the address arrives from the Internet, and anybody could send
a fake DSN to ``bounce+123@…`` to mark a customer's receipt as bounced.
With the tag, only addresses we handed out verify. The key is derived for
this purpose alone, like the reply tokens' key, so a tag is never valid as
any other signature made with ``BILLBOX_SECRET_KEY``. Hex survives servers
that change the case of the local part; the reader folds case.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import replace

from sqlmodel import Session

from billbox.models import OutboundEmail
from mailbridge.classify import BounceInfo, apply_bounce

__all__ = ["VERP_PREFIX", "outbound_for_bounce", "read_verp_address", "verp_address"]

VERP_PREFIX = "bounce+"
_KEY_LABEL = b"billbox verp v1"
_TAG_CHARS = 16
_MAX_ID_DIGITS = 15  # far above any row id; bounds the work done on hostile input


def _tag(secret: str, outbound_id: int) -> str:
    key = hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()
    mac = hmac.new(key, f"v1:{outbound_id}".encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:_TAG_CHARS]


def verp_address(secret: str, outbound_id: int, domain: str) -> str:
    """The envelope sender for outbound email ``outbound_id``.

    Raises :class:`ValueError` for an empty secret or a negative id
    (programming errors, not hostile input).
    """
    if not secret:
        raise ValueError("a VERP address needs the secret key")
    if isinstance(outbound_id, bool) or not isinstance(outbound_id, int) or outbound_id < 0:
        raise ValueError(f"outbound id must be a non-negative integer, got {outbound_id!r}")
    return f"{VERP_PREFIX}{outbound_id}-{_tag(secret, outbound_id)}@{domain.strip().lower()}"


def read_verp_address(secret: str, address: str, domain: str) -> int | None:
    """The outbound id in a VERP ``address`` we signed for ``domain``; ``None`` otherwise.

    Never raises: malformed, foreign-domain, tampered or unsigned addresses
    are all ``None``. Angle brackets and case are tolerated.
    """
    if not secret or not isinstance(address, str) or not address.isascii() or len(address) > 320:
        return None
    local, at, addr_domain = address.strip().strip("<>").strip().rpartition("@")
    if not at or addr_domain.lower().rstrip(".") != domain.strip().lower().rstrip("."):
        return None
    local = local.lower()
    if not local.startswith(VERP_PREFIX):
        return None
    id_text, dash, tag = local[len(VERP_PREFIX) :].partition("-")
    if not dash or not id_text.isdigit() or len(id_text) > _MAX_ID_DIGITS:
        return None
    if id_text != str(int(id_text)):  # "007": not a spelling we hand out
        return None
    outbound_id = int(id_text)
    if not hmac.compare_digest(tag, _tag(secret, outbound_id)):
        return None
    return outbound_id


def outbound_for_bounce(
    session: Session,
    addresses: str | Iterable[str],
    *,
    secret: str,
    reply_domain: str,
    bounce: BounceInfo | None = None,
) -> OutboundEmail | None:
    """Mark the email whose signed VERP address is among ``addresses`` as BOUNCED.

    ``addresses`` are the envelope recipients of the inbound message (a DSN
    is sent to the failed mail's envelope sender). The state change itself
    is :func:`mailbridge.classify.apply_bounce`'s, so a delay or success
    notice still changes nothing and the diagnostic lands in
    ``last_error`` the same way. Returns the marked row, or ``None`` when
    no address verifies, the row is gone, or the notice is not a failure.
    """
    if isinstance(addresses, str):
        addresses = [addresses]
    for address in addresses:
        outbound_id = read_verp_address(secret, address, reply_domain)
        if outbound_id is None:
            continue
        row = session.get(OutboundEmail, outbound_id)
        if row is None:
            continue
        if bounce is None:
            bounce = BounceInfo(
                recipient=None,
                status=None,
                hard=None,
                diagnostic="delivery failure notice to the VERP address",
                original_message_id=None,
            )
        if bounce.recipient is None:
            bounce = replace(bounce, recipient=row.to_address)
        return apply_bounce(session, bounce, outbound=row)
    return None
