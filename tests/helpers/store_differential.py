"""The stateful store's differential machinery: random operation sequences on the reference and on sessiond.

Used by ``test_store_differential`` (one daemon) and ``test_postgres`` (two daemons taking turns).

Each sequence runs on a fresh reference ``SessionStore`` (the oracle, under ``frozen_time``) and on
a fresh sessiond daemon (its own database and socket, stopped after the sequence) reached through
the drop-in ``SessionStoreClient``. Both read one clock: the oracle's frozen naive time, which the
daemon sees as the same instant in aware UTC. The daemon's reset policies name ``time_zone = "UTC"``
and the oracle's naive times are UTC by construction, so daily resets agree on any host zone
without touching ``TZ``.

After every operation its result is compared (entries field by field, booleans, counts, lists,
transcripts), and the entry of the key it touched; after every sequence the whole listing.
Session ids are random on both sides, so each side's ids are mapped to first-seen ordinals.

Known, documented differences, normalised or avoided here:
- ``force_new`` ends the old session in sessiond's database (the reference does not); not observable.
- SwitchSession to an id that was never created is NOT_FOUND in sessiond; the reference would
  point the key at it. Targets are always ids seen earlier in the sequence.
- AppendMessages to an unknown session id is NOT_FOUND in sessiond (the reference writes a JSONL
  file only); appends go to known ids only. LoadTranscript of an unknown id is [] on both.
- The reference may serve its JSONL copy of a transcript (when longer than SQLite); with plain
  text messages appended to existing sessions both copies have the same length and it serves
  SQLite, whose replay strips memory-context blocks and surrounding whitespace, as sessiond does.
- ``list_sessions`` orders by last activity on both; entries with equal ``updated_at`` come in the
  reference's dict insertion order and in sessiond's ``session_key`` order, so ties are compared
  as sets (each side's own order is checked to be by activity).

Both stores live in a memory file system (/dev/shm) where there is one: the reference fsyncs its
whole index on every call, and durability is not what these tests observe (test_crash does).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from helpers import cases
from helpers.reference import oracle
from sessiond.daemon import config as config_module
from sessiond.daemon.server import create_server
from sessiond_client.store_client import SessionStoreClient

SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # fsync costs nothing there

SOURCES: list[dict[str, Any]] = [
    {"platform": "telegram", "chat_id": "1001", "chat_type": "dm", "user_id": "u1", "user_name": "Ann"},
    {"platform": "telegram", "chat_id": "1001", "chat_type": "dm", "user_id": "u1", "thread_id": "t7"},
    {"platform": "discord", "chat_id": "g5", "chat_type": "group", "user_id": "u2", "chat_name": "Guild"},
    {"platform": "discord", "chat_id": "g5", "chat_type": "group", "user_id": "u4", "chat_name": "Guild"},
    {"platform": "slack", "chat_id": "C9", "chat_type": "group", "user_id": "u3", "thread_id": "th1"},
    {"platform": "slack", "chat_id": "C9", "chat_type": "group", "user_id": "u5", "thread_id": "th1"},
]
UNKNOWN_KEY = "agent:main:telegram:dm:nobody"
TEXTS = [
    "hello",
    "how are you?",
    "  padded on both sides \n",
    "<memory-context>recalled fact</memory-context>\nthe answer",
    "[System note: The following is recalled memory context, NOT new user input. "
    "Treat as informational background data.] remembered",
    "line one\nline two",
    "ünïcödé ☃ 🙂",
    "",
]
# Time steps, with every boundary of the policies, listings, pruning and recency checks below.
ADVANCES = [
    *({"seconds": n} for n in (1, 30, 59, 120)),
    *({"minutes": n} for n in (1, 5, 9, 10, 11, 29, 30, 31, 60, 119, 120, 121, 1439, 1440, 1441)),
    *({"hours": n} for n in (5, 23)),
    *({"days": n} for n in (1, 2, 3, 7, 8, 30, 31)),
]
ENTRY_FIELDS = (
    "session_key",
    "display_name",
    "chat_type",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "total_tokens",
    "estimated_cost_usd",
    "cost_status",
    "last_prompt_tokens",
    "was_auto_reset",
    "auto_reset_reason",
    "reset_had_activity",
    "is_fresh_reset",
    "expiry_finalized",
    "suspended",
    "resume_pending",
    "resume_reason",
)

# -- generated inputs ------------------------------------------------------------------------------

# The daily hour as an offset from the starting hour, mostly near it so that the clock often
# stands in the reset hour itself, a day or a few hours later.
hour_offsets = st.one_of(st.sampled_from([0, 1, 23, 5]), st.integers(0, 23))


@st.composite
def policies(draw: st.DrawFn, start_hour: int) -> dict[str, Any]:
    return {
        "mode": draw(st.sampled_from(["daily", "idle", "both", "none"])),
        "at_hour": (start_hour + draw(hour_offsets)) % 24,
        "idle_minutes": draw(st.sampled_from([1, 10, 30, 120, 1440])),
    }


@st.composite
def reset_configs(draw: st.DrawFn, start_hour: int) -> dict[str, Any]:
    """The oracle's ``reset`` table: a default policy, maybe a Discord and a chat-type override."""
    reset: dict[str, Any] = {"default": draw(policies(start_hour))}
    if draw(st.booleans()):
        reset["platforms"] = {"discord": draw(policies(start_hour))}
    if draw(st.booleans()):
        reset["chat_types"] = {draw(st.sampled_from(["dm", "group"])): draw(policies(start_hour))}
    return reset


