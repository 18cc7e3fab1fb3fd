"""Time-based one-time passwords (RFC 6238, SHA-1, 30 s, 6 digits) for staff second factors.

The standard library has everything needed (HMAC, base32), and every
authenticator app speaks exactly this profile. Codes of the previous and
next step are accepted too, for clocks that drift a little.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP = 30
DIGITS = 6


def new_secret() -> str:
    """160 random bits in base32, as authenticator apps expect (RFC 4226 recommends ≥ 128)."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.strip().upper() + "=" * (-len(secret.strip()) % 8)
    return base64.b32decode(padded)


def code_at(secret: str, moment: float) -> str:
    counter = int(moment // STEP)
    digest = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def verify(secret: str, code: str, *, now: float | None = None, window: int = 1) -> bool:
    """Whether ``code`` is the current code (± ``window`` steps), compared in constant time."""
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isdigit():
        return False
    moment = time.time() if now is None else now
    matches = [
        hmac.compare_digest(code, code_at(secret, moment + step * STEP))
        for step in range(-window, window + 1)
    ]
    return any(matches)


def provisioning_uri(secret: str, account: str, issuer: str = "Billbox") -> str:
    """The ``otpauth://`` URI an authenticator app imports (as a QR code or typed in)."""
    label = quote(f"{issuer}:{account}")
    query = urlencode({"secret": secret, "issuer": issuer, "digits": DIGITS, "period": STEP})
    return f"otpauth://totp/{label}?{query}"
