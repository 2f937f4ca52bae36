"""Import a Hermes gateway's session store (``$HERMES_HOME``) into sessiond, for ``sessiond admin import-hermes``.

What is read, and only read (nothing is ever written beside it):

- ``sessions/sessions.json``: the index, one entry per session key (the reference's
  ``SessionEntry.to_dict``). Missing, unreadable or not a JSON object: ``InvalidArgument``
  naming the file, before anything is imported.
- ``state.db``: the reference's ``SessionDB`` (a ``sessions`` row per session id ever created,
  ended ones too, and their ``messages``), opened read-only. Optional, as in the reference.
  With a ``-wal`` file beside it (the gateway running or not cleanly stopped) it is opened
  ``mode=ro``, reading the WAL like any reader (SQLite may update the ``-shm`` index, as every
  reader does); without one, ``immutable=1``, so SQLite creates no ``-wal``/``-shm`` files.
- ``sessions/<session id>.jsonl``: the legacy transcripts, one JSON message per line.

What is imported: every session id found in any of the three, with its record (platform, user
id, start, end and end reason; from ``state.db``, else from the index entry pointing at it, else
platform ``unknown`` started at the file's modification time) and its transcript; and every index
entry under its index key, with its session id, times, flags, counters, origin, display name,
platform and chat type. ``was_auto_reset``, ``auto_reset_reason`` and ``reset_had_activity``
are not in the index, so they are False/None, as the reference itself reloads them.

Rules:

- Times. The index's times are naive ISO text in the local time of the host that wrote them;
  they are read in the configuration's default reset zone (``[reset.default] time_zone``, else
  the host's zone, ``sessiond.daemon.config.host_zone``), the zone sessiond's daily resets use. A wall
  time that a DST change makes ambiguous or skips takes ``fold=0`` (the offset in force before
  the change). Text with an offset keeps it. ``state.db`` times are epoch seconds, zone-free.
  A JSONL message's ``timestamp`` text is read by the same rule; without one it gets its
  session's start.
- Transcripts. As the reference's ``load_transcript``: the JSONL copy when it holds more
  messages than ``state.db``, otherwise ``state.db``. A JSONL line that is not valid UTF-8 JSON,
  or not a message object (the reference would have returned such a value), is skipped and
  counted. Messages become sessiond's ``Message`` as the store stores them (structured content
  and tool calls as JSON text, reasoning kept for assistant messages only); keys outside that
  model are dropped, as the reference's ``SessionDB`` dropped them.
- Validation. An entry sessiond would refuse is skipped with a reason count, never a crash:
  ``unknown platform`` (origin not built in and not a configured plugin), ``invalid WhatsApp id``
  (one no session key can be built from), ``invalid source`` (no chat id, an unknown chat type,
  a non-text field) and ``malformed`` (not an object, no session id, unreadable times, counters
  that are not numbers). Keys are kept as they are, not rebuilt from the configuration.
- Idempotency. An entry whose key sessiond already holds is left untouched; a session id
  sessiond already holds is not imported again (record and transcript untouched). So a second
  run imports nothing and changes nothing, and ``dry_run`` reports what a run would do.
- Atomicity. One write transaction per session id, holding its record, its transcript and the
  entries pointing at it: a crash leaves whole sessions only, and a rerun completes the import.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import apsw

from sessiond.daemon.config import Config
from sessiond.errors import InvalidArgument
from sessiond.model import Entry, KeyOptions, Message, Source, Usage, from_us
from sessiond.rules import keys, transcript
from sessiond.rules.platforms import Platforms
from sessiond.rules.whatsapp import no_mapping
from sessiond.storage.interface import Storage, Transaction

JSON_PREFIX = "\x00json:"  # how the reference's SessionDB marks structured content
TEXT_FIELDS = ("tool_call_id", "tool_name", "reasoning", "reasoning_content", "finish_reason")
JSON_FIELDS = ("tool_calls", "reasoning_details", "codex_reasoning_items", "codex_message_items")
SOURCE_TEXT_FIELDS = tuple(f.name for f in fields(Source) if f.default is None)
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens")
INT64_MAX = 2**63 - 1

MALFORMED = "malformed"
UNKNOWN_PLATFORM = "unknown platform"
INVALID_SOURCE = "invalid source"
INVALID_WHATSAPP_ID = "invalid WhatsApp id"


@dataclass(frozen=True)
class ImportSummary:
    """What an import did (or, in a dry run, would do). Summaries add up."""

    entries_imported: int = 0
    entries_present: int = 0
    entries_skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    sessions_imported: int = 0
    sessions_present: int = 0
    messages_imported: int = 0
    corrupt_lines: int = 0
    transcripts_from_jsonl: int = 0
    transcripts_from_db: int = 0

    def __add__(self, other: ImportSummary) -> ImportSummary:
        skipped = Counter(self.entries_skipped) + Counter(other.entries_skipped)
        counts = {
            f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self) if f.name != "entries_skipped"
        }
        return ImportSummary(**counts, entries_skipped=dict(skipped))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Skipped(Exception):
    """An index entry sessiond would refuse; ``reason`` is what the summary counts."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Session:
    """One session id to import, with the index entries that point at it."""

    session_id: str
    platform: str
    user_id: str | None
    started_at: datetime
    ended: tuple[datetime, str] | None
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True)
class _Transcript:
    messages: list[Message]
    from_jsonl: bool
    corrupt_lines: int


