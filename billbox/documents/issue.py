"""Exactly one document per source: a receipt/invoice per paid payment, a credit note per refund.

Two steps, so that the series row lock (PostgreSQL) is held only for a few
inserts and never while a PDF renders:

1. :func:`number_for_payment` / :func:`number_for_refund` create the
   document in state ``numbered``: tax decided, lines and tax lines stored,
   number taken from the series in the same transaction (``billbox.numbering``).
   The unique ``source_key`` (``payment:<id>``, ``refund:<id>``) makes this
   idempotent: a second call returns the existing document, and a concurrent
   issuer that loses the race rolls back its savepoint, number included,
   and returns the winner's document.
2. :func:`finish` renders the PDF, stores it with its SHA-256 and moves the
   document to ``issued``; from then on it never changes (:func:`refuse_changes`).

:func:`issue_for_payment` and :func:`issue_credit_note` do both in the
caller's transaction; the job handler (``billbox.documents.jobs``) commits
between them. A crash between the steps leaves a ``numbered`` document
that the retried job finishes: never a second number, never a gap.

Amounts. A gateway amount is what the customer paid, so it is the
document's **gross** total whatever the treatment: with a 0 % treatment
(reverse charge, export, outside scope, no tax) the net is the amount; with
a standard rate the net is computed back from it (:func:`net_from_gross`)
and tax is then computed the EN 16931 way by ``billbox.tax.compute_totals``
(rounded once per rate on the net). One line of a gross amount cannot
always reach the gross exactly (at 19 % a net step of 1 cent moves the
total by 1 or 2 cents), so the difference, at most one minor unit, is the
EN 16931 rounding amount (BT-114) and the amount paid (BT-115) printed is
the gateway's amount to the cent.

The buyer's tax id. An id that fails its checksum cannot justify a reverse
charge, so the sale is taxed as one to a consumer (the seller's safe side),
the invalid id is kept in the buyer snapshot as ``tax_id_invalid`` (not
printed) and a warning is logged. A refund's credit note copies its
original document's treatment, rate, seller and buyer, so it mirrors the
document it corrects even if the customer changed since.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from billbox.documents.content import (
    buyer_snapshot,
    decide,
    decision_of,
    document_title,
    line_rows,
    net_from_gross,
    payment_method_label,
    seller_snapshot,
    tax_rows,
)
from billbox.documents.render import render_document
from billbox.documents.view import label, normalise_locale
from billbox.errors import JobError, PermanentError
from billbox.logs import get_logger
from billbox.models import (
    PAID_PAYMENT_STATUSES,
    Brand,
    Customer,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentState,
    DocumentTaxLine,
    GatewayAccount,
    GatewayInvoice,
    Payment,
    Refund,
    RefundStatus,
    utcnow,
)
from billbox.numbering import next_number
from billbox.pdf import sha256_hex
from billbox.tax import (
    Line,
    TaxDecision,
)

__all__ = [
    "DocumentConfig",
    "DocumentImmutable",
    "finish",
    "issue_credit_note",
    "issue_for_payment",
    "net_from_gross",
    "number_for_payment",
    "number_for_refund",
    "payment_method_label",
]

log = get_logger("billbox.documents")


class DocumentImmutable(PermanentError):
    """Something tried to change an issued document; issue a credit note instead."""


@dataclass(frozen=True)
class DocumentConfig:
    """Where links point and what else the PDF may read; one per process."""

    public_url: str = "http://127.0.0.1:8000"
    media_dir: Path | None = None

    @property
    def billing_url(self) -> str:
        return f"{self.public_url.rstrip('/')}/billing"


# --- immutability -------------------------------------------------------------


@event.listens_for(OrmSession, "before_flush")
def refuse_changes(session: OrmSession, _context: Any, _instances: Any) -> None:
    """Refuse any ORM change to a document that was already issued when loaded."""
    for obj in [*session.dirty, *session.deleted]:
        if not isinstance(obj, Document):
            continue
        changed = obj in session.deleted or session.is_modified(obj)
        if changed and DocumentState.ISSUED in _state_history(obj):
            raise DocumentImmutable(
                f"document {obj.number} is issued and cannot change; issue a credit note"
            )


def _state_history(obj: Document) -> list[object]:
    attr = sa_inspect(obj).attrs.state.history
    return [*(attr.unchanged or ()), *(attr.deleted or ())]


# --- step 1: numbered documents ------------------------------------------------


def _existing(session: Session, source_key: str) -> Document | None:
    return session.exec(select(Document).where(Document.source_key == source_key)).first()


def _create(
    session: Session,
    *,
    brand: Brand,
    document: Document,
    description: str,
    gross: int,
    decision: TaxDecision,
) -> Document:
    """Insert ``document`` with its number, line and tax lines; the winner's row on a race."""
    assert brand.id is not None
    net, totals = net_from_gross(gross, decision, document.currency)
    try:
        with session.begin_nested():
            number = next_number(session, brand.id, document.kind, issued_at=document.issued_at)
            document.series, document.sequence, document.number = (
                number.series,
                number.sequence,
                number.number,
            )
            document.subtotal, document.tax_total = totals.subtotal, totals.tax_total
            document.total, document.rounding_amount = totals.total, gross - totals.total
            session.add(document)
            session.flush()
            assert document.id is not None
            session.add_all(line_rows(document.id, [Line(description, 1, net)], decision))
            session.add_all(tax_rows(document.id, totals))
            session.flush()
    except IntegrityError:
        winner = _existing(session, document.source_key)
        if winner is None:
            raise
        log.info("document_race_lost", source_key=document.source_key, number=winner.number)
        return winner
    log.info("document_numbered", number=document.number, source_key=document.source_key)
    return document


