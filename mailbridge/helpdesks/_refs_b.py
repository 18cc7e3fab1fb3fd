"""Reference tokens that let a retried push find what an earlier attempt made.

Help Scout, Intercom and Front have no field that stores an arbitrary
external id on a conversation in every plan, but all three search message
bodies. So each message (and each billing note) we send ends with one short
line carrying a token derived from our Message-ID::

    Billbox ref: bbxm3f1c0e9a4b7d2c8e5f60a1b

The token is a single alphanumeric word (a SHA-256 prefix), because vendor
search tokenises bodies on punctuation: a raw ``<id@host>`` would be split
into pieces that match other messages. Notes use a different prefix
(``bbxn``) so "the reply is there" and "its note is there" are separate
questions: a push that timed out between the two adds only the note.
"""

from __future__ import annotations

import hashlib
import html

#: Prefixes: ``m`` for a customer message, ``n`` for the billing note attached to it.
_MESSAGE = "bbxm"
_NOTE = "bbxn"


def message_token(message_id: str) -> str:
    """The searchable word for a customer message with this Message-ID."""
    return _MESSAGE + _digest(message_id)


def note_token(message_id: str) -> str:
    """The searchable word for the billing note pushed with that message."""
    return _NOTE + _digest(message_id)


def ref_line(token: str) -> str:
    """The plain-text line appended to a body."""
    return f"Billbox ref: {token}"


def with_text_ref(text: str, token: str | None) -> str:
    """``text`` with the reference line after a blank line (unchanged without a token)."""
    if not token:
        return text
    return f"{text.rstrip()}\n\n{ref_line(token)}"


def with_html_ref(fragment: str, token: str | None) -> str:
    """An HTML fragment with the reference as a last, small paragraph."""
    if not token:
        return fragment
    return f'{fragment}<p style="color:#888;font-size:11px">{html.escape(ref_line(token))}</p>'


def text_to_html(text: str) -> str:
    """Plain text as escaped HTML paragraphs, for vendors whose body field is HTML."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return (
        "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)
        or "<p></p>"
    )


def _digest(message_id: str) -> str:
    normalised = message_id.strip().strip("<>").strip()
    return hashlib.sha256(normalised.encode()).hexdigest()[:24]
