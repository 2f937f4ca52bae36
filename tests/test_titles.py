"""Session titles over the wire (issue 17, part 1): set, clear, read, find, lineage numbering,
a title requested with GetOrCreateSession and ResetSession, resume by title; each change one
transaction with its event, and a refused one writes nothing. Runs on PostgreSQL too
(``--backend=postgres``, ``make test-postgres``)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from helpers.daemons import Running
from helpers.events import Stream
from helpers.wire import code_of, get_or_create, invalid_field, source
from sessiond.rules import titles
from sessiond_client import SessionStoreClient, errors
from sessiond_client.hermes.session_db import SessionDB
from sessiond_client.v1 import events_pb2
from sessiond_client.v1 import session_store_pb2 as pb

CLIENT_SOURCE = {"platform": "telegram", "chat_id": "42", "chat_type": "dm"}


@pytest.fixture
def stub(daemon: Running) -> Any:
    return daemon.stub


def set_title(stub: Any, session_id: str, title: str) -> pb.SetSessionTitleResponse:
    return stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=session_id, title=title), timeout=10)


def title_of(stub: Any, session_id: str) -> str | None:
    response = stub.GetSessionTitle(pb.GetSessionTitleRequest(session_id=session_id), timeout=10)
    return response.title if response.HasField("title") else None


def find(stub: Any, title: str) -> str:
    return stub.FindSessionByTitle(pb.FindSessionByTitleRequest(title=title), timeout=10).session_id


def next_title(stub: Any, title: str) -> str:
    return stub.NextTitleInLineage(pb.NextTitleInLineageRequest(title=title), timeout=10).title


def test_a_title_is_set_in_one_spelling_found_and_cleared(stub: Any) -> None:
    session_id = get_or_create(stub).entry.session_id
    assert title_of(stub, session_id) is None
    assert set_title(stub, session_id, "  Trip \t to\n Lisbon ").title == "Trip to Lisbon"
    assert title_of(stub, session_id) == "Trip to Lisbon"
    assert find(stub, "Trip   to Lisbon") == session_id  # found in the same spelling
    cleared = set_title(stub, session_id, "   ")
    assert not cleared.HasField("title") and title_of(stub, session_id) is None
    assert code_of(lambda: find(stub, "Trip to Lisbon")) == grpc.StatusCode.NOT_FOUND


def test_titles_are_unique_and_a_refused_title_changes_nothing(stub: Any) -> None:
    first = get_or_create(stub, source("1")).entry.session_id
    second = get_or_create(stub, source("2")).entry.session_id
    set_title(stub, first, "Plans")
    set_title(stub, second, "Other")
    with pytest.raises(grpc.RpcError) as raised:
        set_title(stub, second, "Plans")
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS and first in raised.value.details()
    assert title_of(stub, second) == "Other" and find(stub, "Plans") == first
    assert set_title(stub, first, "Plans").title == "Plans"  # its own title again: no conflict


def test_bad_title_requests_name_the_field(stub: Any) -> None:
    session_id = get_or_create(stub).entry.session_id
    assert invalid_field(lambda: set_title(stub, session_id, "x" * 101)) == "title"
    assert invalid_field(lambda: set_title(stub, "", "a")) == "session_id"
    assert invalid_field(lambda: find(stub, "")) == "title"
    assert invalid_field(lambda: next_title(stub, "")) == "title"
    assert code_of(lambda: set_title(stub, "20000101_000000_deadbeef", "a")) == grpc.StatusCode.NOT_FOUND
    assert title_of(stub, session_id) is None


def test_next_title_in_lineage_numbers_after_the_highest(stub: Any) -> None:
    assert next_title(stub, "Research") == "Research"
    ids = [get_or_create(stub, source(str(n))).entry.session_id for n in range(4)]
    set_title(stub, ids[0], "Research")
    assert next_title(stub, "Research") == "Research #2"
    set_title(stub, ids[1], "Research #5")
    set_title(stub, ids[2], "Research #x")  # not a number: another lineage
    set_title(stub, ids[3], "Researchers #9")
    assert next_title(stub, "Research") == "Research #6"
    assert next_title(stub, "Research #2") == "Research #6"  # a numbered title's base is the lineage


def test_a_new_session_can_start_with_a_title(stub: Any) -> None:
    request = pb.GetOrCreateSessionRequest(source=source("7"), title="Day one")
    first = stub.GetOrCreateSession(request, timeout=10).entry
    assert title_of(stub, first.session_id) == "Day one"
    kept = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("7"), title="Ignored"), timeout=10)
    assert kept.entry.session_id == first.session_id and title_of(stub, first.session_id) == "Day one"
    reset = stub.ResetSession(pb.ResetSessionRequest(session_key=first.session_key, title="Day two"), timeout=10)
    assert reset.entry.session_id != first.session_id and title_of(stub, reset.entry.session_id) == "Day two"


def test_a_taken_title_refuses_the_new_session_and_writes_nothing(stub: Any) -> None:
    taken = get_or_create(stub, source("1")).entry
    set_title(stub, taken.session_id, "Taken")
    current = get_or_create(stub, source("2")).entry
    reset = pb.ResetSessionRequest(session_key=current.session_key, title="Taken")
    assert code_of(lambda: stub.ResetSession(reset, timeout=10)) == grpc.StatusCode.ALREADY_EXISTS
    forced = pb.GetOrCreateSessionRequest(source=source("2"), force_new=True, title="Taken")
    assert code_of(lambda: stub.GetOrCreateSession(forced, timeout=10)) == grpc.StatusCode.ALREADY_EXISTS
    fresh = pb.GetOrCreateSessionRequest(source=source("3"), title="Taken")
    assert code_of(lambda: stub.GetOrCreateSession(fresh, timeout=10)) == grpc.StatusCode.ALREADY_EXISTS
    after = stub.GetSession(pb.GetSessionRequest(session_key=current.session_key), timeout=10).entry
    assert after.session_id == current.session_id and after.version == current.version
    listed = stub.ListSessions(pb.ListSessionsRequest(), timeout=10).entries
    assert sorted(e.session_key for e in listed) == sorted([taken.session_key, current.session_key])


def test_resume_by_title_switches_the_key(stub: Any) -> None:
    old = get_or_create(stub, source("1")).entry
    set_title(stub, old.session_id, "Old thread")
    current = stub.ResetSession(pb.ResetSessionRequest(session_key=old.session_key), timeout=10).entry
    request = pb.SwitchSessionRequest(session_key=old.session_key, target_title="Old  thread")
    switched = stub.SwitchSession(request, timeout=10)
    assert switched.switched and switched.entry.session_id == old.session_id != current.session_id
    assert not stub.SwitchSession(request, timeout=10).switched  # already there
    missing = pb.SwitchSessionRequest(session_key=old.session_key, target_title="Nothing")
    assert code_of(lambda: stub.SwitchSession(missing, timeout=10)) == grpc.StatusCode.NOT_FOUND
    both = pb.SwitchSessionRequest(session_key=old.session_key, target_title="Old thread", target_session_id="x")
    assert invalid_field(lambda: stub.SwitchSession(both, timeout=10)) == "target_title"


def test_every_title_change_is_an_event(stub: Any) -> None:
    titled = events_pb2.EVENT_KIND_TITLED
    events = Stream(stub, from_now=True, kinds=[titled])
    entry = get_or_create(stub).entry
    set_title(stub, entry.session_id, "One")
    set_title(stub, entry.session_id, "One")  # unchanged: no event
    set_title(stub, entry.session_id, "")
    started = stub.ResetSession(pb.ResetSessionRequest(session_key=entry.session_key, title="Two"), timeout=10)
    got = events.take(3)
    assert [(e.session_id, e.reason) for e in got] == [
        (entry.session_id, "set"),
        (entry.session_id, "cleared"),
        (started.entry.session_id, "set"),
    ]
    assert {e.session_key for e in got} == {entry.session_key}


def test_the_python_client_speaks_titles(daemon: Running) -> None:
    with SessionStoreClient(daemon.address) as store:
        first = store.get_or_create_session(CLIENT_SOURCE, title="  Holiday   plans ")
        assert store.get_session_title(first.session_id) == "Holiday plans"
        assert store.find_session_by_title("Holiday plans") == first.session_id
        assert store.find_session_by_title("nothing") is None
        assert store.get_session_title("20000101_000000_deadbeef") is None
        assert store.next_title_in_lineage("Holiday plans") == "Holiday plans #2"
        second = store.reset_session(first.session_key, title="Holiday plans #2")
        assert second is not None and store.get_session_title(second.session_id) == "Holiday plans #2"
        with pytest.raises(errors.AlreadyExistsError):
            store.set_session_title(second.session_id, "Holiday plans")
        back = store.switch_session(first.session_key, target_title="Holiday plans")
        assert back is not None and back.session_id == first.session_id
        assert store.switch_session(first.session_key, target_title="nothing") is None
        assert store.set_session_title(first.session_id, "") is None
        assert store.get_session_title(first.session_id) is None


def test_title_rules() -> None:
    assert titles.normalized("\x07 a \u2003 b\n") == "a b"
    assert titles.normalized("a\u200bb \u202e c") == "ab c"  # invisible and direction characters go
    assert titles.lineage_base("Trip #12") == "Trip" and titles.lineage_base("#3") == "#3"
    assert titles.lineage_base("Trip #0") == "Trip"
    assert titles.next_in_lineage("Trip", []) == "Trip"
    assert titles.next_in_lineage("Trip", ["Trip #3"]) == "Trip #4"
    assert titles.next_in_lineage("Trip", ["Trip", "Trip #x"]) == "Trip #2"
    assert titles.next_in_lineage("Trip", ["Trip #2 #7"]) == "Trip #8"  # the trailing number counts


def test_the_latest_in_a_lineage_is_found_by_its_base(stub: Any) -> None:
    ids = [get_or_create(stub, source(str(n))).entry.session_id for n in range(3)]
    set_title(stub, ids[0], "Saga")
    latest = pb.FindSessionByTitleRequest(title="Saga", latest_in_lineage=True)
    assert stub.FindSessionByTitle(latest, timeout=10).session_id == ids[0]  # no continuation yet
    set_title(stub, ids[1], "Saga #2")
    set_title(stub, ids[2], "Saga #3")
    assert stub.FindSessionByTitle(latest, timeout=10).session_id == ids[2]  # the newest started
    assert find(stub, "Saga") == ids[0]  # an exact look-up is exact


def test_the_hermes_session_db_serves_the_gateways_title_commands(daemon: Running) -> None:
    """What the gateway's /title, /new <name> and /resume <name> handlers ask its SessionDB."""
    sessions = SessionDB(address=daemon.address)
    with SessionStoreClient(daemon.address) as store:
        first = store.get_or_create_session(CLIENT_SOURCE)
        second = store.reset_session(first.session_key)
    assert second is not None
    assert SessionDB.sanitize_title("  My \u200b trip\n") == "My trip" and SessionDB.sanitize_title(" \t") is None
    with pytest.raises(ValueError, match="too long"):
        SessionDB.sanitize_title("x" * 101)
    assert sessions.set_session_title(first.session_id, "My trip") is True
    assert sessions.set_session_title("20000101_000000_deadbeef", "Other") is False
    with pytest.raises(ValueError, match="already titled"):
        sessions.set_session_title(second.session_id, "My trip")
    assert sessions.get_session_title(first.session_id) == "My trip"
    assert sessions.get_session_title(second.session_id) is None
    assert sessions.get_next_title_in_lineage("My trip") == "My trip #2"
    assert sessions.set_session_title(second.session_id, sessions.get_next_title_in_lineage("My trip"))
    assert sessions.get_session_by_title("My trip") == {"id": first.session_id, "title": "My trip"}
    assert sessions.resolve_session_by_title("My trip") == second.session_id  # the chain's latest
    assert sessions.resolve_session_by_title("Nothing") is None and sessions.get_session_by_title("") is None
