"""Group commit for inbound mail: one writer thread commits every waiting message at once.

Durability costs one ``fsync`` per commit. With one commit per message,
SQLite (``synchronous=FULL``) serialises writers and reaches about half of a
no-op SMTP server's rate on this machine class; committing every message
that is waiting in one transaction, then answering 250 to each, keeps each
message's promise (it is on disk before its 250) while paying one ``fsync``
for the group. Under no load a group is one message, so latency does not
grow.

If the transaction fails, every message of the group gets the exception and
its SMTP session answers 451, so each sender retries: nothing is half-stored.

The group's rows go in with two multi-row ``INSERT … RETURNING`` statements
(messages, then jobs: :func:`~mailbridge.inbound_store.insert_inbound_many`),
not two ORM objects and two flushes per message: the ORM path cost ~6 ms of
Python per message, which capped the writer at ~160 msgs/s; this costs
~0.4 ms; the message rows now go in on the driver's cursor, cheaper still.
Each message is answered as soon as the commit has returned, by an
``after_commit`` listener placed ahead of the job enqueuer's, so a sender
does not also wait for the broker round trips that send its group's job ids.

The writer shares the GIL with the SMTP event loop, so its answers cost the
loop as little as they can: the senders waiting on one event loop are woken
with one ``call_soon_threadsafe`` per group (one wake-up of the loop), not
one ``concurrent.futures.Future`` callback and wake-up per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.logs import get_logger
from billbox.models import InboundSource
from mailbridge.inbound_store import InboundRecord, insert_inbound_many

log = get_logger("mailbridge.group_commit")

_STOP = object()
_GROUP_KEY = "billbox_inbound_group"


@dataclass
class _Request:
    """A message waiting for its group's commit, and whoever waits for its id.

    A caller in a thread waits on ``future``; a caller on an event loop on
    ``waiter``, which only that loop may resolve.
    """

    record: InboundRecord
    future: Future[int] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    waiter: asyncio.Future[int] | None = None


class GroupCommitStore:
    """Store inbound messages through one writer thread, committing in groups.

    ``store`` blocks until the message's group is committed (for callers in
    threads); ``store_async`` awaits it (for the SMTP server's event loop).
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        source: InboundSource = InboundSource.SMTP,
        max_group: int = 128,
    ) -> None:
        self.factory = factory
        self.source = source
        self.max_group = max_group
        self._queue: queue.Queue[_Request | object] = queue.Queue()
        # First in line after commit, ahead of the enqueuer that install_enqueuer adds.
        self._listening = isinstance(factory, sessionmaker)
        if self._listening:
            event.listen(factory, "after_commit", self._committed, insert=True)
        bind = factory.kw.get("bind") if isinstance(factory, sessionmaker) else None
        self._engine: Engine | None = bind if isinstance(bind, Engine) else None
        self._connection: Connection | None = None
        self._thread = threading.Thread(target=self._run, name="inbound-writer", daemon=True)
        self._thread.start()
        self.groups = 0
        self.messages = 0

    def _record(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> InboundRecord:
        return InboundRecord(raw, self.source, mail_from, list(rcpts))

    def submit(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> Future[int]:
        future: Future[int] = Future()
        self._queue.put(_Request(self._record(raw, mail_from, rcpts), future=future))
        return future

    def store(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> int:
        return self.submit(raw, mail_from, rcpts).result()

    async def store_async(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> int:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[int] = loop.create_future()
        record = self._record(raw, mail_from, rcpts)
        self._queue.put(_Request(record, loop=loop, waiter=waiter))
        return await waiter

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._listening and event.contains(self.factory, "after_commit", self._committed):
            event.remove(self.factory, "after_commit", self._committed)

    def _run(self) -> None:
        try:
            self._write_groups()
        finally:
            self._drop_connection()

    def _write_groups(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            group = [first]
            while len(group) < self.max_group:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                group.append(item)
            self._commit([r for r in group if isinstance(r, _Request)])

    def _session(self) -> Session:
        """A session on the writer's own connection, kept from group to group.

        Taking a pooled connection and giving it back for every group cost
        about a fifth of the writer's Python. Without an engine to hold a
        connection of (a plain factory function), each group asks ``factory``.
        """
        if self._engine is None:
            return self.factory()
        if self._connection is None:
            self._connection = self._engine.connect()
        return self.factory(bind=self._connection)

    def _drop_connection(self) -> None:
        """Discard the held connection: after a failure it may be broken (the group's
        rows were written on its driver cursor, which SQLAlchemy does not watch)."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                connection.invalidate()
                connection.close()

    def _commit(self, group: list[_Request]) -> None:
        try:
            with self._session() as session:
                ids = insert_inbound_many(session, [request.record for request in group])
                session.info[_GROUP_KEY] = (self, group, ids)
                session.commit()
                if session.info.pop(_GROUP_KEY, None) is not None:  # no listener ran
                    self._answer(group, ids)
        except Exception as exc:  # every sender of the group retries after 451
            log.error(
                "inbound_group_failed", size=len(group), error=f"{exc.__class__.__name__}: {exc}"
            )
            self._drop_connection()
            _settle(group, [exc] * len(group))

    def _committed(self, session: Session) -> None:
        """``after_commit``: the group is on disk; answer its senders before the enqueue."""
        done = session.info.get(_GROUP_KEY)
        if done is not None and done[0] is self:
            del session.info[_GROUP_KEY]
            self._answer(done[1], done[2])

    def _answer(self, group: list[_Request], ids: list[int]) -> None:
        self.groups += 1
        self.messages += len(group)
        _settle(group, ids)


def _settle(group: list[_Request], outcomes: Sequence[int | BaseException]) -> None:
    """Give each request its id or error; one wake-up per event loop for its waiters."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], object]]] = {}
    for request, outcome in zip(group, outcomes, strict=True):
        if request.future is not None:
            if not request.future.done():
                if isinstance(outcome, BaseException):
                    request.future.set_exception(outcome)
                else:
                    request.future.set_result(outcome)
        elif request.loop is not None and request.waiter is not None:
            by_loop.setdefault(request.loop, []).append((request.waiter, outcome))
    for loop, waiters in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, waiters)
        except RuntimeError:  # the loop is closed: its sessions are gone, nobody to answer
            log.warning("inbound_answer_dropped", messages=len(waiters))


def _resolve(waiters: list[tuple[asyncio.Future[int], object]]) -> None:
    """On the waiters' event loop: hand each its id or error, unless it gave up waiting."""
    for waiter, outcome in waiters:
        if waiter.done():  # cancelled: the client went away while its group was committed
            continue
        if isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)  # type: ignore[arg-type]
