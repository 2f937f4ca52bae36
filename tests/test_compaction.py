"""Compaction in place and branches over the wire (issue 17, part 4): a summary replaces a range
of messages while the session id stays and the replaced ones stay stored (archived, listed with
include_hidden, found by search); a branch copies a transcript up to a message into a new
session, its child in the lineage, optionally with a key pointing at it. Both backends."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from helpers.daemons import Running
from helpers.events import Stream
from helpers.wire import code_of, get_or_create, invalid_field, source
from sessiond_client import SessionStoreClient
from sessiond_client.v1 import events_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

ARCHIVED = transcript_pb2.MESSAGE_VISIBILITY_ARCHIVED


def text_message(role: str, text: str, **fields: Any) -> transcript_pb2.Message:
    return transcript_pb2.Message(role=role, text=text, **fields)


def load(stub: Any, session_id: str, include_hidden: bool = False) -> list[tuple[int, str, int]]:
    request = pb.LoadTranscriptRequest(session_id=session_id, include_hidden=include_hidden)
    return [(m.position, m.text, m.visibility) for m in stub.LoadTranscript(request, timeout=10).messages]


def compact(stub: Any, session_id: str, first: int, last: int, summary: str, **fields: Any) -> Any:
    request = pb.CompactTranscriptRequest(
        session_id=session_id,
        first_position=first,
        last_position=last,
        summary=text_message("system", summary),
        **fields,
    )
    return stub.CompactTranscript(request, timeout=10)


def branch(stub: Any, session_id: str, **fields: Any) -> pb.BranchSessionResponse:
    return stub.BranchSession(pb.BranchSessionRequest(session_id=session_id, **fields), timeout=10)


@pytest.fixture
def chat(daemon: Running) -> tuple[Any, str, str]:
    entry = get_or_create(daemon.stub, source("compact")).entry
    texts = [("user", "plan the harbour trip"), ("assistant", "ferry at nine"), ("user", "and lunch?"),
             ("assistant", "grilled sardines"), ("user", "thanks")]  # fmt: skip
    messages = [text_message(role, text, message_id=f"m{i}") for i, (role, text) in enumerate(texts)]
    daemon.stub.AppendMessages(pb.AppendMessagesRequest(session_id=entry.session_id, messages=messages), timeout=10)
    return daemon.stub, entry.session_key, entry.session_id


def test_a_summary_replaces_a_range_in_place(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    done = compact(stub, session_id, 0, 3, "Summary: ferry at nine, sardines for lunch.")
    assert (done.compaction, done.archived_messages, done.summary_position, done.visible_messages) == (1, 4, 3, 2)
    assert load(stub, session_id) == [(3, "Summary: ferry at nine, sardines for lunch.", 0), (4, "thanks", 0)]
    everything = load(stub, session_id, include_hidden=True)  # the range, then its summary
    assert [(p, v) for p, _, v in everything] == [
        (0, ARCHIVED),
        (1, ARCHIVED),
        (2, ARCHIVED),
        (3, ARCHIVED),
        (3, 0),
        (4, 0),
    ]
    appended = stub.AppendMessages(
        pb.AppendMessagesRequest(session_id=session_id, messages=[text_message("user", "next")]), timeout=10
    )
    assert appended.appended == 1 and load(stub, session_id)[-1] == (5, "next", 0)


def test_archived_messages_stay_searchable_with_their_neighbours(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    compact(stub, session_id, 0, 3, "Summary of the trip.")
    hits = stub.SearchMessages(pb.SearchMessagesRequest(query="sardines"), timeout=10).hits
    assert [(h.position, h.window[1].visibility) for h in hits] == [(3, ARCHIVED)]
    assert [m.position for m in hits[0].window] == [2, 3]  # its neighbours among the archived
    assert [h.position for h in stub.SearchMessages(pb.SearchMessagesRequest(query="summary"), timeout=10).hits] == [3]


def test_a_summary_can_be_compacted_again(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    compact(stub, session_id, 0, 1, "first summary")
    second = compact(stub, session_id, 0, 3, "second summary")
    assert (second.compaction, second.archived_messages) == (2, 3)  # the first summary and messages 2, 3
    assert load(stub, session_id) == [(3, "second summary", 0), (4, "thanks", 0)]
    texts = [t for _, t, _ in load(stub, session_id, include_hidden=True)]
    assert texts == ["plan the harbour trip", "ferry at nine", "first summary", "and lunch?", "grilled sardines",
                     "second summary", "thanks"]  # fmt: skip


def test_bad_compactions_write_nothing(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    before = load(stub, session_id, include_hidden=True)
    assert code_of(lambda: compact(stub, session_id, 10, 20, "s")) == grpc.StatusCode.FAILED_PRECONDITION
    assert invalid_field(lambda: compact(stub, session_id, 3, 1, "s")) == "last_position"
    assert invalid_field(lambda: compact(stub, session_id, -1, 1, "s")) == "first_position"
    taken = pb.CompactTranscriptRequest(
        session_id=session_id, first_position=0, last_position=1, summary=text_message("system", "s", message_id="m4")
    )
    assert invalid_field(lambda: stub.CompactTranscript(taken, timeout=10)) == "summary.message_id"
    no_summary = pb.CompactTranscriptRequest(session_id=session_id, first_position=0, last_position=1)
    assert invalid_field(lambda: stub.CompactTranscript(no_summary, timeout=10)) == "summary"
    assert load(stub, session_id, include_hidden=True) == before


def test_a_branch_copies_up_to_a_message_and_joins_the_lineage(chat: tuple[Any, str, str]) -> None:
    stub, key, session_id = chat
    made = branch(stub, session_id, through_position=2, title="Harbour, take two")
    assert made.copied_messages == 3 and not made.HasField("entry")
    assert load(stub, made.session_id) == [
        (0, "plan the harbour trip", 0),
        (1, "ferry at nine", 0),
        (2, "and lunch?", 0),
    ]
    assert load(stub, session_id)[-1] == (4, "thanks", 0)  # the source is untouched
    lineage = stub.GetSessionLineage(pb.GetSessionLineageRequest(session_id=made.session_id), timeout=10)
    assert (lineage.session.parent_session_id, lineage.session.reason) == (session_id, "branch")
    assert lineage.session.title == "Harbour, take two"
    assert stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=10).entry.session_id == session_id


def test_a_branch_can_take_the_key_with_it(daemon: Running, chat: tuple[Any, str, str]) -> None:
    stub, key, session_id = chat
    events = Stream(daemon.stub, from_now=True)
    try:
        made = branch(stub, session_id, session_key=key)
        got = events.take(1)[0]
    finally:
        events.close()
    assert made.copied_messages == 5 and made.entry.session_id == made.session_id
    assert stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=10).entry.session_id == made.session_id
    assert (got.kind, got.session_key, got.session_id, got.previous_session_id, got.reason) == (
        events_pb2.EVENT_KIND_BRANCHED, key, made.session_id, session_id, "branch"
    )  # fmt: skip
    appended = stub.AppendMessages(
        pb.AppendMessagesRequest(session_id=made.session_id, messages=[text_message("user", "other way")]), timeout=10
    )
    assert appended.message_count == 6 and len(load(stub, session_id)) == 5


def test_bad_branches_write_nothing(chat: tuple[Any, str, str]) -> None:
    stub, key, session_id = chat
    stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=session_id, title="Taken"), timeout=10)
    sessions = stub.SearchSessions(pb.SearchSessionsRequest(query="2"), timeout=10).sessions
    assert code_of(lambda: branch(stub, "nope")) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: branch(stub, session_id, session_key="agent:main:none")) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: branch(stub, session_id, title="Taken")) == grpc.StatusCode.ALREADY_EXISTS
    assert invalid_field(lambda: branch(stub, session_id, through_position=-1)) == "through_position"
    assert stub.SearchSessions(pb.SearchSessionsRequest(query="2"), timeout=10).sessions == sessions


def test_compaction_is_an_event_and_the_python_client_does_both(daemon: Running, chat: tuple[Any, str, str]) -> None:
    stub, key, session_id = chat
    events = Stream(daemon.stub, from_now=True)
    try:
        with SessionStoreClient(daemon.address) as client:
            done = client.compact_transcript(session_id, 0, 1, {"role": "system", "content": "short"})
            assert done.archived_messages == 2
            made = client.branch_session(session_id, through_position=2)
            assert [m["content"] for m in client.load_transcript(made.session_id)] == ["short", "and lunch?"]
        got = events.take(2)
    finally:
        events.close()
    assert [(e.kind, e.session_key) for e in got] == [
        (events_pb2.EVENT_KIND_COMPACTED, key), (events_pb2.EVENT_KIND_BRANCHED, "")
    ]  # fmt: skip
