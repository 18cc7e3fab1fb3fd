"""Hostile variations of real mail through the whole inbound pipeline.

Real corpus messages (``../shared/corpora/bounces_autoreplies``, third-party,
see its ``SOURCE.md`` files) are mutated the ways broken and malicious mail
arrives — cut off inside a MIME boundary, boundaries lost or repeated,
garbage or unknown charsets, raw 8-bit bytes and NULs in headers, a 200 KB
header or thousands of ``Received`` lines, hundreds of nested multiparts,
bare CR/LF mixtures, RFC 2047 words with bad base64, a lying
``Content-Transfer-Encoding`` — then stored with ``store_inbound`` and run
with ``run_job`` and the real handlers, exactly as a worker would.

The property: the job ends ``done`` (an exception in the handler would make
it ``retry`` or ``failed``: that is an escaped exception), the raw bytes are
kept exactly, and the row is final: processed or ignored, or quarantined with
a reason; a processed human message is filed into a ticket.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from billbox.jobs import run_job
from billbox.models import (
    InboundMessage,
    InboundSource,
    InboundState,
    Job,
    JobState,
    MessageClass,
    OutboundEmail,
    OutboundState,
    Ticket,
    TicketMessage,
)
from billbox.settings import load_settings
from mailbridge import store_inbound
from mailbridge.parse import MAX_HEADER_CHARS, ParsedMessage, parse_message
from tests.billing_world import make_receipt
from workers.registry import default_handlers

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
BOUNCES = CORPUS / "bounces_autoreplies"
needs_corpus = pytest.mark.skipif(
    not BOUNCES.exists() and not os.environ.get("CI"), reason="shared corpora not present"
)

SECRET = "property-test-secret-0123456789"
DOMAIN = "reply.example.com"
CUSTOMER_EMAIL = "ana@example.org"
RECEIPT_ID = b"<receipt-1@reply.example.com>"
FINAL = {InboundState.PROCESSED, InboundState.IGNORED, InboundState.QUARANTINED}
# More for a deeper local run, e.g. BILLBOX_PROPERTY_EXAMPLES=2000; CI keeps the default.
EXAMPLES = int(os.environ.get("BILLBOX_PROPERTY_EXAMPLES", "80"))


@cache
def corpus_files() -> tuple[Path, ...]:
    return tuple(sorted(BOUNCES.rglob("*.eml"))) if BOUNCES.exists() else ()


@cache
def corpus_bytes(path: Path) -> bytes:
    return path.read_bytes()


# -- the world the messages arrive in ---------------------------------------


@pytest.fixture
def handlers(tmp_path):
    settings_ = load_settings(
        secret_key=SECRET, reply_domain=DOMAIN, broker_url="stub", var_dir=tmp_path, _env_file=None
    )
    return default_handlers(settings_)


@pytest.fixture
def token_address(factory) -> str:
    """A customer with a receipt mailed from a signed Reply-To; that address."""
    with factory() as session:
        world = make_receipt(
            session,
            secret=SECRET,
            domain=DOMAIN,
            customer_email=CUSTOMER_EMAIL,
            message_id=RECEIPT_ID.decode(),
        )
    return world.token_address


def deliver_and_check(factory, handlers, raw: bytes, envelope_to: list[str]) -> InboundMessage:
    """Store ``raw``, run its job with the real handlers, assert the property; the row."""
    inbound_id = store_inbound(
        factory,
        raw,
        source=InboundSource.SMTP,
        envelope_from="sender@example.org",
        envelope_to=envelope_to,
    )
    with factory() as session:
        job = session.exec(
            select(Job).where(Job.state == JobState.QUEUED).order_by(col(Job.id).desc())
        ).first()
        assert job is not None and job.id is not None
        assert job.payload == {"inbound_message_id": inbound_id}
        job_id = job.id
    result = run_job(factory, job_id, handlers)
    if result.outcome != "done":
        with factory() as session:
            failed = session.get(Job, job_id)
            detail = failed.last_error if failed is not None else None
        print(f"job {result.outcome}: {result.error}\n{detail}")
    assert result.outcome == "done", result.error
    with factory() as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        assert row.raw == raw
        assert row.state in FINAL, row.state
        assert row.processed_at is not None
        if row.state == InboundState.QUARANTINED:
            assert row.quarantine_reason and row.quarantine_reason.strip()
        if row.state == InboundState.PROCESSED:
            assert row.classification == MessageClass.HUMAN
            assert row.ticket_id is not None
            filed = _ticket_message(session, inbound_id)
            assert filed is not None and filed.ticket_id == row.ticket_id
        return row


def _ticket_message(session: Session, inbound_id: int) -> TicketMessage | None:
    return session.exec(
        select(TicketMessage).where(TicketMessage.inbound_message_id == inbound_id)
    ).first()


# -- mutations ----------------------------------------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]

_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]+)"?', re.IGNORECASE)
_CHARSET = re.compile(rb'charset\s*=\s*("[^"\r\n]*"|[^;\s]*)', re.IGNORECASE)
_CTE = re.compile(rb"^(content-transfer-encoding[ \t]*:)[^\r\n]*", re.IGNORECASE | re.MULTILINE)
_CTYPE = re.compile(rb"^content-type[ \t]*:", re.IGNORECASE | re.MULTILINE)


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block, separator, body); a message with no blank line is all header."""
    match = re.search(rb"\r?\n\r?\n", raw)
    if match is None:
        return raw, b"", b""
    return raw[: match.start()], match.group(), raw[match.end() :]