def _context(session: Session, account_id: int) -> Brand:
    account = session.get(GatewayAccount, account_id)
    if account is None:
        raise PermanentError(f"gateway account {account_id} does not exist")
    brand = session.get(Brand, account.brand_id)
    if brand is None:
        raise PermanentError(f"brand {account.brand_id} does not exist")
    return brand


def number_for_payment(
    session: Session, payment_id: int, config: DocumentConfig | None = None
) -> Document | None:
    """The payment's receipt/invoice in state ``numbered`` or later; None if it is not paid."""
    config = config or DocumentConfig()
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise PermanentError(f"payment {payment_id} does not exist")
    if payment.status not in PAID_PAYMENT_STATUSES:
        return None
    source_key = f"payment:{payment_id}"
    existing = _existing(session, source_key)
    if existing is not None:
        return existing
    brand = _context(session, payment.account_id)
    customer = session.get(Customer, payment.customer_id) if payment.customer_id else None
    invoice = (
        session.get(GatewayInvoice, payment.gateway_invoice_id)
        if payment.gateway_invoice_id
        else None
    )
    kind = DocumentKind.INVOICE if invoice is not None else DocumentKind.RECEIPT
    buyer = buyer_snapshot(customer, payment)
    decision = decide(brand, buyer)
    locale = normalise_locale((customer.locale if customer else None) or brand.locale)
    description = payment.description.strip() or (
        f"{label(locale, 'payment')} {invoice.number or invoice.external_id}"
        if invoice
        else f"{label(locale, 'payment')} {payment.external_id}"
    )
    document = Document(
        brand_id=brand.id or 0,
        customer_id=payment.customer_id,
        kind=kind,
        state=DocumentState.NUMBERED,
        series="",
        sequence=0,
        number="",
        source_key=source_key,
        payment_id=payment.id,
        gateway_invoice_id=invoice.id if invoice else None,
        currency=payment.currency,
        tax_treatment=decision.treatment.value,
        locale=locale,
        title=document_title(kind, decision, brand.country),
        legal_note=decision.legal_note,
        payment_method=payment_method_label(payment),
        billing_url=config.billing_url,
        seller=seller_snapshot(brand, decision),
        buyer=buyer,
        issued_at=utcnow(),
        supplied_at=payment.gateway_created_at,
    )
    return _create(
        session,
        brand=brand,
        document=document,
        description=description,
        gross=payment.amount,
        decision=decision,
    )


