"""The PostgreSQL backend with two daemons on one database, as replicas on two hosts would run.

Whatever ``--backend`` says, these tests run on the throwaway PostgreSQL server of
``helpers/postgres.py`` (skipped, saying what to install, where there is none). The races are
those of ``test_store_races`` with the callers split between the daemons, so the only thing that
serialises them is the database: one session per key, one lease holder, each retried message
stored once with contiguous positions. Then: random sequences alternating between the daemons
equal the reference; events committed by one daemon wake the other's streams; the two daemons'
expiry scans announce each session once; a write waiting on a lock stops at its deadline;
health follows the database through a restart; migrations run once however many daemons start;
the DSN's password shows nowhere.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.clock import START, Clock
from helpers.daemons import Running
from helpers.events import Stream
from helpers.postgres import PostgresServer
from helpers.races import DEADLINE, NO_RESETS, batches, check_transcript, codes, stubs, together
from helpers.store_differential import daemon_client, reset_configs, run_sequence, sequences, starts
from helpers.wire import key_of, load_transcript, source
from sessiond.daemon import config as config_module
from sessiond.daemon.server import create_server, new_store
from sessiond.errors import ConfigError, DeadlineExceeded, StorageError
from sessiond.model import Source
from sessiond.storage.postgres import MIGRATIONS, PostgresStorage
from sessiond.store.watch import RECHECK_SECONDS
from sessiond_client.v1 import admin_pb2, admin_pb2_grpc
from sessiond_client.v1 import session_store_pb2 as pb

Start = Callable[..., Running]
SEQUENCES = 60  # alternating differential sequences (the single-daemon suite runs 500 on either backend)
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def postgres_data(dsn: str, **tables: Any) -> dict[str, Any]:
    return {**tables, "storage": {"backend": "postgres", "dsn": dsn, **tables.get("storage", {})}}


@pytest.fixture
def two(start_daemon: Start, postgres_server: PostgresServer) -> tuple[Running, Running]:
    """Two daemons, each on its own socket, sharing one fresh database."""
    data = postgres_data(postgres_server.fresh_dsn(), **NO_RESETS)
    return start_daemon(data), start_daemon(data)


@contextmanager
def split_stubs(two: tuple[Running, Running], count: int) -> Iterator[list[Any]]:
    """``count`` stubs on channels of their own, even ones to the first daemon, odd ones to the second."""
    with stubs(two[0].address, count // 2) as first, stubs(two[1].address, count // 2) as second:
        yield [stub for pair in zip(first, second, strict=True) for stub in pair]


# --------------------------------------------------------------------------- races across daemons


def test_64_callers_on_two_daemons_create_one_session(two: tuple[Running, Running]) -> None:
    threads = 64
    with split_stubs(two, threads) as clients:
        for round_ in range(3):
            request = pb.GetOrCreateSessionRequest(source=source(f"first-{round_}"))
            results = together(threads, lambda i, r=request: clients[i].GetOrCreateSession(r, timeout=DEADLINE))
            assert codes(results) == [grpc.StatusCode.OK] * threads
            assert len({r.entry.session_id for r in results}) == 1, "two sessions for one key"
            assert sum(r.created for r in results) == 1
            assert sorted(r.entry.version for r in results) == list(range(1, threads + 1))


def test_one_lease_holder_across_two_daemons(two: tuple[Running, Running]) -> None:
    threads, ttl = 32, timedelta(minutes=10)
    with split_stubs(two, threads) as clients:
        for round_ in range(3):
            key = key_of(clients[0], f"leased-{round_}")

            def acquire(index: int, owner: int | None = None, key: str = key) -> pb.AcquireLeaseResponse:
                """Worker ``owner`` (by default ``index``) asks through caller ``index``'s daemon."""
                name = f"worker-{index if owner is None else owner}"
                request = pb.AcquireLeaseRequest(session_key=key, owner=name, ttl=ttl)
                return clients[index].AcquireLease(request, timeout=DEADLINE)

            statuses = codes(together(threads, acquire))
            assert statuses.count(grpc.StatusCode.OK) == 1
            assert statuses.count(grpc.StatusCode.FAILED_PRECONDITION) == threads - 1
            winner = statuses.index(grpc.StatusCode.OK)
            other = winner ^ 1  # a caller on the other daemon
            assert acquire(other, owner=winner).lease.owner == f"worker-{winner}"  # renewed through it
            with pytest.raises(grpc.RpcError) as refused:
                acquire(other)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            release = pb.ReleaseLeaseRequest(session_key=key, owner=f"worker-{winner}")
            assert clients[other].ReleaseLease(release, timeout=DEADLINE).released
            assert acquire(other).lease.owner == f"worker-{other}"


