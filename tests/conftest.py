"""Shared fixtures and pytest hooks: the reference oracle on sys.path, real daemons on temp sockets,
and in-process stores. The classes they hand out live in ``helpers``.

``--backend=postgres`` (or ``SESSIOND_TEST_BACKEND=postgres``) runs the daemons and stores on a
throwaway PostgreSQL server (``helpers/postgres.py``) instead of SQLite files, so the same suites
check both backends; tests marked ``sqlite_only`` (they look at the file) are skipped then.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

import helpers.reference  # noqa: F401 - the project's one path trick: puts the reference oracle on sys.path

# Nothing a test starts may write to the user's real state directory.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="sessiond-tests-state-")

from helpers.clock import START, Clock  # noqa: E402
from helpers.daemons import Databases, JsonLines, Running  # noqa: E402
from helpers.postgres import PostgresServer, Unavailable  # noqa: E402
from sessiond.daemon import config as config_module  # noqa: E402
from sessiond.daemon.server import create_server, new_store, open_storage  # noqa: E402
from sessiond.storage.interface import DaemonStorage  # noqa: E402
from sessiond.store.session_store import SessionStore, utc_now  # noqa: E402

BACKENDS = ("sqlite", "postgres")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=BACKENDS,
        default=os.environ.get("SESSIOND_TEST_BACKEND", "sqlite"),
        help="storage backend of the daemons the tests start (default: $SESSIOND_TEST_BACKEND, else sqlite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: checks the SQLite file itself; skipped with --backend=postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("backend") == "postgres":
        skip = pytest.mark.skip(reason="SQLite only: it checks the database file")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run; skips, saying what to install, where there is none."""
    try:
        server = PostgresServer()
    except Unavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.close()


@pytest.fixture
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Databases:
    return Databases(request, tmp_path_factory)


@pytest.fixture
def clock() -> Clock:
    """The clock a test injects into its daemons and stores, at ``helpers.clock.START``."""
    return Clock(START)


@pytest.fixture
def start_daemon(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[Callable[..., Running]]:
    """Start a daemon from TOML-shaped config data on a fresh temp Unix socket and database."""
    started: list[Running] = []

    def start(data: dict[str, Any] | None = None, clock: Callable[[], datetime] = utc_now) -> Running:
        data = {**(data or {})}
        server = dict(data.get("server", {}))
        server.setdefault("socket", str(tmp_path_factory.mktemp("sock") / "sessiond.sock"))
        storage = dict(data.get("storage", {}))
        if "backend" not in storage:  # else the test chose its database itself
            storage.update(databases.data(storage.pop("path", None)))
        daemon = create_server(config_module.parse({**data, "server": server, "storage": storage}), clock=clock)
        daemon.start()
        channel = grpc.insecure_channel(daemon.addresses[0])
        grpc.channel_ready_future(channel).result(timeout=10)
        running = Running(daemon, channel)
        started.append(running)
        return running

    yield start
    for running in started:
        running.channel.close()
        running.daemon.stop(0)


@pytest.fixture
def daemon(start_daemon: Callable[..., Running]) -> Running:
    """A daemon with the default configuration."""
    return start_daemon()


@pytest.fixture
def open_store(tmp_path: Path, databases: Databases, clock: Clock) -> Iterator[Callable[..., SessionStore]]:
    """Open an in-process ``SessionStore`` from TOML-shaped config data, on the test's ``clock``: the
    storage and the store the daemon builds (``open_storage``, ``new_store``), without the daemon.

    Each call opens a new database: a SQLite file in ``tmp_path``, or with ``--backend=postgres`` a
    fresh PostgreSQL schema. Every storage opened is closed at teardown.
    """
    opened: list[DaemonStorage] = []

    def open_(data: dict[str, Any] | None = None) -> SessionStore:
        data = {**(data or {})}
        storage = dict(data.get("storage", {}))
        if "backend" not in storage:  # else the test chose its database itself
            storage.update(databases.data(storage.pop("path", None) or str(tmp_path / f"store-{len(opened)}.db")))
        config = config_module.parse({**data, "storage": storage})
        opened.append(open_storage(config))
        return new_store(opened[-1], config, clock)

    yield open_
    for storage in opened:
        storage.close()


@pytest.fixture
def store(open_store: Callable[..., SessionStore]) -> SessionStore:
    """An in-process store with the default configuration, on the test's ``clock``."""
    return open_store()


@pytest.fixture
def rpc_log() -> Iterator[JsonLines]:
    logger = logging.getLogger("sessiond.rpc")
    handler, level = JsonLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
