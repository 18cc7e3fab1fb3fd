"""The ``issue_document`` job: number in one transaction, render and issue in the next.

Payload ``{"payment_id": id}`` issues the payment's receipt or invoice,
``{"refund_id": id}`` the refund's credit note. The handler commits right
after numbering, so the series row is locked for a few inserts, not for
the render; the PDF, the ``issued`` state and the ``send_document`` job are
then committed together by ``run_job``. Running the job twice (a retry, a
replayed event, a worker killed mid-way) finds the document by its source
key and, thanks to the job's ``dedupe_key``, the one send job: never a
second document, never a second email.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session

from billbox.documents import SEND_DOCUMENT_JOB, SEND_MAX_ATTEMPTS
from billbox.documents.issue import (
    DocumentConfig,
    finish,
    number_for_payment,
    number_for_refund,
    render_inputs,
    render_pdf,
    store_pdf,
)
from billbox.errors import PermanentError
from billbox.jobs import JobContext, submit
from billbox.logs import get_logger
from billbox.models import Document, DocumentState

__all__ = ["issue_document", "make_issue_document", "submit_send"]

log = get_logger("billbox.documents.jobs")


def submit_send(session: Session, document: Document) -> None:
    """Add the ``send_document`` job for an issued document, once per document ever."""
    assert document.id is not None and document.state is DocumentState.ISSUED
    submit(
        session,
        SEND_DOCUMENT_JOB,
        {"document_id": document.id},
        dedupe_key=f"{SEND_DOCUMENT_JOB}:{document.id}",
        max_attempts=SEND_MAX_ATTEMPTS,
    )


def _int(payload_value: object, name: str) -> int:
    try:
        return int(str(payload_value))
    except ValueError:
        raise PermanentError(
            f"issue_document: {name} must be an id, got {payload_value!r}"
        ) from None


def make_issue_document(config: DocumentConfig) -> Callable[[Session, JobContext], None]:
    """The handler bound to this process's settings (public URL, media folder)."""

    def handler(session: Session, job: JobContext) -> None:
        payload = job.payload
        if "payment_id" in payload:
            document = number_for_payment(
                session, _int(payload["payment_id"], "payment_id"), config
            )
        elif "refund_id" in payload:
            document = number_for_refund(session, _int(payload["refund_id"], "refund_id"), config)
        else:
            raise PermanentError(f"issue_document needs payment_id or refund_id: {dict(payload)}")
        if document is None:
            log.info("document_not_due", payload=dict(payload))
            return
        if document.state is DocumentState.NUMBERED:
            session.commit()  # the number is ours; release the series lock before rendering
            if document.credits_document_id:
                original = session.get(Document, document.credits_document_id)
                if original is not None and original.state is DocumentState.NUMBERED:
                    submit_send(session, finish(session, original, config))
            inputs = render_inputs(session, document)
            # No transaction while rendering (~60 ms of CPU): on SQLite every transaction
            # holds the write lock, which would serialise every worker behind one render.
            session.commit()
            pdf = render_pdf(document, inputs, config)
            store_pdf(session, document, pdf)
        submit_send(session, document)

    return handler


#: The handler with default settings (tests, ``billbox`` without a public URL).
issue_document = make_issue_document(DocumentConfig())
