"""Classify a parsed message as human, auto-reply, bounce or loop, Mailman style.

Why rules and a chain: each rule below is one small, named, documented
check (Mailman's ``interfaces/rules.py``), and :data:`CHAIN` is the single
declarative table of (rule, resulting class), evaluated in order like
Mailman's ``chains/builtin.py``. Every rule runs and every hit is recorded,
so the row shows *why* a message was judged the way it was; the first hit
in table order decides the class. Order is the policy:

1. loop rules first: our own mail coming back must never be answered;
2. bounce rules before auto-reply rules, because MTAs (Exim, Postfix, Office
   365) put ``Auto-Submitted: auto-replied`` on their bounces;
3. auto-reply rules; no hit at all means human.

``X-Auto-Response-Suppress`` is deliberately *not* a rule: Outlook sets it on
ordinary mail written by people. Bulk mail (``Precedence: bulk``,
``List-Id``) is put with auto-replies because it must not open tickets or be
answered (RFC 3834 section 2); the shared corpus labels newsletters human,
and the accuracy bench shows that disagreement rather than hiding it.

Bounce details (recipient, status, original Message-ID) come from the RFC
3464 ``message/delivery-status`` part when there is one, else from the text
of the usual non-standard notices. :func:`apply_bounce` then marks our
:class:`~billbox.models.OutboundEmail`.

The module is past the 400-line aim because rules, bounce extraction and
``apply_bounce`` share the MIME helpers at the top; extraction is the part
to move into its own module when this grows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from weakref import WeakKeyDictionary

from sqlmodel import Session, col, select

from billbox.models import MessageClass, OutboundEmail, OutboundState, utcnow
from mailbridge.parse import ParsedMessage

_TEXT_LIMIT = 64 * 1024  # enough for any notice; hostile 3 MB bodies are cut
_MAX_PARTS = 200  # deeply nested multiparts (a DoS vector) stop here
_HEADER_ERRORS = (ValueError, IndexError, TypeError, AttributeError, LookupError)


@dataclass(frozen=True)
class ClassifyContext:
    """What the rules need to know about us: our Message-ID domain and X-Loop marker."""

    our_message_id_domain: str
    loop_marker: str


@dataclass(frozen=True)
class BounceInfo:
    """What a bounce says about one failed recipient; every field may be unknown.

    ``action`` is the DSN ``Action`` (failed, delayed, delivered, relayed,
    expanded) or ``complaint`` for an ARF feedback report, so that
    :func:`apply_bounce` does not mark a success or delay notice as bounced.
    """

    recipient: str | None
    status: str | None
    hard: bool | None
    diagnostic: str | None
    original_message_id: str | None
    action: str | None = None


@dataclass(frozen=True)
class Classification:
    kind: MessageClass
    hits: tuple[str, ...]
    bounce: BounceInfo | None


@dataclass(frozen=True)
class Rule:
    """A named check; ``description`` says what it means when it hits."""

    name: str
    description: str
    check: Callable[[ParsedMessage, ClassifyContext], bool]


# -- reading the message without ever raising ------------------------------


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except _HEADER_ERRORS:
        return ""
    return "" if value is None else str(value).strip()


def _header_all(message: Message, name: str) -> list[str]:
    try:
        return [str(v) for v in (message.get_all(name) or [])]
    except _HEADER_ERRORS:
        return []


def _ctype(message: Message) -> str:
    try:
        return message.get_content_type()
    except _HEADER_ERRORS:
        return "text/plain"


def _report_type(message: Message) -> str:
    try:
        return str(message.get_param("report-type", "") or "").lower()
    except _HEADER_ERRORS:
        return ""


_WALKS: WeakKeyDictionary[Message, tuple[tuple[Message, str], ...]] = WeakKeyDictionary()


def _parts(message: Message) -> tuple[tuple[Message, str], ...]:
    """(part, content type) breadth-first, never into attached messages, at most _MAX_PARTS.

    Parsing Content-Type is most of a rule's cost, and every rule walks the
    parts, so the walk is kept for as long as the message lives.
    """
    cached = _WALKS.get(message)
    if cached is not None:
        return cached
    walked: list[tuple[Message, str]] = []
    queue = [message]
    while queue and len(walked) < _MAX_PARTS:
        part = queue.pop(0)
        ctype = _ctype(part)
        walked.append((part, ctype))
        if part.is_multipart() and not ctype.startswith("message/"):
            payload = part.get_payload()
            if isinstance(payload, list):
                queue.extend(p for p in payload if isinstance(p, Message))
    _WALKS[message] = result = tuple(walked)
    return result


def _decoded(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except _HEADER_ERRORS:
        return ""
    if not isinstance(payload, bytes):
        return ""
    try:
        charset = part.get_content_charset() or "utf-8"
        return payload[:_TEXT_LIMIT].decode(charset, errors="replace")
    except (LookupError, ValueError):  # unknown; refusing "replace" (idna); NUL in the name
        return payload[:_TEXT_LIMIT].decode("latin-1")


def _body_text(message: Message, *, drop_quoted: bool = True) -> str:
    """The message's own text/plain parts (not attached messages).

    Rules drop ``>`` quoted lines so that a person quoting a bounce is not a
    bounce; extraction keeps them (Sendmail-style notices write ``>>> addr``).
    """
    texts = [_decoded(p) for p, ctype in _parts(message) if ctype == "text/plain"]
    text = "\n".join(texts)[:_TEXT_LIMIT]
    if not drop_quoted:
        return text
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


def _leaf_text(message: Message) -> str:
    """Every leaf part's text, including multiparts whose boundaries did not parse."""
    texts = [
        _decoded(p) for p, ctype in _parts(message)
        if not p.is_multipart() and ctype.split("/")[0] in ("text", "multipart", "message")
        and ctype not in ("message/rfc822", "message/global")
    ]  # fmt: skip
    return "\n".join(texts)[:_TEXT_LIMIT]


