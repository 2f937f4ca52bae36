"""Cost against database size: GetOrCreateSession at c=1, cold start, and the daemon's memory.

Each size gets a fresh database filled by the bulk path (timed on its own), then a daemon whose
start is timed from process start to health SERVING. The largest database then gets its
messages too, and the daemon's resident memory is read after every scenario has warmed it.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc

from bench import load, populate, report, scenarios, servers, targets
from bench.profiles import Profile

WARM_CALLS = 10  # per thread and scenario before memory is read


def sizes(profile: Profile) -> list[int]:
    """The scaling sizes, plus the reference's (sessiond is measured at those too)."""
    return sorted(set(profile.scaling_sizes) | set(profile.reference_sizes))


def run(workdir: Path, profile: Profile) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per size, and the memory measurement at the largest."""
    rows = []
    for size in sizes(profile):
        directory = workdir / f"size-{size}"
        report.progress(f"{size:,} sessions: populate, start, GetOrCreateSession")
        row: dict[str, Any] = {"sessions": size, "populate_s": populate.add_sessions(directory / "sessiond.db", size)}
        daemon = servers.start_sessiond(directory, directory / "sessiond.db")
        try:
            row["cold_start_s"] = daemon.start_seconds
            row["get_or_create"] = asdict(_get_or_create(daemon, size, profile))
        finally:
            daemon.stop()
        row["database_mb"] = _megabytes(directory)
        rows.append(row)
        if size != max(sizes(profile)):
            shutil.rmtree(directory)
    _check(rows, profile)
    memory = _memory(workdir / f"size-{rows[-1]['sessions']}", rows[-1]["sessions"], profile)
    return rows, memory


def _get_or_create(daemon: servers.Server, size: int, profile: Profile) -> load.Stats:
    """GetOrCreateSession on a stored key in the middle of the database, one caller, Unix socket."""
    index = size // 2
    with grpc.insecure_channel(daemon.unix) as channel:
        scenarios.stored_session_id(channel, index)  # raises when the key is not stored
    requests = [[scenarios.get_or_create_request(index)] * (profile.warmup + profile.calls)]
    return load.drive(daemon.unix, scenarios.METHOD.format("GetOrCreateSession"), requests, profile.warmup)


def _check(rows: list[dict[str, Any]], profile: Profile) -> None:
    """The 1M ÷ 1k latency ratio (largest ÷ smallest scaling size) and the cold start at the largest."""
    by_size = {row["sessions"]: row for row in rows}
    small, large = by_size[min(profile.scaling_sizes)], by_size[max(profile.scaling_sizes)]
    ratio = large["get_or_create"]["p50_ms"] / small["get_or_create"]["p50_ms"]
    where = f"p50 at {large['sessions']:,} / at {small['sessions']:,} sessions"
    large["scaling_ratio"] = ratio
    large["checks"] = [
        targets.check(targets.SCALING, ratio, where),
        targets.check(targets.COLD_START, large["cold_start_s"], f"{large['sessions']:,} sessions"),
    ]


def _memory(directory: Path, sessions: int, profile: Profile) -> dict[str, Any]:
    """Add the messages, start the daemon (timed), warm it with every scenario at c=8, read VmRSS."""
    messages = sessions * profile.messages_per_session
    report.progress(f"{sessions:,} sessions: add {messages:,} messages, start, warm every scenario, read VmRSS")
    populate_s = populate.add_messages(directory / "sessiond.db", sessions, profile.messages_per_session)
    daemon = servers.start_sessiond(directory, directory / "sessiond.db")
    try:
        for scenario in scenarios.prepare(daemon.unix):
            load.drive(daemon.unix, scenario.method, scenario.requests(scenarios.MAX_THREADS, WARM_CALLS), 0)
        memory = daemon.memory_mb()
    finally:
        daemon.stop()
    rss_mb, peak_mb = memory["VmRSS"], memory["VmHWM"]
    where = f"{sessions:,} sessions, {messages:,} messages"
    return {
        "sessions": sessions,
        "messages": messages,
        "populate_messages_s": populate_s,
        "database_mb": _megabytes(directory),
        "cold_start_s": daemon.start_seconds,
        "rss_mb": rss_mb,
        "peak_rss_mb": peak_mb,
        "checks": [
            targets.check(targets.RSS, rss_mb, where),
            targets.check(targets.COLD_START, daemon.start_seconds, where),
        ],
    }


def _megabytes(directory: Path) -> float:
    return sum(path.stat().st_size for path in directory.glob("sessiond.db*")) / 1e6
