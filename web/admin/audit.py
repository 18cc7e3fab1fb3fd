"""The audit log page: every recorded action, filtered, newest first, exportable as CSV.

Rows are only read here; they are written by ``billbox.audit`` (hash-chained)
and checked by ``billbox audit verify``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, abort, render_template, request
from sqlalchemy import ColumnElement, func
from sqlmodel import col, select

from billbox.models import AuditEvent, Role
from web.admin import bp
from web.app import services
from web.auth import current_user, require_roles

AUDITORS = (Role.ADMIN, Role.FINANCE)
PAGE = 100
CSV_LIMIT = 100_000


def _conditions() -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    for name, column in (("actor", AuditEvent.actor), ("action", AuditEvent.action)):
        value = request.args.get(name, "").strip()
        if value:
            conditions.append(func.lower(col(column)).like(f"%{value.lower()}%"))
    target = request.args.get("target", "").strip()
    if target:
        conditions.append(col(AuditEvent.target_id) == target)
    for name, op in (("from", "ge"), ("to", "lt")):
        value = request.args.get(name, "")
        if not value:
            continue
        try:
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            abort(400, description=f"'{name}' must be a date like 2026-01-31")
        if op == "ge":
            conditions.append(col(AuditEvent.at) >= day)
        else:
            conditions.append(col(AuditEvent.at) < day + timedelta(days=1))
    return conditions


@bp.get("/audit")
@require_roles(*AUDITORS)
def audit() -> Any:
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and int(page) > 0 else 1
    conditions = _conditions()
    with services().factory() as db:
        total = db.exec(select(func.count()).select_from(AuditEvent).where(*conditions)).one()
        rows = list(
            db.exec(
                select(AuditEvent)
                .where(*conditions)
                .order_by(col(AuditEvent.id).desc())
                .offset((number - 1) * PAGE)
                .limit(PAGE)
            )
        )
    return render_template(
        "admin/audit.html",
        rows=rows,
        total=int(total),
        page=number,
        pages=max(1, -(-int(total) // PAGE)),
        args=request.args,
        user=current_user(),
    )


@bp.get("/audit.csv")
@require_roles(*AUDITORS)
def audit_csv() -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(
        ["id", "at", "actor_kind", "actor", "action", "target_kind", "target_id", "reason",
         "data", "prev_hash", "hash"]
    )  # fmt: skip
    with services().factory() as db:
        statement = (
            select(AuditEvent).where(*_conditions()).order_by(col(AuditEvent.id)).limit(CSV_LIMIT)
        )
        for row in db.exec(statement):
            writer.writerow(
                [
                    row.id, row.at.isoformat(), row.actor_kind.value, row.actor, row.action,
                    row.target_kind, row.target_id, row.reason,
                    json.dumps(row.data, sort_keys=True, ensure_ascii=False), row.prev_hash,
                    row.hash,
                ]
            )  # fmt: skip
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers.set("Content-Disposition", "attachment", filename="audit.csv")
    return response