def _has_report(message: Message, report_type: str, part_type: str) -> bool:
    return any(
        (ctype == "multipart/report" and _report_type(p) == report_type) or ctype == part_type
        for p, ctype in _parts(message)
    )


# -- the rules -------------------------------------------------------------

_DAEMON_LOCALPARTS = frozenset({"mailerdaemon", "maildaemon", "postmaster", "mdaemon"})
_DAEMON_NAME = re.compile(r"mail delivery (?:system|subsystem|service)|post office", re.I)
# Subjects and sentences that only mail software writes; a person's "Delivery
# failure of my order" must stay human, so generic words are not enough alone.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undelivered mail returned to sender|delivery status notification \((?:failure|delay)\)"
    r"|failure notice|undeliverable\s*:|mail delivery failed|returned mail\s*:"
    r"|delivery notification: delivery has failed|mail system error - returned mail"
    r"|unzustellbar\s*:|non remis\s*:|no se puede entregar\s*:|onbestelbaar\s*:)",
    re.I,
)
_MAIL_SUBJECT_WORDS = re.compile(
    r"undeliver|returned mail|non-?delivery|delivery status|mail delivery|delivery notification"
    r"|unzustellbar|nicht zugestellt|non remis|onbestelbaar",
    re.I,
)
_BOUNCE_WORDS = re.compile(
    r"undeliver|delivery|returned mail|failure|failed|bounce|not delivered"
    r"|unzustellbar|non remis|no entregado|rejected",
    re.I,
)
_BOUNCE_BODY = re.compile(
    r"i'm afraid i wasn't able to deliver|i'm sorry to have to inform you that your message"
    r"|this message was created automatically by mail delivery software"
    r"|this is the mail system at host|the original message was received at"
    r"|could not be delivered to one or more (?:of its )?recipients"
    r"|delivery to the following recipients? failed|delivery has failed to these recipients"
    r"|your message did not reach some or all of the intended recipients"
    r"|the following addresses? had permanent (?:fatal|delivery) errors"
    r"|this is an automatically generated delivery status notification",
    re.I,
)
_FAILURE_WORDS = re.compile(
    r"could not be delivered|couldn't be delivered|undeliverable|delivery (?:has )?failed"
    r"|user unknown|unknown user|no such user|mailbox (?:is )?(?:full|unavailable)"
    r"|invalid (?:user|recipient|address)|recipient (?:address )?rejected|address rejected"
    r"|permanent (?:fatal |delivery )?errors?|not a member|quota exceeded",
    re.I,
)
_OOO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic|matische)?[ -]?(?:reply|response|antwort)\b|autoreply|auto:"
    r"|out of (?:the )?office|away from (?:the |my )?office|on vacation|vacation reply"
    r"|abwesenheit|automatische antwort|nicht im b(?:ü|ue)ro|au(?:ß|ss)er haus"
    r"|r(?:é|e)ponse automatique|absence du bureau|absente? du bureau|message d'absence"
    r"|respuesta autom(?:á|a)tica|fuera de la oficina|ausente de la oficina"
    r"|automatisch antwoord|afwezig|buiten kantoor|niet aanwezig"
    r"|risposta automatica|fuori (?:sede|ufficio)|assente dall'ufficio)",
    re.I,
)


