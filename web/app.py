"""``create_app`` in the flaskr style: settings and services passed in, nothing global."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.context import new_correlation_id
from billbox.db import make_engine, session_factory
from billbox.settings import Settings
from workers.app import WorkerApp

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@dataclass
class WebServices:
    """What views need, attached to the app as ``app.extensions['billbox']``."""

    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    worker: WorkerApp | None


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    worker: WorkerApp | None = None,
    build_worker: bool = True,
) -> Flask:
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.update(
        SECRET_KEY=settings.secret(),
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        SESSION_COOKIE_NAME="billbox_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cookies_secure(settings),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    engine = engine or make_engine(settings.effective_database_url)
    factory = session_factory(engine)
    if worker is None and build_worker:
        from workers.app import build
        from workers.registry import default_handlers

        worker = build(settings, factory, default_handlers(settings))
    app.extensions["billbox"] = WebServices(settings, engine, factory, worker)

    @app.before_request
    def bind_request_id() -> None:
        import structlog

        g.request_id = request.headers.get("X-Request-ID", "")[:64] or new_correlation_id()
        structlog.contextvars.bind_contextvars(correlation_id=g.request_id)

    @app.after_request
    def security_headers(response: Any) -> Any:
        import structlog

        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if "frame-ancestors" not in response.headers.get("Content-Security-Policy", ""):
            response.headers.setdefault("X-Frame-Options", "DENY")  # no framing unless allowed
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; script-src 'self'; object-src 'none'"
        )
        response.headers["X-Request-ID"] = g.get("request_id", "")
        structlog.contextvars.clear_contextvars()
        return response

    from web.health import bp as health_bp

    app.register_blueprint(health_bp)
    from web.webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)
    _install_staff_pages(app)
    return app


def cookies_secure(settings: Settings) -> bool:
    """Secure cookies unless the site is explicitly served over plain http (demo, loopback)."""
    if settings.public_url:
        return settings.public_url.startswith("https://")
    return not settings.demo


def _install_staff_pages(app: Flask) -> None:
    from web import formatting
    from web.admin import bp as admin_bp
    from web.auth import bp as auth_bp
    from web.security import LoginThrottle, csrf_token

    formatting.install(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
    from billbox.actions import new_idempotency_key

    app.jinja_env.globals["new_key"] = new_idempotency_key
    app.extensions["billbox_login_throttle"] = LoginThrottle()
    app.register_blueprint(auth_bp)
    app.register_blueprint(admin_bp)
    from web.api import bp as api_bp

    app.register_blueprint(api_bp)
    from billbox.portal_links import PortalLinks
    from web.portal import bp as portal_bp

    settings: Settings = app.extensions["billbox"].settings
    app.extensions["billbox_portal_links"] = PortalLinks(
        settings.secret(), settings.portal_link_days
    )
    # "email me a link": 3 per address and 10 per client an hour, per web process
    app.extensions["billbox_link_throttle"] = LoginThrottle(
        per_address=3, per_client=10, window=3600.0
    )
    app.register_blueprint(portal_bp)
    from web.sidebar import bp as sidebar_bp
    from web.sidebar_actions import bp as sidebar_actions_bp

    app.register_blueprint(sidebar_bp)
    app.register_blueprint(sidebar_actions_bp)
    from web.helpdesk_hooks import bp as helpdesk_hooks_bp

    app.register_blueprint(helpdesk_hooks_bp)


def services() -> WebServices:
    from flask import current_app

    return current_app.extensions["billbox"]
