"""Attachments of a stored inbound message, read from its raw bytes on demand.

The pipeline keeps the raw message whole, so attachments need no table of
their own: they are listed (and served) by walking the MIME tree again.
A part counts as an attachment when it says so (``Content-Disposition:
attachment``) or carries a filename; the message's text and HTML bodies do
not. Indexes are positions in that walk, stable for a given raw message.
"""

from __future__ import annotations

from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

MAX_FILENAME = 200


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str
    content_type: str
    size: int


def _parts(raw: bytes) -> list[EmailMessage]:
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception:  # a message the parser cannot walk has no listable parts
        return []
    found: list[EmailMessage] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            disposition = part.get_content_disposition()
            filename = part.get_filename()
        except Exception:  # noqa: S112 - a broken header on one part must not hide the others
            continue
        if disposition == "attachment" or filename:
            found.append(part)
    return found


def _payload(part: EmailMessage) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return b""
    return data if isinstance(data, bytes) else b""


def _name(part: EmailMessage, index: int) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:
        name = ""
    name = name.replace("/", "_").replace("\\", "_").replace("\x00", "").strip()
    return name[:MAX_FILENAME] or f"attachment-{index + 1}"


def list_attachments(raw: bytes) -> list[Attachment]:
    return [
        Attachment(i, _name(part, i), part.get_content_type(), len(_payload(part)))
        for i, part in enumerate(_parts(raw))
    ]


def attachment(raw: bytes, index: int) -> tuple[Attachment, bytes] | None:
    """The attachment at ``index`` and its decoded bytes, or None."""
    parts = _parts(raw)
    if not 0 <= index < len(parts):
        return None
    part = parts[index]
    data = _payload(part)
    return Attachment(index, _name(part, index), part.get_content_type(), len(data)), data
