"""Scoped credentials over TCP (issue 18, part 1): a token limited to namespaces, or to reading, gets
PERMISSION_DENIED for every RPC that names anything outside its scope, and nothing is written; the
same calls inside its scope go through; the daemon's own token and the Unix socket keep full
access. Every SessionStore RPC is in the table below (a test fails when one is missing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from helpers.daemons import Running
from helpers.wire import snapshot, source
from sessiond_client.v1 import admin_pb2, admin_pb2_grpc, session_pb2, session_store_pb2_grpc, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

TOKENS = {"full": "full-token", "research": "research-token", "reader": "research-reader", "all-reader": "read-all"}
DENIED = grpc.StatusCode.PERMISSION_DENIED
SERVICE = pb.DESCRIPTOR.services_by_name["SessionStore"]


@dataclass(frozen=True)
class Seed:
    """A session in each namespace (key, id), made over the Unix socket."""

    key: str
    session_id: str


def message(text: str = "hello") -> transcript_pb2.Message:
    return transcript_pb2.Message(role="user", text=text)


def at(ns: str) -> pb.GatewayConfig:
    return pb.GatewayConfig(namespace=ns)


def requests(s: Seed, ns: str | None) -> dict[str, Any]:
    """One request per RPC, naming ``s`` (a session of namespace ``ns``) and ``ns`` where a call names
    a namespace (unset: the daemon's default, ``main``)."""
    config = at(ns) if ns else None
    who = {"namespace": ns} if ns else {}
    return {
        "BuildSessionKey": pb.BuildSessionKeyRequest(source=source("9"), config=config),
        "BuildSessionContext": pb.BuildSessionContextRequest(source=source("9"), config=config),
        "GetOrCreateSession": pb.GetOrCreateSessionRequest(source=source("9"), config=config),
        "GetSession": pb.GetSessionRequest(session_key=s.key),
        "UpdateSession": pb.UpdateSessionRequest(session_key=s.key, last_prompt_tokens=3),
        "SuspendSession": pb.SuspendSessionRequest(session_key=s.key),
        "MarkResumePending": pb.MarkResumePendingRequest(session_key=s.key),
        "ClearResumePending": pb.ClearResumePendingRequest(session_key=s.key),
        "SuspendRecentlyActive": pb.SuspendRecentlyActiveRequest(**who),
        "ResetSession": pb.ResetSessionRequest(session_key=s.key),
        "SwitchSession": pb.SwitchSessionRequest(session_key=s.key, target_session_id=s.session_id),
        "PruneOldEntries": pb.PruneOldEntriesRequest(max_age_days=1, **who),
        "ListSessions": pb.ListSessionsRequest(**who),
        "HasAnySessions": pb.HasAnySessionsRequest(**who),
        "ListExpiredSessions": pb.ListExpiredSessionsRequest(**who),
        "MarkExpiryFinalized": pb.MarkExpiryFinalizedRequest(session_key=s.key, session_id=s.session_id),
        "AcquireLease": pb.AcquireLeaseRequest(session_key=s.key, owner="w", ttl={"seconds": 60}),
        "ReleaseLease": pb.ReleaseLeaseRequest(session_key=s.key, owner="w"),
        "AppendMessages": pb.AppendMessagesRequest(session_id=s.session_id, messages=[message()]),
        "RewriteTranscript": pb.RewriteTranscriptRequest(session_id=s.session_id, messages=[message()]),
        "LoadTranscript": pb.LoadTranscriptRequest(session_id=s.session_id),
        "CheckReset": pb.CheckResetRequest(updated_at={"seconds": 1_800_000_000}, config=config),
        "ResolveWhatsAppIdentifier": pb.ResolveWhatsAppIdentifierRequest(identifier="123", config=config),
        "WatchSessionEvents": pb.WatchSessionEventsRequest(from_now=True, **who),
        "SetSessionTitle": pb.SetSessionTitleRequest(session_id=s.session_id, title="t"),
        "GetSessionTitle": pb.GetSessionTitleRequest(session_id=s.session_id),
        "FindSessionByTitle": pb.FindSessionByTitleRequest(title="t"),
        "NextTitleInLineage": pb.NextTitleInLineageRequest(title="t"),
        "GetSessionLineage": pb.GetSessionLineageRequest(session_id=s.session_id),
        "GetLineageTip": pb.GetLineageTipRequest(session_id=s.session_id),
        "SearchSessions": pb.SearchSessionsRequest(query="2", **who),
        "SearchMessages": pb.SearchMessagesRequest(query="hello", **who),
        "RewindTranscript": pb.RewindTranscriptRequest(session_id=s.session_id, turns=1),
        "RestoreTranscript": pb.RestoreTranscriptRequest(session_id=s.session_id),
        "BranchSession": pb.BranchSessionRequest(session_id=s.session_id),
        "CompactTranscript": pb.CompactTranscriptRequest(
            session_id=s.session_id, first_position=0, last_position=0, summary=message("summary")
        ),
        "UpdateSessionMetadata": pb.UpdateSessionMetadataRequest(
            session_key=s.key, set={"owner": session_pb2.MetadataValue(text="x")}
        ),
        "GetSessionMetadata": pb.GetSessionMetadataRequest(session_id=s.session_id),
        "DeleteSessions": pb.DeleteSessionsRequest(selector=pb.SessionSelector(platform="telegram", **who)),
        "ArchiveSessions": pb.ArchiveSessionsRequest(selector=pb.SessionSelector(platform="telegram", **who)),
        "LinkIdentity": pb.LinkIdentityRequest(platform="telegram", user_id="1", identity="alice"),
        "UnlinkIdentity": pb.UnlinkIdentityRequest(platform="telegram", user_id="1"),
        "ListIdentityLinks": pb.ListIdentityLinksRequest(),
        "HandoffSession": pb.HandoffSessionRequest(session_key=s.key, target_source=source("8"), config=config),
        "BeginTurn": pb.BeginTurnRequest(session_key=s.key, owner="w", ttl={"seconds": 60}),
        "RenewTurn": pb.RenewTurnRequest(fence=pb.TurnFence(session_key=s.key, fencing_token=1), ttl={"seconds": 60}),
        "EndTurn": pb.EndTurnRequest(fence=pb.TurnFence(session_key=s.key, fencing_token=1)),
    }


DAEMON_WIDE = {"FindSessionByTitle", "NextTitleInLineage", "LinkIdentity", "UnlinkIdentity", "ListIdentityLinks"}
READS = {
    "BuildSessionKey", "BuildSessionContext", "CheckReset", "ResolveWhatsAppIdentifier", "GetSession", "ListSessions",
    "HasAnySessions", "ListExpiredSessions", "LoadTranscript", "WatchSessionEvents", "GetSessionTitle",
    "FindSessionByTitle", "NextTitleInLineage", "GetSessionLineage", "GetLineageTip", "SearchSessions",
    "SearchMessages", "GetSessionMetadata", "ListIdentityLinks",
}  # fmt: skip


def code_of(stub: Any, name: str, request: Any, token: str) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        answer = getattr(stub, name)(request, timeout=10, metadata=metadata)
        if SERVICE.methods_by_name[name].server_streaming:
            next(answer)
            answer.cancel()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
def daemon(start_daemon: Callable[..., Running], tmp_path: Path) -> tuple[Running, Any, Seed, Seed]:
    files = {}
    for name, token in TOKENS.items():
        files[name] = tmp_path / f"{name}.token"
        files[name].write_text(token)
    security = {
        "token_file": str(files["full"]),
        "scoped_tokens": [
            {"token_file": str(files["research"]), "namespaces": ["research"]},
            {"token_file": str(files["reader"]), "namespaces": ["research"], "read_only": True},
            {"token_file": str(files["all-reader"]), "read_only": True},
        ],
    }
    running = start_daemon({"server": {"tcp": "127.0.0.1:0"}, "security": security})
    seeds = []
    for ns in ("main", "research"):
        entry = running.stub.GetOrCreateSession(
            pb.GetOrCreateSessionRequest(source=source("1"), config=at(ns)), timeout=10
        ).entry
        running.stub.AppendMessages(
            pb.AppendMessagesRequest(session_id=entry.session_id, messages=[message()]), timeout=10
        )
        seeds.append(Seed(entry.session_key, entry.session_id))
    channel = grpc.insecure_channel(running.daemon.addresses[1])
    yield running, session_store_pb2_grpc.SessionStoreStub(channel), seeds[0], seeds[1]
    channel.close()


def test_the_table_names_every_rpc() -> None:
    seed = Seed("agent:main:x", "id")
    assert set(requests(seed, None)) == set(SERVICE.methods_by_name)


def test_a_namespace_token_is_denied_everything_outside_it_and_writes_nothing(daemon: Any) -> None:
    running, tcp, main, research = daemon
    before = snapshot(running.stub, main.session_id, research.session_id)
    # Outside: main's key and session, or no namespace named (the default is main).
    outside = {name: code_of(tcp, name, request, TOKENS["research"]) for name, request in requests(main, None).items()}
    assert {name for name, code in outside.items() if code != DENIED} == set()
    # A session of research named with a key of main (and the reverse) is outside too.
    crossed = pb.SwitchSessionRequest(session_key=research.key, target_session_id=main.session_id)
    assert code_of(tcp, "SwitchSession", crossed, TOKENS["research"]) == DENIED
    fenced = pb.AppendMessagesRequest(  # a session of research, fenced by a turn of main's key
        session_id=research.session_id, messages=[message()], fence=pb.TurnFence(session_key=main.key, fencing_token=1)
    )
    assert code_of(tcp, "AppendMessages", fenced, TOKENS["research"]) == DENIED
    handed = pb.HandoffSessionRequest(session_key=research.key, target_session_key=main.key)
    assert code_of(tcp, "HandoffSession", handed, TOKENS["research"]) == DENIED
    assert snapshot(running.stub, main.session_id, research.session_id) == before


def test_inside_its_namespace_the_same_calls_go_through(daemon: Any) -> None:
    running, tcp, main, research = daemon
    inside = {
        name: code_of(tcp, name, request, TOKENS["research"])
        for name, request in requests(research, "research").items()
    }
    assert {name for name, code in inside.items() if code == DENIED} == DAEMON_WIDE  # titles are daemon-wide
    listed = tcp.ListSessions(
        pb.ListSessionsRequest(namespace="research"), timeout=10, metadata=(("authorization", "Bearer research-token"),)
    )
    assert {e.session_key for e in listed.entries} <= {research.key, "agent:research:telegram:dm:9"}


def test_a_read_only_token_reads_and_writes_nothing(daemon: Any) -> None:
    running, tcp, main, research = daemon
    before = snapshot(running.stub, main.session_id, research.session_id)
    codes = {
        name: code_of(tcp, name, request, TOKENS["reader"]) for name, request in requests(research, "research").items()
    }
    assert {name for name, code in codes.items() if code == DENIED} == (
        set(SERVICE.methods_by_name) - READS
    ) | DAEMON_WIDE
    assert snapshot(running.stub, main.session_id, research.session_id) == before
    everywhere = {
        name: code_of(tcp, name, request, TOKENS["all-reader"]) for name, request in requests(main, None).items()
    }
    assert {name for name, code in everywhere.items() if code == DENIED} == set(SERVICE.methods_by_name) - READS


def test_full_access_stays_with_the_daemons_token_and_the_socket(daemon: Any) -> None:
    running, tcp, main, research = daemon
    assert code_of(tcp, "GetSession", pb.GetSessionRequest(session_key=main.key), TOKENS["full"]) == grpc.StatusCode.OK
    assert running.stub.GetSession(pb.GetSessionRequest(session_key=research.key), timeout=10).entry.session_key
    admin = admin_pb2_grpc.AdminStub(grpc.insecure_channel(running.daemon.addresses[1]))
    with pytest.raises(grpc.RpcError) as raised:
        admin.Verify(admin_pb2.VerifyRequest(), timeout=10, metadata=(("authorization", "Bearer research-token"),))
    assert raised.value.code() == DENIED and "full access" in raised.value.details()
