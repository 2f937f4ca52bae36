"""SQLite storage over APSW: one database file, WAL, one writer at a time with group commit.

Why one writer: SQLite takes one writer at a time anyway; queueing writes in-process instead
of letting threads fight over the database lock removes busy-waiting, and lets one commit
(one fsync) carry several RPCs' work. The thread that gets the writer lock commits every
unit of work queued so far, its own included (leader-follower group commit: no hand-off to
another thread when there is no contention). Each unit runs in its own SAVEPOINT, so one
RPC's failure undoes exactly its own changes. Readers use their own per-thread connections
and never wait for the writer (WAL).

On the event loop (``run_on_loop``), the same group commit costs no thread at all: a write runs
at once inside the transaction the loop's current turn holds open, and one COMMIT at the end of
the turn makes every write of that turn durable; callers answer only after it (they await
``LoopCall.committed``). A turn finding the writer held by a thread (maintenance, an O(database)
admin call) raises ``WriterBusy`` instead of blocking the loop, and the caller runs on a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import apsw

from sessiond.errors import AlreadyExists, DeadlineExceeded, DiskFull, StorageError
from sessiond.model import (
    Cursor,
    Entry,
    Event,
    EventKind,
    Lease,
    Message,
    MessageFilter,
    MetadataFilter,
    ResetPolicy,
    SearchHit,
    Term,
    fold,
    to_us,
)
from sessiond.storage import sqlite_search
from sessiond.storage.dialects import SQLITE
from sessiond.storage.interface import (
    AppendResult,
    EventPage,
    ExpiryCutoffs,
    IndexProgress,
    LoopCall,
    StorageStats,
    Transaction,
    VacuumState,
    WriterBusy,
)
from sessiond.storage.rows import (
    DAY_US,
    ENTRY_COLUMNS,
    ENTRY_LIST,
    EVENT_COLUMNS,
    EVENT_LIST,
    LEASE_COLUMNS,
    LEASE_LIST,
    MESSAGE_INSERT_COLUMNS,
    NEVER,
    SESSION_INSERT_COLUMNS,
    STORED_POLICIES,
    cursor_params,
    entry_from_row,
    entry_row,
    event_from_row,
    event_row,
    expiry_params,
    in_namespace,
    lease_from_row,
    lease_row,
    listed,
    message_row,
    namespace_params,
    placeholders,
    policies_from_rows,
    prune_params,
    session_row,
)
from sessiond.storage.sessions_table import SessionsTable

log = logging.getLogger("sessiond.sqlite_storage")  # the logger's name predates the module's place
T = TypeVar("T")

BACKUP_PAGES = 1024  # pages copied between progress reports (4 MiB at the default page size)

# The schema ladder: entry i brings the database from user_version i to i + 1. Forward only;
# a released step is never edited, a change is a new step.
MIGRATIONS = (
    """
    CREATE TABLE entries (
        session_key TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        origin TEXT,
        display_name TEXT,
        platform TEXT,
        chat_type TEXT NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL,
        estimated_cost_usd REAL NOT NULL,
        cost_status TEXT NOT NULL,
        last_prompt_tokens INTEGER NOT NULL,
        was_auto_reset INTEGER NOT NULL,
        auto_reset_reason TEXT,
        reset_had_activity INTEGER NOT NULL,
        is_fresh_reset INTEGER NOT NULL,
        expiry_finalized INTEGER NOT NULL,
        suspended INTEGER NOT NULL,
        resume_pending INTEGER NOT NULL,
        resume_reason TEXT,
        last_resume_marked_at INTEGER,
        version INTEGER NOT NULL
    );
    CREATE INDEX entries_by_activity ON entries (updated_at, session_key);
    CREATE INDEX entries_unfinalized ON entries (updated_at, session_key) WHERE expiry_finalized = 0;
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        platform TEXT NOT NULL,
        user_id TEXT,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        end_reason TEXT,
        message_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions (id),
        position INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT,
        content_is_json INTEGER NOT NULL,
        tool_calls TEXT,
        tool_call_id TEXT,
        tool_name TEXT,
        reasoning TEXT,
        reasoning_content TEXT,
        reasoning_details TEXT,
        codex_reasoning_items TEXT,
        codex_message_items TEXT,
        timestamp INTEGER NOT NULL,
        token_count INTEGER,
        finish_reason TEXT,
        UNIQUE (session_id, position)
    );
    CREATE UNIQUE INDEX messages_by_message_id ON messages (session_id, message_id) WHERE message_id <> '';
    CREATE TABLE leases (
        session_key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    """,
    # The event log of WatchSessionEvents: AUTOINCREMENT so that a sequence is never issued twice,
    # even after the newest events are deleted; events_deleted remembers how far retention went.
    """
    CREATE TABLE events (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        session_key TEXT NOT NULL,
        session_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        previous_session_id TEXT,
        reason TEXT,
        lease_owner TEXT,
        at INTEGER NOT NULL
    );
    CREATE INDEX events_expired ON events (session_key, version) WHERE kind = 'expired';
    CREATE TABLE events_deleted (through INTEGER NOT NULL);
    INSERT INTO events_deleted (through) VALUES (0);
    """,
    # What governs a key, sent by its gateway (NULL: the daemon's configuration).
    """
    ALTER TABLE entries ADD COLUMN reset_policy TEXT;
    ALTER TABLE entries ADD COLUMN max_age_days INTEGER;
    """,
    # Titles (SetSessionTitle): unique among stored sessions.
    """
    ALTER TABLE sessions ADD COLUMN title TEXT;
    CREATE UNIQUE INDEX sessions_by_title ON sessions (title) WHERE title IS NOT NULL;
    """,
    # Lineage (GetSessionLineage): the session a new one started from, and why.
    """
    ALTER TABLE sessions ADD COLUMN parent_session_id TEXT;
    ALTER TABLE sessions ADD COLUMN parent_reason TEXT;
    CREATE INDEX sessions_by_parent ON sessions (parent_session_id, started_at) WHERE parent_session_id IS NOT NULL;
    """,
    # Search (SearchSessions, SearchMessages): the key a session started for, its title folded for
    # prefix matches, and how far the full-text index has been built (sqlite_search).
    """
    ALTER TABLE sessions ADD COLUMN session_key TEXT;
    ALTER TABLE sessions ADD COLUMN title_folded TEXT;
    CREATE INDEX sessions_by_folded_title ON sessions (title_folded) WHERE title_folded IS NOT NULL;
    UPDATE sessions SET session_key = e.session_key FROM entries AS e WHERE e.session_id = sessions.id;
    UPDATE sessions SET title_folded = sessiond_fold(title) WHERE title IS NOT NULL;
    CREATE TABLE search_backfill (
        next_id INTEGER NOT NULL, end_id INTEGER NOT NULL, done INTEGER NOT NULL, total INTEGER NOT NULL
    );
    INSERT INTO search_backfill (next_id, end_id, done, total) VALUES (0, 0, 0, 0);
    """,
    # Rewinds and compactions (transcript_table): hidden messages stay stored, numbered per session.
    """
    ALTER TABLE messages ADD COLUMN visibility TEXT;
    ALTER TABLE messages ADD COLUMN hidden_by INTEGER;
    ALTER TABLE messages ADD COLUMN hidden_at INTEGER;
    ALTER TABLE messages ADD COLUMN original_position INTEGER;
    ALTER TABLE sessions ADD COLUMN rewinds INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN compactions INTEGER NOT NULL DEFAULT 0;
    """,
    # Per-session metadata (UpdateSessionMetadata: canonical JSON, NULL when empty) and retention
    # (DeleteSessions, ArchiveSessions): a session's chat type, last activity and archiving; the
    # entry pointing at a session found by index.
    """
    ALTER TABLE sessions ADD COLUMN metadata TEXT;
    ALTER TABLE sessions ADD COLUMN chat_type TEXT;
    ALTER TABLE sessions ADD COLUMN active_at INTEGER;
    ALTER TABLE sessions ADD COLUMN archived_at INTEGER;
    UPDATE sessions SET chat_type = e.chat_type FROM entries AS e WHERE e.session_id = sessions.id;
    UPDATE sessions SET active_at = max(started_at,
        coalesce((SELECT max(m.timestamp) FROM messages AS m WHERE m.session_id = sessions.id), started_at));
    CREATE INDEX sessions_by_activity ON sessions (active_at, id);
    CREATE INDEX entries_by_session ON entries (session_id);
    """,  # Identity links, handoffs and turns (issue 18): what a link change, a handoff and a turn event
    # carry; the links by platform user id; each session's handoffs; the newest turn of each key
    # (its token only grows: the row stays when the turn ends) and the owners waiting for one.
    """
    ALTER TABLE events ADD COLUMN identity TEXT;
    ALTER TABLE events ADD COLUMN linked_user TEXT;
    ALTER TABLE events ADD COLUMN other_session_key TEXT;
    ALTER TABLE events ADD COLUMN fencing_token INTEGER;
    CREATE TABLE identity_links (
        platform TEXT NOT NULL,
        user_id TEXT NOT NULL,
        identity TEXT NOT NULL,
        linked_at INTEGER NOT NULL,
        PRIMARY KEY (platform, user_id)
    );
    CREATE INDEX identity_links_by_identity ON identity_links (identity, platform, user_id);
    CREATE TABLE handoffs (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        from_key TEXT NOT NULL,
        to_key TEXT NOT NULL,
        replaced_session_id TEXT,
        at INTEGER NOT NULL
    );
    CREATE INDEX handoffs_by_session ON handoffs (session_id, id);
    CREATE TABLE turns (
        session_key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        token INTEGER NOT NULL,
        session_id TEXT,
        started_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        running INTEGER NOT NULL,
        announced INTEGER NOT NULL
    );
    CREATE INDEX turns_lapsing ON turns (expires_at, session_key) WHERE running = 1;
    CREATE TABLE turn_waiters (
        session_key TEXT NOT NULL,
        owner TEXT NOT NULL,
        seq INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (session_key, owner)
    );
    CREATE INDEX turn_waiters_in_line ON turn_waiters (session_key, seq);
    """,
)
BUSY_TIMEOUT_MS = 5000
SLOW_SYNC_S = 0.001  # log syncs slower than this on average leave the event loop for a thread
SYNC_AVERAGE_WEIGHT = 0.1  # of the newest sync in that moving average
MERGE_PASSES = 4  # over the index's pages, the most one merge_index writes
PROGRESS_STEPS = 10_000  # SQLite VM steps between deadline checks of a read (about a millisecond)
AUTO_VACUUM_INCREMENTAL = 2  # PRAGMA auto_vacuum: free pages are given back by incremental_vacuum
CHECKPOINT_WAIT_MS = 200  # how long a checkpoint waits for readers before leaving the rest for next time

# An entry with its session's metadata (a look-up by primary key per entry read).
SELECT_ENTRY = f"SELECT {ENTRY_LIST}, (SELECT metadata FROM sessions WHERE id = e.session_id) FROM entries AS e"
PUT_ENTRY = f"INSERT OR REPLACE INTO entries ({ENTRY_LIST}) VALUES ({placeholders(ENTRY_COLUMNS, '?')})"
INSERT_MESSAGE = (
    f"INSERT INTO messages ({listed(MESSAGE_INSERT_COLUMNS)}) VALUES ({placeholders(MESSAGE_INSERT_COLUMNS, '?')})"
    " ON CONFLICT DO NOTHING"
)
CREATE_SESSION = (
    f"INSERT INTO sessions ({listed(SESSION_INSERT_COLUMNS)}) VALUES ({placeholders(SESSION_INSERT_COLUMNS, '?')})"
    " ON CONFLICT DO NOTHING"
)
PUT_LEASE = f"INSERT OR REPLACE INTO leases ({LEASE_LIST}) VALUES ({placeholders(LEASE_COLUMNS, '?')})"
INSERT_EVENT = f"INSERT INTO events ({EVENT_LIST}) VALUES ({placeholders(EVENT_COLUMNS, '?')})"
NEXT_POSITION = "SELECT COALESCE(MAX(position), -1) + 1 FROM messages WHERE session_id = ?"
COUNT_FROM_POSITION = "SELECT count(*) FROM messages WHERE session_id = ? AND position >= ?"
NOT_LEASED = "NOT EXISTS (SELECT 1 FROM leases AS l WHERE l.session_key = e.session_key AND l.expires_at > :now)"
LIST_ENTRIES = f"""
    {SELECT_ENTRY} WHERE updated_at >= :since AND (updated_at, session_key) < (:after_us, :after_key)
      AND {SQLITE.condition("(SELECT metadata FROM sessions WHERE id = e.session_id)", ":metadata")}
      AND {in_namespace("e.session_key")}
    ORDER BY updated_at DESC, session_key DESC LIMIT :limit
"""
EXPIRED_ENTRIES = f"""
    {SELECT_ENTRY}
    WHERE e.expiry_finalized = 0 AND e.updated_at < :latest AND (e.updated_at, e.session_key) > (:after_us, :after_key)
      AND e.updated_at < COALESCE(
          (SELECT s.value FROM json_each(:stored) AS s WHERE s.key = e.reset_policy),
          (SELECT p.value FROM json_each(:platforms) AS p WHERE p.key = e.platform),
          (SELECT t.value FROM json_each(:chat_types) AS t WHERE t.key = e.chat_type),
          :default)
      AND {NOT_LEASED} AND {in_namespace("e.session_key")}
      AND (:announced OR NOT EXISTS (
          SELECT 1 FROM events AS v
          WHERE v.kind = 'expired' AND v.session_key = e.session_key AND v.version = e.version
            AND v.session_id = e.session_id))
    ORDER BY e.updated_at, e.session_key LIMIT :limit
"""
# An entry's own maximum age (its gateway's) wins when asked (:own); 0 or less: never pruned.
PRUNE_CUTOFF = f"""CASE WHEN NOT :own OR e.max_age_days IS NULL THEN :cutoff
    WHEN e.max_age_days > 0 THEN :now - e.max_age_days * {DAY_US} ELSE {NEVER} END"""
PRUNABLE = f"""
    SELECT session_key FROM entries AS e WHERE e.updated_at < {PRUNE_CUTOFF} AND e.suspended = 0 AND {NOT_LEASED}
      AND e.session_key NOT IN (SELECT value FROM json_each(:keep)) AND {in_namespace("e.session_key")}
    LIMIT :limit
"""
PRUNE = f"DELETE FROM entries WHERE session_key IN ({PRUNABLE}) RETURNING {ENTRY_LIST}"
PRUNE_DRY_RUN = f"{SELECT_ENTRY} WHERE session_key IN ({PRUNABLE})"
EVENTS_AFTER = f"""
    SELECT {EVENT_LIST} FROM events
    WHERE sequence > :after AND (:every OR kind IN (SELECT value FROM json_each(:kinds)))
      AND {in_namespace("session_key")}
    ORDER BY sequence LIMIT :limit
"""
LIVE_LEASE = f"SELECT {LEASE_LIST} FROM leases WHERE session_key = ? AND expires_at > ?"
LAPSED_LEASES = "DELETE FROM leases WHERE expires_at <= :now"
COUNTS = """
    SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM sessions), (SELECT count(*) FROM messages),
           (SELECT count(*) FROM leases WHERE expires_at > :now)
