"""Session lineage over the wire (issue 17, part 3): every session a call starts records where it
came from and why; the chain is walked both ways and to its newest end. Runs on PostgreSQL too
(``--backend=postgres``, ``make test-postgres``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from helpers.clock import Clock
from helpers.daemons import Running
from helpers.wire import get_or_create, invalid_field, source
from sessiond_client import SessionStoreClient
from sessiond_client.v1 import session_store_pb2 as pb

IDLE_1_MIN = {"reset": {"default": {"mode": "idle", "idle_minutes": 1, "time_zone": "UTC"}}}


def lineage(stub: Any, session_id: str) -> pb.GetSessionLineageResponse:
    return stub.GetSessionLineage(pb.GetSessionLineageRequest(session_id=session_id), timeout=10)


def tip(stub: Any, session_id: str) -> str:
    return stub.GetLineageTip(pb.GetLineageTipRequest(session_id=session_id), timeout=10).session_id


def chain(response: pb.GetSessionLineageResponse) -> list[tuple[str, str]]:
    """(session id, reason) from the session back to the root."""
    links = [response.session, *response.ancestors]
    return [(link.session_id, link.reason if link.HasField("reason") else "") for link in links]


def test_each_way_a_key_gets_a_new_session_records_its_parent(
    start_daemon: Callable[..., Running], clock: Clock
) -> None:
    stub = start_daemon(IDLE_1_MIN, clock=clock).stub
    first = get_or_create(stub).entry
    forced = get_or_create(stub, force_new=True).entry
    key = first.session_key
    reset = stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10).entry
    clock.now += timedelta(minutes=5)
    auto = get_or_create(stub).entry
    switch = pb.SwitchSessionRequest(session_key=key, target_session_id="by-id-only", create_session=True)
    stub.SwitchSession(switch, timeout=10)
    got = lineage(stub, "by-id-only")
    assert chain(got) == [
        ("by-id-only", "switch"),
        (auto.session_id, "auto_reset"),
        (reset.session_id, "reset"),
        (forced.session_id, "force_new"),
        (first.session_id, ""),
    ]
    root = got.ancestors[-1]
    assert not root.HasField("parent_session_id") and root.started_at.ToDatetime() < got.session.started_at.ToDatetime()
    assert [c.session_id for c in lineage(stub, forced.session_id).children] == [reset.session_id]
    assert tip(stub, first.session_id) == "by-id-only" and tip(stub, "by-id-only") == "by-id-only"


def test_children_come_newest_first_and_the_tip_follows_the_newest(daemon: Running) -> None:
    stub = daemon.stub
    root = get_or_create(stub, source("1")).entry
    key = root.session_key
    older = stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10).entry
    back = pb.SwitchSessionRequest(session_key=key, target_session_id=root.session_id)
    stub.SwitchSession(back, timeout=10)
    newer = stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10).entry
    children = lineage(stub, root.session_id).children
    assert [c.session_id for c in children] == [newer.session_id, older.session_id]
    assert all(c.parent_session_id == root.session_id and c.reason == "reset" for c in children)
    assert tip(stub, root.session_id) == newer.session_id
    assert tip(stub, older.session_id) == older.session_id  # a branch that went no further


def test_titles_travel_with_the_lineage(daemon: Running) -> None:
    stub = daemon.stub
    first = get_or_create(stub).entry
    stub.SetSessionTitle(pb.SetSessionTitleRequest(session_id=first.session_id, title="Plan"), timeout=10)
    request = pb.ResetSessionRequest(session_key=first.session_key, title="Plan #2")
    second = stub.ResetSession(request, timeout=10).entry
    got = lineage(stub, second.session_id)
    assert (got.session.title, got.ancestors[0].title) == ("Plan #2", "Plan")


def test_unknown_and_missing_sessions(daemon: Running) -> None:
    stub = daemon.stub
    for call in (lambda: lineage(stub, "nope"), lambda: tip(stub, "nope")):
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert invalid_field(lambda: lineage(stub, "")) == "session_id"
    assert invalid_field(lambda: tip(stub, "")) == "session_id"


def test_the_python_client_walks_the_lineage(daemon: Running) -> None:
    with SessionStoreClient(daemon.address) as store:
        first = store.get_or_create_session({"platform": "telegram", "chat_id": "9", "chat_type": "dm"})
        second = store.reset_session(first.session_key)
        assert second is not None
        got = store.get_session_lineage(second.session_id)
        assert got.session.session_id == second.session_id and got.session.reason == "reset"
        assert [a.session_id for a in got.ancestors] == [first.session_id]
        assert store.get_session_lineage(first.session_id).children[0].parent_session_id == first.session_id
        assert store.get_lineage_tip(first.session_id) == second.session_id
        assert store.get_session_lineage("nope") is None and store.get_lineage_tip("nope") is None
