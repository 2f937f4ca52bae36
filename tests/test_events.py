"""WatchSessionEvents and the daemon's maintenance (issue 8, "Events instead of polling").

Real daemons on temp sockets with an injected clock. Nothing sleeps to synchronise: a test
waits for the events themselves, each read bounded by its stream's deadline (a missing event
fails as DEADLINE_EXCEEDED), and maintenance runs every 50 ms of real time while the clock it
judges ages by moves only when a test advances it.

- every operation that changes a key writes its event, with its reason, previous id, entry
  version and time, and nothing else does (rejected and no-op calls write none);
- a consumer that disconnects and comes back with its cursor gets exactly the events it missed,
  in order, also from a restarted daemon on the same database; sequences go on, never reused;
- concurrent writers: a consumer sees strictly consecutive sequences, and each key's changes
  in the order they were acknowledged;
- a kinds filter still moves the cursor; a cursor whose events retention deleted, or one ahead
  of the log, gets OUT_OF_RANGE telling the client to resync;
- maintenance: expiry (leased sessions only once their lease lapses, each session once),
  lapsed leases and prunes appear as events; checkpoints empty the WAL; a failing job is logged
  and runs again;
- a stream ends at its deadline, and at daemon stop at once (not after stop(grace=60)'s grace);
- the Python client's ``watch_events``, an expiry watcher as a stream consumer;
- a database of the previous schema is migrated and starts its log at 1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import apsw
import grpc
import pytest

from helpers.clock import Clock
from helpers.daemons import Running
from helpers.events import STREAM_SECONDS, Stream
from helpers.wire import GROUP, acquire, get_or_create, invalid_field, key_of, source, when
from sessiond.daemon import config as config_module
from sessiond.daemon.maintenance import Maintenance
from sessiond.daemon.server import new_store
from sessiond.model import Entry, Source
from sessiond.storage.interface import DaemonStorage
from sessiond.storage.sqlite import MIGRATIONS, SqliteStorage
from sessiond.store.session_store import EXPIRY_BATCH, PRUNE_BATCH
from sessiond_client import SessionStoreClient
from sessiond_client.errors import InvalidArgumentError, OutOfRangeError, UnavailableError
from sessiond_client.v1 import events_pb2
from sessiond_client.v1 import session_store_pb2 as pb

Start = Callable[..., Running]
Event = events_pb2.SessionEvent
K = events_pb2.EventKind
TICK = 0.05  # maintenance interval in tests (real seconds)
MAINTENANCE_OFF = {"prune_seconds": 0, "lease_sweep_seconds": 0, "checkpoint_seconds": 0, "search_index_seconds": 0}
POLICIES = {
    "default": {"mode": "idle", "idle_minutes": 60, "time_zone": "UTC"},
    "chat_types": {"group": {"mode": "daily", "at_hour": 4, "time_zone": "UTC"}},
}
QUIET = {"reset": POLICIES, "maintenance": MAINTENANCE_OFF}  # events come from RPCs only


def log_of(stub: Any, after: int = 0, **request: Any) -> list[Event]:
    """The whole retained log after ``after``: one catch-up page (the tests write far fewer than 500)."""
    stream = Stream(stub, after_sequence=after, **request)
    stream.close()
    return list(stream.pending)


def shape(event: Event) -> tuple[Any, ...]:
    previous = event.previous_session_id if event.HasField("previous_session_id") else None
    reason = event.reason if event.HasField("reason") else None
    return K.Name(event.kind), event.session_key, event.session_id, previous, reason, event.entry_version


def kinds_and_keys(events: list[Event]) -> set[tuple[str, str]]:
    return {(K.Name(e.kind), e.session_key) for e in events}


def status_of(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


# --------------------------------------------------------------------------- each kind


def test_each_change_writes_its_event_and_nothing_else_does(start_daemon: Start, clock: Clock) -> None:
    stub = start_daemon(QUIET, clock=clock).stub
    stream = Stream(stub, from_now=True)
    expected: list[tuple[Any, ...]] = []
    times = []

    def expect(kind: str, entry: Any, previous: str | None = None, reason: str | None = None) -> None:
        expected.append((f"EVENT_KIND_{kind}", entry.session_key, entry.session_id, previous, reason, entry.version))
        times.append(clock.now)

    first = get_or_create(stub, source("a")).entry
    expect("CREATED", first)
    key = first.session_key
    forced = get_or_create(stub, source("a"), force_new=True).entry
    expect("RESET", forced, first.session_id, "force_new")
    clock.advance(seconds=1)
    reset = stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10).entry
    expect("RESET", reset, forced.session_id, "reset")
    switch = pb.SwitchSessionRequest(session_key=key, target_session_id=first.session_id)
    expect("SWITCHED", stub.SwitchSession(switch, timeout=10).entry, reset.session_id)
    assert not stub.SwitchSession(switch, timeout=10).switched  # already there: no event
    suspended = stub.SuspendSession(pb.SuspendSessionRequest(session_key=key), timeout=10).entry
    expect("SUSPENDED", suspended)
    refused = status_of(lambda: stub.MarkResumePending(pb.MarkResumePendingRequest(session_key=key), timeout=10))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION  # suspended: no event
    after_suspension = get_or_create(stub, source("a")).entry
    expect("AUTO_RESET", after_suspension, first.session_id, "suspended")
    clock.advance(minutes=61)
    idle = get_or_create(stub, source("a")).entry
    expect("AUTO_RESET", idle, after_suspension.session_id, "idle")
    group = get_or_create(stub, source("g", chat_type=GROUP)).entry
    expect("CREATED", group)
    clock.advance(hours=18)  # past 04:00 UTC: the group's daily reset
    daily = get_or_create(stub, source("g", chat_type=GROUP)).entry
    expect("AUTO_RESET", daily, group.session_id, "daily")
    stale = pb.ResetSessionRequest(session_key=key, expected_version=1)
    assert status_of(lambda: stub.ResetSession(stale, timeout=10)).code() == grpc.StatusCode.ABORTED  # no event
    pending = stub.MarkResumePending(pb.MarkResumePendingRequest(session_key=key), timeout=10).entry
    expect("RESUME_PENDING", pending, reason="restart_timeout")
    stub.ClearResumePending(pb.ClearResumePendingRequest(session_key=key), timeout=10)  # no event
    stub.UpdateSession(pb.UpdateSessionRequest(session_key=daily.session_key), timeout=10)  # no event
    stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=10)  # no event
    marked = stub.SuspendRecentlyActive(pb.SuspendRecentlyActiveRequest(max_age_seconds=60), timeout=10)
    assert marked.count == 1  # the group entry, just updated
    interrupted = stub.GetSession(pb.GetSessionRequest(session_key=daily.session_key), timeout=10).entry
    expect("RESUME_PENDING", interrupted, reason="restart_interrupted")
    leased = get_or_create(stub, source("l")).entry
    expect("CREATED", leased)
    acquire(stub, leased.session_key, "job-1", minutes=1)
    clock.advance(minutes=2)
    acquire(stub, leased.session_key, "job-2", minutes=1)  # the lapse of job-1's lease is announced first
    expect("LEASE_EXPIRED", leased)
    clock.advance(days=2)
    before_prune = {e.session_key: e for e in stub.ListSessions(pb.ListSessionsRequest(), timeout=10).entries}
    assert stub.PruneOldEntries(pb.PruneOldEntriesRequest(max_age_days=1), timeout=10).count == 3
    for entry in sorted(before_prune.values(), key=lambda e: e.session_key):
        expect("PRUNED", entry)

    seen = stream.take(len(expected))
    pruned = len(before_prune)
    in_order = [shape(e) for e in seen[:-pruned]] + sorted(shape(e) for e in seen[-pruned:])  # one DELETE
    assert in_order == expected
    assert [when(e.time) for e in seen] == times
    assert seen[-4].lease_owner == "job-1"
    assert [e.sequence for e in seen] == list(range(seen[0].sequence, seen[0].sequence + len(seen)))
    assert [shape(e) for e in log_of(stub)] == [shape(e) for e in seen]  # nothing else was written


# --------------------------------------------------------------------------- resuming


def test_a_consumer_that_reconnects_gets_exactly_what_it_missed(
    start_daemon: Start, clock: Clock, tmp_path: Path
) -> None:
    data = {**QUIET, "storage": {"path": str(tmp_path / "sessiond.db")}}
    running = start_daemon(data, clock=clock)
    keys = [key_of(running.stub, f"k{i}") for i in range(10)]
    consumer = Stream(running.stub, after_sequence=0)
    seen = consumer.take(4)
    consumer.close()
    cursor = seen[-1].sequence
    for key in keys[:5]:
        running.stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10)
    missed = log_of(running.stub)[4:]
    assert len(missed) == 11
    again = Stream(running.stub, after_sequence=cursor)
    assert list(again.pending) == missed and again.cursor == missed[-1].sequence
    seen += again.take(3)  # ... and the consumer goes away again, with the daemon this time
    again.close()
    running.channel.close()
    running.daemon.stop(0)

    running = start_daemon(data, clock=clock)  # the same database
    for key in keys[5:]:
        running.stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10)
    resumed = Stream(running.stub, after_sequence=seen[-1].sequence)
    seen += resumed.pending
    everything = log_of(running.stub)
    assert seen == everything
    assert [e.sequence for e in everything] == list(range(1, 21))  # no gap, no duplicate, none reused
    assert {K.Name(e.kind) for e in everything[15:]} == {"EVENT_KIND_RESET"}


def test_concurrent_writers_are_seen_in_commit_order_without_gaps(start_daemon: Start) -> None:
    stub = start_daemon({"maintenance": MAINTENANCE_OFF}).stub
    stream = Stream(stub, from_now=True)
    start = stream.cursor
    writers, changes = 8, 25
    acknowledged: dict[str, list[str]] = {}

    def write(number: int) -> None:
        ids = [get_or_create(stub, source(f"w{number}"), force_new=True).entry for _ in range(changes)]
        acknowledged[ids[0].session_key] = [entry.session_id for entry in ids]

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    events = stream.take(writers * changes)  # read while they write
    for thread in threads:
        thread.join()
    assert [e.sequence for e in events] == list(range(start + 1, start + 1 + writers * changes))
    per_key: dict[str, list[str]] = {}
    for event in events:
        per_key.setdefault(event.session_key, []).append(event.session_id)
    assert per_key == acknowledged


def test_a_kinds_filter_still_moves_the_cursor(start_daemon: Start) -> None:
    stub = start_daemon(QUIET).stub
    resets = Stream(stub, kinds=[K.EVENT_KIND_RESET, K.EVENT_KIND_SWITCHED])
    key = key_of(stub, "x")
    stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=10)
    key_of(stub, "y")
    newest = log_of(stub)[-1].sequence
    assert [K.Name(e.kind) for e in resets.until(newest)] == ["EVENT_KIND_RESET"]
    assert resets.cursor == newest  # past the created events it skipped
    assert not log_of(stub, newest, kinds=[K.EVENT_KIND_RESET])


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"after_sequence": -1}, "after_sequence"),
        ({"after_sequence": 3, "from_now": True}, "from_now"),
        ({"kinds": [K.EVENT_KIND_UNSPECIFIED]}, "kinds[0]"),
        ({"kinds": [K.EVENT_KIND_CREATED, 99]}, "kinds[1]"),
    ],
)
def test_bad_requests_name_their_field(start_daemon: Start, request_fields: dict[str, Any], field: str) -> None:
    stub = start_daemon(QUIET).stub
    assert invalid_field(lambda: Stream(stub, **request_fields)) == field


# --------------------------------------------------------------------------- out of range


def test_a_cursor_past_retention_or_ahead_of_the_log_is_out_of_range(start_daemon: Start, clock: Clock) -> None:
    """Retention runs at the prune interval, right after the prune: a prune seen in the next round
    means the previous round's retention is done (one thread runs the jobs in turn)."""
    maintenance = {**MAINTENANCE_OFF, "prune_seconds": TICK, "event_retention_days": 1}
    stub = start_daemon({"maintenance": maintenance, "sessions": {"max_age_days": 2}}, clock=clock).stub
    stream = Stream(stub, from_now=True)
    key_of(stub, "old-1")
    key_of(stub, "old-2")
    early = stream.take(2)
    clock.advance(days=3)
    assert kinds_and_keys(stream.take(2)) == {("EVENT_KIND_PRUNED", e.session_key) for e in early}
    last = key_of(stub, "last")
    stream.take(1)
    clock.advance(days=3)
    assert kinds_and_keys(stream.take(1)) == {("EVENT_KIND_PRUNED", last)}

    gone = status_of(lambda: Stream(stub, after_sequence=early[0].sequence))
    assert gone.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "no longer retained" in gone.details() and "ListSessions" in gone.details()
    assert log_of(stub)[0].sequence > early[1].sequence  # 0: from the oldest retained, no error
    ahead = status_of(lambda: Stream(stub, after_sequence=1000))
    assert ahead.code() == grpc.StatusCode.OUT_OF_RANGE and "ahead of the newest event" in ahead.details()


