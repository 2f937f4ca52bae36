"""The in-process store sessiond replaces: the reference oracle's ``get_or_create_session``.

The reference rewrites and fsyncs its whole JSON index on every call, so a call costs more
the more sessions it holds; calls are repeated within a time budget (at least ``MIN_CALLS``)
rather than a fixed count. Its clock is frozen for the measurement so no stored session can
turn stale (daily or idle reset) half-way. Compared with sessiond's p50 at the same size.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import populate, targets
from bench.profiles import Profile
from tests.helpers.reference import oracle

MIN_CALLS, MAX_CALLS = 3, 100
TARGETS = {1_000: targets.REFERENCE_1K, 100_000: targets.REFERENCE_100K}


def run(workdir: Path, profile: Profile, sessiond_ms: dict[int, float]) -> list[dict[str, Any]]:
    """One row per reference size; ``sessiond_ms`` maps a size to sessiond's p50 there."""
    rows = []
    for size in profile.reference_sizes:
        row = _measure(workdir, size, profile.reference_seconds)
        row["sessiond_ms"] = sessiond_ms[size]
        row["ratio"] = row["reference_ms"] / row["sessiond_ms"]
        row["checks"] = [targets.check(TARGETS[size], row["ratio"], f"{size:,} sessions")] if size in TARGETS else []
        rows.append(row)
    return rows


def _measure(workdir: Path, size: int, budget: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=workdir) as directory, oracle.frozen_time(datetime.now()):
        started = time.perf_counter()
        store = oracle.make_store(Path(directory), {}, populate=[populate.source(i) for i in range(size)])
        populate_s = time.perf_counter() - started
        existing = oracle.make_source(populate.source(size // 2))
        first = store.get_or_create_session(existing)  # warm-up
        timings: list[float] = []
        deadline = time.perf_counter() + budget
        while len(timings) < MIN_CALLS or (len(timings) < MAX_CALLS and time.perf_counter() < deadline):
            started = time.perf_counter()
            entry = store.get_or_create_session(existing)
            timings.append(time.perf_counter() - started)
        if entry.session_id != first.session_id:
            raise RuntimeError("the reference started a new session for an existing key")
    return {
        "sessions": size,
        "populate_s": populate_s,
        "calls": len(timings),
        "reference_ms": statistics.median(timings) * 1000,
    }
