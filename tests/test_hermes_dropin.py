"""The Hermes drop-in (``sessiond_client.hermes``) against real daemons, through its public names only.

The test process runs the reference oracle, whose stand-ins are the Hermes host's modules
(``gateway.config``, ``gateway.platform_registry``, ``hermes_constants``): so the drop-in sees the
host a Hermes deployment has (its ``Platform`` enum, plugins, home, mapping directory, Discord
tools), and every answer is compared with the reference's for the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.cases import (
    daemon_configs,
    entries,
    is_flag_difference,
    prompt_config,
    runtime_platforms,
    sources,
    whatsapp_mapping,
)
from helpers.clock import Clock
from helpers.daemons import Running
from helpers.reference import oracle
from sessiond_client import SessionStoreClient, errors, hermes
from sessiond_client.hermes import wire
from sessiond_client.store_client import source_to_proto
from sessiond_client.v1 import session_store_pb2 as pb

EXAMPLES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 6, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def daemon(start_daemon: Callable[..., Running], clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    """A daemon with the default configuration: everything the gateway wants travels with its calls."""
    running = start_daemon(clock=clock)
    monkeypatch.setenv("SESSIOND_ADDRESS", running.address)
    monkeypatch.setattr(wire, "_default", None)  # module-level functions find the daemon anew
    yield running


@pytest.fixture(scope="module")
def mapping_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return whatsapp_mapping(tmp_path_factory.mktemp("whatsapp"))


def store(tmp_path: Path, config: dict[str, Any] | None = None, **kwargs: Any) -> tuple[hermes.SessionStore, Any]:
    with oracle.host(config) as gateway:
        return hermes.SessionStore(tmp_path / "sessions", gateway, **kwargs), gateway


def source(**fields: Any) -> hermes.SessionSource:
    return hermes.SessionSource(**{"platform": hermes.Platform.TELEGRAM, "chat_id": "-100", **fields})


# -- the pure rules ------------------------------------------------------------------------


@EXAMPLES
@given(data=sources(), config=st.integers(0, 3), group=st.booleans(), thread=st.booleans())
def test_keys_flags_and_descriptions_are_the_references(
    daemon: Running, mapping_dir: Path, data: dict[str, Any], config: int, group: bool, thread: bool
) -> None:
    with oracle.host(daemon_configs(mapping_dir)[config]):
        ours = hermes.SessionSource.from_dict(data)
        theirs = oracle.make_source(data, daemon_configs(mapping_dir)[config])
        try:
            expected = oracle.session.build_session_key(theirs, group, thread)
        except ValueError:  # an unsafe WhatsApp id: the reference fails, and so does the drop-in
            with pytest.raises(ValueError):
                hermes.build_session_key(ours, group, thread)
            return
        except OSError:  # a mapping file name too long: the reference crashed, sessiond counts it absent
            assert hermes.build_session_key(ours, group, thread).startswith("agent:main:whatsapp:")
            return
        assert hermes.build_session_key(ours, group, thread) == expected
        flags = {"group_sessions_per_user": group, "thread_sessions_per_user": thread}
        shared = hermes.is_shared_multi_user_session(ours, **flags)
        if not is_flag_difference(data, flags):  # the documented fix of the reference's flag
            assert shared == oracle.session.is_shared_multi_user_session(theirs, **flags)
        assert ours.description == theirs.description == daemon_description(daemon, ours)
        assert ours.to_dict() == theirs.to_dict()


def daemon_description(daemon: Running, ours: hermes.SessionSource) -> str:
    request = pb.BuildSessionKeyRequest(source=source_to_proto(ours), config=wire.host_config())
    return daemon.stub.BuildSessionKey(request, timeout=10).description


@EXAMPLES
@given(data=sources(), config=st.integers(0, 3), platforms=runtime_platforms(), entry=entries(), redact=st.booleans())
def test_contexts_and_prompts_are_the_references(
    daemon: Running,
    mapping_dir: Path,
    data: dict[str, Any],
    config: int,
    platforms: dict[str, Any],
    entry: dict[str, Any] | None,
    redact: bool,
) -> None:
    oracle_config = {**daemon_configs(mapping_dir)[config], **platforms}
    with oracle.host(prompt_config(data, oracle_config)) as gateway:
        ours = hermes.SessionSource.from_dict(data)
        session_entry = SimpleNamespace(**entry) if entry else None
        context = hermes.build_session_context(ours, gateway, session_entry)
        expected = oracle.context_dict(data, prompt_config(data, oracle_config), entry)
        assert context.to_dict() == expected
        prompt = hermes.build_session_context_prompt(context, redact_pii=redact)
        assert prompt == oracle.context_prompt(data, prompt_config(data, oracle_config), entry, redact)
        assert all(isinstance(p, hermes.Platform) for p in context.connected_platforms)


def test_whatsapp_identifiers_are_the_references(daemon: Running, mapping_dir: Path) -> None:
    with oracle.host({"whatsapp_mapping_dir": str(mapping_dir)}):
        for value in ("999999999999999@lid", "+15551234567@s.whatsapp.net", "60123456789:47@s.whatsapp.net", "", None):
            assert hermes.canonical_whatsapp_identifier(value) == oracle.canonical_whatsapp_identifier(
                value, {"whatsapp_mapping_dir": str(mapping_dir)}
            )
            assert hermes.normalize_whatsapp_identifier(value) == oracle.normalize_whatsapp_identifier(value)
        with pytest.raises(ValueError):
            hermes.canonical_whatsapp_identifier("no such/../id")
    assert hermes.normalize_whatsapp_identifier("a b") == "a b"  # normalising never fails


def test_any_chat_type_is_keyed_and_described_as_the_reference(daemon: Running, tmp_path: Path) -> None:
    forum = source(chat_type="forum", user_id="7", chat_name="Lobby", thread_id="3")
    expected = oracle.session_key(forum.to_dict())
    assert hermes.build_session_key(forum) == expected == "agent:main:telegram:forum:-100:3"
    assert forum.description == oracle.describe(forum.to_dict()) == "Lobby, thread: 3"
    sessions, _ = store(tmp_path)
    entry = sessions.get_or_create_session(forum)
    assert (entry.session_key, entry.chat_type, entry.origin.chat_type) == (expected, "forum", "forum")


# -- the store ---------------------------------------------------------------------------


def test_entries_carry_the_gateways_platform_and_round_trip(daemon: Running, tmp_path: Path) -> None:
    sessions, _ = store(tmp_path)
    entry = sessions.get_or_create_session(source(chat_type="group", user_id="42"))
    assert entry.platform == hermes.Platform.TELEGRAM and entry.origin.platform is hermes.Platform.TELEGRAM
    assert {hermes.Platform.TELEGRAM: 1}[entry.platform] == 1
    assert entry.session_key == "agent:main:telegram:group:-100:42"
    assert sessions.get_or_create_session(source(chat_type="group", user_id="42")).session_id == entry.session_id
    assert not (entry.was_auto_reset or entry.is_fresh_reset)
    again = hermes.SessionEntry.from_dict(entry.to_dict())
    assert again.to_dict() == entry.to_dict() and again.platform is hermes.Platform.TELEGRAM
    old = {**entry.to_dict(), "platform": "gone", "last_resume_marked_at": "soon", "memory_flushed": True}
    del old["expiry_finalized"]
    tolerant = hermes.SessionEntry.from_dict(old)  # the reference's tolerance of old or malformed data
    assert (tolerant.platform, tolerant.last_resume_marked_at, tolerant.expiry_finalized) == (None, None, True)


def test_resets_follow_the_gateways_config(daemon: Running, tmp_path: Path, clock: Clock) -> None:
    sessions, _ = store(tmp_path, {"reset": {"default": {"mode": "idle", "idle_minutes": 1}}})
    first = sessions.get_or_create_session(source())
    clock.advance(minutes=5)
    second = sessions.get_or_create_session(source())
    assert second.session_id != first.session_id
    assert (second.was_auto_reset, second.auto_reset_reason, second.reset_had_activity) == (True, "idle", False)
    assert sessions.reset_session("agent:main:telegram:dm:-100").is_fresh_reset
    assert sessions.reset_session("agent:main:nowhere:dm:1") is None
    assert sessions.suspend_session(second.session_key)
    suspended = sessions.get_or_create_session(source())
    assert (suspended.was_auto_reset, suspended.auto_reset_reason) == (True, "suspended")
    assert sessions.mark_resume_pending(suspended.session_key) and not sessions.mark_resume_pending("agent:x")
    assert sessions.get_or_create_session(source()).session_id == suspended.session_id  # resume keeps the id
    assert sessions.clear_resume_pending(suspended.session_key) and not sessions.clear_resume_pending("agent:x")


def test_daily_resets_use_the_gateways_local_time(
    daemon: Running, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # 04:00 in Tokyo is 19:00 UTC the day before
    clock.now = datetime(2026, 6, 1, 18, 30, tzinfo=UTC)
    sessions, _ = store(tmp_path, {"reset": {"default": {"mode": "daily", "at_hour": 4}}})
    first = sessions.get_or_create_session(source())
    clock.now = datetime(2026, 6, 1, 19, 30, tzinfo=UTC)
    assert sessions.get_or_create_session(source()).auto_reset_reason == "daily" != first.auto_reset_reason


def test_two_gateways_with_different_configs_share_one_daemon(daemon: Running, tmp_path: Path, clock: Clock) -> None:
    isolated, _ = store(tmp_path / "a", {"reset": {"default": {"mode": "idle", "idle_minutes": 60}}})
    shared, _ = store(tmp_path / "b", {"group_sessions_per_user": False, "reset": {"default": {"mode": "none"}}})
    message = source(chat_type="group", user_id="42")
    a, b = isolated.get_or_create_session(message), shared.get_or_create_session(message)
    assert (a.session_key, b.session_key) == ("agent:main:telegram:group:-100:42", "agent:main:telegram:group:-100")
    clock.advance(hours=2)
    assert isolated.get_or_create_session(message).auto_reset_reason == "idle"
    assert shared.get_or_create_session(message).session_id == b.session_id


def test_prune_keeps_what_the_gateway_says_is_busy(daemon: Running, tmp_path: Path, clock: Clock) -> None:
    busy_key = "agent:main:telegram:dm:busy"
    sessions, _ = store(tmp_path, has_active_processes_fn=lambda key: key == busy_key)
    for chat in ("busy", "idle", "other"):
        sessions.get_or_create_session(source(chat_id=chat))
    clock.advance(days=10)
    assert sessions.prune_old_entries(0) == 0
    assert sessions.prune_old_entries(7) == 2
    assert [e.session_key for e in sessions.list_sessions()] == [busy_key]
    assert sessions.has_any_sessions()


def test_transcripts_by_any_id_keep_their_fields(daemon: Running, tmp_path: Path) -> None:
    sessions, _ = store(tmp_path)
    assert sessions.load_transcript("written-by-a-plugin") == []
    sessions.append_to_transcript("written-by-a-plugin", {"role": "user", "content": "hi"}, skip_db=True)
    thinking = {"role": "assistant", "content": "ok", "reasoning": "r", "reasoning_details": [{"a": 1}]}
    assert sessions.rewrite_transcript("rewritten-by-id", [thinking]) is None
    assert sessions.load_transcript("written-by-a-plugin") == [{"role": "user", "content": "hi"}]
    assert sessions.load_transcript("rewritten-by-id") == [thinking]
    assert sessions.get_transcript_path("x") == tmp_path / "sessions" / "x.jsonl"
    entry = sessions.get_or_create_session(source())
    assert sessions.switch_session(entry.session_key, "rewritten-by-id").session_id == "rewritten-by-id"
    sessions.update_session(entry.session_key, last_prompt_tokens=0)
    assert sessions.update_session("agent:main:nowhere:dm:1") is None


def test_the_daemons_scheduled_expiry_and_prune_follow_each_keys_gateway(
    daemon: Running, tmp_path: Path, clock: Clock
) -> None:
    """The daemon's own jobs (the maintenance thread's expiry scan and prune) judge each key by the
    config of the gateway that last used it, not by the daemon's TOML."""
    quick = {"reset": {"default": {"mode": "idle", "idle_minutes": 60}}, "session_store_max_age_days": 2}
    slow = {"reset": {"default": {"mode": "none"}}, "session_store_max_age_days": 30}
    a, _ = store(tmp_path / "a", quick)
    b, _ = store(tmp_path / "b", slow)
    fast_key = a.get_or_create_session(source(chat_id="a")).session_key
    slow_key = b.get_or_create_session(source(chat_id="b")).session_key
    jobs = daemon.daemon.service.store  # what the maintenance thread runs on its schedule
    clock.advance(hours=3)
    assert jobs.announce_expired() == 1
    assert [e.session_key for e in jobs.list_expired(10, None)] == [fast_key]
    clock.advance(days=3)  # past a's 2 days, within b's 30 and the daemon's default 90
    assert jobs.prune_in_batches() == 1
    assert [e.session_key for e in b.list_sessions()] == [slow_key]


