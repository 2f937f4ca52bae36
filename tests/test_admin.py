"""``sessiond admin``: every command against a real daemon on a temp socket, or on its database file.

The commands run in-process through ``sessiond.cli.main`` (stdout captured) against daemons the
tests start; one runs as the installed console script. The backup is taken while 4 writers keep
committing; it is then restored and served by a second daemon, and compared over the wire.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.daemons import Running
from helpers.hermes_home import build_home
from helpers.metrics import metrics_url, scrape
from helpers.wire import all_entries, load_transcript
from sessiond.cli import main
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import source_pb2, transcript_pb2

Start = Callable[..., Running]


def admin(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["admin", *args])
    out, err = capsys.readouterr()
    return status, out, err


def admin_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    status, out, err = admin(capsys, *args, "--json")
    assert status == 0, err
    return json.loads(out)


def source(chat_id: str, platform: str = "telegram") -> source_pb2.SessionSource:
    return source_pb2.SessionSource(platform=platform, chat_id=chat_id)


def session(stub: Any, chat_id: str, platform: str = "telegram", messages: int = 0) -> pb.GetOrCreateSessionResponse:
    created = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source(chat_id, platform)), timeout=5)
    for start in range(0, messages, 1000):  # the default limits.max_batch
        batch = [
            transcript_pb2.Message(role="user", text=f"{chat_id} says {i}")
            for i in range(start, min(messages, start + 1000))
        ]
        stub.AppendMessages(pb.AppendMessagesRequest(session_id=created.entry.session_id, messages=batch), timeout=5)
    return created


def contents(running: Running) -> tuple[list[Any], dict[str, list[Any]]]:
    """Everything a client can read: every entry and every transcript."""
    entries = all_entries(running.stub)
    return entries, {entry.session_id: load_transcript(running.stub, entry.session_id, raw=True) for entry in entries}


# ----------------------------------------------------------------------------- online commands


def test_list_filters_and_prints_a_table_or_json(daemon: Running, capsys: pytest.CaptureFixture[str]) -> None:
    for chat in ("1", "2", "3"):
        session(daemon.stub, chat)
    discord = session(daemon.stub, "9", "discord").entry
    daemon.stub.SuspendSession(pb.SuspendSessionRequest(session_key=discord.session_key), timeout=5)
    listed = admin_json(capsys, "list", "--address", daemon.address)
    assert len(listed) == 4
    assert [e["session_key"] for e in admin_json(capsys, "list", "--address", daemon.address, "--suspended")] == [
        discord.session_key
    ]
    assert len(admin_json(capsys, "list", "--address", daemon.address, "--platform", "telegram")) == 3
    assert len(admin_json(capsys, "list", "--address", daemon.address, "--limit", "2")) == 2
    status, table, _ = admin(capsys, "list", "--address", daemon.address, "--pending")
    assert status == 0 and table.split() == ["session_key", "session_id", "platform", "updated_at", "flags"]
    status, table, _ = admin(capsys, "list", "--address", daemon.address)
    assert status == 0 and discord.session_key in table and "suspended" in table


def test_show_by_key_or_session_id_with_the_last_messages(daemon: Running, capsys: pytest.CaptureFixture[str]) -> None:
    entry = session(daemon.stub, "42", messages=15).entry
    by_key = admin_json(capsys, "show", entry.session_key, "--address", daemon.address, "--messages", "3")
    by_id = admin_json(capsys, "show", entry.session_id, "--address", daemon.address, "--messages", "3")
    assert by_key == by_id
    assert by_key["entry"]["session_id"] == entry.session_id
    assert [m["content"] for m in by_key["messages"]] == ["42 says 12", "42 says 13", "42 says 14"]
    status, _, err = admin(capsys, "show", "nobody", "--address", daemon.address)
    assert status == 1 and "NOT_FOUND" in err and "nobody" in err


def test_reset_suspend_and_prune_change_the_store(daemon: Running, capsys: pytest.CaptureFixture[str]) -> None:
    entry = session(daemon.stub, "7").entry
    reset = admin_json(capsys, "reset", entry.session_key, "--address", daemon.address)
    assert reset["session_id"] != entry.session_id
    assert admin_json(capsys, "suspend", entry.session_key, "--address", daemon.address)["suspended"] is True
    assert admin_json(capsys, "prune", "--days", "30", "--address", daemon.address) == {"pruned": 0}
    status, _, err = admin(capsys, "reset", "missing-key", "--address", daemon.address)
    assert status == 1 and "NOT_FOUND" in err


def test_link_unlink_and_links_commands(daemon: Running, capsys: pytest.CaptureFixture[str]) -> None:
    at = ("--address", daemon.address)
    made = admin_json(capsys, "link", "telegram", "111", "alice", *at)
    assert made["changed"] is True and made["link"]["identity"] == "alice"
    assert admin_json(capsys, "link", "discord", "u9", "alice", *at)["link"]["platform"] == "discord"
    status, out, _ = admin(capsys, "link", "telegram", "111", "bob", *at)
    assert status == 0 and out == "telegram:111 -> bob (was alice)\n"
    listed = admin_json(capsys, "links", "--identity", "alice", *at)
    assert [(link["platform"], link["user_id"]) for link in listed] == [("discord", "u9")]
    status, out, _ = admin(capsys, "links", *at)
    assert (
        out.splitlines()[0].split() == ["platform", "user_id", "identity", "linked_at"] and len(out.splitlines()) == 3
    )
    assert admin_json(capsys, "unlink", "telegram", "111", *at) == {"identity": "bob"}
    assert admin_json(capsys, "unlink", "telegram", "111", *at) == {"identity": None}
    status, _, err = admin(capsys, "link", "telegram", "1", "no spaces", *at)
    assert status == 1 and "INVALID_ARGUMENT: identity:" in err


def test_delete_archive_retention_and_vacuum_commands(daemon: Running, capsys: pytest.CaptureFixture[str]) -> None:
    at = ("--address", daemon.address)
    ids = [session(daemon.stub, str(n), messages=3).entry.session_id for n in range(5)]
    discord = session(daemon.stub, "d", platform="discord", messages=2).entry.session_id
    dry = admin_json(capsys, "delete", "--platform", "telegram", "--dry-run", "--show", "2", *at)
    assert dry == {"sessions": 5, "messages": 15, "first": ids[:2]}
    assert admin_json(capsys, "archive", "--id", discord, *at) == {"archived": 1, "messages": 2}
    assert admin_json(capsys, "archive", "--archived", "--unarchive", *at) == {"unarchived": 1, "messages": 2}
    assert admin_json(capsys, "delete", "--platform", "telegram", "--min-messages", "3", "--batch", "2", *at) == {
        "deleted": 5, "messages": 15,
    }  # fmt: skip
    assert admin_json(capsys, "retention", "--dry-run", *at) == {"archived": 0, "deleted": 0, "deleted_messages": 0}
    vacuum = admin_json(capsys, "vacuum", *at)
    assert vacuum["converted"] is False and vacuum["file_bytes"] > 0
    status, _, err = admin(capsys, "delete", *at)
    assert status == 1 and "INVALID_ARGUMENT: selector: set at least one condition" in err
    assert all_entries(daemon.stub) == []  # the archived session's entry went with it; the session stays
    assert daemon.stub.GetSessionMetadata(pb.GetSessionMetadataRequest(session_id=discord), timeout=5)


def test_export_writes_the_transcript_as_jsonl(
    daemon: Running, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    entry = session(daemon.stub, "5", messages=2500).entry  # three LoadTranscript pages
    output = tmp_path / "t.jsonl"
    status, _, err = admin(capsys, "export", entry.session_id, "--address", daemon.address, "--output", str(output))
    assert status == 0 and "exported 2500 messages" in err
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["content"] for line in lines] == [f"5 says {i}" for i in range(2500)]
    assert {line["role"] for line in lines} == {"user"}
    status, _, err = admin(capsys, "export", entry.session_id, "--address", daemon.address, "--output", str(output))
    assert status == 1 and "exists" in err  # never overwritten


# ----------------------------------------------------------------------------- backup and restore


class Writers:
    """4 threads committing new sessions and appends until stopped; what was acknowledged, and when."""

    def __init__(self, stub: Any):
        self.stub, self.stop, self.acked = stub, threading.Event(), [0] * 4
        self.threads = [threading.Thread(target=self.write, args=(n,)) for n in range(4)]

    def write(self, n: int) -> None:
        while not self.stop.is_set():
            session(self.stub, f"w{n}-{self.acked[n]}", messages=5)
            self.acked[n] += 1

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def test_backup_under_write_load_restores_to_identical_contents(
    start_daemon: Start, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    running = start_daemon()
    for chat in range(200):
        session(running.stub, f"seed{chat}", messages=20)
    under_load = tmp_path / "under-load.db"
    with Writers(running.stub) as writers:
        acked_before = list(writers.acked)
        status, out, err = admin(capsys, "backup", str(under_load), "--address", running.address)
        assert status == 0, err
    # The copy under load is one sound snapshot holding at least everything acknowledged before it began.
    snapshot = apsw.Connection(f"file:{under_load}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    assert snapshot.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    keys = {row[0] for row in snapshot.execute("SELECT session_key FROM entries")}
    assert all(f"agent:main:telegram:dm:w{n}-{i}" in keys for n in range(4) for i in range(acked_before[n]))
    counts = snapshot.execute("SELECT count(*) FROM messages GROUP BY session_id HAVING count(*) NOT IN (5, 20)")
    assert counts.fetchall() == []  # each append is all or nothing in the copy
    snapshot.close()
    print(f"\nbackup under load: {sum(writers.acked) - sum(acked_before)} sessions committed during the copy")

    quiet = tmp_path / "quiet.db"
    assert admin(capsys, "backup", str(quiet), "--address", running.address)[0] == 0
    restored_db = tmp_path / "restored" / "sessiond.db"
    restored_db.parent.mkdir()
    assert admin(capsys, "restore", str(quiet), "--db", str(restored_db))[0] == 0
    restored = start_daemon({"storage": {"path": str(restored_db)}})
    assert contents(restored) == contents(running)


def test_backup_is_written_here_and_never_over_a_file(
    daemon: Running, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``sessiond admin backup PATH`` takes a streamed snapshot and writes it on the caller's side."""
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"keep me")
    status, _, err = admin(capsys, "backup", str(existing), "--address", daemon.address)
    assert status == 1 and "never overwrites" in err and existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.db"]  # no partial files left
    result = admin_json(capsys, "backup", str(tmp_path / "new.db"), "--address", daemon.address)
    assert result["bytes"] == (tmp_path / "new.db").stat().st_size > 0


