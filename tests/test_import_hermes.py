"""Import of a Hermes home (``sessiond.ops.hermes_import``) made by the reference store itself.

The home is written by the oracle's seed ``SessionStore`` (index, ``state.db`` and JSONL files),
driven the way a gateway drives it, then closed (the gateway stopped). What the imported
database serves through a real daemon is compared with what a reference store reopened on the
same home reports.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import apsw
import oracle
import pytest

from helpers.daemons import Running
from helpers.hermes_home import SOURCES, build_home, say
from sessiond.daemon import config as config_module
from sessiond.errors import InvalidArgument, StorageError
from sessiond.model import to_us
from sessiond.ops.hermes_import import ImportSummary, import_hermes
from sessiond.storage.sqlite import SqliteStorage
from sessiond_client import SessionStoreClient

TABLES = {"entries": "session_key", "sessions": "id", "messages": "session_id, position", "leases": "session_key"}


@dataclass(frozen=True)
class Home:
    """A Hermes home and what the reference reports for it."""

    path: Path
    ids: dict[str, str]  # source name -> the session id its index entry points at
    entries: dict[str, dict[str, Any]]  # session key -> SessionEntry.to_dict()
    transcripts: dict[str, list[dict[str, Any]]]  # every session id -> load_transcript()


def reference_report(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """What a reference store reopened on the home reports: its entries and every transcript."""
    store = oracle.make_store(path)
    try:
        session_ids = [row[0] for row in store._db._conn.execute("SELECT id FROM sessions")]
        session_ids += [p.stem for p in (path / "sessions").glob("*.jsonl") if p.stem not in session_ids]
        entries = {entry.session_key: entry.to_dict() for entry in store.list_sessions()}
        return entries, {session_id: store.load_transcript(session_id) for session_id in session_ids}
    finally:
        store._db.close()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Home:
    path = tmp_path_factory.mktemp("hermes")
    ids = build_home(path)
    return Home(path, ids, *reference_report(path))


@pytest.fixture
def home(pristine: Home, tmp_path: Path) -> Home:
    """A private copy of the home, for tests that damage it."""
    path = tmp_path / "hermes"
    shutil.copytree(pristine.path, path)
    return Home(path, pristine.ids, pristine.entries, pristine.transcripts)


@pytest.fixture
def open_storage(tmp_path: Path) -> Iterator[Callable[..., SqliteStorage]]:
    """Open sessiond databases under the test's directory; closed at the end."""
    opened: list[SqliteStorage] = []

    def open_(name: str = "sessiond.db") -> SqliteStorage:
        opened.append(SqliteStorage(tmp_path / name, durable=False))
        return opened[-1]

    yield open_
    for storage in opened:
        storage.close()


def file_hashes(path: Path, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under ``path`` (so new files show too) and its content hash."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name not in ignore
    }


