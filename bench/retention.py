"""Retention: what deleting sessions costs a running daemon, what it does to live traffic, and how
much of the file comes back (DeleteSessions, Admin.Vacuum).

The store. ``profile.retention_sessions`` sessions of ``MESSAGES_PER_SESSION`` messages each, the
text of ``search.texts`` (Zipf over a vocabulary, seeded), every ``search.TITLED_EVERY``-th
session titled, one key (a Telegram DM, ``populate.source``) per session, with the full-text
index on. It is filled the way ``populate`` and ``search`` fill one: the storage in-process, its
Transaction methods, one write job (relaxed), the index kept by its triggers. Sessions come in
two ages: the first half (written first, as an older half of a real store was) last active
``OLD_DAYS`` days ago, the second half ``RECENT_DAYS`` days ago, a second apart within each half.
The selector ``inactive_days = CUTOFF_DAYS`` matches exactly the first half (a dry run checks it).
A file created by sessiond has ``auto_vacuum = INCREMENTAL`` (checked, recorded).

The daemon. ``sessiond serve`` on that file, default configuration (durability ``full``) except
``maintenance.lease_sweep_seconds = 0``: the expiry scan that runs with the lease sweep would
otherwise, 60 s after start, announce the expired keys of the old half, writes of its own in the
middle of the measurement. Retention is off by default, so nothing else deletes. Measurements start
once the daemon is idle (``search.settle``: its integrity check of the whole file is done).

Live traffic. Two closed-loop callers at c=1 each, on their own threads and channels, run all
along, from ``profile.retention_baseline_seconds`` before the first delete to the end of the
Vacuum: a reader (GetSession, cycling over ``LIVE_KEYS`` keys of the kept half) and a writer
(AppendMessages of one message with a fresh id, cycling over ``LIVE_KEYS`` kept sessions). Each
call is timed and stamped with its start; the calls that started before the first delete, during
the deletes and during the Vacuum are the three windows' figures. The two callers run together in
every window, so "before" is the baseline of the same mix; but while a delete holds the writer the
writer caller mostly waits, leaving the reader more of the cores, so the reader's "during" can come
out faster than its "before". The writer's appended messages are in the "after" figures (counted).

Deleting. ``DeleteSessions(selector {inactive_days: CUTOFF_DAYS}, limit = LIMIT)`` over the Unix
socket, call after call (each one transaction) until ``remaining`` is 0: each call's latency,
sessions and messages (as the daemon reports them), the total wall time, the daemon's CPU
(``/proc/<pid>/stat``) over it. One call's p99 is of ``sessions / LIMIT`` calls (50 at the default
size): near the maximum.

Space. File sizes are ``os.stat`` of ``sessiond.db`` and ``sessiond.db-wal``; page counts are
``PRAGMA page_count`` and ``freelist_count`` on a read-only connection of this process (the daemon's
WAL snapshot included), taken before the daemon starts, once it is settled, after the deletes,
after the Vacuum, and after the daemon stopped (its last connection checkpoints the WAL into the
file and removes it). Then ``Admin.Vacuum()`` read to its last response: its duration, the
responses, ``free_pages_before``, ``pages_freed``, the ``file_bytes`` it reports. Reclaimed is the
database file before the deletes minus after the daemon stopped; the deleted share of the file is
its size before times the fraction of messages deleted; their ratio says how much of what was
deleted came back. ``dbstat`` (every b-tree's pages, read when no daemon runs: before it starts and
after it stopped) says where the space stayed. Both ``dbstat`` reads and the text generation are
outside every timed window. The machine's load average when the run started is in the JSON (the
cores are shared with whatever else runs).

``python -m bench.retention [--quick | --full]`` runs this section alone, prints its tables and
saves the JSON under ``bench/results/retention-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apsw
import grpc

from bench import load, populate, report, search, servers
from bench.profiles import DEFAULT, FULL, QUICK, Profile
from bench.servers import Server
from sessiond.model import KeyOptions, Source
from sessiond.rules import keys
from sessiond.rules.whatsapp import no_mapping
from sessiond_client.v1 import admin_pb2, admin_pb2_grpc, session_store_pb2_grpc, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

MESSAGES_PER_SESSION = search.MESSAGES_PER_SESSION  # 10
OLD_DAYS, RECENT_DAYS, CUTOFF_DAYS = 400, 2, 30  # the two ages, and the selector between them
LIMIT = 100  # sessions per DeleteSessions call (one transaction; the server allows up to 1000)
LIVE_KEYS = 1_000  # keys (sessions) of the kept half the live callers cycle over
LIVE_WARMUP = 20  # untimed calls per live caller before the baseline window
METHOD = "/sessiond.v1.SessionStore/{}"
CONFIG = "[maintenance]\nlease_sweep_seconds = 0\n"  # see the module docstring
# The b-trees of the full-text index (FTS5's shadow tables), shown as one row.
INDEX_TABLES = frozenset(
    {"message_index", "message_index_data", "message_index_idx", "message_index_docsize", "message_index_config"}
)
INDEX_ROW = "message_index (FTS5, all its tables)"


# -- the store -------------------------------------------------------------------------------


def fill(db: Path, corpus: Sequence[str], now: datetime) -> float:
    """Store ``corpus`` as ``len(corpus) // MESSAGES_PER_SESSION`` sessions (``search.fill``), the
    first half ``OLD_DAYS`` old, the second ``RECENT_DAYS``; the seconds it took, commit included."""
    sessions = len(corpus) // MESSAGES_PER_SESSION
    return search.fill(db, corpus, True, started_at=lambda index: _started(index, sessions, now))


def _started(index: int, sessions: int, now: datetime) -> datetime:
    """Session ``index``'s start (and last activity): the old half, then the recent, a second apart."""
    half = sessions // 2
    if index < half:
        return now - timedelta(days=OLD_DAYS) + timedelta(seconds=index)
    return now - timedelta(days=RECENT_DAYS) + timedelta(seconds=index - half)


