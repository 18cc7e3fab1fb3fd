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
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from billbox.logs import get_logger
from billbox.models import InboundSource
from mailbridge.inbound_store import InboundRecord, insert_inbound

log = get_logger("mailbridge.group_commit")

_STOP = object()


@dataclass
class _Request:
    record: InboundRecord
    future: Future[int] = field(default_factory=Future)


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
        self._thread = threading.Thread(target=self._run, name="inbound-writer", daemon=True)
        self._thread.start()
        self.groups = 0
        self.messages = 0

    def submit(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> Future[int]:
        record = InboundRecord(
            raw=raw, source=self.source, envelope_from=mail_from, envelope_to=list(rcpts)
        )
        request = _Request(record)
        self._queue.put(request)
        return request.future

    def store(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> int:
        return self.submit(raw, mail_from, rcpts).result()

    async def store_async(self, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> int:
        return await asyncio.wrap_future(self.submit(raw, mail_from, rcpts))

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
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

    def _commit(self, group: list[_Request]) -> None:
        try:
            with self.factory() as session:
                ids = [insert_inbound(session, request.record) for request in group]
                session.commit()
        except Exception as exc:  # every sender of the group retries after 451
            log.error(
                "inbound_group_failed", size=len(group), error=f"{exc.__class__.__name__}: {exc}"
            )
            for request in group:
                request.future.set_exception(exc)
            return
        self.groups += 1
        self.messages += len(group)
        for request, inbound_id in zip(group, ids, strict=True):
            request.future.set_result(inbound_id)