def import_hermes(
    home: Path,
    storage: Storage,
    config: Config | None = None,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Import the Hermes store in ``home`` (see the module's rules); ``progress(done, total)`` after each session.

    ``config`` gives the plugin platforms an origin may name and the zone of the index's naive
    times (default: ``Config()``, built-in platforms and the host's zone). With ``dry_run`` the
    work runs in read transactions and writes nothing. ``storage`` is opened by the caller:
    ``SqliteStorage`` refuses a database a running daemon holds.
    """
    config = config or Config()
    with _Hermes.open(home, config.zone(config.policies.default)) as hermes:
        entries, skipped = hermes.entries(config.platforms)
        sessions = hermes.sessions(entries)
        summary = ImportSummary(entries_skipped=dict(skipped))
        for done, session in enumerate(sessions, start=1):
            work = partial(_import_session, hermes, session, not dry_run)
            summary += storage.read(work) if dry_run else storage.write(work)
            if progress is not None:
                progress(done, len(sessions))
    return summary


def _import_session(hermes: _Hermes, session: _Session, write: bool, tx: Transaction) -> ImportSummary:
    """One session id and its entries, in one transaction; what is already there is left alone."""
    if tx.session_exists(session.session_id):
        summary = ImportSummary(sessions_present=1)
    else:
        loaded = hermes.transcript(session)
        if write:
            _write_session(tx, session, loaded.messages)
        summary = ImportSummary(
            sessions_imported=1,
            messages_imported=len(loaded.messages),
            corrupt_lines=loaded.corrupt_lines,
            transcripts_from_jsonl=int(loaded.from_jsonl),
            transcripts_from_db=int(bool(loaded.messages) and not loaded.from_jsonl),
        )
    for entry in session.entries:
        if tx.get_entry(entry.session_key) is not None:
            summary += ImportSummary(entries_present=1)
            continue
        if write:
            tx.put_entry(entry)
        summary += ImportSummary(entries_imported=1)
    return summary


def _write_session(tx: Transaction, session: _Session, messages: list[Message]) -> None:
    current = session.entries[0] if session.entries else None  # the entry it is current for, if any
    key, chat_type = (current.session_key, current.chat_type) if current else (None, None)
    tx.create_session(session.session_id, session.platform, session.user_id, session.started_at, key, chat_type)
    if messages:  # active as of its newest message (for retention), not as of the import
        newest = max([session.started_at, *(m.timestamp for m in messages if m.timestamp)])
        tx.append_messages(session.session_id, messages, newest)
    if session.ended is not None:
        tx.end_session(session.session_id, session.ended[1], session.ended[0])


class _Hermes:
    """A Hermes home opened for reading: the index, ``state.db`` (if any) and the JSONL files."""

    def __init__(self, home: Path, zone: tzinfo, db: apsw.Connection | None):
        self.index_path = home / "sessions" / "sessions.json"
        self.zone = zone
        self.db = db
        self.jsonl = {path.stem: path for path in (home / "sessions").glob("*.jsonl")}

    @classmethod
    @contextmanager
    def open(cls, home: Path, zone: tzinfo) -> Iterator[_Hermes]:
        db = _open_readonly(home / "state.db")
        try:
            yield cls(home, zone, db)
        finally:
            if db is not None:
                db.close()

    def entries(self, platforms: Platforms) -> tuple[list[Entry], Counter[str]]:
        """The index's entries sessiond accepts, and a count of the others by reason."""
        entries, skipped = [], Counter[str]()
        for key, data in _read_index(self.index_path).items():
            try:
                entries.append(_entry(key, data, platforms, self.zone))
            except _Skipped as exc:
                skipped[exc.reason] += 1
        return entries, skipped

    def sessions(self, entries: list[Entry]) -> list[_Session]:
        """Every session id of the database, the index and the JSONL files, in id order."""
        pointing: dict[str, list[Entry]] = {}
        for entry in entries:
            pointing.setdefault(entry.session_id, []).append(entry)
        records = self._records()
        result = []
        for session_id in sorted(records.keys() | pointing.keys() | self.jsonl.keys()):
            session = records.get(session_id) or self._unrecorded(session_id, pointing.get(session_id))
            result.append(replace(session, entries=tuple(pointing.get(session_id, ()))))
        return result

    def _records(self) -> dict[str, _Session]:
        if self.db is None:
            return {}
        rows = self.db.execute("SELECT id, source, user_id, started_at, ended_at, end_reason FROM sessions")
        return {
            session_id: _Session(
                session_id, platform, user_id, _epoch(started), None if ended is None else (_epoch(ended), reason or "")
            )
            for session_id, platform, user_id, started, ended, reason in rows
        }

    def _unrecorded(self, session_id: str, entries: list[Entry] | None) -> _Session:
        """A session ``state.db`` lacks: described by its entry as the reference would have created it."""
        if entries:
            entry = entries[0]
            user_id = entry.origin.user_id if entry.origin else None
            return _Session(session_id, entry.platform or "unknown", user_id, entry.created_at, None)
        modified = datetime.fromtimestamp(self.jsonl[session_id].stat().st_mtime, UTC)
        return _Session(session_id, "unknown", None, modified, None)

    def transcript(self, session: _Session) -> _Transcript:
        """The longer of the two copies, as the reference's ``load_transcript`` chose."""
        from_db = self._db_messages(session.session_id)
        path = self.jsonl.get(session.session_id)
        from_jsonl, corrupt = _read_jsonl(path, session.started_at, self.zone) if path else ([], 0)
        if len(from_jsonl) > len(from_db):
            return _Transcript(from_jsonl, True, corrupt)
        return _Transcript(from_db, False, corrupt)

    def _db_messages(self, session_id: str) -> list[Message]:
        if self.db is None:
            return []
        cursor = self.db.cursor()
        rows = cursor.execute("SELECT * FROM messages WHERE session_id = ? ORDER BY timestamp, id", (session_id,))
        return [_db_message(dict(zip((d[0] for d in cursor.get_description()), row, strict=True))) for row in rows]


# -- the source files ------------------------------------------------------------------------


def _open_readonly(path: Path) -> apsw.Connection | None:
    """``state.db`` read-only (see the module docstring for the two modes); None when absent."""
    if not path.exists():
        return None
    mode = "mode=ro" if Path(f"{path}-wal").exists() else "immutable=1"
    try:
        db = apsw.Connection(
            f"file:{quote(str(path.resolve()))}?{mode}", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
        )
    except apsw.Error as exc:
        raise InvalidArgument(str(path), f"cannot open ({exc})") from None
    try:
        db.execute("SELECT 1 FROM sessions, messages LIMIT 1").fetchall()
    except apsw.Error as exc:
        db.close()
        raise InvalidArgument(str(path), f"not a Hermes state database ({exc})") from None
    return db


def _read_index(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidArgument(str(path), "not found (is this a Hermes home?)") from None
    except OSError as exc:
        raise InvalidArgument(str(path), f"cannot read ({exc.strerror})") from None
    except (ValueError, RecursionError):
        raise InvalidArgument(str(path), "not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument(str(path), "not a JSON object of session entries")
    return data


def _read_jsonl(path: Path, fallback: datetime, zone: tzinfo) -> tuple[list[Message], int]:
    """The file's messages and the number of corrupt lines skipped; blank lines are not counted."""
    messages, corrupt = [], 0
    with path.open("rb") as file:
        for line in file:
            if not line.strip():
                continue
            try:
                messages.append(_jsonl_message(json.loads(line), fallback, zone))
            except (ValueError, TypeError, RecursionError):
                corrupt += 1
    return messages, corrupt


# -- values ------------------------------------------------------------------------------------


def _local(value: Any, zone: tzinfo) -> datetime:
    """An index time: ISO text, naive local time of the writing host read in ``zone`` (fold=0)."""
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)


def _epoch(seconds: float) -> datetime:
    """A ``state.db`` time (``time.time()``), to the microsecond."""
    return from_us(round(seconds * 1_000_000))


def _text(data: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = data.get(name, default)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name}: not text")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -INT64_MAX <= value <= INT64_MAX:
        raise TypeError("not a 64-bit integer")
    return value


def _cost(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise TypeError("not a finite number")
    return float(value)


def _entry(key: str, data: Any, platforms: Platforms, zone: tzinfo) -> Entry:
    """The reference's ``SessionEntry.from_dict``, checked as sessiond checks what it stores."""
    if not isinstance(data, dict):
        raise _Skipped(MALFORMED)
    origin = _origin(data["origin"], platforms) if data.get("origin") else None
    try:
        session_id = _text(data, "session_id")
        if not session_id:
            raise ValueError("no session id")
        return Entry(
            session_key=key,
            session_id=session_id,
            created_at=_local(data["created_at"], zone),
            updated_at=_local(data["updated_at"], zone),
            origin=origin,
            display_name=_text(data, "display_name"),
            platform=_known_platform(data.get("platform"), platforms),
            chat_type=_text(data, "chat_type") or "dm",
            usage=Usage(
                **{name: _count(data.get(name) or 0) for name in TOKEN_FIELDS},
                estimated_cost_usd=_cost(data.get("estimated_cost_usd") or 0.0),
            ),
            cost_status=_text(data, "cost_status") or "unknown",
            last_prompt_tokens=_count(data.get("last_prompt_tokens") or 0),
            is_fresh_reset=bool(data.get("is_fresh_reset")),
            expiry_finalized=bool(data.get("expiry_finalized", data.get("memory_flushed"))),
            suspended=bool(data.get("suspended")),
            resume_pending=bool(data.get("resume_pending")),
            resume_reason=_text(data, "resume_reason"),
            last_resume_marked_at=_resume_marked_at(data.get("last_resume_marked_at"), zone),
            version=1,
        )
    except (KeyError, TypeError, ValueError):
        raise _Skipped(MALFORMED) from None


def _resume_marked_at(value: Any, zone: tzinfo) -> datetime | None:
    """Unreadable means unset, the flag kept: the reference's rule."""
    try:
        return _local(value, zone) if value else None
    except (TypeError, ValueError):
        return None


def _known_platform(name: Any, platforms: Platforms) -> str | None:
    """The entry's own platform field; an unknown one is dropped, as the reference drops it."""
    try:
        return platforms.resolve(name, "platform") if isinstance(name, str) and name else None
    except InvalidArgument:
        return None


def _origin(data: Any, platforms: Platforms) -> Source:
    """The reference's ``SessionSource.from_dict`` (``chat_id`` made text), refused where sessiond refuses."""
    if not isinstance(data, dict) or "chat_id" not in data:
        raise _Skipped(INVALID_SOURCE)
    try:
        platform = platforms.resolve(str(data.get("platform")), "origin.platform")
    except InvalidArgument:
        raise _Skipped(UNKNOWN_PLATFORM) from None
    chat_type = data.get("chat_type", "dm")
    optional = {name: data.get(name) for name in SOURCE_TEXT_FIELDS}
    if not isinstance(chat_type, str) or not all(v is None or isinstance(v, str) for v in optional.values()):
        raise _Skipped(INVALID_SOURCE)
    source = Source(platform, str(data["chat_id"]), chat_type=chat_type, is_bot=bool(data.get("is_bot")), **optional)
    try:
        keys.build_session_key(source, KeyOptions(), no_mapping)  # fails on WhatsApp ids only
    except InvalidArgument:
        raise _Skipped(INVALID_WHATSAPP_ID) from None
    return source


def _jsonl_message(data: Any, fallback: datetime, zone: tzinfo) -> Message:
    """A JSONL message dict, stored as sessiond's store stores the same dict sent by a client."""
    if not isinstance(data, dict):
        raise TypeError("not a message object")
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # lone surrogates: UnicodeEncodeError, a corrupt line
    content = data.get("content")
    structured = content is not None and not isinstance(content, str)
    token_count = data.get("token_count")
    optional: dict[str, Any] = {name: _text(data, name) for name in TEXT_FIELDS}
    optional.update({name: json.dumps(data[name]) if data.get(name) else None for name in JSON_FIELDS})
    return transcript.as_stored(
        Message(
            role=_text(data, "role") or "unknown",
            content=json.dumps(content) if structured else content,
            content_is_json=structured,
            timestamp=_message_time(data.get("timestamp"), fallback, zone),
            token_count=None if token_count is None else _count(token_count),
            **optional,
        )
    )


def _message_time(value: Any, fallback: datetime, zone: tzinfo) -> datetime:
    try:
        return _local(value, zone) if isinstance(value, str) else fallback
    except ValueError:
        return fallback


def _db_message(row: dict[str, Any]) -> Message:
    """A ``state.db`` row, as the reference's ``get_messages`` decoded it."""
    row = {name: value.decode("utf-8", "replace") if isinstance(value, bytes) else value for name, value in row.items()}
    content = row["content"]
    structured = isinstance(content, str) and content.startswith(JSON_PREFIX) and _is_json(content[len(JSON_PREFIX) :])
    optional: dict[str, Any] = {name: row.get(name) for name in TEXT_FIELDS}
    optional.update({name: row.get(name) if _is_json(row.get(name)) else None for name in JSON_FIELDS})
    return transcript.as_stored(
        Message(
            role=row["role"],
            content=content[len(JSON_PREFIX) :] if structured else content,
            content_is_json=structured,
            timestamp=_epoch(row["timestamp"]),
            token_count=row.get("token_count"),
            **optional,
        )
    )


def _is_json(text: Any) -> bool:
    """Unparseable JSON text reads as absent, as the reference's ``_loads`` fallback had it."""
    if not isinstance(text, str):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True
