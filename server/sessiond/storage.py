"""The storage interface the store logic runs on; backends (SQLite, later PostgreSQL) implement it.

A backend runs a unit of work in one transaction: ``read`` for queries, ``write`` for changes.
Everything a unit does commits together or not at all. The store logic never sees SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from sessiond.model import Entry, Lease, Message

T = TypeVar("T")
Cursor = tuple[int, str]  # (updated_at in microseconds, session_key): the keyset of entry listings
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (value - EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def cursor_of(entry: Entry) -> Cursor:
    """Where a listing that ended with ``entry`` goes on."""
    return to_us(entry.updated_at), entry.session_key


@dataclass(frozen=True)
class ExpiryCutoffs:
    """Per-policy instants: an entry last active before its policy's cutoff has expired.

    ``None`` means the policy never expires sessions (mode "none").
    """

    default: datetime | None
    platforms: Mapping[str, datetime | None]
    chat_types: Mapping[str, datetime | None]


@dataclass(frozen=True)
class AppendResult:
    appended: int
    duplicates: int
    message_count: int


class Transaction(Protocol):
    """The reads and writes one unit of work may do."""

    def get_entry(self, session_key: str) -> Entry | None: ...

    def put_entry(self, entry: Entry) -> None: ...

    def create_session(self, session_id: str, platform: str, user_id: str | None, started_at: datetime) -> bool:
        """Record a new session id; False when the id already exists."""
        ...

    def end_session(self, session_id: str, reason: str, at: datetime) -> None:
        """End a session; one already ended keeps its first end time and reason."""
        ...

    def reopen_session(self, session_id: str) -> None: ...

    def session_exists(self, session_id: str) -> bool: ...

    def has_two_sessions(self) -> bool: ...

    def live_lease(self, session_key: str, now: datetime) -> Lease | None: ...

    def put_lease(self, lease: Lease) -> None: ...

    def delete_lease(self, session_key: str, owner: str, now: datetime) -> bool: ...

    def prune_entries(self, cutoff: datetime, now: datetime) -> int:
        """Delete entries last active before ``cutoff``, except suspended and leased ones."""
        ...

    def mark_recently_active(self, since: datetime, now: datetime, reason: str) -> int:
        """Mark resume-pending the entries active since ``since`` (not pending, not suspended)."""
        ...

    def list_entries(self, since: datetime | None, after: Cursor | None, limit: int) -> list[Entry]:
        """Entries most recently active first, from after ``after``."""
        ...

    def expired_entries(self, cutoffs: ExpiryCutoffs, now: datetime, after: Cursor | None, limit: int) -> list[Entry]:
        """Expired, unfinalised, unleased entries, least recently active first."""
        ...

    def append_messages(self, session_id: str, messages: Sequence[Message], now: datetime) -> AppendResult: ...

    def replace_messages(self, session_id: str, messages: Sequence[Message], now: datetime) -> int: ...

    def load_messages(self, session_id: str, after_position: int, limit: int) -> list[Message]: ...


class Storage(Protocol):
    """A database holding entries, session records, leases and transcripts."""

    def read(self, work: Callable[[Transaction], T]) -> T: ...

    def write(self, work: Callable[[Transaction], T], deadline: float | None = None) -> T:
        """Run ``work`` in a write transaction, durably committed before returning.

        ``deadline`` (``time.monotonic()`` seconds): skip the work, raising ``DeadlineExceeded``,
        if it has passed by the time the work would start.
        """
        ...

    def check(self) -> None:
        """Raise ``StorageError`` when the database cannot serve (for health checks)."""
        ...

    def close(self) -> None: ...