def test_restore_refuses_a_running_daemon_and_a_bad_backup(
    start_daemon: Start, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    running = start_daemon()
    session(running.stub, "1")
    database = running.daemon.storage.path
    backup = tmp_path / "b.db"
    assert admin(capsys, "backup", str(backup), "--address", running.address)[0] == 0
    status, _, err = admin(capsys, "restore", str(backup), "--db", str(database))
    assert status == 1 and "in use by another sessiond" in err
    running.daemon.stop(0)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    before = database.read_bytes()
    status, _, err = admin(capsys, "restore", str(garbage), "--db", str(database))
    assert status == 1 and str(garbage) in err and database.read_bytes() == before

    result = admin_json(capsys, "restore", str(backup), "--db", str(database))
    kept = Path(result["previous"])
    assert kept.exists() and kept.name.startswith("sessiond.db.before-restore-")
    assert admin_json(capsys, "verify", "--offline", "--db", str(database))["entries"] == 1


def test_verify_online_and_offline(start_daemon: Start, capsys: pytest.CaptureFixture[str]) -> None:
    running = start_daemon()
    for chat in range(3):
        session(running.stub, str(chat), messages=4)
    online = admin_json(capsys, "verify", "--address", running.address)
    assert online["ok"] is True and online["problems"] == []
    assert (online["entries"], online["sessions"], online["messages"]) == ("3", "3", "12")  # int64 as JSON text
    database = running.daemon.storage.path
    status, _, err = admin(capsys, "verify", "--offline", "--db", str(database))
    assert status == 1 and "in use by another sessiond" in err
    running.daemon.stop(0)
    offline = admin_json(capsys, "verify", "--offline", "--db", str(database))
    assert offline["ok"] is True and (offline["entries"], offline["messages"]) == (3, 12)


# ----------------------------------------------------------------------------- import from Hermes


def test_import_hermes_dry_run_then_import_then_nothing_more(
    start_daemon: Start, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = tmp_path / "hermes"
    build_home(home)
    database = tmp_path / "imported.db"
    dry = admin_json(capsys, "import-hermes", str(home), "--db", str(database), "--dry-run")
    assert dry["entries_imported"] > 0
    first = admin_json(capsys, "import-hermes", str(home), "--db", str(database))
    assert first == dry
    again = admin_json(capsys, "import-hermes", str(home), "--db", str(database))
    assert again["entries_imported"] == 0 and again["entries_present"] == first["entries_imported"]
    running = start_daemon({"storage": {"path": str(database)}})
    assert len(all_entries(running.stub)) == first["entries_imported"]


def test_the_console_script_runs_admin(daemon: Running) -> None:
    """The installed entry point, as an operator types it: exit 0 and a table."""
    session(daemon.stub, "77")
    command = [Path(sys.executable).with_name("sessiond"), "admin", "list", "--address", daemon.address]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "agent:main:telegram:dm:77" in done.stdout


def test_a_backup_sets_the_last_backup_metric(
    start_daemon: Start, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    running = start_daemon({"metrics": {"address": "127.0.0.1:0"}})
    started = time.time()
    assert admin(capsys, "backup", str(tmp_path / "b.db"), "--address", running.address)[0] == 0
    families = text_string_to_metric_families(scrape(metrics_url(running)))
    (last,) = (
        family.samples[0].value for family in families if family.name == "sessiond_last_backup_timestamp_seconds"
    )
    assert last >= int(started)
