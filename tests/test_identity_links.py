"""Identity links over the wire (issue 18, part 2): an operator's map from platform user ids to one
identity; with links on (opt-in), the DMs of every id linked to an identity share one key,
``agent:<namespace>:identity:dm:<identity>``; an unlink splits the next messages off without
touching history; every change is an event. Races: 64 gateways messaging while the link moves.
Runs on PostgreSQL too (``make test-postgres``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from helpers.daemons import Running
from helpers.events import Stream
from helpers.races import NO_RESETS, stubs, together
from helpers.wire import GROUP, invalid_field, source
from sessiond_client import SessionStoreClient
from sessiond_client.v1 import events_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

LINKED = {"sessions": {"link_identities": True}, **NO_RESETS}
ALICE = "agent:main:identity:dm:alice"


@pytest.fixture
def running(start_daemon: Callable[..., Running]) -> Running:
    return start_daemon(LINKED)


@pytest.fixture
def stub(running: Running) -> Any:
    return running.stub


def link(stub: Any, platform: str, user_id: str, identity: str) -> pb.LinkIdentityResponse:
    request = pb.LinkIdentityRequest(platform=platform, user_id=user_id, identity=identity)
    return stub.LinkIdentity(request, timeout=10)


def unlink(stub: Any, platform: str, user_id: str) -> pb.UnlinkIdentityResponse:
    return stub.UnlinkIdentity(pb.UnlinkIdentityRequest(platform=platform, user_id=user_id), timeout=10)


def dm(
    stub: Any, platform: str, chat_id: str, text: str = "", config: pb.GatewayConfig | None = None, **fields: Any
) -> pb.GetOrCreateSessionResponse:
    request = pb.GetOrCreateSessionRequest(source=source(chat_id, platform, **fields), config=config)
    created = stub.GetOrCreateSession(request, timeout=10)
    if text:
        message = transcript_pb2.Message(role="user", text=text)
        request = pb.AppendMessagesRequest(session_id=created.entry.session_id, messages=[message])
        stub.AppendMessages(request, timeout=10)
    return created


def texts(stub: Any, session_id: str) -> list[str]:
    loaded = stub.LoadTranscript(pb.LoadTranscriptRequest(session_id=session_id), timeout=10)
    return [m.text for m in loaded.messages]


def test_linked_dms_on_two_platforms_are_one_conversation(stub: Any) -> None:
    assert dm(stub, "telegram", "111", "before the link").entry.session_key == "agent:main:telegram:dm:111"
    made = link(stub, "telegram", "111", "alice")
    assert (made.changed, made.HasField("previous_identity"), made.link.identity) == (True, False, "alice")
    link(stub, "discord", "u-9", "alice")
    on_telegram = dm(stub, "telegram", "111", "hello from telegram")
    on_discord = dm(stub, "discord", "dm-channel-5", "hello from discord", user_id="u-9")  # linked by user id
    assert on_telegram.entry.session_key == on_discord.entry.session_key == ALICE
    assert on_telegram.entry.session_id == on_discord.entry.session_id
    assert texts(stub, on_telegram.entry.session_id) == ["hello from telegram", "hello from discord"]
    built = stub.BuildSessionKey(pb.BuildSessionKeyRequest(source=source("111", "telegram")), timeout=10)
    assert built.session_key == ALICE
    group = stub.BuildSessionKey(
        pb.BuildSessionKeyRequest(source=source("g", chat_type=GROUP, user_id="111")), timeout=10
    )
    assert group.session_key == "agent:main:telegram:group:g:111"  # a group's session stays the group's


def test_unlinking_splits_future_messages_and_keeps_history(stub: Any) -> None:
    before = dm(stub, "telegram", "111", "old platform session").entry
    link(stub, "telegram", "111", "alice")
    shared = dm(stub, "telegram", "111", "while linked").entry
    assert unlink(stub, "telegram", "111").identity == "alice"
    assert not unlink(stub, "telegram", "111").HasField("identity")  # no link: nothing changed
    after = dm(stub, "telegram", "111", "after the unlink").entry
    assert after.session_key == "agent:main:telegram:dm:111" and after.session_id == before.session_id
    assert texts(stub, shared.session_id) == ["while linked"]  # the identity's history stays
    assert texts(stub, before.session_id) == ["old platform session", "after the unlink"]


def test_links_are_opt_in_per_call_namespace_and_daemon(start_daemon: Callable[..., Running]) -> None:
    stub = start_daemon({"namespaces": {"research": {"link_identities": True}}}).stub
    link(stub, "telegram", "111", "alice")
    assert dm(stub, "telegram", "111").entry.session_key == "agent:main:telegram:dm:111"  # the reference's
    research = pb.GatewayConfig(namespace="research")
    assert dm(stub, "telegram", "111", config=research).entry.session_key == "agent:research:identity:dm:alice"
    sent = pb.GatewayConfig(link_identities=True)
    assert dm(stub, "telegram", "111", config=sent).entry.session_key == ALICE


def test_relinking_moves_the_id_and_listing_pages_through_every_link(stub: Any) -> None:
    link(stub, "telegram", "111", "alice")
    again = link(stub, "telegram", "111", "alice")
    assert not again.changed and again.link.linked_at.seconds > 0
    moved = link(stub, "telegram", "111", "bob")
    assert moved.changed and moved.previous_identity == "alice"
    for n in range(5):
        link(stub, "slack", f"U{n}", "carol")
    seen, token = [], ""
    while True:
        page = stub.ListIdentityLinks(pb.ListIdentityLinksRequest(page_size=2, page_token=token), timeout=10)
        seen += [(found.platform, found.user_id, found.identity) for found in page.links]
        if not (token := page.next_page_token):
            break
    assert seen == [*[("slack", f"U{n}", "carol") for n in range(5)], ("telegram", "111", "bob")]
    only = stub.ListIdentityLinks(pb.ListIdentityLinksRequest(identity="bob"), timeout=10).links
    assert [(found.platform, found.user_id) for found in only] == [("telegram", "111")]


def test_link_changes_are_events(stub: Any) -> None:
    kinds = [events_pb2.EVENT_KIND_IDENTITY_LINKED, events_pb2.EVENT_KIND_IDENTITY_UNLINKED]
    events = Stream(stub, from_now=True, kinds=kinds)
    link(stub, "telegram", "111", "alice")
    link(stub, "telegram", "111", "alice")  # unchanged: no event
    link(stub, "telegram", "111", "bob")
    unlink(stub, "telegram", "111")
    got = [(e.kind, e.identity, e.linked_user, e.reason, e.session_key) for e in events.take(3)]
    events.close()
    assert got == [
        (events_pb2.EVENT_KIND_IDENTITY_LINKED, "alice", "telegram:111", "link", ""),
        (events_pb2.EVENT_KIND_IDENTITY_LINKED, "bob", "telegram:111", "relink", ""),
        (events_pb2.EVENT_KIND_IDENTITY_UNLINKED, "bob", "telegram:111", "unlink", ""),
    ]


def test_bad_links_name_the_field_and_write_nothing(stub: Any) -> None:
    assert invalid_field(lambda: link(stub, "", "1", "alice")) == "platform"
    assert invalid_field(lambda: link(stub, "nowhere", "1", "alice")) == "platform"
    assert invalid_field(lambda: link(stub, "telegram", "", "alice")) == "user_id"
    assert invalid_field(lambda: link(stub, "telegram", "1", "al ice")) == "identity"
    assert invalid_field(lambda: link(stub, "telegram", "1", "a" * 129)) == "identity"
    assert invalid_field(lambda: stub.ListIdentityLinks(pb.ListIdentityLinksRequest(page_token="x"), timeout=10)) == (
        "page_token"
    )
    assert list(stub.ListIdentityLinks(pb.ListIdentityLinksRequest(), timeout=10).links) == []


def test_64_gateways_while_the_link_moves_lose_no_message(running: Running) -> None:
    """Each DM lands on the key the link had when it committed, its platform's or the identity's,
    and every message is in exactly one of the two transcripts."""
    count, platform_key = 64, "agent:main:telegram:dm:111"

    def message(index: int) -> str:
        racer = racers[index]
        if index % 16 == 0:  # four callers move the link meanwhile
            link(racer, "telegram", "111", "alice") if index % 32 == 0 else unlink(racer, "telegram", "111")
        return str(dm(racer, "telegram", "111", f"m{index}").entry.session_key)

    with stubs(running.address, count) as racers:
        keys = together(count, message)
    assert not [key for key in keys if isinstance(key, grpc.RpcError)]
    assert set(keys) <= {ALICE, platform_key}
    stored: list[str] = []
    for key in set(keys):
        stored += texts(
            running.stub, running.stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=10).entry.session_id
        )
    assert sorted(stored) == sorted(f"m{i}" for i in range(count))


def test_the_python_client_links_and_follows_links(running: Running) -> None:
    with SessionStoreClient(running.address, link_identities=True) as client:
        watch = client.watch_events(kinds=["identity_linked"])  # from the first event of this new daemon
        link_made, previous = client.link_identity("telegram", "111", "alice")
        assert (link_made.identity, previous) == ("alice", None)
        assert client.link_identity("telegram", "111", "bob")[1] == "alice"
        event = next(iter(watch))
        watch.close()
        assert (event.identity, event.linked_user, event.reason) == ("alice", "telegram:111", "link")
        entry = client.get_or_create_session({"platform": "telegram", "chat_id": "111"})
        assert entry.session_key == "agent:main:identity:dm:bob"
        assert [(found.platform, found.user_id, found.identity) for found in client.list_identity_links()] == [
            ("telegram", "111", "bob")
        ]
        assert client.unlink_identity("telegram", "111") == "bob" and client.unlink_identity("telegram", "111") is None
    with SessionStoreClient(running.address, link_identities=False) as plain:
        assert plain.build_session_key({"platform": "telegram", "chat_id": "111"}) == "agent:main:telegram:dm:111"