# --------------------------------------------------------------------------- maintenance


def test_maintenance_announces_expiry_lapsed_leases_and_prunes(start_daemon: Start, clock: Clock) -> None:
    maintenance = {**MAINTENANCE_OFF, "prune_seconds": TICK, "lease_sweep_seconds": TICK}
    data = {"reset": POLICIES, "maintenance": maintenance, "sessions": {"max_age_days": 2}}
    stub = start_daemon(data, clock=clock).stub
    stream = Stream(stub, from_now=True)
    a, b, c = (key_of(stub, name) for name in "abc")
    acquire(stub, b, "job", hours=3)
    stream.take(3)
    clock.advance(minutes=90)  # a and c idle past 60 minutes; b leased
    expired = stream.take(2)
    assert kinds_and_keys(expired) == {("EVENT_KIND_EXPIRED", a), ("EVENT_KIND_EXPIRED", c)}
    assert {e.reason for e in expired} == {"idle"}
    listed = stub.ListExpiredSessions(pb.ListExpiredSessionsRequest(), timeout=10).entries
    assert {e.session_key for e in listed} == {a, c}
    clock.advance(hours=3)  # b's lease lapses: swept and announced, then b expires too; a and c not again
    assert kinds_and_keys(stream.take(2)) == {("EVENT_KIND_LEASE_EXPIRED", b), ("EVENT_KIND_EXPIRED", b)}
    clock.advance(days=3)
    assert kinds_and_keys(stream.take(3)) == {("EVENT_KIND_PRUNED", key) for key in (a, b, c)}
    announced = [e.session_key for e in log_of(stub) if e.kind == K.EVENT_KIND_EXPIRED]
    assert sorted(announced) == [a, b, c]


