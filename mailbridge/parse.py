"""Parse raw bytes with the stdlib ``email`` package, never raising.

A message we cannot understand is not an exception to bubble up: the
result says why, and the pipeline quarantines the row with that reason
while keeping the raw bytes.

The policy is the default one except that over-long header values are cut
before they are parsed, and parsed header values are kept (see
:func:`_parse_header`); NUL characters are dropped from header values.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

MAX_HEADER_CHARS = 16 * 1024
"""Header values are cut to this before the stdlib parses them (see :class:`_BoundedPolicy`)."""
MAX_REFERENCES_CHARS = 64 * 1024
"""References are cheaper to parse and long threads have thousands: they may be longer."""
MAX_ADDRESS_CHARS = 254
"""A longer address cannot be a real one (RFC 5321 paths are at most 256 octets)."""
CACHED_HEADER_CHARS = 998
"""Header values up to one RFC 5322 line are parsed once and kept (:func:`_parse_header`)."""


class _BoundedPolicy(EmailPolicy):
    """The default policy, but an over-long header value is cut before it is parsed.

    The stdlib's header value parser is quadratic in the value's length (a
    200 KB Subject takes seconds, 2 MB hours), and every ``message.get``
    parses again. References keep their end, where the newest ids are.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if type(value) is str and len(value) <= CACHED_HEADER_CHARS:
            return _parse_header(self, name, value)
        if name.lower() == "references":
            if len(value) > MAX_REFERENCES_CHARS:
                value = value[-MAX_REFERENCES_CHARS:].split(None, 1)[-1]
        elif len(value) > MAX_HEADER_CHARS:
            value = value[:MAX_HEADER_CHARS]
        return super().header_fetch_parse(name, value)


@functools.lru_cache(maxsize=256)
def _parse_header(policy: EmailPolicy, name: str, value: str) -> Any:
    """The default policy's parse of one short header value, kept for the next fetch.

    Every ``message.get`` parses the value again, and the pipeline's steps
    (parse, classify, trust, body extraction) fetch the same headers — the
    ``Content-Type`` about ten times per message: without this, header
    parsing was most of the CPU time of the steps that never touch the
    database. Header objects are immutable ``str`` subclasses, so one parse
    can serve every fetch of the same (name, value), in any thread; values
    are short and the cache is bounded, so memory is too.
    """
    return EmailPolicy.header_fetch_parse(policy, name, value)


_POLICY = _BoundedPolicy()


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
    except (ValueError, LookupError, TypeError, AttributeError) as exc:  # malformed structure
        return f"<unparseable: {exc}>".replace("\x00", "") if name == "Subject" else None
    # NUL cannot be stored in a PostgreSQL text column, and means nothing in a header
    return None if value is None else str(value).replace("\x00", "").strip()


def _ids(value: str | None) -> list[str]:
    if not value:
        return []
    return [part if part.startswith("<") else f"<{part}>" for part in value.split() if part]


def parse_message(raw: bytes) -> ParsedMessage | ParseFailure:
    """Parse ``raw``; return a :class:`ParseFailure` with a reason instead of raising."""
    if not raw.strip():
        return ParseFailure("empty message")
    try:
        message = BytesParser(policy=_POLICY).parsebytes(raw)
    except Exception as exc:  # the stdlib parser is meant not to raise; be certain
        return ParseFailure(f"parser error: {exc.__class__.__name__}: {exc}")
    assert isinstance(message, EmailMessage)
    if not message.keys():
        return ParseFailure("no header fields")
    from_value = _header(message, "From")
    # A missing or empty sender is common on bounces (MAILER-DAEMON <>): parse
    # on, record the problem, and let the pipeline decide (a human message
    # without a sender is quarantined there; a bounce is still a bounce).
    found = [a for _n, a in getaddresses([from_value or ""]) if "@" in a]
    addresses = [a for a in found if len(a) <= MAX_ADDRESS_CHARS]
    problems: list[str] = []
    if found and not addresses:
        problems.append(f"From address longer than {MAX_ADDRESS_CHARS} characters")
    elif not addresses:
        problems.append(
            f"From header has no address: {from_value[:200]!r}" if from_value else "no From header"
        )
    to_values: list[str] = []
    for key in ("To", "Cc"):
        try:
            to_values += [str(v).replace("\x00", "") for v in (message.get_all(key) or [])]
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
        to_addresses=[
            addr.lower()
            for _n, addr in getaddresses(to_values)
            if "@" in addr and len(addr) <= MAX_ADDRESS_CHARS
        ],
        date=date,
        in_reply_to=next(iter(_ids(_header(message, "In-Reply-To"))), None),
        references=_ids(_header(message, "References")),
        defects=[type(d).__name__ for d in message.defects],
        problems=problems,
    )