def _localpart_and_name(parsed: ParsedMessage) -> tuple[str, str]:
    sender = parsed.from_address or ""
    name = next((n for n, _a in getaddresses([_header(parsed.message, "From")])), "")
    return sender.split("@", 1)[0], name


def _from_daemon(parsed: ParsedMessage) -> bool:
    local, name = _localpart_and_name(parsed)
    return _is_daemon(local) or bool(_DAEMON_NAME.search(name))


def _is_daemon(localpart: str) -> bool:
    """mailer-daemon, MAILER_DAEMON, post_master, postmaster… all spell the same thing."""
    return re.sub(r"[-_.]", "", localpart.lower()) in _DAEMON_LOCALPARTS


def _failure_text_with_address(message: Message) -> bool:
    body = _body_text(message)
    return bool(_FAILURE_WORDS.search(body)) and bool(_ADDRESS.search(body))


def _not_reply(parsed: ParsedMessage) -> bool:
    """A person replying to or forwarding a bounce writes Re:/Fwd: (or AW:, WG:, TR:…)."""
    return not re.match(r"^\s*(?:re|fwd?|aw|wg|tr|rv|sv)\s*:", parsed.subject, re.I)


def _has_returned_message(message: Message) -> bool:
    kinds = ("message/rfc822", "text/rfc822-headers", "message/global")
    return any(ctype in kinds for _p, ctype in _parts(message))


def _msgid_domain(value: str) -> str:
    match = re.search(r"@([^>\s]+)>?\s*$", value)
    return match.group(1).lower() if match else ""


def _loop_message_id(parsed: ParsedMessage, ctx: ClassifyContext) -> bool:
    return _msgid_domain(parsed.message_id or "") == ctx.our_message_id_domain.lower()


def _loop_x_loop(parsed: ParsedMessage, ctx: ClassifyContext) -> bool:
    marker = ctx.loop_marker.lower()
    return any(marker in v.lower() for v in _header_all(parsed.message, "X-Loop"))


def _auto_submitted(parsed: ParsedMessage, _ctx: ClassifyContext) -> bool:
    value = _header(parsed.message, "Auto-Submitted").lower()
    return bool(value) and value.split(";")[0].strip() != "no"


def _x_autoreply(parsed: ParsedMessage, _ctx: ClassifyContext) -> bool:
    names = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply")
    return any(_header(parsed.message, n).lower() not in ("", "no") for n in names)


def _precedence(parsed: ParsedMessage, _ctx: ClassifyContext) -> bool:
    value = _header(parsed.message, "Precedence").lower()
    return value in ("auto_reply", "bulk", "junk", "list")