@pytest.mark.sqlite_only
def test_scans_and_prunes_in_batches_announce_each_entry_once(tmp_path: Path, clock: Clock) -> None:
    """In-process, on the store: more entries than one batch of the expiry scan and of the prune."""
    storage = SqliteStorage(tmp_path / "sessiond.db", durable=False)
    store = new_store(storage, config_module.parse({"reset": POLICIES}), clock)
    count = max(2 * EXPIRY_BATCH, PRUNE_BATCH) + 1
    origins = [Source("telegram", f"c{i}") for i in range(count)]
    storage.write(
        lambda tx: [tx.put_entry(Entry.started(f"k{i}", f"s{i}", s, clock.now)) for i, s in enumerate(origins)]
    )
    try:
        clock.advance(minutes=61)
        assert store.announce_expired() == count
        assert store.announce_expired() == 0
        store.suspend("k7")  # a new version, still expired: announced anew
        assert store.announce_expired() == 1
        clock.advance(days=91)
        assert store.prune_in_batches() == count - 1  # all but the suspended one
        events = store.events_after(0, 10 * count).events
        announced = [(e.session_key, e.version) for e in events if e.kind == "expired"]
        assert len(announced) == len(set(announced)) == count + 1
        pruned = {e.session_key for e in events if e.kind == "pruned"}
        assert pruned == {f"k{i}" for i in range(count)} - {"k7"}
    finally:
        storage.close()