def test_entries_are_live_and_what_the_gateway_assigns_is_saved(daemon: Running, tmp_path: Path, clock: Clock) -> None:
    """What a Hermes gateway does with the reference's insides: it holds entries, assigns their
    flags, saves under the store's lock, and its expiry watcher walks ``_entries``."""
    sessions, _ = store(tmp_path, {"reset": {"default": {"mode": "idle", "idle_minutes": 60}}})
    entry = sessions.get_or_create_session(source())
    assert sessions.get_or_create_session(source()) is entry  # one object per key, updated in place
    fresh = sessions.reset_session(entry.session_key)
    assert fresh is not entry and entry.session_id != fresh.session_id  # the old object keeps the old id
    fresh.is_fresh_reset = False  # consumed by the gateway: saved at the next call
    fresh.last_prompt_tokens = 0
    again = hermes.SessionStore(tmp_path / "sessions", sessions.config, address=daemon.address)
    assert again.get_or_create_session(source()).is_fresh_reset  # not saved yet
    assert not sessions.get_or_create_session(source()).is_fresh_reset
    assert not again.get_or_create_session(source()).is_fresh_reset
    sessions._ensure_loaded()
    assert fresh.session_key in sessions._entries and "agent:nowhere" not in sessions._entries
    clock.advance(hours=2)
    expired = [(k, e) for k, e in list(sessions._entries.items()) if sessions._is_session_expired(e)]
    assert [k for k, _ in expired] == [fresh.session_key] and expired[0][1] is fresh
    with sessions._lock:
        fresh.expiry_finalized = True
        sessions._save()
    assert again._entries[fresh.session_key].expiry_finalized
    assert sessions._should_reset(fresh, source()) == "idle"
    fresh.suspended = True
    sessions._save()
    assert again.get_or_create_session(source()).auto_reset_reason == "suspended"
    compressed = sessions._entries[fresh.session_key]
    compressed.session_id = "compressed-by-the-agent"  # /compress points the key at a new id itself
    sessions._save()
    assert again._entries[fresh.session_key].session_id == "compressed-by-the-agent"
    assert sessions._db is None and sessions._generate_session_key(source()) == fresh.session_key


