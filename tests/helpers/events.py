"""Reading WatchSessionEvents streams of a real daemon through the raw stub."""

from __future__ import annotations

from collections import deque
from typing import Any

from sessiond_client.v1 import events_pb2
from sessiond_client.v1 import session_store_pb2 as pb

STREAM_SECONDS = 20.0  # the deadline of each test stream: how long a test waits for an event


class Stream:
    """A WatchSessionEvents call, read as the test needs it; it is live once its first response came."""

    def __init__(self, stub: Any, timeout: float = STREAM_SECONDS, **request: Any):
        self.call = stub.WatchSessionEvents(pb.WatchSessionEventsRequest(**request), timeout=timeout)
        self.pending: deque[events_pb2.SessionEvent] = deque()
        self.cursor = 0
        self._read()

    def _read(self) -> None:
        response = next(self.call)
        self.pending.extend(response.events)
        self.cursor = response.cursor

    def take(self, count: int) -> list[events_pb2.SessionEvent]:
        """The next ``count`` events, waiting for them."""
        while len(self.pending) < count:
            self._read()
        return [self.pending.popleft() for _ in range(count)]

    def until(self, cursor: int) -> list[events_pb2.SessionEvent]:
        """Every event up to the cursor ``cursor``, waiting until the stream's cursor gets there."""
        while self.cursor < cursor:
            self._read()
        events = list(self.pending)
        self.pending.clear()
        return events

    def close(self) -> None:
        self.call.cancel()