def _header_lines(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) of each header line's value part (after the colon)."""
    head, _sep, _body = _split(raw)
    spans = []
    for match in re.finditer(rb"^[!-9;-~]+[ \t]*:([^\r\n]*)", head, re.MULTILINE):
        spans.append((match.start(1), match.end(1)))
    return spans


def _boundary_lines(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) of every delimiter line of every boundary the message declares."""
    spans: list[tuple[int, int]] = []
    for boundary in {m.group(1).strip() for m in _BOUNDARY.finditer(raw)}:
        if not boundary:
            continue
        pattern = re.compile(rb"^--" + re.escape(boundary) + rb"(?:--)?[ \t]*\r?\n?", re.M)
        spans += [(m.start(), m.end()) for m in pattern.finditer(raw)]
    return sorted(spans)


def truncate(raw: bytes, draw: Draw) -> bytes:
    """Cut the message off, preferably inside a boundary delimiter line."""
    spans = _boundary_lines(raw)
    if spans and draw(st.booleans()):
        start, end = draw(st.sampled_from(spans))
        return raw[: draw(st.integers(start, max(start, end - 1)))]
    return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]


def drop_or_repeat_boundary(raw: bytes, draw: Draw) -> bytes:
    """Delete a delimiter line, or repeat it (an empty part, or two closers)."""
    spans = _boundary_lines(raw)
    if not spans:
        return raw
    start, end = draw(st.sampled_from(spans))
    if draw(st.booleans()):
        return raw[:start] + raw[end:]
    return raw[:end] + raw[start:end] + raw[end:]


BAD_CHARSETS = [
    b"x-no-such-charset",
    b'"utf-8\xff\xfe"',
    b"",
    b'""',
    b"utf-7",
    b"utf-16",
    b"utf-32-be",
    b"idna",
    b"punycode",
    b"undefined",
    b"rot13",
    b"base64",
    b"zlib",
    b"hex",
    b"mbcs",
    b"iso-2022-jp-2004",
    b"unicode-1-1-utf-7",
    b"utf-8'en'",
    b"\x00",
    b"a" * 5000,
    b"%ff%fe",
]


def bad_charset(raw: bytes, draw: Draw) -> bytes:
    """Replace one charset parameter (or add one to a Content-Type) with garbage."""
    charset = draw(st.sampled_from(BAD_CHARSETS))
    matches = list(_CHARSET.finditer(raw))
    if matches:
        match = draw(st.sampled_from(matches))
        return raw[: match.start(1)] + charset + raw[match.end(1) :]
    ctypes = list(_CTYPE.finditer(raw))
    if ctypes:
        match = draw(st.sampled_from(ctypes))
        line_end = raw.find(b"\n", match.end())
        line_end = len(raw) if line_end < 0 else line_end
        if raw[line_end - 1 : line_end] == b"\r":
            line_end -= 1
        return raw[:line_end] + b"; charset=" + charset + raw[line_end:]
    return b"Content-Type: text/plain; charset=" + charset + b"\r\n" + raw


EIGHT_BIT = [b"\xff\xfe", b"\xc3\x28", b"\x80\x81\x82", b"\xed\xa0\x80", b"\xe9t\xe9", b"\xf0\x9f"]


def eight_bit_header(raw: bytes, draw: Draw) -> bytes:
    """Invalid UTF-8 or raw 8-bit bytes inside a header value (Subject, From, …)."""
    junk = draw(st.sampled_from(EIGHT_BIT))
    spans = _header_lines(raw)
    name = draw(st.sampled_from([b"Subject", b"From", b"To", b"Message-ID", b"References"]))
    if not spans or draw(st.booleans()):
        return name + b": " + junk + b" <x" + junk + b"@example.org>\r\n" + raw
    start, end = draw(st.sampled_from(spans))
    at = draw(st.integers(start, end))
    return raw[:at] + junk + raw[at:]


def huge_header(raw: bytes, draw: Draw) -> bytes:
    """A 200 KB header value, or thousands of Received lines, on top."""
    kind = draw(st.sampled_from(["subject", "received", "from", "references"]))
    if kind == "subject":
        value = b"Re: " + b"invoice " * 25_000
        return b"Subject: " + value + b"\r\n" + raw
    if kind == "received":
        line = b"Received: from relay.example.net (relay [192.0.2.1]) by mx.example.org\r\n"
        return line * 5_000 + raw
    if kind == "from":
        return b"From: " + b"x" * 200_000 + b"@example.org\r\n" + raw
    refs = b" ".join(b"<r%d@example.org>" % i for i in range(10_000))
    return b"References: " + refs + b"\r\n" + raw


def deep_nesting(raw: bytes, draw: Draw) -> bytes:
    """Wrap the body in hundreds of multipart/mixed levels, closers optional."""
    depth = draw(st.integers(20, 200))
    closed = draw(st.booleans())
    head, _sep, body = _split(raw)
    found = re.search(rb"^content-type[ \t]*:.*(?:\r?\n[ \t].*)*", head, re.I | re.M)
    inner = found.group() if found else b"Content-Type: text/plain"
    head = _CTYPE.sub(b"X-Old-Content-Type:", head)
    opening = b"".join(
        b'--n%d\r\nContent-Type: multipart/mixed; boundary="n%d"\r\n\r\n' % (i, i + 1)
        for i in range(depth)
    )
    closing = (
        b"".join(b"\r\n--n%d--\r\n" % i for i in reversed(range(depth + 1))) if closed else b""
    )
    return (
        head
        + b'\r\nContent-Type: multipart/mixed; boundary="n0"\r\n\r\n'
        + opening
        + b"--n%d\r\n" % depth
        + inner.strip()
        + b"\r\n\r\n"
        + body
        + closing
    )


def nul_bytes(raw: bytes, draw: Draw) -> bytes:
    """NULs in a header value and at random places."""
    out = raw
    spans = _header_lines(out)
    if spans:
        start, end = draw(st.sampled_from(spans))
        at = draw(st.integers(start, end))
        out = out[:at] + b"\x00" + out[at:]
    else:
        out = b"Subject: a\x00b\r\n" + out
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(out)))
        out = out[:at] + b"\x00" * draw(st.integers(1, 4)) + out[at:]
    return out


def line_endings(raw: bytes, draw: Draw) -> bytes:
    """Bare CR and bare LF mixed into (or replacing) CRLF line ends."""
    mode = draw(st.sampled_from(["cr", "lf", "crlf", "mixed"]))
    lines = re.split(rb"\r\n|\r|\n", raw)
    if mode == "mixed":
        ends = [draw(st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\r"])) for _ in range(16)]
        return b"".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    end = {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}[mode]
    return end.join(lines)


BAD_WORDS = [
    b"=?utf-8?B?!!notbase64**?=",
    b"=?utf-8?B?YWJj?=",
    b"=?utf-8?B?YW?=",
    b"=?utf-8?B?=?=",
    b"=?utf-8?Q?=FF=FE=C3?=",
    b"=?x-no-such-charset?Q?abc?=",
    b"=?idna?B?/w==?=",
    b"=?undefined?Q?x?=",
    b"=?utf-8*en?b?SGVsbG8=?=",
    b"=?utf-8?X?abc?=",
    b"=??B?YWJj?=",
    b"=?utf-8?B?" + b"QUFB" * 10_000 + b"?=",
    b"=?utf-8?Q?a=00b?=",
    b"=?utf-8?B?AAAA?=",
]


def bad_encoded_word(raw: bytes, draw: Draw) -> bytes:
    """RFC 2047 encoded-words with bad base64, unknown charsets or encodings."""
    word = draw(st.sampled_from(BAD_WORDS))
    where = draw(st.sampled_from(["subject", "from", "to", "filename"]))
    if where == "subject":
        return b"Subject: Re: " + word + b" " + word + b"\r\n" + raw
    if where == "from":
        return b"From: " + word + b" <" + word + b"@example.org>\r\n" + raw
    if where == "to":
        return b"To: " + word + b" <" + word + b"@" + DOMAIN.encode() + b">\r\n" + raw
    return re.sub(
        rb"^(content-type[ \t]*:[^\r\n]*)",
        lambda m: m.group(1) + b'; name="' + word + b'"',
        raw,
        count=1,
        flags=re.I | re.M,
    )


LIES = [b"base64", b"quoted-printable", b"x-uuencode", b"uuencode", b"binary", b"bogus", b"7bit"]


def cte_lie(raw: bytes, draw: Draw) -> bytes:
    """A Content-Transfer-Encoding that does not match the body."""
    lie = draw(st.sampled_from(LIES))
    matches = list(_CTE.finditer(raw))
    if matches and draw(st.booleans()):
        match = draw(st.sampled_from(matches))
        return raw[: match.end(1)] + b" " + lie + raw[match.end() :]
    if draw(st.booleans()):
        return b"Content-Transfer-Encoding: " + lie + b"\r\n" + raw
    return _CTYPE.sub(lambda m: b"Content-Transfer-Encoding: " + lie + b"\r\n" + m.group(), raw)


AUTH_RESULTS = [
    b"mx.example.org; dmarc=pass header.from=example.org; dkim=pass header.d=example.org",
    b"mx.example.org; spf=fail smtp.mailfrom=" + CUSTOMER_EMAIL.encode(),
    b"; dkim=pass header.d=",
    b"mx.example.org; dkim=pass (\xff\xfe unclosed comment header.d=example.org",
    b"mx.example.org;\x00 dmarc=pass header.from=\x00example.org",
    b"=?utf-8?B?!!?=; dmarc=pass",
    b"mx.example.org; " + b"dkim=pass header.d=example.org; " * 2_000,
    b"mx.example.org; dmarc=pass (p=reject" + b"(" * 500,
    b"",
]


def auth_results(raw: bytes, draw: Draw) -> bytes:
    """Authentication-Results headers, well formed or not, on top."""
    values = draw(st.lists(st.sampled_from(AUTH_RESULTS), min_size=1, max_size=3))
    return b"".join(b"Authentication-Results: " + v + b"\r\n" for v in values) + raw


def from_customer(raw: bytes, draw: Draw) -> bytes:
    """Make it come from the known customer, so it is matched and filed with context."""
    return b"From: Ana <" + CUSTOMER_EMAIL.encode() + b">\r\n" + _drop(raw, b"From")


_ADDRESS = re.compile(rb"[A-Za-z0-9._%+=-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def about_our_receipt(raw: bytes, draw: Draw) -> bytes:
    """Make a bounce be about our receipt: its addresses and Message-IDs become ours."""
    head, sep, body = _split(raw)
    body = _ADDRESS.sub(CUSTOMER_EMAIL.encode(), body)
    body = re.sub(rb"(?im)^(message-id:[ \t]*)<[^>\r\n]*>", rb"\1" + RECEIPT_ID, body)
    if draw(st.booleans()):
        head = b"In-Reply-To: " + RECEIPT_ID + b"\r\n" + head
    return head + sep + body


def _drop(raw: bytes, name: bytes) -> bytes:
    head, sep, body = _split(raw)
    pattern = rb"^" + name + rb"[ \t]*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*\r?\n?"
    return re.sub(pattern, b"", head, flags=re.I | re.M) + sep + body


MUTATIONS: dict[str, Callable[[bytes, Draw], bytes]] = {
    "truncate": truncate,
    "drop_or_repeat_boundary": drop_or_repeat_boundary,
    "bad_charset": bad_charset,
    "eight_bit_header": eight_bit_header,
    "huge_header": huge_header,
    "deep_nesting": deep_nesting,
    "nul_bytes": nul_bytes,
    "line_endings": line_endings,
    "bad_encoded_word": bad_encoded_word,
    "cte_lie": cte_lie,
    "from_customer": from_customer,
    "about_our_receipt": about_our_receipt,
    "auth_results": auth_results,
}


@st.composite
def mutated_messages(draw: Draw) -> tuple[str, list[str], bytes]:
    """(corpus file, mutations applied, bytes) — 1 to 3 mutations of a corpus message."""
    path = draw(st.sampled_from(corpus_files()))
    names = draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3))
    raw = corpus_bytes(path)
    for name in names:
        raw = MUTATIONS[name](raw, draw)
    return str(path.relative_to(BOUNCES)), names, raw


# -- the properties ------------------------------------------------------------


@needs_corpus
@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=mutated_messages(), to_token=st.booleans())
def test_mutated_corpus_messages_end_stored_and_final(
    factory, handlers, token_address, example, to_token
):
    """No exception escapes the handler; every message ends in a final state."""
    name, mutations, raw = example
    note(f"{name} mutated by {mutations}, {len(raw)} bytes")
    envelope_to = [token_address] if to_token else [f"support@{DOMAIN}"]
    deliver_and_check(factory, handlers, raw, envelope_to)


@needs_corpus
@pytest.mark.slow
def test_every_corpus_message_ends_stored_and_final(factory, handlers, token_address):
    """All 247 corpus messages, unmutated, through the whole pipeline."""
    files = corpus_files()
    assert len(files) == 247
    states: dict[InboundState, int] = {}
    for path in files:
        row = deliver_and_check(factory, handlers, corpus_bytes(path), [token_address])
        states[row.state] = states.get(row.state, 0) + 1
    assert states.get(InboundState.IGNORED, 0) > 100  # mostly bounces and auto-replies
    assert states.get(InboundState.PROCESSED, 0) > 0


# -- regressions: each robustness bug the property found, by name ---------------


@pytest.mark.parametrize("charset", [b"idna", b'"\x00"'])
def test_a_charset_whose_codec_fails_even_with_replace_is_read_as_latin1(
    factory, handlers, token_address, charset
):
    """classify decoded text/plain with ``errors="replace"`` and caught only LookupError:
    the idna codec refuses that handler (UnicodeError) and a NUL in the name is a ValueError."""
    raw = (
        b"From: Ana <ana@example.org>\r\nSubject: refund\r\nMessage-ID: <c1@example.org>\r\n"
        b"Content-Type: text/plain; charset=" + charset + b"\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nPlease refund \xe9\xff\r\n"
    )
    row = deliver_and_check(factory, handlers, raw, [token_address])
    assert row.state == InboundState.PROCESSED


def test_nul_characters_are_dropped_from_headers_and_body(factory, handlers, token_address):
    """PostgreSQL text columns refuse NUL: Message-ID, subject, sender and body lose it."""
    raw = (
        b"From: Ana <ana@exam\x00ple.org>\r\nSubject: =?utf-8?Q?Hi=00?= there\x00\r\n"
        b"Message-ID: <n\x00ul@example.org>\r\nContent-Type: text/html\r\n\r\n"
        b"<p>Hello\x00 world</p>\r\n"
    )
    row = deliver_and_check(factory, handlers, raw, [token_address])
    assert row.state == InboundState.PROCESSED
    assert row.message_id == "<nul@example.org>"
    assert row.id is not None
    with factory() as session:
        filed = _ticket_message(session, row.id)
        assert filed is not None
        ticket = session.get(Ticket, filed.ticket_id)
        assert ticket is not None and ticket.subject == "Hi there"
        assert filed.author == CUSTOMER_EMAIL
        assert filed.body_text == "Hello world"
        assert filed.body_html is not None and "\x00" not in filed.body_html


def test_a_sender_address_longer_than_254_characters_is_quarantined(factory, handlers):
    """An over-long From address overflowed ticket.requester_email (varchar 254) on PostgreSQL."""
    raw = b"From: " + b"x" * 300 + b"@example.org\r\nSubject: hi\r\n\r\nHello\r\n"
    row = deliver_and_check(factory, handlers, raw, [f"support@{DOMAIN}"])
    assert row.state == InboundState.QUARANTINED
    assert row.quarantine_reason == "From address longer than 254 characters"


def test_a_huge_header_is_cut_before_the_quadratic_stdlib_parser_sees_it():
    """A 1 MB Subject took minutes in the stdlib header parser; References keep their end."""
    refs = b" ".join(b"<r%d@example.org>" % i for i in range(20_000))
    raw = (
        b"From: ana@example.org\r\nSubject: " + b"invoice " * 125_000 + b"\r\n"
        b"References: " + refs + b"\r\n\r\nHello\r\n"
    )
    started = time.perf_counter()
    parsed = parse_message(raw)
    assert isinstance(parsed, ParsedMessage)
    assert parsed.subject.startswith("invoice invoice")
    assert len(parsed.subject) <= MAX_HEADER_CHARS
    assert parsed.references[-1] == "<r19999@example.org>"
    assert all(re.fullmatch(r"<r\d+@example\.org>", r) for r in parsed.references)
    assert time.perf_counter() - started < 5


def test_a_bounce_whose_diagnostic_decodes_to_nul_still_marks_our_email(
    factory, handlers, token_address
):
    """Quoted-printable ``=00`` in a bounce put NUL into outbound_email.last_error."""
    raw = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"In-Reply-To: " + RECEIPT_ID + b"\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"This is the mail system at host mx.example.net.\r\n\r\n"
        b"<ana@example.org>: host mx said: 550 5.1.1 user unknown=00 (in reply to RCPT TO)\r\n"
    )
    row = deliver_and_check(factory, handlers, raw, [token_address])
    assert row.state == InboundState.IGNORED and row.classification == MessageClass.BOUNCE
    with factory() as session:
        email = session.exec(select(OutboundEmail)).one()
        assert email.state == OutboundState.BOUNCED
        assert email.last_error and "5.1.1 user unknown" in email.last_error
        assert "\x00" not in email.last_error
