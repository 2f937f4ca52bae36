"""Per-session metadata over the wire (issue 17, part 7): a small typed map per session, changed as
a change of its key's entry (a version, expected_version, an event naming the keys), read with the
entry and with any stored session, carried by a branch and not by a reset, and filterable in
ListSessions, SearchSessions and SearchMessages. A refused change writes nothing. Runs on
PostgreSQL too (``make test-postgres``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from helpers.daemons import JsonLines, Running
from helpers.events import Stream
from helpers.wire import code_of, get_or_create, invalid_field, source
from sessiond_client import SessionStoreClient, errors
from sessiond_client.v1 import events_pb2, session_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

M = session_pb2.MetadataValue


@pytest.fixture
def stub(daemon: Running) -> Any:
    return daemon.stub


@pytest.fixture
def client(daemon: Running) -> Iterator[SessionStoreClient]:
    with SessionStoreClient(daemon.address) as client:
        yield client


def update(stub: Any, key: str, **fields: Any) -> pb.UpdateSessionMetadataResponse:
    return stub.UpdateSessionMetadata(pb.UpdateSessionMetadataRequest(session_key=key, **fields), timeout=10)


def metadata_of(stub: Any, session_id: str) -> dict[str, session_pb2.MetadataValue]:
    return dict(stub.GetSessionMetadata(pb.GetSessionMetadataRequest(session_id=session_id), timeout=10).metadata)


def listed(stub: Any, *filters: session_pb2.MetadataFilter) -> set[str]:
    response = stub.ListSessions(pb.ListSessionsRequest(metadata=filters), timeout=10)
    return {entry.session_key for entry in response.entries}


def where(key: str, value: M | None = None) -> session_pb2.MetadataFilter:
    return session_pb2.MetadataFilter(key=key, equals=value)


def test_every_kind_round_trips_with_the_entry_and_by_session_id(stub: Any) -> None:
    entry = get_or_create(stub).entry
    values = {
        "model": M(text="claude-opus"),
        "turns": M(integer=-(2**63)),
        "budget": M(number=2.5),
        "pinned": M(flag=False),
        "tags": M(texts=session_pb2.TextList(values=["work", "λ"])),
    }
    changed = update(stub, entry.session_key, set=values)
    assert changed.changed and changed.entry.version == entry.version + 1
    assert dict(changed.entry.metadata) == values
    read = stub.GetSession(pb.GetSessionRequest(session_key=entry.session_key), timeout=10).entry
    assert dict(read.metadata) == values
    assert metadata_of(stub, entry.session_id) == values
    assert dict(get_or_create(stub).entry.metadata) == values  # a kept session keeps it


def test_remove_replace_and_an_unchanged_update(stub: Any) -> None:
    key = get_or_create(stub).entry.session_key
    update(stub, key, set={"a": M(text="1"), "b": M(text="2"), "c": M(texts=session_pb2.TextList(values=["x"]))})
    after = update(stub, key, remove=["a", "absent"], set={"c": M(texts=session_pb2.TextList())})  # [] removes
    assert set(after.entry.metadata) == {"b"}
    same = update(stub, key, set={"b": M(text="2")})
    assert not same.changed and same.entry.version == after.entry.version
    kind_change = update(stub, key, set={"b": M(integer=2)})  # "2" and 2 differ: a change
    assert kind_change.changed
    replaced = update(stub, key, set={"z": M(flag=True)}, replace=True)
    assert dict(replaced.entry.metadata) == {"z": M(flag=True)}


def test_expected_version_makes_a_change_conditional(stub: Any) -> None:
    entry = get_or_create(stub).entry
    stale = entry.version
    update(stub, entry.session_key, set={"owner": M(text="ana")}, expected_version=stale)
    assert code_of(lambda: update(stub, entry.session_key, set={"owner": M(text="bo")}, expected_version=stale)) == (
        grpc.StatusCode.ABORTED
    )
    assert metadata_of(stub, entry.session_id)["owner"].text == "ana"


def test_bad_metadata_names_the_field_and_writes_nothing(stub: Any) -> None:
    entry = get_or_create(stub).entry
    key = entry.session_key
    too_many = {f"k{n}": M(integer=n) for n in range(33)}
    cases = {
        "set['Bad Key']": {"set": {"Bad Key": M(text="x")}},
        "set['empty']": {"set": {"empty": M()}},
        "set['long']": {"set": {"long": M(text="x" * 1025)}},
        "set['nan']": {"set": {"nan": M(number=float("nan"))}},
        "set['nul']": {"set": {"nul": M(text="a\x00b")}},
        "set['tags'][1]": {"set": {"tags": M(texts=session_pb2.TextList(values=["ok", ""]))}},
        "set": {"set": too_many},
        "remove[0]": {"remove": ["a"], "set": {"a": M(text="x")}},
        "session_key": {"session_key": ""},
    }
    for field, request in cases.items():
        target = request.pop("session_key", key)
        assert invalid_field(lambda: update(stub, target, **request)) == field  # noqa: B023 - called at once
    assert metadata_of(stub, entry.session_id) == {}
    assert stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=10).entry.version == entry.version
    assert code_of(lambda: update(stub, "agent:main:nowhere:dm:0", set={"a": M(text="x")})) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert code_of(lambda: metadata_of(stub, "20000101_000000_deadbeef")) == grpc.StatusCode.NOT_FOUND
    assert invalid_field(lambda: listed(stub, where("a", M(texts=session_pb2.TextList(values=["x"]))))) == (
        "metadata[0].equals"
    )
    assert invalid_field(lambda: listed(stub, where("A"))) == "metadata[0].key"


def test_a_reset_starts_without_it_a_switch_and_a_branch_carry_theirs(stub: Any) -> None:
    entry = get_or_create(stub).entry
    update(stub, entry.session_key, set={"workspace": M(text="w1")})
    reset = stub.ResetSession(pb.ResetSessionRequest(session_key=entry.session_key), timeout=10).entry
    assert dict(reset.metadata) == {} and metadata_of(stub, entry.session_id)["workspace"].text == "w1"
    back = stub.SwitchSession(
        pb.SwitchSessionRequest(session_key=entry.session_key, target_session_id=entry.session_id), timeout=10
    ).entry
    assert back.metadata["workspace"].text == "w1"
    branch = stub.BranchSession(pb.BranchSessionRequest(session_id=entry.session_id), timeout=10).session_id
    assert metadata_of(stub, branch)["workspace"].text == "w1"


def test_list_and_search_filter_by_value_list_membership_and_presence(stub: Any) -> None:
    keys = {}
    for name, values in {
        "a": {"team": M(text="red"), "tags": M(texts=session_pb2.TextList(values=["x", "y"])), "n": M(integer=3)},
        "b": {"team": M(text="blue"), "n": M(number=3.0), "vip": M(flag=True)},
        "c": {"vip": M(flag=False), "n": M(text="3")},
    }.items():
        entry = get_or_create(stub, source(name)).entry
        update(stub, entry.session_key, set=values)
        stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=entry.session_id, title=f"proj {name}"), timeout=10)
        text = transcript_pb2.Message(role="user", text="the shared word quokka")
        stub.AppendMessages(pb.AppendMessagesRequest(session_id=entry.session_id, messages=[text]), timeout=10)
        keys[name] = entry.session_key
    get_or_create(stub, source("plain"))
    by_name = {value: name for name, value in keys.items()}

    def names(found: set[str]) -> set[str]:
        return {by_name[key] for key in found if key in by_name} | ({"plain"} if len(found - set(by_name)) else set())

    assert names(listed(stub)) == {"a", "b", "c", "plain"}
    assert names(listed(stub, where("team", M(text="red")))) == {"a"}
    assert names(listed(stub, where("tags", M(text="y")))) == {"a"}  # a list holds it
    assert names(listed(stub, where("n", M(integer=3)))) == {"a", "b"}  # numbers by value, not text "3"
    assert names(listed(stub, where("vip", M(flag=True)))) == {"b"}
    assert names(listed(stub, where("vip", M(flag=False)))) == {"c"}
    assert names(listed(stub, where("vip"))) == {"b", "c"}  # present with any value
    assert names(listed(stub, where("team"), where("n", M(integer=3)))) == {"a", "b"}
    assert names(listed(stub, where("team", M(text="red")), where("vip"))) == set()  # all must match

    found = stub.SearchSessions(pb.SearchSessionsRequest(query="proj", metadata=[where("vip")]), timeout=10)
    assert {s.title for s in found.sessions} == {"proj b", "proj c"}
    assert all("vip" in s.metadata for s in found.sessions)
    hits = stub.SearchMessages(
        pb.SearchMessagesRequest(query="quokka", metadata=[where("team", M(text="blue"))]), timeout=10
    ).hits
    assert [hit.session.session_key for hit in hits] == [keys["b"]]
    assert hits[0].session.metadata["team"].text == "blue"


def test_a_change_is_one_event_naming_its_keys_never_its_values(stub: Any, rpc_log: JsonLines) -> None:
    kind = events_pb2.EVENT_KIND_METADATA_CHANGED
    events = Stream(stub, from_now=True, kinds=[kind])
    entry = get_or_create(stub).entry
    done = update(stub, entry.session_key, set={"owner": M(text="secret-owner"), "model": M(text="m")})
    update(stub, entry.session_key, set={"owner": M(text="secret-owner")})  # unchanged: no event
    update(stub, entry.session_key, remove=["model"])
    got = events.take(2)
    events.close()
    assert [(e.session_key, e.session_id, e.reason) for e in got] == [
        (entry.session_key, entry.session_id, "model,owner"),
        (entry.session_key, entry.session_id, "model"),
    ]
    assert got[0].entry_version == done.entry.version
    rpc_log.answered("UpdateSessionMetadata", "OK")
    assert rpc_log.lines and not any("secret-owner" in json.dumps(line) for line in rpc_log.lines)


def test_the_python_client_speaks_plain_values(client: SessionStoreClient, stub: Any) -> None:
    entry = get_or_create(stub).entry
    updated = client.update_session_metadata(
        entry.session_key, {"model": "gpt", "n": 2, "ratio": 0.5, "on": True, "tags": ["a", "b"]}
    )
    assert updated.metadata == {"model": "gpt", "n": 2, "ratio": 0.5, "on": True, "tags": ["a", "b"]}
    assert client.get_session_metadata(entry.session_id) == updated.metadata
    assert client.get_session_metadata("20000101_000000_deadbeef") is None
    assert [e.session_key for e in client.list_sessions(metadata={"tags": "b", "on": True})] == [entry.session_key]
    assert client.list_sessions(metadata={"model": None, "n": 3}) == []
    with pytest.raises(errors.ConflictError):
        client.update_session_metadata(entry.session_key, remove=["n"], expected_version=entry.version)
    with pytest.raises(TypeError, match="'bad'"):
        client.update_session_metadata(entry.session_key, {"bad": {"nested": 1}})  # type: ignore[dict-item]
    assert "metadata" not in client.get_session(entry.session_key).to_dict()  # type: ignore[union-attr]
