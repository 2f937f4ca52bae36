"""Agent namespaces over the wire (issue 18, part 1, first step): the profile in the key
(``agent:<namespace>:...``, byte-identical ``agent:main:`` when none is named), from the gateway's
config or the daemon's, and the listings, searches, expiry, prune, bulk calls and event watches
scoped to one namespace when asked. Runs on PostgreSQL too (``make test-postgres``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from helpers.clock import Clock
from helpers.daemons import Running
from helpers.events import Stream
from helpers.wire import GROUP, invalid_field, source
from sessiond_client import SessionStoreClient, errors
from sessiond_client.v1 import events_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb


@pytest.fixture
def running(start_daemon: Callable[..., Running], clock: Clock) -> Running:
    return start_daemon(clock=clock)


def create(stub: Any, chat_id: str, namespace: str | None = None, text: str = "") -> pb.GetOrCreateSessionResponse:
    config = pb.GatewayConfig(namespace=namespace) if namespace is not None else None
    created = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source(chat_id), config=config), timeout=10)
    if text:
        message = transcript_pb2.Message(role="user", text=text)
        stub.AppendMessages(
            pb.AppendMessagesRequest(session_id=created.entry.session_id, messages=[message]), timeout=10
        )
    return created


def keys_listed(stub: Any, namespace: str | None = None) -> set[str]:
    return {e.session_key for e in stub.ListSessions(pb.ListSessionsRequest(namespace=namespace), timeout=10).entries}


def test_the_namespace_is_the_keys_second_part_and_main_by_default(running: Running) -> None:
    stub = running.stub
    assert create(stub, "1").entry.session_key == "agent:main:telegram:dm:1"  # the reference's bytes
    assert create(stub, "1", "research").entry.session_key == "agent:research:telegram:dm:1"
    built = stub.BuildSessionKey(
        pb.BuildSessionKeyRequest(source=source("2"), config=pb.GatewayConfig(namespace="ops-2")), timeout=10
    )
    assert built.session_key == "agent:ops-2:telegram:dm:2"
    assert create(stub, "1", "research").entry.session_id != create(stub, "1").entry.session_id  # two sessions


def test_the_daemons_namespace_applies_when_a_gateway_names_none(start_daemon: Callable[..., Running]) -> None:
    stub = start_daemon({"sessions": {"namespace": "ops"}}).stub
    assert create(stub, "1").entry.session_key == "agent:ops:telegram:dm:1"
    assert create(stub, "1", "main").entry.session_key == "agent:main:telegram:dm:1"


PROFILES = {
    "namespaces": {
        "research": {
            "group_sessions_per_user": False,
            "max_age_days": 3,
            "agent_home": "/srv/research",
            "reset": {"default": {"mode": "idle", "idle_minutes": 30}},
        }
    }
}


def test_a_namespace_keeps_its_own_key_options_resets_ages_and_home(
    start_daemon: Callable[..., Running], clock: Clock
) -> None:
    """``[namespaces.research]`` governs calls in research; main keeps the daemon's defaults; what
    a gateway sends still wins over both."""
    stub = start_daemon(PROFILES, clock=clock).stub
    research = pb.GatewayConfig(namespace="research")

    def key(config: pb.GatewayConfig | None, user_id: str) -> str:
        request = pb.BuildSessionKeyRequest(source=source("g", chat_type=GROUP, user_id=user_id), config=config)
        return stub.BuildSessionKey(request, timeout=10).session_key

    assert key(None, "u1") == "agent:main:telegram:group:g:u1"  # the daemon's: per user
    assert key(research, "u1") == key(research, "u2") == "agent:research:telegram:group:g"  # shared
    sent = pb.GatewayConfig(namespace="research", key_options=pb.KeyOptions(group_sessions_per_user=True))
    assert key(sent, "u1") == "agent:research:telegram:group:g:u1"  # the gateway's own flags win

    create(stub, "1")
    mine = create(stub, "1", "research").entry
    clock.advance(minutes=45)  # past research's idle 30 minutes, not the daemon's day
    expired = stub.ListExpiredSessions(pb.ListExpiredSessionsRequest(), timeout=10).entries
    assert [e.session_key for e in expired] == [mine.session_key]  # the daemon's scan applies it too
    again = create(stub, "1", "research")
    assert again.created and again.entry.auto_reset_reason == "idle"
    assert not create(stub, "1").created
    clock.advance(days=4)  # research keeps 3 days of idle entries, the daemon 90
    pruned = stub.PruneOldEntries(pb.PruneOldEntriesRequest(dry_run=True), timeout=10)
    assert list(pruned.session_keys) == [mine.session_key]

    context = stub.BuildSessionContext(pb.BuildSessionContextRequest(source=source("1"), config=research), timeout=10)
    assert "/srv/research/cron/output/" in context.prompt
    plain = stub.BuildSessionContext(pb.BuildSessionContextRequest(source=source("1")), timeout=10)
    assert "/srv/research/" not in plain.prompt


def test_the_daemons_namespace_uses_its_profile(start_daemon: Callable[..., Running]) -> None:
    stub = start_daemon({**PROFILES, "sessions": {"namespace": "research"}}).stub
    request = pb.BuildSessionKeyRequest(source=source("g", chat_type=GROUP, user_id="u1"))
    assert stub.BuildSessionKey(request, timeout=10).session_key == "agent:research:telegram:group:g"


def test_listings_searches_expiry_and_prune_see_one_namespace(running: Running, clock: Clock) -> None:
    stub = running.stub
    main, research = create(stub, "1", text="walrus in main").entry, create(stub, "1", "research", "walrus in r").entry
    assert keys_listed(stub) == {main.session_key, research.session_key}
    assert keys_listed(stub, "research") == {research.session_key}
    assert keys_listed(stub, "nobody") == set()

    def hits(namespace: str | None) -> set[str]:
        found = stub.SearchMessages(pb.SearchMessagesRequest(query="walrus", namespace=namespace), timeout=10)
        return {hit.session.session_id for hit in found.hits}

    assert hits(None) == {main.session_id, research.session_id} and hits("research") == {research.session_id}
    found = stub.SearchSessions(pb.SearchSessionsRequest(query="2", namespace="main"), timeout=10).sessions
    assert [s.session_id for s in found] == [main.session_id]
    clock.advance(days=2)  # past the default policy's idle reset and daily boundary
    expired = stub.ListExpiredSessions(pb.ListExpiredSessionsRequest(namespace="research"), timeout=10).entries
    assert [e.session_key for e in expired] == [research.session_key]
    pruned = stub.PruneOldEntries(
        pb.PruneOldEntriesRequest(max_age_days=1, namespace="research", dry_run=False), timeout=10
    )
    assert list(pruned.session_keys) == [research.session_key] and keys_listed(stub) == {main.session_key}


def test_a_restart_marks_and_the_first_session_check_stay_in_a_namespace(running: Running) -> None:
    stub = running.stub
    main, research = create(stub, "1").entry, create(stub, "1", "research").entry
    marked = stub.SuspendRecentlyActive(pb.SuspendRecentlyActiveRequest(namespace="research"), timeout=10)
    assert marked.count == 1
    entries = {e.session_key: e for e in stub.ListSessions(pb.ListSessionsRequest(), timeout=10).entries}
    assert entries[research.session_key].resume_pending and not entries[main.session_key].resume_pending

    def has_any(namespace: str | None) -> bool:
        return stub.HasAnySessions(pb.HasAnySessionsRequest(namespace=namespace), timeout=10).has_any_sessions

    assert has_any(None) and not has_any("research")  # one session there: not "more than one"
    create(stub, "2", "research")
    assert has_any("research") and not has_any("nobody")


def test_bulk_calls_and_event_watches_scoped_to_a_namespace(running: Running) -> None:
    stub = running.stub
    events = Stream(stub, from_now=True, namespace="research", kinds=[events_pb2.EVENT_KIND_CREATED])
    create(stub, "1")
    research = create(stub, "1", "research").entry
    (event,) = events.take(1)
    events.close()
    assert event.session_key == research.session_key  # main's CREATED was not delivered
    selector = pb.SessionSelector(namespace="research", platform="telegram")
    done = stub.DeleteSessions(pb.DeleteSessionsRequest(selector=selector), timeout=10)
    assert list(done.session_ids) == [research.session_id] and keys_listed(stub) == {"agent:main:telegram:dm:1"}


def test_a_bad_namespace_names_the_field(running: Running, start_daemon: Callable[..., Running]) -> None:
    stub = running.stub
    assert invalid_field(lambda: create(stub, "1", "Bad Name")) == "config.namespace"
    assert invalid_field(lambda: keys_listed(stub, "")) == "namespace"
    selector = pb.SessionSelector(namespace="x:y")
    assert invalid_field(lambda: stub.DeleteSessions(pb.DeleteSessionsRequest(selector=selector), timeout=10)) == (
        "selector.namespace"
    )
    assert keys_listed(stub) == set()
    with pytest.raises(Exception, match=r"sessions\.namespace"):
        start_daemon({"sessions": {"namespace": "A"}})


def test_the_python_client_works_in_its_namespace(running: Running) -> None:
    create(running.stub, "1", text="narwhal")
    with SessionStoreClient(running.address, namespace="research") as client:
        entry = client.get_or_create_session({"platform": "telegram", "chat_id": "1"})
        assert entry.session_key == "agent:research:telegram:dm:1"
        assert client.build_session_key({"platform": "telegram", "chat_id": "5"}) == "agent:research:telegram:dm:5"
        assert [e.session_key for e in client.list_sessions()] == [entry.session_key]
        assert client.search_messages("narwhal").hits == []  # main's message is not research's
        assert client.delete_sessions({"platform": "telegram"}, dry_run=True).session_ids == [entry.session_id]
        with pytest.raises(errors.InvalidArgumentError):  # still refused: it would wipe the namespace
            client.delete_sessions({})
