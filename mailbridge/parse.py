"""Parse raw bytes with the stdlib ``email`` package (default policy), never raising.

A message we cannot understand is not an exception to bubble up: the
result says why, and the pipeline quarantines the row with that reason
while keeping the raw bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime


@dataclass(frozen=True)
class ParsedMessage:
    message: EmailMessage
    message_id: str | None
    subject: str
    from_address: str | None
    to_addresses: list[str]
    date: datetime | None
    in_reply_to: str | None
    references: list[str] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    # Problems that do not stop parsing but may stop a later step (no sender).
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParseFailure:
    reason: str


def _header(message: EmailMessage, name: str) -> str | None:
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError) as exc:  # malformed header structure
        return f"<unparseable: {exc}>" if name == "Subject" else None
    return None if value is None else str(value).strip()


def _ids(value: str | None) -> list[str]:
    if not value:
        return []
    return [part if part.startswith("<") else f"<{part}>" for part in value.split() if part]


def parse_message(raw: bytes) -> ParsedMessage | ParseFailure:
    """Parse ``raw``; return a :class:`ParseFailure` with a reason instead of raising."""
    if not raw.strip():
        return ParseFailure("empty message")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the stdlib parser is meant not to raise; be certain
        return ParseFailure(f"parser error: {exc.__class__.__name__}: {exc}")
    assert isinstance(message, EmailMessage)
    if not message.keys():
        return ParseFailure("no header fields")
    from_value = _header(message, "From")
    # A missing or empty sender is common on bounces (MAILER-DAEMON <>): parse
    # on, record the problem, and let the pipeline decide (a human message
    # without a sender is quarantined there; a bounce is still a bounce).
    addresses = [a for _n, a in getaddresses([from_value or ""]) if "@" in a]
    problems = (
        []
        if addresses
        else [
            f"From header has no address: {from_value[:200]!r}" if from_value else "no From header"
        ]
    )
    to_values: list[str] = []
    for key in ("To", "Cc"):
        try:
            to_values += [str(v) for v in (message.get_all(key) or [])]
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            problems.append(f"unreadable {key} header: {exc.__class__.__name__}")
    date = None
    date_value = _header(message, "Date")
    if date_value:
        try:
            date = parsedate_to_datetime(date_value)
        except (TypeError, ValueError):
            date = None
    message_id = _header(message, "Message-ID")
    return ParsedMessage(
        message=message,
        message_id=message_id.strip()[:255] if message_id else None,
        subject=_header(message, "Subject") or "",
        from_address=addresses[0].lower() if addresses else None,
        to_addresses=[addr.lower() for _n, addr in getaddresses(to_values) if "@" in addr],
        date=date,
        in_reply_to=next(iter(_ids(_header(message, "In-Reply-To"))), None),
        references=_ids(_header(message, "References")),
        defects=[type(d).__name__ for d in message.defects],
        problems=problems,
    )