# Resolved when the operation runs, modulo what exists then: a source or key (mostly one that
# has had a session, else any, including a key no source has) or a session id seen so far.
pick = st.integers(0, 10_000)
source_index = key_index = pick
messages = st.lists(st.tuples(st.sampled_from(["user", "assistant"]), st.sampled_from(TEXTS)), max_size=4)

OPERATIONS: dict[str, tuple[int, st.SearchStrategy[tuple[Any, ...]]]] = {
    # name: (weight, arguments); activity and time passing dominate so that resets happen
    "get": (6, st.tuples(source_index, st.sampled_from([False, False, False, False, True]))),
    "advance": (5, st.tuples(st.sampled_from(ADVANCES))),
    "update": (2, st.tuples(key_index, st.one_of(st.none(), st.integers(0, 200_000)))),
    "usage": (1, st.tuples(key_index, st.sampled_from([0, 1, 250, 4096]), st.sampled_from([0.0, 0.25, 1.5]))),
    "suspend": (1, st.tuples(key_index)),
    "mark_resume": (1, st.tuples(key_index, st.sampled_from(["restart_timeout", "shutdown", None]))),
    "clear_resume": (1, st.tuples(key_index)),
    "suspend_recent": (1, st.tuples(st.sampled_from([0, 1, 30, 120, 3600, 86400]))),
    "reset": (1, st.tuples(key_index)),
    "switch": (2, st.tuples(key_index, pick)),
    "prune": (2, st.tuples(st.sampled_from([1, 2, 7, 30, 0, -1]))),
    "list": (1, st.tuples(st.sampled_from([None, 0, 1, 5, 60, 1440]))),
    "append": (2, st.tuples(pick, st.sampled_from(["user", "assistant"]), st.sampled_from(TEXTS))),
    "rewrite": (1, st.tuples(pick, messages)),
    "load": (1, st.tuples(st.one_of(pick, st.none()))),
    "has_any": (1, st.just(())),
}


@st.composite
def operations(draw: st.DrawFn) -> tuple[Any, ...]:
    """One operation: its name (drawn by weight) and its arguments."""
    name = draw(st.sampled_from([name for name, (weight, _) in OPERATIONS.items() for _ in range(weight)]))
    return (name, *draw(OPERATIONS[name][1]))


sequences = st.lists(operations(), min_size=8, max_size=26)
starts = st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31))

# -- the two stores --------------------------------------------------------------------------------