class Records(logging.Handler):
    """Log records of one logger, and a way to wait for one."""

    def __init__(self, logger: str, caplog: pytest.LogCaptureFixture):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.arrived = threading.Condition()
        caplog.set_level(logging.INFO, logger=logger)  # restored after the test
        logging.getLogger(logger).addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        with self.arrived:
            self.records.append(record)
            self.arrived.notify_all()

    def wait_for(self, match: Callable[[logging.LogRecord], bool], timeout: float = STREAM_SECONDS) -> Any:
        with self.arrived:
            assert self.arrived.wait_for(lambda: any(map(match, self.records)), timeout), self.records
        return next(r for r in self.records if match(r))

    def wait_until(self, done: Callable[[list[logging.LogRecord]], bool]) -> list[logging.LogRecord]:
        """Wait until ``done`` holds for the records logged so far (checked as each arrives)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: done(self.records), STREAM_SECONDS), self.records
            return list(self.records)


@pytest.fixture
def maintenance_log(caplog: pytest.LogCaptureFixture) -> Iterator[Records]:
    records = Records("sessiond.maintenance", caplog)
    yield records
    logging.getLogger("sessiond.maintenance").removeHandler(records)


@pytest.mark.sqlite_only
def test_checkpoints_empty_the_wal(start_daemon: Start, maintenance_log: Records, tmp_path: Path) -> None:
    database = tmp_path / "sessiond.db"
    maintenance = {**MAINTENANCE_OFF, "checkpoint_seconds": TICK}
    stub = start_daemon({"maintenance": maintenance, "storage": {"path": str(database)}}).stub
    key_of(stub, "wal")
    written = len(maintenance_log.records)
    wal = Path(f"{database}-wal")

    def emptied_after_the_write(records: list[logging.LogRecord]) -> bool:
        # A checkpoint logged just after the write may have begun before it committed (a busy
        # machine); the WAL is empty once one that began after it has run, and each is logged.
        checkpoints = [r for r in records[written:] if getattr(r, "job", "") == "checkpoint"]
        return bool(checkpoints) and wal.stat().st_size == 0

    records = maintenance_log.wait_until(emptied_after_the_write)
    after = [r for r in records[written:] if getattr(r, "job", "") == "checkpoint"]
    assert after[0].wal_bytes > 0 and all(line.busy == 0 for line in after)


def test_a_failing_job_is_logged_and_runs_again(start_daemon: Start, maintenance_log: Records) -> None:
    running = start_daemon({"maintenance": MAINTENANCE_OFF})
    results: Iterator[tuple[bool, int]] = iter([(True, 4096)])

    class CheckpointFailingOnce:
        """The daemon's storage, whose checkpoint fails once, then works."""

        def __getattr__(self, name: str) -> Any:
            return getattr(running.daemon.storage, name)

        def checkpoint(self) -> tuple[bool, int]:
            if not maintenance_log.records:
                raise RuntimeError("disk on fire")
            return next(results)

    config = config_module.parse({"maintenance": {**MAINTENANCE_OFF, "checkpoint_seconds": TICK}})
    storage = cast(DaemonStorage, CheckpointFailingOnce())
    jobs, stop = Maintenance(running.daemon.service.store, storage, config), threading.Event()
    jobs.start(stop)
    try:
        maintenance_log.wait_for(lambda r: r.getMessage() == "maintenance")
    finally:
        stop.set()
        jobs.join()
    failed, done = maintenance_log.records[:2]
    assert (failed.getMessage(), failed.job) == ("maintenance job failed", "checkpoint")
    assert failed.exc_info[0] is RuntimeError
    assert (done.job, done.wal_bytes) == ("checkpoint", 4096)


