"""The IMAP poller against a real Dovecot: nothing lost, nothing stored twice.

One Dovecot runs per module (``tests/dovecot.py``); each test gets its own
account, so messages left on the server by one test never meet another's
empty database. Messages are real ``.eml`` files from the sibling
``shared/corpora`` folder, sent with CRLF line ends as IMAP carries them
(Dovecot stores LF and serves CRLF, so that is the form that round-trips).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select
from structlog.testing import capture_logs

from billbox.models import ImapCursor, InboundMessage, InboundSource
from mailbridge.imap import (
    AfterAction,
    ImapAuthError,
    ImapPoller,
    MailboxConfig,
    PollerOptions,
    parse_imap_url,
    run_pollers,
)
from mailbridge.inbound_store import store_inbound
from tests.dovecot import DOVECOT, DovecotServer

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
FLANKER = CORPORA / "bounces_autoreplies" / "flanker"
FAST = PollerOptions(command_timeout=5, backoff_initial=0.05, backoff_max=0.5)


def _missing(reason: str) -> None:
    """Skip on a developer machine; in CI (env CI set) a missing dependency fails."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    if not DOVECOT.exists():
        _missing(f"{DOVECOT} missing: run scripts/ensure-test-servers.sh")
    # Passwords need URL-encoding in the poller's URL and must survive decoding.
    server = DovecotServer({f"user{i}@example.test": f"pw {i} /%@" for i in range(1, 31)})
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def account(dovecot: DovecotServer) -> str:
    """A fresh, empty mailbox on the module's Dovecot."""
    return dovecot.fresh_user()


def eml(name: str) -> bytes:
    path = FLANKER / name
    if not path.exists():
        _missing(f"test corpus missing: {path}")
    return re.sub(rb"\r?\n", b"\r\n", path.read_bytes())


def config(dovecot: DovecotServer, user: str, **kwargs: str) -> MailboxConfig:
    return parse_imap_url(dovecot.url(user, **kwargs))


def rows(factory) -> list[InboundMessage]:
    with factory() as session:
        return list(session.exec(select(InboundMessage).order_by(col(InboundMessage.id))).all())


async def poll(cfg: MailboxConfig, factory, options: PollerOptions = FAST) -> int:
    poller = ImapPoller(cfg, factory, options)
    try:
        return await poller.poll_once()
    finally:
        await poller.close()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> float:
    """Wait until ``check()`` (run in a thread: it may query the DB) is true; return the wait."""
    start = time.monotonic()
    while not await asyncio.to_thread(check):
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def test_an_imap_url_gives_host_port_decoded_credentials_folder_and_action():
    """Defaults are port 143/993, INBOX and \\Seen; user and password are URL-decoded."""
    cfg = parse_imap_url("imap://bob%40example.com:p%40ss%2Fw%25rd@Mail.Example.com/")
    assert (cfg.scheme, cfg.host, cfg.port, cfg.folder) == (
        "imap",
        "mail.example.com",
        143,
        "INBOX",
    )
    assert (cfg.user, cfg.password, cfg.after) == ("bob@example.com", "p@ss/w%rd", AfterAction.SEEN)
    assert cfg.mailbox == "bob@example.com@mail.example.com/INBOX"
    assert "p@ss" not in repr(cfg)
    cfg = parse_imap_url("imaps://u:p@h:1993/Billing%20In?after=move:Done%20Billing")
    assert (cfg.port, cfg.use_ssl, cfg.folder) == (1993, True, "Billing In")
    assert (cfg.after, cfg.move_to) == (AfterAction.MOVE, "Done Billing")
    assert parse_imap_url("imaps://u:p@h?after=delete").port == 993
    assert parse_imap_url("imaps://u:p@h?after=delete").after is AfterAction.DELETE


@pytest.mark.parametrize(
    "url",
    [
        "pop3://u:secret@h/",
        "imap://h/",
        "imap://u:secret@h/?after=archive",
        "imap://u:secret@h/?after=move:",
        "imap://u:secret@h/?folder=x",
    ],
)
def test_a_bad_imap_url_is_refused_without_echoing_the_password(url):
    """Each malformed URL raises ValueError whose message does not contain the password."""
    with pytest.raises(ValueError) as info:
        parse_imap_url(url)
    assert "secret" not in str(info.value)


