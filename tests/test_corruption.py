"""Damaged database files: refused with one line naming the file, never silently started empty."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helpers.daemons import Running
from sessiond.daemon import config as config_module
from sessiond.daemon.server import new_store
from sessiond.errors import StorageError
from sessiond.model import Source
from sessiond.storage.sqlite import SqliteStorage


def populated(tmp_path: Path, sessions: int = 2000) -> Path:
    """A closed database holding ``sessions`` sessions (several hundred KiB)."""
    database = tmp_path / "sessiond.db"
    storage = SqliteStorage(database, durable=False)
    store = new_store(storage, config_module.parse({"storage": {"path": str(database)}}))
    for number in range(sessions):
        store.get_or_create(Source(platform="telegram", chat_id=str(number), user_id=str(number)))
    storage.close()
    return database


def serve(database: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "sessiond.cli",
        "serve",
        "--socket",
        str(tmp_path / "s.sock"),
        "--db",
        str(database),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, "SESSIOND_LOG_LEVEL": "error"}
    )


def test_a_truncated_database_is_refused_at_open(tmp_path: Path) -> None:
    database = populated(tmp_path)
    size = database.stat().st_size
    with open(database, "r+b") as file:
        file.truncate(size // 2)
    with pytest.raises(StorageError, match="truncated") as refused:
        SqliteStorage(database)
    assert str(database) in str(refused.value)
    assert database.stat().st_size == size // 2  # left as it was, for the operator


def test_garbage_pages_stop_the_daemon_with_the_file_named(tmp_path: Path) -> None:
    database = populated(tmp_path)
    with open(database, "r+b") as file:
        file.seek(20 * 4096)
        file.write(os.urandom(8 * 4096))
    result = serve(database, tmp_path)
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("sessiond: database error: ") and str(database) in last
    assert "restore a backup" in last and "Traceback" not in result.stderr


def test_health_follows_the_database_file(start_daemon: Callable[..., Running], tmp_path: Path) -> None:
    """A database removed under the running daemon turns health NOT_SERVING (writes would be lost)."""
    database = tmp_path / "watched.db"
    running = start_daemon({"storage": {"path": str(database), "check_seconds": 0.05}})
    health = health_pb2_grpc.HealthStub(running.channel)
    statuses = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert next(statuses).status == health_pb2.HealthCheckResponse.SERVING
    database.unlink()
    assert next(statuses).status == health_pb2.HealthCheckResponse.NOT_SERVING
    statuses.cancel()
