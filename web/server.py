"""Serve the app with gunicorn (never Flask's development server).

Each gunicorn worker builds its own app (no ``preload_app``) so database
pools and broker connections are never shared across a fork. A short
graceful timeout keeps ``billbox up`` inside its 10-second stop budget.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from billbox.settings import Settings

#: Request threads per worker process. Why 16 and not 4: webhook deliveries
#: that arrive together share one commit (:mod:`billbox.webhook_store`), and
#: a group can hold only as many deliveries as there are threads waiting.
#: With 4, groups averaged under 2 and the per-commit cost (a round trip,
#: an fsync, a broker message) was paid almost per event; with 16,
#: ``bench/webhooks.py`` measured about 20 % less server CPU per event and
#: 1.4 to 1.7 times the events/s, the no-op endpoint's CPU per request unchanged.
#: The threads mostly wait (database, broker, commit), so the GIL is not
#: the limit; the database pool (5 + 10 overflow) is shared by them.
WEB_THREADS = 16


class StructuredGunicornLogger(Logger):
    """Send gunicorn's error and access logs through our JSON handler (one line per event)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


class BillboxWSGI(BaseApplication):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        host, port = self.settings.web_address
        bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        options: dict[str, Any] = {
            "bind": bind,
            "workers": self.settings.web_workers,
            "worker_class": "gthread",
            "threads": WEB_THREADS,
            "graceful_timeout": 4,
            "timeout": 60,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": self.settings.log_level.lower(),
            "proc_name": "billbox-web",
            "logger_class": StructuredGunicornLogger,
            "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
            "control_socket_disable": True,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from web.app import create_app

        return create_app(self.settings)


def serve(settings: Settings) -> None:
    BillboxWSGI(settings).run()
