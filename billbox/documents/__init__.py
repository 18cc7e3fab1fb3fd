"""Documents we issue: receipts, invoices and credit notes, numbered and rendered to PDF.

This package module stays light (job names only) because the ledger imports
it on every payment; the work lives in submodules:

- :mod:`billbox.documents.issue`: ``issue_for_payment``, ``issue_credit_note``
  (idempotent per source, numbered in the caller's transaction);
- :mod:`billbox.documents.jobs`: the ``issue_document`` job handler;
- :mod:`billbox.documents.render`: ``render_document`` (template + xhtml2pdf);
- :mod:`billbox.documents.view`: labels, titles and Babel formatting shared
  with the email.
"""

from __future__ import annotations

#: Job that issues the document of a payment ({"payment_id": id}) or the
#: credit note of a refund ({"refund_id": id}).
ISSUE_DOCUMENT_JOB = "issue_document"
#: Job that emails an issued document ({"document_id": id}); handled by mailbridge.
SEND_DOCUMENT_JOB = "send_document"
#: Attempts for ``send_document``: with billbox.jobs' backoff (2^n s, at most 1 h) about
#: 7 hours, long enough to ride out greylisting and a relay outage.
SEND_MAX_ATTEMPTS = 16

__all__ = ["ISSUE_DOCUMENT_JOB", "SEND_DOCUMENT_JOB"]
