"""Threading: which ticket an inbound message belongs to, and by which rule.

The rules, strongest first (the first one that finds a usable ticket wins):

1. ``reply_token`` — a valid :mod:`mailbridge.tokens` token in an envelope
   recipient or a To/Cc address (never in the body: a forwarded receipt
   quotes our Reply-To, and quoting it must not thread). The ticket is the
   newest usable one linked to an :class:`OutboundEmail` that carried the
   token's document (by ``document_id``; a token without a document is
   looked up by the email's ``reply_to`` address). With several tokens (a
   reply to two receipts at once) the first that finds a usable ticket wins.
2. ``in_reply_to`` — the In-Reply-To Message-ID is a :class:`TicketMessage`
   or an :class:`OutboundEmail` of a ticket. Outlook often drops References
   but keeps In-Reply-To; its Thread-Index header is not used.
3. ``references`` — the same lookup for each References id, newest first.
4. ``subject_tag`` — our tag ``[#123]`` anywhere in the decoded subject
   (other helpdesks' ``[Ticket #123]`` is not ours and is ignored). Anyone
   can type a tag, so it only threads when the sender is the ticket's
   requester or a known address of the ticket's customer (the customer's
   primary address or a ``CustomerIdentity`` with namespace ``email``), or
   when a valid token names the ticket's customer.
5. ``new_ticket`` — none of the above.

A ticket is *usable* unless it is ``closed``: a closed ticket is final, so a
late reply to it opens a new ticket (as Zendesk does with follow-ups),
while ``solved`` and ``pending`` tickets take the reply and the caller may
reopen them.

A valid token that finds no usable ticket does not end the search: a later
rule may still thread the message, but only into a ticket of the token's
customer. If none does, the decision is ``ticket_id=None`` with rule
``reply_token`` and the claims, and the caller opens a ticket for that
customer (then calls :func:`link_document_emails` so the next reply to the
same document joins it).

``candidates`` lists every (rule, ticket) pair any rule pointed at, usable
or not, in rule order — evidence for the operator, not a decision; only
``ticket_id`` is the decision. The sender's ``From`` can be forged: the
trust step, not this one, judges whether to believe it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header

import sqlalchemy as sa
from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from billbox.models import (
    Customer,
    CustomerIdentity,
    IdentityKind,
    OutboundEmail,
    ThreadRule,
    Ticket,
    TicketMessage,
    TicketStatus,
)
from mailbridge.parse import ParsedMessage
from mailbridge.tokens import TokenClaims, read_reply_token, reply_address, token_from_address

__all__ = [
    "ThreadDecision",
    "decide_thread",
    "link_document_emails",
    "normalise_subject",
    "subject_tag",
]

MAX_REFERENCES = 100
"""Only the newest References ids are looked up; long threads carry hundreds."""

_TAG = re.compile(r"\[#(\d{1,18})\]")
# Row ids are 32-bit INTEGER columns; PostgreSQL refuses to compare them with a
# larger bound parameter, so a bigger number cannot name a row and is not looked up.
_MAX_ROW_ID = 2**31 - 1

# Reply and forward prefixes, e.g. "Re:", "RE[2]:", "Re^3:", "AW:", "Fwd:",
# "SV:", "Antw:", "R:", "回复" with a full-width colon. One letter alone ("R") is Italian usage;
# it only matches when followed by a colon.
_PREFIX_WORDS = (
    "re|aw|sv|vs|antw|antwort|fw|fwd|wg|tr|trs|rif|enc|r|res|rv|odp|pd|ynt|ilt|fs|vl|"
    "ref|réf|doorst|vb|"
    "回复|回覆|答复|答覆|转发|轉寄|轉發|返信|転送|회신|전달"
)
_PREFIX = re.compile(
    rf"^\s*(?:{_PREFIX_WORDS})\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:\uff1a]\s*",
    re.IGNORECASE,
)
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ThreadDecision:
    """The outcome of :func:`decide_thread`.

    ``ticket_id`` is ``None`` when a new ticket must be opened; ``rule`` says
    why (``reply_token`` with ``claims`` means "open one for that customer").
    """

    ticket_id: int | None
    rule: ThreadRule
    candidates: tuple[tuple[ThreadRule, int], ...] = ()
    claims: TokenClaims | None = None


def subject_tag(ticket_id: int) -> str:
    """Our subject tag for a ticket, ``[#123]``; put it in every subject we send."""
    return f"[#{int(ticket_id)}]"


def _decode_rfc2047(subject: str) -> str:
    if "=?" not in subject:
        return subject
    try:
        return str(make_header(decode_header(subject)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return subject


def normalise_subject(subject: str) -> str:
    """``subject`` decoded (RFC 2047), blanks collapsed, reply/forward prefixes removed.

    Tags such as ``[#123]`` are kept. Prefixes in several languages are
    removed however deeply they are stacked: ``AW: RE[2]: Fwd: x`` is ``x``.
    """
    text = _SPACES.sub(" ", _decode_rfc2047(subject or "")).strip()
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            return text
        text = stripped


def _tags(subject: str) -> list[int]:
    seen: list[int] = []
    for match in _TAG.finditer(normalise_subject(subject)):
        number = int(match.group(1))
        if 0 < number <= _MAX_ROW_ID and number not in seen:
            seen.append(number)
    return seen


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


def _token_claims(
    addresses: Iterable[str], *, secret: str, reply_domain: str
) -> list[tuple[str, TokenClaims]]:
    """Every distinct valid (token, claims) among ``addresses``, in order."""
    found: list[tuple[str, TokenClaims]] = []
    for address in addresses:
        token = token_from_address(address, reply_domain)
        if token is None or any(token == seen for seen, _ in found):
            continue
        claims = read_reply_token(secret, token)
        if claims is not None:
            found.append((token, claims))
    return found


def _tickets_for_token(
    session: Session, token: str, claims: TokenClaims, reply_domain: str
) -> list[int]:
    """Tickets of the emails that carried this token's document, newest email first."""
    if max(claims.customer_id, claims.document_id or 0) > _MAX_ROW_ID:
        return []
    query = select(OutboundEmail.ticket_id).where(
        col(OutboundEmail.ticket_id).is_not(None),
        or_(
            col(OutboundEmail.customer_id) == claims.customer_id,
            col(OutboundEmail.customer_id).is_(None),
        ),
    )
    if claims.document_id is not None:
        query = query.where(col(OutboundEmail.document_id) == claims.document_id)
    else:
        address = reply_address(token, reply_domain)
        query = query.where(func.lower(col(OutboundEmail.reply_to)) == address)
    rows = session.exec(query.order_by(col(OutboundEmail.id).desc())).all()
    return _unique(row for row in rows if row is not None)


_TICKET_MESSAGES: sa.Table = TicketMessage.__table__  # type: ignore[attr-defined]
_EMAILS: sa.Table = OutboundEmail.__table__  # type: ignore[attr-defined]
_SPELLINGS: sa.BindParameter[str] = sa.bindparam("spellings", expanding=True)
# One statement for both tables (ticket messages first, each newest first), built
# once so its compiled form is reused: threading runs for every inbound message.
_BY_MESSAGE_ID = sa.union_all(
    sa.select(
        sa.literal(0).label("source"),
        _TICKET_MESSAGES.c.id,
        _TICKET_MESSAGES.c.message_id,
        _TICKET_MESSAGES.c.ticket_id,
    ).where(_TICKET_MESSAGES.c.message_id.in_(_SPELLINGS)),
    sa.select(
        sa.literal(1).label("source"), _EMAILS.c.id, _EMAILS.c.message_id, _EMAILS.c.ticket_id
    ).where(_EMAILS.c.message_id.in_(_SPELLINGS), _EMAILS.c.ticket_id.is_not(None)),
).order_by(sa.text("source"), sa.text("id DESC"))


def _tickets_by_message_id(session: Session, message_ids: Sequence[str]) -> dict[str, list[int]]:
    """Map each bare Message-ID to the tickets that know it (ticket messages, our emails)."""
    bare = [_bare(m) for m in message_ids if _bare(m)]
    if not bare:
        return {}
    spellings = sorted({s for b in bare for s in (b, f"<{b}>")})
    hits: dict[str, list[int]] = {}
    rows = session.connection().execute(_BY_MESSAGE_ID, {"spellings": spellings})
    for _source, _id, message_id, ticket_id in rows:
        if message_id is None or ticket_id is None:
            continue
        tickets = hits.setdefault(_bare(message_id), [])
        if ticket_id not in tickets:
            tickets.append(ticket_id)
    return hits


def _unique(values: Iterable[int]) -> list[int]:
    out: list[int] = []
    for value in values:
        if value not in out:
            out.append(value)
    return out


def _known_sender(session: Session, ticket: Ticket, sender: str | None) -> bool:
    """Whether ``sender`` is the ticket's requester or an address of its customer."""
    if not sender:
        return False
    sender = sender.strip().lower()
    if ticket.requester_email.strip().lower() == sender:
        return True
    if ticket.customer_id is None:
        return False
    customer = session.get(Customer, ticket.customer_id)
    if customer is not None and customer.email.strip().lower() == sender:
        return True
    values = session.exec(
        select(CustomerIdentity.value).where(
            col(CustomerIdentity.customer_id) == ticket.customer_id,
            col(CustomerIdentity.namespace) == IdentityKind.EMAIL.value,
        )
    ).all()
    return any(value.strip().lower() == sender for value in values)


def decide_thread(
    session: Session,
    parsed: ParsedMessage,
    envelope_to: Sequence[str],
    *,
    secret: str,
    reply_domain: str,
) -> ThreadDecision:
    """Apply the threading rules (module docstring) to ``parsed``; read-only.

    ``envelope_to`` are the SMTP RCPT TO addresses (or the IMAP mailbox's
    delivery addresses); ``secret`` is ``settings.secret`` and
    ``reply_domain`` is ``settings.reply_domain``.
    """
    tokens = _token_claims(
        [*envelope_to, *parsed.to_addresses], secret=secret, reply_domain=reply_domain
    )
    claims = tokens[0][1] if tokens else None

    # Every rule's hits, in rule order; a ticket id may appear under several rules.
    # With several tokens (a reply to two receipts) the first with a usable ticket
    # wins and its claims are reported; without one, the first token's claims.
    hits: list[tuple[ThreadRule, int]] = []
    claims_by_ticket: dict[int, TokenClaims] = {}
    for token, token_claims in tokens:
        for ticket_id in _tickets_for_token(session, token, token_claims, reply_domain):
            hits.append((ThreadRule.REPLY_TOKEN, ticket_id))
            claims_by_ticket.setdefault(ticket_id, token_claims)
    references = [r for r in reversed(parsed.references) if _bare(r)][:MAX_REFERENCES]
    lookups = [parsed.in_reply_to] if parsed.in_reply_to else []
    by_message_id = _tickets_by_message_id(session, [*lookups, *references])
    if parsed.in_reply_to:
        for ticket_id in by_message_id.get(_bare(parsed.in_reply_to), []):
            hits.append((ThreadRule.IN_REPLY_TO, ticket_id))
    for reference in references:
        for ticket_id in by_message_id.get(_bare(reference), []):
            hits.append((ThreadRule.REFERENCES, ticket_id))
    for ticket_id in _tags(parsed.subject):
        hits.append((ThreadRule.SUBJECT_TAG, ticket_id))

    ticket_ids = _unique(ticket_id for _rule, ticket_id in hits)
    tickets = (
        {
            t.id: t
            for t in session.exec(select(Ticket).where(col(Ticket.id).in_(ticket_ids))).all()
            if t.id is not None
        }
        if ticket_ids
        else {}
    )
    candidates = tuple(
        _unique_pairs((rule, ticket_id) for rule, ticket_id in hits if ticket_id in tickets)
    )

    for rule, ticket_id in candidates:
        ticket = tickets[ticket_id]
        if ticket.status == TicketStatus.CLOSED:
            continue
        if rule == ThreadRule.REPLY_TOKEN:
            return ThreadDecision(ticket_id, rule, candidates, claims_by_ticket[ticket_id])
        if claims is not None and ticket.customer_id != claims.customer_id:
            continue
        if (
            rule == ThreadRule.SUBJECT_TAG
            and claims is None
            and not _known_sender(session, ticket, parsed.from_address)
        ):
            continue
        return ThreadDecision(ticket_id, rule, candidates, claims)
    if claims is not None:
        return ThreadDecision(None, ThreadRule.REPLY_TOKEN, candidates, claims)
    return ThreadDecision(None, ThreadRule.NEW_TICKET, candidates, None)


def _unique_pairs(
    pairs: Iterable[tuple[ThreadRule, int]],
) -> list[tuple[ThreadRule, int]]:
    out: list[tuple[ThreadRule, int]] = []
    for pair in pairs:
        if pair not in out:
            out.append(pair)
    return out


def link_document_emails(session: Session, claims: TokenClaims, ticket_id: int) -> int:
    """Point the emails that carried ``claims``' document at ``ticket_id``; return how many.

    Call it after opening a ticket for a ``reply_token`` decision without a
    ticket, so the next reply to the same receipt joins that ticket instead
    of opening another. Emails already linked to a ticket are left alone. A
    token without a document has nothing to link.
    """
    if claims.document_id is None or max(claims.customer_id, claims.document_id) > _MAX_ROW_ID:
        return 0
    emails = session.exec(
        select(OutboundEmail).where(
            col(OutboundEmail.document_id) == claims.document_id,
            col(OutboundEmail.ticket_id).is_(None),
            or_(
                col(OutboundEmail.customer_id) == claims.customer_id,
                col(OutboundEmail.customer_id).is_(None),
            ),
        )
    ).all()
    for email in emails:
        email.ticket_id = ticket_id
        session.add(email)
    return len(emails)