class Ordinals:
    """One side's session ids, numbered in the order they were first seen."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.numbers: dict[str, int] = {}

    def of(self, session_id: str) -> int:
        if session_id not in self.numbers:
            self.numbers[session_id] = len(self.ids)
            self.ids.append(session_id)
        return self.numbers[session_id]


def _naive_utc(value: datetime | None) -> datetime | None:
    """The daemon's aware UTC times as the oracle's naive ones (the same instants)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _platform(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def normal_entry(entry: Any, ordinals: Ordinals) -> dict[str, Any] | None:
    """An entry of either side in one comparable shape."""
    if entry is None:
        return None
    origin = entry.origin.to_dict() if entry.origin is not None else None
    if origin is not None:
        origin["platform"] = _platform(origin["platform"])
    return {
        **{name: getattr(entry, name) for name in ENTRY_FIELDS},
        "session": ordinals.of(entry.session_id),
        "created_at": _naive_utc(entry.created_at),
        "updated_at": _naive_utc(entry.updated_at),
        "last_resume_marked_at": _naive_utc(entry.last_resume_marked_at),
        "platform": _platform(entry.platform),
        "origin": origin,
    }


def normal_listing(entries: list[Any], ordinals: Ordinals) -> list[tuple[datetime, list[dict[str, Any]]]]:
    """Entries grouped by ``updated_at`` in listing order; within a group sorted by key (ties)."""
    rows = [normal_entry(e, ordinals) for e in entries]
    groups: list[tuple[datetime, list[dict[str, Any]]]] = []
    for row in rows:
        assert row is not None
        if groups and groups[-1][0] == row["updated_at"]:
            groups[-1][1].append(row)
        else:
            groups.append((row["updated_at"], [row]))
    times = [when for when, _ in groups]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times), "not most recent first"
    return [(when, sorted(group, key=lambda r: r["session_key"])) for when, group in groups]