def test_retries_on_the_other_daemon_are_stored_once(two: tuple[Running, Running]) -> None:
    """Each batch goes to one daemon and its retry to the other; then pairs send copies to both at once."""
    threads, per_thread = 8, 40
    with split_stubs(two, 2 * threads) as clients:
        created = clients[0].GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("appends")))
        session_id = created.entry.session_id

        def retried(index: int) -> None:
            for batch in batches(index, per_thread):
                request = pb.AppendMessagesRequest(session_id=session_id, messages=batch)
                first = clients[2 * index].AppendMessages(request, timeout=DEADLINE)
                retry = clients[2 * index + 1].AppendMessages(request, timeout=DEADLINE)
                assert (first.appended, retry.duplicates) == (len(batch), len(batch))

        assert codes(together(threads, retried)) == [grpc.StatusCode.OK] * threads
        check_transcript(load_transcript(clients[1], session_id, raw=True), threads, per_thread)

        racing = clients[1].GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("racing"))).entry.session_id
        cut = [batches(pair, per_thread) for pair in range(threads)]
        step = threading.Barrier(2 * threads)

        def copies(index: int) -> list[int]:
            appended = []
            for batch in cut[index // 2]:
                step.wait(timeout=DEADLINE)  # both copies of a batch leave together, to different daemons
                request = pb.AppendMessagesRequest(session_id=racing, messages=batch)
                appended.append(clients[index].AppendMessages(request, timeout=DEADLINE).appended)
            return appended

        results = together(2 * threads, copies)
        for pair in range(threads):
            assert [a + b for a, b in zip(results[2 * pair], results[2 * pair + 1], strict=True)] == [
                len(batch) for batch in cut[pair]
            ]
        check_transcript(load_transcript(clients[0], racing, raw=True), threads, per_thread)


# --------------------------------------------------------------------------- the reference


class Alternating:
    """The drop-in client's calls, taking turns between daemons."""

    def __init__(self, *clients: Any):
        self._turns = itertools.cycle(clients)

    def __getattr__(self, name: str) -> Any:
        return getattr(next(self._turns), name)


def test_sequences_alternating_between_two_daemons_match_the_reference(postgres_server: PostgresServer) -> None:
    stats: Counter[str] = Counter()

    @contextmanager
    def two_daemons(data: dict[str, Any], clock: Callable[[], datetime], directory: Path) -> Iterator[Alternating]:
        storage = {"backend": "postgres", "dsn": postgres_server.fresh_dsn()}
        (directory / "a").mkdir()
        (directory / "b").mkdir()
        with (
            daemon_client(data, clock, directory / "a", storage) as first,
            daemon_client(data, clock, directory / "b", storage) as second,
        ):
            yield Alternating(first, second)

    @settings(max_examples=SEQUENCES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), per_user=st.booleans(), start=starts, ops=sequences)
    def check(data: st.DataObject, per_user: bool, start: datetime, ops: list[tuple[Any, ...]]) -> None:
        reset = data.draw(reset_configs(start.hour), label="reset")
        run_sequence({"reset": reset, "group_sessions_per_user": per_user}, start, ops, stats, two_daemons)

    check()
    print(f"\nalternating differential: {stats['sequences']} sequences, {stats['operations']} operations")
    assert stats["sequences"] >= SEQUENCES


