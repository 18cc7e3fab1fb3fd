"""Issuing: one document per paid payment or refund, whatever replays, retries or races happen."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace
from decimal import Decimal

import pytest
from sqlmodel import col, select

from billbox.documents import ISSUE_DOCUMENT_JOB, SEND_DOCUMENT_JOB
from billbox.documents.issue import (
    DocumentImmutable,
    finish,
    issue_credit_note,
    issue_for_payment,
    net_from_gross,
    number_for_payment,
)
from billbox.documents.jobs import issue_document
from billbox.gateways.types import GatewayPayment, GatewayRefund
from billbox.jobs import run_job, submit
from billbox.ledger import apply_payment, apply_refund
from billbox.models import (
    Brand,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentState,
    DocumentTaxLine,
    Job,
    JobState,
    PaymentStatus,
    RefundStatus,
)
from billbox.tax import Buyer, Registration, Seller, determine
from tests.conftest import backend
from tests.document_world import CASES, PAID_AT, add_payment, add_refund, make_world

DE = CASES["de_domestic"]
RECEIPT_CASE = replace(DE, invoice_number=None)
HANDLERS = {ISSUE_DOCUMENT_JOB: issue_document}


def documents(session) -> list[Document]:
    return list(session.exec(select(Document).order_by(col(Document.id))).all())


def jobs(session, kind: str) -> list[Job]:
    return list(session.exec(select(Job).where(Job.kind == kind).order_by(col(Job.id))).all())


def test_a_succeeded_payment_yields_one_issued_receipt_with_its_pdf(session):
    """Numbered, issued, PDF stored with its SHA-256; asking again returns the same document."""
    world = make_world(session, RECEIPT_CASE)
    document = issue_for_payment(session, world.payment.id)
    session.commit()
    assert document is not None and document.state is DocumentState.ISSUED
    assert document.kind is DocumentKind.RECEIPT and document.number == "RCT-2026-000001"
    assert document.pdf is not None and document.pdf.startswith(b"%PDF")
    assert document.pdf_sha256 == hashlib.sha256(document.pdf).hexdigest()
    assert (document.subtotal, document.tax_total, document.total) == (10000, 1900, 11900)
    assert document.source_key == f"payment:{world.payment.id}"
    assert document.supplied_at == PAID_AT and document.locale == "de"
    again = issue_for_payment(session, world.payment.id)
    session.commit()
    assert again is not None and again.id == document.id
    assert len(documents(session)) == 1


@pytest.mark.parametrize(
    "status",
    [
        PaymentStatus.PENDING,
        PaymentStatus.REQUIRES_ACTION,
        PaymentStatus.AUTHORIZED,
        PaymentStatus.FAILED,
        PaymentStatus.CANCELED,
    ],
)
def test_a_payment_that_is_not_paid_yields_nothing(session, status):
    """Pending, requiring action, only authorized, failed or canceled: no document, no number."""
    world = make_world(session, RECEIPT_CASE, status=status)
    assert issue_for_payment(session, world.payment.id) is None
    session.commit()
    assert documents(session) == []


def test_a_payment_that_settles_a_gateway_invoice_yields_an_invoice(session):
    """With a gateway invoice the document is an invoice from the INV series."""
    world = make_world(session, DE)
    document = issue_for_payment(session, world.payment.id)
    assert document is not None and document.kind is DocumentKind.INVOICE
    assert document.number.startswith("INV-") and document.title == "Invoice"
    assert document.gateway_invoice_id == world.payment.gateway_invoice_id


def test_running_the_issue_job_twice_gives_one_document_and_one_send_job(factory):
    """A retried or replayed job finds the document and the send job it already made."""
    with factory() as s:
        world = make_world(s, RECEIPT_CASE)
        first = submit(s, ISSUE_DOCUMENT_JOB, {"payment_id": world.payment.id})
        second = submit(s, ISSUE_DOCUMENT_JOB, {"payment_id": world.payment.id})
        s.commit()
    assert run_job(factory, first.id, HANDLERS).outcome == "done"
    assert run_job(factory, second.id, HANDLERS).outcome == "done"
    with factory() as s:
        [document] = documents(s)
        assert document.state is DocumentState.ISSUED
        [send] = jobs(s, SEND_DOCUMENT_JOB)
        assert send.payload == {"document_id": document.id} and send.state is JobState.QUEUED


def test_a_crash_after_numbering_is_finished_by_the_retry_with_the_same_number(factory):
    """Numbered and committed, then the worker died: the job issues that document, no new number."""
    with factory() as s:
        world = make_world(s, RECEIPT_CASE)
        numbered = number_for_payment(s, world.payment.id)
        s.commit()
        assert numbered is not None and numbered.state is DocumentState.NUMBERED
        job = submit(s, ISSUE_DOCUMENT_JOB, {"payment_id": world.payment.id})
        s.commit()
    assert run_job(factory, job.id, HANDLERS).outcome == "done"
    with factory() as s:
        [document] = documents(s)
        assert document.id == numbered.id and document.number == numbered.number
        assert document.state is DocumentState.ISSUED and document.pdf


def test_the_ledger_submits_the_issue_job_once_when_a_payment_first_becomes_paid(session):
    """Pending: nothing. Succeeded: one job. Replays and later refund states: still one."""
    world = make_world(session, RECEIPT_CASE, external_id="pi_seed")
    data = GatewayPayment("pi_L", None, PaymentStatus.PENDING, 11900, "EUR", PAID_AT)
    apply_payment(session, world.account, data)
    assert jobs(session, ISSUE_DOCUMENT_JOB) == []
    paid = replace(data, status=PaymentStatus.SUCCEEDED)
    row = apply_payment(session, world.account, paid).row
    apply_payment(session, world.account, paid)
    apply_payment(session, world.account, replace(paid, status=PaymentStatus.REQUIRES_ACTION))
    apply_payment(session, world.account, paid)
    [job] = jobs(session, ISSUE_DOCUMENT_JOB)
    assert job.payload == {"payment_id": row.id}


def test_a_succeeded_refund_submits_a_credit_note_job_when_the_brand_wants_one(session):
    """Pending refund: nothing; succeeded: one job; a brand without credit notes: none."""
    world = make_world(session, RECEIPT_CASE)
    refund = GatewayRefund("re_L", "pi_1", RefundStatus.PENDING, 500, "EUR", PAID_AT)
    apply_refund(session, world.account, refund)
    assert jobs(session, ISSUE_DOCUMENT_JOB) == []
    row = apply_refund(session, world.account, replace(refund, status=RefundStatus.SUCCEEDED)).row
    apply_refund(session, world.account, replace(refund, status=RefundStatus.SUCCEEDED))
    assert [j.payload for j in jobs(session, ISSUE_DOCUMENT_JOB)] == [{"refund_id": row.id}]
    world.brand.issue_credit_notes = False
    session.add(world.brand)
    other = GatewayRefund("re_M", "pi_1", RefundStatus.SUCCEEDED, 100, "EUR", PAID_AT)
    apply_refund(session, world.account, other)
    assert len(jobs(session, ISSUE_DOCUMENT_JOB)) == 1


def test_a_full_refund_credit_note_mirrors_the_receipt(session):
    """Same net, tax and total as the receipt, from the CN series, pointing at it."""
    world = make_world(session, RECEIPT_CASE)
    receipt = issue_for_payment(session, world.payment.id)
    refund = add_refund(session, world.payment, world.payment.amount)
    note = issue_credit_note(session, refund.id)
    session.commit()
    assert receipt is not None and note is not None
    assert note.kind is DocumentKind.CREDIT_NOTE and note.number == "CN-2026-000001"
    assert note.title == "Credit note" and note.credits_document_id == receipt.id
    assert (note.subtotal, note.tax_total, note.total, note.rounding_amount) == (
        receipt.subtotal,
        receipt.tax_total,
        receipt.total,
        receipt.rounding_amount,
    )
    assert note.buyer == receipt.buyer and note.tax_treatment == receipt.tax_treatment
    assert issue_credit_note(session, refund.id).id == note.id  # type: ignore[union-attr]


def test_a_partial_refund_credit_note_uses_the_original_rate(session):
    """A 11.90 refund of a 19 % receipt: 10.00 net, 1.90 VAT, even after the customer moved."""
    world = make_world(session, RECEIPT_CASE)
    issue_for_payment(session, world.payment.id)
    world.customer.country = "US"
    session.add(world.customer)
    refund = add_refund(session, world.payment, 1190)
    note = issue_credit_note(session, refund.id)
    assert note is not None
    assert (note.subtotal, note.tax_total, note.total) == (1000, 190, 1190)
    [tax] = session.exec(select(DocumentTaxLine).where(DocumentTaxLine.document_id == note.id))
    assert (tax.jurisdiction, tax.rate) == ("DE", Decimal(19))


def test_a_credit_note_for_a_payment_without_document_issues_the_original_first(session):
    """The refund's job runs before the payment's: the receipt is issued, then the note."""
    world = make_world(session, RECEIPT_CASE)
    refund = add_refund(session, world.payment, 500)
    note = issue_credit_note(session, refund.id)
    session.commit()
    kinds = [(d.kind, d.state) for d in documents(session)]
    assert kinds == [
        (DocumentKind.RECEIPT, DocumentState.ISSUED),
        (DocumentKind.CREDIT_NOTE, DocumentState.ISSUED),
    ]
    assert note is not None and note.credits_document_id == documents(session)[0].id


def test_a_pending_refund_or_a_brand_without_credit_notes_yields_no_credit_note(session):
    world = make_world(session, RECEIPT_CASE)
    pending = add_refund(session, world.payment, 500, "re_p", status=RefundStatus.PENDING)
    assert issue_credit_note(session, pending.id) is None
    world.brand.issue_credit_notes = False
    session.add(world.brand)
    done = add_refund(session, world.payment, 500, "re_d")
    assert issue_credit_note(session, done.id) is None
    assert documents(session) == []


def test_an_invalid_buyer_vat_id_is_taxed_as_a_consumer_sale_and_kept_aside(session):
    """A bad checksum cannot justify a reverse charge: VAT is charged, the id is not printed."""
    case = replace(
        CASES["fr_de_reverse_charge"],
        customer={**CASES["fr_de_reverse_charge"].customer, "tax_id": "DE136695977"},
    )
    world = make_world(session, case)
    document = issue_for_payment(session, world.payment.id)
    assert document is not None
    assert document.tax_treatment == "origin" and document.tax_total > 0
    assert document.buyer["tax_id"] == "" and document.buyer["tax_id_invalid"] == "DE136695977"


def test_an_issued_document_cannot_be_changed(session):
    """Any ORM change to an issued document is refused; a correction is a credit note."""
    world = make_world(session, RECEIPT_CASE)
    document = issue_for_payment(session, world.payment.id)
    session.commit()
    assert document is not None
    document.total = 1
    session.add(document)
    with pytest.raises(DocumentImmutable):
        session.flush()
    session.rollback()


def test_finishing_an_issued_document_never_renders_again(session):
    """The stored PDF is the document: finishing it again returns the same bytes."""
    world = make_world(session, RECEIPT_CASE)
    document = issue_for_payment(session, world.payment.id)
    assert document is not None
    before = document.pdf
    assert finish(session, document).pdf is before


def test_a_gross_amount_one_line_cannot_reach_gets_a_rounding_amount(session):
    """At 19 % some gross amounts have no exact net; the 1-cent gap is BT-114, paid is exact."""
    decision = determine(Seller("DE", (Registration("eu_vat", "DE", "DE136695976"),)), Buyer("DE"))
    gaps = []
    for gross in range(100, 400):
        net, totals = net_from_gross(gross, decision, "EUR")
        assert 0 <= gross - totals.total <= 1 and totals.subtotal == net
        if totals.total != gross:
            gaps.append(gross)
    assert gaps, "19 % must leave some amounts unreachable"
    world = make_world(session, replace(RECEIPT_CASE, amount=gaps[0]))
    document = issue_for_payment(session, world.payment.id)
    assert document is not None
    assert document.rounding_amount == 1
    assert document.total + document.rounding_amount == gaps[0]
    [line] = session.exec(select(DocumentLine).where(DocumentLine.document_id == document.id))
    assert line.net_amount == document.subtotal


@pytest.mark.postgres_only
@pytest.mark.skipif(backend() != "postgresql", reason="concurrent writers need PostgreSQL")
def test_eight_concurrent_issuers_give_one_document_per_payment_without_gaps(factory):
    """8 threads issue 24 payments, each payment asked for by two threads: 24 documents, 1..24."""
    with factory() as s:
        world = make_world(s, RECEIPT_CASE, external_id="pi_0")
        ids = [world.payment.id] + [
            add_payment(s, world.account, world.customer, RECEIPT_CASE, external_id=f"pi_{i}").id
            for i in range(1, 24)
        ]
        s.commit()
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def issuer(worker: int) -> None:
        try:
            start.wait()
            mine = [pid for i, pid in enumerate(ids) if i % 4 == worker % 4]
            for pid in mine:
                with factory() as s:
                    issue_for_payment(s, pid)
                    s.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=issuer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with factory() as s:
        docs = documents(s)
    assert sorted(d.payment_id for d in docs) == sorted(ids)
    assert sorted(d.sequence for d in docs) == list(range(1, 25))
    assert all(d.state is DocumentState.ISSUED for d in docs)


def test_stripe_events_replayed_end_to_end_yield_one_receipt_and_one_send_job(
    settings, engine, factory
):
    """processing, requires_action, then succeeded delivered twice under two event ids.

    Signed deliveries through ``POST /webhooks/stripe``, every queued job run
    with the registered handlers (webhooks, then documents), twice over: one
    receipt, numbered 1, and one ``send_document`` job.
    """
    from pydantic import SecretStr

    from tests.test_stripe_webhooks import SECRET, event, intent, post
    from web import create_app
    from workers.registry import default_handlers

    configured = settings.model_copy(update={"stripe_webhook_secret": SecretStr(SECRET)})
    client = create_app(configured, engine=engine).test_client()
    with factory() as s:
        s.add(Brand(**RECEIPT_CASE.brand))
        s.commit()
    deliveries = [
        event("evt_1", "payment_intent.processing", intent("processing"), 1_700_000_001),
        event("evt_2", "payment_intent.requires_action", intent("requires_action"), 1_700_000_002),
        event("evt_3", "payment_intent.succeeded", intent("succeeded"), 1_700_000_003),
        event("evt_4", "payment_intent.succeeded", intent("succeeded"), 1_700_000_003),
    ]
    handlers = default_handlers()
    for delivery in deliveries:
        assert post(client, delivery).status_code == 200
        if delivery["id"] == "evt_2":  # processing, then requires action: not paid
            run_all(factory, handlers)
            assert documents_of(factory) == []
    run_all(factory, handlers)
    assert post(client, deliveries[-1]).status_code == 200  # a plain redelivery
    run_all(factory, handlers)
    with factory() as s:
        [document] = documents(s)
        assert document.state is DocumentState.ISSUED and document.sequence == 1
        assert document.total + document.rounding_amount == 2000
        [send] = jobs(s, SEND_DOCUMENT_JOB)
        assert send.payload == {"document_id": document.id}
        assert len(jobs(s, ISSUE_DOCUMENT_JOB)) == 1


def documents_of(factory) -> list[Document]:
    with factory() as s:
        return documents(s)


def run_all(factory, handlers) -> None:
    """Run queued jobs (not send_document, whose handler lives in mailbridge) until none is left."""
    while True:
        with factory() as s:
            ids = s.exec(
                select(Job.id)
                .where(Job.state == JobState.QUEUED, Job.kind != SEND_DOCUMENT_JOB)
                .order_by(col(Job.id))
            ).all()
        if not ids:
            return
        for job_id in ids:
            assert job_id is not None and run_job(factory, job_id, handlers).outcome == "done"


def test_a_refund_that_arrives_before_its_payment_gets_its_credit_note_job_when_linked(session):
    """No job while the payment is unknown; linking the refund to it submits exactly one."""
    world = make_world(session, RECEIPT_CASE, external_id="pi_seed")
    early = GatewayRefund("re_E", "pi_late", RefundStatus.SUCCEEDED, 500, "EUR", PAID_AT)
    refund = apply_refund(session, world.account, early).row
    assert jobs(session, ISSUE_DOCUMENT_JOB) == []
    late = GatewayPayment("pi_late", None, PaymentStatus.SUCCEEDED, 11900, "EUR", PAID_AT)
    payment = apply_payment(session, world.account, late).row
    apply_payment(session, world.account, late)
    payloads = [j.payload for j in jobs(session, ISSUE_DOCUMENT_JOB)]
    assert sorted(payloads, key=str) == [{"payment_id": payment.id}, {"refund_id": refund.id}]
    note = issue_credit_note(session, refund.id)
    assert note is not None and note.credits_document_id is not None


@pytest.mark.postgres_only
@pytest.mark.skipif(backend() != "postgresql", reason="needs PostgreSQL row locks")
def test_the_loser_of_a_race_returns_the_winners_document_and_gives_its_number_back(factory):
    """B waits on the series lock held by A; A commits; B's insert collides and is undone."""
    with factory() as s:
        world = make_world(s, RECEIPT_CASE)
        other = add_payment(s, world.account, world.customer, RECEIPT_CASE, external_id="pi_2")
        payment_id, other_id = world.payment.id, other.id
        s.commit()
    a = factory()
    first = number_for_payment(a, payment_id)  # holds the series row lock, not committed
    assert first is not None
    result: dict[str, object] = {}

    def loser() -> None:
        with factory() as b:
            result["doc"] = number_for_payment(b, payment_id)
            b.commit()

    thread = threading.Thread(target=loser)
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "B must wait for A's lock"
    a.commit()
    a.close()
    thread.join(30)
    got = result["doc"]
    assert isinstance(got, Document) and got.id == first.id and got.number == first.number
    with factory() as s:
        nxt = number_for_payment(s, other_id)
        s.commit()
        assert nxt is not None and nxt.sequence == first.sequence + 1
        assert len(documents(s)) == 2
