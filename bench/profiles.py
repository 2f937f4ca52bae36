"""How much each run measures: ``quick`` (CI smoke, < 2 minutes), ``default`` (``make bench``), ``full``."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Profile:
    name: str
    calls: int  # timed calls per run, all threads together
    heavy_calls: int  # the same for heavy scenarios (100-message appends, 200-message loads, listings)
    warmup: int  # untimed calls per thread before each run
    rounds: int  # runs of each server per cell that a target applies to, alternating (their median counts)
    target_seconds: float  # of timed calls in each of those runs
    scaling_sizes: tuple[int, ...]  # stored sessions for the scaling rows; the last gets the memory row
    reference_sizes: tuple[int, ...]  # stored sessions for the reference comparison
    messages_per_session: int  # stored at the largest scaling size for the memory row
    reference_seconds: float  # time budget per reference size (at least 3 calls, at most 100)
    search_messages: int  # stored transcript messages (10 per session) the search queries run on
    search_seconds: float  # of timed calls per search query and concurrency
    search_rounds: int  # of each append cell with the index and without, in turns (``target_seconds`` each)
    retention_sessions: int  # stored sessions (10 messages each) of which ``retention`` deletes half
    retention_baseline_seconds: float  # of live calls before the deletes start (their baseline)


QUICK = Profile(
    name="quick",
    calls=200,
    heavy_calls=60,
    warmup=5,
    rounds=3,
    target_seconds=0.2,
    scaling_sizes=(1_000, 10_000),
    reference_sizes=(100, 1_000, 10_000),
    messages_per_session=10,
    reference_seconds=1.0,
    search_messages=20_000,
    search_seconds=0.2,
    search_rounds=1,
    retention_sessions=2_000,
    retention_baseline_seconds=1.0,
)
DEFAULT = Profile(
    name="default",
    calls=1_000,
    heavy_calls=300,
    warmup=20,
    rounds=3,
    target_seconds=1.0,
    scaling_sizes=(1_000, 100_000, 1_000_000),
    reference_sizes=(100, 1_000, 10_000),
    messages_per_session=10,
    reference_seconds=3.0,
    search_messages=1_000_000,
    search_seconds=2.0,
    search_rounds=3,
    retention_sessions=50_000,
    retention_baseline_seconds=5.0,
)
FULL = replace(
    DEFAULT,
    name="full",
    calls=3_000,
    heavy_calls=600,
    target_seconds=2.0,
    reference_sizes=(100, 1_000, 10_000, 100_000),
    search_seconds=4.0,
    retention_sessions=100_000,
    retention_baseline_seconds=10.0,
)