def _key(index: int) -> str:
    return keys.build_session_key(Source(**populate.source(index)), KeyOptions(), no_mapping)


# -- the file --------------------------------------------------------------------------------


def _connect(db: Path) -> apsw.Connection:
    return apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)


def space(db: Path) -> dict[str, Any]:
    """The file and WAL sizes (os.stat) and the pages (PRAGMA, read-only connection) now."""
    wal = Path(f"{db}-wal")
    connection = _connect(db)
    try:
        pages = {name: int(connection.pragma(name)) for name in ("page_size", "page_count", "freelist_count")}
        auto_vacuum = int(connection.pragma("auto_vacuum"))
    finally:
        connection.close()
    return {
        "db_bytes": db.stat().st_size,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
        **pages,
        "auto_vacuum": auto_vacuum,
    }


def btrees(db: Path) -> dict[str, int]:
    """Bytes of pages per b-tree (dbstat, aggregated), the full-text index's tables as one."""
    connection = _connect(db)
    try:
        rows = connection.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    finally:
        connection.close()
    sizes: dict[str, int] = {}
    for name, size in rows:
        shown = INDEX_ROW if name in INDEX_TABLES else str(name)
        sizes[shown] = sizes.get(shown, 0) + int(size or 0)
    return sizes


def counts(db: Path) -> dict[str, int]:
    """Rows of the tables the deletes touch (and the events they add)."""
    connection = _connect(db)
    try:
        return {
            table: int(connection.execute(f"SELECT count(*) FROM {table}").get or 0)
            for table in ("sessions", "entries", "messages", "events")
        }
    finally:
        connection.close()


# -- live traffic ----------------------------------------------------------------------------