def test_the_references_documented_store_behaviours(daemon: Running, tmp_path: Path, clock: Clock) -> None:
    """The rest of the reference's own test list (NOTES.md), through the drop-in's public names."""
    sessions, _ = store(tmp_path)
    first = sessions.get_or_create_session(source(chat_id="1"))
    assert not sessions.has_any_sessions()  # one session ever: the reference's "> 1"
    sessions.update_session(first.session_key, last_prompt_tokens=812)
    sessions.update_session(first.session_key)  # omitted: left as it is
    assert sessions.get_or_create_session(source(chat_id="1")).last_prompt_tokens == 812
    sessions.update_session(first.session_key, last_prompt_tokens=0)
    assert sessions.get_or_create_session(source(chat_id="1")).last_prompt_tokens == 0
    assert not sessions.clear_resume_pending(first.session_key)  # not pending
    assert sessions.mark_resume_pending(first.session_key)
    reloaded = hermes.SessionStore(tmp_path / "sessions", sessions.config, address=daemon.address)
    pending = reloaded.get_or_create_session(source(chat_id="1"))  # a new store on the same daemon
    assert (pending.session_id, pending.resume_pending, pending.resume_reason) == (
        first.session_id,
        True,
        "restart_timeout",
    )
    assert pending.last_resume_marked_at is not None and not pending.was_auto_reset
    older = sessions.get_or_create_session(source(chat_id="2"))
    clock.advance(seconds=300)
    recent = sessions.get_or_create_session(source(chat_id="3"))
    assert sessions.suspend_recently_active() == 1  # recent only: older is idle, first already pending
    assert sessions.list_sessions(active_minutes=1) == [recent] and recent.resume_reason == "restart_interrupted"
    assert not sessions.get_or_create_session(source(chat_id="2")).resume_pending
    assert older.session_id == sessions.get_or_create_session(source(chat_id="2")).session_id
    assert sessions.has_any_sessions()
    parent = sessions.get_or_create_session(source(chat_type="group", user_id="42"))
    thread = sessions.get_or_create_session(source(chat_type="group", user_id="42", thread_id="7"))
    sessions.append_to_transcript(parent.session_id, {"role": "user", "content": "in the group"})
    assert thread.session_id != parent.session_id and sessions.load_transcript(thread.session_id) == []
    sessions.rewrite_transcript(parent.session_id, [])
    assert sessions.load_transcript(parent.session_id) == []