def test_appended_messages_are_stored_once_each_byte_for_byte_and_flagged_seen(
    dovecot, account, factory
):
    """Each appended message becomes one row holding exactly the appended bytes, then \\Seen."""
    messages = [eml("text-only.eml"), eml("attached-pdf.eml")]
    uids = [dovecot.append(account, raw) for raw in messages]
    cfg = config(dovecot, account)

    assert asyncio.run(poll(cfg, factory)) == 2

    stored = rows(factory)
    assert [r.raw for r in stored] == messages
    assert [r.imap_uid for r in stored] == uids
    assert {r.mailbox for r in stored} == {cfg.mailbox}
    assert {r.imap_uidvalidity for r in stored} == {dovecot.uidvalidity(account)}
    assert {r.source for r in stored} == {InboundSource.IMAP}
    assert all("\\Seen" in flags for flags in dovecot.flags(account).values())
    with factory() as session:
        cursor = session.exec(select(ImapCursor)).one()
    assert (cursor.mailbox, cursor.last_uid) == (cfg.mailbox, max(uids))


def test_polling_twice_stores_nothing_new(dovecot, account, factory):
    """A second pass, on the same connection or after a restart, stores no second copy."""
    dovecot.append(account, eml("text-only.eml"))
    dovecot.append(account, eml("multipart.eml"))
    cfg = config(dovecot, account)

    async def scenario() -> list[int]:
        poller = ImapPoller(cfg, factory, FAST)
        try:
            counts = [await poller.poll_once(), await poller.poll_once()]
        finally:
            await poller.close()
        return [*counts, await poll(cfg, factory)]

    assert asyncio.run(scenario()) == [2, 0, 0]
    assert len(rows(factory)) == 2


def test_a_message_stored_just_before_a_crash_is_not_stored_again(dovecot, account, factory):
    """A row committed before the cursor moved (a crash) is recognised by its UID, then flagged."""
    raw = eml("text-only.eml")
    uid = dovecot.append(account, raw)
    cfg = config(dovecot, account)
    store_inbound(
        factory,
        raw,
        source=InboundSource.IMAP,
        envelope_from="",
        envelope_to=[],
        mailbox=cfg.mailbox,
        imap_uidvalidity=dovecot.uidvalidity(account),
        imap_uid=uid,
    )

    assert asyncio.run(poll(cfg, factory)) == 0

    assert len(rows(factory)) == 1
    assert "\\Seen" in dovecot.flags(account)[uid]


def test_a_new_uidvalidity_does_not_duplicate_stored_messages_but_stores_a_new_one(
    dovecot, account, factory
):
    """After the server renumbers the folder, old messages are matched by content, not stored."""
    old = [eml("text-only.eml"), eml("attached-pdf.eml")]
    for raw in old:
        dovecot.append(account, raw)
    cfg = config(dovecot, account)
    assert asyncio.run(poll(cfg, factory)) == 2
    before = dovecot.uidvalidity(account)

    dovecot.reset_uidvalidity(account)
    after = dovecot.uidvalidity(account)
    assert after != before
    new = eml("iphone.eml")
    dovecot.append(account, new)

    assert asyncio.run(poll(cfg, factory)) == 1

    stored = rows(factory)
    assert [r.raw for r in stored] == [*old, new]
    assert stored[-1].imap_uidvalidity == after
    assert asyncio.run(poll(cfg, factory)) == 0


