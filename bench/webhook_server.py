"""``billbox web`` plus a no-op endpoint, for ``bench/webhooks.py``: one server, both routes.

The baseline has to be served by the very server we measure — the same
gunicorn master, worker class, threads and app (its before/after-request
hooks included) — so this module runs :class:`web.server.BillboxWSGI`
unchanged and only adds ``POST /bench/noop`` to the app it loads. The route
exists in this wrapper alone: production never ships a bench route.

The no-op view reads the body (every webhook endpoint must) and answers the
same JSON the webhook endpoint does; it stores nothing.

Run: ``python -m bench.webhook_server`` with the usual ``BILLBOX_*`` and
``STRIPE_WEBHOOK_SECRET`` variables (``bench/webhooks.py`` sets them).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from billbox.logs import configure_logging
from billbox.settings import load_settings
from web.server import BillboxWSGI

NOOP_PATH = "/bench/noop"


def add_noop_route(app: Flask) -> Flask:
    """Mount the no-op endpoint on ``app`` (which keeps all its own routes and hooks)."""

    def noop() -> Any:
        request.get_data()
        return jsonify({"received": True, "duplicate": False}), 200

    app.add_url_rule(NOOP_PATH, "bench_noop", noop, methods=["POST"])
    return app


class BenchWSGI(BillboxWSGI):
    """Billbox's gunicorn application, configured exactly as ``billbox web``, plus the no-op."""

    def load(self) -> Any:
        return add_noop_route(super().load())


def main() -> None:
    settings = load_settings()  # as `billbox web` loads them
    configure_logging(settings.log_level, settings.log_format)
    BenchWSGI(settings).run()


if __name__ == "__main__":
    main()
