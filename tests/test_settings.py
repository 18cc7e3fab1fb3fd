"""Settings: every bad value stops the program with one line naming its variable."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from billbox.errors import SettingsError
from billbox.settings import check_port_free, load_settings

SECRET = "a-secret-key-long-enough"


def load(monkeypatch: pytest.MonkeyPatch, **env: str):
    for key in list(__import__("os").environ):
        if key.startswith("BILLBOX_") or key.startswith(("STRIPE_", "PAYPAL_")):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings(_env_file=None)


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("BILLBOX_BROKER_URL", "kafka://x", "unknown broker scheme 'kafka'"),
        ("BILLBOX_DATABASE_URL", "mysql://db/x", "unknown database scheme 'mysql'"),
        ("BILLBOX_WEB_LISTEN", "localhost", "expected host:port"),
        ("BILLBOX_SMTP_LISTEN", "127.0.0.1:99999", "port must be 1-65535"),
        ("BILLBOX_SMTP_RELAY", "http://relay:25", "unknown relay scheme 'http'"),
        ("BILLBOX_IMAP_URL", "imap://host/INBOX", "needs user and host"),
        ("BILLBOX_SUPPORT_ADDRESSES", "help@example.com, not-an-address", "not-an-address"),
        ("BILLBOX_PUBLIC_URL", "ftp://billing.example.com", "expected an http"),
        ("BILLBOX_WORKER_THREADS", "many", "valid integer"),
        ("STRIPE_API_BASE", "localhost:12111", "expected an http"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch, variable, value, fragment):
    """Each malformed setting raises SettingsError naming exactly that variable."""
    with pytest.raises(SettingsError) as info:
        load(monkeypatch, BILLBOX_SECRET_KEY=SECRET, **{variable: value})
    assert info.value.variable == variable
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{variable}: ")


def test_a_missing_secret_key_stops_outside_demo_mode(monkeypatch):
    """Without BILLBOX_SECRET_KEY and not in demo mode, startup is refused."""
    with pytest.raises(SettingsError) as info:
        load(monkeypatch)
    assert info.value.variable == "BILLBOX_SECRET_KEY"


def test_demo_mode_generates_and_keeps_a_secret_key(monkeypatch, tmp_path):
    """Demo mode creates one secret under var/ and reuses it on the next start."""
    first = load(monkeypatch, BILLBOX_DEMO="1", BILLBOX_VAR_DIR=str(tmp_path))
    second = load(monkeypatch, BILLBOX_DEMO="1", BILLBOX_VAR_DIR=str(tmp_path))
    assert first.secret() == second.secret()
    assert len(first.secret()) >= 32
    assert (tmp_path / "demo-secret-key").stat().st_mode & 0o077 == 0


def test_defaults_are_the_embedded_ones(monkeypatch, tmp_path):
    """With nothing set, Billbox uses SQLite under var/, the embedded broker and loopback."""
    settings = load(monkeypatch, BILLBOX_SECRET_KEY=SECRET, BILLBOX_VAR_DIR=str(tmp_path))
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve()}/billbox.db"
    assert settings.broker_url == "embedded"
    assert settings.web_address == ("127.0.0.1", 8000)
    assert settings.smtp_address == ("127.0.0.1", 2525)
    assert settings.effective_public_url == "http://127.0.0.1:8000"
    assert settings.effective_worker_threads == 2  # SQLite: one writer at a time


def test_worker_threads_default_by_database_and_can_be_set(monkeypatch):
    pg = "postgresql://postgres@127.0.0.1:5432/billbox"
    settings = load(monkeypatch, BILLBOX_SECRET_KEY=SECRET, BILLBOX_DATABASE_URL=pg)
    assert settings.effective_worker_threads == 4
    settings = load(monkeypatch, BILLBOX_SECRET_KEY=SECRET, BILLBOX_WORKER_THREADS="8")
    assert settings.effective_worker_threads == 8


def test_gateway_keys_are_read_without_the_prefix(monkeypatch):
    """STRIPE_* and PAYPAL_* are read under their vendor names, as documented."""
    settings = load(
        monkeypatch,
        BILLBOX_SECRET_KEY=SECRET,
        STRIPE_API_KEY="sk_test_123",
        STRIPE_API_BASE="http://127.0.0.1:8420",
        PAYPAL_CLIENT_ID="client",
    )
    assert settings.stripe_api_key is not None
    assert settings.stripe_api_key.get_secret_value() == "sk_test_123"
    assert settings.stripe_api_base == "http://127.0.0.1:8420"
    assert settings.paypal_client_id == "client"


def test_a_dotenv_file_is_read(monkeypatch, tmp_path):
    """Settings may come from a .env file in the working directory."""
    (tmp_path / ".env").write_text(
        f"BILLBOX_SECRET_KEY={SECRET}\nBILLBOX_REPLY_DOMAIN=R.Example.COM\n"
    )
    monkeypatch.chdir(tmp_path)
    for key in list(__import__("os").environ):
        if key.startswith("BILLBOX_"):
            monkeypatch.delenv(key)
    settings = load_settings()
    assert settings.reply_domain == "r.example.com"


def test_a_port_in_use_is_a_settings_error():
    """A listen address that cannot be bound names the variable that chose it."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SettingsError) as info:
            check_port_free("BILLBOX_WEB_LISTEN", f"127.0.0.1:{port}")
    assert info.value.variable == "BILLBOX_WEB_LISTEN"
    assert "cannot listen" in str(info.value)


def test_the_cli_exits_2_with_one_line(tmp_path):
    """`billbox status` with a bad setting prints one line naming it and exits 2."""
    env = {
        "PATH": "/usr/bin:/bin",
        "BILLBOX_SECRET_KEY": SECRET,
        "BILLBOX_BROKER_URL": "nats://x",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "billbox", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("billbox: BILLBOX_BROKER_URL: ")
    assert Path(tmp_path).exists()


def test_up_refuses_a_web_port_in_use_with_exit_2(tmp_path, database_url):
    """`billbox up` names BILLBOX_WEB_LISTEN when its port is taken, before starting anything."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {
            "PATH": "/usr/bin:/bin",
            "BILLBOX_SECRET_KEY": SECRET,
            "HOME": str(tmp_path),
            "BILLBOX_DATABASE_URL": database_url,
            "BILLBOX_WEB_LISTEN": f"127.0.0.1:{port}",
        }
        result = subprocess.run(
            [sys.executable, "-m", "billbox", "up"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.startswith("billbox: BILLBOX_WEB_LISTEN: cannot listen on")
    assert not (tmp_path / "var" / "broker").exists()


def test_tls_needs_both_certificate_and_key(monkeypatch, tmp_path):
    """A certificate without its key names the missing variable."""
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError) as info:
        load(monkeypatch, BILLBOX_SECRET_KEY=SECRET, BILLBOX_SMTP_TLS_CERT=str(cert))
    assert info.value.variable == "BILLBOX_SMTP_TLS_KEY"
    with pytest.raises(SettingsError) as info:
        load(monkeypatch, BILLBOX_SECRET_KEY=SECRET, BILLBOX_SMTP_TLS_CERT=str(tmp_path / "no"))
    assert info.value.variable == "BILLBOX_SMTP_TLS_CERT" and "no such file" in str(info.value)
