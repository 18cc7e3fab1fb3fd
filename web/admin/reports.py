"""Finance pages: revenue with a chart, refund rate, invoice aging, tax summary, CSV exports.

CSV amounts are exact decimal strings in the currency's major unit (from
integer minor units, never through a float), so sums in a spreadsheet
match the documents to the cent.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from flask import Response, abort, render_template, request
from markupsafe import Markup

from billbox.models import Role
from billbox.money import Money
from billbox.reports import (
    aging_totals,
    invoices_by_status,
    refund_rates,
    revenue_by_month,
    tax_summary,
)
from web.admin import bp
from web.admin.charts import bar_chart
from web.app import services
from web.auth import current_user, require_roles
from web.formatting import money

FINANCE = (Role.ADMIN, Role.FINANCE)


def _period() -> tuple[datetime | None, datetime | None]:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (to exclusive); a bad date is a 400."""
    bounds: list[datetime | None] = []
    for name in ("from", "to"):
        value = request.args.get(name, "")
        if not value:
            bounds.append(None)
            continue
        try:
            bounds.append(datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC))
        except ValueError:
            abort(400, description=f"'{name}' must be a date like 2026-01-31, got {value!r}")
    return bounds[0], bounds[1]


def _decimal(amount: int, currency: str) -> str:
    return str(Money(amount, currency).to_decimal())


def _charts(rows: list[Any]) -> list[tuple[str, Markup]]:
    by_currency: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        by_currency[row.currency][row.month] += row.net
    charts = []
    for currency, months in sorted(by_currency.items()):
        bars = sorted(months.items())
        texts = [money(v, currency) for _, v in bars]
        svg = bar_chart(bars, label=f"Net revenue per month in {currency}", value_text=texts)
        charts.append((currency, Markup(svg)))  # noqa: S704 - built from escaped parts
    return charts


@bp.get("/reports")
@require_roles(*FINANCE)
def reports() -> Any:
    since, until = _period()
    with services().factory() as db:
        revenue = revenue_by_month(db, since=since, until=until)
        rates = refund_rates(revenue, db)
        invoices = invoices_by_status(db)
        taxes = tax_summary(db, since=since, until=until)
    return render_template(
        "admin/reports.html",
        revenue=revenue,
        rates=rates,
        charts=_charts(revenue),
        invoices=invoices,
        aging=sorted(aging_totals(invoices["overdue"]).items()),
        taxes=taxes,
        period={"from": request.args.get("from", ""), "to": request.args.get("to", "")},
        user=current_user(),
    )


def _csv(name: str, header: list[str], rows: list[list[str]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment", filename=name)
    return response


@bp.get("/reports/revenue.csv")
@require_roles(*FINANCE)
def revenue_csv() -> Response:
    since, until = _period()
    with services().factory() as db:
        rows = revenue_by_month(db, since=since, until=until)
    return _csv(
        "revenue.csv",
        ["month", "brand", "currency", "payments", "gross", "refunded", "net"],
        [
            [
                r.month, r.brand, r.currency, str(r.payments), _decimal(r.gross, r.currency),
                _decimal(r.refunded, r.currency), _decimal(r.net, r.currency),
            ]
            for r in rows
        ],
    )  # fmt: skip


@bp.get("/reports/tax.csv")
@require_roles(*FINANCE)
def tax_csv() -> Response:
    since, until = _period()
    with services().factory() as db:
        rows = tax_summary(db, since=since, until=until)
    return _csv(
        "tax-summary.csv",
        ["jurisdiction", "category", "rate", "currency", "documents", "taxable", "tax"],
        [
            [
                r.jurisdiction, r.category, str(r.rate.normalize()), r.currency, str(r.documents),
                _decimal(r.taxable, r.currency), _decimal(r.tax, r.currency),
            ]
            for r in rows
        ],
    )  # fmt: skip


@bp.get("/reports/invoices.csv")
@require_roles(*FINANCE)
def invoices_csv() -> Response:
    with services().factory() as db:
        lists = invoices_by_status(db)
    rows = []
    for status, lines in lists.items():
        for line in lines:
            inv = line.invoice
            rows.append(
                [
                    status, inv.number or "", inv.external_id, inv.currency,
                    _decimal(inv.amount_due, inv.currency), _decimal(inv.amount_paid, inv.currency),
                    inv.due_at.date().isoformat() if inv.due_at else "", str(line.overdue_days),
                    line.bucket,
                ]
            )  # fmt: skip
    return _csv(
        "invoices.csv",
        ["list", "number", "gateway_id", "currency", "amount_due", "amount_paid", "due",
         "days_overdue", "aging"],
        rows,
    )  # fmt: skip
