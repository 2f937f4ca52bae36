"""Search over the wire (issue 17, part 2): sessions by title and id, full-text search of
transcripts with snippets, windows, filters and pages; the index kept in the transaction of
every write, built in the background over existing messages, rebuilt by the admin call, and a
clear FAILED_PRECONDITION without it. Runs on PostgreSQL too (``make test-postgres``), except the
SQLite index's own life cycle."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from helpers.daemons import JsonLines, Running
from helpers.wire import code_of, get_or_create, invalid_field, source
from sessiond.model import Term
from sessiond.storage.postgres import tsquery
from sessiond.storage.sqlite_search import fts5_match
from sessiond_client import SessionStoreClient, errors
from sessiond_client.hermes.session_db import SessionDB
from sessiond_client.v1 import admin_pb2, admin_pb2_grpc, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def message(role: str, text: str, at: datetime = T0, **fields: Any) -> transcript_pb2.Message:
    message = transcript_pb2.Message(role=role, text=text, **fields)
    message.timestamp.FromDatetime(at)
    return message


def append(stub: Any, session_id: str, *messages: transcript_pb2.Message) -> None:
    stub.AppendMessages(pb.AppendMessagesRequest(session_id=session_id, messages=messages), timeout=10)


def search(stub: Any, query: str, **fields: Any) -> pb.SearchMessagesResponse:
    return stub.SearchMessages(pb.SearchMessagesRequest(query=query, **fields), timeout=10)


def hits_of(stub: Any, query: str, **fields: Any) -> list[tuple[str, int]]:
    return [(hit.session.session_id, hit.position) for hit in search(stub, query, **fields).hits]


@pytest.fixture
def stub(daemon: Running) -> Any:
    return daemon.stub


@pytest.fixture
def chat(stub: Any) -> tuple[str, str]:
    """A session (key, id) whose transcript talks about a trip."""
    entry = get_or_create(stub, source("trip")).entry
    append(
        stub,
        entry.session_id,
        message("user", "Plan a trip to Lisbon in May"),
        message("assistant", "Lisbon in May is warm; book the tram tour early."),
        message("user", "What about Porto?"),
        message("assistant", "Porto is three hours north by train."),
    )
    return entry.session_key, entry.session_id


def test_a_word_is_found_with_its_session_snippet_and_neighbours(stub: Any, chat: tuple[str, str]) -> None:
    key, session_id = chat
    found = search(stub, "tram")
    assert [(hit.session.session_id, hit.position, hit.role) for hit in found.hits] == [(session_id, 1, "assistant")]
    hit = found.hits[0]
    assert ">>>tram<<<" in hit.snippet and hit.time.ToDatetime(tzinfo=UTC) == T0
    assert hit.session.session_key == key and hit.session.platform == "telegram" and hit.session.message_count == 4
    assert [m.position for m in hit.window] == [0, 1, 2] and hit.window[1].text.startswith("Lisbon in May")
    assert [m.position for m in search(stub, "tram", window=0).hits[0].window] == [1]
    assert [m.position for m in search(stub, "porto", window=10).hits[0].window] == [0, 1, 2, 3]
    assert not found.index_building and not found.next_page_token


def test_all_words_must_match_and_ranking_prefers_more_matches(stub: Any, chat: tuple[str, str]) -> None:
    _, session_id = chat
    assert hits_of(stub, "lisbon may tram") == [(session_id, 1)]
    assert hits_of(stub, "lisbon rome") == []
    assert [pos for _, pos in hits_of(stub, "lisbon")] == [0, 1] or [pos for _, pos in hits_of(stub, "lisbon")] == [
        1,
        0,
    ]
    scores = [hit.score for hit in search(stub, "lisbon").hits]
    assert scores == sorted(scores, reverse=True)


def test_phrases_prefixes_case_and_punctuation(stub: Any, chat: tuple[str, str]) -> None:
    _, session_id = chat
    assert hits_of(stub, '"three hours"') == [(session_id, 3)]
    assert hits_of(stub, '"hours three"') == []
    assert hits_of(stub, "LISBON, tram!") == [(session_id, 1)]
    assert hits_of(stub, "tra*") and all(pos in (1, 3) for _, pos in hits_of(stub, "tra*"))  # tram, train
    assert hits_of(stub, "tra") == []  # a bare word matches whole words only
    assert hits_of(stub, "north-by-train") == [(session_id, 3)]  # punctuation joins words into a phrase


def test_the_query_language_cannot_be_reached_from_user_text(stub: Any, chat: tuple[str, str]) -> None:
    for hostile in ('"unbalanced', "NEAR(lisbon porto)", "lisbon OR porto", "body:lisbon", "a'b", "x:* & !y"):
        search(stub, hostile)  # never a syntax error, whatever the words
    assert invalid_field(lambda: search(stub, "* & !")) == "query"
    assert fts5_match((Term(("a", "b"), prefix=True), Term(("c",)))) == '"a b"* "c"'
    assert tsquery((Term(("a", "b"), prefix=True), Term(("c",)))) == "('a' <-> 'b':*) & ('c')"


def test_structured_content_is_searched_by_its_text_parts(stub: Any) -> None:
    session_id = get_or_create(stub, source("parts")).entry.session_id
    parts = [{"type": "text", "text": "a photo of the harbour"}, {"type": "image_url", "image_url": {"url": "u"}}]
    structured = transcript_pb2.Message(role="user", json=json.dumps(parts))
    append(stub, session_id, structured)
    assert hits_of(stub, "harbour") == [(session_id, 0)]
    assert hits_of(stub, "image_url") == [] and hits_of(stub, "type") == []  # keys are not text


def test_filters_by_role_platform_key_session_and_time(stub: Any, chat: tuple[str, str]) -> None:
    key, session_id = chat
    other = get_or_create(stub, source("other", platform="discord")).entry.session_id
    append(stub, other, message("user", "Lisbon again", at=T0 + timedelta(days=2)))
    assert {s for s, _ in hits_of(stub, "lisbon")} == {session_id, other}
    assert hits_of(stub, "lisbon", roles=["assistant"]) == [(session_id, 1)]
    assert hits_of(stub, "lisbon", platform="discord") == [(other, 0)]
    assert {p for _, p in hits_of(stub, "lisbon", session_key=key)} == {0, 1}
    assert hits_of(stub, "lisbon", session_id=other) == [(other, 0)]
    since = pb.SearchMessagesRequest(query="x").since
    since.FromDatetime(T0 + timedelta(days=1))
    assert hits_of(stub, "lisbon", since=since) == [(other, 0)]
    assert {s for s, _ in hits_of(stub, "lisbon", until=since)} == {session_id}


def test_a_key_filter_covers_the_sessions_the_key_had_before(stub: Any, chat: tuple[str, str]) -> None:
    key, first = chat
    second = stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10).entry.session_id
    append(stub, second, message("user", "Back from Lisbon"))
    assert {s for s, _ in hits_of(stub, "lisbon", session_key=key)} == {first, second}


def test_pages_go_through_every_hit_once(stub: Any) -> None:
    session_id = get_or_create(stub, source("many")).entry.session_id
    append(stub, session_id, *[message("user", f"note {i} about pelicans") for i in range(7)])
    seen, token, pages = [], "", 0
    while True:
        page = search(stub, "pelicans", page_size=3, page_token=token)
        seen += [hit.position for hit in page.hits]
        pages, token = pages + 1, page.next_page_token
        if not token:
            break
    assert sorted(seen) == list(range(7)) and pages == 3


def test_a_rewrite_changes_what_is_found_in_the_same_transaction(stub: Any, chat: tuple[str, str]) -> None:
    _, session_id = chat
    request = pb.RewriteTranscriptRequest(session_id=session_id, messages=[message("user", "Only Madrid now")])
    stub.RewriteTranscript(request, timeout=10)
    assert hits_of(stub, "lisbon") == [] and hits_of(stub, "madrid") == [(session_id, 0)]


def test_bad_search_requests_name_the_field(stub: Any) -> None:
    assert invalid_field(lambda: search(stub, "")) == "query"
    assert invalid_field(lambda: search(stub, "?!  ...")) == "query"
    assert invalid_field(lambda: search(stub, " ".join(f"w{i}" for i in range(33)))) == "query"
    assert invalid_field(lambda: search(stub, "x", window=11)) == "window"
    assert invalid_field(lambda: search(stub, "x", page_size=-1)) == "page_size"
    assert invalid_field(lambda: search(stub, "x", page_token="not-a-token")) == "page_token"
    assert invalid_field(lambda: search(stub, "x", roles=[""])) == "roles[0]"
    later = pb.SearchMessagesRequest(query="x")
    later.since.FromDatetime(T0)
    later.until.FromDatetime(T0)
    assert invalid_field(lambda: stub.SearchMessages(later, timeout=10)) == "until"


def test_search_words_stay_out_of_the_logs(stub: Any, chat: tuple[str, str], rpc_log: JsonLines) -> None:
    search(stub, "tram")
    search(stub, "zebra crossing")
    assert rpc_log.lines and not any(
        "tram" in json.dumps(line) or "zebra" in json.dumps(line) for line in rpc_log.lines
    )


# -- sessions by title and id -----------------------------------------------------------------


def search_sessions(stub: Any, query: str, **fields: Any) -> list[str]:
    response = stub.SearchSessions(pb.SearchSessionsRequest(query=query, **fields), timeout=10)
    return [summary.session_id for summary in response.sessions]


def test_sessions_are_found_by_the_start_of_their_title_or_id(stub: Any) -> None:
    first = get_or_create(stub, source("t1")).entry.session_id
    second = get_or_create(stub, source("t2", platform="discord")).entry.session_id
    stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=first, title="My Project #2"), timeout=10)
    stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=second, title="my-project notes"), timeout=10)
    assert set(search_sessions(stub, "my proj")) == {first, second}
    assert set(search_sessions(stub, "MYPROJECT")) == {first, second}
    assert search_sessions(stub, "my-project", platform="discord") == [second]
    assert search_sessions(stub, "project") == []  # the start of the title, not a word inside it
    assert first in search_sessions(stub, first[:17]) and second not in search_sessions(stub, first[:-1] + "?")
    assert search_sessions(stub, first) == [first]
    summary = stub.SearchSessions(pb.SearchSessionsRequest(query=first), timeout=10).sessions[0]
    assert summary.title == "My Project #2" and summary.session_key and summary.platform == "telegram"
    assert invalid_field(lambda: search_sessions(stub, "  ")) == "query"


def test_a_prefix_ending_in_the_last_code_points_finds_its_titles(stub: Any) -> None:
    """The end of an id prefix's range skips what cannot grow (U+10FFFF) and the surrogates (found by
    the fuzz test: such a query was an INTERNAL error); titles fold those characters away."""
    last = get_or_create(stub, source("u1")).entry.session_id
    below = get_or_create(stub, source("u2")).entry.session_id
    stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=last, title="z\U0010ffffx"), timeout=10)
    stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=below, title="zy"), timeout=10)
    assert set(search_sessions(stub, "z\U0010ffff")) == {last, below}
    assert set(search_sessions(stub, "z\ud7ff\U0010ffff")) == {last, below}
    assert search_sessions(stub, "\U0010ffff\U0010ffff") == []
    assert search_sessions(stub, last[:-1] + "\U0010ffff") == []


def test_session_search_pages(stub: Any) -> None:
    made = []
    for i in range(5):
        session_id = get_or_create(stub, source(f"page{i}")).entry.session_id
        stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=session_id, title=f"Paged {i}"), timeout=10)
        made.append(session_id)
    first = stub.SearchSessions(pb.SearchSessionsRequest(query="paged", page_size=3), timeout=10)
    rest = stub.SearchSessions(pb.SearchSessionsRequest(query="paged", page_token=first.next_page_token), timeout=10)
    assert len(first.sessions) == 3 and not rest.next_page_token
    assert sorted(s.session_id for s in [*first.sessions, *rest.sessions]) == sorted(made)


# -- clients ----------------------------------------------------------------------------------------


def test_the_python_client_and_the_hermes_session_db_search(daemon: Running, chat: tuple[str, str]) -> None:
    key, session_id = chat
    with SessionStoreClient(daemon.address) as client:
        results = client.search_messages("lisbon", roles=["assistant"], window=1)
        assert [(h.session.session_id, h.position) for h in results.hits] == [(session_id, 1)]
        assert [m["content"] for m in results.hits[0].window][1].startswith("Lisbon in May")
        assert len(client.search_messages("lisbon", limit=1).hits) == 1
        assert client.search_messages("lisbon", limit=1, offset=1).hits[0].position in (0, 1)
        assert client.search_sessions(session_id)[0].session_key == key
        with pytest.raises(errors.InvalidArgumentError):
            client.search_messages("...")
    found = SessionDB(address=daemon.address).search_messages("porto", role_filter=["assistant"])
    assert [(f["session_id"], f["role"], f["source"]) for f in found] == [(session_id, "assistant", "telegram")]
    assert ">>>Porto<<<" in found[0]["snippet"] and [c["role"] for c in found[0]["context"]] == [
        "user"
    ]  # the last message: one neighbour
    assert SessionDB(address=daemon.address).search_messages("porto", source_filter=["discord"]) == []


# -- the SQLite index's life cycle --------------------------------------------------------------------


def admin(running: Running) -> Any:
    return admin_pb2_grpc.AdminStub(running.channel)


def verify(running: Running) -> admin_pb2.VerifyResponse:
    return admin(running).Verify(admin_pb2.VerifyRequest(), timeout=60)


@pytest.mark.sqlite_only
def test_without_the_index_search_is_a_clear_failed_precondition(start_daemon: Callable[..., Running]) -> None:
    running = start_daemon({"storage": {"full_text_search": False}})
    session_id = get_or_create(running.stub, source("off")).entry.session_id
    append(running.stub, session_id, message("user", "nothing indexed"))
    with pytest.raises(grpc.RpcError) as raised:
        search(running.stub, "indexed")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "storage.full_text_search" in (raised.value.details() or "")
    assert verify(running).search_index == "off"
    rebuild = admin(running).RebuildSearchIndex(admin_pb2.RebuildSearchIndexRequest(), timeout=10)
    assert code_of(lambda: list(rebuild)) == grpc.StatusCode.FAILED_PRECONDITION
    assert search_sessions(running.stub, session_id) == [session_id]  # title and id search needs no index


@pytest.mark.sqlite_only
def test_an_index_turned_on_over_stored_messages_is_built_in_the_background(
    start_daemon: Callable[..., Running], tmp_path: Any
) -> None:
    database = str(tmp_path / "sessions.db")
    before = start_daemon({"storage": {"path": database, "full_text_search": False}})
    session_id = get_or_create(before.stub, source("old")).entry.session_id
    append(before.stub, session_id, *[message("user", f"archived albatross {i}") for i in range(50)])
    before.channel.close()
    before.daemon.stop(0)
    running = start_daemon({"storage": {"path": database}, "maintenance": {"search_index_seconds": 0.05}})
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while (status := verify(running)).search_index == "building" and datetime.now(UTC) < deadline:
        pass  # each Verify is a full integrity check: the loop is paced by it, and bounded
    assert status.search_index == "ready" and status.ok, status.problems
    assert len(search(running.stub, "albatross", page_size=100).hits) == 50


@pytest.mark.sqlite_only
def test_a_rebuild_streams_progress_and_leaves_the_index_whole(daemon: Running, chat: tuple[str, str]) -> None:
    _, session_id = chat
    progress = list(admin(daemon).RebuildSearchIndex(admin_pb2.RebuildSearchIndexRequest(), timeout=60))
    assert progress[-1].done and progress[-1].messages_done == progress[-1].messages_total == 4
    assert all(not p.done for p in progress[:-1])
    assert hits_of(daemon.stub, "tram") == [(session_id, 1)]
    assert verify(daemon).ok and verify(daemon).search_index == "ready"


def test_postgres_refuses_a_rebuild_or_sqlite_verifies_the_index(daemon: Running, chat: tuple[str, str]) -> None:
    """Either backend: Verify reports a ready index that matches the messages."""
    status = verify(daemon)
    assert status.ok and status.search_index == "ready"
