"""The inbound pipeline's first steps: parse, record, quarantine what cannot be parsed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from billbox.jobs import run_job
from billbox.models import InboundMessage, InboundSource, InboundState
from mailbridge import ParseFailure, parse_message, store_inbound
from workers.registry import default_handlers

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
needs_corpus = pytest.mark.skipif(not CORPUS.exists(), reason="shared corpora not present")


def process(factory, raw: bytes) -> InboundMessage:
    inbound_id = store_inbound(
        factory,
        raw,
        source=InboundSource.SMTP,
        envelope_from="x@example.org",
        envelope_to=["r@reply.test"],
    )
    with factory() as session:
        from billbox.models import Job

        job = session.exec(select(Job)).all()[-1]
    assert run_job(factory, job.id, default_handlers()).outcome == "done"
    with factory() as session:
        return session.get(InboundMessage, inbound_id)


def test_a_message_without_headers_is_quarantined_with_a_reason(factory):
    """Garbage is kept, byte for byte, and quarantined with the reason."""
    raw = b"this is not an email at all"
    row = process(factory, raw)
    assert row.state == InboundState.QUARANTINED
    assert row.quarantine_reason == "no header fields"
    assert row.raw == raw


def test_a_message_without_a_sender_address_is_quarantined(factory):
    """A From header with no address cannot be matched to anyone: quarantine."""
    row = process(factory, b"From: undisclosed\r\nSubject: hi\r\n\r\nbody")
    assert row.state == InboundState.QUARANTINED
    assert "no address" in row.quarantine_reason


def test_a_good_message_is_processed_and_its_message_id_recorded(factory):
    """A parsable message moves on with its Message-ID stored for threading."""
    row = process(
        factory,
        b"From: Ana <ana@example.org>\r\nMessage-ID: <abc@example.org>\r\n"
        b"Subject: =?utf-8?q?Factura_n=C2=BA_12?=\r\n\r\nHola",
    )
    assert row.state == InboundState.PROCESSED
    assert row.message_id == "<abc@example.org>"


@needs_corpus
@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in (CORPUS / "bounces_autoreplies" / "flanker").glob("*.eml"))
    if CORPUS.exists()
    else [],
)
def test_the_parser_never_raises_on_the_corpus(name):
    """Every corpus message parses or yields a reason; nothing raises."""
    raw = (CORPUS / "bounces_autoreplies" / "flanker" / name).read_bytes()
    result = parse_message(raw)
    if isinstance(result, ParseFailure):
        assert result.reason
    elif result.from_address is None:
        assert result.problems  # the pipeline quarantines human mail without a sender
    else:
        assert "@" in result.from_address
