"""The closed-loop load driver: ``concurrency`` threads, each on its own channel, call back to back.

Requests and responses travel as bytes (no serializers), so the client does the same work for
sessiond and for the echo server and the difference is the server's. Each thread first sends
its warm-up calls (connection set-up, caches), then all threads start the timed calls together.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

# A channel of its own per thread: grpcio otherwise shares one connection between channels to
# the same target (the global subchannel pool), and concurrency would be one HTTP/2 connection.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
CALL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Stats:
    """One measured run: throughput and latency percentiles (ms) of the timed calls."""

    calls: int
    concurrency: int
    seconds: float
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


def drive(
    target: str | Sequence[str],
    method: str,
    requests: Sequence[Sequence[bytes]],
    warmup: int,
    metadata: Sequence[tuple[str, str]] = (),
) -> Stats:
    """Run ``requests[t]`` on thread ``t`` in order, each call with ``metadata``; the first ``warmup``
    of each are not timed. Several targets (daemons sharing a database) take the threads in turn."""
    concurrency = len(requests)
    latencies: list[list[float]] = [[] for _ in requests]
    bounds: list[float] = []
    barrier = threading.Barrier(concurrency, action=lambda: bounds.append(time.perf_counter()))
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            address = target if isinstance(target, str) else target[index % len(target)]
            with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
                call = channel.unary_unary(method)
                mine = requests[index]
                for request in mine[:warmup]:
                    call(request, timeout=CALL_TIMEOUT, metadata=metadata)
                barrier.wait()
                timings = latencies[index]
                for request in mine[warmup:]:
                    started = time.perf_counter()
                    call(request, timeout=CALL_TIMEOUT, metadata=metadata)
                    timings.append(time.perf_counter() - started)
                bounds.append(time.perf_counter())
        except BaseException as exc:  # reported by the caller, after the other threads finish
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return _stats(sorted(t for timings in latencies for t in timings), concurrency, max(bounds) - bounds[0])


def _stats(latencies: list[float], concurrency: int, seconds: float) -> Stats:
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
    )
