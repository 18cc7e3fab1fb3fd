"""Explain what the pipeline would do with one message, without storing anything.

``billbox mail inspect FILE.eml`` answers an operator's "why did this mail
open a new ticket?" (or was ignored, or quarantined): it runs the read-only
steps of :mod:`mailbridge.pipeline` — parse, classify, thread, match, trust,
reply text — on the bytes of a file and reports every rule that hit.

Nothing is written. The steps run in a session that is always rolled back
and never committed; a ``before_flush`` guard makes any attempt to add,
change or delete a row an error, and on PostgreSQL the transaction is also
``READ ONLY``, so the database itself refuses a write. For the same reason
a bounce is reported but :func:`~mailbridge.classify.apply_bounce` (which
marks our outbound email) is not called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.models import Customer, InboundState, MessageClass
from mailbridge.classify import CHAIN as CLASSIFY_CHAIN
from mailbridge.classify import classify
from mailbridge.parse import ParsedMessage, ParseFailure, parse_message
from mailbridge.pipeline import PipelineConfig
from mailbridge.reply import extract_reply
from mailbridge.thread import decide_thread
from mailbridge.ticketing import body_text, match_customer
from mailbridge.trust import CHAIN as TRUST_CHAIN
from mailbridge.trust import TrustContext, judge_trust

__all__ = ["MALFORMED", "InspectWriteError", "inspect_message", "render_text"]

MALFORMED = "malformed"
"""The ``class`` of a message that could not be parsed (not a :class:`MessageClass`)."""


class InspectWriteError(RuntimeError):
    """A step tried to write while inspecting: a bug in that step, never the operator's."""


