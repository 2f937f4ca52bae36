"""Behaviour of the session store over the wire: real daemons, a temp SQLite file, an injected clock.

Each test drives the public RPCs of ``sessiond.v1.SessionStore`` and checks one behaviour of the
contract (``protos/sessiond/v1``), the semantics of the reference's ``SessionStore`` and the
guarantees the sidecar adds (versions, leases, deduplication, atomic requests, durability).
Time only moves when a test advances the clock; nothing sleeps.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import apsw
import grpc
import pytest

from helpers.clock import START, Clock
from helpers.daemons import Running
from helpers.wire import DM, GROUP, acquire, get_or_create, invalid_field, source, when
from helpers.wire import load_transcript as load
from sessiond.daemon import config as config_module
from sessiond.daemon.server import create_server
from sessiond.errors import StorageError
from sessiond_client.v1 import session_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

SESSION_ID = re.compile(r"^\d{8}_\d{6}_[0-9a-f]{8}$")
IDLE_1_MIN = {"reset": {"default": {"mode": "idle", "idle_minutes": 1, "time_zone": "UTC"}}}


Start = Callable[..., Running]


# --------------------------------------------------------------------------- helpers


def get(stub: Any, key: str) -> session_pb2.SessionEntry:
    return stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=10).entry


def update(stub: Any, key: str, **fields: Any) -> session_pb2.SessionEntry:
    return stub.UpdateSession(pb.UpdateSessionRequest(session_key=key, **fields), timeout=10).entry


def status_of(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert "Traceback" not in raised.value.details()
    return raised.value


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    return status_of(call).code()


def token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def list_keys(stub: Any, **fields: Any) -> list[str]:
    return [e.session_key for e in stub.ListSessions(pb.ListSessionsRequest(**fields), timeout=10).entries]


def expired_keys(stub: Any) -> set[str]:
    response = stub.ListExpiredSessions(pb.ListExpiredSessionsRequest(), timeout=10)
    assert response.next_page_token == ""
    return {e.session_key for e in response.entries}


def msg(role: str = "user", text: str | None = None, **fields: Any) -> transcript_pb2.Message:
    if text is not None:
        fields["text"] = text
    return transcript_pb2.Message(role=role, **fields)


def append(stub: Any, session_id: str, *messages: transcript_pb2.Message) -> pb.AppendMessagesResponse:
    return stub.AppendMessages(pb.AppendMessagesRequest(session_id=session_id, messages=messages), timeout=10)


def rewrite(stub: Any, session_id: str, *messages: transcript_pb2.Message) -> pb.RewriteTranscriptResponse:
    return stub.RewriteTranscript(pb.RewriteTranscriptRequest(session_id=session_id, messages=messages), timeout=10)


def texts(messages: list[transcript_pb2.Message]) -> list[str]:
    return [m.text for m in messages]


# --------------------------------------------------------------------------- GetOrCreateSession


def test_same_key_returns_the_same_session_refreshed(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    first = get_or_create(stub).entry
    clock.advance(minutes=3)
    again = get_or_create(stub)
    assert again.created is False
    assert again.entry.session_id == first.session_id
    assert when(again.entry.updated_at) == clock.now
    assert when(again.entry.created_at) == START
    assert again.entry.version == first.version + 1
    assert get(stub, first.session_key) == again.entry


def test_new_key_creates_a_session_with_clean_flags(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    response = get_or_create(stub, source(chat_name="Alice"))
    entry = response.entry
    assert response.created is True
    assert SESSION_ID.match(entry.session_id), entry.session_id
    assert entry.session_key == "agent:main:telegram:dm:1001"
    assert when(entry.created_at) == when(entry.updated_at) == START
    assert entry.display_name == "Alice" and entry.platform == "telegram" and entry.chat_type == DM
    assert entry.origin.chat_id == "1001"
    assert not (entry.was_auto_reset or entry.is_fresh_reset or entry.reset_had_activity)
    assert not (entry.suspended or entry.resume_pending or entry.expiry_finalized)
    assert not entry.HasField("auto_reset_reason")
    assert entry.total_tokens == 0 and entry.cost_status == "unknown"
    other = get_or_create(stub, source("1002"))
    assert other.created is True and other.entry.session_id != entry.session_id


def test_idle_stale_session_is_auto_reset_without_activity(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(IDLE_1_MIN, clock=clock).stub
    old = get_or_create(stub).entry
    clock.advance(minutes=1)  # exactly the idle limit: still fresh
    assert get_or_create(stub).entry.session_id == old.session_id
    clock.advance(minutes=5)
    response = get_or_create(stub)
    assert response.created is True
    assert response.entry.session_id != old.session_id
    assert response.entry.was_auto_reset is True
    assert response.entry.auto_reset_reason == "idle"
    assert response.entry.reset_had_activity is False
    assert response.entry.version > old.version


def test_idle_reset_reports_activity_when_tokens_were_used(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(IDLE_1_MIN, clock=clock).stub
    old = get_or_create(stub).entry
    update(stub, old.session_key, usage=pb.UsageDelta(input_tokens=10, output_tokens=5, total_tokens=15))
    clock.advance(minutes=5)
    entry = get_or_create(stub).entry
    assert entry.session_id != old.session_id
    assert (entry.was_auto_reset, entry.auto_reset_reason, entry.reset_had_activity) == (True, "idle", True)
    assert entry.total_tokens == 0  # the new session starts its own counters


def test_daily_reset_happens_once_at_hour_passes(start_daemon: Start, clock: Clock) -> None:
    config = {"reset": {"default": {"mode": "daily", "at_hour": 12, "time_zone": "UTC"}}}
    stub = start_daemon(config, clock=clock).stub
    old = get_or_create(stub).entry
    clock.advance(hours=1, minutes=59)  # 11:59: before at_hour
    assert get_or_create(stub).entry.session_id == old.session_id
    clock.advance(minutes=2)  # 12:01
    entry = get_or_create(stub).entry
    assert entry.session_id != old.session_id
    assert (entry.was_auto_reset, entry.auto_reset_reason) == (True, "daily")
    clock.advance(hours=5)  # same day, after the reset: no second one
    assert get_or_create(stub).entry.session_id == entry.session_id


def test_daily_reset_follows_the_policy_time_zone(start_daemon: Start, clock: Clock) -> None:
    # 20:00 in Tokyo (UTC+9) is 11:00 UTC; the clock starts at 19:00 Tokyo time.
    config = {"reset": {"default": {"mode": "daily", "at_hour": 20, "time_zone": "Asia/Tokyo"}}}
    stub = start_daemon(config, clock=clock).stub
    old = get_or_create(stub).entry
    clock.advance(minutes=59)
    assert get_or_create(stub).entry.session_id == old.session_id
    clock.advance(minutes=2)
    assert get_or_create(stub).entry.auto_reset_reason == "daily"


def test_mode_none_never_resets(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon({"reset": {"default": {"mode": "none"}}}, clock=clock).stub
    old = get_or_create(stub).entry
    clock.advance(days=400)
    response = get_or_create(stub)
    assert response.created is False
    assert response.entry.session_id == old.session_id
    assert response.entry.was_auto_reset is False


def test_force_new_starts_a_new_session_without_auto_reset(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    old = get_or_create(stub).entry
    clock.advance(seconds=1)
    response = get_or_create(stub, force_new=True)
    assert response.created is True
    assert response.entry.session_id != old.session_id
    assert response.entry.was_auto_reset is False
    assert not response.entry.HasField("auto_reset_reason")
    assert get(stub, old.session_key).session_id == response.entry.session_id


def test_suspended_session_starts_over_with_reason_suspended(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    old = get_or_create(stub).entry
    suspended = stub.SuspendSession(pb.SuspendSessionRequest(session_key=old.session_key), timeout=10).entry
    assert suspended.suspended is True and suspended.session_id == old.session_id
    assert suspended.version == old.version + 1
    response = get_or_create(stub)
    assert response.created is True
    assert response.entry.session_id != old.session_id
    assert (response.entry.was_auto_reset, response.entry.auto_reset_reason) == (True, "suspended")
    assert response.entry.suspended is False


def test_suspended_beats_resume_pending(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    old = get_or_create(stub).entry
    stub.MarkResumePending(pb.MarkResumePendingRequest(session_key=old.session_key), timeout=10)
    stub.SuspendSession(pb.SuspendSessionRequest(session_key=old.session_key), timeout=10)
    entry = get_or_create(stub).entry
    assert entry.session_id != old.session_id
    assert entry.auto_reset_reason == "suspended"
    assert entry.resume_pending is False


def test_resume_pending_keeps_the_session_even_when_stale(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(IDLE_1_MIN, clock=clock).stub
    old = get_or_create(stub).entry
    stub.MarkResumePending(pb.MarkResumePendingRequest(session_key=old.session_key), timeout=10)
    clock.advance(minutes=30)
    response = get_or_create(stub)
    assert response.created is False
    assert response.entry.session_id == old.session_id
    assert response.entry.resume_pending is True
    assert response.entry.was_auto_reset is False
    assert when(response.entry.updated_at) == clock.now


POLICY_CONFIG = {
    "reset": {
        "default": {"mode": "idle", "idle_minutes": 60, "time_zone": "UTC"},
        "platforms": {
            "discord": {"mode": "none"},
            "slack": {"mode": "idle", "idle_minutes": 120, "notify": False},
            "signal": {"mode": "daily", "at_hour": 13, "time_zone": "UTC"},
        },
        "chat_types": {"group": {"mode": "idle", "idle_minutes": 10, "time_zone": "UTC"}},
    }
}


def test_response_policy_follows_platform_then_chat_type_then_default(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(POLICY_CONFIG, clock=clock).stub
    default = get_or_create(stub, source("1")).policy
    assert (default.mode, default.idle_minutes, default.time_zone) == (session_pb2.RESET_MODE_IDLE, 60, "UTC")
    assert default.notify is True and list(default.notify_exclude_platforms) == ["api_server", "webhook"]
    group = get_or_create(stub, source("g", chat_type=GROUP)).policy
    assert (group.mode, group.idle_minutes) == (session_pb2.RESET_MODE_IDLE, 10)
    discord_group = get_or_create(stub, source("g", platform="discord", chat_type=GROUP)).policy
    assert discord_group.mode == session_pb2.RESET_MODE_NONE
    slack_group = get_or_create(stub, source("g", platform="slack", chat_type=GROUP)).policy
    assert (slack_group.mode, slack_group.idle_minutes, slack_group.notify) == (session_pb2.RESET_MODE_IDLE, 120, False)
    signal = get_or_create(stub, source("s", platform="signal")).policy
    assert (signal.mode, signal.at_hour) == (session_pb2.RESET_MODE_DAILY, 13)


def test_platform_policy_decides_the_reset_not_the_chat_type(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(POLICY_CONFIG, clock=clock).stub
    telegram_group = get_or_create(stub, source("g", chat_type=GROUP)).entry
    slack_group = get_or_create(stub, source("g", platform="slack", chat_type=GROUP)).entry
    clock.advance(minutes=30)
    assert get_or_create(stub, source("g", chat_type=GROUP)).entry.session_id != telegram_group.session_id
    assert get_or_create(stub, source("g", platform="slack", chat_type=GROUP)).entry.session_id == (
        slack_group.session_id
    )


# --------------------------------------------------------------------------- leases


def release(stub: Any, key: str, owner: str) -> bool:
    return stub.ReleaseLease(pb.ReleaseLeaseRequest(session_key=key, owner=owner), timeout=10).released


def test_live_lease_prevents_idle_reset_and_expiry_until_its_ttl(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(IDLE_1_MIN, clock=clock).stub
    old = get_or_create(stub).entry
    lease = acquire(stub, old.session_key, "job-1", minutes=10)
    assert when(lease.expires_at) == START + timedelta(minutes=10)
    clock.advance(minutes=5)
    leased = get_or_create(stub)
    assert leased.created is False and leased.entry.session_id == old.session_id
    clock.advance(minutes=2)  # idle for 2 minutes, but leased
    assert expired_keys(stub) == set()
    clock.advance(minutes=4)  # the lease lapsed at 10:10
    assert expired_keys(stub) == {old.session_key}
    entry = get_or_create(stub).entry
    assert entry.session_id != old.session_id and entry.auto_reset_reason == "idle"


def test_live_lease_prevents_pruning_until_its_ttl(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    key = get_or_create(stub).entry.session_key
    acquire(stub, key, "job-1", days=3)
    clock.advance(days=2)
    assert stub.PruneOldEntries(pb.PruneOldEntriesRequest(max_age_days=1), timeout=10).count == 0
    assert get(stub, key).session_key == key
    clock.advance(days=2)
    assert stub.PruneOldEntries(pb.PruneOldEntriesRequest(max_age_days=1), timeout=10).count == 1
    assert code_of(lambda: get(stub, key)) == grpc.StatusCode.NOT_FOUND


def test_lease_owners(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    key = "agent:main:telegram:dm:1001"
    acquire(stub, key, "a", minutes=5)
    error = status_of(lambda: acquire(stub, key, "b", minutes=5))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    clock.advance(minutes=1)
    renewed = acquire(stub, key, "a", minutes=5)
    assert renewed.owner == "a" and when(renewed.expires_at) == clock.now + timedelta(minutes=5)
    assert release(stub, key, "b") is False  # not the holder
    assert release(stub, key, "a") is True
    assert release(stub, key, "a") is False
    assert acquire(stub, key, "b", minutes=5).owner == "b"  # free again
    clock.advance(minutes=5)  # b's lease lapses exactly now
    assert release(stub, key, "b") is False
    assert acquire(stub, key, "a", minutes=1).owner == "a"


def test_lease_ttl_must_be_positive(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    request = pb.AcquireLeaseRequest(session_key="k", owner="a")
    assert invalid_field(lambda: stub.AcquireLease(request, timeout=10)) == "ttl"


# --------------------------------------------------------------------------- resume pending


def test_mark_resume_pending_sets_flag_reason_and_time(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    key = get_or_create(stub).entry.session_key
    clock.advance(seconds=30)
    entry = stub.MarkResumePending(pb.MarkResumePendingRequest(session_key=key), timeout=10).entry
    assert (entry.resume_pending, entry.resume_reason) == (True, "restart_timeout")
    assert when(entry.last_resume_marked_at) == clock.now
    clock.advance(seconds=30)
    request = pb.MarkResumePendingRequest(session_key=key, reason="drain_timeout")
    entry = stub.MarkResumePending(request, timeout=10).entry
    assert entry.resume_reason == "drain_timeout" and when(entry.last_resume_marked_at) == clock.now
    assert get(stub, key) == entry


def test_mark_resume_pending_refuses_suspended_and_unknown(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    key = get_or_create(stub).entry.session_key
    suspended = stub.SuspendSession(pb.SuspendSessionRequest(session_key=key), timeout=10).entry
    request = pb.MarkResumePendingRequest(session_key=key)
    assert code_of(lambda: stub.MarkResumePending(request, timeout=10)) == grpc.StatusCode.FAILED_PRECONDITION
    assert get(stub, key) == suspended
    unknown = pb.MarkResumePendingRequest(session_key="agent:main:telegram:dm:nobody")
    assert code_of(lambda: stub.MarkResumePending(unknown, timeout=10)) == grpc.StatusCode.NOT_FOUND


def test_clear_resume_pending(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    key = get_or_create(stub).entry.session_key
    stub.MarkResumePending(pb.MarkResumePendingRequest(session_key=key, reason="x"), timeout=10)
    first = stub.ClearResumePending(pb.ClearResumePendingRequest(session_key=key), timeout=10)
    assert first.cleared is True
    assert first.entry.resume_pending is False
    assert not first.entry.HasField("resume_reason") and not first.entry.HasField("last_resume_marked_at")
    second = stub.ClearResumePending(pb.ClearResumePendingRequest(session_key=key), timeout=10)
    assert second.cleared is False and second.entry == first.entry
    unknown = pb.ClearResumePendingRequest(session_key="agent:main:telegram:dm:nobody")
    assert code_of(lambda: stub.ClearResumePending(unknown, timeout=10)) == grpc.StatusCode.NOT_FOUND


def test_suspend_recently_active_marks_only_recent_plain_entries(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    old = get_or_create(stub, source("old")).entry
    clock.advance(minutes=5)
    recent = get_or_create(stub, source("recent")).entry
    pending = get_or_create(stub, source("pending")).entry
    suspended = get_or_create(stub, source("suspended")).entry
    request = pb.MarkResumePendingRequest(session_key=pending.session_key, reason="custom")
    pending = stub.MarkResumePending(request, timeout=10).entry
    suspended = stub.SuspendSession(pb.SuspendSessionRequest(session_key=suspended.session_key), timeout=10).entry
    clock.advance(minutes=1)
    response = stub.SuspendRecentlyActive(pb.SuspendRecentlyActiveRequest(max_age_seconds=120), timeout=10)
    assert response.count == 1
    marked = get(stub, recent.session_key)
    assert (marked.resume_pending, marked.resume_reason) == (True, "restart_interrupted")
    assert when(marked.last_resume_marked_at) == clock.now
    assert marked.session_id == recent.session_id and marked.suspended is False
    assert marked.version == recent.version + 1
    assert get(stub, old.session_key) == old
    assert get(stub, pending.session_key) == pending
    assert get(stub, suspended.session_key) == suspended
    again = stub.SuspendRecentlyActive(pb.SuspendRecentlyActiveRequest(max_age_seconds=120), timeout=10)
    assert again.count == 0


def test_suspend_recently_active_defaults_to_120_seconds(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    get_or_create(stub, source("a"))
    clock.advance(seconds=121)
    get_or_create(stub, source("b"))
    assert stub.SuspendRecentlyActive(pb.SuspendRecentlyActiveRequest(), timeout=10).count == 1


# --------------------------------------------------------------------------- reset and switch


def test_reset_session_starts_fresh_keeping_where_it_came_from(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    src = source("g", chat_type=GROUP, chat_name="Team", user_name="Alice")
    old = get_or_create(stub, src).entry
    old = update(stub, old.session_key, last_prompt_tokens=99, usage=pb.UsageDelta(total_tokens=50))
    clock.advance(minutes=1)
    entry = stub.ResetSession(pb.ResetSessionRequest(session_key=old.session_key), timeout=10).entry
    assert entry.session_id != old.session_id and SESSION_ID.match(entry.session_id)
    assert entry.is_fresh_reset is True and entry.was_auto_reset is False
    assert entry.origin == old.origin
    assert (entry.display_name, entry.platform, entry.chat_type) == ("Team", "telegram", GROUP)
    assert (entry.total_tokens, entry.last_prompt_tokens) == (0, 0)
    assert when(entry.created_at) == when(entry.updated_at) == clock.now
    assert entry.version == old.version + 1
    clock.advance(minutes=1)
    after = get_or_create(stub, src)
    assert after.created is False and after.entry.session_id == entry.session_id
    assert after.entry.is_fresh_reset is True


def test_reset_unknown_key_is_not_found(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    request = pb.ResetSessionRequest(session_key="agent:main:telegram:dm:nobody")
    assert code_of(lambda: stub.ResetSession(request, timeout=10)) == grpc.StatusCode.NOT_FOUND


def test_switch_session(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    first = get_or_create(stub).entry
    key = first.session_key
    second = stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10).entry

    same = stub.SwitchSession(pb.SwitchSessionRequest(session_key=key, target_session_id=second.session_id))
    assert same.switched is False and same.entry == second

    clock.advance(minutes=1)
    back = stub.SwitchSession(pb.SwitchSessionRequest(session_key=key, target_session_id=first.session_id))
    assert back.switched is True
    assert back.entry.session_id == first.session_id
    assert back.entry.version == second.version + 1 and back.entry.is_fresh_reset is False
    assert when(back.entry.updated_at) == clock.now
    assert get_or_create(stub).entry.session_id == first.session_id

    unknown_target = pb.SwitchSessionRequest(session_key=key, target_session_id="20260101_000000_deadbeef")
    assert code_of(lambda: stub.SwitchSession(unknown_target, timeout=10)) == grpc.StatusCode.NOT_FOUND
    unknown_key = pb.SwitchSessionRequest(session_key="agent:x", target_session_id=second.session_id)
    assert code_of(lambda: stub.SwitchSession(unknown_key, timeout=10)) == grpc.StatusCode.NOT_FOUND
    assert get(stub, key).session_id == first.session_id


# --------------------------------------------------------------------------- pruning


def prune(stub: Any, days: int | None = None) -> int:
    request = pb.PruneOldEntriesRequest() if days is None else pb.PruneOldEntriesRequest(max_age_days=days)
    return stub.PruneOldEntries(request, timeout=10).count


def test_prune_by_last_activity_keeping_suspended_and_transcripts(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon({"sessions": {"max_age_days": 3}}, clock=clock).stub
    active = get_or_create(stub, source("active")).entry
    idle = get_or_create(stub, source("idle")).entry
    suspended = get_or_create(stub, source("suspended")).entry
    stub.SuspendSession(pb.SuspendSessionRequest(session_key=suspended.session_key), timeout=10)
    append(stub, idle.session_id, msg(text="remember me"))
    clock.advance(days=10)
    update(stub, active.session_key)  # created 10 days ago, active now

    assert prune(stub, 0) == 0
    assert prune(stub, -5) == 0
    assert prune(stub, 20) == 0  # an explicit value wins over the configured one
    assert prune(stub) == 1  # the configured sessions.max_age_days = 3

    assert code_of(lambda: get(stub, idle.session_key)) == grpc.StatusCode.NOT_FOUND
    assert get(stub, active.session_key).session_id == active.session_id
    assert get(stub, suspended.session_key).suspended is True
    assert texts(load(stub, idle.session_id)) == ["remember me"]
    fresh = get_or_create(stub, source("idle"))
    assert fresh.created is True and fresh.entry.session_id != idle.session_id
    assert fresh.entry.was_auto_reset is False


def test_prune_defaults_to_90_days(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    get_or_create(stub, source("a"))
    get_or_create(stub, source("b"))
    clock.advance(days=89)
    assert prune(stub) == 0
    clock.advance(days=2)
    assert prune(stub) == 2
    assert list_keys(stub) == []


# --------------------------------------------------------------------------- listing


def five_sessions(stub: Any, clock: Clock, spaced: bool = True) -> list[str]:
    keys = []
    for i in range(5):
        keys.append(get_or_create(stub, source(f"c{i}")).entry.session_key)
        if spaced:
            clock.advance(minutes=1)
    return keys


def test_list_sessions_newest_first_and_active_filter(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    keys = five_sessions(stub, clock)  # c0 at 10:00 ... c4 at 10:04; now 10:05
    assert list_keys(stub) == keys[::-1]
    assert list_keys(stub, active_minutes=3) == [keys[4], keys[3], keys[2]]  # since 10:02, inclusive
    update(stub, keys[0])
    assert list_keys(stub) == [keys[0], keys[4], keys[3], keys[2], keys[1]]
    assert list_keys(stub, active_minutes=0) == [keys[0]]


@pytest.mark.parametrize("spaced", [True, False], ids=["distinct-times", "equal-times"])
def test_list_sessions_pagination_visits_each_once(start_daemon: Start, clock: Clock, spaced: bool) -> None:
    stub = start_daemon(None, clock=clock).stub
    keys = five_sessions(stub, clock, spaced)
    expected = list_keys(stub)
    assert sorted(expected) == sorted(keys)
    pages: list[list[str]] = []
    page_token = ""
    while True:
        response = stub.ListSessions(pb.ListSessionsRequest(page_size=2, page_token=page_token), timeout=10)
        pages.append([e.session_key for e in response.entries])
        page_token = response.next_page_token
        if not page_token:
            break
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [key for page in pages for key in page] == expected


def test_list_sessions_garbage_page_token(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    get_or_create(stub)
    for bad in ("!!!", "not-base64", "é", token("x"), token([1, 2]), token({"a": 1}), token(["k", 1])):
        request = pb.ListSessionsRequest(page_token=bad)
        assert invalid_field(lambda request=request: stub.ListSessions(request, timeout=10)) == "page_token", bad


@pytest.mark.parametrize("rpc", ["ListSessions", "ListExpiredSessions", "LoadTranscript"])
def test_page_token_with_out_of_range_integer_is_invalid_argument(start_daemon: Start, clock: Clock, rpc: str) -> None:
    stub = start_daemon(None, clock=clock).stub
    session_id = get_or_create(stub).entry.session_id
    requests = {
        "ListSessions": lambda: stub.ListSessions(pb.ListSessionsRequest(page_token=token([10**30, "k"]))),
        "ListExpiredSessions": lambda: stub.ListExpiredSessions(
            pb.ListExpiredSessionsRequest(page_token=token([10**30, "k"]))
        ),
        "LoadTranscript": lambda: stub.LoadTranscript(
            pb.LoadTranscriptRequest(session_id=session_id, page_token=token(10**30))
        ),
    }
    assert invalid_field(requests[rpc]) == "page_token"


def test_has_any_sessions_counts_ended_sessions(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub

    def has_any() -> bool:
        return stub.HasAnySessions(pb.HasAnySessionsRequest(), timeout=10).has_any_sessions

    assert has_any() is False
    key = get_or_create(stub).entry.session_key
    assert has_any() is False  # only the current one
    get_or_create(stub)  # same session again
    assert has_any() is False
    stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10)
    assert has_any() is True  # the ended one counts


def test_has_any_sessions_with_a_second_key(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    get_or_create(stub, source("a"))
    assert stub.HasAnySessions(pb.HasAnySessionsRequest(), timeout=10).has_any_sessions is False
    get_or_create(stub, source("b"))
    assert stub.HasAnySessions(pb.HasAnySessionsRequest(), timeout=10).has_any_sessions is True


# --------------------------------------------------------------------------- UpdateSession


def test_update_session_refreshes_and_sets_last_prompt_tokens(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    entry = get_or_create(stub).entry
    key = entry.session_key
    clock.advance(minutes=7)
    updated = update(stub, key, last_prompt_tokens=500)
    assert when(updated.updated_at) == clock.now and when(updated.created_at) == START
    assert updated.last_prompt_tokens == 500 and updated.version == entry.version + 1
    assert update(stub, key).last_prompt_tokens == 500  # unset: left as is
    assert update(stub, key, last_prompt_tokens=0).last_prompt_tokens == 0  # zero is a value
    assert get(stub, key).last_prompt_tokens == 0


def test_update_session_adds_usage_and_sets_cost_status(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    key = get_or_create(stub).entry.session_key
    first = pb.UsageDelta(
        input_tokens=10,
        output_tokens=20,
        cache_read_tokens=3,
        cache_write_tokens=4,
        total_tokens=30,
        estimated_cost_usd=0.5,
    )
    second = pb.UsageDelta(
        input_tokens=1,
        output_tokens=2,
        cache_read_tokens=5,
        cache_write_tokens=6,
        total_tokens=3,
        estimated_cost_usd=0.25,
    )
    update(stub, key, usage=first, cost_status="estimated")
    entry = update(stub, key, usage=second)
    assert (entry.input_tokens, entry.output_tokens) == (11, 22)
    assert (entry.cache_read_tokens, entry.cache_write_tokens, entry.total_tokens) == (8, 10, 33)
    assert entry.estimated_cost_usd == pytest.approx(0.75)
    assert entry.cost_status == "estimated"  # unset: left as is
    assert update(stub, key, cost_status="exact").cost_status == "exact"


def test_update_session_rejects_bad_input_and_unknown_keys(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    key = get_or_create(stub).entry.session_key
    before = get(stub, key)
    clock.advance(minutes=1)
    negative = pb.UpdateSessionRequest(session_key=key, usage=pb.UsageDelta(total_tokens=5, input_tokens=-1))
    assert invalid_field(lambda: stub.UpdateSession(negative, timeout=10)) == "usage.input_tokens"
    assert get(stub, key) == before
    unknown = pb.UpdateSessionRequest(session_key="agent:main:telegram:dm:nobody")
    assert code_of(lambda: stub.UpdateSession(unknown, timeout=10)) == grpc.StatusCode.NOT_FOUND


# --------------------------------------------------------------------------- expected_version


def _versioned_call(stub: Any, rpc: str, key: str, version: int, earlier_id: str) -> Any:
    if rpc == "UpdateSession":
        request = pb.UpdateSessionRequest(
            session_key=key, usage=pb.UsageDelta(total_tokens=7), expected_version=version
        )
        return stub.UpdateSession(request, timeout=10)
    if rpc == "SuspendSession":
        return stub.SuspendSession(pb.SuspendSessionRequest(session_key=key, expected_version=version), timeout=10)
    if rpc == "ResetSession":
        return stub.ResetSession(pb.ResetSessionRequest(session_key=key, expected_version=version), timeout=10)
    if rpc == "SwitchSession":
        request = pb.SwitchSessionRequest(session_key=key, target_session_id=earlier_id, expected_version=version)
        return stub.SwitchSession(request, timeout=10)
    if rpc == "MarkResumePending":
        request = pb.MarkResumePendingRequest(session_key=key, reason="again", expected_version=version)
        return stub.MarkResumePending(request, timeout=10)
    request = pb.ClearResumePendingRequest(session_key=key, expected_version=version)
    return stub.ClearResumePending(request, timeout=10)


@pytest.mark.parametrize(
    "rpc",
    ["UpdateSession", "SuspendSession", "ResetSession", "SwitchSession", "MarkResumePending", "ClearResumePending"],
)
def test_expected_version_guards_changes(start_daemon: Start, clock: Clock, rpc: str) -> None:
    stub = start_daemon(None, clock=clock).stub
    earlier = get_or_create(stub).entry
    key = earlier.session_key
    stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10)
    current = stub.MarkResumePending(pb.MarkResumePendingRequest(session_key=key), timeout=10).entry
    clock.advance(minutes=1)
    for stale in (current.version - 1, current.version + 1):
        error = status_of(lambda stale=stale: _versioned_call(stub, rpc, key, stale, earlier.session_id))
        assert error.code() == grpc.StatusCode.ABORTED
        assert get(stub, key) == current
    response = _versioned_call(stub, rpc, key, current.version, earlier.session_id)
    assert response.entry.version == current.version + 1
    assert get(stub, key) == response.entry != current


# --------------------------------------------------------------------------- expiry watcher


def test_list_expired_follows_the_policy_of_each_entry(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(POLICY_CONFIG, clock=clock).stub
    keys = {
        name: get_or_create(stub, src).entry.session_key
        for name, src in {
            "telegram_dm": source("dm"),  # default: idle 60 min
            "telegram_group": source("g", chat_type=GROUP),  # chat type: idle 10 min
            "discord_group": source("g", platform="discord", chat_type=GROUP),  # platform: none
            "slack_group": source("g", platform="slack", chat_type=GROUP),  # platform: idle 120 min
            "signal_dm": source("s", platform="signal"),  # platform: daily at 13:00 UTC
        }.items()
    }
    assert expired_keys(stub) == set()
    clock.advance(minutes=30)  # 10:30
    assert expired_keys(stub) == {keys["telegram_group"]}
    clock.advance(hours=1)  # 11:30
    assert expired_keys(stub) == {keys["telegram_group"], keys["telegram_dm"]}
    clock.advance(minutes=40)  # 12:10
    assert expired_keys(stub) == {keys["telegram_group"], keys["telegram_dm"], keys["slack_group"]}
    clock.advance(hours=1)  # 13:10
    assert expired_keys(stub) == set(keys.values()) - {keys["discord_group"]}
    clock.advance(days=400)
    assert keys["discord_group"] not in expired_keys(stub)


def test_list_expired_agrees_with_get_or_create(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(POLICY_CONFIG, clock=clock).stub
    sources = [source("dm"), source("g", chat_type=GROUP), source("g", platform="slack", chat_type=GROUP)]
    before = {get_or_create(stub, src).entry.session_key: src for src in sources}
    clock.advance(minutes=61)
    expired = expired_keys(stub)
    for key, src in before.items():
        assert get_or_create(stub, src).created is (key in expired)


def test_mark_expiry_finalized(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(IDLE_1_MIN, clock=clock).stub
    a = get_or_create(stub, source("a")).entry
    b = get_or_create(stub, source("b")).entry
    clock.advance(minutes=5)
    assert expired_keys(stub) == {a.session_key, b.session_key}

    request = pb.MarkExpiryFinalizedRequest(session_key=a.session_key, session_id=a.session_id)
    finalized = stub.MarkExpiryFinalized(request, timeout=10).entry
    assert finalized.expiry_finalized is True and finalized.session_id == a.session_id
    assert finalized.version == a.version + 1
    assert expired_keys(stub) == {b.session_key}

    before = get(stub, b.session_key)
    mismatch = pb.MarkExpiryFinalizedRequest(session_key=b.session_key, session_id=a.session_id)
    assert code_of(lambda: stub.MarkExpiryFinalized(mismatch, timeout=10)) == grpc.StatusCode.ABORTED
    assert get(stub, b.session_key) == before
    assert expired_keys(stub) == {b.session_key}

    moved_on = get_or_create(stub, source("b")).entry  # stale: a new session id for the key
    assert moved_on.session_id != b.session_id and moved_on.expiry_finalized is False
    late = pb.MarkExpiryFinalizedRequest(session_key=b.session_key, session_id=b.session_id)
    assert code_of(lambda: stub.MarkExpiryFinalized(late, timeout=10)) == grpc.StatusCode.ABORTED
    unknown = pb.MarkExpiryFinalizedRequest(session_key="agent:x", session_id=b.session_id)
    assert code_of(lambda: stub.MarkExpiryFinalized(unknown, timeout=10)) == grpc.StatusCode.NOT_FOUND


def test_list_expired_pagination(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(IDLE_1_MIN, clock=clock).stub
    keys = five_sessions(stub, clock)
    get_or_create(stub, source("fresh"))  # at 10:05
    clock.advance(seconds=30)  # the five are idle for 90 s or more, "fresh" for 30 s
    seen: list[str] = []
    sizes = []
    page_token = ""
    while True:
        request = pb.ListExpiredSessionsRequest(page_size=2, page_token=page_token)
        response = stub.ListExpiredSessions(request, timeout=10)
        sizes.append(len(response.entries))
        seen.extend(e.session_key for e in response.entries)
        page_token = response.next_page_token
        if not page_token:
            break
    assert sizes == [2, 2, 1]
    assert seen == keys  # least recently active first


# --------------------------------------------------------------------------- transcripts


@pytest.fixture
def transcript_daemon(start_daemon: Start, clock: Clock) -> tuple[Any, str]:
    stub = start_daemon(None, clock=clock).stub
    return stub, get_or_create(stub).entry.session_id


def test_append_keeps_batch_order_and_positions(transcript_daemon: tuple[Any, str], clock: Clock) -> None:
    stub, sid = transcript_daemon
    response = append(stub, sid, msg(text="one"), msg("assistant", "two"), msg(text="three"))
    assert (response.appended, response.duplicates, response.message_count) == (3, 0, 3)
    assert append(stub, sid, msg(text="four")).message_count == 4
    loaded = load(stub, sid)
    assert texts(loaded) == ["one", "two", "three", "four"]
    assert [m.position for m in loaded] == [0, 1, 2, 3]
    assert [m.role for m in loaded] == ["user", "assistant", "user", "user"]
    assert all(when(m.timestamp) == START for m in loaded)  # unset timestamps take the server clock


def test_append_retry_with_message_ids_is_deduplicated(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    batch = [msg(text="hi", message_id="m1"), msg("assistant", "hello", message_id="m2")]
    assert append(stub, sid, *batch).appended == 2
    retry = append(stub, sid, *batch)
    assert (retry.appended, retry.duplicates, retry.message_count) == (0, 2, 2)
    partial = append(stub, sid, batch[1], msg(text="new", message_id="m3"))
    assert (partial.appended, partial.duplicates, partial.message_count) == (1, 1, 3)
    assert texts(load(stub, sid)) == ["hi", "hello", "new"]
    assert [m.message_id for m in load(stub, sid)] == ["m1", "m2", "m3"]


def test_messages_without_id_are_never_deduplicated(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    batch = [msg(text="same"), msg(text="same")]
    assert append(stub, sid, *batch).appended == 2
    again = append(stub, sid, *batch)
    assert (again.appended, again.duplicates, again.message_count) == (2, 0, 4)
    assert texts(load(stub, sid)) == ["same"] * 4


def test_transcript_rpcs_on_unknown_session_are_not_found(transcript_daemon: tuple[Any, str]) -> None:
    stub, _ = transcript_daemon
    unknown = "20260101_000000_deadbeef"
    assert code_of(lambda: append(stub, unknown, msg(text="x"))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: rewrite(stub, unknown, msg(text="x"))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: load(stub, unknown)) == grpc.StatusCode.NOT_FOUND


def test_rewrite_replaces_the_transcript(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    append(stub, sid, msg(text="a", message_id="a"), msg(text="b", message_id="b"), msg(text="c"))
    assert rewrite(stub, sid, msg(text="x", message_id="a"), msg("assistant", "y")).message_count == 2
    loaded = load(stub, sid)
    assert texts(loaded) == ["x", "y"] and [m.position for m in loaded] == [0, 1]
    assert append(stub, sid, msg(text="b", message_id="b")).appended == 1  # "b" is gone, so not a duplicate
    assert append(stub, sid, msg(text="x", message_id="a")).duplicates == 1
    assert rewrite(stub, sid).message_count == 0
    assert load(stub, sid) == []
    after = append(stub, sid, msg(text="again"))
    assert after.message_count == 1 and load(stub, sid)[0].position == 0


def test_rewrite_with_a_repeated_message_id_is_rejected(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    append(stub, sid, msg(text="keep"))
    repeated = [msg(text="x", message_id="dup"), msg(text="z"), msg(text="y", message_id="dup")]
    assert invalid_field(lambda: rewrite(stub, sid, *repeated)) == "messages[2].message_id"
    assert texts(load(stub, sid)) == ["keep"]


def test_structured_content_is_lossless(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    content = (
        '{"z": 12345678901234567890123456789, "a": [1.10, -0.0, 1e-7], "ü": "héllo 😀 中文",'
        '  "nested": {"b": null, "a": true}}'
    )
    parts = '[{"type": "text", "text": "  <memory-context>m</memory-context> hi  "}, {"type": "image_url"}]'
    append(stub, sid, msg(json=content), msg("assistant", json=parts))
    for raw in (True, False):  # structured content is never rewritten, raw or not
        loaded = load(stub, sid, raw=raw)
        assert [m.WhichOneof("content") for m in loaded] == ["json", "json"]
        assert [m.json for m in loaded] == [content, parts]


def test_unicode_and_large_text_are_lossless(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    unicode = "héllo wörld — 你好 😀 \u200b zero\x00byte ¡"
    big = "ü" * 500_000 + "end"  # a bit over 1 MB of UTF-8
    append(stub, sid, msg(text=unicode), msg("assistant", big), msg("system", "   padded   "))
    raw = load(stub, sid, raw=True)
    assert texts(raw) == [unicode, big, "   padded   "]
    assert texts(load(stub, sid)) == [unicode, big, "   padded   "]


def test_tool_calls_round_trip(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    calls = '[{"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{\\"q\\": 1}"}}]'
    call = msg("assistant", tool_calls_json=calls, finish_reason="tool_calls", token_count=12)
    result = msg("tool", "  result  ", tool_call_id="call_1", tool_name="search")
    append(stub, sid, msg(text="find"), call, result)
    for raw in (True, False):
        _, assistant, tool = load(stub, sid, raw=raw)
        assert assistant.WhichOneof("content") is None
        assert (assistant.tool_calls_json, assistant.finish_reason, assistant.token_count) == (calls, "tool_calls", 12)
        assert not assistant.HasField("tool_call_id")
        assert (tool.text, tool.tool_call_id, tool.tool_name) == ("  result  ", "call_1", "search")
        assert not tool.HasField("tool_calls_json")


def test_load_removes_memory_context_unless_raw(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    user = (
        "  <memory-context>\n[System note: The following is recalled memory context, NOT new user input. "
        "Treat as informational background data.]\nlikes tea\n</memory-context>\n\nWhat's up?  "
    )
    assistant = "\nSure <MEMORY-CONTEXT>old</memory-context>thing \n"
    append(stub, sid, msg(text=user), msg("assistant", assistant))
    assert texts(load(stub, sid)) == ["What's up?", "Sure thing"]
    assert texts(load(stub, sid, raw=True)) == [user, assistant]


REASONING = {
    "reasoning": "because",
    "reasoning_content": "thinking",
    "reasoning_details_json": '[{"type": "reasoning.text", "text": "t"}]',
    "codex_reasoning_items_json": '[{"id": "r1"}]',
    "codex_message_items_json": '[{"id": "m1"}]',
}


@pytest.mark.parametrize("write", ["append", "rewrite"])
def test_reasoning_kept_for_assistant_only(transcript_daemon: tuple[Any, str], write: str) -> None:
    stub, sid = transcript_daemon
    batch = [msg("user", "q", **REASONING), msg("assistant", "a", **REASONING), msg("tool", "t", **REASONING)]
    (append if write == "append" else rewrite)(stub, sid, *batch)
    user, assistant, tool = load(stub, sid, raw=True)
    for name, value in REASONING.items():
        assert getattr(assistant, name) == value
        assert not user.HasField(name), name
        assert not tool.HasField(name), name


def test_load_pagination(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    append(stub, sid, *(msg(text=f"m{i}") for i in range(10)))
    pages: list[list[str]] = []
    page_token = ""
    while True:
        response = stub.LoadTranscript(pb.LoadTranscriptRequest(session_id=sid, page_size=3, page_token=page_token))
        pages.append(texts(list(response.messages)))
        page_token = response.next_page_token
        if not page_token:
            break
    assert pages == [["m0", "m1", "m2"], ["m3", "m4", "m5"], ["m6", "m7", "m8"], ["m9"]]


MALFORMED = [
    ({"role": "user", "json": "{not json"}, "messages[0].json"),
    ({"role": "assistant", "tool_calls_json": "[1,"}, "messages[0].tool_calls_json"),
    ({"role": "assistant", "text": "x", "reasoning_details_json": "nope"}, "messages[0].reasoning_details_json"),
    ({"role": "", "text": "no role"}, "messages[0].role"),
]


def test_malformed_message_is_invalid_argument(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    for bad, field in MALFORMED:
        message = transcript_pb2.Message(**bad)
        assert invalid_field(lambda message=message: append(stub, sid, message)) == field
        assert invalid_field(lambda message=message: rewrite(stub, sid, message)) == field
    assert load(stub, sid) == []


def test_a_rejected_batch_writes_nothing(transcript_daemon: tuple[Any, str]) -> None:
    stub, sid = transcript_daemon
    append(stub, sid, msg(text="before", message_id="b"))
    batch = [msg(text="ok", message_id="x"), msg(json="{broken"), msg(text="also ok")]
    assert invalid_field(lambda: append(stub, sid, *batch)) == "messages[1].json"
    assert invalid_field(lambda: rewrite(stub, sid, *batch)) == "messages[1].json"
    assert texts(load(stub, sid, raw=True)) == ["before"]
    assert append(stub, sid, batch[0]).appended == 1  # "x" was never stored


def test_batch_over_max_batch_is_rejected(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon({"limits": {"max_batch": 3}}, clock=clock).stub
    sid = get_or_create(stub).entry.session_id
    four = [msg(text=str(i)) for i in range(4)]
    assert invalid_field(lambda: append(stub, sid, *four)) == "messages"
    assert load(stub, sid) == []
    assert append(stub, sid, *four[:3]).appended == 3
    rewrite(stub, sid, *four)  # a rewrite is bounded by the transcript limit, not the batch
    assert len(load(stub, sid)) == 4


def test_transcript_over_max_transcript_messages_is_rejected(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon({"limits": {"max_transcript_messages": 5}}, clock=clock).stub
    sid = get_or_create(stub).entry.session_id
    assert append(stub, sid, *[msg(text=str(i)) for i in range(4)]).message_count == 4
    with pytest.raises(grpc.RpcError) as raised:
        append(stub, sid, msg(text="4"), msg(text="5"))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(load(stub, sid)) == 4  # nothing of the rejected batch
    assert invalid_field(lambda: rewrite(stub, sid, *[msg(text=str(i)) for i in range(6)])) == "messages"
    assert len(load(stub, sid)) == 4


# --------------------------------------------------------------------------- durability


def test_everything_survives_a_restart(start_daemon: Start, clock: Clock, tmp_path: Path) -> None:
    data = {"storage": {"path": str(tmp_path / "state" / "sessiond.db")}}
    first = start_daemon(data, clock=clock)
    stub = first.stub
    pending = get_or_create(stub, source("pending", chat_name="P")).entry
    update(
        stub, pending.session_key, last_prompt_tokens=42, usage=pb.UsageDelta(total_tokens=9, estimated_cost_usd=1.5)
    )
    stub.MarkResumePending(pb.MarkResumePendingRequest(session_key=pending.session_key, reason="why"), timeout=10)
    suspended = get_or_create(stub, source("suspended")).entry
    stub.SuspendSession(pb.SuspendSessionRequest(session_key=suspended.session_key), timeout=10)
    reset = get_or_create(stub, source("reset")).entry
    stub.ResetSession(pb.ResetSessionRequest(session_key=reset.session_key), timeout=10)
    batch = [msg(text="hi", message_id="1"), msg("assistant", "yo", message_id="2", **REASONING), msg(json="[1]")]
    append(stub, pending.session_id, *batch)
    acquire(stub, pending.session_key, "job", hours=1)
    entries = list(stub.ListSessions(pb.ListSessionsRequest(), timeout=10).entries)
    transcript = load(stub, pending.session_id, raw=True)
    assert len(entries) == 3 and len(transcript) == 3
    first.channel.close()
    first.daemon.stop(0)

    stub = start_daemon(data, clock=clock).stub
    assert list(stub.ListSessions(pb.ListSessionsRequest(), timeout=10).entries) == entries
    restored = get(stub, pending.session_key)
    assert (restored.resume_pending, restored.resume_reason, restored.last_prompt_tokens) == (True, "why", 42)
    assert get(stub, suspended.session_key).suspended is True
    assert get(stub, reset.session_key).is_fresh_reset is True
    assert load(stub, pending.session_id, raw=True) == transcript
    assert append(stub, pending.session_id, *batch[:2]).duplicates == 2
    assert code_of(lambda: acquire(stub, pending.session_key, "other", hours=1)) == grpc.StatusCode.FAILED_PRECONDITION
    assert stub.HasAnySessions(pb.HasAnySessionsRequest(), timeout=10).has_any_sessions is True
    assert get_or_create(stub, source("suspended")).entry.auto_reset_reason == "suspended"


def _config(tmp_path_factory: pytest.TempPathFactory, database: Path) -> Any:
    socket = tmp_path_factory.mktemp("sock") / "s.sock"
    return config_module.parse({"server": {"socket": str(socket)}, "storage": {"path": str(database)}})


@pytest.mark.sqlite_only
def test_newer_schema_is_refused(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    database = tmp_path / "newer.db"
    connection = apsw.Connection(str(database))
    connection.pragma("user_version", 99)
    connection.close()
    with pytest.raises(StorageError, match=re.escape(str(database))) as raised:
        create_server(_config(tmp_path_factory, database))
    assert "99" in str(raised.value)


@pytest.mark.sqlite_only
def test_garbage_file_is_refused(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    database = tmp_path / "garbage.db"
    database.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(StorageError, match=re.escape(str(database))):
        create_server(_config(tmp_path_factory, database))
    assert database.read_bytes() == bytes(range(256)) * 64  # left as it was, for recovery


@pytest.mark.sqlite_only
def test_second_daemon_on_the_same_database_is_refused(
    start_daemon: Start, clock: Clock, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    database = tmp_path / "shared.db"
    running = start_daemon({"storage": {"path": str(database)}}, clock=clock)
    key = get_or_create(running.stub).entry.session_key
    with pytest.raises(StorageError, match="in use"):
        create_server(_config(tmp_path_factory, database))
    assert get(running.stub, key).session_key == key  # the first one is unharmed


@pytest.mark.sqlite_only
def test_a_refused_database_does_not_keep_the_lock(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    database = tmp_path / "retry.db"
    database.write_bytes(b"garbage" * 1000)
    config = _config(tmp_path_factory, database)
    with pytest.raises(StorageError) as refused:  # a caller holding on to the error, as a supervisor may
        create_server(config)
    database.unlink()  # the operator moves the damaged file away and retries
    daemon = create_server(config)
    daemon.stop(0)
    assert "not a database" in str(refused.value)


def test_mark_expiry_finalized_requires_the_session_id(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    key = get_or_create(stub).entry.session_key
    request = pb.MarkExpiryFinalizedRequest(session_key=key)
    assert invalid_field(lambda: stub.MarkExpiryFinalized(request, timeout=10)) == "session_id"
    assert get(stub, key).expiry_finalized is False


def test_negative_active_minutes_is_invalid_argument(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(None, clock=clock).stub
    get_or_create(stub)
    request = pb.ListSessionsRequest(active_minutes=-1)
    assert invalid_field(lambda: stub.ListSessions(request, timeout=10)) == "active_minutes"
