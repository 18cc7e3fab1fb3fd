"""The idempotency key the Zendesk and Freshdesk clients stamp on what they write.

A Message-ID can be up to ~1,000 characters of almost anything, while the
places a vendor lets us stamp a ticket are short and picky (a Zendesk
``external_id``, a Freshdesk tag, a marker line in a note). So we stamp a
fixed-length digest of our Message-ID instead: 24 hex digits (96 bits) of
SHA-256, the same for every attempt at the same message, so a retry can find
what an earlier, timed-out attempt already wrote.
"""

from __future__ import annotations

import hashlib


def message_ref(message_id: str | None) -> str:
    """24 hex digits naming our message; the Message-ID is required (it is the key)."""
    if not message_id or not message_id.strip():
        raise ValueError(
            "a helpdesk push needs the message's Message-ID: it is what makes a retry safe"
        )
    normalised = message_id.strip().removeprefix("<").removesuffix(">").strip()
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()[:24]


__all__ = ["message_ref"]