def test_a_wrong_password_stops_that_mailbox_while_another_is_still_polled(
    dovecot, account, factory
):
    """The bad mailbox ends with ImapAuthError, logged by name without the password."""
    bad = parse_imap_url(dovecot.url(dovecot.fresh_user(), password="wrong-password"))
    good = config(dovecot, account)
    dovecot.append(account, eml("text-only.eml"))

    async def scenario() -> dict[str, BaseException | None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_pollers([bad, good], factory, stop, FAST))
        await eventually(lambda: len(rows(factory)) == 1)
        await eventually(lambda: any(e["event"] == "imap_login_failed" for e in logs))
        await asyncio.to_thread(dovecot.append, account, eml("multipart.eml"))
        await eventually(lambda: len(rows(factory)) == 2)
        stop.set()
        return await asyncio.wait_for(task, 10)

    with capture_logs() as logs:
        outcome = asyncio.run(scenario())

    assert isinstance(outcome[bad.mailbox], ImapAuthError)
    assert outcome[good.mailbox] is None
    failures = [e for e in logs if e["event"] == "imap_login_failed"]
    assert len(failures) == 1  # not retried
    assert failures[0]["mailbox"] == bad.mailbox
    assert bad.mailbox in failures[0]["error"]
    assert "wrong-password" not in repr(logs)
    assert {r.mailbox for r in rows(factory)} == {good.mailbox}


def test_move_processed_moves_stored_messages_out_of_the_inbox(dovecot, account, factory):
    """With ?after=move:Processed the folder is created on demand and receives the messages."""
    messages = [eml("text-only.eml"), eml("attached-pdf.eml")]
    for raw in messages:
        dovecot.append(account, raw)
    cfg = config(dovecot, account, query="after=move:Processed")

    assert asyncio.run(poll(cfg, factory)) == 2

    assert [r.raw for r in rows(factory)] == messages
    assert dovecot.bodies(account) == []
    assert dovecot.bodies(account, "Processed") == messages


def test_delete_expunges_stored_messages(dovecot, account, factory):
    """With ?after=delete the stored messages are gone from the folder."""
    dovecot.append(account, eml("text-only.eml"))
    cfg = config(dovecot, account, query="after=delete")

    assert asyncio.run(poll(cfg, factory)) == 1

    assert len(rows(factory)) == 1
    assert dovecot.bodies(account) == []


def test_a_message_arriving_during_idle_is_stored_within_seconds(dovecot, account, factory):
    """IDLE wakes the poller: with a 10-minute poll fallback the message still lands in ~1 s."""
    cfg = config(dovecot, account)
    poller = ImapPoller(cfg, factory, PollerOptions(idle_timeout=60, poll_interval=600))

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await asyncio.wait_for(poller.idling.wait(), 5)
        await asyncio.to_thread(dovecot.append, account, eml("text-only.eml"))
        took = await eventually(lambda: len(rows(factory)) == 1)
        stop.set()
        await asyncio.wait_for(task, 5)
        return took

    assert asyncio.run(scenario()) < 3
    assert "\\Seen" in next(iter(dovecot.flags(account).values()))


def test_without_idle_the_poller_polls_every_interval(dovecot, account, factory):
    """With use_idle=False a message appended later is found by the next timed poll."""
    cfg = config(dovecot, account)
    options = PollerOptions(use_idle=False, poll_interval=0.2, command_timeout=5)
    poller = ImapPoller(cfg, factory, options)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await asyncio.sleep(0.3)
        assert not poller.idling.is_set()
        await asyncio.to_thread(dovecot.append, account, eml("text-only.eml"))
        await eventually(lambda: len(rows(factory)) == 1)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


def test_a_lost_connection_is_re_established_and_polling_resumes(dovecot, account, factory):
    """When the server goes away and comes back, the poller reconnects and stores new mail."""
    cfg = config(dovecot, account)
    poller = ImapPoller(cfg, factory, FAST)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(poller.run(stop))
        await asyncio.wait_for(poller.idling.wait(), 5)
        await asyncio.to_thread(dovecot.stop)
        await asyncio.sleep(0.3)  # a few failed reconnects
        await asyncio.to_thread(dovecot.start)
        await asyncio.to_thread(dovecot.append, account, eml("text-only.eml"))
        await eventually(lambda: len(rows(factory)) == 1)
        stop.set()
        await asyncio.wait_for(task, 5)

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert any(e["event"] == "imap_connection_error" for e in logs)
    assert len(rows(factory)) == 1