def number_for_refund(
    session: Session, refund_id: int, config: DocumentConfig | None = None
) -> Document | None:
    """The refund's credit note in state ``numbered`` or later; None unless it succeeded.

    Also None when the brand does not issue credit notes. Raises a
    retryable :class:`JobError` while the refund's payment is not in the
    ledger yet (a refund can arrive first).
    """
    config = config or DocumentConfig()
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise PermanentError(f"refund {refund_id} does not exist")
    if refund.status != RefundStatus.SUCCEEDED:
        return None
    source_key = f"refund:{refund_id}"
    existing = _existing(session, source_key)
    if existing is not None:
        return existing
    brand = _context(session, refund.account_id)
    if not brand.issue_credit_notes:
        return None
    if refund.payment_id is None:
        raise JobError(f"refund {refund_id}: its payment is not in the ledger yet")
    original = number_for_payment(session, refund.payment_id, config)
    if original is None:
        raise PermanentError(f"refund {refund_id}: its payment was never paid")
    tax = session.exec(
        select(DocumentTaxLine)
        .where(DocumentTaxLine.document_id == original.id)
        .order_by(col(DocumentTaxLine.id))
    ).first()
    decision = decision_of(original, tax)
    payment = session.get(Payment, refund.payment_id)
    assert payment is not None
    locale = original.locale
    reason = f" ({refund.reason})" if refund.reason else ""
    document = Document(
        brand_id=brand.id or 0,
        customer_id=original.customer_id,
        kind=DocumentKind.CREDIT_NOTE,
        state=DocumentState.NUMBERED,
        series="",
        sequence=0,
        number="",
        source_key=source_key,
        payment_id=refund.payment_id,
        refund_id=refund.id,
        credits_document_id=original.id,
        currency=refund.currency,
        tax_treatment=original.tax_treatment,
        locale=locale,
        title=document_title(
            DocumentKind.CREDIT_NOTE, decision, str(original.seller.get("country"))
        ),
        legal_note=original.legal_note,
        payment_method=original.payment_method,
        billing_url=config.billing_url,
        seller=dict(original.seller),
        buyer=dict(original.buyer),
        issued_at=utcnow(),
        supplied_at=refund.gateway_created_at or utcnow(),
    )
    description = f"{label(locale, 'refund')}: {original.number}{reason}"
    return _create(
        session,
        brand=brand,
        document=document,
        description=description,
        gross=refund.amount,
        decision=decision,
    )


# --- step 2: render and issue --------------------------------------------------------


@dataclass(frozen=True)
class RenderInputs:
    """Everything a render reads, loaded so the render itself needs no database."""

    lines: list[DocumentLine]
    tax_lines: list[DocumentTaxLine]
    brand: Brand
    credits_number: str | None


def render_inputs(session: Session, document: Document) -> RenderInputs:
    brand = session.get(Brand, document.brand_id)
    assert brand is not None and document.id is not None
    lines = session.exec(select(DocumentLine).where(DocumentLine.document_id == document.id)).all()
    tax_lines = session.exec(
        select(DocumentTaxLine)
        .where(DocumentTaxLine.document_id == document.id)
        .order_by(col(DocumentTaxLine.id))
    ).all()
    credits = (
        session.get(Document, document.credits_document_id)
        if document.credits_document_id
        else None
    )
    return RenderInputs(list(lines), list(tax_lines), brand, credits.number if credits else None)


def render_pdf(document: Document, inputs: RenderInputs, config: DocumentConfig) -> bytes:
    """The PDF bytes; no database access, so callers can render outside any transaction."""
    return render_document(
        document,
        inputs.lines,
        inputs.tax_lines,
        inputs.brand,
        media_dir=config.media_dir,
        credits_number=inputs.credits_number,
    )


def store_pdf(session: Session, document: Document, pdf: bytes) -> Document:
    """Keep the rendered PDF and its digest and mark the document ``issued`` (in the caller's
    transaction); an already issued document keeps the PDF it has."""
    if document.state is DocumentState.ISSUED:
        return document
    document.pdf = pdf
    document.pdf_sha256 = sha256_hex(pdf)
    document.state = DocumentState.ISSUED
    session.add(document)
    session.flush()
    log.info("document_issued", number=document.number, bytes=len(pdf))
    return document


def finish(session: Session, document: Document, config: DocumentConfig | None = None) -> Document:
    """Render the PDF of a ``numbered`` document, store it and its digest, mark it ``issued``.

    An already issued document is returned unchanged (its PDF is never re-rendered).
    """
    if document.state is DocumentState.ISSUED:
        return document
    pdf = render_pdf(document, render_inputs(session, document), config or DocumentConfig())
    return store_pdf(session, document, pdf)


def issue_for_payment(
    session: Session, payment_id: int, config: DocumentConfig | None = None
) -> Document | None:
    """Number, render and issue the payment's document in the caller's transaction.

    Returns the existing document when there is one; None while the
    payment is not paid (pending, requires action, authorized, failed, …).
    """
    document = number_for_payment(session, payment_id, config)
    return finish(session, document, config) if document is not None else None


def issue_credit_note(
    session: Session, refund_id: int, config: DocumentConfig | None = None
) -> Document | None:
    """Number, render and issue the refund's credit note (and its original, if missing)."""
    document = number_for_refund(session, refund_id, config)
    if document is None:
        return None
    if document.credits_document_id:
        original = session.get(Document, document.credits_document_id)
        if original is not None:
            finish(session, original, config)
    return finish(session, document, config)
