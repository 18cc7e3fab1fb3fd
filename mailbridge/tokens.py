"""Signed reply tokens: ``Reply-To: reply+<token>@<BILLBOX_REPLY_DOMAIN>``.

A token names the customer (and usually the document and brand) an
outgoing email was about, so a reply can be threaded and matched even when
the customer answers from another address or their client drops every
threading header. It is signed, so nobody can forge one for another
customer; it is not encrypted (the ids inside are not secret).

Format, version 1::

    token      = "v1" payload               ; lower case, 2..52 characters
    payload    = base32(fields || tag)      ; RFC 4648 alphabet, lower case, no "="
    fields     = varint(document_id + 1)    ; 0 when there is no document
                 varint(customer_id)
                 varint(brand_id + 1)       ; 0 when there is no brand
    tag        = HMAC-SHA256(key, "v1" || fields)[:10]      ; 80 bits
    key        = HMAC-SHA256(secret, "billbox reply token v1")

``varint`` is unsigned LEB128 in its shortest form. Ids must lie in
``0 <= id <= 2**48`` so each varint takes at most 7 bytes; the longest token
is then 52 characters and the longest local part, ``reply+`` and the token,
58 octets, within the 64 that RFC 5321 allows.

Why this shape:

- *Case-insensitive alphabet.* Some mail servers lower- or upper-case the
  local part. Base32 letters and digits survive that, and a ``+`` tag of
  letters and digits is a plain dot-atom, so it needs no quoting in SMTP.
  :func:`read_reply_token` folds case before checking.
- *Canonical form only.* The reader re-encodes what it decoded and compares,
  so there is exactly one spelling of each token (apart from case) and no
  change to any character can still verify.
- *Derived key.* The MAC key is derived from ``BILLBOX_SECRET_KEY`` for this
  purpose alone, so a tag can never be replayed as some other signature
  made with the same secret (signed links, encrypted settings).
- *Version prefix.* A later ``v2`` may change anything after the prefix;
  the version is also part of the MAC input and of the key label, so a
  tag made for one version never verifies under another.

Tokens do not expire. A customer may answer a receipt months later (an
accountant's question at year end), and a reply that bounced for an expired
token would be a lost customer message, which is worse than the risk it
would remove: a token grants only "this message is about that
customer/document", and the trust step still judges the sender. Rotating
``BILLBOX_SECRET_KEY`` invalidates every token; such replies then fall
back to the other threading rules.

:func:`read_reply_token` never raises on hostile input: anything
malformed, truncated, tampered with or signed with another key is ``None``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

__all__ = [
    "LOCAL_PART_PREFIX",
    "MAX_ID",
    "TokenClaims",
    "make_reply_token",
    "read_reply_token",
    "reply_address",
    "token_from_address",
]

VERSION = "v1"
LOCAL_PART_PREFIX = "reply+"
MAX_ID = 2**48
"""The largest id a token can carry (id + 1 fits a 7-byte varint); far above any row id."""

_TAG_BYTES = 10
_KEY_LABEL = b"billbox reply token v1"
# A version-1 token is at most 2 + ceil((3 * 7 + 10) * 8 / 5) = 52 characters;
# anything longer is rejected before any decoding work.
_MAX_TOKEN_CHARS = 52


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says: the customer, and the document and brand if any."""

    customer_id: int
    document_id: int | None = None
    brand_id: int | None = None


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()


def _tag(secret: str, fields: bytes) -> bytes:
    mac = hmac.new(_key(secret), VERSION.encode("ascii") + fields, hashlib.sha256)
    return mac.digest()[:_TAG_BYTES]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """Decode one varint at ``pos``; ``None`` if it runs off the end or is too long."""
    value = 0
    for shift in range(0, 7 * 7, 7):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    return None


def _fields(document_id: int | None, customer_id: int, brand_id: int | None) -> bytes:
    return (
        _varint(0 if document_id is None else document_id + 1)
        + _varint(customer_id)
        + _varint(0 if brand_id is None else brand_id + 1)
    )


def _check_id(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ValueError(f"{name} must be an integer in 0..{MAX_ID}, got {value!r}")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def make_reply_token(
    secret: str, *, document_id: int | None, customer_id: int, brand_id: int | None = None
) -> str:
    """Sign a token for a reply about ``document_id`` (or none) of ``customer_id``.

    Raises :class:`ValueError` for an empty secret or an id outside ``0..MAX_ID``;
    those are programming errors, not hostile input.
    """
    if not secret:
        raise ValueError("a reply token needs the secret key")
    if customer_id is None:
        raise ValueError("customer_id is required")
    _check_id("document_id", document_id)
    _check_id("customer_id", customer_id)
    _check_id("brand_id", brand_id)
    fields = _fields(document_id, customer_id, brand_id)
    return VERSION + _b32(fields + _tag(secret, fields))


def read_reply_token(secret: str, token: str) -> TokenClaims | None:
    """The claims of a valid ``token`` signed with ``secret``; ``None`` for anything else."""
    if not secret or not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        return None
    if not token.isascii():
        return None
    token = token.lower()
    if not token.startswith(VERSION):
        return None
    payload = token[len(VERSION) :]
    if not payload or not payload.isalnum():
        return None
    try:
        raw = base64.b32decode(payload.upper() + "=" * (-len(payload) % 8))
    except (binascii.Error, ValueError):
        return None
    if _b32(raw) != payload:  # non-canonical spelling (stray bits, bad length)
        return None
    if len(raw) <= _TAG_BYTES:
        return None
    fields, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(secret, fields)):
        return None
    values: list[int] = []
    pos = 0
    for _ in range(3):
        read = _read_varint(fields, pos)
        if read is None:
            return None
        value, pos = read
        values.append(value)
    document_plus_one, customer_id, brand_plus_one = values
    claims = TokenClaims(
        customer_id=customer_id,
        document_id=document_plus_one - 1 if document_plus_one else None,
        brand_id=brand_plus_one - 1 if brand_plus_one else None,
    )
    if pos != len(fields) or _fields(claims.document_id, customer_id, claims.brand_id) != fields:
        return None  # trailing bytes or a non-shortest varint: not a token we made
    if max(customer_id, document_plus_one - 1, brand_plus_one - 1) > MAX_ID:
        return None
    return claims


def reply_address(token: str, domain: str) -> str:
    """``reply+<token>@<domain>``, the Reply-To address of an outgoing email."""
    return f"{LOCAL_PART_PREFIX}{token}@{domain.strip().lower()}"


def token_from_address(address: str, domain: str) -> str | None:
    """The token in a ``reply+<token>@<domain>`` address, lower-cased; ``None`` otherwise.

    Case is ignored in the prefix and the domain (servers change both);
    angle brackets and surrounding blanks are tolerated. The token is not
    verified here: pass it to :func:`read_reply_token`.
    """
    if not isinstance(address, str) or not address.isascii() or len(address) > 320:
        return None
    address = address.strip().strip("<>").strip()
    local, at, addr_domain = address.rpartition("@")
    if not at or addr_domain.lower().rstrip(".") != domain.strip().lower().rstrip("."):
        return None
    if len(local) >= 2 and local[0] == local[-1] == '"':
        local = local[1:-1]
    if not local.lower().startswith(LOCAL_PART_PREFIX):
        return None
    token = local[len(LOCAL_PART_PREFIX) :].lower()
    return token or None
