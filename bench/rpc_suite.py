"""Every scenario against the echo server, and the write scenarios in both durability modes.

Each (scenario, transport, concurrency) cell runs the echo server and then sessiond with the
same request bytes; the relaxed-durability pass (Unix socket) reuses the echo run of its cell.
Each durability mode gets its own daemon on a fresh database holding ``DATABASE_SESSIONS``
conversations, so listings return full pages.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import echo, load, populate, scenarios, servers, targets
from bench.profiles import Profile
from bench.scenarios import Scenario
from bench.servers import Server

TRANSPORTS = ("unix", "tcp")
CONCURRENCY = (1, 8)
DURABILITY = ("full", "relaxed")  # the default mode first
HOT = ("GetOrCreateSession", "AppendMessages x1")  # the scenarios the rps and p99 targets name
DATABASE_SESSIONS = 1_000
Cell = tuple[Scenario, str, int, str]  # scenario, transport, concurrency, durability


def run(workdir: Path, profile: Profile) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    baseline: dict[tuple[str, str, int], load.Stats] = {}
    echo_server = servers.start_echo(workdir)
    try:
        for durability in DURABILITY:
            directory = workdir / f"rpc-{durability}"
            populate.add_sessions(directory / "sessiond.db", DATABASE_SESSIONS)
            daemon = servers.start_sessiond(directory, directory / "sessiond.db", durability)
            try:
                for cell in _cells(scenarios.prepare(daemon.unix), durability):
                    rows.append(_measure(cell, daemon, echo_server, profile, baseline))
            finally:
                daemon.stop()
    finally:
        echo_server.stop()
    return rows


def _cells(scenario_list: list[Scenario], durability: str) -> Iterator[Cell]:
    """Every scenario on both transports in the default mode; the write scenarios on Unix when relaxed."""
    for scenario in scenario_list:
        if durability == "full":
            yield from ((scenario, t, c, durability) for t, c in itertools.product(TRANSPORTS, CONCURRENCY))
        elif scenario.writes:
            yield from ((scenario, "unix", c, durability) for c in CONCURRENCY)


def _measure(
    cell: Cell,
    daemon: Server,
    echo_server: Server,
    profile: Profile,
    baseline: dict[tuple[str, str, int], load.Stats],
) -> dict[str, Any]:
    scenario, transport, concurrency, durability = cell
    calls = profile.heavy_calls if scenario.heavy else profile.calls
    requests = scenario.requests(concurrency, profile.warmup + calls // concurrency)
    key = (scenario.name, transport, concurrency)
    # The token goes to both servers on both transports, so each gets the same bytes (only TCP checks it).
    token = servers.AUTHORIZATION
    if key not in baseline:
        baseline[key] = load.drive(echo_server.target(transport), echo.METHOD, requests, profile.warmup, token)
    limit = baseline[key]
    stats = load.drive(daemon.target(transport), scenario.method, requests, profile.warmup, token)
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "transport": transport,
        "concurrency": concurrency,
        "durability": durability,
        "request_bytes": len(requests[0][0]),
        "sessiond": asdict(stats),
        "echo": asdict(limit),
        "rps_ratio": stats.rps / limit.rps,
        "added_p99_ms": stats.p99_ms - limit.p99_ms,
        "messages_per_s": stats.rps * scenario.messages_per_call if scenario.messages_per_call else None,
        "checks": [],
    }
    where = f"{scenario.name} {transport} c={concurrency} {durability}"
    if durability == "full" and scenario.name in HOT:
        row["checks"].append(targets.check(targets.RPS_RATIO, row["rps_ratio"], where))
        row["checks"].append(targets.check(targets.ADDED_P99, row["added_p99_ms"], where))
    if scenario.messages_per_call >= 100:
        row["checks"].append(targets.check(targets.APPEND, row["messages_per_s"], where))
    return row
