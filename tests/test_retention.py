"""Retention over the wire (issue 17, part 6): delete and archive stored sessions by selector
(single ids, age of last activity, platform, chat type, title, end reason, message counts,
metadata) with a dry run and batches of one transaction each, their events, archived sessions
out of search until asked for, the configured policy (ApplyRetention and the maintenance job),
and space given back by incremental vacuum. A leased session is never touched; a refused call
writes nothing. Runs on PostgreSQL too (``make test-postgres``), except the SQLite file's vacuum."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import grpc
import pytest

from helpers.clock import Clock
from helpers.daemons import Running
from helpers.events import Stream
from helpers.wire import acquire, code_of, get_or_create, invalid_field, load_transcript, source
from sessiond_client import SessionStoreClient
from sessiond_client.hermes.session_db import SessionDB
from sessiond_client.v1 import admin_pb2, admin_pb2_grpc, events_pb2, session_pb2, source_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

Selector = pb.SessionSelector
DELETED, ARCHIVED = events_pb2.EVENT_KIND_SESSION_DELETED, events_pb2.EVENT_KIND_SESSION_ARCHIVED


@pytest.fixture
def running(start_daemon: Callable[..., Running], clock: Clock) -> Running:
    return start_daemon(clock=clock)


@pytest.fixture
def stub(running: Running) -> Any:
    return running.stub


def admin(running: Running) -> admin_pb2_grpc.AdminStub:
    return admin_pb2_grpc.AdminStub(running.channel)


def chat(stub: Any, name: str, *texts: str, title: str = "", **fields: Any) -> session_pb2.SessionEntry:
    """A session of chat ``name`` with a user message per text (and a title)."""
    entry = get_or_create(stub, source(name, **fields)).entry
    messages = [transcript_pb2.Message(role="user", text=text) for text in texts]
    if messages:
        stub.AppendMessages(pb.AppendMessagesRequest(session_id=entry.session_id, messages=messages), timeout=10)
    if title:
        stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=entry.session_id, title=title), timeout=10)
    return entry


def delete(stub: Any, **selector: Any) -> pb.DeleteSessionsResponse:
    dry_run, limit = selector.pop("dry_run", False), selector.pop("limit", 0)
    request = pb.DeleteSessionsRequest(selector=Selector(**selector), dry_run=dry_run, limit=limit)
    return stub.DeleteSessions(request, timeout=10)


def archive(stub: Any, unarchive: bool = False, **selector: Any) -> pb.ArchiveSessionsResponse:
    request = pb.ArchiveSessionsRequest(selector=Selector(**selector), unarchive=unarchive)
    return stub.ArchiveSessions(request, timeout=10)


def exists(stub: Any, session_id: str) -> bool:
    try:
        stub.GetSessionMetadata(pb.GetSessionMetadataRequest(session_id=session_id), timeout=10)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return False
    return True


def found(stub: Any, word: str, **fields: Any) -> set[str]:
    hits = stub.SearchMessages(pb.SearchMessagesRequest(query=word, **fields), timeout=10).hits
    return {hit.session.session_id for hit in hits}


def test_a_dry_run_counts_and_a_delete_takes_the_transcript_index_and_entry(stub: Any) -> None:
    entry = chat(stub, "a", "walrus one", "walrus two")
    other = chat(stub, "b", "walrus three")
    events = Stream(stub, from_now=True, kinds=[DELETED])
    dry = delete(stub, session_ids=[entry.session_id], dry_run=True)
    assert (list(dry.session_ids), dry.messages, dry.remaining, dry.remaining_messages) == ([entry.session_id], 2, 1, 2)
    assert exists(stub, entry.session_id) and found(stub, "walrus") == {entry.session_id, other.session_id}
    done = delete(stub, session_ids=[entry.session_id])
    assert (list(done.session_ids), done.messages, done.remaining, list(done.session_keys)) == (
        [entry.session_id], 2, 0, [entry.session_key],
    )  # fmt: skip
    assert not exists(stub, entry.session_id)
    assert code_of(lambda: load_transcript(stub, entry.session_id)) == grpc.StatusCode.NOT_FOUND
    assert found(stub, "walrus") == {other.session_id}  # the index went in the same transaction
    assert code_of(lambda: stub.GetSession(pb.GetSessionRequest(session_key=entry.session_key), timeout=10)) == (
        grpc.StatusCode.NOT_FOUND
    )
    (event,) = events.take(1)
    events.close()
    assert (event.session_key, event.session_id, event.reason, event.entry_version) == (
        entry.session_key, entry.session_id, "delete", entry.version,
    )  # fmt: skip
    assert get_or_create(stub, source("a")).entry.session_id != entry.session_id  # the key starts over


def test_selectors_combine_every_condition(stub: Any, clock: Clock) -> None:
    old = chat(stub, "old", "x", title="Old notes")
    clock.advance(days=40)
    ended = chat(stub, "ended", "x", "y", "z")
    stub.ResetSession(pb.ResetSessionRequest(session_key=ended.session_key), timeout=10)
    group = chat(stub, "group", "x", chat_type=source_pb2.CHAT_TYPE_GROUP)
    tagged = chat(stub, "tagged")
    stub.UpdateSessionMetadata(
        pb.UpdateSessionMetadataRequest(
            session_key=tagged.session_key, set={"team": session_pb2.MetadataValue(text="red")}
        ),
        timeout=10,
    )
    discord = chat(stub, "d", "x", platform="discord")

    def chosen(**selector: Any) -> set[str]:
        return set(delete(stub, dry_run=True, limit=1000, **selector).session_ids)

    assert chosen(inactive_days=30) == {old.session_id}
    assert chosen(titled=True) == {old.session_id}
    assert chosen(title_prefix="OLD-not") == {old.session_id}
    assert chosen(end_reasons=["session_reset"]) == {ended.session_id}
    assert chosen(ended=True) == {ended.session_id}
    assert chosen(min_messages=3) == {ended.session_id}
    assert chosen(max_messages=0, ended=False) == {tagged.session_id} | chosen(max_messages=0, ended=False)
    assert chosen(chat_type="group") == {group.session_id}
    assert chosen(platform="discord") == {discord.session_id}
    assert chosen(metadata=[session_pb2.MetadataFilter(key="team")]) == {tagged.session_id}
    assert chosen(platform="discord", min_messages=2) == set()  # all must hold
    assert len(chosen(ended=False)) == 5  # the five current sessions, nothing else


def test_bulk_calls_go_in_batches_least_recently_active_first(stub: Any, clock: Clock) -> None:
    ids = []
    for n in range(5):
        ids.append(chat(stub, f"c{n}", "x").session_id)
        clock.advance(minutes=1)
    first = delete(stub, platform="telegram", limit=2)
    assert (list(first.session_ids), first.remaining, first.remaining_messages) == (ids[:2], 3, 3)
    second = delete(stub, platform="telegram", limit=2)
    third = delete(stub, platform="telegram", limit=2)
    assert list(second.session_ids) + list(third.session_ids) == ids[2:] and third.remaining == 0


def test_a_leased_session_is_never_selected(stub: Any) -> None:
    entry = chat(stub, "busy", "x")
    acquire(stub, entry.session_key, "worker", minutes=5)
    assert list(delete(stub, session_ids=[entry.session_id]).session_ids) == []
    assert list(archive(stub, session_ids=[entry.session_id]).session_ids) == []
    assert exists(stub, entry.session_id)


def test_archived_sessions_leave_search_until_asked_and_come_back(stub: Any) -> None:
    entry = chat(stub, "a", "narwhal", title="Project narwhal")
    events = Stream(stub, from_now=True, kinds=[ARCHIVED])
    done = archive(stub, session_ids=[entry.session_id])
    assert list(done.session_ids) == [entry.session_id] and list(done.session_keys) == [entry.session_key]
    assert found(stub, "narwhal") == set() and found(stub, "narwhal", include_archived=True) == {entry.session_id}
    search = pb.SearchSessionsRequest(query="project")
    assert not stub.SearchSessions(search, timeout=10).sessions
    search.include_archived = True
    (summary,) = stub.SearchSessions(search, timeout=10).sessions
    assert summary.HasField("archived_at") and summary.end_reason == "session_archived"
    assert [m.text for m in load_transcript(stub, entry.session_id)] == ["narwhal"]  # kept whole
    fresh = get_or_create(stub, source("a")).entry
    assert fresh.session_id != entry.session_id  # the key starts over
    assert list(archive(stub, session_ids=[entry.session_id]).session_ids) == []  # already archived
    assert list(archive(stub, unarchive=True, session_ids=[entry.session_id]).session_ids) == [entry.session_id]
    assert found(stub, "narwhal") == {entry.session_id}
    got = events.take(2)
    events.close()
    assert [(e.session_key, e.reason) for e in got] == [(entry.session_key, "archive"), ("", "unarchive")]


def test_switching_back_to_an_archived_session_unarchives_it(stub: Any) -> None:
    entry = chat(stub, "a", "orca")
    archive(stub, session_ids=[entry.session_id])
    key = get_or_create(stub, source("a")).entry.session_key
    stub.SwitchSession(pb.SwitchSessionRequest(session_key=key, target_session_id=entry.session_id), timeout=10)
    assert found(stub, "orca") == {entry.session_id}


def test_bad_selectors_name_the_field_and_write_nothing(stub: Any) -> None:
    entry = chat(stub, "a", "x")
    cases = {
        "selector": {},
        "selector.inactive_days": {"inactive_days": 0},
        "selector.session_ids": {"session_ids": ["x"] * 1001},
        "selector.end_reasons[0]": {"end_reasons": [""]},
        "selector.title_prefix": {"title_prefix": "!!"},
        "selector.min_messages": {"min_messages": -1},
        "selector.metadata[0].key": {"metadata": [session_pb2.MetadataFilter(key="Bad")]},
    }
    for field, selector in cases.items():
        assert invalid_field(lambda: delete(stub, **selector)) == field  # noqa: B023 - called at once
        assert invalid_field(lambda: archive(stub, **selector)) == field  # noqa: B023
    odd = delete(stub, session_ids=["a\x00b", "\ue000"], end_reasons=["\x00"])  # stored text's escapes: no match
    assert list(odd.session_ids) == [] and odd.remaining == 0
    too_many = pb.DeleteSessionsRequest(selector=Selector(platform="telegram"), limit=-1)
    assert invalid_field(lambda: stub.DeleteSessions(too_many, timeout=10)) == "limit"
    assert exists(stub, entry.session_id)


POLICY = {
    "retention": {
        "archive_after_days": 30,
        "delete_after_days": 90,
        "platforms": {"discord": {"delete_after_days": 7}},
        "chat_types": {"group": {"archive_after_days": 0, "delete_after_days": 0}},
    },
    "maintenance": {"retention_seconds": 0},
}


def test_the_policy_archives_then_deletes_by_platform_and_chat_type(
    start_daemon: Callable[..., Running], clock: Clock
) -> None:
    running = start_daemon(POLICY, clock=clock)
    stub = running.stub
    ancient = chat(stub, "ancient", "x")
    clock.advance(days=60)
    stale = chat(stub, "stale", "x")
    titled = chat(stub, "titled", "x", title="Keep me")
    group = chat(stub, "group", "x", chat_type=source_pb2.CHAT_TYPE_GROUP)
    discord = chat(stub, "d", "x", platform="discord")
    clock.advance(days=40)  # ancient: 100 days; the others 40
    chat(stub, "fresh", "x")
    dry = list(admin(running).ApplyRetention(admin_pb2.ApplyRetentionRequest(dry_run=True), timeout=10))
    # ancient is due for both; discord's policy deletes after 7 days and archives after the default 30
    assert (dry[-1].archived, dry[-1].deleted, dry[-1].done) == (3, 2, True)
    assert exists(stub, ancient.session_id)
    progress = list(admin(running).ApplyRetention(admin_pb2.ApplyRetentionRequest(), timeout=10))
    assert progress[-1].done and (progress[-1].archived, progress[-1].deleted) == (3, 2)
    assert not exists(stub, ancient.session_id) and not exists(stub, discord.session_id)
    summaries = {s.session_id: s for s in all_sessions(stub)}
    assert summaries[stale.session_id].HasField("archived_at")
    assert not summaries[titled.session_id].HasField("archived_at")  # titled sessions are kept
    assert not summaries[group.session_id].HasField("archived_at")  # groups: never


def all_sessions(stub: Any) -> list[pb.SessionSummary]:
    request = pb.SearchSessionsRequest(query="2", include_archived=True, page_size=100)  # ids start with the year
    return list(stub.SearchSessions(request, timeout=10).sessions)


def test_the_maintenance_job_applies_the_policy(start_daemon: Callable[..., Running], clock: Clock) -> None:
    config = {**POLICY, "maintenance": {"retention_seconds": 0.05}}
    running = start_daemon(config, clock=clock)
    events = Stream(running.stub, from_now=True, kinds=[DELETED])
    entry = chat(running.stub, "old", "x")
    clock.advance(days=100)
    (event,) = events.take(1)
    events.close()
    assert (event.session_id, event.reason) == (entry.session_id, "retention")


def pragma(db: Path, name: str) -> Any:
    connection = apsw.Connection(str(db))
    try:
        return connection.pragma(name)
    finally:
        connection.close()


@pytest.mark.sqlite_only
def test_vacuum_gives_the_space_of_deleted_sessions_back(start_daemon: Callable[..., Running], tmp_path: Path) -> None:
    db = tmp_path / "vacuum.db"
    running = start_daemon({"storage": {"path": str(db)}})
    stub = running.stub
    assert pragma(db, "auto_vacuum") == 2  # a new database gives pages back by steps
    for n in range(20):
        chat(stub, f"c{n}", *["a long message " * 200] * 20)
    delete(stub, platform="telegram", limit=1000)
    responses = list(admin(running).Vacuum(admin_pb2.VacuumRequest(), timeout=30))
    last = responses[-1]
    assert last.done and not last.converted and last.free_pages_before > 50
    assert last.pages_freed == last.free_pages_before and last.file_bytes == db.stat().st_size


@pytest.mark.sqlite_only
def test_vacuum_converts_an_older_database(start_daemon: Callable[..., Running], tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = start_daemon({"storage": {"path": str(path)}})
    chat(first.stub, "a", "x")
    first.daemon.stop(0)
    connection = apsw.Connection(str(path))  # as a database made before auto-vacuum was on
    connection.pragma("auto_vacuum", 0)
    connection.execute("VACUUM")
    connection.close()
    again = start_daemon({"storage": {"path": str(path)}})
    last = list(admin(again).Vacuum(admin_pb2.VacuumRequest(), timeout=30))[-1]
    assert last.done and last.converted
    assert pragma(path, "auto_vacuum") == 2


def test_postgres_refuses_vacuum_or_sqlite_runs_it(running: Running, databases: Any) -> None:
    call = lambda: list(admin(running).Vacuum(admin_pb2.VacuumRequest(), timeout=30))  # noqa: E731
    if databases.backend == "postgres":
        assert code_of(call) == grpc.StatusCode.FAILED_PRECONDITION
    else:
        assert call()[-1].done


def test_the_python_client_and_the_hermes_session_db(running: Running, clock: Clock) -> None:
    stub = running.stub
    old = chat(stub, "old", "x")
    stub.ResetSession(pb.ResetSessionRequest(session_key=old.session_key), timeout=10)
    clock.advance(days=10)
    kept = chat(stub, "kept", "x", "y")
    with SessionStoreClient(running.address) as client:
        dry = client.archive_sessions({"session_ids": [kept.session_id]}, dry_run=True)
        assert (dry.session_ids, dry.messages, dry.remaining) == ([kept.session_id], 2, 1)
        client.archive_sessions({"session_ids": [kept.session_id]})
        (summary,) = client.search_sessions(kept.session_id, include_archived=True)
        assert summary.archived_at is not None and summary.active_at is not None
        assert client.search_sessions(kept.session_id) == []
        assert client.delete_sessions({"metadata": {"absent": None}}).session_ids == []
    db = SessionDB(address=running.address)
    assert db.prune_sessions(older_than_days=30) == 0  # the ended session is 10 days old
    assert db.prune_sessions(older_than_days=5, source="discord") == 0
    assert db.prune_sessions(older_than_days=5) == 1  # the reset one (the archived one is fresh)
    assert not db.delete_session(old.session_id)
    fresh = chat(stub, "fresh", "x")
    assert db.delete_session(fresh.session_id) and not exists(stub, fresh.session_id)


@pytest.mark.sqlite_only
def test_vacuum_ends_while_messages_keep_coming(running: Running) -> None:
    """Each append adds an index segment; merging them must not chase the appends forever."""
    stub = running.stub
    busy = chat(stub, "busy", "x")
    for n in range(10):
        chat(stub, f"c{n}", *["words to index " * 30] * 10)
    delete(stub, min_messages=10, limit=1000)
    stop, appended = threading.Event(), threading.Event()

    def append() -> None:
        for n in itertools.count():
            message = transcript_pb2.Message(role="user", text=f"more words {n}")
            stub.AppendMessages(pb.AppendMessagesRequest(session_id=busy.session_id, messages=[message]), timeout=10)
            appended.set()
            if stop.is_set():
                return

    writer = threading.Thread(target=append)
    writer.start()
    try:
        assert appended.wait(10)
        last = list(admin(running).Vacuum(admin_pb2.VacuumRequest(), timeout=60))[-1]
    finally:
        stop.set()
        writer.join()
    assert last.done and last.pages_freed > 0