# --------------------------------------------------------------------------- ending streams


def test_stop_ends_open_streams_at_once(start_daemon: Start) -> None:
    running = start_daemon(QUIET)
    key_of(running.stub, "s")
    stream = Stream(running.stub, from_now=True)
    # Not waiting the grace is the point: a long one tells the two apart however busy the machine.
    grace, started = 60.0, time.monotonic()
    running.daemon.stop(grace)
    stopped = time.monotonic() - started
    assert stopped < grace / 4, f"stop took {stopped:.2f} s of its {grace:g} s grace with a stream open"
    ended = status_of(lambda: stream.take(1))
    assert ended.code() == grpc.StatusCode.UNAVAILABLE
    assert ended.details() == f"the daemon is stopping; watch again with after_sequence={stream.cursor}"


def test_a_stream_ends_at_its_deadline(start_daemon: Start) -> None:
    stream = Stream(start_daemon(QUIET).stub, timeout=0.3)
    assert status_of(lambda: stream.take(1)).code() == grpc.StatusCode.DEADLINE_EXCEEDED


# --------------------------------------------------------------------------- the Python client


def test_an_expiry_watcher_is_a_stream_consumer(start_daemon: Start, clock: Clock) -> None:
    maintenance = {**MAINTENANCE_OFF, "lease_sweep_seconds": TICK}
    running = start_daemon({"reset": POLICIES, "maintenance": maintenance}, clock=clock)
    with SessionStoreClient(running.address, aware_times=True) as client:
        entry = client.get_or_create_session({"platform": "telegram", "chat_id": "watched"})
        watch = client.watch_events(kinds=["expired"])
        clock.advance(minutes=61)
        for event in watch:
            assert (event.kind, event.session_key, event.session_id) == ("expired", entry.session_key, entry.session_id)
            assert (event.reason, event.time, event.previous_session_id) == ("idle", clock.now, None)
            client.mark_expiry_finalized(event.session_key, event.session_id)
            watch.close()
        assert watch.cursor == event.sequence
        assert client.list_expired_sessions() == []

        with pytest.raises(OutOfRangeError, match="ahead of the newest event"):
            next(iter(client.watch_events(watch.cursor + 100)))
        with pytest.raises(InvalidArgumentError, match="kinds"):
            client.watch_events(kinds=["EXPIRED"])
        replay = client.watch_events(0)
        events = iter(replay)
        assert next(events).kind == "created"  # the stream is live
        running.daemon.stop(10)
        assert next(events).kind == "expired"
        with pytest.raises(UnavailableError, match=f"after_sequence={replay.cursor}$"):
            next(events)


# --------------------------------------------------------------------------- schema


@pytest.mark.sqlite_only
def test_a_database_of_the_previous_schema_gets_an_event_log(start_daemon: Start, tmp_path: Path) -> None:
    database = tmp_path / "v1.db"
    connection = apsw.Connection(str(database))
    connection.pragma("journal_mode", "wal")
    connection.execute(MIGRATIONS[0])
    connection.pragma("user_version", 1)
    connection.close()
    stub = start_daemon({**QUIET, "storage": {"path": str(database)}}).stub
    key = key_of(stub, "migrated")
    assert [(e.sequence, e.session_key) for e in log_of(stub)] == [(1, key)]
