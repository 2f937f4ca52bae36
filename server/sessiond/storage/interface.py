"""The storage interface the store logic runs on; the SQLite and PostgreSQL backends implement it.

A backend runs a unit of work in one transaction: ``read`` for queries, ``write`` for changes.
Everything a unit does commits together or not at all. The store logic never sees SQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypeVar

from sessiond.model import (
    Cursor,
    Entry,
    Event,
    EventKind,
    Handoff,
    IdentityLink,
    Lease,
    LineageLink,
    Message,
    MessageFilter,
    Metadata,
    MetadataFilter,
    ResetPolicy,
    SearchHit,
    Selected,
    SessionSelector,
    SessionSummary,
    Term,
    Turn,
)

T = TypeVar("T")


class WriterBusy(Exception):
    """A write on the event loop found the writer held by a thread: run the call on a thread instead.

    Raised before any work ran, so the call can simply be run again.
    """


@dataclass
class LoopCall:
    """What a call run on the event loop left to wait for: the commit of its writes, if it wrote."""

    committed: Awaitable[None] | None = None


@dataclass(frozen=True)
class ExpiryCutoffs:
    """Per-policy instants: an entry last active before its policy's cutoff has expired.

    ``None`` means the policy never expires sessions (mode "none").
    """

    default: datetime | None
    platforms: Mapping[str, datetime | None]
    chat_types: Mapping[str, datetime | None]
    stored: Mapping[ResetPolicy, datetime | None] = field(default_factory=dict)  # of entries' own policies

    def latest(self) -> datetime | None:
        """The latest cutoff of all: no entry active since then has expired."""
        every = [self.default, *self.platforms.values(), *self.chat_types.values(), *self.stored.values()]
        return max((cutoff for cutoff in every if cutoff is not None), default=None)


@dataclass(frozen=True)
class EventPage:
    """Events after a cursor, oldest first, and the cursor to go on from.

    ``cursor`` is past every event examined, delivered or filtered out: the last event's
    sequence for a full page, else the newest sequence in the log.
    """

    events: list[Event]
    cursor: int


@dataclass(frozen=True)
class AppendResult:
    appended: int
    duplicates: int
    message_count: int


@dataclass(frozen=True)
class IndexProgress:
    """How far building the full-text index has come, in messages."""

    done: int
    total: int
    complete: bool


@dataclass(frozen=True)
class VacuumState:
    """The database file's free pages, whether it gives them back by steps, and its size."""

    free_pages: int
    incremental: bool
    file_bytes: int


@dataclass(frozen=True)
class StorageStats:
    """What the database holds and how big its files are: for metrics and ``admin verify``."""

    entries: int  # session keys with a current session
    sessions: int  # session records, ended ones included
    messages: int
    live_leases: int
    database_bytes: int
    wal_bytes: int  # 0 when there is no write-ahead log file