# --------------------------------------------------------------------------- events and maintenance


def test_events_of_one_daemon_reach_the_other_in_commit_order(two: tuple[Running, Running]) -> None:
    """The stream on the second daemon ends before its recheck: only a NOTIFY can have woken it."""
    threads, each = 8, 5
    stream = Stream(two[1].stub, timeout=RECHECK_SECONDS / 2, from_now=True)
    key_of(two[0].stub, "woken")
    assert stream.take(1)[0].session_key.endswith(":woken")
    stream.close()

    stream = Stream(two[1].stub, timeout=DEADLINE, from_now=True)
    with split_stubs(two, threads) as clients:
        together(threads, lambda i: [key_of(clients[i], f"w{i}-{n}") for n in range(each)])
    events = stream.take(threads * each)
    stream.close()
    first = events[0].sequence
    assert [e.sequence for e in events] == list(range(first, first + threads * each)), "a gap or a reordering"


def test_expiry_scans_of_two_daemons_announce_each_session_once(
    start_daemon: Start, postgres_server: PostgresServer
) -> None:
    clock = Clock(START)
    policy = {"reset": {"default": {"mode": "idle", "idle_minutes": 60, "time_zone": "UTC"}}}
    data = postgres_data(postgres_server.fresh_dsn(), **policy)
    daemons = [start_daemon(data, clock=clock) for _ in range(2)]
    keys = [key_of(daemons[i % 2].stub, f"idle-{i}") for i in range(40)]
    clock.advance(minutes=61)
    stores = [running.daemon.service.store for running in daemons]
    together(8, lambda i: stores[i % 2].announce_expired())  # four scans on each daemon at once
    expired = [e for e in stores[0].events_after(0, 1000).events if e.kind == "expired"]
    assert sorted(e.session_key for e in expired) == sorted(keys)


def test_a_write_waiting_on_a_lock_stops_at_its_deadline(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.fresh_dsn()
    storage = PostgresStorage(dsn, pool_size=2)
    try:
        store = new_store(storage, config_module.parse(NO_RESETS))
        key = store.get_or_create(Source("telegram", "locked"))[0].session_key
        with psycopg.connect(dsn) as holder:  # another daemon, in the middle of a change of this key
            holder.execute("SELECT 1 FROM entries WHERE session_key = %s FOR UPDATE", (key,))
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded, match="nothing was written"):
                store.update(key, last_prompt_tokens=7, deadline=started + 0.3)
            assert time.monotonic() - started < 3
        with pytest.raises(DeadlineExceeded, match="before the write started"):
            store.update(key, last_prompt_tokens=7, deadline=time.monotonic() - 1)
        assert store.get(key).last_prompt_tokens == 0 and store.get(key).version == 1
    finally:
        storage.close()


# --------------------------------------------------------------------------- operations


def test_health_follows_the_database_through_a_restart(start_daemon: Start) -> None:
    """A server of its own, stopped and started again: NOT_SERVING while it is down, SERVING after."""
    server = PostgresServer()
    try:
        running = start_daemon(postgres_data(server.fresh_dsn(), storage={"check_seconds": 0.05}))
        key = key_of(running.stub, "outage")
        health = health_pb2_grpc.HealthStub(running.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
        assert next(watch).status == SERVING
        server.stop("fast")
        assert next(watch).status == NOT_SERVING
        with pytest.raises(grpc.RpcError) as refused:
            running.stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        server.start()
        assert next(watch).status == SERVING
        watch.cancel()
        entry = running.stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("outage")), timeout=10)
        assert (entry.entry.session_key, entry.created) == (key, False)
        running.channel.close()
        running.daemon.stop(0)
    finally:
        server.close()


