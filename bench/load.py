"""The closed-loop load driver: ``concurrency`` threads, each on its own channel, call back to back.

Requests and responses travel as bytes (no serializers), so the client does the same work for
sessiond and for the echo server and the difference is the server's. Each thread first sends
its warm-up calls (connection set-up, caches), then all threads start the timed calls together.

The timed phase runs from the moment the last thread passes the start barrier to the moment the
last thread finishes (an end barrier): the servers' CPU time (``/proc/<pid>/stat``) is read at
those two moments, so it covers the timed calls only. A run is either every request given or,
with ``seconds``, the timed calls that start within that many seconds (the request lists are
then a ceiling, see ``per_thread``).
"""

from __future__ import annotations

import math
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import grpc

# A channel of its own per thread: grpcio otherwise shares one connection between channels to
# the same target (the global subchannel pool), and concurrency would be one HTTP/2 connection.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
CALL_TIMEOUT = 60.0
# Calls per second that no server here reaches (the echo does a few thousand on this kind of
# machine, heavy scenarios a few hundred): a timed run is given this many requests per second,
# and ends early if it runs out.
MAX_RPS, HEAVY_MAX_RPS = 20_000, 2_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stats:
    """One measured run: throughput, latency percentiles (ms) of the timed calls, and the server CPU
    (user + system) per timed call in ms (None when no server process was given)."""

    calls: int
    concurrency: int
    seconds: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    cpu_ms_per_call: float | None = None


def per_thread(warmup: int, concurrency: int, calls: int = 0, seconds: float = 0.0, rate: int = MAX_RPS) -> int:
    """Requests per thread for a run of ``calls`` timed calls, or of ``seconds`` (at ``rate`` calls/s)."""
    return warmup + math.ceil((calls or rate * seconds) / concurrency)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of the processes (all their threads), fields 14 and 15 of /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text()
        after_name = stat[stat.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
        total += int(after_name[11]) + int(after_name[12])  # fields 14 and 15; field 3 is after_name[0]
    return total / CLOCK_TICKS


def drive(
    target: str | Sequence[str],
    method: str,
    requests: Sequence[Sequence[bytes]],
    warmup: int,
    metadata: Sequence[tuple[str, str]] = (),
    *,
    seconds: float | None = None,
    pids: Sequence[int] = (),
) -> Stats:
    """Run ``requests[t]`` on thread ``t`` in order, each call with ``metadata``; the first ``warmup``
    of each are not timed. Several targets (daemons sharing a database) take the threads in turn.
    With ``seconds``, a thread stops at the first call that would start after that; ``pids`` are the
    server processes whose CPU time the timed calls cost."""
    concurrency = len(requests)
    latencies: list[list[float]] = [[] for _ in requests]
    marks: list[tuple[float, float]] = []  # (clock, servers' CPU seconds) at the start and at the end

    def mark() -> None:
        marks.append((time.perf_counter(), cpu_seconds(pids)))

    start, end = threading.Barrier(concurrency, action=mark), threading.Barrier(concurrency, action=mark)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            address = target if isinstance(target, str) else target[index % len(target)]
            with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
                call = channel.unary_unary(method)
                mine = requests[index]
                for request in mine[:warmup]:
                    call(request, timeout=CALL_TIMEOUT, metadata=metadata)
                start.wait()
                deadline = math.inf if seconds is None else marks[0][0] + seconds
                timings = latencies[index]
                for request in mine[warmup:]:
                    started = time.perf_counter()
                    if started >= deadline:
                        break
                    call(request, timeout=CALL_TIMEOUT, metadata=metadata)
                    timings.append(time.perf_counter() - started)
                end.wait()
        except BaseException as exc:  # reported by the caller, after the other threads finish
            errors.append(exc)
            start.abort()
            end.abort()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    (began, cpu_began), (ended, cpu_ended) = marks
    timed = sorted(t for timings in latencies for t in timings)
    cpu_ms = (cpu_ended - cpu_began) * 1000 / len(timed) if pids else None
    return _stats(timed, concurrency, ended - began, cpu_ms)


def median(runs: Sequence[Stats]) -> Stats:
    """Each figure's median over repeated runs of one cell (so one disturbed run does not move it)."""
    values = {f.name: [getattr(run, f.name) for run in runs] for f in fields(Stats)}
    return Stats(**{name: None if None in column else statistics.median(column) for name, column in values.items()})


def _stats(latencies: list[float], concurrency: int, seconds: float, cpu_ms_per_call: float | None) -> Stats:
    def percentile(q: float) -> float:
        return latencies[max(0, math.ceil(q * len(latencies)) - 1)] * 1000

    return Stats(
        calls=len(latencies),
        concurrency=concurrency,
        seconds=seconds,
        rps=len(latencies) / seconds,
        mean_ms=sum(latencies) / len(latencies) * 1000,
        p50_ms=percentile(0.50),
        p90_ms=percentile(0.90),
        p99_ms=percentile(0.99),
        cpu_ms_per_call=cpu_ms_per_call,
    )