@dataclass
class Pair:
    """The oracle store and the daemon client, driven in lockstep."""

    reference: Any
    ours: SessionStoreClient
    clock: Any
    keys: list[str]
    stats: Counter[str]
    ref_ids: Ordinals = field(default_factory=Ordinals)
    our_ids: Ordinals = field(default_factory=Ordinals)
    ref_sources: list[Any] = field(default_factory=list)
    history: dict[str, list[int]] = field(default_factory=dict)  # key -> ordinals it pointed at

    def same(self, what: str, reference: Any, ours: Any) -> Any:
        assert ours == reference, f"{what}: sessiond {ours!r} != reference {reference!r}"
        return ours

    def note(self, outcome: str, happened: Any) -> None:
        """Count an outcome worth reaching (printed, so a weak generator shows)."""
        if happened:
            self.stats[outcome] += 1

    def same_entry(self, what: str, reference: Any, ours: Any) -> None:
        entry = self.same(what, normal_entry(reference, self.ref_ids), normal_entry(ours, self.our_ids))
        if entry is not None:
            seen = self.history.setdefault(entry["session_key"], [])
            if entry["session"] not in seen:
                seen.append(entry["session"])

    def key_at(self, number: int) -> str:
        """Mostly a key that has had a session; one in eight picks, any key (maybe never used)."""
        used = [key for key in self.keys if key in self.history]
        if not used or number % 8 == 0:
            return self.keys[number % len(self.keys)]
        return used[number % len(used)]

    def same_state_of(self, key: str) -> None:
        """The key's entry as each side holds it now (the reference's index, sessiond's GetSession)."""
        self.same_entry(f"entry of {key}", self.reference._entries.get(key), self.ours.get_session(key))

    def ids_at(self, number: int) -> tuple[str, str]:
        self.same("ids seen", len(self.ref_ids.ids), len(self.our_ids.ids))
        index = number % len(self.ref_ids.ids)
        return self.ref_ids.ids[index], self.our_ids.ids[index]

    def run(self, op: tuple[Any, ...]) -> None:
        name, *args = op
        self.stats["operations"] += 1
        self.stats[name] += 1
        getattr(self, f"op_{name}")(*args)

    # -- the operations

    def op_get(self, number: int, force_new: bool) -> None:
        used = [i for i, key in enumerate(self.keys[: len(SOURCES)]) if key in self.history]
        index = used[number % len(used)] if used and number % 3 else number % len(SOURCES)
        known = len(self.ref_ids.ids)
        reference = self.reference.get_or_create_session(self.ref_sources[index], force_new=force_new)
        ours = self.ours.get_or_create_session(SOURCES[index], force_new=force_new)
        self.same_entry(f"get_or_create_session({index}, force_new={force_new})", reference, ours)
        self.same("key", ours.session_key, self.keys[index])
        if len(self.ref_ids.ids) > known:
            self.stats[f"new session: {ours.auto_reset_reason or ('forced' if force_new else 'no entry')}"] += 1
            self.note("new session after activity", ours.reset_had_activity)

    def op_update(self, index: int, last_prompt_tokens: int | None) -> None:
        key = self.key_at(index)
        self.same(
            "update_session",
            self.reference.update_session(key, last_prompt_tokens=last_prompt_tokens),
            self.ours.update_session(key, last_prompt_tokens=last_prompt_tokens),
        )
        self.same_state_of(key)

    def op_usage(self, index: int, tokens: int, cost: float) -> None:
        """Activity with token usage. The reference's ``update_session`` takes no usage: its host
        added the counters to the entry object itself, as done here; sessiond takes deltas."""
        key = self.key_at(index)
        self.reference.update_session(key)
        entry = self.reference._entries.get(key)
        if entry is not None:
            entry.input_tokens += tokens
            entry.output_tokens += tokens // 2
            entry.total_tokens += tokens + tokens // 2
            entry.estimated_cost_usd += cost
        delta = {"input_tokens": tokens, "output_tokens": tokens // 2, "total_tokens": tokens + tokens // 2}
        self.ours.update_session(key, **delta, estimated_cost_usd=cost)
        self.same_state_of(key)

    def op_suspend(self, index: int) -> None:
        key = self.key_at(index)
        self.note(
            "suspended", self.same("suspend", self.reference.suspend_session(key), self.ours.suspend_session(key))
        )
        self.same_state_of(key)

    def op_mark_resume(self, index: int, reason: str | None) -> None:
        key = self.key_at(index)
        kwargs = {} if reason is None else {"reason": reason}
        marked = self.same(
            f"mark_resume_pending({reason})",
            self.reference.mark_resume_pending(key, **kwargs),
            self.ours.mark_resume_pending(key, **kwargs),
        )
        self.note("marked resume pending", marked)
        self.same_state_of(key)

    def op_clear_resume(self, index: int) -> None:
        key = self.key_at(index)
        cleared = self.same(
            "clear_resume_pending", self.reference.clear_resume_pending(key), self.ours.clear_resume_pending(key)
        )
        self.note("cleared resume pending", cleared)
        self.same_state_of(key)

    def op_suspend_recent(self, seconds: int) -> None:
        count = self.same(
            f"suspend_recently_active({seconds})",
            self.reference.suspend_recently_active(seconds),
            self.ours.suspend_recently_active(seconds),
        )
        self.note("suspend_recently_active marked some", count)

    def op_reset(self, index: int) -> None:
        key = self.key_at(index)
        reference = self.reference.reset_session(key)
        self.same_entry("reset_session", reference, self.ours.reset_session(key))
        self.note("reset", reference)
        self.same_state_of(key)

    def op_switch(self, index: int, number: int) -> None:
        key = self.key_at(index)
        if not self.ref_ids.ids:
            return  # nothing to switch to yet
        own = self.history.get(key, [])
        ref_target, our_target = self.ids_at(own[number % len(own)] if own and number % 2 else number)
        before = self.reference._entries.get(key)
        reference = self.reference.switch_session(key, ref_target)
        self.same_entry("switch_session", reference, self.ours.switch_session(key, our_target))
        self.note("switched", reference is not None and reference is not before)
        self.same_state_of(key)

    def op_prune(self, days: int) -> None:
        count = self.same(
            f"prune_old_entries({days})", self.reference.prune_old_entries(days), self.ours.prune_old_entries(days)
        )
        self.note("pruned some", count)

    def op_list(self, minutes: int | None) -> None:
        listed = self.same(
            f"list_sessions({minutes})",
            normal_listing(self.reference.list_sessions(active_minutes=minutes), self.ref_ids),
            normal_listing(self.ours.list_sessions(active_minutes=minutes), self.our_ids),
        )
        self.note("listings with ties", any(len(group) > 1 for _, group in listed))

    def op_advance(self, delta: dict[str, int]) -> None:
        self.clock.advance(**delta)

    def op_append(self, number: int, role: str, text: str) -> None:
        if not self.ref_ids.ids:
            return
        ref_id, our_id = self.ids_at(number)
        message = {"role": role, "content": text}
        self.same(
            "append_to_transcript",
            self.reference.append_to_transcript(ref_id, dict(message)),
            self.ours.append_to_transcript(our_id, dict(message)),
        )
        self.op_load(number)

    def op_rewrite(self, number: int, contents: list[tuple[str, str]]) -> None:
        if not self.ref_ids.ids:
            return
        ref_id, our_id = self.ids_at(number)
        transcript = [{"role": role, "content": text} for role, text in contents]
        self.same(
            "rewrite_transcript",
            self.reference.rewrite_transcript(ref_id, [dict(m) for m in transcript]),
            self.ours.rewrite_transcript(our_id, [dict(m) for m in transcript]),
        )
        self.op_load(number)

    def op_load(self, number: int | None) -> None:
        if number is None or not self.ref_ids.ids:
            ref_id, our_id = "20200101_000000_deadbeef", "20200101_000000_deadbeef"  # never created
        else:
            ref_id, our_id = self.ids_at(number)
        loaded = self.same("load_transcript", self.reference.load_transcript(ref_id), self.ours.load_transcript(our_id))
        self.note("non-empty transcripts loaded", loaded)

    def op_has_any(self) -> None:
        self.note(
            "has_any_sessions true",
            self.same("has_any", self.reference.has_any_sessions(), self.ours.has_any_sessions()),
        )

    def finish(self) -> None:
        """The whole state: every entry, and every transcript of every id seen."""
        self.op_list(None)
        for number in range(len(self.ref_ids.ids)):
            self.op_load(number)
        self.op_has_any()


# Starts sessiond for one sequence: (config data, clock, scratch directory) -> a drop-in client.
Connect = Callable[[dict[str, Any], Callable[[], datetime], Path], AbstractContextManager[Any]]


@contextmanager
def daemon_client(
    data: dict[str, Any], clock: Callable[[], datetime], directory: Path, storage: dict[str, Any]
) -> Iterator[SessionStoreClient]:
    """A daemon of its own for one sequence (``storage``: a fresh database), and a drop-in client to it."""
    data = {**data, "server": {"socket": str(directory / "sessiond.sock")}, "storage": storage}
    daemon = create_server(config_module.parse(data), clock=clock)
    daemon.start()
    client = SessionStoreClient(daemon.addresses[0], timeout=10, aware_times=True)
    try:
        yield client
    finally:
        client.close()
        daemon.stop(0)


def sessiond_data(oracle_config: dict[str, Any]) -> dict[str, Any]:
    """sessiond's config data: the rules as ``cases.config_data``, every policy's zone UTC."""
    data = cases.config_data({k: v for k, v in oracle_config.items() if k != "reset"})
    reset = oracle_config["reset"]
    data["reset"] = {
        "default": {**reset["default"], "time_zone": "UTC"},
        "platforms": {name: {**p, "time_zone": "UTC"} for name, p in reset.get("platforms", {}).items()},
        "chat_types": {name: {**p, "time_zone": "UTC"} for name, p in reset.get("chat_types", {}).items()},
    }
    return data


def run_sequence(
    oracle_config: dict[str, Any], start: datetime, ops: list[tuple[Any, ...]], stats: Counter[str], connect: Connect
) -> None:
    options = {k: oracle_config[k] for k in ("group_sessions_per_user",) if k in oracle_config}
    keys = [oracle.session_key(s, config=oracle_config, **options) for s in SOURCES] + [UNKNOWN_KEY]
    with tempfile.TemporaryDirectory(prefix="sd-diff-", dir=SCRATCH) as tmp, oracle.frozen_time(start) as clock:
        directory = Path(tmp)
        reference = oracle.make_store(directory / "oracle", oracle_config)
        try:
            with connect(sessiond_data(oracle_config), lambda: clock.now.replace(tzinfo=UTC), directory) as ours:
                pair = Pair(reference, ours, clock, keys, stats)
                pair.ref_sources = [oracle.make_source(s, oracle_config) for s in SOURCES]
                for op in ops:
                    pair.run(op)
                pair.finish()
        finally:
            if reference._db is not None:
                reference._db.close()
    stats["sequences"] += 1
