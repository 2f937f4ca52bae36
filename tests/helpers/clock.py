"""The clock tests inject into daemons and stores: time moves only when a test moves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

START = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # where the ``clock`` fixture starts (a Monday, 10:00 UTC)


class Clock:
    """A daemon's clock: an aware UTC instant that moves only when a test advances it."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