class Caller(threading.Thread):
    """A closed-loop c=1 caller of one method, until ``stop``: each call's start and latency."""

    def __init__(self, name: str, target: str, method: str, requests: Iterator[bytes]):
        super().__init__(name=name, daemon=True)
        self.target, self.method, self.requests = target, method, requests
        self.samples: list[tuple[float, float]] = []  # (perf_counter at the start, seconds)
        self.ready, self.stop = threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with grpc.insecure_channel(self.target, options=load.CHANNEL_OPTIONS) as channel:
                call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(self.method)
                for _ in range(LIVE_WARMUP):
                    call(next(self.requests), timeout=load.CALL_TIMEOUT, metadata=servers.AUTHORIZATION)
                self.ready.set()
                while not self.stop.is_set():
                    request = next(self.requests)
                    started = time.perf_counter()
                    call(request, timeout=load.CALL_TIMEOUT, metadata=servers.AUTHORIZATION)
                    self.samples.append((started, time.perf_counter() - started))
        except BaseException as exc:  # reported by window(), which the run always reaches
            self.error = exc
            self.ready.set()

    def window(self, begin: float, end: float) -> dict[str, Any]:
        """The calls that started in [begin, end): count, rate and latency percentiles (ms)."""
        if self.error is not None:
            raise RuntimeError(f"live {self.name} failed") from self.error
        latencies = [seconds * 1000 for at, seconds in self.samples if begin <= at < end]
        if not latencies:
            return {"calls": 0, "seconds": end - begin}
        return {
            "calls": len(latencies),
            "seconds": end - begin,
            "rps": len(latencies) / (end - begin),
            "p50_ms": _percentile(latencies, 0.50),
            "p90_ms": _percentile(latencies, 0.90),
            "p99_ms": _percentile(latencies, 0.99),
            "max_ms": max(latencies),
        }


def _readers(count: int) -> Iterator[bytes]:
    """GetSession of the kept half's keys, spread over it, in a cycle."""
    kept = _kept(count)
    return itertools.cycle([pb.GetSessionRequest(session_key=_key(index)).SerializeToString() for index in kept])


def _writers(count: int, corpus: Sequence[str]) -> Iterator[bytes]:
    """AppendMessages of one message (fresh id, a corpus text) to the kept half's sessions, in a cycle."""
    kept = itertools.cycle(_kept(count))
    for number in itertools.count():
        message = transcript_pb2.Message(
            role=("user", "assistant")[number % 2], text=corpus[number % len(corpus)], message_id=f"live{number}"
        )
        session_id = populate.session_id(next(kept))
        yield pb.AppendMessagesRequest(session_id=session_id, messages=[message]).SerializeToString()


