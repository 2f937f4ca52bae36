"""Full-text search of transcripts on SQLite: an FTS5 index kept by triggers, built in batches.

The index (``message_index``) is an external-content FTS5 table over a view of the messages'
searchable text (``message_text``: the text of a plain message, the ``text`` parts of a
structured one), so no text is stored twice. Triggers on ``messages`` update it inside the
statement that changes a message: an append, a rewrite, a deletion commit with their index
changes or not at all, and a crash can never leave the two apart.

The index is not a rung of the schema ladder because it depends on the SQLite build (FTS5 may
be missing) and on the operator (``storage.full_text_search``): it is created, or dropped, when
the storage opens. Created over existing messages, or emptied by a rebuild, it is filled in
batches of short transactions while the daemon serves (``index_batch``), so neither an upgrade
nor a rebuild stops the daemon: ``search_backfill`` holds the range of row ids not yet indexed
(``next_id`` up to ``end_id``), and the triggers leave rows in that range to the batches.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

import apsw

from sessiond.errors import FailedPrecondition, StorageError
from sessiond.model import MessageFilter, SearchHit, Term
from sessiond.storage.dialects import SQLITE
from sessiond.storage.interface import IndexProgress
from sessiond.storage.rows import SUMMARY_OF_S, hit_from_row, in_namespace, search_params

log = logging.getLogger("sessiond.sqlite_storage")

IndexStatus = Literal["ready", "building", "off", "unavailable"]
SNIPPET_TOKENS = 40


def _text_of(row: str) -> str:
    """The searchable text of a message row (``new``, ``old`` or a table alias) as an SQL expression."""
    return (
        f"CASE WHEN NOT {row}.content_is_json THEN {row}.content WHEN json_valid({row}.content) THEN"
        f" coalesce(json_extract({row}.content, '$.text'), (SELECT group_concat(json_extract(part.value, '$.text'),"
        f" ' ') FROM json_each({row}.content) AS part WHERE part.type = 'object')) END"
    )


def _indexed(row_id: str) -> str:
    """Whether the message with this row id is in the index (not in the range left to the batches)."""
    return f"(SELECT {row_id} < next_id OR {row_id} >= end_id FROM search_backfill)"


CREATE = f"""
    CREATE VIEW message_text (id, body) AS SELECT m.id, {_text_of("m")} FROM messages AS m;
    CREATE VIRTUAL TABLE message_index USING fts5(
        body, content = 'message_text', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER message_index_insert AFTER INSERT ON messages WHEN {_indexed("new.id")} BEGIN
        INSERT INTO message_index (rowid, body) VALUES (new.id, {_text_of("new")});
    END;
    CREATE TRIGGER message_index_delete AFTER DELETE ON messages WHEN {_indexed("old.id")} BEGIN
        INSERT INTO message_index (message_index, rowid, body) VALUES ('delete', old.id, {_text_of("old")});
    END;
    CREATE TRIGGER message_index_update AFTER UPDATE OF content, content_is_json ON messages
    WHEN {_indexed("old.id")} BEGIN
        INSERT INTO message_index (message_index, rowid, body) VALUES ('delete', old.id, {_text_of("old")});
        INSERT INTO message_index (rowid, body) VALUES (new.id, {_text_of("new")});
    END;
"""
DROP = """
    DROP TRIGGER IF EXISTS message_index_insert;
    DROP TRIGGER IF EXISTS message_index_delete;
    DROP TRIGGER IF EXISTS message_index_update;
    DROP TABLE IF EXISTS message_index;
    DROP VIEW IF EXISTS message_text;
    UPDATE search_backfill SET next_id = 0, end_id = 0, done = 0, total = 0;
"""
# Everything is left to the batches: the rows there are now, counted for progress.
START_BACKFILL = """
    UPDATE search_backfill SET next_id = 0, end_id = (SELECT coalesce(max(id), -1) + 1 FROM messages),
        done = 0, total = (SELECT count(*) FROM messages)
"""
BATCH_END = "SELECT max(id), count(*) FROM (SELECT id FROM messages WHERE id >= ? AND id < ? ORDER BY id LIMIT ?)"
MERGE = "INSERT INTO message_index (message_index, rank) VALUES ('merge', ?)"
INDEX_PAGES = "SELECT count(*) FROM message_index_data"  # its blocks: about a page each
INDEX_RANGE = "INSERT INTO message_index (rowid, body) SELECT id, body FROM message_text WHERE id >= ? AND id <= ?"
HITS = f"""
    SELECT COALESCE(m.original_position, m.position), m.message_id, m.role, m.timestamp,  -- HIT_COLUMNS, then
           snippet(message_index, 0, '>>>', '<<<', '...', {SNIPPET_TOKENS}), -f.rank,  -- the session's
           COALESCE(m.visibility, ''), COALESCE(m.hidden_by, 0), {SUMMARY_OF_S}
    FROM message_index AS f JOIN messages AS m ON m.id = f.rowid JOIN sessions AS s ON s.id = m.session_id
    WHERE message_index MATCH :match AND COALESCE(m.visibility, '') <> 'rewound'
      AND s.platform = coalesce(:platform, s.platform)
      AND (:any_key OR s.session_key = :key OR s.id = (SELECT session_id FROM entries WHERE session_key = :key))
      AND m.session_id = coalesce(:session, m.session_id)
      AND m.timestamp >= :since AND m.timestamp < :until
      AND (:any_role OR m.role IN (SELECT value FROM json_each(:roles)))
      AND (:include_archived OR s.archived_at IS NULL) AND {SQLITE.condition("s.metadata", ":metadata")}
      AND {in_namespace("s.session_key")}
    ORDER BY f.rank, m.id LIMIT :limit OFFSET :offset
"""


def _one(connection: apsw.Connection, sql: str, params: tuple[Any, ...] = ()) -> Any:
    """The one row a query of whole-table facts returns."""
    row = connection.execute(sql, params).fetchone()
    assert row is not None
    return row


def index_pages(connection: apsw.Connection) -> int:
    """About how many pages the index holds (its data blocks)."""
    return int(_one(connection, INDEX_PAGES)[0])


def fts5_available(connection: apsw.Connection) -> bool:
    """Whether this SQLite has FTS5 (asked of SQLite itself, not of its compile options)."""
    try:
        connection.execute("CREATE VIRTUAL TABLE temp.fts5_probe USING fts5(x); DROP TABLE temp.fts5_probe")
    except apsw.SQLError:
        return False
    return True


def _exists(connection: apsw.Connection) -> bool:
    found = connection.execute("SELECT 1 FROM sqlite_schema WHERE name = 'message_index'").fetchone()
    return found is not None


def open_index(connection: apsw.Connection, wanted: bool, where: str) -> IndexStatus:
    """Create the index (then the batches fill it) or drop it, as configured: "ready" when it exists,
    else why not ("off", "unavailable")."""
    available = fts5_available(connection)
    exists = _exists(connection)
    if exists and not available:
        raise StorageError(
            f"{where}: the database has a full-text index (FTS5) that this SQLite lacks, so no message"
            " could be written; run sessiond with an SQLite that has FTS5 (apsw's wheels have it)"
        )
    if not wanted or not available:
        if exists:
            with connection:
                connection.execute(DROP)
            log.info("search index dropped", extra={"path": where})
        return "off" if not wanted else "unavailable"
    if not exists:
        with connection:
            connection.execute(CREATE)
            connection.execute(START_BACKFILL)
        log.info("search index created", extra={"path": where})
    return "ready"  # whether it is complete yet is the backfill's to say (``progress``)


def progress(connection: apsw.Connection) -> IndexProgress:
    next_id, end_id, done, total = _one(connection, "SELECT next_id, end_id, done, total FROM search_backfill")
    return IndexProgress(done, total, next_id >= end_id)


def start_rebuild(connection: apsw.Connection) -> IndexProgress:
    """Empty the index and leave every message to the batches (inside the caller's write transaction)."""
    connection.execute("INSERT INTO message_index (message_index) VALUES ('delete-all')")
    connection.execute(START_BACKFILL)
    return progress(connection)


def index_batch(connection: apsw.Connection, limit: int) -> IndexProgress:
    """Index up to ``limit`` of the messages left to the batches (inside the caller's write transaction)."""
    next_id, end_id = _one(connection, "SELECT next_id, end_id FROM search_backfill")
    if next_id < end_id:
        last, count = _one(connection, BATCH_END, (next_id, end_id, limit))
        if count:
            connection.execute(INDEX_RANGE, (next_id, last))
        following = last + 1 if count == limit else end_id
        connection.execute("UPDATE search_backfill SET next_id = ?, done = done + ?", (min(following, end_id), count))
    return progress(connection)


# Messages missing from the index, and index entries of messages that are gone (its document sizes
# table has one row per indexed message).
MISMATCHED = """
    SELECT (SELECT count(*) FROM messages AS m
            WHERE NOT EXISTS (SELECT 1 FROM message_index_docsize AS d WHERE d.id = m.id)),
           (SELECT count(*) FROM message_index_docsize AS d
            WHERE NOT EXISTS (SELECT 1 FROM messages AS m WHERE m.id = d.id))
"""


def integrity_problems(connection: apsw.Connection) -> list[str]:
    """Whether the complete index holds exactly the stored messages, and FTS5's own check of its structure.

    (FTS5's check against the content itself cannot read through the text view, so membership is
    checked here: every message indexed, nothing else.)
    """
    try:
        connection.execute("INSERT INTO message_index (message_index) VALUES ('integrity-check')")
    except apsw.Error as exc:
        return [f"search index: {exc}"]
    missing, extra = _one(connection, MISMATCHED)
    problems = [f"search index: {missing} messages not indexed"] if missing else []
    return problems + ([f"search index: {extra} entries of messages no longer stored"] if extra else [])


def fts5_match(terms: tuple[Term, ...]) -> str:
    """FTS5 MATCH text: each term a quoted phrase (``*`` after it for a prefix), all of them required.

    Terms are lower-case letters and digits only (``rules.search``), so nothing needs escaping.
    """
    return " ".join(f'"{" ".join(term.words)}"' + ("*" if term.prefix else "") for term in terms)


def search(
    connection: apsw.Connection, terms: tuple[Term, ...], where: MessageFilter, offset: int, limit: int
) -> list[SearchHit]:
    params = search_params(fts5_match(terms), where, offset, limit, json.dumps, SQLITE)
    return [hit_from_row(row) for row in connection.execute(HITS, params)]


def refuse(status: IndexStatus) -> None:
    """FAILED_PRECONDITION when there is no index to search."""
    if status == "off":
        raise FailedPrecondition("full-text search is off on this daemon (storage.full_text_search = false)")
    if status == "unavailable":
        raise FailedPrecondition("full-text search is unavailable: this daemon's SQLite has no FTS5")