CHAIN: tuple[tuple[Rule, MessageClass], ...] = (
    (Rule("loop_message_id", "Message-ID is in our own domain: our mail came back",
          _loop_message_id), MessageClass.LOOP),
    (Rule("loop_x_loop", "X-Loop carries our marker: we already handled this message",
          _loop_x_loop), MessageClass.LOOP),
    (Rule("dsn_report", "RFC 3464 delivery status notification (multipart/report)",
          lambda p, _c: _has_report(p.message, "delivery-status", "message/delivery-status")),
     MessageClass.BOUNCE),
    (Rule("arf_feedback_report", "RFC 5965 complaint (feedback-report): stop mailing it",
          lambda p, _c: _has_report(p.message, "feedback-report", "message/feedback-report")),
     MessageClass.BOUNCE),
    (Rule("bounce_daemon_sender", "MAILER-DAEMON/postmaster sender, failure subject or text",
          lambda p, _c: _from_daemon(p) and bool(_BOUNCE_WORDS.search(p.subject)
                                                 or _FAILURE_WORDS.search(_leaf_text(p.message)))),
     MessageClass.BOUNCE),
    (Rule("bounce_subject", "a subject only mail software writes, e.g. 'failure notice'",
          lambda p, _c: _not_reply(p) and bool(_BOUNCE_SUBJECT.match(p.subject))),
     MessageClass.BOUNCE),
    (Rule("bounce_body", "MTA non-delivery boilerplate (qmail, Exim, Postfix, Exchange…)",
          lambda p, _c: _not_reply(p) and bool(_BOUNCE_BODY.search(_body_text(p.message)))),
     MessageClass.BOUNCE),
    (Rule("bounce_subject_and_text", "mail-delivery subject, failure text and an address",
          lambda p, _c: _not_reply(p) and bool(_MAIL_SUBJECT_WORDS.search(p.subject))
          and _failure_text_with_address(p.message)), MessageClass.BOUNCE),
    (Rule("bounce_returned_message", "failure text plus the returned message attached",
          lambda p, _c: _not_reply(p) and _has_returned_message(p.message)
          and bool(_FAILURE_WORDS.search(_body_text(p.message)))), MessageClass.BOUNCE),
    (Rule("mdn_read_receipt", "RFC 8098 read receipt (disposition-notification)",
          lambda p, _c: _has_report(p.message, "disposition-notification",
                                    "message/disposition-notification")),
     MessageClass.AUTO_REPLY),
    (Rule("auto_submitted", "RFC 3834 Auto-Submitted other than 'no'", _auto_submitted),
     MessageClass.AUTO_REPLY),
    (Rule("x_autoreply", "X-Autoreply / X-Autorespond set by vacation responders",
          _x_autoreply), MessageClass.AUTO_REPLY),
    (Rule("precedence_bulk", "Precedence auto_reply, bulk, junk or list", _precedence),
     MessageClass.AUTO_REPLY),
    (Rule("list_headers", "List-Id or List-Unsubscribe: mailing list or newsletter",
          lambda p, _c: bool(_header(p.message, "List-Id") or
                             _header(p.message, "List-Unsubscribe"))),
     MessageClass.AUTO_REPLY),
    (Rule("ooo_subject", "out-of-office subject (en, de, fr, es, nl, it)",
          lambda p, _c: bool(_OOO_SUBJECT.match(p.subject))), MessageClass.AUTO_REPLY),
)  # fmt: skip


def classify(parsed: ParsedMessage, ctx: ClassifyContext) -> Classification:
    """Run every rule of :data:`CHAIN`, record all hits; the first hit decides the class."""
    hits: list[str] = []
    kind: MessageClass | None = None
    for rule, target in CHAIN:
        if rule.check(parsed, ctx):
            hits.append(rule.name)
            kind = kind or target
    kind = kind or MessageClass.HUMAN
    bounce = extract_bounce(parsed) if kind == MessageClass.BOUNCE else None
    return Classification(kind=kind, hits=tuple(hits), bounce=bounce)


# -- bounce details --------------------------------------------------------

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY_CODE = re.compile(r"(?<![\d.#])([45])[0-5]\d(?:[ -]|$)", re.M)
_ADDRESS = re.compile(r"([A-Za-z0-9._%+'=/-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})")
_RCPT_TO = re.compile(r"rcpt to:\s*<?" + _ADDRESS.pattern, re.I)
_SENDER_LINE = re.compile(r"^\s*(?:from|mail from|return-path|sender|reply-to)\s*:", re.I)
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")
_MESSAGE_ID_LINE = re.compile(r"^message-id:\s*(<[^>\s]+>)", re.I | re.M)
_DELAY = re.compile(
    r"\bdelay(?:ed)?\b|still being retried|will (?:continue to )?(?:re)?try\b"
    r"|has not yet been delivered",
    re.I,
)


def _status_in(text: str, *, last: bool = False) -> str | None:
    found = [".".join(m.groups()) for m in _STATUS.finditer(text)]
    return (found[-1] if last else found[0]) if found else None