class Transaction(Protocol):
    """The reads and writes one unit of work may do."""

    def get_entry(self, session_key: str) -> Entry | None: ...

    def entry_by_session_id(self, session_id: str) -> Entry | None:
        """The entry whose current session is ``session_id`` (operators' look-up; may scan)."""
        ...

    def put_entry(self, entry: Entry) -> None: ...

    def create_session(
        self,
        session_id: str,
        platform: str,
        user_id: str | None,
        started_at: datetime,
        session_key: str | None = None,
        chat_type: str | None = None,
    ) -> bool:
        """Record a new session id (started for ``session_key`` in a ``chat_type`` chat, when a key
        started it); False when it exists."""
        ...

    def end_session(self, session_id: str, reason: str, at: datetime) -> None:
        """End a session; one already ended keeps its first end time and reason."""
        ...

    def reopen_session(self, session_id: str) -> None: ...

    def session_exists(self, session_id: str) -> bool: ...

    def title_of(self, session_id: str) -> str | None: ...

    def session_titled(self, title: str) -> str | None:
        """The session with this exact title, if any."""
        ...

    def set_title(self, session_id: str, title: str | None) -> None: ...

    def lineage_titles(self, base: str, numbered_prefix: str) -> list[str]:
        """The titles in use that are ``base`` or start with ``numbered_prefix``."""
        ...

    def newest_numbered(self, numbered_prefix: str) -> str | None:
        """The newest session (by start) whose title starts with ``numbered_prefix``."""
        ...

    def set_parent(self, session_id: str, parent_session_id: str, reason: str) -> None: ...

    def lineage_link(self, session_id: str) -> LineageLink | None: ...

    def children(self, session_id: str) -> list[LineageLink]:
        """The sessions started from ``session_id``, newest first."""
        ...

    def has_two_sessions(self, namespace: str | None = None) -> bool: ...

    def live_lease(self, session_key: str, now: datetime) -> Lease | None: ...

    def put_lease(self, lease: Lease) -> None: ...

    def delete_lease(self, session_key: str, owner: str, now: datetime) -> bool: ...

    def expire_leases(self, now: datetime, session_key: str | None = None) -> list[Lease]:
        """Delete the leases lapsed by ``now`` (of one key, or all), returning them."""
        ...

    def prune_entries(
        self,
        cutoff: datetime | None,
        now: datetime,
        limit: int | None = None,
        keep: Sequence[str] = (),
        dry_run: bool = False,
        own_ages: bool = False,
        namespace: str | None = None,
    ) -> list[Entry]:
        """Delete entries last active before ``cutoff`` (``None``: none), except suspended, leased and
        ``keep`` ones (at most ``limit``); the deleted (with ``dry_run``, those that would be, deleting
        nothing). ``own_ages``: an entry that keeps its own ``max_age_days`` is judged by that age.
        """
        ...

    def mark_recently_active(
        self, since: datetime, now: datetime, reason: str, namespace: str | None = None
    ) -> list[Entry]:
        """Mark resume-pending the entries active since ``since`` (not pending, not suspended); the marked."""
        ...

    def list_entries(
        self,
        since: datetime | None,
        after: Cursor | None,
        limit: int,
        metadata: Sequence[MetadataFilter] = (),
        namespace: str | None = None,
    ) -> list[Entry]:
        """Entries most recently active first, from after ``after``; with ``metadata``, only those whose
        current session's metadata matches every filter."""
        ...

    def stored_policies(self) -> list[ResetPolicy]:
        """The distinct reset policies entries keep of their own."""
        ...

    def expired_entries(
        self,
        cutoffs: ExpiryCutoffs,
        now: datetime,
        after: Cursor | None,
        limit: int,
        unannounced: bool = False,
        namespace: str | None = None,
    ) -> list[Entry]:
        """Expired, unfinalised, unleased entries, least recently active first.

        ``unannounced``: only those without an "expired" event for their current version.
        """
        ...

    def add_event(self, event: Event, at: datetime) -> None:
        """Append an event to the log, in this transaction (it commits with the change it describes)."""
        ...

    def events_after(
        self, after: int, limit: int, kinds: frozenset[EventKind], namespace: str | None = None
    ) -> EventPage:
        """Up to ``limit`` events with a sequence above ``after`` (of ``kinds``; all when empty)."""
        ...

    def event_bounds(self) -> tuple[int, int]:
        """(deleted through, newest): sequences up to the first are gone; the second was issued last."""
        ...

    def delete_events(self, before: datetime) -> int:
        """Delete the oldest events, through the newest one stored before ``before``; how many."""
        ...

    def append_messages(self, session_id: str, messages: Sequence[Message], now: datetime) -> AppendResult: ...

    def replace_messages(self, session_id: str, messages: Sequence[Message], now: datetime) -> int: ...

    def load_messages(self, session_id: str, after_position: int, limit: int) -> list[Message]: ...

    def load_all_messages(self, session_id: str, offset: int, limit: int) -> list[Message]:
        """Every stored message, rewound and archived ones too, in the order they were written."""
        ...

    def messages_around(self, session_id: str, position: int, count: int, compaction: int = 0) -> list[Message]:
        """The visible message at ``position`` (if any) and up to ``count`` visible ones on each side,
        in order; with ``compaction``, the same among the messages that compaction archived."""
        ...

    def visible_count(self, session_id: str) -> int: ...

    def rewind(self, session_id: str, turns: int, now: datetime) -> tuple[int, int] | None:
        """Hide the newest ``turns`` visible user messages and every visible one after the oldest of
        them: (the rewind's number, messages hidden); ``None`` when there are fewer user turns."""
        ...

    def newest_rewind(self, session_id: str) -> int | None: ...

    def rewound_by(self, session_id: str, rewind: int) -> tuple[int, int] | None:
        """(first position, count) of the messages a rewind still hides; ``None`` when none."""
        ...

    def visible_after(self, session_id: str, position: int) -> bool: ...

    def restore(self, session_id: str, rewind: int) -> None: ...

    def compact(
        self, session_id: str, first: int, last: int, summary: Message, now: datetime
    ) -> tuple[int, int, int] | None:
        """Archive the visible messages in ``first..last``, ``summary`` in their place: (compaction
        number, archived, summary position); ``None`` when the range holds no visible message."""
        ...

    def has_message_id(self, session_id: str, message_id: str) -> bool: ...

    def copy_messages(self, source: str, target: str, through: int) -> int:
        """Copy ``source``'s visible messages up to position ``through`` into ``target``; how many."""
        ...

    def session_summary(self, session_id: str) -> SessionSummary | None: ...

    def keys_of(self, session_ids: Sequence[str]) -> dict[str, str | None]:
        """The key each stored session was started for (None for one started by id alone)."""
        ...

    def metadata_of(self, session_id: str) -> Metadata | None:
        """A session's metadata; ``None`` when there is no such session."""
        ...

    def set_metadata(self, session_id: str, metadata: Metadata) -> None: ...

    def select_sessions(self, selector: SessionSelector, now: datetime, limit: int) -> list[Selected]:
        """Up to ``limit`` sessions the selector matches, least recently active first (never the
        current session of a key leased at ``now``)."""
        ...

    def count_selected(self, selector: SessionSelector, now: datetime) -> tuple[int, int]:
        """(sessions, their stored messages) the selector matches."""
        ...

    def delete_sessions(self, session_ids: Sequence[str]) -> list[tuple[str, str, int]]:
        """Delete sessions with their messages and the entries pointing at them; (key, session id,
        entry version) of each entry that went."""
        ...

    def archive_sessions(self, session_ids: Sequence[str], now: datetime) -> list[tuple[str, str, int]]:
        """Archive sessions (ending those not ended); the entries pointing at them go, as for delete."""
        ...

    def unarchive_sessions(self, session_ids: Sequence[str]) -> None: ...

    def delete_entry(self, session_key: str) -> None:
        """Forget a key's entry (its session stays)."""
        ...

    # -- identity links, handoffs, turns (storage.coordination_table)

    def identity_link(self, platform: str, user_id: str) -> IdentityLink | None: ...

    def link_identity(self, link: IdentityLink, previous: str | None) -> None:
        """Store ``link`` in place of the user id's link to ``previous`` (None: it had none)."""
        ...

    def unlink_identity(self, platform: str, user_id: str) -> str | None:
        """Remove the user id's link; the identity it had (None: no link)."""
        ...

    def identity_links(self, identity: str | None, after: tuple[str, str], limit: int) -> list[IdentityLink]:
        """Links after ``after`` (platform, user id), in that order; only ``identity``'s when named."""
        ...

    def add_handoff(self, session_id: str, handoff: Handoff) -> None: ...

    def handoffs(self, session_id: str, limit: int) -> list[Handoff]:
        """The session's handoffs, oldest first."""
        ...

    def turn_of(self, session_key: str) -> Turn | None:
        """The newest turn begun on the key (running or not); None when none ever began."""
        ...

    def begin_turn(self, turn: Turn) -> None:
        """Store the key's new newest turn (its token past the stored one's)."""
        ...

    def update_turn(self, turn: Turn) -> None:
        """Store a renewal or the end of the key's newest turn."""
        ...

    def lapsed_turns(
        self, now: datetime, limit: int, unannounced_only: bool, namespace: str | None = None
    ) -> list[Turn]:
        """Running turns past their time to live (abandoned), soonest lapsed first; of keys that
        start with ``namespace`` (a key prefix) when given."""
        ...

    def mark_turn_announced(self, turn: Turn) -> None: ...

    def queue_position(self, session_key: str, owner: str, expires_at: datetime, now: datetime) -> int:
        """Put ``owner`` in line for the key's next turn (keeping its place): 1 for the next."""
        ...

    def first_waiter(self, session_key: str, now: datetime) -> str | None: ...

    def drop_waiter(self, session_key: str, owner: str) -> None: ...

    def drop_lapsed_waiters(self, now: datetime) -> None: ...

    def search_sessions(
        self,
        id_prefix: str,
        title_prefix: str,
        platform: str | None,
        offset: int,
        limit: int,
        metadata: Sequence[MetadataFilter] = (),
        include_archived: bool = False,
        namespace: str | None = None,
    ) -> list[SessionSummary]:
        """Sessions whose id starts with ``id_prefix`` or whose title, folded (``model.fold``), starts
        with ``title_prefix`` folded; newest first."""
        ...

    def search_messages(
        self, terms: tuple[Term, ...], where: MessageFilter, offset: int, limit: int
    ) -> tuple[list[SearchHit], bool]:
        """Messages with every term, best first (windows empty), and whether the index is still being
        built; ``FailedPrecondition`` when there is no full-text index."""
        ...


