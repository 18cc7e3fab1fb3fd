"""Finance figures from the ledger and our documents: revenue, refunds, invoices, tax.

Everything is summed in SQL over integer minor units and grouped by
currency — amounts in different currencies are never added together.
Months are calendar months in UTC, taken from the gateway's own timestamp
(when the customer paid), not from when Billbox heard about it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from billbox.models import (
    PAID_PAYMENT_STATUSES,
    Brand,
    Document,
    DocumentKind,
    DocumentState,
    DocumentTaxLine,
    GatewayAccount,
    GatewayInvoice,
    GatewayInvoiceStatus,
    Payment,
    Refund,
    RefundStatus,
    utcnow,
)

AGING_BUCKETS = ((0, "not due"), (1, "1-30 days"), (31, "31-60 days"), (61, "61-90 days"))
OVER_90 = "over 90 days"


def _month(column: Any, dialect: str) -> Any:
    """``YYYY-MM`` of a UTC timestamp column, in this database's SQL."""
    if dialect == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM")
    return sa.func.strftime("%Y-%m", column)


@dataclass(frozen=True)
class RevenueRow:
    month: str
    brand: str
    currency: str
    payments: int
    gross: int
    refunded: int

    @property
    def net(self) -> int:
        return self.gross - self.refunded


def revenue_by_month(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> list[RevenueRow]:
    """Paid payments per month, brand and currency; refunds counted against their payment."""
    dialect = session.get_bind().dialect.name
    month = _month(col(Payment.gateway_created_at), dialect).label("month")
    statement = (
        select(  # type: ignore[call-overload]
            month,
            col(Brand.name),
            col(Payment.currency),
            sa.func.count(),
            sa.func.sum(col(Payment.amount)),
            sa.func.sum(col(Payment.amount_refunded)),
        )
        .join(GatewayAccount, col(GatewayAccount.id) == col(Payment.account_id))
        .join(Brand, col(Brand.id) == col(GatewayAccount.brand_id))
        .where(col(Payment.status).in_(list(PAID_PAYMENT_STATUSES)))
        .group_by(month, col(Brand.name), col(Payment.currency))
        .order_by(month, col(Brand.name), col(Payment.currency))
    )
    if since is not None:
        statement = statement.where(col(Payment.gateway_created_at) >= since)
    if until is not None:
        statement = statement.where(col(Payment.gateway_created_at) < until)
    return [
        RevenueRow(m, brand, currency, int(n), int(gross or 0), int(refunded or 0))
        for m, brand, currency, n, gross, refunded in session.exec(statement).all()
    ]


@dataclass(frozen=True)
class RefundRate:
    currency: str
    gross: int
    refunded: int
    payments: int
    refunds: int

    @property
    def rate(self) -> Decimal:
        """Refunded share of gross, as an exact fraction rounded to 0.1 %."""
        if not self.gross:
            return Decimal(0)
        return (Decimal(self.refunded) * 100 / Decimal(self.gross)).quantize(Decimal("0.1"))


def refund_rates(rows: list[RevenueRow], session: Session) -> list[RefundRate]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        total = totals[row.currency]
        total[0] += row.gross
        total[1] += row.refunded
        total[2] += row.payments
    counts = dict(
        session.exec(
            select(col(Refund.currency), sa.func.count())
            .where(col(Refund.status) == RefundStatus.SUCCEEDED)
            .group_by(col(Refund.currency))
        ).all()
    )
    return [
        RefundRate(currency, gross, refunded, payments, int(counts.get(currency, 0)))
        for currency, (gross, refunded, payments) in sorted(totals.items())
    ]


@dataclass(frozen=True)
class InvoiceLine:
    invoice: GatewayInvoice
    customer_id: int | None
    overdue_days: int
    bucket: str


def _bucket(days: int) -> str:
    label = OVER_90
    for start, name in AGING_BUCKETS:
        if days >= start:
            label = name
    return label if days <= 90 else OVER_90


def invoices_by_status(session: Session, *, now: datetime | None = None) -> dict[str, list[Any]]:
    """Gateway invoices as finance sorts them: open (not yet due), overdue with aging,
    paid, void and uncollectible."""
    now = now or utcnow()
    lists: dict[str, list[Any]] = {"open": [], "overdue": [], "paid": [], "void": []}
    statement = select(GatewayInvoice).order_by(col(GatewayInvoice.due_at), col(GatewayInvoice.id))
    for invoice in session.exec(statement):
        if invoice.status == GatewayInvoiceStatus.OPEN:
            days = (now - invoice.due_at).days if invoice.due_at else 0
            key = "overdue" if invoice.due_at and invoice.due_at < now else "open"
            lists[key].append(
                InvoiceLine(invoice, invoice.customer_id, max(days, 0), _bucket(days))
            )
        elif invoice.status == GatewayInvoiceStatus.PAID:
            lists["paid"].append(InvoiceLine(invoice, invoice.customer_id, 0, ""))
        elif invoice.status in (GatewayInvoiceStatus.VOID, GatewayInvoiceStatus.UNCOLLECTIBLE):
            lists["void"].append(InvoiceLine(invoice, invoice.customer_id, 0, ""))
    return lists


def aging_totals(overdue: list[InvoiceLine]) -> dict[tuple[str, str], int]:
    """Amount due per (aging bucket, currency)."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for line in overdue:
        totals[(line.bucket, line.invoice.currency)] += line.invoice.amount_due - (
            line.invoice.amount_paid
        )
    return dict(totals)


@dataclass(frozen=True)
class TaxRow:
    jurisdiction: str
    category: str
    rate: Decimal
    currency: str
    documents: int
    taxable: int
    tax: int


def tax_summary(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> list[TaxRow]:
    """Tax per jurisdiction, category, rate and currency over issued documents in a period.

    Credit notes count negatively, so a refunded sale nets out in the
    period of the credit note, as the VAT return wants it.
    """
    sign = sa.case((col(Document.kind) == DocumentKind.CREDIT_NOTE, -1), else_=1)
    statement = (
        select(  # type: ignore[call-overload]
            col(DocumentTaxLine.jurisdiction),
            col(DocumentTaxLine.category),
            col(DocumentTaxLine.rate),
            col(Document.currency),
            sa.func.count(sa.distinct(col(Document.id))),
            sa.func.sum(sign * col(DocumentTaxLine.taxable_amount)),
            sa.func.sum(sign * col(DocumentTaxLine.tax_amount)),
        )
        .join(Document, col(Document.id) == col(DocumentTaxLine.document_id))
        .where(col(Document.state) == DocumentState.ISSUED)
        .group_by(
            col(DocumentTaxLine.jurisdiction),
            col(DocumentTaxLine.category),
            col(DocumentTaxLine.rate),
            col(Document.currency),
        )
        .order_by(
            col(DocumentTaxLine.jurisdiction),
            col(DocumentTaxLine.category),
            col(DocumentTaxLine.rate),
            col(Document.currency),
        )
    )
    if since is not None:
        statement = statement.where(col(Document.issued_at) >= since)
    if until is not None:
        statement = statement.where(col(Document.issued_at) < until)
    return [
        TaxRow(j, c, Decimal(r), cur, int(n), int(taxable or 0), int(tax or 0))
        for j, c, r, cur, n, taxable, tax in session.exec(statement).all()
    ]
