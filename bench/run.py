"""``python -m bench.run [--quick | --full] [--postgres-only]``: run every measurement, print the table, save the JSON.

Run it from the project root (``make bench``, ``make bench-quick``): ``bench`` and the shared
oracle helper ``tests.helpers.reference`` import from there. Everything it creates (databases, sockets)
lives in one temporary directory, removed at the end; only ``bench/results/*.json`` stays.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import coordination, postgres_suite, reference_store, report, retention, rpc_suite, scaling, search
from bench.profiles import DEFAULT, FULL, QUICK, Profile


def _arguments(argv: list[str] | None) -> tuple[Profile, bool]:
    description = "Benchmark sessiond against empty echo servers and the reference store."
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=description)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="reduced smoke run for CI (under two minutes)")
    size.add_argument("--full", action="store_true", help="more calls, and the reference at 100k sessions")
    parser.add_argument("--postgres-only", action="store_true", help="only the PostgreSQL rows (and SQLite's beside)")
    args = parser.parse_args(argv)
    return QUICK if args.quick else FULL if args.full else DEFAULT, args.postgres_only


def measure_postgres(profile: Profile, workdir: Path, results: dict[str, Any]) -> None:
    """The scenarios on SQLite and on one and two daemons sharing a PostgreSQL (``postgres_suite``)."""
    started = time.perf_counter()
    report.progress("RPC scenarios on SQLite, then on one and on two daemons sharing one PostgreSQL")
    results["postgres"] = postgres_suite.run(workdir, profile)
    results["phases_s"]["postgres"] = time.perf_counter() - started


def measure_search(profile: Profile, workdir: Path, results: dict[str, Any]) -> None:
    """Full-text search on a store of ``profile.search_messages`` messages, and appends with the index and without."""
    started = time.perf_counter()
    report.progress(
        f"search: {profile.search_messages:,} messages, the queries at c=1 and c=8, then appends with the index"
        " and without"
    )
    results["search"] = search.run(workdir, profile)
    results["phases_s"]["search"] = time.perf_counter() - started


def measure_retention(profile: Profile, workdir: Path, results: dict[str, Any]) -> None:
    """DeleteSessions of half of ``profile.retention_sessions`` sessions under live traffic, then Admin.Vacuum."""
    started = time.perf_counter()
    report.progress(
        f"retention: DeleteSessions of half of {profile.retention_sessions:,} sessions with live callers, then"
        " Admin.Vacuum"
    )
    results["retention"] = retention.run(workdir, profile)
    results["phases_s"]["retention"] = time.perf_counter() - started


def measure_coordination(profile: Profile, workdir: Path, results: dict[str, Any]) -> None:
    """Fenced appends, linked DMs, turns and handoffs beside their baselines (``bench.coordination``)."""
    started = time.perf_counter()
    report.progress("links, handoffs, turns: each call beside its baseline at c=1 and c=8")
    results["coordination"] = coordination.run(workdir, profile)
    results["phases_s"]["coordination"] = time.perf_counter() - started


def measure(profile: Profile, workdir: Path, postgres_only: bool = False) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {
        "profile": asdict(profile),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": report.machine(),
        "phases_s": {},
    }
    if postgres_only:
        measure_postgres(profile, workdir, results)
        results["total_s"] = time.perf_counter() - started
        return results
    report.progress("RPC scenarios against the grpc.aio and the grpcio sync echo servers, both durability modes")
    results["rpc"], results["fsync"] = rpc_suite.run(workdir, profile)
    results["phases_s"]["rpc"] = time.perf_counter() - started
    report.progress(f"scaling over {', '.join(f'{n:,}' for n in scaling.sizes(profile))} sessions, then memory")
    results["scaling"], results["memory"] = scaling.run(workdir, profile)
    results["phases_s"]["scaling"] = time.perf_counter() - started - results["phases_s"]["rpc"]
    report.progress(f"reference store at {', '.join(f'{n:,}' for n in profile.reference_sizes)} sessions")
    sessiond_ms = {row["sessions"]: row["get_or_create"]["p50_ms"] for row in results["scaling"]}
    results["reference"] = reference_store.run(workdir, profile, sessiond_ms)
    results["phases_s"]["reference"] = time.perf_counter() - started - sum(results["phases_s"].values())
    measure_search(profile, workdir, results)
    measure_retention(profile, workdir, results)
    measure_coordination(profile, workdir, results)
    measure_postgres(profile, workdir, results)
    results["total_s"] = time.perf_counter() - started
    return results


def main(argv: list[str] | None = None) -> int:
    profile, postgres_only = _arguments(argv)
    with tempfile.TemporaryDirectory(prefix="sessiond-bench-") as workdir:
        results = measure(profile, Path(workdir), postgres_only)
    sys.stdout.write(report.render(results))
    path = report.save(results)
    sys.stdout.write(f"\nresults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