class Storage(Protocol):
    """A database holding entries, session records, leases and transcripts."""

    def read(self, work: Callable[[Transaction], T], deadline: float | None = None) -> T:
        """Run ``work`` on one snapshot; with ``deadline`` (``time.monotonic()`` seconds), a query
        still running when it passes is stopped (``DeadlineExceeded``)."""
        ...

    def write(self, work: Callable[[Transaction], T], deadline: float | None = None) -> T:
        """Run ``work`` in a write transaction, durably committed before returning.

        ``deadline`` (``time.monotonic()`` seconds): skip the work, raising ``DeadlineExceeded``,
        if it has passed by the time the work would start.
        """
        ...

    def run_on_loop(self, call: Callable[[], T]) -> tuple[T, LoopCall] | None:
        """Run ``call`` (which reads and writes through this storage) on the event loop's thread, its
        writes committed with the others of the loop's turn; ``None`` when the backend cannot, and
        ``WriterBusy`` when not now: either way the caller runs it on a thread."""
        ...

    def check(self) -> None:
        """Raise ``StorageError`` when the database cannot serve (for health checks)."""
        ...

    def stats(self, now: datetime | None = None) -> StorageStats:
        """Row counts (leases live at ``now``, by default the wall clock) and file sizes.

        The counts scan indexes, O(rows); callers that poll it cache the answer.
        """
        ...

    def close(self) -> None: ...