def query(database: Path, sql: str, mode: str = "mode=ro") -> list[Any]:
    """A query on a database opened read-only (``immutable=1``: no -wal/-shm created beside it)."""
    db = apsw.Connection(f"file:{database}?{mode}", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def dump(database: Path) -> dict[str, list[Any]]:
    """Every row of a sessiond database, in a stable order."""
    return {table: query(database, f"SELECT * FROM {table} ORDER BY {order}") for table, order in TABLES.items()}


def hermes_sessions(home: Path) -> list[Any]:
    sql = "SELECT id, source, user_id, started_at, ended_at, end_reason FROM sessions ORDER BY id"
    return query(home / "state.db", sql, "immutable=1")


def key_of(home: Home, name: str) -> str:
    return next(key for key, entry in home.entries.items() if entry["session_id"] == home.ids[name])


def index(home: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((home / "sessions" / "sessions.json").read_text())
    return data


# -- the import against the reference -----------------------------------------------------------


def test_import_serves_what_the_reference_reports(
    home: Home, open_storage: Callable[..., SqliteStorage], start_daemon: Callable[..., Running]
) -> None:
    before = file_hashes(home.path)
    storage = open_storage()
    calls: list[tuple[int, int]] = []
    summary = import_hermes(home.path, storage, progress=lambda done, total: calls.append((done, total)))
    storage.close()

    assert file_hashes(home.path) == before  # read only: nothing changed, nothing created beside it
    sessions = len(home.transcripts)
    assert calls == [(done, sessions) for done in range(1, sessions + 1)]
    assert summary.as_dict() == {
        "entries_imported": len(SOURCES),
        "entries_present": 0,
        "entries_skipped": {},
        "sessions_imported": sessions,
        "sessions_present": 0,
        "messages_imported": sum(map(len, home.transcripts.values())),
        "corrupt_lines": 0,
        "transcripts_from_jsonl": 1,
        "transcripts_from_db": sum(1 for t in home.transcripts.values() if t) - 1,
    }

    running = start_daemon({"storage": {"path": str(storage.path)}})
    with SessionStoreClient(running.address) as client:
        entries = client.list_sessions()
        assert {entry.session_key: entry.to_dict() for entry in entries} == home.entries
        assert all(e.version == 1 and not e.was_auto_reset and not e.reset_had_activity for e in entries)
        for session_id, expected in home.transcripts.items():
            assert client.load_transcript(session_id) == expected, session_id
    flags = {e["session_id"]: e for e in home.entries.values()}
    assert flags[home.ids["dm"]]["resume_pending"] and flags[home.ids["dm"]]["total_tokens"] == 1597
    assert flags[home.ids["whatsapp"]]["suspended"] and flags[home.ids["whatsapp"]]["expiry_finalized"]
    assert flags[home.ids["thread"]]["is_fresh_reset"]


def test_session_records_keep_times_platform_user_and_end(
    home: Home, open_storage: Callable[..., SqliteStorage]
) -> None:
    storage = open_storage()
    import_hermes(home.path, storage)
    ours = {row[0]: row for row in dump(storage.path)["sessions"]}
    ended = 0
    for session_id, platform, user_id, started, ended_at, reason in hermes_sessions(home.path):
        expected_end = None if ended_at is None else round(ended_at * 1_000_000)
        assert ours[session_id][1:6] == (platform, user_id, round(started * 1_000_000), expected_end, reason)
        assert ours[session_id][6] == len(home.transcripts[session_id])  # message_count
        ended += ended_at is not None
    assert ended == 3  # the group's suspended session, the thread's reset one, the local one switched away from


def test_the_longer_copy_of_a_transcript_wins(home: Home, open_storage: Callable[..., SqliteStorage]) -> None:
    storage = open_storage()
    summary = import_hermes(home.path, storage)
    assert summary.transcripts_from_jsonl == 1

    def texts(name: str) -> list[str | None]:
        return [m.content for m in storage.read(lambda tx: tx.load_messages(home.ids[name], -1, 100))]

    assert texts("signal") == ["jsonl only 1", "jsonl only 2", "jsonl only 3"]  # JSONL 3, state.db 0
    assert texts("whatsapp") == ["one", "two", "three", "four"]  # state.db 4, JSONL 1


def test_corrupt_jsonl_lines_are_skipped_and_counted(home: Home, open_storage: Callable[..., SqliteStorage]) -> None:
    transcript = home.path / "sessions" / f"{home.ids['signal']}.jsonl"
    with transcript.open("ab") as file:
        file.write(b'{"role": "user", "content": "cut short\n')  # a crash mid-write
        file.write(b"\xff\xfe not UTF-8\n")
        file.write(b"42\n")  # JSON, but not a message
        file.write(b'{"role": "user", "content": "\\ud800"}\n')  # a lone surrogate SQLite cannot store
        file.write(b"\n   \n")  # blank lines are not corrupt
        file.write(b'{"role": "assistant", "content": "still read"}\n')
    storage = open_storage()
    summary = import_hermes(home.path, storage)
    assert summary.corrupt_lines == 4
    loaded = storage.read(lambda tx: tx.load_messages(home.ids["signal"], -1, 100))
    assert [m.content for m in loaded][-2:] == ["jsonl only 3", "still read"]


def test_jsonl_times_and_index_times_are_read_in_the_configured_zone(
    home: Home, open_storage: Callable[..., SqliteStorage]
) -> None:
    transcript = home.path / "sessions" / f"{home.ids['signal']}.jsonl"
    with transcript.open("a") as file:
        file.write(json.dumps({"role": "user", "content": "dated", "timestamp": "2026-03-01T10:00:00"}) + "\n")
    zone = ZoneInfo("Asia/Kolkata")
    config = config_module.parse({"reset": {"default": {"time_zone": "Asia/Kolkata"}}})
    storage = open_storage()
    import_hermes(home.path, storage, config)

    key = key_of(home, "dm")
    entry = storage.read(lambda tx: tx.get_entry(key))
    assert entry is not None
    naive = home.entries[key]
    assert entry.created_at == datetime.fromisoformat(naive["created_at"]).replace(tzinfo=zone)
    assert entry.last_resume_marked_at == datetime.fromisoformat(naive["last_resume_marked_at"]).replace(tzinfo=zone)
    loaded = storage.read(lambda tx: tx.load_messages(home.ids["signal"], -1, 100))
    assert loaded[-1].timestamp == datetime(2026, 3, 1, 10, tzinfo=zone)
    started = dump(storage.path)["sessions"]
    assert loaded[0].timestamp is not None
    assert to_us(loaded[0].timestamp) == next(row[3] for row in started if row[0] == home.ids["signal"])


# -- what an import refuses or skips --------------------------------------------------------------

INVALID: dict[str, dict[str, Any]] = {
    "unknown platform": {"origin": {"platform": "irc", "chat_id": "#x"}},
    "invalid WhatsApp id": {"origin": {"platform": "whatsapp", "chat_id": "no such/../id", "chat_type": "dm"}},
    "invalid source": {"origin": {"platform": "telegram", "chat_id": "1", "chat_type": ["not", "text"]}},
    "malformed": {"created_at": "yesterday"},
}


def test_entries_sessiond_would_refuse_are_skipped_with_a_reason(
    home: Home, open_storage: Callable[..., SqliteStorage]
) -> None:
    data = index(home.path)
    valid = data[key_of(home, "dm")]
    for reason, change in INVALID.items():
        data[f"agent:main:bad:{reason}"] = {**valid, "session_id": f"bad-{reason}", **change}
    data["agent:main:no-id"] = {key: value for key, value in valid.items() if key != "session_id"}
    data["agent:main:not-an-object"] = ["nope"]
    (home.path / "sessions" / "sessions.json").write_text(json.dumps(data))

    summary = import_hermes(home.path, open_storage())
    assert summary.entries_skipped == {**dict.fromkeys(INVALID, 1), "malformed": 3}
    assert summary.entries_imported == len(SOURCES) and summary.sessions_imported == len(home.transcripts)

    plugins = config_module.parse({"platforms": {"plugins": {"irc": {}}}})
    with_irc = import_hermes(home.path, open_storage("with-irc.db"), plugins)
    assert with_irc.entries_imported == len(SOURCES) + 1 and "unknown platform" not in with_irc.entries_skipped


DAMAGE: dict[str, Callable[[Path], Any]] = {
    "sessions.json": lambda home: (home / "sessions" / "sessions.json").unlink(),
    "sessions.json: not valid JSON": lambda home: (home / "sessions" / "sessions.json").write_text('{"cut'),
    "sessions.json: not a JSON object": lambda home: (home / "sessions" / "sessions.json").write_text("[]"),
    "state.db: not a Hermes state database": lambda home: (home / "state.db").write_bytes(b"\0" * 4096),
}


@pytest.mark.parametrize("error", DAMAGE)
def test_an_unreadable_home_is_refused_before_anything_is_written(
    home: Home, open_storage: Callable[..., SqliteStorage], error: str
) -> None:
    DAMAGE[error](home.path)
    storage = open_storage()
    empty = dump(storage.path)
    with pytest.raises(InvalidArgument, match=error):
        import_hermes(home.path, storage)
    assert dump(storage.path) == empty


def test_without_state_db_the_index_and_jsonl_are_imported(
    home: Home, open_storage: Callable[..., SqliteStorage]
) -> None:
    (home.path / "state.db").unlink()
    storage = open_storage()
    summary = import_hermes(home.path, storage)
    assert summary.entries_imported == len(SOURCES) and summary.transcripts_from_db == 0
    sessions = {row[0]: row for row in dump(storage.path)["sessions"]}
    assert set(sessions) == {path.stem for path in (home.path / "sessions").glob("*.jsonl")} | set(home.ids.values())
    dm = home.entries[key_of(home, "dm")]
    created = datetime.fromisoformat(dm["created_at"]).astimezone()  # the host's zone, by default
    assert sessions[home.ids["dm"]][1:4] == ("telegram", "u1", to_us(created))


# -- idempotency, dry runs, interruptions, the lock ------------------------------------------------


def test_a_dry_run_writes_nothing_and_reports_what_a_run_would_do(
    home: Home, open_storage: Callable[..., SqliteStorage]
) -> None:
    storage = open_storage()
    empty = dump(storage.path)
    planned = import_hermes(home.path, storage, dry_run=True)
    assert dump(storage.path) == empty
    assert import_hermes(home.path, storage) == planned
    imported = dump(storage.path)
    again = import_hermes(home.path, storage, dry_run=True)
    assert dump(storage.path) == imported and again.entries_imported == again.sessions_imported == 0


def test_a_second_run_imports_nothing_and_changes_nothing(
    home: Home, open_storage: Callable[..., SqliteStorage]
) -> None:
    storage = open_storage()
    first = import_hermes(home.path, storage)
    imported = dump(storage.path)
    second = import_hermes(home.path, storage)
    assert dump(storage.path) == imported
    assert second == ImportSummary(entries_present=first.entries_imported, sessions_present=first.sessions_imported)


def test_keys_and_session_ids_already_in_sessiond_are_left_alone(
    home: Home, open_storage: Callable[..., SqliteStorage]
) -> None:
    storage = open_storage()
    key = key_of(home, "dm")
    import_hermes(home.path, storage)
    entry = storage.read(lambda tx: tx.get_entry(key))
    assert entry is not None
    storage.write(lambda tx: tx.put_entry(replace(entry, suspended=True, version=7)))
    data = index(home.path)
    data[key]["session_id"] = home.ids["group"]  # the key moved on in Hermes after the first import
    (home.path / "sessions" / "sessions.json").write_text(json.dumps(data))
    import_hermes(home.path, storage)
    kept = storage.read(lambda tx: tx.get_entry(key))
    assert kept is not None and kept.session_id == home.ids["dm"] and kept.suspended and kept.version == 7


def test_an_interrupted_import_is_completed_by_a_rerun(home: Home, open_storage: Callable[..., SqliteStorage]) -> None:
    class Crash(Exception):
        pass

    def crash_after_three(done: int, total: int) -> None:
        if done == 3:
            raise Crash

    storage = open_storage()
    with pytest.raises(Crash):
        import_hermes(home.path, storage, progress=crash_after_three)
    assert len(dump(storage.path)["sessions"]) == 3  # whole sessions only
    rerun = import_hermes(home.path, storage)
    assert rerun.sessions_present == 3 and rerun.sessions_imported == len(home.transcripts) - 3

    clean = open_storage("clean.db")
    import_hermes(home.path, clean)
    assert dump(storage.path) == dump(clean.path)


def test_a_live_gateway_database_is_read_through_its_wal_and_left_as_it_is(
    tmp_path: Path, open_storage: Callable[..., SqliteStorage]
) -> None:
    """The gateway still running: its WAL holds the latest rows; only SQLite's -shm index may change."""
    path = tmp_path / "live"
    store = oracle.make_store(path)
    entry = store.get_or_create_session(oracle.make_source(SOURCES["dm"]))
    say(store, entry.session_id, "in the WAL")
    try:
        assert (path / "state.db-wal").stat().st_size > 0
        before = file_hashes(path, ignore=("state.db-shm",))
        storage = open_storage()
        summary = import_hermes(path, storage)
        assert file_hashes(path, ignore=("state.db-shm",)) == before
        assert summary.sessions_imported == 1 and summary.transcripts_from_db == 1
    finally:
        store._db.close()


def test_the_import_is_refused_while_a_daemon_holds_the_database(
    tmp_path: Path, start_daemon: Callable[..., Running]
) -> None:
    database = tmp_path / "sessiond.db"
    start_daemon({"storage": {"path": str(database)}})
    with pytest.raises(StorageError, match="in use by another sessiond"):
        SqliteStorage(database)
