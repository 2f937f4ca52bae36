"""Differential test of the stateful store: random operation sequences on the reference and on sessiond.

Each sequence runs on a fresh reference ``SessionStore`` and on a fresh sessiond daemon of its own
(its own database and socket) through the drop-in client, both on one clock; every result is
compared after each operation. How, and the known differences, in ``helpers/store_differential.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.daemons import Databases
from helpers.store_differential import daemon_client, reset_configs, run_sequence, sequences, starts

SEQUENCES = 520  # Hypothesis examples; the test asserts at least 500 ran


def test_random_operation_sequences_match_the_reference(databases: Databases) -> None:
    stats: Counter[str] = Counter()

    def connect(data: dict[str, Any], clock: Callable[[], datetime], directory: Path) -> Any:
        return daemon_client(data, clock, directory, databases.data(str(directory / "sessiond.db")))

    @settings(max_examples=SEQUENCES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data(), per_user=st.booleans(), start=starts, ops=sequences)
    def check(data: st.DataObject, per_user: bool, start: datetime, ops: list[tuple[Any, ...]]) -> None:
        reset = data.draw(reset_configs(start.hour), label="reset")
        run_sequence({"reset": reset, "group_sessions_per_user": per_user}, start, ops, stats, connect)

    check()
    print(f"\nstore differential: {stats['sequences']} sequences, {stats['operations']} operations")
    for name, count in sorted(stats.items()):
        if name not in ("sequences", "operations"):
            print(f"  {name}: {count}")
    assert stats["sequences"] >= 500
