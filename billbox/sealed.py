"""Credentials at rest (gateway keys, helpdesk tokens): Fernet, keyed from the secret key.

The Fernet key is derived with HKDF-SHA256 from ``BILLBOX_SECRET_KEY`` and a
purpose label, so the same secret never serves two purposes (the session
cookie signer, reply tokens and these boxes each get their own key). A
database dump alone therefore reveals no credential. Changing the secret
key makes sealed values unreadable: they must be entered again (the error
says so), which is the price of not keeping a second key around.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from billbox.errors import BillboxError


class SealedError(BillboxError):
    """A sealed value cannot be opened (wrong or changed secret key, or tampered)."""


def _fernet(secret: str, purpose: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"billbox:{purpose}".encode()
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: str, purpose: str, values: dict[str, Any]) -> str:
    return _fernet(secret, purpose).encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def unseal(secret: str, purpose: str, token: str) -> dict[str, Any]:
    try:
        data = _fernet(secret, purpose).decrypt(token.encode())
    except InvalidToken:
        raise SealedError(
            "stored credentials cannot be decrypted: BILLBOX_SECRET_KEY changed since they were "
            "saved, or the row was altered; enter them again in the admin settings"
        ) from None
    values = json.loads(data)
    if not isinstance(values, dict):
        raise SealedError("stored credentials are not a JSON object")
    return values
