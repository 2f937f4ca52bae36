"""The RPC scenarios on PostgreSQL, one daemon and two daemons sharing it, next to SQLite's.

Three setups, each on a fresh database holding ``rpc_suite.DATABASE_SESSIONS`` conversations,
each measured at once after the other on the Unix socket (the transport a sidecar's gateway
uses): SQLite at full durability, one daemon on PostgreSQL, two daemons on the same PostgreSQL
(the threads take turns between them, as two gateway hosts would). The PostgreSQL server is the
tests' throwaway one (``tests.helpers.postgres``) but durable, like SQLite's default: fsync on and
synchronous commit. The daemons reach it over loopback TCP, as they would a database on another
host, minus the network.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import load, populate, report, rpc_suite, scenarios, servers
from bench.profiles import Profile
from bench.servers import Server
from tests.helpers.postgres import PostgresServer, Unavailable

CONCURRENCY = (1, 8)
SETUPS = (("sqlite", 1), ("postgres", 1), ("postgres", 2))  # (backend, daemons)


def run(workdir: Path, profile: Profile) -> dict[str, Any]:
    """Every scenario in every setup; ``skipped`` says why when PostgreSQL cannot run here."""
    try:
        server = PostgresServer(durable=True)
    except Unavailable as exc:
        report.progress(f"PostgreSQL rows skipped: {exc}")
        return {"skipped": str(exc), "rows": []}
    try:
        rows = []
        for backend, count in SETUPS:
            report.progress(f"{backend}, {count} daemon{'s' * (count > 1)}: every scenario at c={CONCURRENCY}")
            rows += _setup(workdir / f"{backend}-{count}", backend, count, server, profile)
        return {"server": f"PostgreSQL {server.version()}", "rows": rows}
    finally:
        server.close()


def _setup(directory: Path, backend: str, count: int, server: PostgresServer, profile: Profile) -> list[dict[str, Any]]:
    daemons = _start(directory, backend, count, server)
    try:
        targets = [daemon.unix for daemon in daemons]
        rows = []
        for scenario in scenarios.prepare(targets[0]):
            for concurrency in CONCURRENCY:
                if concurrency < count:
                    continue  # a daemon would get no callers
                calls = profile.heavy_calls if scenario.heavy else profile.calls
                requests = scenario.requests(concurrency, profile.warmup + calls // concurrency)
                stats = load.drive(targets, scenario.method, requests, profile.warmup, servers.AUTHORIZATION)
                per_call = scenario.messages_per_call
                rows.append(
                    {
                        "backend": backend,
                        "daemons": count,
                        "scenario": scenario.name,
                        "concurrency": concurrency,
                        "sessiond": asdict(stats),
                        "messages_per_s": stats.rps * per_call if per_call else None,
                    }
                )
        return rows
    finally:
        for daemon in daemons:
            daemon.stop()


def _start(directory: Path, backend: str, count: int, server: PostgresServer) -> list[Server]:
    """``count`` daemons on one fresh, populated database."""
    database = directory / "sessiond.db"
    if backend == "sqlite":
        populate.add_sessions(database, rpc_suite.DATABASE_SESSIONS)
        return [servers.start_sessiond(directory, database)]
    dsn = server.fresh_dsn(tcp=True)
    populate.add_sessions(database, rpc_suite.DATABASE_SESSIONS, dsn=dsn)
    environment = {"SESSIOND_BACKEND": "postgres", "SESSIOND_PG_DSN": dsn}
    started: list[Server] = []
    try:
        for number in range(count):
            (directory / f"d{number}").mkdir(parents=True)
            started.append(servers.start_sessiond(directory / f"d{number}", database, environment=environment))
    except BaseException:
        for daemon in started:
            daemon.stop()
        raise
    return started
