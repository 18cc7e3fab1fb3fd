"""The inbound pipeline: a list of small steps applied to one stored message.

1. *parse* — quarantine what cannot be parsed, keep the raw bytes;
2. *classify* — human, auto-reply, bounce, loop; rule hits stored on the
   row; bounces update the outbound email they are about; nothing
   automatic is ever answered or turned into a ticket (state IGNORED);
3. *thread* — reply token, In-Reply-To, References, ``[#n]`` tag, or new;
4. *match* the customer (token, then sender) and judge the sender: a
   valid token from another address, or a From that Authentication-Results
   says is forged, marks the ticket "unverified sender";
5. *file* through the helpdesk connector (``mailbridge/helpdesks/``; the
   built-in inbox by default) with a billing-context snapshot.

A human message without a sender address is quarantined: nobody could
answer it.

The handler first reads the row's state and raw bytes (on SQLite outside
any transaction, see :func:`_read_stored`). Then, with no transaction
open, the steps that need no database run: parse, classify, judge trust,
take the reply text and sanitise its HTML. Only then does one transaction
lock the row, check it is still ``received`` and do the rest (threading,
customer, billing snapshot, filing), which ``run_job`` commits together
with the job's ``done``, so a retried job never files twice. On SQLite
every transaction holds the single write lock, so the CPU-only steps no
longer keep the SMTP server's writer (or other workers) waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from sqlalchemy.orm import defer
from sqlmodel import Session

from billbox.errors import PermanentError
from billbox.jobs import Handler, JobContext
from billbox.logs import get_logger
from billbox.models import InboundMessage, InboundState, MessageClass, utcnow
from mailbridge.classify import Classification, ClassifyContext, apply_bounce, classify
from mailbridge.helpdesks import Filing, HelpdeskConnector
from mailbridge.helpdesks.inbox import InboxConnector
from mailbridge.parse import ParsedMessage, ParseFailure, parse_message
from mailbridge.thread import decide_thread
from mailbridge.ticketing import filed_body, match_customer
from mailbridge.trust import TrustContext, TrustResult, Verdict, judge_trust
from mailbridge.verp import outbound_for_bounce

INBOUND_JOB = "inbound.process"

log = get_logger("mailbridge.pipeline")


@dataclass(frozen=True)
class PipelineConfig:
    """What the steps need from outside; typed and passed in, never read from globals.

    The defaults suit tests; ``workers.registry.pipeline_config`` builds the
    real one from settings. The outbound composer must mint Message-IDs in
    ``classify.our_message_id_domain`` (the reply domain) and put
    ``X-Loop: <loop_marker>`` on what it sends, so replies to ourselves are
    recognised as loops.
    """

    classify: ClassifyContext = field(
        default_factory=lambda: ClassifyContext(
            our_message_id_domain="billbox.invalid", loop_marker="billbox"
        )
    )
    # BILLBOX_SECRET_KEY and BILLBOX_REPLY_DOMAIN, for reply tokens; with no
    # secret no token verifies and the other threading rules decide.
    secret: str = ""
    reply_domain: str = ""
    # Which Authentication-Results headers to believe (our MTA's authserv-ids).
    trust: TrustContext = field(default_factory=TrustContext)
    # Where human messages are filed; the built-in inbox unless configured.
    helpdesk: HelpdeskConnector = field(default_factory=InboxConnector)


@dataclass(frozen=True)
class _Prepared:
    """What the steps that need no database made of the raw bytes."""

    parsed: ParsedMessage | ParseFailure
    classification: Classification | None = None
    trust: TrustResult | None = None


_INBOUND: sa.Table = InboundMessage.__table__  # type: ignore[attr-defined]
_READ = sa.select(_INBOUND.c.state, _INBOUND.c.raw).where(
    _INBOUND.c.id == sa.bindparam("id", type_=sa.Integer)
)

# The second read of the row needs its state, not its (possibly large) bytes again.
_WITHOUT_RAW = defer(InboundMessage.raw)  # type: ignore[arg-type]


def _read_stored(session: Session, message_id: int) -> tuple[InboundState, bytes] | None:
    """The row's state and raw bytes, read without holding a transaction open.

    :mod:`billbox.db` begins every SQLite transaction ``IMMEDIATE``, so even
    this read would queue for the one write lock behind the SMTP writer and
    the other workers, and each wait is one of SQLite's busy-handler sleeps.
    A statement outside any transaction reads the last committed state and
    takes no lock, so on SQLite the read runs on the driver connection
    itself (autocommit: :mod:`billbox.db` turned pysqlite's own ``BEGIN``
    off). Elsewhere it is a transaction of its own, committed at once.
    """
    bind = session.get_bind()
    if bind.dialect.name == "sqlite" and isinstance(bind, sa.Engine):
        with bind.connect() as connection:
            found = connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                "SELECT state, raw FROM inbound_message WHERE id = ?", (message_id,)
            ).fetchone()
        return None if found is None else (InboundState(found[0]), bytes(found[1]))
    stored = session.connection().execute(_READ, {"id": message_id}).first()
    session.commit()
    return None if stored is None else (stored.state, bytes(stored.raw))


def _prepare(raw: bytes, config: PipelineConfig) -> _Prepared:
    """Parse, classify, judge trust and take the reply text: pure CPU, no session."""
    parsed = parse_message(raw)
    if isinstance(parsed, ParseFailure):
        return _Prepared(parsed)
    result = classify(parsed, config.classify)
    if result.kind != MessageClass.HUMAN or parsed.from_address is None:
        return _Prepared(parsed, result)
    filed_body(parsed)  # kept with the message for file_message
    return _Prepared(parsed, result, judge_trust(parsed, config.trust))


def make_process_inbound(config: PipelineConfig) -> Handler:
    """The ``inbound.process`` handler for ``config``; idempotent (a final row is left alone)."""

    def process_inbound(session: Session, job: JobContext) -> None:
        message_id = int(str(job.payload["inbound_message_id"]))
        stored = _read_stored(session, message_id)
        if stored is None:
            raise PermanentError(f"inbound message {message_id} does not exist")
        state, raw = stored
        if state != InboundState.RECEIVED:
            return
        prepared = _prepare(raw, config)
        row = session.get(
            InboundMessage,
            message_id,
            with_for_update=True,
            options=[_WITHOUT_RAW],
        )
        if row is None:
            raise PermanentError(f"inbound message {message_id} does not exist")
        if row.state != InboundState.RECEIVED:
            return  # another worker finished it meanwhile
        # One UPDATE of the row at the end, not one before each query.
        with session.no_autoflush:
            _process(session, row, prepared, config)
        row.processed_at = utcnow()
        session.add(row)

    return process_inbound


_EARLIER_COPY = (
    sa.select(_INBOUND.c.id)
    .where(
        _INBOUND.c.sha256 == sa.bindparam("sha256", type_=sa.String),
        _INBOUND.c.id < sa.bindparam("id", type_=sa.Integer),
    )
    .limit(1)
)


def _duplicate_of(session: Session, row: InboundMessage) -> int | None:
    """An earlier row with the very same bytes: the sender retried a delivery.

    A server killed after committing but before answering 250 gets the
    message again; identical bytes (same Message-ID, same Date) mean the
    same delivery, whereas a person sending the same words twice produces
    different bytes.
    """
    earlier = (
        session.connection().execute(_EARLIER_COPY, {"sha256": row.sha256, "id": row.id}).scalar()
    )
    return int(earlier) if earlier is not None else None


def _process(
    session: Session, row: InboundMessage, prepared: _Prepared, config: PipelineConfig
) -> None:
    duplicate = _duplicate_of(session, row)
    if duplicate is not None:
        row.state = InboundState.IGNORED
        row.rule_hits = {**(row.rule_hits or {}), "duplicate_of": [str(duplicate)]}
        log.info("inbound_duplicate", inbound_message_id=row.id, duplicate_of=duplicate)
        return
    parsed = prepared.parsed
    if isinstance(parsed, ParseFailure):
        row.state = InboundState.QUARANTINED
        row.quarantine_reason = parsed.reason
        log.warning("inbound_quarantined", inbound_message_id=row.id, reason=parsed.reason)
        return
    result = prepared.classification
    assert result is not None
    outbound_id = None
    if result.bounce is not None:
        # A signed VERP envelope recipient names the email for certain;
        # the bounce's content (quoted Message-ID, recipient) is the fallback.
        outbound = outbound_for_bounce(
            session,
            row.envelope_to,
            secret=config.secret,
            reply_domain=config.reply_domain,
            bounce=result.bounce,
        ) or apply_bounce(session, result.bounce)
        outbound_id = outbound.id if outbound is not None else None
    filed_hits: dict[str, list[str]] = {}
    if result.kind != MessageClass.HUMAN:
        row.state = InboundState.IGNORED
    elif parsed.from_address is None:
        row.state = InboundState.QUARANTINED
        row.quarantine_reason = "; ".join(parsed.problems) or "no sender address"
    else:
        assert prepared.trust is not None
        filed_hits = _file(session, row, parsed, prepared.trust, config)
        row.state = InboundState.PROCESSED
    # Set after filing, whose flushes would otherwise write the row once more each:
    # the row gets one UPDATE, with the commit.
    row.message_id = parsed.message_id
    row.classification = result.kind
    # a new dict, so the JSON column is seen as changed
    row.rule_hits = {**(row.rule_hits or {}), "classify": list(result.hits), **filed_hits}
    log.info(
        "inbound_classified",
        inbound_message_id=row.id,
        message_id=parsed.message_id,
        sender=parsed.from_address,
        classification=str(result.kind),
        hits=list(result.hits),
        bounced_outbound_id=outbound_id,
    )


def _file(
    session: Session,
    row: InboundMessage,
    parsed: ParsedMessage,
    trust: TrustResult,
    config: PipelineConfig,
) -> dict[str, list[str]]:
    """Thread, match and deliver; return the rule hits to store on the row."""
    decision = decide_thread(
        session, parsed, row.envelope_to, secret=config.secret, reply_domain=config.reply_domain
    )
    match = match_customer(session, parsed, decision)
    if trust.verdict == Verdict.FAIL and match.sender_verified:
        # The From address is the customer's, but authentication says forged.
        match = replace(match, sender_verified=False)
    delivered = config.helpdesk.deliver(session, Filing(row, parsed, decision, match))
    log.info(
        "inbound_filed",
        inbound_message_id=row.id,
        ticket_id=delivered.ticket_id,
        helpdesk=config.helpdesk.name,
        thread_rule=str(decision.rule),
        customer_id=match.customer_id,
        matched_by=match.how,
    )
    return {
        "thread": [f"{rule}:{ticket}" for rule, ticket in decision.candidates],
        "match": [match.how, "verified" if match.sender_verified else "unverified"],
        "trust": [f"verdict:{trust.verdict}", *trust.hits],
    }


process_inbound: Handler = make_process_inbound(PipelineConfig())
"""The handler with the default configuration, for callers that have none to give."""