def _refuse_writes(session: OrmSession, _context: object, _instances: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise InspectWriteError("inspect_message must not write; a pipeline step tried to")


def _empty_report(raw: bytes) -> dict[str, Any]:
    return {
        "class": MALFORMED,
        "state": str(InboundState.QUARANTINED),
        "outcome": "quarantined",
        "reason": None,
        "rules": [],
        "bounce": None,
        "thread": None,
        "customer": None,
        "trust": None,
        "reply_text": None,
        "subject": None,
        "from": None,
        "to": [],
        "message_id": None,
        "defects": [],
        "size": len(raw),
    }


def _reply_text(parsed: ParsedMessage) -> str:
    full_text, raw_html = body_text(parsed.message)
    return extract_reply(full_text, raw_html).text or full_text


def inspect_message(
    factory: sessionmaker[Session],
    raw: bytes,
    config: PipelineConfig,
    *,
    envelope_to: Sequence[str] = (),
    trust: TrustContext | None = None,
) -> dict[str, Any]:
    """Run the pipeline's read-only steps on ``raw``; return a JSON-ready report.

    ``envelope_to`` stands for the SMTP RCPT TO addresses (a saved ``.eml``
    has none; the To/Cc addresses are used for tokens either way).
    ``trust`` defaults to believing the topmost Authentication-Results only.
    Keys: ``class``, ``state`` and ``outcome`` (what the pipeline would
    do), ``reason`` (why quarantined), ``rules`` (classify hits),
    ``bounce``, ``thread``, ``customer``, ``trust``, ``reply_text``,
    ``subject``, ``from``, ``to``, ``message_id``, ``defects``, ``size``.
    """
    report = _empty_report(raw)
    parsed = parse_message(raw)
    if isinstance(parsed, ParseFailure):
        report["reason"] = parsed.reason
        return report
    result = classify(parsed, config.classify)
    trust_result = judge_trust(parsed, trust or config.trust)
    report.update(
        {
            "class": str(result.kind),
            "rules": list(result.hits),
            "bounce": asdict(result.bounce) if result.bounce is not None else None,
            "trust": {**trust_result.as_dict(), "sender_verified": False},
            "reply_text": _reply_text(parsed),
            "subject": parsed.subject,
            "from": parsed.from_address,
            "to": list(parsed.to_addresses),
            "message_id": parsed.message_id,
            "defects": [*parsed.defects, *parsed.problems],
        }
    )
    if result.kind != MessageClass.HUMAN:
        report["state"] = str(InboundState.IGNORED)
        report["outcome"] = f"ignored: {result.kind} (nothing automatic opens a ticket)"
        return report
    if parsed.from_address is None:
        report["reason"] = "; ".join(parsed.problems) or "no sender address"
        report["outcome"] = "quarantined: a human message without a sender address"
        return report
    report["state"] = str(InboundState.PROCESSED)
    _thread_and_match(factory, parsed, config, envelope_to, report)
    return report


def _thread_and_match(
    factory: sessionmaker[Session],
    parsed: ParsedMessage,
    config: PipelineConfig,
    envelope_to: Sequence[str],
    report: dict[str, Any],
) -> None:
    with factory() as session:
        event.listen(session, "before_flush", _refuse_writes)
        try:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SET TRANSACTION READ ONLY"))
            decision = decide_thread(
                session,
                parsed,
                envelope_to,
                secret=config.secret,
                reply_domain=config.reply_domain,
            )
            match = match_customer(session, parsed, decision)
            customer = session.get(Customer, match.customer_id) if match.customer_id else None
            email = customer.email if customer is not None else None  # read before rollback
        finally:
            session.rollback()
    claims = decision.claims
    report["thread"] = {
        "rule": str(decision.rule),
        "ticket_id": decision.ticket_id,
        "candidates": [[str(rule), ticket_id] for rule, ticket_id in decision.candidates],
        "token": asdict(claims) if claims is not None else None,
    }
    report["customer"] = (
        {"id": match.customer_id, "email": email, "matched_by": match.how}
        if match.customer_id is not None
        else None
    )
    # As the pipeline does: a From that authentication says is forged is not the customer.
    report["trust"]["sender_verified"] = (
        match.sender_verified and report["trust"].get("verdict") != "fail"
    )
    if decision.ticket_id is not None:
        report["outcome"] = f"append to ticket #{decision.ticket_id} (rule {decision.rule})"
    elif claims is not None:
        report["outcome"] = (
            f"open a new ticket for customer #{claims.customer_id}: the reply token is valid "
            "but no ticket linked to its document is usable (none yet, or closed)"
        )
    else:
        report["outcome"] = "open a new ticket: " + _why_new(report["thread"]["candidates"])


def _why_new(candidates: list[list[Any]]) -> str:
    if not candidates:
        return "no rule found a ticket (reply token, In-Reply-To, References, [#n] subject tag)"
    pointed = ", ".join(f"#{ticket} by {rule}" for rule, ticket in candidates)
    return f"{pointed} not usable (closed, another customer's, or an unknown sender's tag)"


# -- the terminal view ---------------------------------------------------------

_BODY_LINES = 40
_CLASSIFY_RULES = {rule.name: rule.description for rule, _target in CLASSIFY_CHAIN}
_TRUST_RULES = {rule.name: rule.description for rule, _target in TRUST_CHAIN}


def _line(label: str, value: object) -> str:
    return f"{label + ':' if label else '':<12} {value}"


def _rules(names: Sequence[str], descriptions: dict[str, str]) -> list[str]:
    return [f"  - {name}: {descriptions.get(name, '')}".rstrip(": ") for name in names]


def render_text(report: dict[str, Any]) -> str:
    """A readable multi-line summary of an :func:`inspect_message` report."""
    lines = [
        _line("Message-ID", report.get("message_id") or "-"),
        _line("From", report.get("from") or "-"),
        _line("Subject", report.get("subject") or "-"),
        _line("Class", report.get("class")),
    ]
    lines += _rules(report.get("rules") or [], _CLASSIFY_RULES)
    lines.append(_line("Outcome", report.get("outcome")))
    if report.get("reason"):
        lines.append(_line("Reason", report["reason"]))
    bounce = report.get("bounce")
    if bounce:
        lines.append(
            _line("Bounce", f"{bounce.get('recipient') or '?'} status {bounce.get('status') or '?'}"
                  f" ({bounce.get('action') or 'failed'})")
        )  # fmt: skip
        if bounce.get("diagnostic"):
            lines.append(_line("", bounce["diagnostic"]))
    thread = report.get("thread")
    if thread:
        target = f"ticket #{thread['ticket_id']}" if thread["ticket_id"] else "new ticket"
        lines.append(_line("Thread", f"{thread['rule']} -> {target}"))
        for rule, ticket in thread.get("candidates") or []:
            lines.append(f"  - candidate #{ticket} by {rule}")
        if thread.get("token"):
            token = thread["token"]
            lines.append(
                f"  - reply token: customer #{token['customer_id']}, "
                f"document #{token.get('document_id')}, brand #{token.get('brand_id')}"
            )
    customer = report.get("customer")
    if customer:
        lines.append(
            _line("Customer", f"#{customer['id']} {customer.get('email') or ''} "
                  f"(matched by {customer['matched_by']})")
        )  # fmt: skip
    elif thread:
        lines.append(_line("Customer", "none matched"))
    trust = report.get("trust")
    if trust:
        results = " ".join(f"{m}={trust.get(m) or '-'}" for m in ("dmarc", "dkim", "spf"))
        aligned = f", aligned {trust['aligned_domain']}" if trust.get("aligned_domain") else ""
        lines.append(_line("Trust", f"{trust['verdict']} ({results}{aligned})"))
        lines += _rules(trust.get("hits") or [], _TRUST_RULES)
        if customer:
            verified = "verified" if trust.get("sender_verified") else "NOT verified"
            lines.append(f"  - sender {verified} as the customer's address")
    if report.get("defects"):
        lines.append(_line("Defects", ", ".join(report["defects"])))
    if report.get("reply_text") is not None:
        lines.append("Reply text:")
        body = (report["reply_text"] or "(empty)").splitlines()
        lines += [f"  | {line}" for line in body[:_BODY_LINES]]
        if len(body) > _BODY_LINES:
            lines.append(f"  | … {len(body) - _BODY_LINES} more lines")
    return "\n".join(lines)
