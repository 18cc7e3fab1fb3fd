"""``/healthz`` for load balancers and ``/`` as the operator's status page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template

from billbox.db import ping
from billbox.errors import DatabaseError
from billbox.status import collect_status
from web.app import services
from workers.broker import ping_broker

bp = Blueprint("health", __name__)


def _checks() -> dict[str, str]:
    svc = services()
    checks: dict[str, str] = {}
    try:
        ping(svc.engine)
        checks["database"] = "ok"
    except DatabaseError as exc:
        checks["database"] = f"error: {exc}"
    if svc.worker is None:
        checks["broker"] = "not configured"
    else:
        try:
            ping_broker(svc.worker.broker)
            checks["broker"] = "ok"
        except Exception as exc:  # any client error means unreachable
            checks["broker"] = f"error: {exc.__class__.__name__}: {exc}"
    return checks


@bp.get("/healthz")
def healthz() -> Any:
    checks = _checks()
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", **checks), 200 if healthy else 503


@bp.get("/")
def status_page() -> Any:
    svc = services()
    with svc.factory() as session:
        status = collect_status(session)
    return render_template(
        "web/status.html", status=status, checks=_checks(), settings=svc.settings
    )
