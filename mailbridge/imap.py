"""IMAP poller: copy new mail from IMAP mailboxes into ``inbound_message`` rows.

The one promise is the SMTP server's: a message is never lost and never
stored twice. Per message, in this order:

1. ``UID FETCH uid (UID BODY.PEEK[])``: PEEK, as ``RFC822`` would set
   ``\\Seen`` on the server before anything is stored.
2. :func:`~mailbridge.inbound_store.store_inbound` commits the raw bytes and
   the job. A crash before this leaves the message on the server for next time.
3. The ``imap_cursor`` row advances (its own commit). After a crash between
   2 and 3 the message is fetched again; the unique constraint on (mailbox,
   uidvalidity, uid) refuses a second row, which we count as "already stored".
4. The after-action (``\\Seen``, move, delete), after the cursor so that an
   action the server keeps refusing cannot make us re-fetch forever; a crash
   between 3 and 4 leaves one stored message unflagged, never lost or doubled.

UIDVALIDITY: when the server's value differs from the cursor's, every UID we
stored is meaningless, so the cursor restarts at 0 and the whole folder is
read again. The unique constraint cannot help across generations, so before
storing we also look for a row of this mailbox from an *older* generation
with the same sha256 (the same bytes, which is what a server rebuild serves)
or the same Message-ID (filled in once the pipeline parsed the row). Rows of
the current generation are not compared: two identical deliveries that the
server holds as two messages are stored as two, as the SMTP server would.

Waiting: IDLE when the server offers it (re-issued every ``idle_timeout``
seconds, below the 29 minutes RFC 2177 allows), otherwise a poll every
``poll_interval`` seconds. Connection errors reconnect with capped
exponential backoff; a refused login raises :class:`ImapAuthError`, which
stops that mailbox only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import ssl
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import parseaddr
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import aioimaplib
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col, select

from billbox.context import bound
from billbox.db import transaction
from billbox.errors import BillboxError
from billbox.logs import get_logger
from billbox.models import ImapCursor, InboundMessage, InboundSource
from billbox.models.base import utcnow
from mailbridge.inbound_store import store_inbound

log = get_logger("mailbridge.imap")

DEFAULT_PORTS = {"imap": 143, "imaps": 993}
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UID = re.compile(rb"\bUID (\d+)")


class ImapError(BillboxError):
    """The IMAP server refused a command or answered something we cannot use."""


class ImapAuthError(ImapError):
    """The server refused our login; retrying with the same password cannot help."""


class AfterAction(StrEnum):
    """What happens to a message on the server once it is stored."""

    SEEN = "seen"
    MOVE = "move"
    DELETE = "delete"


@dataclass(frozen=True)
class MailboxConfig:
    """One IMAP folder to poll, parsed from a ``BILLBOX_IMAP_URL`` entry."""

    scheme: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    after: AfterAction = AfterAction.SEEN
    move_to: str | None = None

    @property
    def mailbox(self) -> str:
        """The key stored in DB rows: ``user@host/folder``, never the password."""
        return f"{self.user}@{self.host}/{self.folder}"

    @property
    def use_ssl(self) -> bool:
        return self.scheme == "imaps"


def parse_imap_url(url: str) -> MailboxConfig:
    """Parse ``imap[s]://user:pass@host[:port][/folder][?after=seen|move:F|delete]``.

    User, password and folder are URL-decoded. Errors never quote the URL,
    since it holds the password.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"IMAP URL scheme must be imap or imaps, not {scheme or '(none)'!r}")
    if not parts.hostname or not parts.username:
        raise ValueError(f"IMAP URL needs user and host: {scheme}://user:pass@host/")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    after, move_to = AfterAction.SEEN, None
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key != "after":
            raise ValueError(f"unknown IMAP URL option {key!r}; only 'after' is known")
        action, _, target = values[-1].partition(":")
        if action not in {a.value for a in AfterAction}:
            raise ValueError(f"after= must be seen, delete or move:Folder, not {values[-1]!r}")
        after = AfterAction(action)
        if after is AfterAction.MOVE:
            if not target or target == folder:
                raise ValueError("after=move: needs a folder other than the polled one")
            move_to = target
    port, user, password = parts.port, unquote(parts.username), unquote(parts.password or "")
    return MailboxConfig(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], user, password,
                         folder, after, move_to)  # fmt: skip