def _best_status(status_field: str, diagnostic: str) -> str | None:
    """The DSN Status, unless it is unspecific (D.0.0) and the remote said more.

    The remote server's own words come last in a Diagnostic-Code (Amazon SES
    and Courier prefix their own generic code), so the last code there wins.
    Without any enhanced code, an SMTP reply code gives its class (550 → 5.0.0).
    """
    status = _status_in(status_field)
    detail = _status_in(diagnostic, last=True)
    if status is None or (status.endswith(".0.0") and detail and detail[0] == status[0]):
        status = detail or status
    if status is None:
        reply = _REPLY_CODE.search(diagnostic)
        status = f"{reply.group(1)}.0.0" if reply else None
    return status


def _hard(status: str | None) -> bool | None:
    return None if status is None else status.startswith("5")


def _address(value: str) -> str | None:
    match = _ADDRESS.search(value.split(";", 1)[-1])
    return match.group(1).lower() if match else None


def _dsn_records(text: str) -> list[dict[str, str]]:
    """Per-recipient field groups of a delivery-status body.

    A new record starts when a field repeats, not at blank lines, so DSNs
    written without blank lines between groups (or with several) still
    parse; per-message fields land in the first record, where they are
    harmless.
    """
    records: list[dict[str, str]] = [{}]
    key = ""
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            records[-1][key] += " " + line.strip()
            continue
        match = _FIELD.match(line)
        if not match:
            continue
        key = match.group(1).lower()
        if key in records[-1]:
            records.append({})
        records[-1][key] = match.group(2).strip()
    return records


def _recipient_records(text: str) -> list[dict[str, str]]:
    return [r for r in _dsn_records(text) if "final-recipient" in r or "original-recipient" in r]


def _report_text(message: Message, part_types: tuple[str, ...]) -> str | None:
    """The fields of a message/delivery-status (or feedback-report) part, as text."""
    for part, ctype in _parts(message):
        if ctype in part_types:
            payload = part.get_payload()
            if isinstance(payload, list):
                groups = [p for p in payload if isinstance(p, Message)]
                return "\n".join(f"{k}: {v}" for g in groups for k, v in g.raw_items())
            return _decoded(part) or str(payload)
    return None


def _original_headers(message: Message) -> Message | None:
    """The headers of the returned message: message/rfc822 or text/rfc822-headers."""
    for part, ctype in _parts(message):
        if ctype in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif ctype in ("text/rfc822-headers", "text/rfc822-header"):
            return HeaderParser().parsestr(_decoded(part))
    return None


def _original_message_id(parsed: ParsedMessage, original: Message | None) -> str | None:
    """The Message-ID of the mail that bounced: attached headers, quoted text, threading."""
    found = _header(original, "Message-ID") if original is not None else ""
    if found:
        return found
    match = _MESSAGE_ID_LINE.search(_body_text(parsed.message, drop_quoted=False))
    if match:
        return match.group(1)
    return parsed.in_reply_to or next(iter(parsed.references[-1:]), None)


def extract_bounce(parsed: ParsedMessage) -> BounceInfo:
    """Recipient, status and diagnostic from a DSN, an ARF report or a plain notice.

    When the report names no recipient, the To of the returned message does:
    that is the address our mail went to.
    """
    message = parsed.message
    original = _original_headers(message)
    original_id = _original_message_id(parsed, original)
    original_to = _address(_header(original, "To")) if original is not None else None
    arf = _report_text(message, ("message/feedback-report",))
    if arf is not None or _has_report(message, "feedback-report", "message/feedback-report"):
        fields = _dsn_records(arf or "")[0]
        recipient = _address(fields.get("original-rcpt-to", "")) or original_to
        feedback = f"complaint: {fields.get('feedback-type', 'abuse')}"
        return BounceInfo(recipient, None, None, feedback, original_id, "complaint")
    text = _report_text(message, ("message/delivery-status", "message/global-delivery-status"))
    records = _recipient_records(text or "") or _recipient_records(_leaf_text(message))
    if not records:
        return _plain_bounce(parsed, original_id, original_to)
    failed = [r for r in records if r.get("action", "").lower().startswith("failed")]
    record = (failed or records)[0]
    recipient = _address(record.get("final-recipient", "")) or _address(
        record.get("original-recipient", "")
    )
    diagnostic = record.get("diagnostic-code") or None
    status = _best_status(record.get("status", ""), diagnostic or "")
    action = record.get("action", "").split()[:1]
    return BounceInfo(
        recipient or original_to, status, _hard(status), diagnostic, original_id,
        action[0].lower() if action else None,
    )  # fmt: skip


