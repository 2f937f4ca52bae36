"""The store's logic in process: a real ``SessionStore`` on a real database, no daemon, no gRPC.

The ``store`` and ``open_store`` fixtures (``conftest``) build what the daemon builds
(``open_storage``, ``new_store``) on a SQLite file in the test's directory, or with
``--backend=postgres`` on a fresh PostgreSQL schema, with the test's ``clock`` (at
``helpers.clock.START``, moved only by the test). The same behaviours are checked over the wire,
as the contract, in ``test_store_behaviour``; here a change of the store's logic is checked in
seconds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from helpers.clock import START, Clock
from sessiond.errors import Conflict, DeadlineExceeded, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from sessiond.model import Message, Source, Usage
from sessiond.storage.interface import AppendResult
from sessiond.store.session_store import SessionStore

Open = Callable[..., SessionStore]
SESSION_ID = re.compile(r"^\d{8}_\d{6}_[0-9a-f]{8}$")
DM = Source("telegram", "1001", chat_name="Alice")
UNKNOWN_KEY, UNKNOWN_ID = "agent:main:telegram:dm:nobody", "20260101_000000_deadbeef"
IDLE_1_MIN = {"reset": {"default": {"mode": "idle", "idle_minutes": 1, "time_zone": "UTC"}}}
NO_RESETS = {"reset": {"default": {"mode": "none"}}}
POLICIES = {
    "reset": {
        "default": {"mode": "idle", "idle_minutes": 60, "time_zone": "UTC"},
        "platforms": {"discord": {"mode": "none"}, "slack": {"mode": "idle", "idle_minutes": 120}},
        "chat_types": {"group": {"mode": "idle", "idle_minutes": 10, "time_zone": "UTC"}},
    }
}


def group(platform: str) -> Source:
    return Source(platform, "g", chat_type="group", user_id="u1")


def texts(messages: list[Message]) -> list[str | None]:
    return [m.content for m in messages]


def everything(store: SessionStore, session_id: str, raw: bool = False) -> list[Message]:
    return store.load(session_id, -1, 1000, raw)


# --------------------------------------------------------------------------- get_or_create and resets


def test_get_or_create_starts_a_session_then_returns_it_refreshed(store: SessionStore, clock: Clock) -> None:
    entry, created = store.get_or_create(DM)
    assert created is True and entry.version == 1
    assert entry.session_key == "agent:main:telegram:dm:1001"
    assert SESSION_ID.match(entry.session_id), entry.session_id
    assert entry.created_at == entry.updated_at == START
    assert (entry.origin, entry.display_name, entry.platform, entry.chat_type) == (DM, "Alice", "telegram", "dm")
    assert not (entry.was_auto_reset or entry.is_fresh_reset or entry.suspended or entry.resume_pending)
    clock.advance(minutes=3)
    again, created = store.get_or_create(DM)
    assert created is False
    assert (again.session_id, again.created_at, again.updated_at) == (entry.session_id, START, clock.now)
    assert again.version == entry.version + 1
    assert store.get(entry.session_key) == again
    other, created = store.get_or_create(Source("telegram", "1002"))
    assert created is True and other.session_id != entry.session_id


def test_an_idle_session_starts_over_saying_whether_it_was_used(open_store: Open, clock: Clock) -> None:
    store = open_store(IDLE_1_MIN)
    unused, used = Source("telegram", "unused"), Source("telegram", "used")
    first, _ = store.get_or_create(unused)
    store.update(store.get_or_create(used)[0].session_key, usage=Usage(input_tokens=10, total_tokens=15))
    clock.advance(minutes=1)  # exactly the idle limit: still fresh
    kept, created = store.get_or_create(unused)
    assert created is False and kept.session_id == first.session_id
    clock.advance(minutes=5)
    renewed, created = store.get_or_create(unused)
    assert created is True and renewed.session_id != first.session_id
    assert (renewed.was_auto_reset, renewed.auto_reset_reason, renewed.reset_had_activity) == (True, "idle", False)
    after_use, created = store.get_or_create(used)
    assert created is True and (after_use.auto_reset_reason, after_use.reset_had_activity) == ("idle", True)
    assert after_use.usage.total_tokens == 0  # the new session counts anew


def test_a_daily_reset_comes_once_after_its_hour_in_the_policy_zone(open_store: Open, clock: Clock) -> None:
    store = open_store({"reset": {"default": {"mode": "daily", "at_hour": 20, "time_zone": "Asia/Tokyo"}}})
    old, _ = store.get_or_create(DM)  # 19:00 in Tokyo
    clock.advance(minutes=59)
    assert store.get_or_create(DM)[0].session_id == old.session_id
    assert store.check_reset(START, "telegram", "dm") is None
    clock.advance(minutes=2)  # 20:01 in Tokyo
    assert store.check_reset(START, "telegram", "dm") == "daily"
    entry, created = store.get_or_create(DM)
    assert created is True and (entry.was_auto_reset, entry.auto_reset_reason) == (True, "daily")
    clock.advance(hours=3)  # the same day in Tokyo: no second reset
    assert store.get_or_create(DM)[0].session_id == entry.session_id


def test_the_platform_policy_decides_before_the_chat_type_one(open_store: Open, clock: Clock) -> None:
    store = open_store(POLICIES)
    assert store.policy_for("telegram", "group").idle_minutes == 10  # the chat type's
    assert store.policy_for("slack", "group").idle_minutes == 120  # the platform's, before the chat type's
    platforms = ("telegram", "slack", "discord")
    for platform in platforms:
        store.get_or_create(group(platform))
    clock.advance(minutes=30)
    assert {p: store.get_or_create(group(p))[1] for p in platforms} == {
        "telegram": True,  # the group policy: 10 minutes
        "slack": False,  # Slack's own: 120 minutes
        "discord": False,  # Discord's: never
    }
    clock.advance(days=400)
    assert store.get_or_create(group("discord"))[1] is False


def test_force_new_starts_over_without_an_auto_reset(store: SessionStore, clock: Clock) -> None:
    old, _ = store.get_or_create(DM)
    clock.advance(seconds=1)
    new, created = store.get_or_create(DM, force_new=True)
    assert created is True and new.session_id != old.session_id
    assert (new.was_auto_reset, new.auto_reset_reason, new.version) == (False, None, old.version + 1)
    assert store.get(old.session_key) == new
    events = [(e.kind, e.session_id, e.previous_session_id, e.reason) for e in store.events_after(0, 10).events]
    assert events == [("created", old.session_id, None, None), ("reset", new.session_id, old.session_id, "force_new")]


def test_a_suspended_session_starts_over_and_cannot_wait_for_a_resume(store: SessionStore) -> None:
    old, _ = store.get_or_create(DM)
    suspended = store.suspend(old.session_key)
    assert (suspended.suspended, suspended.session_id, suspended.version) == (True, old.session_id, old.version + 1)
    with pytest.raises(FailedPrecondition):
        store.mark_resume_pending(old.session_key, "restart_timeout")
    assert store.get(old.session_key) == suspended
    entry, created = store.get_or_create(DM)
    assert created is True and entry.session_id != old.session_id
    assert (entry.was_auto_reset, entry.auto_reset_reason, entry.suspended) == (True, "suspended", False)


def test_resume_pending_keeps_a_stale_session_until_cleared(open_store: Open, clock: Clock) -> None:
    store = open_store(IDLE_1_MIN)
    old, _ = store.get_or_create(DM)
    marked = store.mark_resume_pending(old.session_key, "restart_timeout")
    assert (marked.resume_pending, marked.resume_reason) == (True, "restart_timeout")
    assert marked.last_resume_marked_at == START
    clock.advance(minutes=30)
    kept, created = store.get_or_create(DM)
    assert created is False and kept.session_id == old.session_id
    assert (kept.resume_pending, kept.was_auto_reset, kept.updated_at) == (True, False, clock.now)
    cleared, entry = store.clear_resume_pending(old.session_key)
    assert cleared is True and entry.resume_pending is False
    assert entry.resume_reason is None and entry.last_resume_marked_at is None
    assert store.clear_resume_pending(old.session_key) == (False, entry)


def test_a_live_lease_keeps_a_session_fresh_until_it_lapses(open_store: Open, clock: Clock) -> None:
    store = open_store(IDLE_1_MIN)
    old, _ = store.get_or_create(DM)
    lease = store.acquire_lease(old.session_key, "job-1", timedelta(minutes=10))
    assert (lease.owner, lease.expires_at) == ("job-1", START + timedelta(minutes=10))
    with pytest.raises(FailedPrecondition):
        store.acquire_lease(old.session_key, "job-2", timedelta(minutes=1))
    assert store.release_lease(old.session_key, "job-2") is False  # not the holder
    clock.advance(minutes=7)  # idle for 7 minutes, but leased
    assert store.list_expired(100, None) == []
    kept, created = store.get_or_create(DM)
    assert created is False and kept.session_id == old.session_id
    clock.advance(minutes=4)  # the lease lapsed at 10:10, and the session is idle since 10:07
    assert [e.session_key for e in store.list_expired(100, None)] == [old.session_key]
    renewed, created = store.get_or_create(DM)
    assert created is True and renewed.auto_reset_reason == "idle"


# --------------------------------------------------------------------------- versions, pruning, look-ups

CHANGES: dict[str, Callable[[SessionStore, str, int, str], Any]] = {
    "update": lambda store, key, version, _: store.update(key, usage=Usage(total_tokens=7), expected_version=version),
    "suspend": lambda store, key, version, _: store.suspend(key, expected_version=version),
    "reset": lambda store, key, version, _: store.reset(key, expected_version=version),
    "switch": lambda store, key, version, earlier: store.switch(key, earlier, expected_version=version),
    "mark_resume_pending": lambda store, key, version, _: store.mark_resume_pending(key, "again", version),
    "clear_resume_pending": lambda store, key, version, _: store.clear_resume_pending(key, version),
}


@pytest.mark.parametrize("change", CHANGES)
def test_expected_version_guards_each_change(store: SessionStore, clock: Clock, change: str) -> None:
    earlier, _ = store.get_or_create(DM)
    key = earlier.session_key
    store.reset(key)
    current = store.mark_resume_pending(key, "restart_timeout")
    clock.advance(minutes=1)
    for stale in (current.version - 1, current.version + 1):
        with pytest.raises(Conflict, match="expected_version"):
            CHANGES[change](store, key, stale, earlier.session_id)
        assert store.get(key) == current
    CHANGES[change](store, key, current.version, earlier.session_id)
    assert store.get(key).version == current.version + 1


def test_prune_forgets_idle_entries_but_not_suspended_leased_ones_or_transcripts(
    open_store: Open, clock: Clock
) -> None:
    store = open_store({**NO_RESETS, "sessions": {"max_age_days": 3}})
    active, idle, suspended, leased = (store.get_or_create(Source("telegram", n))[0] for n in ("a", "i", "s", "l"))
    store.suspend(suspended.session_key)
    store.acquire_lease(leased.session_key, "job", timedelta(days=30))
    store.append(idle.session_id, [Message("user", "remember me")])
    clock.advance(days=10)
    store.update(active.session_key)  # created 10 days ago, active now
    assert store.prune(0) == store.prune(-5) == []
    assert store.prune(20) == []  # an explicit age wins over the configured one
    assert store.prune(dry_run=True) == [idle.session_key]
    assert store.get(idle.session_key) == idle  # a dry run removes nothing
    assert store.prune() == [idle.session_key]  # the configured sessions.max_age_days = 3
    with pytest.raises(NotFound):
        store.get(idle.session_key)
    assert [store.get(e.session_key).session_id for e in (active, suspended, leased)] == [
        active.session_id,
        suspended.session_id,
        leased.session_id,
    ]
    assert texts(everything(store, idle.session_id)) == ["remember me"]
    fresh, created = store.get_or_create(Source("telegram", "i"))
    assert created is True and fresh.session_id != idle.session_id and fresh.was_auto_reset is False


def test_find_names_the_entry_of_a_current_session_id_only(store: SessionStore, clock: Clock) -> None:
    entry, _ = store.get_or_create(DM)
    assert store.find(entry.session_id) == entry
    clock.advance(minutes=1)
    reset = store.reset(entry.session_key)
    assert (reset.is_fresh_reset, reset.origin, reset.created_at) == (True, DM, clock.now)
    assert store.find(reset.session_id) == reset
    with pytest.raises(NotFound):
        store.find(entry.session_id)  # ended: no key points at it any more


def test_unknown_keys_and_session_ids_are_not_found(store: SessionStore) -> None:
    key = store.get_or_create(DM)[0].session_key
    calls: list[Callable[[], object]] = [
        lambda: store.get(UNKNOWN_KEY),
        lambda: store.update(UNKNOWN_KEY),
        lambda: store.suspend(UNKNOWN_KEY),
        lambda: store.reset(UNKNOWN_KEY),
        lambda: store.mark_expiry_finalized(UNKNOWN_KEY, UNKNOWN_ID),
        lambda: store.switch(key, UNKNOWN_ID),
        lambda: store.append(UNKNOWN_ID, [Message("user", "x")]),
        lambda: store.rewrite(UNKNOWN_ID, [Message("user", "x")]),
        lambda: store.load(UNKNOWN_ID, -1, 10),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert store.has_any() is False  # one session only, and nothing was created
    assert store.append(UNKNOWN_ID, [Message("user", "x")], create=True).appended == 1  # a plugin writes by id
    assert texts(everything(store, UNKNOWN_ID)) == ["x"] and store.has_any() is True


# --------------------------------------------------------------------------- transcripts


def test_append_skips_the_message_ids_already_stored(store: SessionStore) -> None:
    session_id = store.get_or_create(DM)[0].session_id
    batch = [Message("user", "hi", message_id="m1"), Message("assistant", "hello", message_id="m2")]
    assert store.append(session_id, batch) == AppendResult(appended=2, duplicates=0, message_count=2)
    assert store.append(session_id, batch) == AppendResult(appended=0, duplicates=2, message_count=2)
    partial = [batch[1], Message("user", "new", message_id="m3")]
    assert store.append(session_id, partial) == AppendResult(appended=1, duplicates=1, message_count=3)
    same = [Message("user", "same"), Message("user", "same")]  # without ids: never duplicates
    assert store.append(session_id, same) == AppendResult(appended=2, duplicates=0, message_count=5)
    loaded = everything(store, session_id)
    assert texts(loaded) == ["hi", "hello", "new", "same", "same"]
    # A skipped duplicate leaves a gap: a position is never reused (both backends).
    assert [(m.message_id, m.position) for m in loaded] == [("m1", 0), ("m2", 1), ("m3", 3), ("", 4), ("", 5)]


def test_a_batch_over_the_transcript_limit_writes_nothing(open_store: Open) -> None:
    store = open_store({"limits": {"max_transcript_messages": 5}})
    session_id = store.get_or_create(DM)[0].session_id
    assert store.append(session_id, [Message("user", str(n)) for n in range(4)]).message_count == 4
    with pytest.raises(ResourceExhausted):
        store.append(session_id, [Message("user", "4", message_id="x"), Message("user", "5")])
    assert texts(everything(store, session_id)) == ["0", "1", "2", "3"]
    assert store.append(session_id, [Message("user", "4", message_id="x")]).appended == 1  # "x" was never stored


def test_load_replays_without_memory_context_unless_raw_and_pages_by_position(
    store: SessionStore, clock: Clock
) -> None:
    session_id = store.get_or_create(DM)[0].session_id
    user = "  <memory-context>\nlikes tea\n</memory-context>\n\nWhat's up?  "
    clock.advance(seconds=5)
    store.append(session_id, [Message("user", user), Message("assistant", " Sure "), Message("tool", "  result  ")])
    replayed = everything(store, session_id)
    assert texts(replayed) == ["What's up?", "Sure", "  result  "]  # a tool result is left as it is
    assert texts(everything(store, session_id, raw=True)) == [user, " Sure ", "  result  "]
    assert [m.position for m in replayed] == [0, 1, 2]
    assert {m.timestamp for m in replayed} == {clock.now}  # no timestamp sent: the store's clock
    assert texts(store.load(session_id, 0, 1)) == ["Sure"]  # after position 0, one message


def test_rewrite_replaces_the_transcript_and_its_message_ids(store: SessionStore) -> None:
    session_id = store.get_or_create(DM)[0].session_id
    store.append(session_id, [Message("user", "a", message_id="a"), Message("user", "b", message_id="b")])
    assert store.rewrite(session_id, [Message("user", "x", message_id="a"), Message("assistant", "y")]) == 2
    assert [(m.content, m.position) for m in everything(store, session_id)] == [("x", 0), ("y", 1)]
    assert store.append(session_id, [Message("user", "b", message_id="b")]).appended == 1  # "b" is gone
    assert store.append(session_id, [Message("user", "x", message_id="a")]).duplicates == 1
    repeated = [Message("user", "1", message_id="d"), Message("user", "2"), Message("user", "3", message_id="d")]
    with pytest.raises(InvalidArgument) as raised:
        store.rewrite(session_id, repeated)
    assert raised.value.field == "messages[2].message_id"
    assert texts(everything(store, session_id)) == ["x", "y", "b"]
    assert store.rewrite(session_id, []) == 0 and everything(store, session_id) == []


def test_a_read_past_its_deadline_is_stopped(store: SessionStore) -> None:
    """A query still running when the caller's deadline passes is stopped, not finished for nobody."""
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) SELECT count(*) FROM c"
    )
    with pytest.raises(DeadlineExceeded):
        store.storage.read(lambda tx: tx._one(endless), deadline=time.monotonic() + 0.05)  # type: ignore[attr-defined]
    with pytest.raises(DeadlineExceeded):
        store.storage.read(lambda tx: None, deadline=time.monotonic() - 1)
    assert store.storage.read(lambda tx: tx.has_two_sessions(), deadline=time.monotonic() + 10) is False