def _quote(value: str) -> str:
    """An IMAP quoted string (RFC 3501 9), for user and folder names with spaces."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(response: Any) -> str:
    return " ".join(bytes(line).decode(errors="replace") for line in response.lines)[:300]


def _headers(raw: bytes) -> tuple[str, str | None, list[str]]:
    """Return-Path, Message-ID and Delivered-To: IMAP has no envelope, these stand in."""
    try:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(raw)
        return_path = parseaddr(str(headers.get("Return-Path") or ""))[1]
        message_id = str(headers.get("Message-ID") or "").strip()[:255] or None
        delivered = [parseaddr(str(v))[1] for v in headers.get_all("Delivered-To") or []]
    except (ValueError, IndexError, TypeError):  # malformed header structure
        return "", None, []
    return return_path, message_id, [d for d in delivered if d]


@dataclass(frozen=True)
class PollerOptions:
    """Timing knobs, in seconds; the defaults suit production, tests shrink them."""

    use_idle: bool = True  # False: poll every poll_interval even if IDLE is offered
    idle_timeout: float = 300.0  # re-IDLE this often (RFC 2177: below 29 minutes)
    poll_interval: float = 60.0  # when the server has no IDLE
    command_timeout: float = 30.0  # every IMAP command, and connecting
    backoff_initial: float = 1.0  # first reconnect delay, doubled per failure...
    backoff_max: float = 300.0  # ...up to this
    ssl_context: ssl.SSLContext | None = None  # imaps:// (default: system CAs)


_RETRYABLE = (OSError, TimeoutError, aioimaplib.AioImapException, ImapError, OperationalError)


class ImapPoller:
    """Poll one mailbox; ``run`` until stopped, or ``poll_once`` from a test."""

    def __init__(
        self,
        config: MailboxConfig,
        factory: sessionmaker[Session],
        options: PollerOptions | None = None,
    ) -> None:
        self.config = config
        self.factory = factory
        self.options = options or PollerOptions()
        self.log = log.bind(mailbox=config.mailbox)
        self.idling = asyncio.Event()  # set while an IDLE is in progress (tests wait on it)
        self._client: Any = None
        self._lost = asyncio.Event()
        self._stop: asyncio.Event | None = None
        self._uidvalidity = 0
        self._last_uid = 0

    # --- connection --------------------------------------------------------

    async def connect(self) -> None:
        """Connect, log in, SELECT the folder and line the cursor up with UIDVALIDITY."""
        cfg, timeout = self.config, self.options.command_timeout
        lost = self._lost = asyncio.Event()  # this connection's, not the next one's
        if cfg.use_ssl:
            ctx = self.options.ssl_context
            client = aioimaplib.IMAP4_SSL(cfg.host, cfg.port, timeout=timeout, ssl_context=ctx)
        else:
            client = aioimaplib.IMAP4(cfg.host, cfg.port, timeout=timeout)
        client.protocol.conn_lost_cb = lambda _exc: lost.set()
        self._client = client
        await self._call(client.wait_hello_from_server())
        response = await self._call(client.login(_quote(cfg.user), cfg.password))
        if response.result != "OK":
            await self.close()
            if "[UNAVAILABLE]" in _text(response):  # RFC 5530: temporary, retry later
                raise ImapError(f"login to {cfg.mailbox} temporarily refused: {_text(response)}")
            raise ImapAuthError(f"login to {cfg.mailbox} refused: {_text(response)}")
        await self._call(asyncio.wait_for(client.protocol.capability(), timeout))  # post-login
        response = await self._ok("SELECT", client.select(_quote(cfg.folder)))
        found = [m for line in response.lines if (m := _UIDVALIDITY.search(bytes(line)))]
        if not found:
            raise ImapError(f"SELECT {cfg.folder} in {cfg.mailbox} gave no UIDVALIDITY")
        self._uidvalidity = uidvalidity = int(found[0].group(1))
        self._last_uid = await asyncio.to_thread(self._load_cursor, uidvalidity)
        idle = client.has_capability("IDLE")
        self.log.info("imap_connected", uidvalidity=uidvalidity, last_uid=self._last_uid, idle=idle)

    async def close(self) -> None:
        """Log out if the connection still works, then drop it."""
        client, self._client = self._client, None
        if client is None:
            return
        if not self._lost.is_set() and client.get_state() in ("AUTH", "SELECTED"):
            with contextlib.suppress(Exception):  # best effort: we are leaving anyway
                await asyncio.wait_for(client.logout(), 2.0)
        if client.protocol.transport is not None:
            client.protocol.transport.close()

    async def _call(self, awaitable: Awaitable[Any]) -> Any:
        """Await an aioimaplib call, but fail as soon as the connection drops.

        aioimaplib itself notices a closed socket only when the command times out.
        """
        task = asyncio.ensure_future(awaitable)
        if not await _first_set([self._lost], also=task):
            raise ConnectionError(f"connection to {self.config.host}:{self.config.port} lost")
        return task.result()

    async def _ok(self, command: str, awaitable: Awaitable[Any]) -> Any:
        response = await self._call(awaitable)
        if response.result != "OK":
            raise ImapError(f"{command} in {self.config.mailbox} failed: {_text(response)}")
        return response

    # --- cursor and storage (blocking; run in a thread) -------------------

    def _load_cursor(self, uidvalidity: int) -> int:
        mailbox = self.config.mailbox
        with transaction(self.factory) as session:
            cursor = session.exec(select(ImapCursor).where(ImapCursor.mailbox == mailbox)).first()
            if cursor is None:
                session.add(ImapCursor(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=0))
                return 0
            if cursor.uidvalidity != uidvalidity:
                self.log.warning(
                    "imap_uidvalidity_changed", old=cursor.uidvalidity, new=uidvalidity
                )
                cursor.uidvalidity, cursor.last_uid, cursor.updated_at = uidvalidity, 0, utcnow()
                session.add(cursor)
                return 0
            return cursor.last_uid

    def _advance_cursor(self, uid: int) -> None:
        with transaction(self.factory) as session:
            session.execute(
                sa.update(ImapCursor)
                .where(col(ImapCursor.mailbox) == self.config.mailbox)
                .where(col(ImapCursor.uidvalidity) == self._uidvalidity)
                .where(col(ImapCursor.last_uid) < uid)
                .values(last_uid=uid, updated_at=utcnow())
            )

    def _find_stored(self, uid: int, sha256: str, message_id: str | None) -> int | None:
        """The id of a row that already holds this message, if any (see module doc)."""
        row, generation = InboundMessage, col(InboundMessage.imap_uidvalidity)
        same = (generation == self._uidvalidity) & (col(row.imap_uid) == uid)
        seen_before = col(row.sha256) == sha256
        if message_id:
            seen_before = seen_before | (col(row.message_id) == message_id)
        older = (generation != self._uidvalidity) & seen_before
        query = select(row.id).where(col(row.mailbox) == self.config.mailbox, same | older)
        with self.factory() as session:
            return session.exec(query.limit(1)).first()

    def _store(self, raw: bytes, uid: int) -> int | None:
        """Store ``raw``; return its new id, or None when it was stored before."""
        return_path, message_id, delivered = _headers(raw)
        if self._find_stored(uid, hashlib.sha256(raw).hexdigest(), message_id) is not None:
            return None
        user = self.config.user
        try:
            return store_inbound(
                self.factory,
                raw,
                source=InboundSource.IMAP,
                envelope_from=return_path,
                envelope_to=delivered or ([user] if "@" in user else []),
                mailbox=self.config.mailbox,
                imap_uidvalidity=self._uidvalidity,
                imap_uid=uid,
            )
        except IntegrityError:
            # Another process stored it between our check and our insert.
            if self._find_stored(uid, "", None) is None:
                raise
            return None

    # --- one pass ----------------------------------------------------------

    async def poll_once(self) -> int:
        """Store every message above the cursor; return how many were new.

        Searches again until nothing is new: an EXISTS the server announced
        while we were busy is not repeated when IDLE starts, so the last
        command before IDLE must be a SEARCH that found nothing.
        """
        if self._client is None:
            await self.connect()
        stored = 0
        while uids := await self._search_new():
            for uid in uids:
                if self._stop is not None and self._stop.is_set():
                    return stored
                with bound(imap_uid=uid):  # one correlation id per message, kept on its job
                    stored += await self._take(uid)
        return stored

    async def _search_new(self) -> list[int]:
        query = f"UID {self._last_uid + 1}:*"
        response = await self._ok("UID SEARCH", self._client.uid_search(query, charset=None))
        found = {int(t) for line in response.lines[:-1] for t in bytes(line).split() if t.isdigit()}
        return sorted(uid for uid in found if uid > self._last_uid)  # "N:*" matches the top UID

    async def _take(self, uid: int) -> int:
        """Fetch, store, advance the cursor, act; every path raises or passes ``uid``."""
        fetch = self._client.uid("fetch", str(uid), "(UID BODY.PEEK[])")
        raw = self._body((await self._ok(f"UID FETCH {uid}", fetch)).lines, uid)
        if raw is None:  # expunged by someone else since our SEARCH: nothing to keep
            self.log.warning("imap_message_vanished", uid=uid)
            self._last_uid = max(self._last_uid, uid)
            return 0
        inbound_id = await asyncio.to_thread(self._store, raw, uid)
        await asyncio.to_thread(self._advance_cursor, uid)
        self._last_uid = max(self._last_uid, uid)
        await self._after(uid)
        if inbound_id is None:
            self.log.info("imap_already_stored", uid=uid)
            return 0
        self.log.info("imap_stored", uid=uid, inbound_message_id=inbound_id, size=len(raw))
        return 1

    def _body(self, lines: Sequence[Any], uid: int) -> bytes | None:
        """The ``BODY[]`` literal for ``uid``; None if the server sent no FETCH for it.

        aioimaplib gives ``[b"1 FETCH (UID 1 BODY[] {n}", bytearray(raw), b")", ...]``;
        the UID may also come after the literal. Unsolicited FETCHes (flag
        changes) of other messages can sit in between and are skipped.
        """
        mentioned = False
        for i, line in enumerate(lines):
            if not isinstance(line, bytes) or b" FETCH (" not in line:
                continue
            literal = lines[i + 1] if i + 1 < len(lines) else None
            rest = lines[i + 2] if i + 2 < len(lines) and line.endswith(b"}") else b""
            match = _UID.search(line) or _UID.search(bytes(rest))
            if match is None or int(match.group(1)) != uid:
                continue
            mentioned = True
            if b"BODY[]" in line and line.endswith(b"}") and isinstance(literal, bytearray):
                return bytes(literal)
        if mentioned:  # a FETCH for it without a body: never skip a message silently
            raise ImapError(f"UID FETCH {uid} in {self.config.mailbox} returned no body")
        return None

    async def _after(self, uid: int) -> None:
        client, cfg, target = self._client, self.config, _quote(self.config.move_to or "")
        if cfg.after is AfterAction.SEEN:
            await self._ok("STORE", client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"))
            return
        if cfg.after is AfterAction.MOVE:
            verb = "move" if client.has_capability("MOVE") else "copy"
            response = await self._call(client.uid(verb, str(uid), target))
            if response.result != "OK" and "[TRYCREATE]" in _text(response):
                await self._call(client.create(target))  # NO if another client won: fine
                response = await self._call(client.uid(verb, str(uid), target))
            if response.result != "OK":
                raise ImapError(f"UID {verb.upper()} to {cfg.move_to} failed: {_text(response)}")
            if verb == "move":
                return
        await self._ok("STORE", client.uid("store", str(uid), "+FLAGS.SILENT", r"(\Deleted)"))
        if client.has_capability("UIDPLUS"):
            await self._ok("UID EXPUNGE", client.uid("expunge", str(uid)))
        else:  # plain EXPUNGE also removes other messages already flagged \Deleted
            await self._ok("EXPUNGE", client.expunge())

    # --- waiting and the run loop -------------------------------------------

    async def _wait_for_mail(self, stop: asyncio.Event) -> None:
        """IDLE until new mail (EXISTS), ``idle_timeout`` or ``stop``; else sleep one interval."""
        client, opts = self._client, self.options
        if not (opts.use_idle and client.has_capability("IDLE")):
            await _first_set([stop, self._lost], timeout=opts.poll_interval)
            return
        idle = await self._call(client.idle_start(timeout=opts.idle_timeout))
        self.idling.set()
        try:
            while True:
                waiting = client.wait_server_push(timeout=opts.idle_timeout + opts.command_timeout)
                push = asyncio.ensure_future(waiting)
                if not await _first_set([stop, self._lost], also=push):
                    break  # stopping or disconnected
                lines = push.result()
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break  # time to re-IDLE
                if any(b"EXISTS" in bytes(line) for line in lines):
                    break  # new mail; keep-alives and flag changes just keep waiting
        finally:
            self.idling.clear()
        if self._lost.is_set():
            raise ConnectionError(f"connection to {self.config.host}:{self.config.port} lost")
        client.idle_done()
        await self._ok("IDLE", asyncio.wait_for(idle, opts.command_timeout))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and wait until ``stop`` is set, reconnecting on errors.

        Raises :class:`ImapAuthError` (after logging it) when the login is
        refused, so this mailbox stops while the others keep running.
        """
        self._stop, opts = stop, self.options
        delay = opts.backoff_initial
        try:
            while not stop.is_set():
                try:
                    await self.poll_once()
                    delay = opts.backoff_initial
                    await self._wait_for_mail(stop)
                except ImapAuthError as exc:
                    hint = "check the user and password in BILLBOX_IMAP_URL"
                    self.log.error("imap_login_failed", error=str(exc), hint=hint)
                    raise
                except _RETRYABLE as exc:
                    error = f"{exc.__class__.__name__}: {exc}"
                    self.log.warning("imap_connection_error", error=error, retry_in=delay)
                    await self.close()
                    await _first_set([stop], timeout=delay)
                    delay = min(delay * 2, opts.backoff_max)
        finally:
            await self.close()
        self.log.info("imap_stopped")