def _plain_bounce(parsed: ParsedMessage, original_id: str | None, to: str | None) -> BounceInfo:
    """A non-standard notice: RCPT TO, else the first address that is not a sender's."""
    body = _leaf_text(parsed.message)
    ours = {parsed.from_address or "", *parsed.to_addresses}  # the notice's sender and us
    rcpt = _RCPT_TO.search(body)
    candidates = (
        addr
        for line in body.splitlines()
        if not _SENDER_LINE.match(line)
        for addr in (m.group(1).lower() for m in _ADDRESS.finditer(line))
        if addr not in ours and not _is_daemon(addr.split("@")[0])
    )
    recipient = rcpt.group(1).lower() if rcpt else next(candidates, None) or to
    status = _best_status(body, "") or _best_status("", body)
    lines = [line.strip() for line in body.splitlines() if _STATUS.search(line)]
    delayed = _DELAY.search(parsed.subject) or _DELAY.search(body[:2000])
    return BounceInfo(
        recipient, status, _hard(status), lines[0][:500] if lines else None, original_id,
        "delayed" if delayed and not (status or "").startswith("5") else "failed",
    )  # fmt: skip


# -- acting on a bounce ----------------------------------------------------

_NOT_A_FAILURE = frozenset({"delivered", "relayed", "expanded", "delayed"})


def _find_outbound(session: Session, info: BounceInfo) -> OutboundEmail | None:
    if info.original_message_id:
        bare = info.original_message_id.replace("\x00", "").strip().strip("<>")
        row = session.exec(
            select(OutboundEmail).where(col(OutboundEmail.message_id).in_([f"<{bare}>", bare]))
        ).first()
        if row is not None:
            return row
    if info.recipient:
        return session.exec(
            select(OutboundEmail)
            .where(col(OutboundEmail.to_address) == info.recipient.lower())
            .where(
                col(OutboundEmail.state).in_(
                    [OutboundState.SENT, OutboundState.SENDING, OutboundState.BOUNCED]
                )
            )
            .order_by(col(OutboundEmail.id).desc())
        ).first()
    return None


def apply_bounce(
    session: Session, info: BounceInfo, *, outbound: OutboundEmail | None = None
) -> OutboundEmail | None:
    """Mark the outbound email this bounce is about as BOUNCED; return it, or None.

    The row is found by the original Message-ID (attached message or headers,
    else the bounce's In-Reply-To/References), failing that as the most
    recent sent mail to the failed recipient. Success and delay notices
    (``Action: delivered/relayed/expanded/delayed``, status 2.x.x) change
    nothing. A complaint marks the row too: like a hard bounce, it means
    "do not mail this address again".

    There is no address table yet, so flagging the address for future sends
    lives on this row only: its BOUNCED state, ``bounced_at`` and the
    diagnostic (with status and hard/soft) in ``last_error``. The send step
    can look for a BOUNCED row to the same address until that table exists.

    ``outbound`` is the row when the caller already knows it from a signed
    VERP envelope address (:func:`mailbridge.verp.outbound_for_bounce`);
    then the content of the bounce is not needed to find it.
    """
    if (info.action or "").lower() in _NOT_A_FAILURE or (info.status or "").startswith("2."):
        return None
    row = outbound if outbound is not None else _find_outbound(session, info)
    if row is None:
        return None
    kind = "complaint" if info.action == "complaint" else ("hard" if info.hard else "soft")
    detail = " ".join(x for x in (info.status, info.diagnostic) if x)
    row.state = OutboundState.BOUNCED
    row.bounced_at = utcnow()
    error = f"bounce ({kind}) for {info.recipient or 'unknown recipient'}: {detail}"
    row.last_error = error.replace("\x00", "")[:4000]  # NUL: quoted-printable =00, say
    row.updated_at = utcnow()
    session.add(row)
    return row
