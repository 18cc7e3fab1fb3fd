"""Typed settings, read once at start from ``BILLBOX_*`` variables and ``.env``.

Nothing in Billbox reads ``os.environ`` on its own: the CLI calls
:func:`load_settings` once and passes the result down. Every validation
failure becomes a :class:`~billbox.errors.SettingsError` naming the one
environment variable the operator has to fix, so ``billbox`` can print a
single line and exit with code 2.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from billbox.errors import SettingsError

BROKER_SCHEMES = ("embedded", "redis", "rediss", "amqp", "amqps", "stub")
RELAY_SCHEMES = ("smtp", "smtps", "smtp+starttls")
IMAP_SCHEMES = ("imap", "imaps")
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:port`` for IPv6) and check the port range."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected host:port, got {value!r}")
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port must be 1-65535, got {port_text!r}")
    return host, int(port_text)


def _check_url(value: str, schemes: tuple[str, ...], what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ValueError(f"unknown {what} scheme {parts.scheme or '(none)'!r}; use {allowed}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"bad port in {what} URL: {exc}") from None
    return value


class Settings(BaseSettings):
    """Every setting Billbox understands; README lists them with defaults."""

    model_config = SettingsConfigDict(
        env_prefix="BILLBOX_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    demo: bool = False
    var_dir: Path = Path("var")
    database_url: str = ""
    web_listen: str = "127.0.0.1:8000"
    web_workers: int = Field(default=2, ge=1, le=64)
    broker_url: str = "embedded"
    secret_key: SecretStr | None = None
    public_url: str = ""
    smtp_listen: str = "127.0.0.1:2525"
    smtp_relay: str | None = None
    smtp_max_message_size: int = Field(default=25 * 1024 * 1024, ge=1024)
    # PEM files; with both set the SMTP server offers STARTTLS.
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None
    reply_domain: str = "reply.billbox.localhost"
    support_addresses: str = ""
    # authserv-ids of our own MTA whose Authentication-Results we believe;
    # empty: only the topmost header (added by the last hop) is read.
    trusted_authserv_ids: str = ""
    imap_url: str = ""
    log_level: str = "INFO"
    log_format: str = "json"
    # Largest single refund per role and currency, minor units:
    # "agent=EUR:50000;USD:50000;finance=EUR:500000". A listed role may refund
    # only in its listed currencies; roles not listed are not limited.
    refund_limits: str = ""
    sweep_interval: float = Field(default=30.0, gt=0)
    job_stale_after: float = Field(default=60.0, gt=0)
    job_lease: float = Field(default=300.0, gt=0)
    # None: 2 on SQLite (one writer at a time; more threads only queue on its lock),
    # 4 on PostgreSQL.
    worker_threads: int | None = Field(default=None, ge=1, le=64)
    # Outbound mail: a private CA for the relay's certificate, and DKIM
    # signing (all three DKIM settings together, or none).
    smtp_relay_ca_file: Path | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_private_key_file: Path | None = None
    # How long a customer's signed billing-page link stays valid.
    portal_link_days: int = Field(default=30, ge=1, le=366)

    stripe_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("STRIPE_API_KEY", "stripe_api_key")
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret"),
    )
    stripe_api_base: str | None = Field(
        default=None, validation_alias=AliasChoices("STRIPE_API_BASE", "stripe_api_base")
    )
    # For the billing page's card form (Stripe.js in the customer's browser).
    stripe_publishable_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STRIPE_PUBLISHABLE_KEY", "stripe_publishable_key"),
    )
    stripe_js_url: str = Field(
        default="https://js.stripe.com/v3/",
        validation_alias=AliasChoices("STRIPE_JS_URL", "stripe_js_url"),
    )
    paypal_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("PAYPAL_CLIENT_ID", "paypal_client_id")
    )
    paypal_client_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("PAYPAL_CLIENT_SECRET", "paypal_client_secret"),
    )
    paypal_webhook_id: str | None = Field(
        default=None, validation_alias=AliasChoices("PAYPAL_WEBHOOK_ID", "paypal_webhook_id")
    )
    paypal_api_base: str | None = Field(
        default=None, validation_alias=AliasChoices("PAYPAL_API_BASE", "paypal_api_base")
    )

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value:
            _check_url(value, DATABASE_SCHEMES, "database")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if value in ("embedded", "stub"):
            return value
        scheme = urlsplit(value).scheme
        if scheme not in BROKER_SCHEMES[1:5]:
            raise ValueError(
                f"unknown broker scheme {scheme or '(none)'!r}; use embedded, redis://, "
                "rediss://, amqp:// or amqps://"
            )
        return _check_url(value, BROKER_SCHEMES, "broker")

    @field_validator("smtp_relay")
    @classmethod
    def _smtp_relay(cls, value: str | None) -> str | None:
        if value:
            parts = urlsplit(_check_url(value, RELAY_SCHEMES, "relay"))
            if not parts.hostname:
                raise ValueError("relay URL has no host")
        return value or None

    @field_validator("web_listen", "smtp_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("public_url", "stripe_api_base", "paypal_api_base", "stripe_js_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("imap_url")
    @classmethod
    def _imap_urls(cls, value: str) -> str:
        for url in _split_list(value):
            parts = urlsplit(_check_url(url, IMAP_SCHEMES, "IMAP"))
            if not parts.hostname or not parts.username:
                raise ValueError(f"IMAP URL needs user and host: {parts.scheme}://user:pass@host/")
        return value

    @field_validator("support_addresses")
    @classmethod
    def _support_addresses(cls, value: str) -> str:
        for address in _split_list(value):
            try:
                validate_email(address, check_deliverability=False)
            except EmailNotValidError as exc:
                raise ValueError(f"{address!r} is not an email address: {exc}") from None
        return value

    @field_validator("reply_domain")
    @classmethod
    def _reply_domain(cls, value: str) -> str:
        value = value.strip().lower()
        if not value or "@" in value or " " in value:
            raise ValueError(f"expected a domain name, got {value!r}")
        return value

    @field_validator("smtp_tls_cert", "smtp_tls_key")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.smtp_tls_cert is None) != (self.smtp_tls_key is None):
            missing = "smtp_tls_key" if self.smtp_tls_key is None else "smtp_tls_cert"
            raise ValueError(
                f"{missing}: set BILLBOX_SMTP_TLS_CERT and BILLBOX_SMTP_TLS_KEY together"
            )
        return self

    @field_validator("smtp_relay_ca_file")
    @classmethod
    def _relay_ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("dkim_selector", "dkim_domain")
    @classmethod
    def _dkim_name(cls, value: str | None) -> str | None:
        value = (value or "").strip().lower()
        if value and not re.fullmatch(r"[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?", value):
            raise ValueError(f"expected a DNS name, got {value!r}")
        return value or None

    @field_validator("dkim_private_key_file")
    @classmethod
    def _dkim_key(cls, value: Path | None) -> Path | None:
        """Read and parse the key now, so a bad key stops startup, not every send."""
        if value is None:
            return None
        try:
            data = value.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
        from dkim.crypto import UnparsableKeyError, parse_pem_private_key

        try:
            parse_pem_private_key(data)
        except (UnparsableKeyError, ValueError):
            raise ValueError(f"{value} is not a PEM RSA private key") from None
        return value

    @model_validator(mode="after")
    def _dkim_together(self) -> Settings:
        names = ("dkim_selector", "dkim_domain", "dkim_private_key_file")
        given = [name for name in names if getattr(self, name) is not None]
        if given and len(given) != len(names):
            missing = next(name for name in names if name not in given)
            raise ValueError(
                f"{missing}: set BILLBOX_DKIM_SELECTOR, BILLBOX_DKIM_DOMAIN and "
                "BILLBOX_DKIM_PRIVATE_KEY_FILE together"
            )
        return self

    @field_validator("refund_limits")
    @classmethod
    def _refund_limits(cls, value: str) -> str:
        parse_refund_limits(value)
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("json", "console"):
            raise ValueError("use 'json' or 'console'")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        value = value.upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return value

    # Derived values -----------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ``var_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'billbox.db').resolve()}"

    @property
    def effective_worker_threads(self) -> int:
        """``BILLBOX_WORKER_THREADS``, or what suits the database.

        Measured with ``bench/reply_to_ticket.py`` (50 replies/s, SQLite): 4
        threads gave a 1.2 s p99 from 250 to ticket, 2 threads 0.93 s, the
        same throughput — the extra threads only waited on SQLite's write
        lock (its busy handler sleeps between tries).
        """
        if self.worker_threads is not None:
            return self.worker_threads
        return 2 if self.effective_database_url.startswith("sqlite") else 4

    @property
    def effective_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host, port = parse_listen(self.web_listen)
        return f"http://{host}:{port}"

    @property
    def support_address_list(self) -> list[str]:
        return [a.lower() for a in _split_list(self.support_addresses)]

    @property
    def trusted_authserv_id_set(self) -> frozenset[str]:
        return frozenset(i.lower() for i in _split_list(self.trusted_authserv_ids))

    @property
    def imap_url_list(self) -> list[str]:
        return _split_list(self.imap_url)

    @property
    def web_address(self) -> tuple[str, int]:
        return parse_listen(self.web_listen)

    @property
    def smtp_address(self) -> tuple[str, int]:
        return parse_listen(self.smtp_listen)

    @property
    def refund_limit_table(self) -> dict[str, dict[str, int]]:
        """``BILLBOX_REFUND_LIMITS`` parsed: role value -> currency -> largest refund."""
        return parse_refund_limits(self.refund_limits)

    def secret(self) -> str:
        """The secret key; only valid after :func:`load_settings` checked it."""
        assert self.secret_key is not None
        return self.secret_key.get_secret_value()


_ROLES = ("admin", "agent", "finance")


def parse_refund_limits(value: str) -> dict[str, dict[str, int]]:
    """Parse ``agent=EUR:50000;USD:50000;finance=EUR:500000``.

    ``role=`` starts a role's list; ``CUR:amount`` items (separated by ``;``,
    ``,`` or newlines) belong to the role named last. Amounts are whole
    minor units (``EUR:50000`` is 500.00 EUR). Raises ValueError naming the
    bad part, so the operator sees which entry to fix.
    """
    table: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    role = ""
    for token in value.replace("\n", ";").replace(",", ";").split(";"):
        token = token.strip()
        if not token:
            continue
        if "=" in token:
            role, _, token = token.partition("=")
            role = role.strip().lower()
            if role not in _ROLES:
                raise ValueError(f"unknown role {role!r}; use {', '.join(_ROLES)}")
            if role in table:
                raise ValueError(f"role {role!r} is listed twice")
            current = table[role] = {}
            token = token.strip()
        if current is None:
            raise ValueError(f"{token!r} names no role; write e.g. agent=EUR:50000")
        currency, sep, amount = token.partition(":")
        currency, amount = currency.strip().upper(), amount.strip()
        if not sep or len(currency) != 3 or not currency.isalpha():
            raise ValueError(f"{token!r} for {role}: expected CUR:amount, e.g. EUR:50000")
        if not amount.isdigit():
            raise ValueError(
                f"{token!r} for {role}: the amount must be whole minor units (cents), "
                "e.g. EUR:50000 for 500.00"
            )
        if currency in current:
            raise ValueError(f"{currency} is listed twice for {role}")
        current[currency] = int(amount)
    for name, limits in table.items():
        if not limits:
            raise ValueError(f"{name}= lists no currency; write e.g. {name}=EUR:50000")
    return table


def _split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


# Which environment variable each field is read from, for error messages.
_UNPREFIXED = {
    "stripe_api_key",
    "stripe_webhook_secret",
    "stripe_api_base",
    "stripe_publishable_key",
    "stripe_js_url",
    "paypal_client_id",
    "paypal_client_secret",
    "paypal_webhook_id",
    "paypal_api_base",
}


def variable_name(field: str) -> str:
    """Return the environment variable an operator sets for ``field``."""
    if field in _UNPREFIXED:
        return field.upper()
    return f"BILLBOX_{field.upper()}"


def load_settings(*, demo: bool | None = None, **overrides: Any) -> Settings:
    """Read and validate settings once; raise :class:`SettingsError` on the first problem.

    ``demo`` forces demo mode on (``billbox demo``/``make demo``), where a
    missing secret key is generated and kept under ``var/`` instead of
    stopping the program.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "settings"
        field = _FIELD_BY_ALIAS.get(field, field)
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"] and ": " in message:  # a model-level check names its field first
            field, message = message.split(": ", 1)
        raise SettingsError(variable_name(field), message) from None
    if demo:
        settings.demo = True
    if settings.secret_key is None or not settings.secret_key.get_secret_value():
        if not settings.demo:
            raise SettingsError(
                "BILLBOX_SECRET_KEY",
                "not set; generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))' (or set BILLBOX_DEMO=1 to try Billbox)",
            )
        settings.secret_key = SecretStr(_demo_secret(settings.var_dir))
    elif len(settings.secret_key.get_secret_value()) < 16:
        raise SettingsError("BILLBOX_SECRET_KEY", "too short; use at least 16 characters")
    return settings


_FIELD_BY_ALIAS = {name.upper(): name for name in _UNPREFIXED}


def _demo_secret(var_dir: Path) -> str:
    """Generate (once) and return the secret key demo mode keeps in ``var/``."""
    import secrets

    var_dir.mkdir(parents=True, exist_ok=True)
    path = var_dir / "demo-secret-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def check_port_free(variable: str, listen: str) -> None:
    """Stop with a settings error when ``listen`` cannot be bound (port in use)."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SettingsError(variable, f"cannot listen on {listen}: {exc.strerror}") from None
