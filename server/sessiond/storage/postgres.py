"""PostgreSQL storage: several daemons, one per gateway host, in front of one shared database.

Every guarantee the store relies on comes from the database, never from an in-process lock,
because the daemon next to it is another process on another host:

- One transaction per unit of work, from a psycopg pool. Writes run READ COMMITTED and lock what
  they read-decide-write: ``get_entry`` is ``SELECT … FOR UPDATE``, so changes of one key queue on
  its row and each sees the one before it (``expected_version`` works across daemons).
- A key's first entry, or a free lease, has no row to lock. Their writes are guarded instead: an
  entry is written only if that moves its version forward, a lease only over its own owner's. A
  guarded write that finds another transaction's row there (``INSERT … ON CONFLICT`` waits for
  that transaction) raises ``Retry``: the transaction is rolled back and the unit of work runs
  again, now seeing, and locking, that row. 64 callers on a new key: one creates the session, the
  others run twice and refresh it. Serialization failures and deadlocks are retried the same way.
  Why not SERIALIZABLE: under it every contended key retries, and 64 callers make O(n²) attempts.
- Transcript positions: an append locks its session's row before it reads ``MAX(position)``, so
  concurrent appends to one session take turns and leave no gaps between them (a duplicate
  skipped inside a batch leaves its position unused, as in SQLite); retries are skipped by the
  unique (session, message id) index with ``ON CONFLICT DO NOTHING``.
- Event sequences: handed out at commit under the lock of the log's single head row, so events
  commit in sequence order and a stream never sees 11 before 10 (a SEQUENCE gives no such
  order). The commit also NOTIFYs, which wakes the other daemons' event streams.
- Leases are rows compared with the ``now`` the store passes (its clock, injectable in tests): a
  lease is valid across daemons as far as their hosts' clocks agree (NTP).
- Timestamps are BIGINT microseconds, as in SQLite: exact equality, and the listing cursors
  (microseconds, key) compare directly in SQL. Keys are ``COLLATE "C"`` so that their order, and
  so the cursors, are SQLite's byte order whatever the database's locale.
- The schema climbs a forward-only ladder (``MIGRATIONS``) recorded in ``schema_version``, in one
  transaction under an advisory lock, so daemons starting together migrate once.

The tables go in the first schema of the connection's ``search_path`` (``options=-c
search_path=…`` in the DSN puts several installations in one database).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors, sql
from psycopg.abc import Buffer
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from psycopg.types.string import StrDumperUnknown, TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from sessiond.errors import DeadlineExceeded, DiskFull, FailedPrecondition, StorageError
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
from sessiond.storage.dialects import PG_ESCAPE, POSTGRES, pg_escaped
from sessiond.storage.interface import (
    AppendResult,
    EventPage,
    ExpiryCutoffs,
    IndexProgress,
    StorageStats,
    Transaction,
    VacuumState,
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
    SUMMARY_OF_S,
    cursor_params,
    entry_from_row,
    entry_row,
    event_from_row,
    event_row,
    expiry_params,
    hit_from_row,
    in_namespace,
    lease_from_row,
    lease_row,
    listed,
    message_row,
    namespace_params,
    placeholders,
    policies_from_rows,
    prune_params,
    search_params,
    session_row,
)
from sessiond.storage.sessions_table import SessionsTable

log = logging.getLogger("sessiond.postgres_storage")  # the logger's name predates the module's place
T = TypeVar("T")

# The schema ladder: entry i brings schema_version from i to i + 1. Forward only; a released step
# is never edited, a change is a new step.
MIGRATIONS = (
    """
    CREATE TABLE entries (
        session_key TEXT COLLATE "C" PRIMARY KEY,
        session_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        origin TEXT,
        display_name TEXT,
        platform TEXT,
        chat_type TEXT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        cache_read_tokens BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL,
        total_tokens BIGINT NOT NULL,
        estimated_cost_usd DOUBLE PRECISION NOT NULL,
        cost_status TEXT NOT NULL,
        last_prompt_tokens BIGINT NOT NULL,
        was_auto_reset BOOLEAN NOT NULL,
        auto_reset_reason TEXT,
        reset_had_activity BOOLEAN NOT NULL,
        is_fresh_reset BOOLEAN NOT NULL,
        expiry_finalized BOOLEAN NOT NULL,
        suspended BOOLEAN NOT NULL,
        resume_pending BOOLEAN NOT NULL,
        resume_reason TEXT,
        last_resume_marked_at BIGINT,
        version BIGINT NOT NULL
    );
    CREATE INDEX entries_by_activity ON entries (updated_at, session_key);
    CREATE INDEX entries_unfinalized ON entries (updated_at, session_key) WHERE NOT expiry_finalized;
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        platform TEXT NOT NULL,
        user_id TEXT,
        started_at BIGINT NOT NULL,
        ended_at BIGINT,
        end_reason TEXT,
        message_count BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        session_id TEXT NOT NULL REFERENCES sessions (id),
        position BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT,
        content_is_json BOOLEAN NOT NULL,
        tool_calls TEXT,
        tool_call_id TEXT,
        tool_name TEXT,
        reasoning TEXT,
        reasoning_content TEXT,
        reasoning_details TEXT,
        codex_reasoning_items TEXT,
        codex_message_items TEXT,
        timestamp BIGINT NOT NULL,
        token_count BIGINT,
        finish_reason TEXT,
        PRIMARY KEY (session_id, position)
    );
    CREATE UNIQUE INDEX messages_by_message_id ON messages (session_id, message_id) WHERE message_id <> '';
    CREATE TABLE leases (
        session_key TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE TABLE events (
        sequence BIGINT PRIMARY KEY,
        kind TEXT NOT NULL,
        session_key TEXT NOT NULL,
        session_id TEXT NOT NULL,
        version BIGINT NOT NULL,
        previous_session_id TEXT,
        reason TEXT,
        lease_owner TEXT,
        at BIGINT NOT NULL
    );
    CREATE UNIQUE INDEX events_expired ON events (session_key, version, session_id) WHERE kind = 'expired';
    CREATE TABLE event_log (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        newest BIGINT NOT NULL,
        deleted_through BIGINT NOT NULL
    );
    INSERT INTO event_log (newest, deleted_through) VALUES (0, 0);
    """,
    # What governs a key, sent by its gateway (NULL: the daemon's configuration).
    """
    ALTER TABLE entries ADD COLUMN reset_policy TEXT;
    ALTER TABLE entries ADD COLUMN max_age_days INTEGER;
    """,
    # Titles (SetSessionTitle): unique among stored sessions; "C" so that lineage ranges are by code point.
    """
    ALTER TABLE sessions ADD COLUMN title TEXT COLLATE "C";
    CREATE UNIQUE INDEX sessions_by_title ON sessions (title) WHERE title IS NOT NULL;
    """,
    # Lineage (GetSessionLineage): the session a new one started from, and why.
    """
    ALTER TABLE sessions ADD COLUMN parent_session_id TEXT;
    ALTER TABLE sessions ADD COLUMN parent_reason TEXT;
    CREATE INDEX sessions_by_parent ON sessions (parent_session_id, started_at) WHERE parent_session_id IS NOT NULL;
    """,
    # Search (SearchSessions, SearchMessages): the key a session started for, its title folded for
    # prefix matches ("C": ranges by code point; existing titles are folded by _migrate), and each
    # message's words as a stored tsvector with a GIN index, kept by PostgreSQL in the statement that
    # writes the message. The text of a message: its content, or a structured one's "text" parts.
    """
    ALTER TABLE sessions ADD COLUMN session_key TEXT COLLATE "C";
    ALTER TABLE sessions ADD COLUMN title_folded TEXT COLLATE "C";
    CREATE INDEX sessions_by_folded_title ON sessions (title_folded) WHERE title_folded IS NOT NULL;
    UPDATE sessions AS s SET session_key = e.session_key FROM entries AS e WHERE e.session_id = s.id;
    CREATE FUNCTION sessiond_message_text(content TEXT, is_json BOOLEAN) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN NOT is_json THEN content
                    WHEN jsonb_typeof(content::jsonb) = 'object' THEN content::jsonb ->> 'text'
                    WHEN jsonb_typeof(content::jsonb) = 'array' THEN (
                        SELECT string_agg(part ->> 'text', ' ') FROM jsonb_array_elements(content::jsonb) AS part
                        WHERE jsonb_typeof(part) = 'object')
               END
    $$;
    ALTER TABLE messages ADD COLUMN search_vector tsvector
        GENERATED ALWAYS AS (to_tsvector('simple', coalesce(sessiond_message_text(content, content_is_json), '')))
        STORED;
    CREATE INDEX messages_search ON messages USING GIN (search_vector);
    """,
    # Rewinds and compactions (transcript_table): hidden messages stay stored, numbered per session.
    """
    ALTER TABLE messages ADD COLUMN visibility TEXT;
    ALTER TABLE messages ADD COLUMN hidden_by BIGINT;
    ALTER TABLE messages ADD COLUMN hidden_at BIGINT;
    ALTER TABLE messages ADD COLUMN original_position BIGINT;
    ALTER TABLE sessions ADD COLUMN rewinds BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN compactions BIGINT NOT NULL DEFAULT 0;
    """,
    # Per-session metadata (UpdateSessionMetadata: canonical JSON text, NULL when empty) and
    # retention (DeleteSessions, ArchiveSessions): a session's chat type, last activity and
    # archiving; the entry pointing at a session found by index.
    """
    ALTER TABLE sessions ADD COLUMN metadata TEXT;
    ALTER TABLE sessions ADD COLUMN chat_type TEXT;
    ALTER TABLE sessions ADD COLUMN active_at BIGINT;
    ALTER TABLE sessions ADD COLUMN archived_at BIGINT;
    UPDATE sessions SET chat_type = e.chat_type FROM entries AS e WHERE e.session_id = sessions.id;
    UPDATE sessions SET active_at = GREATEST(started_at,
        coalesce((SELECT max(m.timestamp) FROM messages AS m WHERE m.session_id = sessions.id), started_at));
    CREATE INDEX sessions_by_activity ON sessions (active_at, id);
    CREATE INDEX entries_by_session ON entries (session_id);
    CREATE INDEX sessions_by_id_prefix ON sessions (id COLLATE "C");
    """,  # Identity links, handoffs and turns (issue 18): what a link change, a handoff and a turn event
    # carry; the links by platform user id; each session's handoffs; the newest turn of each key
    # (its token only grows: the row stays when the turn ends) and the owners waiting for one.
    """
    ALTER TABLE events ADD COLUMN identity TEXT;
    ALTER TABLE events ADD COLUMN linked_user TEXT;
    ALTER TABLE events ADD COLUMN other_session_key TEXT;
    ALTER TABLE events ADD COLUMN fencing_token BIGINT;
    CREATE TABLE identity_links (
        platform TEXT COLLATE "C" NOT NULL,
        user_id TEXT COLLATE "C" NOT NULL,
        identity TEXT COLLATE "C" NOT NULL,
        linked_at BIGINT NOT NULL,
        PRIMARY KEY (platform, user_id)
    );
    CREATE INDEX identity_links_by_identity ON identity_links (identity, platform, user_id);
    CREATE TABLE handoffs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        session_id TEXT NOT NULL,
        from_key TEXT NOT NULL,
        to_key TEXT NOT NULL,
        replaced_session_id TEXT,
        at BIGINT NOT NULL
    );
    CREATE INDEX handoffs_by_session ON handoffs (session_id, id);
    CREATE TABLE turns (
        session_key TEXT COLLATE "C" PRIMARY KEY,
        owner TEXT NOT NULL,
        token BIGINT NOT NULL,
        session_id TEXT,
        started_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        running INTEGER NOT NULL,
        announced INTEGER NOT NULL
    );
    CREATE INDEX turns_lapsing ON turns (expires_at, session_key) WHERE running = 1;
    CREATE TABLE turn_waiters (
        session_key TEXT COLLATE "C" NOT NULL,
        owner TEXT NOT NULL,
        seq BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (session_key, owner)
    );
    CREATE INDEX turn_waiters_in_line ON turn_waiters (session_key, seq);
    """,
)
FOLDED_STEP = 6  # the rung after which existing titles get their folded spelling
# Hits ranked in an inner query, so that ts_headline (it parses the whole text) runs for one page only.
HITS = f"""
    SELECT hit.shown_position, hit.message_id, hit.role, hit.timestamp,
           ts_headline('simple', coalesce(sessiond_message_text(hit.content, hit.content_is_json), ''), hit.query,
                       'StartSel=">>>", StopSel="<<<", FragmentDelimiter="...", MaxFragments=1, MaxWords=40,
                        MinWords=15'),
           hit.score, COALESCE(hit.visibility, ''), COALESCE(hit.hidden_by, 0), {SUMMARY_OF_S}
    FROM (
        SELECT m.session_id, m.position, m.message_id, m.role, m.timestamp, m.content, m.content_is_json, q.query,
               ts_rank(m.search_vector, q.query) AS score, COALESCE(m.original_position, m.position) AS shown_position,
               m.visibility, m.hidden_by
        FROM messages AS m JOIN sessions AS s ON s.id = m.session_id,
             to_tsquery('simple', %(match)s) AS q (query)
        WHERE m.search_vector @@ q.query AND COALESCE(m.visibility, '') <> 'rewound'
          AND s.platform = coalesce(%(platform)s, s.platform)
          AND (s.session_key = %(key)s OR s.id = (SELECT session_id FROM entries WHERE session_key = %(key)s)
               OR %(any_key)s)
          AND m.session_id = coalesce(%(session)s, m.session_id)
          AND m.timestamp >= %(since)s AND m.timestamp < %(until)s
          AND (%(any_role)s OR m.role = ANY(%(roles)s))
          AND (%(include_archived)s OR s.archived_at IS NULL) AND {POSTGRES.condition("s.metadata", "%(metadata)s")}
          AND {in_namespace("s.session_key", "%(ns)s", "%(ns_len)s")}
        ORDER BY score DESC, m.session_id, m.position LIMIT %(limit)s OFFSET %(offset)s
    ) AS hit JOIN sessions AS s ON s.id = hit.session_id
    ORDER BY hit.score DESC, hit.session_id, hit.position
"""
MIGRATION_LOCK = 0x5E55_10D  # advisory lock class of the migrations; the schema's name hash is the key
ATTEMPTS = 8  # runs of one unit of work that lost races before it gives up (two suffice for a new key)
CONNECT_SECONDS = 5.0  # the longest a unit of work waits for a connection when none is given a deadline
CHECK_SECONDS = 2.0  # the health check's budget
CHECK_ATTEMPTS = 3  # connections the check may find closed by the server before it says the database is down
LISTEN_SECONDS = 1.0  # how often the NOTIFY listener looks up from its socket (it also wakes on close)

# An entry with its session's metadata (a look-up by primary key per entry read).
SELECT_ENTRY = f"SELECT {ENTRY_LIST}, (SELECT metadata FROM sessions WHERE id = e.session_id) FROM entries AS e"
PUT_ENTRY = f"""
    INSERT INTO entries ({ENTRY_LIST}) VALUES ({placeholders(ENTRY_COLUMNS, "%s")})
    ON CONFLICT (session_key) DO UPDATE SET ({ENTRY_LIST}) = ({listed([f"EXCLUDED.{n}" for n in ENTRY_COLUMNS])})
    WHERE entries.version < EXCLUDED.version
"""
PUT_LEASE = f"""
    INSERT INTO leases ({LEASE_LIST}) VALUES ({placeholders(LEASE_COLUMNS, "%s")})
    ON CONFLICT (session_key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE leases.owner = EXCLUDED.owner
"""
LIVE_LEASE = f"SELECT {LEASE_LIST} FROM leases WHERE session_key = %s AND expires_at > %s"
CREATE_SESSION = (
    f"INSERT INTO sessions ({listed(SESSION_INSERT_COLUMNS)}) VALUES ({placeholders(SESSION_INSERT_COLUMNS, '%s')})"
    " ON CONFLICT DO NOTHING"
)
# A batch in one statement (a column of values each): an append of 100 costs one statement, not 100.
# unnest's arrays are typed by column: text unless named here.
MESSAGE_TYPES = {"content_is_json": "boolean", "timestamp": "bigint", "token_count": "bigint", "position": "bigint"}
MESSAGE_ARRAYS = listed([f"%s::{MESSAGE_TYPES.get(column, 'text')}[]" for column in MESSAGE_INSERT_COLUMNS])
INSERT_MESSAGES = (
    f"INSERT INTO messages ({listed(MESSAGE_INSERT_COLUMNS)}) SELECT * FROM unnest({MESSAGE_ARRAYS})"
    " ON CONFLICT DO NOTHING"
)
NEXT_POSITION = "SELECT COALESCE(MAX(position), -1) + 1 FROM messages WHERE session_id = %s"
NOT_LEASED = "NOT EXISTS (SELECT 1 FROM leases AS l WHERE l.session_key = e.session_key AND l.expires_at > %(now)s)"
LIST_ENTRIES = f"""
    {SELECT_ENTRY} WHERE updated_at >= %(since)s AND (updated_at, session_key) < (%(after_us)s, %(after_key)s)
      AND {POSTGRES.condition("(SELECT metadata FROM sessions WHERE id = e.session_id)", "%(metadata)s")}
      AND {in_namespace("e.session_key", "%(ns)s", "%(ns_len)s")}
    ORDER BY updated_at DESC, session_key DESC LIMIT %(limit)s
"""
EXPIRED_ENTRIES = f"""
    {SELECT_ENTRY}
    WHERE NOT e.expiry_finalized AND e.updated_at < %(latest)s
      AND (e.updated_at, e.session_key) > (%(after_us)s, %(after_key)s)
      AND e.updated_at < COALESCE((%(stored)s ->> e.reset_policy)::BIGINT,
          (%(platforms)s ->> e.platform)::BIGINT, (%(chat_types)s ->> e.chat_type)::BIGINT, %(default)s)
      AND {NOT_LEASED} AND {in_namespace("e.session_key", "%(ns)s", "%(ns_len)s")}
      AND (%(announced)s OR NOT EXISTS (
          SELECT 1 FROM events AS v
          WHERE v.kind = 'expired' AND v.session_key = e.session_key AND v.version = e.version
            AND v.session_id = e.session_id))
    ORDER BY e.updated_at, e.session_key LIMIT %(limit)s
"""
# An entry's own maximum age (its gateway's) wins when asked (own); 0 or less: never pruned.
PRUNE_CUTOFF = f"""CASE WHEN NOT %(own)s OR e.max_age_days IS NULL THEN %(cutoff)s
    WHEN e.max_age_days > 0 THEN %(now)s - e.max_age_days::BIGINT * {DAY_US} ELSE {NEVER} END"""
PRUNABLE = (
    f"e.updated_at < {PRUNE_CUTOFF} AND NOT e.suspended AND {NOT_LEASED} AND NOT (e.session_key = ANY(%(keep)s))"
    f" AND {in_namespace('e.session_key', '%(ns)s', '%(ns_len)s')}"
)
# The conditions twice: a row changed while the DELETE waited for its lock is checked again
# (READ COMMITTED re-evaluates the outer WHERE, not the subquery), so a just-refreshed entry stays.
PRUNE = f"""
    DELETE FROM entries AS e
    WHERE e.session_key IN (SELECT session_key FROM entries AS e WHERE {PRUNABLE} LIMIT %(limit)s) AND {PRUNABLE}
    RETURNING {ENTRY_LIST}
"""
PRUNE_DRY_RUN = f"SELECT {ENTRY_LIST} FROM entries AS e WHERE {PRUNABLE} LIMIT %(limit)s"
ANNOUNCED = "SELECT 1 FROM events WHERE kind = 'expired' AND session_key = %s AND version = %s AND session_id = %s"
INSERT_EVENT = f"INSERT INTO events ({EVENT_LIST}) VALUES ({placeholders(EVENT_COLUMNS, '%s')})"
EVENTS_AFTER = f"""
    SELECT {EVENT_LIST} FROM events
    WHERE sequence > %(after)s AND (%(every)s OR kind = ANY(%(kinds)s))
      AND {in_namespace("session_key", "%(ns)s", "%(ns_len)s")}
    ORDER BY sequence LIMIT %(limit)s
"""
TIME_LIMIT = "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)"
COUNTS = """
    SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM sessions), (SELECT count(*) FROM messages),
           (SELECT count(*) FROM leases WHERE expires_at > %s),
           (SELECT COALESCE(sum(pg_total_relation_size(oid)), 0)::BIGINT FROM pg_class
            WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r')
"""


class NulSafeDumper(StrDumperUnknown):
    """Strings in, escaped (``dialects.pg_escaped``: PostgreSQL text cannot hold U+0000)."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(pg_escaped(obj))


_ESCAPED = re.compile(PG_ESCAPE + "(.)", re.DOTALL)


class NulSafeLoader(TextLoader):
    def load(self, data: Buffer) -> str | bytes:
        value = super().load(data)  # bytes only from a SQL_ASCII database
        if isinstance(value, str) and PG_ESCAPE in value:
            return _ESCAPED.sub(lambda m: "\x00" if m[1] == "0" else PG_ESCAPE, value)
        return value


def _nul_safe(connection: psycopg.Connection[Any]) -> None:
    """Configure a pooled connection: strings travel NUL-safe."""
    connection.adapters.register_dumper(str, NulSafeDumper)
    connection.adapters.register_loader("text", NulSafeLoader)


class Retry(Exception):
    """The unit of work lost a race its reads could not see; roll back and run it again."""


def describe(dsn: str) -> str:
    """``postgres host:port/dbname``: where the database is, for messages; never the password."""
    parts = conninfo_to_dict(dsn)
    return f"postgres {parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or '-'}"


class PostgresTransaction(SessionsTable, Transaction, marker="%s", dialect=POSTGRES):
    """The Transaction interface over one connection inside an open transaction.

    ``writing``: entries read are locked (``FOR UPDATE``) until the commit. Events are kept until
    the commit (``flush_events``), so the log's head row is the last lock a transaction takes;
    a read of the log in the same transaction stores them first.
    """

    def __init__(self, connection: psycopg.Connection[Any], writing: bool, channel: str):
        self.db, self.channel = connection, channel
        self.lock = " FOR UPDATE" if writing else ""
        self.pending: list[tuple[Event, datetime]] = []
        self.events_added = 0

    def _one(self, query: str, params: Any = ()) -> Any:
        return self.db.execute(query, params).fetchone()

    def _execute(self, sql: str, params: Any = ()) -> Iterable[Any]:
        return self.db.execute(sql, params)

    def _rows(self, query: str, params: Any = ()) -> list[Any]:
        return self.db.execute(query, params).fetchall()

    def _lost_race(self, what: str) -> None:
        raise Retry(f"{what} was written meanwhile")

    def get_entry(self, session_key: str) -> Entry | None:
        row = self._one(f"{SELECT_ENTRY} WHERE session_key = %s{self.lock}", (session_key,))
        return None if row is None else entry_from_row(row)

    def entry_by_session_id(self, session_id: str) -> Entry | None:
        """A scan (no index on session_id): for operators' look-ups, not for the hot path."""
        row = self._one(f"{SELECT_ENTRY} WHERE session_id = %s ORDER BY updated_at DESC LIMIT 1", (session_id,))
        return None if row is None else entry_from_row(row)

    def put_entry(self, entry: Entry) -> None:
        """Insert, or overwrite an older version; a same or newer one is another transaction's: ``Retry``."""
        if self.db.execute(PUT_ENTRY, entry_row(entry)).rowcount == 0:
            raise Retry(f"entry {entry.session_key!r} was written meanwhile")

    def create_session(
        self,
        session_id: str,
        platform: str,
        user_id: str | None,
        started_at: datetime,
        session_key: str | None = None,
        chat_type: str | None = None,
    ) -> bool:
        row = session_row(session_id, platform, user_id, started_at, session_key, chat_type)
        return self.db.execute(CREATE_SESSION, row).rowcount == 1

    def live_lease(self, session_key: str, now: datetime) -> Lease | None:
        row = self._one(LIVE_LEASE, (session_key, to_us(now)))
        return None if row is None else lease_from_row(row)

    def put_lease(self, lease: Lease) -> None:
        """Take a free key or renew one's own lease; another owner's lease taken meanwhile: ``Retry``."""
        if self.db.execute(PUT_LEASE, lease_row(lease)).rowcount == 0:
            raise Retry(f"lease of {lease.session_key!r} was taken meanwhile")

    def delete_lease(self, session_key: str, owner: str, now: datetime) -> bool:
        cursor = self.db.execute(
            "DELETE FROM leases WHERE session_key = %s AND owner = %s AND expires_at > %s",
            (session_key, owner, to_us(now)),
        )
        return cursor.rowcount == 1

    def expire_leases(self, now: datetime, session_key: str | None = None) -> list[Lease]:
        query, params = "DELETE FROM leases WHERE expires_at <= %(now)s", {"now": to_us(now), "key": session_key}
        if session_key is not None:
            query += " AND session_key = %(key)s"
        return [lease_from_row(row) for row in self._rows(f"{query} RETURNING {LEASE_LIST}", params)]

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
        params = prune_params(cutoff, now, own_ages, limit=limit, keep=list(keep), **namespace_params(namespace))
        return [entry_from_row(row) for row in self._rows(PRUNE_DRY_RUN if dry_run else PRUNE, params)]

    def stored_policies(self) -> list[ResetPolicy]:
        return policies_from_rows(self._rows(STORED_POLICIES, ()))

    def list_entries(
        self,
        since: datetime | None,
        after: Cursor | None,
        limit: int,
        metadata: Sequence[MetadataFilter] = (),
        namespace: str | None = None,
    ) -> list[Entry]:
        params: dict[str, Any] = {"since": NEVER if since is None else to_us(since), "limit": limit}
        params["metadata"] = POSTGRES.filters(metadata)
        params.update(namespace_params(namespace))
        params.update(cursor_params(after, (2**63 - 1, "")))
        return [entry_from_row(row) for row in self._rows(LIST_ENTRIES, params)]

    def expired_entries(
        self,
        cutoffs: ExpiryCutoffs,
        now: datetime,
        after: Cursor | None,
        limit: int,
        unannounced: bool = False,
        namespace: str | None = None,
    ) -> list[Entry]:
        params = expiry_params(cutoffs, now, after, limit, unannounced, Jsonb) | namespace_params(namespace)
        return [entry_from_row(row) for row in self._rows(EXPIRED_ENTRIES, params)]

    # -- the event log ------------------------------------------------------------------

    def add_event(self, event: Event, at: datetime) -> None:
        self.pending.append((event, at))

    def flush_events(self) -> None:
        """Number and store the events kept so far, and NOTIFY the other daemons (at commit).

        Under the log's head row lock, held until the commit: sequences commit in order, and an
        "expired" event whose session version is in the log already is dropped. Each daemon's
        expiry scan searches before it writes, so two daemons may find the same session; the
        second to commit announces it no more (the unique index ``events_expired`` insists).
        """
        if any(event.kind == "expired" for event, _ in self.pending):
            self._lock_log()
            self.pending = [(e, at) for e, at in self.pending if e.kind != "expired" or not self._announced(e)]
        if not self.pending:
            return
        (newest,) = self._one("UPDATE event_log SET newest = newest + %s RETURNING newest", (len(self.pending),))
        first = newest - len(self.pending) + 1
        rows = [event_row(event, at, first + i) for i, (event, at) in enumerate(self.pending)]
        self.db.cursor().executemany(INSERT_EVENT, rows)
        self.db.execute("SELECT pg_notify(%s, '')", (self.channel,))
        self.events_added += len(self.pending)
        self.pending.clear()

    def _lock_log(self) -> tuple[int, int]:
        """Lock the log's head row: (deleted through, newest)."""
        return self._one("SELECT deleted_through, newest FROM event_log FOR UPDATE")  # type: ignore[no-any-return]

    def _announced(self, event: Event) -> bool:
        return self._one(ANNOUNCED, (event.session_key, event.version, event.session_id)) is not None

    def events_after(
        self, after: int, limit: int, kinds: frozenset[EventKind], namespace: str | None = None
    ) -> EventPage:
        self.flush_events()
        params = {"after": after, "limit": limit, "every": not kinds, "kinds": sorted(kinds)}
        params.update(namespace_params(namespace))
        events = [event_from_row(row) for row in self._rows(EVENTS_AFTER, params)]
        if len(events) == limit:
            return EventPage(events, events[-1].sequence)
        return EventPage(events, max(after, self.event_bounds()[1]))

    def event_bounds(self) -> tuple[int, int]:
        self.flush_events()
        return self._one("SELECT deleted_through, newest FROM event_log")  # type: ignore[no-any-return]

    def delete_events(self, before: datetime) -> int:
        """A prefix of the log, under the head's lock, so that "deleted through" stays exact."""
        self.flush_events()
        _, newest = self._lock_log()
        kept = self._one("SELECT sequence FROM events WHERE at >= %s ORDER BY sequence LIMIT 1", (to_us(before),))
        through = newest if kept is None else kept[0] - 1
        deleted = self.db.execute("DELETE FROM events WHERE sequence <= %s", (through,)).rowcount
        self.db.execute("UPDATE event_log SET deleted_through = %s WHERE deleted_through < %s", (through, through))
        return deleted

    # -- transcripts --------------------------------------------------------------------

    def _lock_session(self, session_id: str) -> int:
        """Lock the session's row (appends and rewrites of one transcript take turns): its message count."""
        row = self._one("SELECT message_count FROM sessions WHERE id = %s FOR UPDATE", (session_id,))
        return 0 if row is None else int(row[0])

    def _insert_messages(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert the rows, skipping message ids stored already; how many were inserted."""
        if not rows:
            return 0
        return self.db.execute(INSERT_MESSAGES, [list(column) for column in zip(*rows, strict=True)]).rowcount

    def append_messages(self, session_id: str, messages: Sequence[Message], now: datetime) -> AppendResult:
        """Skipped duplicates leave gaps in positions, never reuse them (as in SQLite)."""
        count = self._lock_session(session_id)
        start = self._one(NEXT_POSITION, (session_id,))[0]
        appended = self._insert_messages([message_row(session_id, m, start + i, now) for i, m in enumerate(messages)])
        self._counted(session_id, count + appended, now)
        return AppendResult(appended, len(messages) - appended, count + appended)

    def replace_messages(self, session_id: str, messages: Sequence[Message], now: datetime) -> int:
        self._lock_session(session_id)
        self.db.execute("DELETE FROM messages WHERE session_id = %s", (session_id,))
        self._insert_messages([message_row(session_id, m, i, now) for i, m in enumerate(messages)])
        self._counted(session_id, len(messages), now)
        return len(messages)

    def search_messages(
        self, terms: tuple[Term, ...], where: MessageFilter, offset: int, limit: int
    ) -> tuple[list[SearchHit], bool]:
        """The index is PostgreSQL's GIN over the stored tsvectors: always complete."""
        params = search_params(tsquery(terms), where, offset, limit, list, POSTGRES)
        return [hit_from_row(row) for row in self._rows(HITS, params)], False


def tsquery(terms: tuple[Term, ...]) -> str:
    """``to_tsquery`` text: the words of a phrase joined by ``<->`` (``:*`` on a prefix), terms by ``&``.

    Terms are lower-case letters and digits only (``rules.search``), so nothing needs escaping.
    """

    def phrase(term: Term) -> str:
        quoted = [f"'{word}'" for word in term.words]
        if term.prefix:
            quoted[-1] += ":*"
        return " <-> ".join(quoted)

    return " & ".join(f"({phrase(term)})" for term in terms)


def _fold_titles(connection: psycopg.Connection[Any]) -> None:
    """Give the titles stored before search their folded spelling (``model.fold``, as new ones get)."""
    titled = connection.execute("SELECT id, title FROM sessions WHERE title IS NOT NULL").fetchall()
    for session_id, title in titled:
        connection.execute("UPDATE sessions SET title_folded = %s WHERE id = %s", (fold(title), session_id))


def _migrate(connection: psycopg.Connection[Any], where: str) -> str:
    """Bring the schema up the ladder (in one transaction, under the advisory lock); the schema's name."""
    with connection.transaction():
        schema = connection.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
        if schema is None:
            raise StorageError(f"{where}: no schema to create tables in (check search_path and the schema exist)")
        connection.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (MIGRATION_LOCK, schema))
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        version = 0 if row is None else row[0]
        if version > len(MIGRATIONS):
            raise StorageError(
                f"{where}: schema version {version} is newer than this sessiond knows ({len(MIGRATIONS)});"
                " upgrade sessiond"
            )
        for step in range(version, len(MIGRATIONS)):
            connection.execute(MIGRATIONS[step].encode())  # bytes: several statements, no parameters
            if step + 1 == FOLDED_STEP:
                _fold_titles(connection)
            log.info("schema migrated", extra={"database": where, "schema_version": step + 1})
        if row is None:
            connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS),))
        elif version < len(MIGRATIONS):
            connection.execute("UPDATE schema_version SET version = %s", (len(MIGRATIONS),))
    return str(schema)