async def _first_set(
    events: Iterable[asyncio.Event], *, timeout: float | None = None, also: Any = None
) -> bool:
    """Wait for any event, ``also`` (a task) or the timeout; True if ``also`` finished."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    if also is not None:
        waiters.add(also)
    done, pending = await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
    for task in pending:
        task.cancel()
    return also is not None and also in done


async def run_pollers(
    configs: Sequence[MailboxConfig],
    factory: sessionmaker[Session],
    stop: asyncio.Event,
    options: PollerOptions | None = None,
) -> dict[str, BaseException | None]:
    """Run one :class:`ImapPoller` per mailbox until ``stop`` is set.

    Returns when every poller has ended: the mailbox key maps to None for a
    clean stop, or to the exception that ended it (an :class:`ImapAuthError`
    for a refused login). ``options`` apply to every mailbox.
    """
    keys = [config.mailbox for config in configs]
    if len(set(keys)) != len(keys):
        raise ValueError("the same IMAP mailbox is configured twice")
    pollers = [ImapPoller(config, factory, options) for config in configs]
    results = await asyncio.gather(*(p.run(stop) for p in pollers), return_exceptions=True)
    outcome: dict[str, BaseException | None] = {}
    for key, result in zip(keys, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, ImapAuthError):
            log.error("imap_poller_crashed", mailbox=key, exc_info=result)
        outcome[key] = result if isinstance(result, BaseException) else None
    return outcome
