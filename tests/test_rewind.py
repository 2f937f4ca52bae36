"""Non-destructive rewind over the wire (issue 17, part 5): /undo N soft-deletes the last user
turns (kept, listed with include_hidden, out of the default view and of search), a restore
brings them back, /retry rewinds and appends in one transaction; each change one transaction
with its event, a refused one writes nothing. Both backends (``make test-postgres``)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from helpers.daemons import Running
from helpers.events import Stream
from helpers.wire import code_of, get_or_create, invalid_field, source
from sessiond_client import SessionStoreClient, errors
from sessiond_client.v1 import events_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

REWOUND = transcript_pb2.MESSAGE_VISIBILITY_REWOUND
TURNS = [("user", "u1"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a2"), ("tool", "t2"), ("user", "u3")]


def text_message(role: str, text: str) -> transcript_pb2.Message:
    return transcript_pb2.Message(role=role, text=text, message_id=text)


def load(stub: Any, session_id: str, include_hidden: bool = False) -> list[tuple[str, int]]:
    request = pb.LoadTranscriptRequest(session_id=session_id, include_hidden=include_hidden, page_size=2)
    seen = []
    while True:
        page = stub.LoadTranscript(request, timeout=10)
        seen += [(m.text, m.visibility) for m in page.messages]
        if not page.next_page_token:
            return seen
        request.page_token = page.next_page_token


def visible(stub: Any, session_id: str) -> list[str]:
    return [text for text, _ in load(stub, session_id)]


def rewind(stub: Any, session_id: str, turns: int, *append: transcript_pb2.Message) -> pb.RewindTranscriptResponse:
    request = pb.RewindTranscriptRequest(session_id=session_id, turns=turns, append=append)
    return stub.RewindTranscript(request, timeout=10)


def restore(stub: Any, session_id: str, **fields: Any) -> pb.RestoreTranscriptResponse:
    return stub.RestoreTranscript(pb.RestoreTranscriptRequest(session_id=session_id, **fields), timeout=10)


@pytest.fixture
def chat(daemon: Running) -> tuple[Any, str, str]:
    entry = get_or_create(daemon.stub, source("rewind")).entry
    request = pb.AppendMessagesRequest(session_id=entry.session_id, messages=[text_message(*t) for t in TURNS])
    daemon.stub.AppendMessages(request, timeout=10)
    return daemon.stub, entry.session_key, entry.session_id


def test_undo_hides_the_last_turns_and_keeps_them(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    done = rewind(stub, session_id, 2)
    assert (done.rewind, done.rewound_messages, done.visible_messages) == (1, 4, 2)
    assert visible(stub, session_id) == ["u1", "a1"]
    everything = load(stub, session_id, include_hidden=True)
    assert [text for text, _ in everything] == [text for _, text in TURNS]  # all kept, in order
    assert [v for _, v in everything] == [0, 0, REWOUND, REWOUND, REWOUND, REWOUND]


def test_rewound_messages_are_not_found_by_search(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    assert len(stub.SearchMessages(pb.SearchMessagesRequest(query="u3"), timeout=10).hits) == 1
    rewind(stub, session_id, 1)
    assert not stub.SearchMessages(pb.SearchMessagesRequest(query="u3"), timeout=10).hits


def test_restore_brings_the_newest_rewind_back(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    rewind(stub, session_id, 1)
    rewind(stub, session_id, 1)
    assert visible(stub, session_id) == ["u1", "a1"]
    back = restore(stub, session_id)
    assert (back.rewind, back.restored_messages, back.visible_messages) == (2, 3, 5)
    assert visible(stub, session_id) == ["u1", "a1", "u2", "a2", "t2"]
    assert restore(stub, session_id).rewind == 1 and visible(stub, session_id) == [t for _, t in TURNS]
    assert code_of(lambda: restore(stub, session_id)) == grpc.StatusCode.FAILED_PRECONDITION


def test_retry_rewinds_and_appends_in_one_transaction(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    done = rewind(stub, session_id, 1, text_message("user", "u3 again"), text_message("assistant", "a3"))
    assert (done.rewound_messages, done.appended, done.visible_messages) == (1, 2, 7)
    assert visible(stub, session_id)[-3:] == ["t2", "u3 again", "a3"]
    # The rewound turn cannot come back under messages written after it.
    assert code_of(lambda: restore(stub, session_id)) == grpc.StatusCode.FAILED_PRECONDITION
    assert visible(stub, session_id)[-2:] == ["u3 again", "a3"]


def test_a_refused_rewind_writes_nothing(chat: tuple[Any, str, str]) -> None:
    stub, _, session_id = chat
    before = load(stub, session_id, include_hidden=True)
    assert code_of(lambda: rewind(stub, session_id, 4)) == grpc.StatusCode.FAILED_PRECONDITION  # 3 user turns
    duplicate = [text_message("user", "new"), text_message("user", "new")]
    with pytest.raises(grpc.RpcError):
        rewind(stub, session_id, 1, *duplicate[:1], transcript_pb2.Message(role="user", json="{not json"))
    assert load(stub, session_id, include_hidden=True) == before
    assert invalid_field(lambda: rewind(stub, session_id, 0)) == "turns"
    assert invalid_field(lambda: rewind(stub, "", 1)) == "session_id"
    assert invalid_field(lambda: restore(stub, session_id, rewind=0)) == "rewind"
    assert code_of(lambda: rewind(stub, "nope", 1)) == grpc.StatusCode.NOT_FOUND


def test_rewind_and_restore_are_events_of_the_key(daemon: Running, chat: tuple[Any, str, str]) -> None:
    stub, key, session_id = chat
    events = Stream(daemon.stub, from_now=True)
    try:
        rewind(stub, session_id, 1)
        restore(stub, session_id)
        got = events.take(2)
    finally:
        events.close()
    assert [(e.kind, e.session_key, e.session_id, e.reason) for e in got] == [
        (events_pb2.EVENT_KIND_REWOUND, key, session_id, "rewind"),
        (events_pb2.EVENT_KIND_REWOUND, key, session_id, "restore"),
    ]


def test_the_python_client_rewinds_and_restores(daemon: Running, chat: tuple[Any, str, str]) -> None:
    _, _, session_id = chat
    with SessionStoreClient(daemon.address) as client:
        done = client.rewind_transcript(session_id, turns=1, append=[{"role": "user", "content": "u3b"}])
        assert (done.rewound_messages, done.appended) == (1, 1)
        assert [m["content"] for m in client.load_transcript(session_id)][-1] == "u3b"
        hidden = client.load_transcript(session_id, include_hidden=True)
        assert [m.get("visibility") for m in hidden if m["content"] == "u3"] == ["rewound"]
        with pytest.raises(errors.FailedPreconditionError):
            client.restore_transcript(session_id)
