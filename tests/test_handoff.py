"""Handoff over the wire (issue 18, part 3): continue a session in another chat. The destination's
key points at the source's session in the transaction that ends the destination's former session
(end_reason "handoff"); the lineage records it; both keys get a HANDED_OFF event; across
namespaces it is refused and nothing is written. Races: 64 gateways handing one session around.
Runs on PostgreSQL too (``make test-postgres``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from helpers.daemons import Running
from helpers.events import Stream
from helpers.races import NO_RESETS, stubs, together
from helpers.wire import GROUP, code_of, invalid_field, snapshot, source
from sessiond_client import SessionStoreClient, errors
from sessiond_client.v1 import events_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

TELEGRAM, DISCORD = "agent:main:telegram:dm:111", "agent:main:discord:dm:222"


@pytest.fixture
def running(start_daemon: Callable[..., Running]) -> Running:
    return start_daemon(NO_RESETS)


@pytest.fixture
def stub(running: Running) -> Any:
    return running.stub


def chat(stub: Any, chat_id: str, platform: str, text: str = "", namespace: str | None = None) -> pb.SessionEntry:
    config = pb.GatewayConfig(namespace=namespace) if namespace else None
    request = pb.GetOrCreateSessionRequest(source=source(chat_id, platform), config=config)
    entry = stub.GetOrCreateSession(request, timeout=10).entry
    if text:
        message = transcript_pb2.Message(role="user", text=text)
        stub.AppendMessages(pb.AppendMessagesRequest(session_id=entry.session_id, messages=[message]), timeout=10)
    return entry


def handoff(stub: Any, key: str, **fields: Any) -> pb.HandoffSessionResponse:
    return stub.HandoffSession(pb.HandoffSessionRequest(session_key=key, **fields), timeout=10)


def texts(stub: Any, session_id: str) -> list[str]:
    return [m.text for m in stub.LoadTranscript(pb.LoadTranscriptRequest(session_id=session_id), timeout=10).messages]


def test_a_session_continues_in_another_chat(stub: Any) -> None:
    source_entry = chat(stub, "111", "telegram", "started on telegram")
    old = chat(stub, "222", "discord", "an older discord chat")
    events = Stream(stub, from_now=True, kinds=[events_pb2.EVENT_KIND_HANDED_OFF])
    done = handoff(stub, TELEGRAM, target_source=source("222", "discord"))
    assert (done.entry.session_key, done.entry.session_id) == (DISCORD, source_entry.session_id)
    assert done.replaced_session_id == old.session_id
    assert done.entry.origin.platform == "discord"  # replies go to the destination chat
    on_discord = chat(stub, "222", "discord", "continued on discord")
    assert on_discord.session_id == source_entry.session_id
    assert texts(stub, source_entry.session_id) == ["started on telegram", "continued on discord"]
    assert texts(stub, old.session_id) == ["an older discord chat"]  # ended, kept
    ended = stub.SearchSessions(pb.SearchSessionsRequest(query=old.session_id), timeout=10).sessions[0]
    assert ended.end_reason == "handoff"
    got = {(e.session_key, e.reason, e.other_session_key, e.session_id) for e in events.take(2)}
    events.close()
    assert got == {
        (DISCORD, "handoff_in", TELEGRAM, source_entry.session_id),
        (TELEGRAM, "handoff_out", DISCORD, source_entry.session_id),
    }
    lineage = stub.GetSessionLineage(pb.GetSessionLineageRequest(session_id=source_entry.session_id), timeout=10)
    assert [(h.from_session_key, h.to_session_key, h.replaced_session_id) for h in lineage.handoffs] == [
        (TELEGRAM, DISCORD, old.session_id)
    ]
    still = stub.GetSession(pb.GetSessionRequest(session_key=TELEGRAM), timeout=10).entry
    assert still.session_id == source_entry.session_id  # by default both chats feed the session


def test_a_new_chat_gets_an_entry_and_the_source_may_let_go(stub: Any) -> None:
    source_entry = chat(stub, "111", "telegram", "hello")
    done = handoff(stub, TELEGRAM, target_source=source("222", "discord"), release_source=True)
    assert done.entry.version == 1 and not done.HasField("replaced_session_id")
    assert code_of(lambda: stub.GetSession(pb.GetSessionRequest(session_key=TELEGRAM), timeout=10)) == (
        grpc.StatusCode.NOT_FOUND
    )
    fresh = chat(stub, "111", "telegram")
    assert fresh.session_id != source_entry.session_id  # the source chat starts over
    back = handoff(stub, DISCORD, target_session_key=TELEGRAM)
    assert back.entry.session_id == source_entry.session_id and back.replaced_session_id == fresh.session_id


def test_refusals_name_the_field_and_write_nothing(stub: Any) -> None:
    mine = chat(stub, "111", "telegram", "hello")
    theirs = chat(stub, "111", "telegram", namespace="research")
    before = snapshot(stub, mine.session_id, theirs.session_id)
    across = lambda: handoff(stub, TELEGRAM, target_session_key=theirs.session_key)  # noqa: E731
    assert code_of(across) == grpc.StatusCode.FAILED_PRECONDITION
    built_across = lambda: handoff(  # noqa: E731
        stub, TELEGRAM, target_source=source("5"), config=pb.GatewayConfig(namespace="research")
    )
    assert code_of(built_across) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: handoff(stub, TELEGRAM, target_session_key=TELEGRAM)) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: handoff(stub, TELEGRAM, target_session_key=DISCORD)) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: handoff(stub, DISCORD, target_session_key=TELEGRAM)) == grpc.StatusCode.NOT_FOUND
    assert invalid_field(lambda: handoff(stub, TELEGRAM)) == "target_session_key"
    assert (
        invalid_field(lambda: handoff(stub, TELEGRAM, target_source=source("5", "nowhere"))) == "target_source.platform"
    )
    stale = lambda: handoff(stub, TELEGRAM, target_source=source("3"), expected_version=99)  # noqa: E731
    assert code_of(stale) == grpc.StatusCode.ABORTED
    assert snapshot(stub, mine.session_id, theirs.session_id) == before


def test_64_gateways_handing_one_session_around_keep_one_history(running: Running) -> None:
    """Every handoff commits whole: at the end each destination key points at the one session, each
    replaced session was ended by exactly one handoff, and every message is in the session."""
    origin = chat(running.stub, "0", "telegram", "start")
    count = 64

    def hand(index: int) -> str:
        racer = racers[index]
        chat(racer, f"d{index}", "discord", f"own {index}")
        done = handoff(racer, "agent:main:telegram:dm:0", target_source=source(f"d{index}", "discord"))
        message = transcript_pb2.Message(role="user", text=f"m{index}")
        racer.AppendMessages(pb.AppendMessagesRequest(session_id=done.entry.session_id, messages=[message]), timeout=30)
        return done.replaced_session_id

    with stubs(running.address, count) as racers:
        replaced = together(count, hand)
    assert not [r for r in replaced if isinstance(r, grpc.RpcError)]
    assert len(set(replaced)) == count  # each destination's own session, ended once
    for index in range(count):
        key = f"agent:main:discord:dm:d{index}"
        entry = running.stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=10).entry
        assert entry.session_id == origin.session_id
    stored = texts(running.stub, origin.session_id)
    assert sorted(stored) == sorted(["start", *(f"m{i}" for i in range(count))])
    lineage = running.stub.GetSessionLineage(pb.GetSessionLineageRequest(session_id=origin.session_id), timeout=10)
    assert sorted(h.replaced_session_id for h in lineage.handoffs) == sorted(replaced)


def test_the_python_client_hands_a_session_off(running: Running) -> None:
    origin = chat(running.stub, "111", "telegram", "hello")
    with SessionStoreClient(running.address) as client:
        entry, replaced = client.handoff_session(TELEGRAM, target_source={"platform": "discord", "chat_id": "222"})
        assert (entry.session_key, entry.session_id, replaced) == (DISCORD, origin.session_id, None)
        lineage = client.get_session_lineage(origin.session_id)
        assert lineage is not None and [(h.from_session_key, h.to_session_key) for h in lineage.handoffs] == [
            (TELEGRAM, DISCORD)
        ]
        with pytest.raises(TypeError):
            client.handoff_session(TELEGRAM)
        with pytest.raises(errors.FailedPreconditionError):
            client.handoff_session(TELEGRAM, target_session_key=TELEGRAM)


def test_a_destination_whose_key_cannot_be_built_names_target_source(stub: Any) -> None:
    chat(stub, "111", "telegram")
    bad = source("42", "whatsapp", user_id="not a jid!", chat_type=GROUP)  # its participant is canonicalised
    assert invalid_field(lambda: handoff(stub, TELEGRAM, target_source=bad)) == "target_source.user_id"