"""


class SqliteTransaction(SessionsTable, Transaction, marker="?"):
    """The Transaction interface over one APSW connection inside an open transaction."""

    def __init__(self, connection: apsw.Connection, search: sqlite_search.IndexStatus = "ready"):
        self.db = connection
        self.search = search  # "ready" when the full-text index exists, else why not
        self.events_added = 0  # so that a commit wakes event streams only when it has news

    def _one(self, sql: str, params: Any = ()) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else row

    def _execute(self, sql: str, params: Any = ()) -> Iterable[Any]:
        return self.db.execute(sql, params)

    def _lost_race(self, what: str) -> None:
        raise AssertionError(f"{what}: changed under SQLite's one writer")  # the unit of work read it first

    def get_entry(self, session_key: str) -> Entry | None:
        row = self._one(f"{SELECT_ENTRY} WHERE session_key = ?", (session_key,))
        return None if row is None else entry_from_row(row)

    def entry_by_session_id(self, session_id: str) -> Entry | None:
        """A scan (no index on session_id): for operators' look-ups, not for the hot path."""
        row = self._one(f"{SELECT_ENTRY} WHERE session_id = ? ORDER BY updated_at DESC LIMIT 1", (session_id,))
        return None if row is None else entry_from_row(row)

    def put_entry(self, entry: Entry) -> None:
        self.db.execute(PUT_ENTRY, entry_row(entry))

    def create_session(
        self,
        session_id: str,
        platform: str,
        user_id: str | None,
        started_at: datetime,
        session_key: str | None = None,
        chat_type: str | None = None,
    ) -> bool:
        self.db.execute(CREATE_SESSION, session_row(session_id, platform, user_id, started_at, session_key, chat_type))
        return self.db.changes() == 1

    def live_lease(self, session_key: str, now: datetime) -> Lease | None:
        row = self._one(LIVE_LEASE, (session_key, to_us(now)))
        return None if row is None else lease_from_row(row)

    def put_lease(self, lease: Lease) -> None:
        self.db.execute(PUT_LEASE, lease_row(lease))

    def delete_lease(self, session_key: str, owner: str, now: datetime) -> bool:
        self.db.execute(
            "DELETE FROM leases WHERE session_key = ? AND owner = ? AND expires_at > ?",
            (session_key, owner, to_us(now)),
        )
        return self.db.changes() == 1

    def expire_leases(self, now: datetime, session_key: str | None = None) -> list[Lease]:
        sql, params = LAPSED_LEASES, {"now": to_us(now), "key": session_key}
        if session_key is not None:
            sql += " AND session_key = :key"
        return [lease_from_row(row) for row in self.db.execute(f"{sql} RETURNING {LEASE_LIST}", params)]

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
        params = prune_params(cutoff, now, own_ages, limit=-1 if limit is None else limit, keep=json.dumps(list(keep)))
        params.update(namespace_params(namespace))
        return [entry_from_row(row) for row in self.db.execute(PRUNE_DRY_RUN if dry_run else PRUNE, params)]

    def stored_policies(self) -> list[ResetPolicy]:
        return policies_from_rows(self.db.execute(STORED_POLICIES))

    def list_entries(
        self,
        since: datetime | None,
        after: Cursor | None,
        limit: int,
        metadata: Sequence[MetadataFilter] = (),
        namespace: str | None = None,
    ) -> list[Entry]:
        params = {
            "since": NEVER if since is None else to_us(since),
            "limit": limit,
            "metadata": SQLITE.filters(metadata),
            **namespace_params(namespace),
        }
        params.update(cursor_params(after, (2**63 - 1, "")))
        return [entry_from_row(row) for row in self.db.execute(LIST_ENTRIES, params)]

    def expired_entries(
        self,
        cutoffs: ExpiryCutoffs,
        now: datetime,
        after: Cursor | None,
        limit: int,
        unannounced: bool = False,
        namespace: str | None = None,
    ) -> list[Entry]:
        params = expiry_params(cutoffs, now, after, limit, unannounced, json.dumps) | namespace_params(namespace)
        return [entry_from_row(row) for row in self.db.execute(EXPIRED_ENTRIES, params)]

    def add_event(self, event: Event, at: datetime) -> None:
        self.db.execute(INSERT_EVENT, event_row(event, at, sequence=None))  # AUTOINCREMENT numbers it
        self.events_added += 1

    def events_after(
        self, after: int, limit: int, kinds: frozenset[EventKind], namespace: str | None = None
    ) -> EventPage:
        params = {"after": after, "limit": limit, "every": not kinds, "kinds": json.dumps(sorted(kinds))}
        params.update(namespace_params(namespace))
        events = [event_from_row(row) for row in self.db.execute(EVENTS_AFTER, params)]
        if len(events) == limit:
            return EventPage(events, events[-1].sequence)
        return EventPage(events, max(after, self.event_bounds()[1]))

    def event_bounds(self) -> tuple[int, int]:
        (deleted_through,) = self._one("SELECT through FROM events_deleted")
        newest = self._one("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        return deleted_through, 0 if newest is None else newest[0]

    def delete_events(self, before: datetime) -> int:
        """A prefix of the log, so that "deleted through" stays exact even if the clock went back."""
        kept = self._one("SELECT sequence FROM events WHERE at >= ? ORDER BY sequence LIMIT 1", (to_us(before),))
        through = self.event_bounds()[1] if kept is None else kept[0] - 1
        self.db.execute("DELETE FROM events WHERE sequence <= ?", (through,))
        deleted = self.db.changes()
        self.db.execute("UPDATE events_deleted SET through = ? WHERE through < ?", (through, through))
        return deleted

    def _message_count(self, session_id: str) -> int | None:
        row = self._one("SELECT message_count FROM sessions WHERE id = ?", (session_id,))
        return None if row is None else row[0]

    def append_messages(self, session_id: str, messages: Sequence[Message], now: datetime) -> AppendResult:
        """One statement for the batch; skipped duplicates leave gaps in positions, never reuse them."""
        count = self._message_count(session_id) or 0
        start = self._one(NEXT_POSITION, (session_id,))[0]
        self._insert_messages([message_row(session_id, m, start + i, now) for i, m in enumerate(messages)])
        # Counted, not taken from total_changes(): that also counts the search index triggers' rows.
        appended = self._one(COUNT_FROM_POSITION, (session_id, start))[0]
        self._counted(session_id, count + appended, now)
        return AppendResult(appended, len(messages) - appended, count + appended)

    def replace_messages(self, session_id: str, messages: Sequence[Message], now: datetime) -> int:
        self.db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
        self._insert_messages([message_row(session_id, m, i, now) for i, m in enumerate(messages)])
        self._counted(session_id, len(messages), now)
        return len(messages)

    def _insert_messages(self, rows: list[tuple[Any, ...]]) -> None:
        self.db.executemany(INSERT_MESSAGE, rows)

    def search_messages(
        self, terms: tuple[Term, ...], where: MessageFilter, offset: int, limit: int
    ) -> tuple[list[SearchHit], bool]:
        sqlite_search.refuse(self.search)
        hits = sqlite_search.search(self.db, terms, where, offset, limit)
        return hits, not sqlite_search.progress(self.db).complete


# The call running on the event loop now, if any: its writes join the loop's turn (see the module doc).
_LOOP_CALL: contextvars.ContextVar[LoopCall | None] = contextvars.ContextVar("sessiond_loop_call", default=None)


@dataclass
class _Turn:
    """The write transaction the event loop's current turn holds open, and its commit."""

    transaction: SqliteTransaction
    committed: asyncio.Future[None]
    disk_full: bool = False


class _LogSyncs:
    """The event loop's log syncs: on the loop while the disk is quick, else on a thread of their own.

    A quick sync (a fraction of a millisecond on a local SSD) costs less on the loop than handing it
    to a thread and back. A slow one would stall every call meanwhile, so once the measured syncs
    get slow (a moving average over ``SLOW_SYNC_S``) they move to the thread: the loop goes on (and
    commits the next turns) while the disk works, each sync covering every turn committed before
    it began; they come back once the average falls under half of it.
    """

    def __init__(self, sync: Callable[[], None], done: Callable[[_Turn, BaseException | None], None]):
        self._sync, self._done = sync, done
        self._thread = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-sync")
        self._waiting: list[_Turn] = []
        self._running = False
        self.average_s = 0.0  # of recent syncs' durations
        self.on_loop = True

    def after_commit(self, turn: _Turn) -> None:
        self._waiting.append(turn)
        if not self._running:
            self._next()

    def _next(self) -> None:
        if self.on_loop:
            self._synced(self._take(), self._timed_sync())
        else:
            self._start()

    def _take(self) -> list[_Turn]:
        turns, self._waiting = self._waiting, []
        return turns

    def _timed_sync(self) -> BaseException | None:
        started = time.perf_counter()
        try:
            self._sync()
        except StorageError as exc:
            return exc
        finally:
            self.average_s += (time.perf_counter() - started - self.average_s) * SYNC_AVERAGE_WEIGHT
            self.on_loop = self.average_s < (SLOW_SYNC_S / 2 if not self.on_loop else SLOW_SYNC_S)
        return None

    def _start(self) -> None:
        turns, self._running = self._take(), True
        syncing = asyncio.get_running_loop().run_in_executor(self._thread, self._timed_sync)
        syncing.add_done_callback(lambda done: self._synced(turns, done.result()))

    def _synced(self, turns: list[_Turn], error: BaseException | None) -> None:
        self._running = False
        for turn in turns:
            self._done(turn, error)
        if self._waiting:
            self._next()

    def close(self) -> None:
        self._thread.shutdown(wait=True)


@dataclass
class _Job:
    """A unit of work waiting for a commit."""

    work: Callable[[Transaction], Any]
    deadline: float | None
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


def _fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _file_size(path: Path) -> int:
    """Bytes in the file; 0 when there is none (a WAL appears with the first write)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _storage_error(exc: BaseException) -> BaseException:
    if isinstance(exc, apsw.FullError):
        return DiskFull("the database's disk is full; writes resume once space is freed")
    return exc


class SqliteStorage:
    """The ``Storage`` interface over one SQLite file. ``durable``: every commit is on disk before
    it is acknowledged.

    SQLite runs with ``synchronous = NORMAL``, which in WAL mode keeps the database consistent
    through power loss (it syncs the log before each checkpoint and the database after it) but
    does not sync each commit; when durable, the daemon syncs the log itself after each commit
    (``_sync_log``), which is what ``FULL`` would do inside COMMIT, without holding the writer
    through the sync.
    """

    def __init__(self, path: Path, durable: bool = True, full_text_search: bool = True):
        self.path = path
        self.durable = durable
        self._log_path = Path(f"{path}-wal")
        self._lock_file = _lock(path)
        self._readers = threading.local()
        self._connections: list[apsw.Connection] = []
        self._guard = threading.Lock()
        self._pending: list[_Job] = []
        self._writer_lock = threading.Lock()
        self._verifying = threading.Condition()
        self._verifier: apsw.Connection | None = None
        self._closed = False
        self.writable = True
        self.on_writable: Callable[[bool], None] | None = None
        self.on_events: Callable[[], None] | None = None  # after a commit that added events; must not raise
        self._turn: _Turn | None = None
        self._failed_sync: str | None = None  # why writes are refused until a restart
        self._log_syncs = _LogSyncs(self._sync_log, self._turn_done)
        try:
            writer = self._connect()
            self.search_status = _open_schema(writer, path, full_text_search)
            if durable:  # the schema's own commits, and the log's directory entry (SQLite syncs it only with FULL)
                self._sync_log()
                _fsync(path.parent)
        except BaseException:
            self._release()
            raise
        self._writer = writer
        self._inode = path.stat().st_ino

    def _connect(self) -> apsw.Connection:
        try:
            connection = apsw.Connection(str(self.path))
            connection.set_busy_timeout(BUSY_TIMEOUT_MS)
            connection.pragma("foreign_keys", True)
            connection.pragma("synchronous", "NORMAL")
        except (apsw.CorruptError, apsw.NotADBError) as exc:
            raise StorageError(f"{self.path}: not a usable sessiond database ({exc}); {RECOVERY}") from None
        except apsw.Error as exc:
            raise StorageError(f"{self.path}: cannot open the database ({exc})") from None
        with self._guard:
            self._connections.append(connection)
        return connection

    def _reader(self) -> apsw.Connection:
        """This thread's read connection (WAL readers never wait for the writer)."""
        connection = getattr(self._readers, "connection", None)
        if connection is None:
            connection = self._readers.connection = self._connect()
        return connection

    def read(self, work: Callable[[Transaction], T], deadline: float | None = None) -> T:
        """One snapshot; with ``deadline``, SQLite's progress handler stops a query that runs past it
        (a search ranking a common word's matches) instead of letting it finish for nobody."""
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded("the deadline passed before the query started")
        connection = self._reader()
        if deadline is not None:
            connection.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
        connection.execute("BEGIN")
        try:
            return work(SqliteTransaction(connection, self.search_status))
        except apsw.InterruptError:
            raise DeadlineExceeded("the deadline passed while the query ran; it was stopped") from None
        finally:
            if not connection.get_autocommit():
                connection.execute("COMMIT")
            if deadline is not None:
                connection.set_progress_handler(None)

    def run_on_loop(self, call: Callable[[], T]) -> tuple[T, LoopCall]:
        """Run ``call`` on the event loop's thread, its writes in the loop's turn (module doc)."""
        loop_call = LoopCall()
        token = _LOOP_CALL.set(loop_call)
        try:
            return call(), loop_call
        finally:
            _LOOP_CALL.reset(token)

    def write(self, work: Callable[[Transaction], T], deadline: float | None = None) -> T:
        loop_call = _LOOP_CALL.get()
        if loop_call is not None:
            return self._write_in_turn(work, deadline, loop_call)
        job = _Job(work, deadline)
        with self._guard:
            self._pending.append(job)
        self._refuse_after_failed_sync()
        with self._writer_lock:
            if not job.done.is_set():  # else an earlier leader committed it already
                with self._guard:
                    batch, self._pending = self._pending, []
                self._commit(batch, self._writer)
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def _commit(self, batch: list[_Job], connection: apsw.Connection) -> None:
        """Run each job in its own savepoint, then commit them all at once.

        A job alone needs no savepoint: the transaction is rolled back if it fails.
        """
        transaction = SqliteTransaction(connection, self.search_status)
        alone = len(batch) == 1
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in batch:
                _run(job, transaction, savepoint=not alone)
            connection.execute("ROLLBACK" if alone and batch[0].error else "COMMIT")
            self._sync_log_of(batch)
            self._writable(not any(isinstance(job.error, DiskFull) for job in batch))
            if transaction.events_added and self.on_events is not None:
                self.on_events()  # a job undone by its savepoint may have counted: a harmless extra wake-up
        except apsw.Error as exc:
            if not connection.get_autocommit():
                connection.execute("ROLLBACK")
            log.error("commit failed", extra={"error": type(exc).__name__, "jobs": len(batch)})
            for job in batch:
                job.error = job.error or _storage_error(exc)
            self._writable(not isinstance(_storage_error(exc), DiskFull))
        for job in batch:
            job.done.set()

    def _write_in_turn(self, work: Callable[[Transaction], T], deadline: float | None, loop_call: LoopCall) -> T:
        """Run ``work`` now in the loop's open transaction (opening it first); committed at the turn's end.

        The turn's first write needs no savepoint: if it fails, the turn is rolled back whole,
        which undoes nothing else.
        """
        first = self._turn is None
        turn = self._turn or self._begin_turn()
        try:
            result, error = _unit(work, deadline, turn.transaction, savepoint=not first)
        except apsw.Error as exc:  # SQLite ended the whole transaction: every write of the turn is lost
            error = _storage_error(exc)
            self._end_turn(turn, error)
            raise error from None
        if error is not None:
            if first:
                self._end_turn(turn, error)
            turn.disk_full = turn.disk_full or isinstance(error, DiskFull)
            raise error
        loop_call.committed = turn.committed
        return result  # type: ignore[return-value]

    def _begin_turn(self) -> _Turn:
        self._refuse_after_failed_sync()
        if not self._writer_lock.acquire(blocking=False):
            raise WriterBusy
        try:
            self._writer.execute("BEGIN IMMEDIATE")
        except apsw.Error as exc:
            self._writer_lock.release()
            raise _storage_error(exc) from None
        loop = asyncio.get_running_loop()
        turn = self._turn = _Turn(SqliteTransaction(self._writer, self.search_status), loop.create_future())
        turn.committed.add_done_callback(_retrieved)  # a caller that went away leaves no "never retrieved"
        loop.call_soon(self._end_turn, turn, None)
        return turn

    def _end_turn(self, turn: _Turn, error: BaseException | None) -> None:
        """Commit the turn's writes (or give up on them with ``error``), then tell their callers."""
        if self._turn is not turn:
            return  # ended already, by a write that lost the transaction
        self._turn = None
        try:
            if error is None:
                self._writer.execute("COMMIT")
        except apsw.Error as exc:
            error = _storage_error(exc)
            log.error("commit failed", extra={"error": type(exc).__name__})
        finally:
            if not self._writer.get_autocommit():
                self._writer.execute("ROLLBACK")
            self._writer_lock.release()
        if error is not None:
            self._writable(not isinstance(error, DiskFull))
            turn.committed.set_exception(error)
            return
        self._writable(not turn.disk_full)
        if self.durable:
            self._log_syncs.after_commit(turn)
        else:
            self._turn_done(turn, None)

    def _turn_done(self, turn: _Turn, error: BaseException | None) -> None:
        """The turn's commit is on disk (or its sync failed): its callers may answer."""
        if error is not None:
            turn.committed.set_exception(error)
            return
        turn.committed.set_result(None)
        if turn.transaction.events_added and self.on_events is not None:
            self.on_events()

    def _refuse_after_failed_sync(self) -> None:
        if self._failed_sync is not None:
            raise StorageError(self._failed_sync)

    def _sync_log(self) -> None:
        """Put the commits written to the log so far on disk (when durable).

        A failed sync leaves unknown which of them survive a power loss (Linux may drop the
        unwritten pages), so the commit is reported failed and the storage refuses further writes
        until a restart recovers from the file as it is.
        """
        if not self.durable:
            return
        try:
            descriptor = os.open(self._log_path, os.O_RDONLY)
            try:
                os.fdatasync(descriptor)
            finally:
                os.close(descriptor)
        except OSError as exc:
            self._failed_sync = f"{self._log_path}: sync failed ({exc.strerror}); restart the daemon"
            log.error("log sync failed", extra={"error": exc.strerror})
            raise StorageError(self._failed_sync) from None

    def _sync_log_of(self, batch: list[_Job]) -> None:
        """``_sync_log`` after a batch's commit: a failed sync fails the jobs that had succeeded."""
        try:
            self._sync_log()
        except StorageError as exc:
            for job in batch:
                job.error = job.error or exc

    def _writable(self, writable: bool) -> None:
        """Tell ``on_writable`` when writes start failing for want of space, or work again."""
        if writable != self.writable:
            self.writable = writable
            log.log(logging.INFO if writable else logging.ERROR, "database writable" if writable else "disk full")
            if self.on_writable is not None:
                self.on_writable(writable)

    def check(self) -> None:
        """The file is still the one opened (not removed or replaced under the daemon) and reads."""
        self._refuse_after_failed_sync()
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            raise StorageError(f"{self.path}: removed while the daemon runs; restart it to reopen") from None
        if inode != self._inode:
            raise StorageError(f"{self.path}: replaced while the daemon runs; restart it to reopen")
        try:
            self.read(lambda tx: tx.has_two_sessions())
        except apsw.Error as exc:
            raise StorageError(f"{self.path}: cannot be read ({exc})") from None

    def stats(self, now: datetime | None = None) -> StorageStats:
        """Row counts from one snapshot, and file sizes; about 0.1 s at a million entries and 4M messages.

        On a read-only connection of its own, closed after: metrics scrapes come on short-lived
        HTTP threads, and a per-thread reader would stay open for each of them.
        """
        try:
            connection = apsw.Connection(str(self.path), flags=apsw.SQLITE_OPEN_READONLY)
            try:
                connection.set_busy_timeout(5000)
                counts = connection.execute(COUNTS, {"now": to_us(now or datetime.now(UTC))})
                (entries, sessions, messages, live_leases) = next(counts)  # one row
            finally:
                connection.close()
        except apsw.Error as exc:
            raise StorageError(f"{self.path}: cannot be read ({exc})") from None
        wal_bytes = _file_size(Path(f"{self.path}-wal"))
        return StorageStats(entries, sessions, messages, live_leases, _file_size(self.path), wal_bytes)

    def checkpoint(self) -> tuple[bool, int]:
        """Copy the WAL into the database file and truncate it: (done, bytes the WAL had).

        TRUNCATE rather than PASSIVE: SQLite's own checkpoints (PASSIVE, each time the WAL passes
        1000 pages, run by whichever RPC commits then) never shrink the file, so after a burst the
        WAL keeps its size for good; this resets it to zero bytes. It runs on the writer's
        connection under the writer lock, so RPC writes queue in-process behind it (and commit
        together after it) instead of sleeping in SQLite's busy handler, and it waits for readers
        of older snapshots only ``CHECKPOINT_WAIT_MS``: if one is still reading (the integrity
        check after start), it copies what it can, like PASSIVE, and reports not done.
        """
        with self._writer_lock:
            wal_bytes = _file_size(Path(f"{self.path}-wal"))
            self._writer.set_busy_timeout(CHECKPOINT_WAIT_MS)
            try:
                (busy, _, _) = next(self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
            except apsw.Error as exc:
                raise _storage_error(exc) from None
            finally:
                self._writer.set_busy_timeout(BUSY_TIMEOUT_MS)
        return not busy, wal_bytes

    def verify(self) -> None:
        """Read every page (``PRAGMA quick_check``); ``StorageError`` naming the file if any is bad.

        O(size of the file): the daemon runs it in the background after it starts serving, so
        a large database still starts in well under a second.
        """
        problems = self._check_pages("PRAGMA quick_check")
        if problems:
            raise StorageError(f"{self.path}: integrity check failed ({'; '.join(problems)}); {RECOVERY}")

    def integrity_problems(self) -> list[str]:
        """SQLite's full ``integrity_check`` (indexes too): its first 20 problems, none when sound;
        then, when the full-text index is complete, FTS5's check of it against the messages."""
        problems = self._check_pages("PRAGMA integrity_check(20)")
        if not problems and self.search_index()[0] == "ready":
            problems = self.read(lambda tx: sqlite_search.integrity_problems(_connection(tx)))
        return problems

    # -- the full-text index (sqlite_search) ------------------------------------------------

    def search_index(self) -> tuple[str, IndexProgress]:
        """The index's status ("ready", "building", "off", "unavailable") and how far it is built."""
        built = self.read(lambda tx: sqlite_search.progress(_connection(tx)))
        if self.search_status in ("off", "unavailable"):
            return self.search_status, built
        return ("ready" if built.complete else "building"), built

    def index_batch(self, limit: int) -> IndexProgress:
        """Index the next ``limit`` messages left to the batches, in one write transaction."""
        sqlite_search.refuse(self.search_status)
        return self.write(lambda tx: sqlite_search.index_batch(_connection(tx), limit))

    def start_index_rebuild(self) -> IndexProgress:
        """Empty the index; ``index_batch`` then fills it again."""
        sqlite_search.refuse(self.search_status)
        return self.write(lambda tx: sqlite_search.start_rebuild(_connection(tx)))

    def _check_pages(self, pragma: str) -> list[str]:
        """Run a page-checking pragma on a connection of its own, which ``close()`` can interrupt."""
        with self._verifying:
            if self._closed:
                return []
            self._verifier = self._connect()
        try:
            rows = [str(row[0]) for row in self._verifier.execute(pragma)]
        except apsw.InterruptError:
            return []  # close() cancelled the check
        except apsw.Error as exc:
            rows = [str(exc)]
        finally:
            with self._verifying:
                self._verifier = None
                self._verifying.notify_all()
        return [] if rows == ["ok"] else rows

    # -- reclaiming space (Admin.Vacuum, retention) -------------------------------------------

    def vacuum_state(self) -> VacuumState:
        with self._writer_lock:
            return self._vacuum_state()

    def _vacuum_state(self) -> VacuumState:
        free, mode = self._writer.pragma("freelist_count"), self._writer.pragma("auto_vacuum")
        return VacuumState(int(free), mode == AUTO_VACUUM_INCREMENTAL, _file_size(self.path))

    def make_incremental(self) -> None:
        """The mode changes only with a full VACUUM: it rewrites the file (needing as much free disk
        again) under the writer lock, so writes queue behind it."""
        with self._writer_lock:
            try:
                self._writer.pragma("auto_vacuum", AUTO_VACUUM_INCREMENTAL)
                self._writer.execute("VACUUM")
            except apsw.Error as exc:
                raise _storage_error(exc) from None
            log.info("database converted to incremental auto-vacuum", extra={"path": str(self.path)})

    def merge_index(self, step_pages: int) -> int:
        """Merge the full-text index's segments, which drops what deleted messages left in it (FTS5
        keeps their tombstones until then), in writes of about ``step_pages`` pages each, until FTS5
        says none is left or a few passes' worth were written. The writes made."""
        if self.search_status != "ready":
            return 0
        # Bounded: a merge can take a few passes over the index, but appends meanwhile (each adds a
        # segment) must not keep it going.
        budget = MERGE_PASSES * (2 + self.read(lambda tx: sqlite_search.index_pages(_connection(tx))) // step_pages)
        for step in range(budget):
            with self._writer_lock:
                before = self._writer.total_changes()
                try:
                    self._writer.execute(sqlite_search.MERGE, (-step_pages,))  # negative: any segments
                except apsw.Error as exc:
                    raise _storage_error(exc) from None
                if self._writer.total_changes() - before < 2:  # FTS5's documented "no work was left"
                    return step + 1
        return budget

    def reclaim(self, pages: int) -> VacuumState:
        """One short write: up to ``pages`` free pages truncated off the end of the file."""
        with self._writer_lock:
            try:
                self._writer.pragma("incremental_vacuum", pages)
            except apsw.Error as exc:
                raise _storage_error(exc) from None
            return self._vacuum_state()

    def backup(self, target: Path, progress: Callable[[int, int], None] | None = None) -> int:
        """Copy the database into the new file ``target`` while writes go on; its size in bytes.

        The copy runs inside one read transaction, which pins one WAL snapshot: commits made
        meanwhile neither restart the copy nor leak into it. It is written beside the target,
        synced, then linked into place, so the target is never a half copy, and an existing
        file is never overwritten (``AlreadyExists``).
        """
        # Created exclusively: a file or link planted under a predictable name is never written through.
        descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
        os.close(descriptor)
        partial = Path(name)
        source, destination = self._reader(), apsw.Connection(str(partial))
        try:
            destination.pragma("synchronous", "FULL")
            source.execute("BEGIN")
            try:
                source.execute("SELECT count(*) FROM entries").fetchall()  # the snapshot starts here
                with destination.backup("main", source, "main") as copy:
                    while not copy.done:
                        copy.step(BACKUP_PAGES)
                        if progress is not None:
                            progress(copy.pagecount - copy.remaining, copy.pagecount)
            finally:
                source.execute("COMMIT")
            destination.close()
            _fsync(partial)
            try:
                os.link(partial, target)
            except FileExistsError:
                raise AlreadyExists(f"name: {target.name} exists; a backup never overwrites a file") from None
            _fsync(target.parent)
            return target.stat().st_size
        except apsw.Error as exc:
            raise _storage_error(exc) from None
        finally:
            destination.close()
            partial.unlink(missing_ok=True)

    def close(self) -> None:
        """Cancel a running integrity check, wait for the writer, close every connection."""
        with self._verifying:
            self._closed = True
            if self._verifier is not None:
                self._verifier.interrupt()
            self._verifying.wait_for(lambda: self._verifier is None)
        self._log_syncs.close()
        with self._writer_lock:
            self._release()

    def _release(self) -> None:
        with self._guard:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._lock_file.close()


def _run(job: _Job, transaction: SqliteTransaction, savepoint: bool) -> None:
    """Run one queued job; with ``savepoint``, a failure undoes exactly its own changes."""
    job.result, job.error = _unit(job.work, job.deadline, transaction, savepoint)


def _unit(
    work: Callable[[Transaction], T], deadline: float | None, transaction: SqliteTransaction, savepoint: bool
) -> tuple[T | None, BaseException | None]:
    """Run one unit of work in the open transaction: (its result, or the error it raised)."""
    if deadline is not None and time.monotonic() > deadline:
        return None, DeadlineExceeded("the deadline passed before the write started; nothing was written")
    connection = transaction.db
    if savepoint:
        connection.execute("SAVEPOINT job")
    result, error = None, None
    try:
        result = work(transaction)
    except Exception as exc:
        error = _storage_error(exc)
        if savepoint:
            connection.execute("ROLLBACK TO job")  # raises if SQLite already ended the transaction
    if savepoint:
        connection.execute("RELEASE job")
    return result, error


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _lock(path: Path) -> Any:
    """Hold an exclusive lock beside the database: one daemon per file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_file = open(f"{path}.lock", "a+")  # noqa: SIM115 - held open for the daemon's life
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise StorageError(f"{path}: in use by another sessiond (lock {path}.lock is held)") from None
    return lock_file


def _fold(*values: Any) -> str | None:
    """``model.fold`` as an SQL function (of a title, NULL for no title)."""
    return fold(values[0]) if isinstance(values[0], str) else None


def _connection(tx: Transaction) -> apsw.Connection:
    """The APSW connection under one of this backend's transactions."""
    assert isinstance(tx, SqliteTransaction)
    return tx.db


def _open_schema(connection: apsw.Connection, path: Path, full_text_search: bool) -> sqlite_search.IndexStatus:
    """Check the file, bring its schema up the ladder, then create or drop the full-text index as
    configured (its status); never start on a damaged database."""
    try:
        if connection.pragma("page_count") == 0:  # a new file: set before its first table, or never (by VACUUM)
            connection.pragma("auto_vacuum", AUTO_VACUUM_INCREMENTAL)
        connection.pragma("journal_mode", "wal")
        version = connection.pragma("user_version")
        if version > len(MIGRATIONS):
            raise StorageError(
                f"{path}: schema version {version} is newer than this sessiond knows ({len(MIGRATIONS)});"
                " upgrade sessiond"
            )
        _check_not_truncated(path)
        connection.create_scalar_function("sessiond_fold", _fold, 1, deterministic=True)  # step 6 folds titles
        for step in range(version, len(MIGRATIONS)):
            with connection:
                connection.execute(MIGRATIONS[step])
                connection.pragma("user_version", step + 1)
            log.info("schema migrated", extra={"path": str(path), "user_version": step + 1})
        return sqlite_search.open_index(connection, full_text_search, str(path))
    except apsw.Error as exc:
        raise StorageError(f"{path}: not a usable sessiond database ({exc}); {RECOVERY}") from None


def restore(backup: Path, database: Path) -> Path | None:
    """Replace ``database`` with a copy of ``backup``, with no daemon on it; where the old file went.

    The backup is checked first (a sessiond schema this version knows, a sound integrity check),
    so a bad file never replaces a good one. The previous database is checkpointed and kept
    beside it (``<db>.before-restore-<time>``), never deleted; the copy is synced before the
    rename, so a crash leaves either the old database or the whole new one.
    """
    lock = _lock(database)
    try:
        _check_backup(backup)
        incoming = database.with_name(f".{database.name}.restoring")
        shutil.copyfile(backup, incoming)
        _fsync(incoming)
        kept = _set_aside(database) if database.exists() else None
        os.replace(incoming, database)
        _fsync(database.parent)
        return kept
    finally:
        lock.close()


def _check_backup(backup: Path) -> None:
    try:
        connection = apsw.Connection(
            f"{backup.absolute().as_uri()}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
        )
    except apsw.Error as exc:
        raise StorageError(f"{backup}: cannot be opened ({exc})") from None
    try:
        version = connection.pragma("user_version")
        if not 1 <= version <= len(MIGRATIONS):
            raise StorageError(f"{backup}: not a sessiond database this version can use (schema {version})")
        problems = [str(row[0]) for row in connection.execute("PRAGMA integrity_check(20)")]
        if problems != ["ok"]:
            raise StorageError(f"{backup}: integrity check failed ({'; '.join(problems)}); not restored")
    except apsw.Error as exc:
        raise StorageError(f"{backup}: not a usable sessiond database ({exc})") from None
    finally:
        connection.close()


def _set_aside(database: Path) -> Path:
    """Fold the old database's WAL into it and move it out of the way, under a dated name."""
    with contextlib.suppress(apsw.Error):  # a damaged file is moved as it is, WAL and all
        connection = apsw.Connection(str(database))
        connection.pragma("wal_checkpoint", "TRUNCATE")
        connection.close()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = database.with_name(f"{database.name}.before-restore-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{database}{suffix}", f"{kept}{suffix}")
    return kept


RECOVERY = (
    "salvage it with `sqlite3 <file> .recover | sqlite3 <new file>`, restore a backup,"
    " or move the file away; sessiond will not start on it"
)


def _check_not_truncated(path: Path) -> None:
    """A file shorter than its header says (a cut copy, a full disk) is refused at once.

    The header's page count is valid when its "version valid for" equals the change counter,
    and only without a WAL holding frames: a kill during a checkpoint leaves page 1 (with the
    new count) written before the pages that extend the file, which the WAL still holds and
    SQLite replays; the integrity check after start judges such a file.
    """
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return
    with open(path, "rb") as file:
        header = file.read(100)
    if len(header) < 100:
        return  # a new, empty database
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages, changes, valid_for = (int.from_bytes(header[i : i + 4], "big") for i in (28, 24, 92))
    if changes == valid_for and path.stat().st_size < pages * page_size:
        raise StorageError(
            f"{path}: truncated ({path.stat().st_size} bytes, the header says {pages * page_size}); {RECOVERY}"
        )
