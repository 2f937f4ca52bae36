"""The event log as WatchSessionEvents streams read it: catch up page by page, then wait for commits.

Why no polling: the storage calls ``EventFeed.notify`` from the committing thread after every
commit that added events, which wakes the waiting streams on the event loop; they then read
the next page on a store thread, one read shared by the streams that ask for the same page
(caught-up streams wake together with the same cursor). The wait is still bounded
(``RECHECK_SECONDS``) so that a stream would recover from a missed wake-up instead of hanging.
A stream holds no thread while it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent import futures

from sessiond.errors import ShuttingDown
from sessiond.model import EventKind
from sessiond.storage.interface import EventPage
from sessiond.store.session_store import SessionStore

PAGE = 500  # events per read and per response (a few dozen KiB)
RECHECK_SECONDS = 5.0  # the longest a stream waits without looking at the log


class EventFeed:
    """Pages of events for every open stream, woken by commits; ``close`` ends the streams."""

    def __init__(self, store: SessionStore, threads: futures.Executor):
        self.store, self.threads = store, threads
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: asyncio.Future[None] | None = None
        Read = tuple[int, frozenset[EventKind], asyncio.Future[None], str | None]  # after, kinds, wake-up, namespace
        self._reads: dict[Read, asyncio.Future[EventPage]] = {}

    def _changed(self) -> asyncio.Future[None]:
        """Completes at the next commit with events (or at ``close``). Taken before a read, awaited
        after it, so that a commit landing in between is never missed."""
        if self._next is None:
            self._loop = asyncio.get_running_loop()
            self._next = self._loop.create_future()
        return self._next

    def _wake(self) -> None:
        if self._next is not None:
            self._next.set_result(None)
            self._next = None

    def notify(self) -> None:
        """After a commit that added events; called on the committing thread, never raises."""
        loop = self._loop
        if loop is None:
            return  # nobody has watched yet
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:
            pass  # the loop is closed: the daemon stopped, so nobody is waiting

    def close(self) -> None:
        """End every stream (on the loop): they answer UNAVAILABLE with their cursor at once, so the
        server's shutdown does not wait out its grace period for them."""
        self.closed = True
        self._wake()

    async def _page(
        self, after: int, kinds: frozenset[EventKind], changed: asyncio.Future[None], namespace: str | None
    ) -> EventPage:
        """The page after ``after``, read once for all the streams that ask for it in one wake-up.

        Keyed by ``changed`` too: a read that began before a commit is never handed to a stream
        that woke for that commit.
        """
        key = (after, kinds, changed, namespace)
        read = self._reads.get(key)
        if read is None:
            loop = asyncio.get_running_loop()
            read = self._reads[key] = loop.run_in_executor(
                self.threads, self.store.events_after, after, PAGE, kinds, namespace
            )
            read.add_done_callback(lambda _: self._reads.pop(key))
        return await asyncio.shield(read)  # a stream going away does not cancel the others' read

    async def follow(
        self, after: int, kinds: frozenset[EventKind], from_now: bool, namespace: str | None = None
    ) -> AsyncIterator[EventPage]:
        """Pages after ``after`` (or the newest event), forever: the first at once, even if empty,
        then one whenever the cursor moves; only a namespace's events when one is named. Raises
        ``OutOfRange`` (cursor outside the log) and ``ShuttingDown``."""
        loop = asyncio.get_running_loop()
        if from_now:
            after = await loop.run_in_executor(self.threads, self.store.newest_event)
        first = True
        while not self.closed:
            changed = self._changed()
            page = await self._page(after, kinds, changed, namespace)
            if first or page.cursor != after:
                yield page
            first, after = False, page.cursor
            if len(page.events) < PAGE:  # caught up
                await asyncio.wait((changed,), timeout=RECHECK_SECONDS)
        raise ShuttingDown(f"the daemon is stopping; watch again with after_sequence={after}")
