"""The statements on transcripts that read the same in both SQL backends: loading, rewinds,
compactions and branch copies (``SessionsTable`` takes them as a base, with its placeholders).

A message is visible (``visibility`` NULL), rewound (soft-deleted by a rewind, at its place) or
archived (replaced by a compaction's summary). Archived messages leave the visible order: they
move to negative positions (a range of their own per compaction, ``-(compaction << 32)`` plus
the old position) and keep the one they had in ``original_position``, so the summary can take
their place (the range's last position) while (session, position) stays unique and every
visible read stays a plain range of positions. Reads show an archived message at its original
position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar

from sessiond.model import Message, to_us
from sessiond.storage.rows import MESSAGE_COPY_LIST, MESSAGE_LIST, message_from_row, message_row

ARCHIVE_SHIFT = 32  # compaction c's archived messages sit at -(c << 32) + their old position
LAST = 2**63 - 1  # sorts after every compaction's number
VISIBLE = "visibility IS NULL"
_AROUND = """
    SELECT * FROM (SELECT {columns} FROM messages WHERE session_id = ? AND {which} AND {at} < ?
                   ORDER BY {at} DESC LIMIT ?) AS earlier
    UNION ALL
    SELECT * FROM (SELECT {columns} FROM messages WHERE session_id = ? AND {which} AND {at} >= ?
                   ORDER BY {at} LIMIT ?) AS later"""

# In SQLite's placeholders; ``SessionsTable`` puts in its backend's.
TRANSCRIPT_STATEMENTS = {
    "load": f"SELECT {MESSAGE_LIST} FROM messages WHERE session_id = ? AND position > ? AND {VISIBLE}"
    " ORDER BY position LIMIT ?",
    # Every stored message in the order it was written: an archived range before its summary.
    "load_all": f"""
        SELECT {MESSAGE_LIST} FROM messages WHERE session_id = ?
        ORDER BY COALESCE(original_position, position),
                 CASE WHEN visibility = 'archived' THEN hidden_by ELSE {LAST} END, position
        LIMIT ? OFFSET ?""",
    "around_visible": _AROUND.format(columns=MESSAGE_LIST, which=VISIBLE, at="position"),
    "around_archived": _AROUND.format(
        columns=MESSAGE_LIST, which="visibility = 'archived' AND hidden_by = ?", at="original_position"
    ),
    "visible_count": f"SELECT count(*) FROM messages WHERE session_id = ? AND {VISIBLE}",
    "nth_newest_user": f"SELECT position FROM messages WHERE session_id = ? AND {VISIBLE} AND role = 'user'"
    " ORDER BY position DESC LIMIT 1 OFFSET ?",
    "next_rewind": "UPDATE sessions SET rewinds = rewinds + 1 WHERE id = ? RETURNING rewinds",
    "rewind": "UPDATE messages SET visibility = 'rewound', hidden_by = ?, hidden_at = ?"
    f" WHERE session_id = ? AND {VISIBLE} AND position >= ?",
    "newest_rewind": "SELECT max(hidden_by) FROM messages WHERE session_id = ? AND visibility = 'rewound'",
    "rewound_by": "SELECT min(position), count(*) FROM messages"
    " WHERE session_id = ? AND visibility = 'rewound' AND hidden_by = ?",
    "visible_after": f"SELECT 1 FROM messages WHERE session_id = ? AND {VISIBLE} AND position > ? LIMIT 1",
    "restore": "UPDATE messages SET visibility = NULL, hidden_by = NULL, hidden_at = NULL"
    " WHERE session_id = ? AND visibility = 'rewound' AND hidden_by = ?",
    "visible_in": f"SELECT max(position), count(*) FROM messages WHERE session_id = ? AND {VISIBLE}"
    " AND position >= ? AND position <= ?",
    "next_compaction": "UPDATE sessions SET compactions = compactions + 1 WHERE id = ? RETURNING compactions",
    "archive": "UPDATE messages SET visibility = 'archived', hidden_by = ?, hidden_at = ?,"
    f" original_position = position, position = ? + position WHERE session_id = ? AND {VISIBLE}"
    " AND position >= ? AND position <= ?",
    "has_message_id": "SELECT 1 FROM messages WHERE session_id = ? AND message_id = ?",
    "copy": f"""
        INSERT INTO messages (session_id, position, {MESSAGE_COPY_LIST})
        SELECT ?, position, {MESSAGE_COPY_LIST} FROM messages WHERE session_id = ? AND {VISIBLE} AND position <= ?""",
    "count_stored": "UPDATE sessions SET message_count = (SELECT count(*) FROM messages WHERE session_id = ?)"
    " WHERE id = ? RETURNING message_count",
}


class TranscriptTable:
    """The transcript methods of the storage interface, over ``SQL`` (its backend's spelling)."""

    SQL: ClassVar[Mapping[str, str]]

    def _one(self, sql: str, params: Any = ()) -> Any:
        raise NotImplementedError

    def _execute(self, sql: str, params: Any = ()) -> Iterable[Any]:
        raise NotImplementedError

    def _insert_messages(self, rows: list[tuple[Any, ...]]) -> int | None:
        """Insert rows of ``MESSAGE_INSERT_COLUMNS``, skipping stored message ids (each backend's own)."""
        raise NotImplementedError

    def load_messages(self, session_id: str, after_position: int, limit: int) -> list[Message]:
        return [message_from_row(row) for row in self._execute(self.SQL["load"], (session_id, after_position, limit))]

    def load_all_messages(self, session_id: str, offset: int, limit: int) -> list[Message]:
        return [message_from_row(row) for row in self._execute(self.SQL["load_all"], (session_id, limit, offset))]

    def messages_around(self, session_id: str, position: int, count: int, compaction: int = 0) -> list[Message]:
        if compaction:
            where = (session_id, compaction, position, count, session_id, compaction, position, count + 1)
            rows = self._execute(self.SQL["around_archived"], where)
        else:
            rows = self._execute(
                self.SQL["around_visible"], (session_id, position, count, session_id, position, count + 1)
            )
        return sorted((message_from_row(row) for row in rows), key=_position)

    def visible_count(self, session_id: str) -> int:
        return int(self._one(self.SQL["visible_count"], (session_id,))[0])

    def rewind(self, session_id: str, turns: int, now: datetime) -> tuple[int, int] | None:
        """Hide the newest ``turns`` visible user messages and all visible ones after the oldest of
        them: (the rewind's number, messages hidden); ``None`` when there are fewer user turns."""
        start = self._one(self.SQL["nth_newest_user"], (session_id, turns - 1))
        if start is None:
            return None
        number = int(self._one(self.SQL["next_rewind"], (session_id,))[0])
        self._execute(self.SQL["rewind"], (number, to_us(now), session_id, start[0]))
        return number, int(self._one(self.SQL["rewound_by"], (session_id, number))[1])

    def newest_rewind(self, session_id: str) -> int | None:
        row = self._one(self.SQL["newest_rewind"], (session_id,))
        return None if row is None or row[0] is None else int(row[0])

    def rewound_by(self, session_id: str, rewind: int) -> tuple[int, int] | None:
        """(first position, count) of the messages a rewind still hides; ``None`` when none."""
        first, count = self._one(self.SQL["rewound_by"], (session_id, rewind))
        return None if not count else (int(first), int(count))

    def visible_after(self, session_id: str, position: int) -> bool:
        return self._one(self.SQL["visible_after"], (session_id, position)) is not None

    def restore(self, session_id: str, rewind: int) -> None:
        self._execute(self.SQL["restore"], (session_id, rewind))

    def compact(
        self, session_id: str, first: int, last: int, summary: Message, now: datetime
    ) -> tuple[int, int, int] | None:
        """Archive the visible messages in ``first..last`` and store ``summary`` at the last of their
        positions (so that, in the order written, the range comes before its summary): (compaction
        number, archived, summary position); ``None`` when none is visible."""
        position, count = self._one(self.SQL["visible_in"], (session_id, first, last))
        if not count:
            return None
        number = int(self._one(self.SQL["next_compaction"], (session_id,))[0])
        base = -(number << ARCHIVE_SHIFT)
        self._execute(self.SQL["archive"], (number, to_us(now), base, session_id, first, last))
        self._insert_messages([message_row(session_id, summary, int(position), now)])
        self._one(self.SQL["count_stored"], (session_id, session_id))
        return number, int(count), int(position)

    def has_message_id(self, session_id: str, message_id: str) -> bool:
        return self._one(self.SQL["has_message_id"], (session_id, message_id)) is not None

    def copy_messages(self, source: str, target: str, through: int) -> int:
        """Copy ``source``'s visible messages up to ``through`` into ``target`` (positions kept); how many."""
        self._execute(self.SQL["copy"], (target, source, through))
        return int(self._one(self.SQL["count_stored"], (target, target))[0])


def _position(message: Message) -> int:
    return message.position