class PostgresStorage:
    """The ``Storage`` interface over a PostgreSQL database shared by any number of daemons.

    ``pool_size``: connections at most (the daemon's store threads each need one at a time).
    """

    def __init__(self, dsn: str, pool_size: int):
        self.dsn, self.where = dsn, describe(dsn)
        self.writable = True
        self.on_writable: Callable[[bool], None] | None = None
        self.on_events: Callable[[], None] | None = None  # after a commit that added events; must not raise
        try:
            with psycopg.connect(dsn, connect_timeout=int(CONNECT_SECONDS), autocommit=True) as connection:
                schema = _migrate(connection, self.where)
        except psycopg.Error as exc:
            raise StorageError(f"{self.where}: cannot open the database ({_reason(exc)})") from None
        self.channel = f"sessiond_events.{schema}"  # NOTIFY channel of this schema's event log
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": int(CONNECT_SECONDS)},
            configure=_nul_safe,
            name="sessiond",
            open=True,
        )
        # The health check's own connection: it must not queue behind the writers for a pooled one,
        # or a busy daemon would look like an unreachable database.
        self._check_connection: psycopg.Connection[Any] | None = None
        self._check_lock = threading.Lock()
        self._closing = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="pg-listen", daemon=True)
        self._listener.start()

    # -- units of work ------------------------------------------------------------------

    def run_on_loop(self, call: Callable[[], T]) -> None:
        """Never: every statement is a network round trip, which would stall the event loop."""
        return None

    def read(self, work: Callable[[Transaction], T], deadline: float | None = None) -> T:
        """One snapshot for the whole unit (REPEATABLE READ, READ ONLY: it never waits or fails to
        serialize); with ``deadline``, no statement of it runs past it."""
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceeded("the deadline passed before the query started")
        return self._attempts(lambda: self._read_once(work, deadline), None)

    def write(self, work: Callable[[Transaction], T], deadline: float | None = None) -> T:
        """Run ``work`` in one READ COMMITTED transaction, again when it lost a race (``Retry``).

        A connection found broken before the commit was sent (the server restarted since it was
        pooled) is retried too; one that breaks during the commit leaves the outcome unknown.
        """
        return self._attempts(lambda: self._write_once(work, deadline), deadline)

    def _attempts(self, attempt: Callable[[], T], deadline: float | None) -> T:
        """``attempt()`` until it does not raise ``Retry``: at most ``ATTEMPTS`` times, within the deadline."""
        for number in range(1, ATTEMPTS + 1):
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded("the deadline passed before the write started; nothing was written")
            try:
                return attempt()
            except Retry as lost:
                if number == ATTEMPTS:
                    raise StorageError(f"{self.where}: gave up after {ATTEMPTS} attempts ({lost})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_once(self, work: Callable[[Transaction], T], deadline: float | None) -> T:
        try:
            with self._pool.connection(timeout=_remaining(deadline, CONNECT_SECONDS)) as connection:
                connection.isolation_level, connection.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
                with connection.transaction():
                    if deadline is not None:
                        _time_limit(connection, deadline)
                    return work(PostgresTransaction(connection, writing=False, channel=self.channel))
        except psycopg.Error as exc:
            if isinstance(exc, errors.QueryCanceled) and deadline is not None:
                raise DeadlineExceeded("the deadline passed while the query ran; it was stopped") from None
            raise self._error(exc) from None

    def _write_once(self, work: Callable[[Transaction], T], deadline: float | None) -> T:
        committing = False
        try:
            with self._pool.connection(timeout=_remaining(deadline, CONNECT_SECONDS)) as connection:
                connection.isolation_level, connection.read_only = psycopg.IsolationLevel.READ_COMMITTED, False
                transaction = PostgresTransaction(connection, writing=True, channel=self.channel)
                with connection.transaction():
                    if deadline is not None:
                        _time_limit(connection, deadline)
                    result = work(transaction)
                    transaction.flush_events()
                    committing = True
        except psycopg.Error as exc:
            error = self._error(exc, deadline, committing)
            self._writable(not isinstance(error, DiskFull))
            raise error from None
        self._writable(True)
        if transaction.events_added and self.on_events is not None:
            self.on_events()
        return result

    def _error(self, exc: psycopg.Error, deadline: float | None = None, committing: bool = False) -> BaseException:
        """The domain error of a database error (``Retry`` for the ones worth another run)."""
        if isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected | errors.UniqueViolation):
            # UniqueViolation: units check before they insert, so another daemon won a race; the
            # next run sees its row (a title another session took is ALREADY_EXISTS then).
            return Retry(type(exc).__name__)
        if isinstance(exc, errors.DiskFull):
            return DiskFull("the database's disk is full; writes resume once space is freed")
        if isinstance(exc, errors.QueryCanceled | errors.LockNotAvailable) and deadline is not None:
            return DeadlineExceeded("the deadline passed while the write waited; nothing was written")
        if _disconnected(exc) and not committing and not isinstance(exc, PoolTimeout):
            self._pool.check()  # drop the other connections the server closed, too
            return Retry(f"connection lost ({_reason(exc)})")
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            outcome = "; the commit's outcome is unknown" if committing else ""
            return StorageError(f"{self.where}: unavailable ({_reason(exc)}){outcome}")
        return exc

    def _writable(self, writable: bool) -> None:
        """Tell ``on_writable`` when writes start failing for want of space, or work again."""
        if writable != self.writable:
            self.writable = writable
            log.log(logging.INFO if writable else logging.ERROR, "database writable" if writable else "disk full")
            if self.on_writable is not None:
                self.on_writable(writable)

    # -- other daemons' events ----------------------------------------------------------

    def _listen(self) -> None:
        """Wake this daemon's event streams when any daemon commits events (LISTEN/NOTIFY).

        Its own connection, outside the pool; reconnects after an outage, waking the streams
        then, since events may have been committed while it was away.
        """
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=int(CONNECT_SECONDS)) as connection:
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._wake()
                    while not self._closing.is_set():
                        for _ in connection.notifies(timeout=LISTEN_SECONDS):
                            if self._closing.is_set():
                                break
                            self._wake()
            except psycopg.Error:
                self._closing.wait(LISTEN_SECONDS)

    def _wake(self) -> None:
        if self.on_events is not None:
            self.on_events()

    # -- the daemon's other needs ---------------------------------------------------------

    def check(self) -> None:
        """A ``SELECT 1`` within ``CHECK_SECONDS``, on a connection of its own (never queued behind
        the writers' pooled ones).

        A connection the server closed since the last check (``pg_terminate_backend``, an
        ``idle_session_timeout``, a proxy's restart) says nothing about the database: the check
        connects again and runs once more (up to ``CHECK_ATTEMPTS``: a wave of terminations can
        close the new connection too), so that health does not flap with the database up.
        """
        deadline = time.monotonic() + CHECK_SECONDS
        with self._check_lock:
            for attempt in range(1, CHECK_ATTEMPTS + 1):
                try:
                    self._checked_connection(deadline).execute("SELECT 1")
                    return
                except psycopg.Error as exc:
                    self._drop_check_connection()
                    if attempt < CHECK_ATTEMPTS and _disconnected(exc) and time.monotonic() < deadline:
                        continue  # closed by the server (it may close a new one too, in a wave of terminations)
                    raise StorageError(f"{self.where}: cannot be read ({_reason(exc)})") from None

    def _checked_connection(self, deadline: float) -> psycopg.Connection[Any]:
        if self._check_connection is None or self._check_connection.closed:
            budget = max(1, int(_remaining(deadline, CHECK_SECONDS)))
            timeout_ms = budget * 1000  # the statement's too, should the server hang
            self._check_connection = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=budget, options=f"-c statement_timeout={timeout_ms}"
            )
        return self._check_connection

    def _drop_check_connection(self) -> None:
        if self._check_connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._check_connection.close()
            self._check_connection = None

    def stats(self, now: datetime | None = None) -> StorageStats:
        """Row counts from one statement (one snapshot) and the size of sessiond's tables.

        PostgreSQL's WAL is the server's, shared by every database in it: ``wal_bytes`` is 0.
        """
        try:
            with self._pool.connection(timeout=CONNECT_SECONDS) as connection:
                counts = connection.execute(COUNTS, (to_us(now or datetime.now(UTC)),)).fetchone()
        except psycopg.Error as exc:
            raise StorageError(f"{self.where}: cannot be read ({_reason(exc)})") from None
        return StorageStats(*counts, wal_bytes=0)  # type: ignore[misc]

    def checkpoint(self) -> tuple[bool, int]:
        """Nothing to do: PostgreSQL checkpoints its WAL itself. (done, bytes) as SQLite's."""
        return True, 0

    def verify(self) -> None:
        """PostgreSQL checks its own pages (data checksums, amcheck); this checks that it answers."""
        self.check()

    def integrity_problems(self) -> list[str]:
        self.check()
        return []

    def search_index(self) -> tuple[str, IndexProgress]:
        """PostgreSQL keeps the index in the statements that write messages: always ready."""
        return "ready", IndexProgress(0, 0, True)

    def index_batch(self, limit: int) -> IndexProgress:
        return IndexProgress(0, 0, True)

    def start_index_rebuild(self) -> IndexProgress:
        raise FailedPrecondition(
            "PostgreSQL maintains the search index itself; rebuild it with REINDEX INDEX messages_search"
        )

    def backup(self, target: Path, progress: Callable[[int, int], None] | None = None) -> int:
        raise FailedPrecondition("backup: the postgres backend is backed up with pg_dump or the database's own backups")

    def vacuum_state(self) -> VacuumState:
        raise FailedPrecondition("vacuum: PostgreSQL's autovacuum reclaims the space of deleted rows by itself")

    def make_incremental(self) -> None:
        self.vacuum_state()

    def merge_index(self, step_pages: int) -> int:
        return 0  # the GIN index drops deleted rows' entries with VACUUM, by autovacuum

    def reclaim(self, pages: int) -> VacuumState:
        return self.vacuum_state()

    def close(self) -> None:
        """Stop the listener and close every connection.

        The listener is woken by a notification on its own channel, so that closing does not
        wait out its ``LISTEN_SECONDS`` (the other daemons on the channel get one spare wake-up).
        """
        self._closing.set()
        with contextlib.suppress(psycopg.Error), self._pool.connection(timeout=CHECK_SECONDS) as connection:
            connection.execute("SELECT pg_notify(%s, 'closing')", (self.channel,))
        self._pool.close()
        with self._check_lock:
            self._drop_check_connection()
        self._listener.join()


def _remaining(deadline: float | None, default: float) -> float:
    return default if deadline is None else max(0.001, deadline - time.monotonic())


def _time_limit(connection: psycopg.Connection[Any], deadline: float) -> None:
    """No statement or lock wait of this transaction outlives the caller's deadline."""
    limit = f"{max(1, int(_remaining(deadline, 0) * 1000))}ms"
    connection.execute(TIME_LIMIT, (limit, limit))


def _disconnected(exc: psycopg.Error) -> bool:
    """The connection is gone (server restart, network), as opposed to a statement's own failure."""
    state = exc.sqlstate or ""
    return isinstance(exc, psycopg.OperationalError) and (not state or state.startswith(("08", "57P")))


def _reason(exc: psycopg.Error) -> str:
    """The first line of a database error: libpq's messages name hosts and users, never passwords."""
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}"
