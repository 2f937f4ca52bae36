"""The targets of issues 5, 15 and 17, and the checks that put a pass/miss mark next to a measurement.

Issue 15's four (the five hot RPCs on the Unix socket against their limit, see ``rpc_suite``)
replace issue 5's rps ratio and added p99. Issue 17's: appends keep 0.8 of their throughput with
the full-text index on (``search``).

Nothing here fails a run: a benchmark reports, it does not assert (the numbers are noisy).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

_OPERATORS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Target:
    key: str
    what: str
    op: str
    bound: float

    def met(self, value: float) -> bool:
        return bool(_OPERATORS[self.op](value, self.bound))

    def __str__(self) -> str:
        return f"{self.op} {self.bound:,g}"


RPS_C8 = Target("rps_c8", "hot RPCs, c=8, full: rps / the faster echo's", ">=", 0.85)
RPS_C1 = Target(
    "rps_c1", "hot RPCs, c=1, full: rps / limit (writes: 1/(1/echo rps + fsync s); reads: echo)", ">=", 0.85
)
RPS_RELAXED = Target("rps_relaxed", "hot writes, c=1, relaxed: rps / the faster echo's", ">=", 0.85)
P99_C8 = Target("p99_ratio", "hot RPCs, c=8, full: p99 / the faster echo's p99", "<=", 1.5)
SCALING = Target("scaling_ratio", "get_or_create latency at 1M sessions / at 1k", "<=", 1.25)
REFERENCE_1K = Target("reference_1k", "reference ms/op / sessiond ms/op at 1k sessions", ">=", 10)
REFERENCE_100K = Target("reference_100k", "reference ms/op / sessiond ms/op at 100k sessions (--full)", ">=", 1000)
APPEND = Target("append_messages_per_s", "batched append throughput (messages/s)", ">=", 20_000)
COLD_START = Target("cold_start_s", "cold start to SERVING with 1M sessions (s)", "<", 1.0)
RSS = Target("rss_mb", "daemon RSS with 1M sessions and 10M messages (MB)", "<", 150)
SEARCH_APPEND = Target(
    "search_append_ratio", "append messages/s with the full-text index / without (same run, issue 17)", ">=", 0.8
)
ALL = (
    RPS_C8, RPS_C1, RPS_RELAXED, P99_C8, SCALING, REFERENCE_1K, REFERENCE_100K, APPEND, COLD_START, RSS, SEARCH_APPEND
)  # fmt: skip


def check(target: Target, value: float, where: str) -> dict[str, Any]:
    """One measurement against one target, as stored in the JSON and marked in the table."""
    return {"target": target.key, "where": where, "value": value, "bound": str(target), "ok": target.met(value)}
