"""``billbox sync``: backfill the ledger from a gateway's lists, page by page, resumably.

Webhooks keep the ledger current from the moment they are configured; a
sync brings in what happened before (or while webhooks were down). Each
page is applied through :func:`billbox.webhooks.apply_objects` — the same
code webhooks use, so the ledger's "never backwards" rule holds for both —
and committed *in the same transaction* as the cursor that points past it
(``GatewayAccount.sync_cursor``). A sync that crashes or is interrupted
therefore resumes with the first page it did not commit, and re-applying a
page is harmless (upserts by gateway id).

Kinds are listed in dependency order: customers, subscriptions, invoices,
payments, refunds. That differs from :class:`ObjectKind`'s declaration
order on purpose: an invoice links to its subscription only if the
subscription is already stored, and payments link to invoices.

Pass semantics (what the cursor dict holds, all strings):

- ``state``: ``running`` while a pass is under way, ``complete`` once every
  kind has been listed to its end;
- ``since``: the ``--since`` of the pass (ISO 8601) or ``""`` for a full pass;
- one key per kind: ``start`` (not listed yet), ``next:<cursor>`` (the
  page after <cursor> is next) or ``done``;
- ``started_at`` / ``finished_at``.

``since`` given → a fresh pass from that date, whatever was stored. No
``since`` → an unfinished pass is resumed (with its own ``since``);
otherwise a new full pass starts.

Rate limits: :class:`GatewayUnavailable` (429 with ``Retry-After``,
network trouble) waits ``retry_after`` seconds, capped at
``max_wait``, or an exponential back-off when the gateway named no wait,
then the same page is asked for again; after ``max_attempts`` consecutive
failures the sync stops with an error, its cursor intact.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.gateways.base import GatewayLister, GatewayUnavailable, ObjectKind, Page
from billbox.ledger import mark_backfill
from billbox.logs import get_logger
from billbox.models import GatewayAccount, utcnow
from billbox.webhooks import apply_objects

#: The order kinds are listed and applied in (see the module docstring).
SYNC_ORDER: tuple[ObjectKind, ...] = (
    ObjectKind.CUSTOMER,
    ObjectKind.SUBSCRIPTION,
    ObjectKind.INVOICE,
    ObjectKind.PAYMENT,
    ObjectKind.REFUND,
)
RUNNING = "running"
COMPLETE = "complete"
START = "start"
DONE = "done"
NEXT = "next:"

#: Longest single wait for a rate limit, whatever ``Retry-After`` says.
MAX_WAIT = 60.0
MAX_ATTEMPTS = 6

log = get_logger("billbox.sync")

#: ``progress(kind, objects_applied_so_far_for_kind, kind_finished)``, called after each commit.
Progress = Callable[[ObjectKind, int, bool], None]


@dataclass
class SyncReport:
    """What one ``sync_account`` call applied; ``resumed`` when it continued an earlier pass."""

    since: datetime | None
    resumed: bool
    objects: dict[ObjectKind, int] = field(default_factory=dict)
    pages: int = 0
    retries: int = 0

    @property
    def total(self) -> int:
        return sum(self.objects.values())


def _fresh_cursor(since: datetime | None) -> dict[str, str]:
    state = {"state": RUNNING, "since": since.isoformat() if since else "", "finished_at": ""}
    state["started_at"] = utcnow().isoformat()
    for kind in SYNC_ORDER:
        state[kind.value] = START
    return state


def _parse_since(value: str) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def plan_pass(stored: dict[str, str] | None, since: datetime | None) -> tuple[dict[str, str], bool]:
    """The cursor state to run with, and whether it resumes an unfinished pass."""
    if since is None and stored and stored.get("state") == RUNNING:
        resumed = dict(stored)
        for kind in SYNC_ORDER:  # a pass stored by an older version may lack a kind
            resumed.setdefault(kind.value, START)
        return resumed, True
    return _fresh_cursor(since), False


def sync_account(
    factory: sessionmaker[Session],
    account: GatewayAccount,
    adapter: GatewayLister,
    *,
    since: datetime | None,
    progress: Progress | None = None,
    page_size: int = 100,
    max_wait: float = MAX_WAIT,
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] | None = None,
    issue_documents: bool = False,
) -> SyncReport:
    """Run (or resume) one sync pass of ``account`` through ``adapter``; see the module doc.

    ``sleep`` (default :func:`time.sleep`, looked up at call time) is how
    rate-limit waits happen; tests pass a recorder instead.
    """
    wait_for = sleep or time.sleep
    assert account.id is not None
    account_id = account.id
    with factory() as session:
        row = session.get(GatewayAccount, account_id)
        if row is None:
            raise ValueError(f"gateway account {account_id} does not exist")
        state, resumed = plan_pass(row.sync_cursor, since)
        if not resumed:  # a new pass forgets the old one's cursors at once
            row.sync_cursor = dict(state)
            session.add(row)
            session.commit()
    pass_since = _parse_since(state["since"])
    report = SyncReport(since=pass_since, resumed=resumed)
    log.info(
        "sync_started",
        account_id=account_id,
        since=state["since"] or None,
        resumed=resumed,
    )
    for kind in SYNC_ORDER:
        report.objects[kind] = 0
        position = state[kind.value]
        while position != DONE:
            cursor = position[len(NEXT) :] if position.startswith(NEXT) else None
            page, failures = _fetch(
                adapter, kind, cursor, pass_since, page_size, max_wait, max_attempts, wait_for
            )
            report.retries += failures
            position = NEXT + page.next_cursor if page.next_cursor else DONE
            state[kind.value] = position
            if kind == SYNC_ORDER[-1] and position == DONE:
                state["state"] = COMPLETE
                state["finished_at"] = utcnow().isoformat()
            _commit_page(factory, account_id, page, state, issue_documents)
            report.pages += 1
            report.objects[kind] += len(page.objects)
            if progress is not None:
                progress(kind, report.objects[kind], position == DONE)
    log.info(
        "sync_finished",
        account_id=account_id,
        objects=report.total,
        pages=report.pages,
        retries=report.retries,
    )
    return report


def _fetch(
    adapter: GatewayLister,
    kind: ObjectKind,
    cursor: str | None,
    since: datetime | None,
    page_size: int,
    max_wait: float,
    max_attempts: int,
    sleep: Callable[[float], None],
) -> tuple[Page, int]:
    """One page, waiting out rate limits; the number of failed attempts comes back too."""
    failures = 0
    while True:
        try:
            return adapter.list_page(kind, cursor, since=since, limit=page_size), failures
        except GatewayUnavailable as exc:
            failures += 1
            if failures >= max_attempts:
                raise GatewayUnavailable(
                    f"gave up listing {kind.value}s after {failures} attempts ({exc}); "
                    "the pages already applied are kept: run the sync again to resume",
                    retry_after=exc.retry_after,
                ) from exc
            wait = exc.retry_after if exc.retry_after is not None else 2.0 ** (failures - 1)
            wait = min(max(wait, 0.0), max_wait)
            log.warning(
                "sync_rate_limited" if exc.retry_after is not None else "sync_gateway_unavailable",
                kind=kind.value,
                attempt=failures,
                wait_seconds=wait,
                error=str(exc),
            )
            sleep(wait)


def _commit_page(
    factory: sessionmaker[Session],
    account_id: int,
    page: Page,
    state: dict[str, str],
    issue_documents: bool = False,
) -> None:
    """Apply one page and move the cursor past it in one transaction.

    Payments found by a sync are history unless ``issue_documents``: no
    receipt is issued or emailed for them (see :func:`billbox.ledger.mark_backfill`).
    """
    with factory() as session:
        if not issue_documents:
            mark_backfill(session)
        account = session.get(GatewayAccount, account_id)
        assert account is not None
        apply_objects(session, account, list(page.objects))
        account.sync_cursor = dict(state)  # a new dict, so the JSON column is seen as changed
        session.add(account)
        session.commit()