def _kept(count: int) -> list[int]:
    """``LIVE_KEYS`` session indexes spread over the second (kept) half of ``count``."""
    half = count // 2
    step = max(1, (count - half) // LIVE_KEYS)
    return list(range(half, count, step))[:LIVE_KEYS]


# -- deleting and vacuuming ------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One DeleteSessions call: its latency and what the daemon says it did."""

    seconds: float
    sessions: int
    messages: int
    remaining: int


SELECTOR = pb.SessionSelector(inactive_days=CUTOFF_DAYS)


def dry_run(stub: session_store_pb2_grpc.SessionStoreStub) -> dict[str, Any]:
    started = time.perf_counter()
    response = stub.DeleteSessions(
        pb.DeleteSessionsRequest(selector=SELECTOR, dry_run=True, limit=LIMIT), timeout=load.CALL_TIMEOUT
    )
    return {
        "seconds": time.perf_counter() - started,
        "sessions": response.remaining,
        "messages": response.remaining_messages,
        "first_listed": len(response.session_ids),
    }


def delete_all(stub: session_store_pb2_grpc.SessionStoreStub) -> list[Call]:
    """DeleteSessions with ``LIMIT`` until nothing remains (or a call deletes nothing)."""
    calls = []
    request = pb.DeleteSessionsRequest(selector=SELECTOR, limit=LIMIT)
    while True:
        started = time.perf_counter()
        response = stub.DeleteSessions(request, timeout=load.CALL_TIMEOUT, metadata=servers.AUTHORIZATION)
        seconds = time.perf_counter() - started
        calls.append(Call(seconds, len(response.session_ids), response.messages, response.remaining))
        if not response.session_ids or not response.remaining:
            return calls


def vacuum(channel: grpc.Channel) -> dict[str, Any]:
    """Admin.Vacuum read to its last response: its duration, the responses, the last one's figures."""
    stub = admin_pb2_grpc.AdminStub(channel)
    started, responses = time.perf_counter(), []
    for response in stub.Vacuum(admin_pb2.VacuumRequest(), timeout=600, metadata=servers.AUTHORIZATION):
        responses.append((time.perf_counter() - started, response))
    last = responses[-1][1]
    return {
        "seconds": time.perf_counter() - started,
        "responses": len(responses),
        "done": last.done,
        "converted": last.converted,
        "free_pages_before": last.free_pages_before,
        "pages_freed": last.pages_freed,
        "file_bytes": last.file_bytes,
        "progress": [
            {"at_s": at, "pages_freed": r.pages_freed, "file_bytes": r.file_bytes, "done": r.done}
            for at, r in responses
        ],
    }


def _percentile(values: Sequence[float], q: float) -> float:
    """As ``load.Stats``: the smallest value that ``q`` of the values are at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _deletes(calls: Sequence[Call], seconds: float, cpu_s: float) -> dict[str, Any]:
    sessions, messages = sum(c.sessions for c in calls), sum(c.messages for c in calls)
    latencies = [c.seconds * 1000 for c in calls]
    return {
        "calls": len(calls),
        "limit": LIMIT,
        "sessions": sessions,
        "messages": messages,
        "seconds": seconds,
        "sessions_per_s": sessions / seconds,
        "messages_per_s": messages / seconds,
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "first_ms": latencies[0],
        "last_full_ms": next((c.seconds * 1000 for c in reversed(calls) if c.sessions == LIMIT), latencies[-1]),
        "daemon_cpu_s": cpu_s,
        "per_call": [asdict(c) for c in calls],
    }


# -- the section -----------------------------------------------------------------------------


def run(workdir: Path, profile: Profile) -> dict[str, Any]:
    """Fill, start the daemon, live callers, delete the old half, Vacuum, stop; every figure on the way."""
    count = profile.retention_sessions - profile.retention_sessions % 2
    directory = workdir / "retention"
    directory.mkdir()
    db = directory / "sessiond.db"
    started = time.perf_counter()
    corpus = search.texts(count * MESSAGES_PER_SESSION)
    result: dict[str, Any] = {
        "sessions": count,
        "messages": len(corpus),
        "corpus_s": time.perf_counter() - started,
        "selector": f"inactive_days={CUTOFF_DAYS}",
        "ages_days": [OLD_DAYS, RECENT_DAYS],
        "limit": LIMIT,
        "baseline_seconds": profile.retention_baseline_seconds,
        "config": CONFIG,
    }
    report.progress(f"retention: {count:,} sessions x {MESSAGES_PER_SESSION} messages, the full-text index on")
    result["populate_s"] = fill(db, corpus, datetime.now(UTC))
    result["btrees_before"] = btrees(db)
    result["rows_before"] = counts(db)
    stages = {"populated": space(db)}
    config = directory / "sessiond-retention.toml"
    config.write_text(CONFIG)
    daemon = servers.start_sessiond(directory, db, environment={"SESSIOND_CONFIG": str(config)})
    try:
        result["cold_start_s"] = daemon.start_seconds
        result["settle_s"] = search.settle(daemon)
        stages["settled"] = space(db)
        _measure(daemon, db, count, corpus, profile, result, stages)
    finally:
        daemon.stop()
    stages["stopped"] = space(db)
    result["space"] = stages
    result["btrees_after"] = btrees(db)
    result["rows_after"] = counts(db)
    before, after = stages["populated"]["db_bytes"], stages["stopped"]["db_bytes"]
    share = result["deletes"]["messages"] / result["messages"]
    result["reclaimed_bytes"] = before - after
    result["deleted_share_bytes"] = before * share
    result["reclaimed_ratio"] = (before - after) / (before * share)
    return result


def _measure(
    daemon: Server, db: Path, count: int, corpus: Sequence[str], profile: Profile, result: dict[str, Any],
    stages: dict[str, Any],
) -> None:  # fmt: skip
    """The dry run, then the live callers around the deletes and the Vacuum."""
    pid = (daemon.process.pid,)
    with grpc.insecure_channel(daemon.unix) as channel:
        stub = session_store_pb2_grpc.SessionStoreStub(channel)
        result["dry_run"] = dry_run(stub)
        if result["dry_run"]["sessions"] != count // 2:
            raise RuntimeError(f"the selector matches {result['dry_run']['sessions']:,} sessions, not {count // 2:,}")
        callers = [
            Caller("GetSession", daemon.unix, METHOD.format("GetSession"), _readers(count)),
            Caller("AppendMessages x1", daemon.unix, METHOD.format("AppendMessages"), _writers(count, corpus)),
        ]
        for caller in callers:
            caller.start()
        try:
            for caller in callers:
                caller.ready.wait()
            report.progress(
                f"retention: live callers {profile.retention_baseline_seconds:g} s alone, then DeleteSessions of"
                f" {count // 2:,} sessions, limit {LIMIT}, then Admin.Vacuum"
            )
            baseline = time.perf_counter()
            time.sleep(profile.retention_baseline_seconds)
            marks = {"before": baseline, "deletes": time.perf_counter()}
            cpu = load.cpu_seconds(pid)
            calls = delete_all(stub)
            marks["deleted"] = time.perf_counter()
            result["deletes"] = _deletes(calls, marks["deleted"] - marks["deletes"], load.cpu_seconds(pid) - cpu)
            stages["deleted"] = space(db)
            marks["vacuum"], cpu = time.perf_counter(), load.cpu_seconds(pid)
            result["vacuum"] = vacuum(channel)
            marks["vacuumed"] = time.perf_counter()
            result["vacuum"]["daemon_cpu_s"] = load.cpu_seconds(pid) - cpu
        finally:
            for caller in callers:
                caller.stop.set()
            for caller in callers:
                caller.join()
        stages["vacuumed"] = space(db)
    windows = {
        "before": (marks["before"], marks["deletes"]),
        "deletes": (marks["deletes"], marks["deleted"]),
        "vacuum": (marks["vacuum"], marks["vacuumed"]),
    }
    result["live"] = [
        {"caller": c.name, "calls": len(c.samples), **{w: c.window(*span) for w, span in windows.items()}}
        for c in callers
    ]
    result["live_appended"] = len(callers[1].samples) + LIVE_WARMUP
    result["rss_mb"] = daemon.memory_mb()["VmRSS"]


def save(results: dict[str, Any]) -> Path:
    """``bench/results/retention-<timestamp>.json`` (a section run alone)."""
    report.RESULTS.mkdir(exist_ok=True)
    path = report.RESULTS / f"retention-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    description = "The retention section of bench.run."
    parser = argparse.ArgumentParser(prog="python -m bench.retention", description=description)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL if args.full else DEFAULT
    machine, started = report.machine(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sessiond-bench-") as workdir:
        results = run(Path(workdir), profile)
    results.update(section_s=time.perf_counter() - started, profile=asdict(profile), machine=machine)
    sys.stdout.write(report.retention_tables(results) + "\n")
    path = save(results)
    sys.stdout.write(f"\nresults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
