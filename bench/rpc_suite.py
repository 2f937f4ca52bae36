"""Every scenario against two empty echo servers, and the write scenarios in both durability modes.

Each (scenario, transport, concurrency, durability) cell runs the grpc.aio echo, the grpcio sync
echo (``bench.echo``) and then sessiond with the same request bytes, so the client does the same
work for all three. Each durability mode gets its own daemon on a fresh database holding
``DATABASE_SESSIONS`` conversations, so listings return full pages.

A cell's limit is the faster echo's rps. At c=1 with durability full a write also waits for its
commit's fsync, which no echo does: there the limit is 1 / (1/echo rps + fsync s), with fsync s
the median of ``FSYNC_REPETITIONS`` writes of 100 bytes each followed by ``os.fsync``, measured in
this run in the daemon's database directory. Each row keeps the limit, rps / limit, p99 / the
faster echo's p99 and every server's CPU per call (``load.drive``).

Noise: the machine has two cores and is shared. A cell that a target applies to (``_targets``)
runs ``profile.rounds`` rounds of the three servers in turn, each run ``profile.target_seconds``
of timed calls, and keeps each figure's median over the rounds: a disturbance during one run
moves one value of three, not the median, and taking turns spreads slow drifts over the three
servers alike (three 1 s rounds cost about what one 3 s run would, and are steadier). Every other
cell runs each server once, for a fixed number of calls (``profile.calls``, ``heavy_calls``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import statistics
import time
from collections.abc import Iterator, Sequence
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
# The scenarios the rps and p99 targets name (on the Unix socket, the sidecar's transport).
HOT = ("GetOrCreateSession", "AppendMessages x1", "GetSession", "LoadTranscript 20", "BuildSessionContext redact")
DATABASE_SESSIONS = 1_000
FSYNC_REPETITIONS, FSYNC_BYTES = 200, 100
Cell = tuple[Scenario, str, int, str]  # scenario, transport, concurrency, durability


def run(workdir: Path, profile: Profile) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows, and the fsync measurement their c=1 write limits use."""
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        echoes = [_started(stack, servers.start_echo(workdir, sync=sync)) for sync in (False, True)]
        fsync: dict[str, Any] = {}
        for durability in DURABILITY:
            directory = workdir / f"rpc-{durability}"
            populate.add_sessions(directory / "sessiond.db", DATABASE_SESSIONS)
            with contextlib.ExitStack() as daemon_stack:
                daemon = _started(
                    daemon_stack, servers.start_sessiond(directory, directory / "sessiond.db", durability)
                )
                if durability == "full":  # the limits that use it are the full daemon's, in its directory
                    fsync = measure_fsync(directory)
                for cell in _cells(scenarios.prepare(daemon.unix), durability):
                    rows.append(_measure(cell, daemon, echoes, profile, fsync["median_ms"] / 1000))
    return rows, fsync


def _started(stack: contextlib.ExitStack, server: Server) -> Server:
    stack.callback(server.stop)
    return server


def measure_fsync(directory: Path, repetitions: int = FSYNC_REPETITIONS) -> dict[str, Any]:
    """What a durable commit waits for on this disk: ``repetitions`` appends of ``FSYNC_BYTES`` bytes
    to a file in ``directory``, each followed by ``os.fsync``; each write + fsync is timed."""
    path = directory / "fsync-probe"
    timings = []
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for _ in range(repetitions):
            started = time.perf_counter()
            os.write(descriptor, b"x" * FSYNC_BYTES)
            os.fsync(descriptor)
            timings.append(time.perf_counter() - started)
    finally:
        os.close(descriptor)
        path.unlink()
    return {
        "directory": str(directory),
        "repetitions": repetitions,
        "bytes": FSYNC_BYTES,
        "median_ms": statistics.median(timings) * 1000,
        "p90_ms": statistics.quantiles(timings, n=10)[-1] * 1000,
    }


def _cells(scenario_list: list[Scenario], durability: str) -> Iterator[Cell]:
    """Every scenario on both transports in the default mode; the write scenarios on Unix when relaxed."""
    for scenario in scenario_list:
        if durability == "full":
            yield from ((scenario, t, c, durability) for t, c in itertools.product(TRANSPORTS, CONCURRENCY))
        elif scenario.writes:
            yield from ((scenario, "unix", c, durability) for c in CONCURRENCY)


def _targets(cell: Cell) -> list[targets.Target]:
    """The targets of issue 15 that apply to ``cell``: the hot scenarios on the Unix socket."""
    scenario, transport, concurrency, durability = cell
    if transport != "unix" or scenario.name not in HOT:
        return []
    if durability == "full":
        return [targets.RPS_C8, targets.P99_C8] if concurrency > 1 else [targets.RPS_C1]
    return [targets.RPS_RELAXED] if concurrency == 1 and scenario.writes else []


def _measure(cell: Cell, daemon: Server, echoes: Sequence[Server], profile: Profile, fsync_s: float) -> dict[str, Any]:
    scenario, transport, concurrency, durability = cell
    checked = _targets(cell)
    if checked:
        rounds, seconds = profile.rounds, profile.target_seconds
        per_thread = load.per_thread(profile.warmup, concurrency, seconds=seconds)
    else:
        rounds, seconds = 1, None
        per_thread = load.per_thread(
            profile.warmup, concurrency, profile.heavy_calls if scenario.heavy else profile.calls
        )
    runs: dict[str, list[load.Stats]] = {server.name: [] for server in (*echoes, daemon)}
    for _ in range(rounds):
        requests = scenario.requests(concurrency, per_thread)  # fresh ones: appends carry new message ids
        for server in (*echoes, daemon):
            method = scenario.method if server is daemon else echo.METHOD
            # The token goes to every server on both transports, so each gets the same bytes (only TCP checks it).
            stats = load.drive(
                server.target(transport), method, requests, profile.warmup, servers.AUTHORIZATION,
                seconds=seconds, pids=(server.process.pid,),
            )  # fmt: skip
            runs[server.name].append(stats)
    median = {name: load.median(series) for name, series in runs.items()}
    mine = median[daemon.name]
    faster = max((echo_server.name for echo_server in echoes), key=lambda name: median[name].rps)
    limit, limit_by = median[faster].rps, faster
    if scenario.writes and durability == "full" and concurrency == 1:
        limit, limit_by = 1 / (1 / limit + fsync_s), f"{faster}+fsync"
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "transport": transport,
        "concurrency": concurrency,
        "durability": durability,
        "request_bytes": len(requests[0][0]),
        "rounds": rounds,
        "sessiond": asdict(mine),
        "echo": {name: asdict(median[name]) for name in runs if name != daemon.name},
        "faster_echo": faster,
        "limit": limit_by,
        "limit_rps": limit,
        "rps_ratio": mine.rps / limit,
        "p99_ratio": mine.p99_ms / median[faster].p99_ms,
        "messages_per_s": mine.rps * scenario.messages_per_call if scenario.messages_per_call else None,
        "checks": [],
    }
    if rounds > 1:
        row["runs"] = {name: [asdict(stats) for stats in series] for name, series in runs.items()}
    where = f"{scenario.name} {transport} c={concurrency} {durability}"
    for target in checked:
        row["checks"].append(
            targets.check(target, row["p99_ratio" if target is targets.P99_C8 else "rps_ratio"], where)
        )
    if scenario.messages_per_call >= 100:
        row["checks"].append(targets.check(targets.APPEND, row["messages_per_s"], where))
    return row
