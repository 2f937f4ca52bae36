"""One turn at a time over the wire (issue 18, part 4): BeginTurn with an owner, a time to live and
a fencing token that grows with every turn; fenced writes are ABORTED once a newer turn began
(and write nothing); a second begin rejects, queues or interrupts as asked; a turn whose owner
died is listed with the expired sessions and announced. Races: 64 agent loops on one key, and no
write of a stale token ever lands. Runs on PostgreSQL too (``make test-postgres``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from helpers.clock import Clock
from helpers.daemons import Running
from helpers.events import Stream
from helpers.races import NO_RESETS, stubs, together
from helpers.wire import code_of, invalid_field, snapshot, source
from sessiond_client import SessionStoreClient, errors
from sessiond_client.v1 import events_pb2, session_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

KEY = "agent:main:telegram:dm:111"
REJECT, QUEUE, INTERRUPT = pb.TURN_CONFLICT_REJECT, pb.TURN_CONFLICT_QUEUE, pb.TURN_CONFLICT_INTERRUPT
ABORTED = grpc.StatusCode.ABORTED


@pytest.fixture
def running(start_daemon: Callable[..., Running], clock: Clock) -> Running:
    return start_daemon({**NO_RESETS, "maintenance": {"lease_sweep_seconds": 0.05}}, clock=clock)


@pytest.fixture
def stub(running: Running) -> Any:
    stub = running.stub
    stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("111")), timeout=10)
    return stub


def begin(stub: Any, owner: str, on_conflict: int = REJECT, seconds: int = 60, key: str = KEY) -> pb.BeginTurnResponse:
    request = pb.BeginTurnRequest(session_key=key, owner=owner, ttl={"seconds": seconds}, on_conflict=on_conflict)
    return stub.BeginTurn(request, timeout=30)


def fence(token: int, key: str = KEY) -> pb.TurnFence:
    return pb.TurnFence(session_key=key, fencing_token=token)


def append(stub: Any, session_id: str, text: str, token: int) -> pb.AppendMessagesResponse:
    message = transcript_pb2.Message(role="user", text=text)
    request = pb.AppendMessagesRequest(session_id=session_id, messages=[message], fence=fence(token))
    return stub.AppendMessages(request, timeout=30)


def session_id(stub: Any) -> str:
    return str(stub.GetSession(pb.GetSessionRequest(session_key=KEY), timeout=10).entry.session_id)


def texts(stub: Any, sid: str) -> list[str]:
    return [m.text for m in stub.LoadTranscript(pb.LoadTranscriptRequest(session_id=sid), timeout=10).messages]


def test_tokens_grow_and_a_second_owner_is_rejected_queued_or_interrupts(stub: Any) -> None:
    first = begin(stub, "loop-a")
    assert first.started and first.turn.fencing_token == 1 and first.turn.session_id == session_id(stub)
    rejected = begin(stub, "loop-b")
    assert not rejected.started and rejected.turn.owner == "loop-a" and rejected.queue_position == 0
    assert begin(stub, "loop-b", QUEUE).queue_position == 1
    assert begin(stub, "loop-c", QUEUE).queue_position == 2
    assert begin(stub, "loop-b", QUEUE).queue_position == 1  # a waiter keeps its place
    stub.EndTurn(pb.EndTurnRequest(fence=fence(1)), timeout=10)
    assert not begin(stub, "loop-c", QUEUE).started  # the free key is the first waiter's
    second = begin(stub, "loop-b", QUEUE)
    assert second.started and second.turn.fencing_token == 2
    third = begin(stub, "loop-d", INTERRUPT)
    assert third.started and third.turn.fencing_token == 3 and third.interrupted.fencing_token == 2
    again = begin(stub, "loop-d")  # the same owner again: a restarted loop replaces its turn
    assert again.started and again.turn.fencing_token == 4 and again.interrupted.fencing_token == 3


def test_a_stale_token_writes_nothing_and_the_newest_writes(stub: Any) -> None:
    sid = session_id(stub)
    begin(stub, "loop-a")
    append(stub, sid, "from turn 1", 1)
    begin(stub, "loop-b", INTERRUPT)
    before = snapshot(stub, sid)
    stale = {
        "AppendMessages": lambda: append(stub, sid, "late", 1),
        "RewriteTranscript": lambda: stub.RewriteTranscript(
            pb.RewriteTranscriptRequest(session_id=sid, fence=fence(1)), timeout=10
        ),
        "UpdateSession": lambda: stub.UpdateSession(
            pb.UpdateSessionRequest(session_key=KEY, last_prompt_tokens=5, fence=fence(1)), timeout=10
        ),
        "RewindTranscript": lambda: stub.RewindTranscript(
            pb.RewindTranscriptRequest(session_id=sid, turns=1, fence=fence(1)), timeout=10
        ),
        "CompactTranscript": lambda: stub.CompactTranscript(
            pb.CompactTranscriptRequest(
                session_id=sid, first_position=0, last_position=0, summary={"role": "user", "text": "s"}, fence=fence(1)
            ),
            timeout=10,
        ),
        "UpdateSessionMetadata": lambda: stub.UpdateSessionMetadata(
            pb.UpdateSessionMetadataRequest(
                session_key=KEY, set={"a": session_pb2.MetadataValue(flag=True)}, fence=fence(1)
            ),
            timeout=10,
        ),
        "RenewTurn": lambda: stub.RenewTurn(pb.RenewTurnRequest(fence=fence(1), ttl={"seconds": 5}), timeout=10),
    }
    assert {name: code_of(call) for name, call in stale.items()} == dict.fromkeys(stale, ABORTED)
    assert not stub.EndTurn(pb.EndTurnRequest(fence=fence(1)), timeout=10).ended  # superseded: nothing to end
    assert snapshot(stub, sid) == before
    append(stub, sid, "from turn 2", 2)
    assert texts(stub, sid) == ["from turn 1", "from turn 2"]
    no_turn = pb.AppendMessagesRequest(session_id=sid, messages=[{"role": "user"}], fence=fence(1, "agent:main:x"))
    assert code_of(lambda: stub.AppendMessages(no_turn, timeout=10)) == ABORTED


def test_renewing_and_ending(stub: Any, clock: Clock) -> None:
    begun = begin(stub, "loop-a", seconds=30)
    renewed = stub.RenewTurn(pb.RenewTurnRequest(fence=fence(1), ttl={"seconds": 600}), timeout=10).turn
    assert renewed.expires_at.seconds - begun.turn.expires_at.seconds == 570
    clock.advance(seconds=300)
    assert not begin(stub, "loop-b").started  # renewed: still live
    assert stub.EndTurn(pb.EndTurnRequest(fence=fence(1)), timeout=10).ended
    assert not stub.EndTurn(pb.EndTurnRequest(fence=fence(1)), timeout=10).ended
    assert (
        code_of(lambda: stub.RenewTurn(pb.RenewTurnRequest(fence=fence(1), ttl={"seconds": 5}), timeout=10)) == ABORTED
    )
    assert begin(stub, "loop-b").turn.fencing_token == 2


def test_a_dead_owners_turn_is_listed_announced_and_resumable(stub: Any, clock: Clock) -> None:
    events = Stream(stub, from_now=True, kinds=[events_pb2.EVENT_KIND_TURN_EXPIRED])
    begin(stub, "loop-a", seconds=30)
    assert list(stub.ListExpiredSessions(pb.ListExpiredSessionsRequest(), timeout=10).abandoned_turns) == []
    clock.advance(seconds=31)
    (lapsed,) = events.take(1)  # the daemon's sweep found it
    events.close()
    assert (lapsed.session_key, lapsed.lease_owner, lapsed.fencing_token) == (KEY, "loop-a", 1)
    listed = stub.ListExpiredSessions(pb.ListExpiredSessionsRequest(), timeout=10).abandoned_turns
    assert [(t.session_key, t.owner, t.fencing_token) for t in listed] == [(KEY, "loop-a", 1)]
    assert (
        list(stub.ListExpiredSessions(pb.ListExpiredSessionsRequest(namespace="other"), timeout=10).abandoned_turns)
        == []
    )
    resumed = begin(stub, "loop-b")  # no conflict: the turn was abandoned
    assert resumed.started and resumed.turn.fencing_token == 2 and not resumed.HasField("interrupted")
    assert list(stub.ListExpiredSessions(pb.ListExpiredSessionsRequest(), timeout=10).abandoned_turns) == []


def test_turn_changes_are_events(stub: Any) -> None:
    events = Stream(stub, from_now=True, kinds=[
        events_pb2.EVENT_KIND_TURN_STARTED, events_pb2.EVENT_KIND_TURN_ENDED, events_pb2.EVENT_KIND_TURN_INTERRUPTED,
    ])  # fmt: skip
    begin(stub, "loop-a")
    begin(stub, "loop-b", INTERRUPT)
    stub.EndTurn(pb.EndTurnRequest(fence=fence(2)), timeout=10)
    got = [(e.kind, e.lease_owner, e.fencing_token, e.reason) for e in events.take(4)]
    events.close()
    assert got == [
        (events_pb2.EVENT_KIND_TURN_STARTED, "loop-a", 1, ""),
        (events_pb2.EVENT_KIND_TURN_INTERRUPTED, "loop-a", 1, "interrupted"),
        (events_pb2.EVENT_KIND_TURN_STARTED, "loop-b", 2, ""),
        (events_pb2.EVENT_KIND_TURN_ENDED, "loop-b", 2, ""),
    ]


def test_bad_turn_requests_name_the_field(stub: Any) -> None:
    assert invalid_field(lambda: begin(stub, "")) == "owner"
    assert invalid_field(lambda: begin(stub, "a", key="")) == "session_key"
    assert invalid_field(lambda: begin(stub, "a", seconds=0)) == "ttl"
    assert invalid_field(lambda: begin(stub, "a", seconds=86_401)) == "ttl"
    assert invalid_field(lambda: begin(stub, "a", on_conflict=9)) == "on_conflict"
    assert invalid_field(lambda: stub.EndTurn(pb.EndTurnRequest(), timeout=10)) == "fence"
    assert invalid_field(lambda: stub.EndTurn(pb.EndTurnRequest(fence=fence(0)), timeout=10)) == "fence.fencing_token"
    assert begin(stub, "a").turn.fencing_token == 1  # nothing was begun by the refused calls


def test_64_loops_racing_for_one_key(running: Running, stub: Any) -> None:
    """Rejecting begins: exactly one starts. Interrupting begins, each followed by a fenced append
    tagged with its token: tokens are 1..64 once each, and the transcript's tokens never go back
    (a write lands only while its token is the newest)."""
    count, sid = 64, session_id(stub)
    with stubs(running.address, count) as racers:
        first = together(count, lambda i: begin(racers[i], f"r{i}").started)
        assert first.count(True) == 1
        stub.EndTurn(pb.EndTurnRequest(fence=fence(1)), timeout=10)

        def loop(index: int) -> tuple[int, bool]:
            token = begin(racers[index], f"i{index}", INTERRUPT).turn.fencing_token
            try:
                append(racers[index], sid, str(token), token)
            except grpc.RpcError as error:
                assert error.code() == ABORTED
                return token, False
            return token, True

        results = together(count, loop)
    assert not [r for r in results if isinstance(r, grpc.RpcError)]
    tokens = sorted(token for token, _ in results)  # type: ignore[misc]
    assert tokens == list(range(2, count + 2))
    written = [int(text) for text in texts(stub, sid)]
    assert written == sorted(written) and len(written) == len(set(written))
    assert set(written) == {token for token, landed in results if landed}  # type: ignore[misc]
    assert max(tokens) in written  # nothing came after the newest turn: its write landed


def test_the_python_client_fences_its_writes(running: Running, stub: Any, clock: Clock) -> None:
    sid = session_id(stub)
    with SessionStoreClient(running.address) as client:
        mine = client.begin_turn(KEY, "loop-a", 30)
        assert mine.started and mine.turn is not None and mine.turn.fencing_token == 1
        client.append_messages(sid, [{"role": "user", "content": "one"}], fence=mine.turn)
        queued = client.begin_turn(KEY, "loop-b", 30, on_conflict="queue")
        assert (queued.started, queued.queue_position) == (False, 1)
        newer = client.begin_turn(KEY, "loop-c", 30, on_conflict="interrupt")
        assert newer.interrupted is not None and newer.interrupted.fencing_token == 1
        with pytest.raises(errors.ConflictError):
            client.append_messages(sid, [{"role": "user", "content": "stale"}], fence=mine.turn)
        with pytest.raises(errors.ConflictError):
            client.renew_turn(mine.turn, 30)
        assert newer.turn is not None and client.renew_turn(newer.turn, 60).fencing_token == 2
        clock.advance(seconds=61)
        assert [t.owner for t in client.list_abandoned_turns()] == ["loop-c"]
        assert not client.end_turn(mine.turn) and client.end_turn(newer.turn)
    assert texts(stub, sid) == ["one"]
