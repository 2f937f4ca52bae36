"""The targets of issue 5, and the checks that put a pass/miss mark next to a measurement.

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


RPS_RATIO = Target("rps_ratio", "hot RPCs (get_or_create existing, append 1) rps / echo rps, c=1 and 8", ">=", 0.85)
ADDED_P99 = Target("added_p99_ms", "hot RPCs: added p99 over echo (ms)", "<", 0.5)
SCALING = Target("scaling_ratio", "get_or_create latency at 1M sessions / at 1k", "<=", 1.25)
REFERENCE_1K = Target("reference_1k", "reference ms/op / sessiond ms/op at 1k sessions", ">=", 10)
REFERENCE_100K = Target("reference_100k", "reference ms/op / sessiond ms/op at 100k sessions (--full)", ">=", 1000)
APPEND = Target("append_messages_per_s", "batched append throughput (messages/s)", ">=", 20_000)
COLD_START = Target("cold_start_s", "cold start to SERVING with 1M sessions (s)", "<", 1.0)
RSS = Target("rss_mb", "daemon RSS with 1M sessions and 10M messages (MB)", "<", 150)
ALL = (RPS_RATIO, ADDED_P99, SCALING, REFERENCE_1K, REFERENCE_100K, APPEND, COLD_START, RSS)


def check(target: Target, value: float, where: str) -> dict[str, Any]:
    """One measurement against one target, as stored in the JSON and marked in the table."""
    return {"target": target.key, "where": where, "value": value, "bound": str(target), "ok": target.met(value)}