def test_daemons_starting_together_migrate_once(postgres_server: PostgresServer) -> None:
    dsn = postgres_server.fresh_dsn()
    opened = together(6, lambda _: PostgresStorage(dsn, pool_size=1))
    for storage in opened:
        assert isinstance(storage, PostgresStorage), storage
        storage.close()
    with psycopg.connect(dsn, autocommit=True) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]
        connection.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StorageError, match="schema version 99 is newer than this sessiond knows") as refused:
        PostgresStorage(dsn, pool_size=1)
    assert f"postgres {postgres_server.socket_dir}:{postgres_server.port}/sessiond" in str(refused.value)


def test_admin_verifies_and_refuses_a_file_backup(two: tuple[Running, Running]) -> None:
    key_of(two[0].stub, "counted")
    admin = admin_pb2_grpc.AdminStub(two[1].channel)
    verified = admin.Verify(admin_pb2.VerifyRequest(), timeout=10)
    assert (verified.ok, verified.entries, verified.sessions, verified.wal_bytes) == (True, 1, 1, 0)
    assert verified.database_bytes > 0
    with pytest.raises(grpc.RpcError) as refused:
        list(admin.Snapshot(admin_pb2.SnapshotRequest(), timeout=10))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "pg_dump" in str(refused.value.details())
    with pytest.raises(grpc.RpcError) as refused:
        list(admin.Backup(admin_pb2.BackupRequest(name="never.db"), timeout=10))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_the_dsn_password_shows_nowhere() -> None:
    secret = "hunter2-very-secret"
    closed = f"host=127.0.0.1 port=1 dbname=sessions user=sessiond password={secret}"
    config = config_module.load(None, {"SESSIOND_PG_DSN": closed})
    assert config.dsn == closed and config.backend == "sqlite"  # the DSN alone does not switch backends
    assert config_module.load(None, {"SESSIOND_PG_DSN": closed, "SESSIOND_BACKEND": "postgres"}).backend == "postgres"
    config = config_module.parse({"storage": {"backend": "postgres", "dsn": closed}}, {})
    assert secret not in repr(config)
    with pytest.raises(StorageError) as unreachable:
        create_server(config)
    assert "postgres 127.0.0.1:1/sessions" in str(unreachable.value) and secret not in str(unreachable.value)
    with pytest.raises(ConfigError, match=r"^storage\.dsn: not a PostgreSQL connection string") as malformed:
        config_module.parse({"storage": {"backend": "postgres", "dsn": f"password={secret} host"}}, {})
    assert secret not in str(malformed.value)
    with pytest.raises(ConfigError, match=r"^storage\.dsn: required"):
        config_module.parse({"storage": {"backend": "postgres"}}, {})
    with pytest.raises(ConfigError, match=r"^storage\.backend: expected one of sqlite, postgres"):
        config_module.parse({"storage": {"backend": "mysql"}}, {})
    with pytest.raises(ConfigError, match=r"^storage\.pool_size: expected at least 1"):
        config_module.parse({"storage": {"pool_size": 0}}, {})
    assert config_module.parse({"server": {"max_workers": 7}}, {}).pool_size == 7


def test_two_daemons_racing_for_one_title_give_it_to_one_session(two: tuple[Running, Running]) -> None:
    """16 sessions, 16 callers across both daemons, one title: one wins, the rest are ALREADY_EXISTS
    (a UniqueViolation of the loser's insert is retried and then sees the winner), nothing else."""
    with split_stubs(two, 16) as racers:
        ids = [
            racers[0]
            .GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source(f"title-race-{n}")), timeout=DEADLINE)
            .entry.session_id
            for n in range(16)
        ]

        def claim(index: int) -> str | None:
            request = pb.SetSessionTitleRequest(session_id=ids[index], title="The one")
            response = racers[index].SetSessionTitle(request, timeout=DEADLINE)
            return response.title if response.HasField("title") else None

        results = together(16, claim)
        got = Counter(code.name for code in codes(results))
        assert got == Counter({"OK": 1, "ALREADY_EXISTS": 15}), got
        winner = ids[results.index("The one")]
        for racer in racers[:2]:  # one stub on each daemon
            found = racer.FindSessionByTitle(pb.FindSessionByTitleRequest(title="The one"), timeout=DEADLINE)
            assert found.session_id == winner