@pytest.mark.parametrize(
    ("tz", "sent"), [("Asia/Tokyo", "Asia/Tokyo"), (":Europe/Berlin", "Europe/Berlin"), ("UTC0", ""), (":/etc/x", "")]
)
def test_the_gateways_zone_is_sent_only_when_the_daemon_can_read_it(
    monkeypatch: pytest.MonkeyPatch, tz: str, sent: str
) -> None:
    """A POSIX rule or a file path in TZ names no IANA zone: the daemon's host zone applies then."""
    monkeypatch.setenv("TZ", tz)
    assert wire.policy_to_proto(hermes.SessionResetPolicy()).time_zone == sent


def test_a_mapping_directory_is_taken_as_given(daemon: Running) -> None:
    """A gateway's "~user/..." names no home on the daemon's side: no INTERNAL, just no mapping files."""
    config = pb.GatewayConfig(whatsapp_mapping_dir="~no-such-user-here/whatsapp")
    request = pb.ResolveWhatsAppIdentifierRequest(identifier="15551234567@s.whatsapp.net", config=config)
    assert daemon.stub.ResolveWhatsAppIdentifier(request, timeout=10).canonical == "15551234567"


def test_check_reset_refuses_times_its_arithmetic_cannot_reach(daemon: Running) -> None:
    """Found by the fuzzer: a last activity near the end of the calendar overflowed the idle rule."""
    late = Timestamp(seconds=253402300000)  # 9999-12-31
    with pytest.raises(grpc.RpcError) as refused:
        daemon.stub.CheckReset(pb.CheckResetRequest(updated_at=late), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("updated_at: ")


def test_undo_retry_and_compress_rewrites_keep_the_messages(daemon: Running, tmp_path: Path) -> None:
    """The gateway's /undo and /retry (the transcript without its last user turn) become a rewind,
    /compress (a summary, then the kept tail) a compaction: nothing the gateway cut is deleted."""
    sessions, _ = store(tmp_path, address=daemon.address)
    entry = sessions.get_or_create_session(source())
    turns = [
        ("user", "u1"),
        ("assistant", "a1"),
        ("user", "u2"),
        ("assistant", "a2"),
        ("user", "u3"),
        ("assistant", "a3"),
    ]
    for role, content in turns:
        sessions.append_to_transcript(entry.session_id, {"role": role, "content": content})
    history = sessions.load_transcript(entry.session_id)
    sessions.rewrite_transcript(entry.session_id, history[:-2])  # /undo: the last user turn goes
    assert [m["content"] for m in sessions.load_transcript(entry.session_id)] == ["u1", "a1", "u2", "a2"]
    summary = {"role": "user", "content": "[summary of u1..a1]"}
    sessions.rewrite_transcript(entry.session_id, [summary, *history[2:4]])  # /compress keeps the tail
    assert [m["content"] for m in sessions.load_transcript(entry.session_id)] == ["[summary of u1..a1]", "u2", "a2"]
    with SessionStoreClient(daemon.address) as client:
        kept = client.load_transcript(entry.session_id, include_hidden=True)
    assert [(m["content"], m.get("visibility")) for m in kept] == [
        ("u1", "archived"), ("a1", "archived"), ("[summary of u1..a1]", None), ("u2", None), ("a2", None),
        ("u3", "rewound"), ("a3", "rewound"),
    ]  # fmt: skip
    sessions.rewrite_transcript(entry.session_id, [{"role": "user", "content": "something else"}])  # any other shape
    assert [m["content"] for m in sessions.load_transcript(entry.session_id)] == ["something else"]


def test_per_session_values_survive_the_gateway_and_follow_the_session(daemon: Running, tmp_path: Path) -> None:
    """Beyond the reference: a /model override kept with the session, not in gateway memory."""
    sessions, _ = store(tmp_path, address=daemon.address)
    entry = sessions.get_or_create_session(source())
    updated = sessions.set_session_metadata(entry.session_key, {"model": "opus", "tags": ["beta"]})
    assert updated is entry and entry.metadata == {"model": "opus", "tags": ["beta"]}  # the live entry
    again, _ = store(tmp_path, address=daemon.address)  # a restarted gateway
    assert again.get_or_create_session(source()).metadata["model"] == "opus"
    assert [e.session_key for e in again.list_sessions(metadata={"tags": "beta"})] == [entry.session_key]
    assert sessions.reset_session(entry.session_key).metadata == {}  # type: ignore[union-attr]
    assert sessions.set_session_metadata("agent:main:nowhere:dm:0", {"model": "x"}) is None


def test_profiles_sharing_a_daemon_see_their_own_sessions(
    daemon: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile's home (``<root>/profiles/<name>``) names its namespace; ``SESSIOND_NAMESPACE``
    another; the default profile keeps the reference's ``agent:main:`` keys."""
    message = source(chat_type="dm", chat_id="7")
    main, _ = store(tmp_path / "main")
    mine = main.get_or_create_session(message)
    monkeypatch.setenv("HERMES_HOME", str(tmp_path / "root" / "profiles" / "research"))
    research, _ = store(tmp_path / "research")
    theirs = research.get_or_create_session(message)
    assert (mine.session_key, theirs.session_key) == ("agent:main:telegram:dm:7", "agent:research:telegram:dm:7")
    assert research.namespace == "research" and hermes.build_session_key(message) == theirs.session_key
    assert [e.session_key for e in research.list_sessions()] == [theirs.session_key]
    assert research.suspend_recently_active() == 1  # a restart of research marks its own keys only
    assert [e.resume_pending for e in main.list_sessions()] == [False]
    monkeypatch.setenv("SESSIOND_NAMESPACE", "ops")
    assert store(tmp_path / "ops")[0].get_or_create_session(message).session_key == "agent:ops:telegram:dm:7"
    pinned, _ = store(tmp_path / "pinned", namespace="main")
    assert [e.session_key for e in pinned.list_sessions()] == [mine.session_key]


def test_handoffs_and_fenced_turns_beyond_the_reference(daemon: Running, tmp_path: Path) -> None:
    sessions, _ = store(tmp_path)
    telegram = sessions.get_or_create_session(source(chat_type="dm", chat_id="7"))
    discord = source(platform=hermes.Platform.DISCORD, chat_type="dm", chat_id="8")
    moved = sessions.handoff_session(telegram.session_key, discord)
    assert moved is not None and moved.session_id == telegram.session_id
    assert moved.session_key == "agent:main:discord:dm:8" and moved.platform == hermes.Platform.DISCORD
    assert sessions.handoff_session("agent:main:telegram:dm:none", discord) is None
    first = sessions.begin_turn(moved.session_key, "loop-1")
    assert first.started and first.turn is not None
    sessions.append_to_transcript(moved.session_id, {"role": "user", "content": "one"}, fence=first.turn)
    second = sessions.begin_turn(moved.session_key, "loop-2", on_conflict="interrupt")
    with pytest.raises(errors.ConflictError):
        sessions.append_to_transcript(moved.session_id, {"role": "user", "content": "stale"}, fence=first.turn)
    with pytest.raises(errors.ConflictError):
        sessions.rewrite_transcript(moved.session_id, [], fence=first.turn)
    assert [m["content"] for m in sessions.load_transcript(moved.session_id)] == ["one"]
    assert second.turn is not None and sessions.end_turn(second.turn) and not sessions.end_turn(first.turn)
