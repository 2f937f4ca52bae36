"""The statements on sessions that read the same in both SQL backends, written once.

SQLite and PostgreSQL differ here only in the placeholder (``?`` or ``%s``): a backend's
transaction class takes ``SessionsTable`` as a base with its marker, and gets these methods of
the storage interface (a session's end and reopening, titles, lineage, session search, a search
hit's neighbouring messages) over its own ``_one`` and ``_execute``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from sessiond.model import LineageLink, SessionSummary, fold, to_us
from sessiond.storage.rows import LINEAGE_LIST, SUMMARY_LIST, lineage_from_row, prefix_range, summary_from_row
from sessiond.storage.transcript_table import TRANSCRIPT_STATEMENTS, TranscriptTable

# In SQLite's placeholders; ``SessionsTable`` puts in its backend's.
_STATEMENTS = {
    "end": "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
    "reopen": "UPDATE sessions SET ended_at = NULL, end_reason = NULL WHERE id = ?",
    "exists": "SELECT 1 FROM sessions WHERE id = ?",
    "two": "SELECT 1 FROM sessions LIMIT 1 OFFSET 1",
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
        WHERE ((? <> '' AND substr(id, 1, ?) = ?) OR (title_folded >= ? AND title_folded < ?))
          AND platform = COALESCE(?, platform)
        ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?""",
}


class SessionsTable(TranscriptTable):
    """Base of a backend's transaction: ``class T(SessionsTable, Transaction, marker="%s")``."""

    SQL: ClassVar[Mapping[str, str]] = MappingProxyType({**_STATEMENTS, **TRANSCRIPT_STATEMENTS})

    def __init_subclass__(cls, marker: str = "?", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        statements = {**_STATEMENTS, **TRANSCRIPT_STATEMENTS}
        cls.SQL = MappingProxyType({name: sql.replace("?", marker) for name, sql in statements.items()})

    def end_session(self, session_id: str, reason: str, at: datetime) -> None:
        self._execute(self.SQL["end"], (to_us(at), reason, session_id))

    def reopen_session(self, session_id: str) -> None:
        self._execute(self.SQL["reopen"], (session_id,))

    def session_exists(self, session_id: str) -> bool:
        return self._one(self.SQL["exists"], (session_id,)) is not None

    def has_two_sessions(self) -> bool:
        return self._one(self.SQL["two"]) is not None

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
        self, id_prefix: str, title_prefix: str, platform: str | None, offset: int, limit: int
    ) -> list[SessionSummary]:
        """Sessions whose id starts with ``id_prefix`` (a scan: ids compare by the database's collation)
        or whose folded title starts with ``title_prefix`` folded (an index range), newest first."""
        by_id = (id_prefix, len(id_prefix), id_prefix)
        rows = self._execute(
            self.SQL["search_sessions"], (*by_id, *prefix_range(fold(title_prefix)), platform, limit, offset)
        )
        return [summary_from_row(row) for row in rows]

    def _first_value(self, statement: str, params: tuple[Any, ...]) -> str | None:
        """The first column of the first row: an id or a title (None when no row, or no title)."""
        row = self._one(self.SQL[statement], params)
        return None if row is None or row[0] is None else str(row[0])
