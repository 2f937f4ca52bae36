"""The statements on sessions that read the same in both SQL backends, written once.

SQLite and PostgreSQL differ here only in the placeholder (``?`` or ``%s``): a backend's
transaction class takes ``SessionsTable`` as a base with its marker, and gets these methods of
the storage interface (a session's end and reopening, titles, metadata, lineage, session search, a
search hit's neighbouring messages) over its own ``_one`` and ``_execute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from sessiond.model import (
    Entry,
    LineageLink,
    Metadata,
    MetadataFilter,
    Selected,
    SessionSelector,
    SessionSummary,
    fold,
    to_us,
)
from sessiond.storage import selection
from sessiond.storage.coordination_table import COORDINATION_STATEMENTS, CoordinationTable
from sessiond.storage.dialects import SQLITE, Dialect
from sessiond.storage.rows import (
    ENTRY_LIST,
    LINEAGE_LIST,
    SUMMARY_LIST,
    entry_from_row,
    in_namespace,
    lineage_from_row,
    metadata_from_text,
    metadata_text,
    namespace_positional,
    prefix_range,
    summary_from_row,
)
from sessiond.storage.transcript_table import TRANSCRIPT_STATEMENTS

# In SQLite's placeholders; ``SessionsTable`` puts in its backend's.
_STATEMENTS = {
    "end": "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
    "reopen": "UPDATE sessions SET ended_at = NULL, end_reason = NULL, archived_at = NULL WHERE id = ?",
    "counted": "UPDATE sessions SET message_count = ?, active_at = ? WHERE id = ?",
    "exists": "SELECT 1 FROM sessions WHERE id = ?",
    "two": f"SELECT 1 FROM sessions WHERE {in_namespace('session_key', '?', '?')} LIMIT 1 OFFSET 1",
    "mark_recently_active": f"""
        UPDATE entries SET resume_pending = TRUE, resume_reason = ?, last_resume_marked_at = ?, version = version + 1
        WHERE updated_at >= ? AND NOT resume_pending AND NOT suspended AND {in_namespace("session_key", "?", "?")}
        RETURNING {ENTRY_LIST}""",
    "title_of": "SELECT title FROM sessions WHERE id = ?",
    "titled": "SELECT id FROM sessions WHERE title = ?",
    "set_title": "UPDATE sessions SET title = ?, title_folded = ? WHERE id = ?",
    "lineage_titles": "SELECT title FROM sessions WHERE title = ? OR (title >= ? AND title < ?)",
    "newest_numbered": (
        "SELECT id FROM sessions WHERE title >= ? AND title < ? ORDER BY started_at DESC, id DESC LIMIT 1"
    ),
    "set_parent": "UPDATE sessions SET parent_session_id = ?, parent_reason = ? WHERE id = ?",
    "lineage_link": f"SELECT {LINEAGE_LIST} FROM sessions WHERE id = ?",
    "children": f"SELECT {LINEAGE_LIST} FROM sessions WHERE parent_session_id = ? ORDER BY started_at DESC, id DESC",
    "summary": f"SELECT {SUMMARY_LIST} FROM sessions WHERE id = ?",
    "search_sessions": f"""
        SELECT {SUMMARY_LIST} FROM sessions
        WHERE (({{id}} >= ? AND {{id}} < ?) OR (title_folded >= ? AND title_folded < ?))
          AND platform = COALESCE(?, platform) AND (? OR archived_at IS NULL) AND {{metadata}}
          AND {in_namespace("session_key", "?", "?")}
        ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?""",
    "metadata_of": "SELECT metadata FROM sessions WHERE id = ?",
    "keys_of": "SELECT id, session_key FROM sessions WHERE {ids}",
    "set_metadata": "UPDATE sessions SET metadata = ? WHERE id = ?",
    "delete_entry": "DELETE FROM entries WHERE session_key = ?",
}


class SessionsTable(CoordinationTable):
    """Base of a backend's transaction: ``class T(SessionsTable, Transaction, marker="%s")``."""

    SQL: ClassVar[Mapping[str, str]] = MappingProxyType(
        {**_STATEMENTS, **TRANSCRIPT_STATEMENTS, **COORDINATION_STATEMENTS}
    )

    dialect: ClassVar[Dialect] = SQLITE
    SELECTION: ClassVar[Mapping[str, str]] = MappingProxyType(selection.statements(SQLITE))

    def __init_subclass__(cls, marker: str = "?", dialect: Dialect = SQLITE, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        statements = {**_STATEMENTS, **TRANSCRIPT_STATEMENTS, **COORDINATION_STATEMENTS}
        condition = dialect.condition("metadata", "?")
        cls.dialect = dialect
        cls.SELECTION = MappingProxyType(selection.statements(dialect))
        cls.SQL = MappingProxyType(
            {
                name: sql.replace("{metadata}", condition)
                .replace("{id}", dialect.binary("id"))
                .replace("{ids}", dialect.member("id", "?"))
                .replace("?", marker)
                for name, sql in statements.items()
            }
        )

    def end_session(self, session_id: str, reason: str, at: datetime) -> None:
        self._execute(self.SQL["end"], (to_us(at), reason, session_id))

    def reopen_session(self, session_id: str) -> None:
        self._execute(self.SQL["reopen"], (session_id,))

    def session_exists(self, session_id: str) -> bool:
        return self._one(self.SQL["exists"], (session_id,)) is not None

    def has_two_sessions(self, namespace: str | None = None) -> bool:
        return self._one(self.SQL["two"], namespace_positional(namespace)) is not None

    def mark_recently_active(
        self, since: datetime, now: datetime, reason: str, namespace: str | None = None
    ) -> list[Entry]:
        params = (reason, to_us(now), to_us(since), *namespace_positional(namespace))
        return [entry_from_row(row) for row in self._execute(self.SQL["mark_recently_active"], params)]

    def title_of(self, session_id: str) -> str | None:
        return self._first_value("title_of", (session_id,))

    def session_titled(self, title: str) -> str | None:
        return self._first_value("titled", (title,))

    def set_title(self, session_id: str, title: str | None) -> None:
        self._execute(self.SQL["set_title"], (title, None if title is None else fold(title), session_id))

    def lineage_titles(self, base: str, numbered_prefix: str) -> list[str]:
        return [row[0] for row in self._execute(self.SQL["lineage_titles"], (base, *prefix_range(numbered_prefix)))]

    def newest_numbered(self, numbered_prefix: str) -> str | None:
        return self._first_value("newest_numbered", prefix_range(numbered_prefix))

    def set_parent(self, session_id: str, parent_session_id: str, reason: str) -> None:
        self._execute(self.SQL["set_parent"], (parent_session_id, reason, session_id))

    def lineage_link(self, session_id: str) -> LineageLink | None:
        row = self._one(self.SQL["lineage_link"], (session_id,))
        return None if row is None else lineage_from_row(row)

    def children(self, session_id: str) -> list[LineageLink]:
        return [lineage_from_row(row) for row in self._execute(self.SQL["children"], (session_id,))]

    def session_summary(self, session_id: str) -> SessionSummary | None:
        row = self._one(self.SQL["summary"], (session_id,))
        return None if row is None else summary_from_row(row)

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
        """Sessions whose id starts with ``id_prefix`` or whose folded title starts with ``title_prefix``
        folded (two index ranges, by code points), newest first."""
        by_id = prefix_range(id_prefix)
        by_title = prefix_range(fold(title_prefix))
        filters = self.dialect.filters(metadata)  # the condition reads its parameter twice
        params = (
            *by_id,
            *by_title,
            platform,
            include_archived,
            filters,
            filters,
            *namespace_positional(namespace),
            limit,
            offset,
        )
        return [summary_from_row(row) for row in self._execute(self.SQL["search_sessions"], params)]

    def keys_of(self, session_ids: Sequence[str]) -> dict[str, str | None]:
        rows = self._execute(self.SQL["keys_of"], (self.dialect.texts(session_ids),))
        return {str(session_id): key for session_id, key in rows}

    def metadata_of(self, session_id: str) -> Metadata | None:
        row = self._one(self.SQL["metadata_of"], (session_id,))
        return None if row is None else metadata_from_text(row[0])

    def set_metadata(self, session_id: str, metadata: Metadata) -> None:
        self._execute(self.SQL["set_metadata"], (metadata_text(metadata), session_id))

    def delete_entry(self, session_key: str) -> None:
        self._execute(self.SQL["delete_entry"], (session_key,))

    def _counted(self, session_id: str, count: int, now: datetime) -> None:
        """A transcript's new size, written at ``now``: its last activity."""
        self._execute(self.SQL["counted"], (count, to_us(now), session_id))

    # -- bulk calls (selection) --------------------------------------------------------------

    def select_sessions(self, selector: SessionSelector, now: datetime, limit: int) -> list[Selected]:
        rows = self._execute(self.SELECTION["select"], selection.params(selector, now, self.dialect, limit))
        return [Selected(session_id, messages) for session_id, messages in rows]

    def count_selected(self, selector: SessionSelector, now: datetime) -> tuple[int, int]:
        row = self._one(self.SELECTION["count"], selection.params(selector, now, self.dialect))
        return int(row[0]), int(row[1])

    def delete_sessions(self, session_ids: Sequence[str]) -> list[tuple[str, str, int]]:
        """Delete sessions, their messages and the entries pointing at them: (key, id, version) of those."""
        chosen = {"chosen": self.dialect.texts(session_ids)}
        dropped = self._drop_entries(chosen)
        self._execute(self.SELECTION["delete_handoffs"], chosen)
        self._execute(self.SELECTION["delete_messages"], chosen)
        self._execute(self.SELECTION["delete_sessions"], chosen)
        return dropped

    def archive_sessions(self, session_ids: Sequence[str], now: datetime) -> list[tuple[str, str, int]]:
        """Archive (and end) sessions; the entries pointing at them go: (key, id, version) of those."""
        chosen = {"chosen": self.dialect.texts(session_ids)}
        dropped = self._drop_entries(chosen)
        self._execute(self.SELECTION["archive"], {**chosen, "now": to_us(now)})
        return dropped

    def unarchive_sessions(self, session_ids: Sequence[str]) -> None:
        self._execute(self.SELECTION["unarchive"], {"chosen": self.dialect.texts(session_ids)})

    def _drop_entries(self, chosen: dict[str, str]) -> list[tuple[str, str, int]]:
        return [
            (str(key), str(sid), int(version))
            for key, sid, version in self._execute(self.SELECTION["drop_entries"], chosen)
        ]

    def _first_value(self, statement: str, params: tuple[Any, ...]) -> str | None:
        """The first column of the first row: an id or a title (None when no row, or no title)."""
        row = self._one(self.SQL[statement], params)
        return None if row is None or row[0] is None else str(row[0])