class DaemonStorage(Storage, Protocol):
    """What the daemon, its maintenance and its admin service use beyond the store's interface."""

    on_writable: Callable[[bool], None] | None  # told when writes start failing for want of space, and recover
    on_events: Callable[[], None] | None  # after a commit that added events; must not raise

    def verify(self) -> None:
        """Raise ``StorageError`` when the database is damaged (run once, in the background, after start)."""
        ...

    def checkpoint(self) -> tuple[bool, int]:
        """Fold the write-ahead log into the database, where the backend keeps one: (done, its bytes)."""
        ...

    def integrity_problems(self) -> list[str]: ...

    def search_index(self) -> tuple[str, IndexProgress]:
        """The full-text index's status ("ready", "building", "off", "unavailable") and progress."""
        ...

    def index_batch(self, limit: int) -> IndexProgress:
        """Index up to ``limit`` messages not yet in the full-text index, in one write transaction."""
        ...

    def start_index_rebuild(self) -> IndexProgress:
        """Empty the full-text index so that ``index_batch`` builds it again (``FailedPrecondition``
        where the backend keeps its own)."""
        ...

    def backup(self, target: Path, progress: Callable[[int, int], None] | None = None) -> int: ...

    def vacuum_state(self) -> VacuumState:
        """``FailedPrecondition`` where the backend reclaims space by itself (PostgreSQL's autovacuum)."""
        ...

    def make_incremental(self) -> None:
        """Turn on incremental auto-vacuum: one full VACUUM, holding writes while it runs."""
        ...

    def merge_index(self, step_pages: int) -> int:
        """Merge the full-text index's segments (dropping what deleted messages left in it) in short
        writes of about ``step_pages`` pages, a bounded number; the writes made (0 where the backend
        does it itself)."""
        ...

    def reclaim(self, pages: int) -> VacuumState:
        """Give up to ``pages`` free pages back to the file system (none unless incremental)."""
        ...
