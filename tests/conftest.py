"""Shared fixtures: the reference oracle on sys.path, and real daemons on temp sockets.

``--backend=postgres`` (or ``SESSIOND_TEST_BACKEND=postgres``) runs the daemons on a throwaway
PostgreSQL server (``tests/postgres.py``) instead of SQLite files, so the same suites check
both backends; tests marked ``sqlite_only`` (they look at the file) are skipped then.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

import reference  # noqa: F401 - the project's one path trick: puts the reference oracle on sys.path

# Nothing a test starts may write to the user's real state directory.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="sessiond-tests-state-")

from postgres import PostgresServer, Unavailable  # noqa: E402
from sessiond.daemon import config as config_module  # noqa: E402
from sessiond.daemon.server import Daemon, create_server  # noqa: E402
from sessiond.logs import JsonFormatter  # noqa: E402
from sessiond.store.session_store import utc_now  # noqa: E402
from sessiond_client.v1 import session_store_pb2_grpc  # noqa: E402

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


class Databases:
    """The ``[storage]`` config data of the daemons a test starts, on the run's backend.

    Each call without a path is a new, empty database; the same path again is the same database
    (a restart), as SQLite files are: on PostgreSQL each path stands for a schema of its own.
    """

    def __init__(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
        self.request, self.tmp_path_factory = request, tmp_path_factory
        self.backend: str = request.config.getoption("backend")
        self._dsns: dict[str, str] = {}

    def data(self, path: str | None = None) -> dict[str, Any]:
        path = path or str(self.tmp_path_factory.mktemp("db") / "sessiond.db")
        if self.backend == "sqlite":
            return {"path": path}
        if path not in self._dsns:
            server: PostgresServer = self.request.getfixturevalue("postgres_server")
            self._dsns[path] = server.fresh_dsn()
        return {"backend": "postgres", "dsn": self._dsns[path]}


@pytest.fixture
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Databases:
    return Databases(request, tmp_path_factory)


class Clock:
    """A daemon's clock: an aware UTC instant that moves only when a test advances it."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Running:
    """A started daemon and a channel to it."""

    def __init__(self, daemon: Daemon, channel: grpc.Channel):
        self.daemon, self.channel = daemon, channel
        self.stub = session_store_pb2_grpc.SessionStoreStub(channel)
        self.address = daemon.addresses[0]


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


class JsonLines(logging.Handler):
    """The daemon's RPC log lines as the JSON objects it writes (it runs in this process)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []
        self.written = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.written:
            self.lines.append(json.loads(self.format(record)))
            self.written.notify_all()

    def answered(self, method: str, code: str, messages: tuple[str, ...] = ("rpc",)) -> dict[str, Any]:
        """The ``rpc`` line of a call, once written: an error's line (and its metric) comes just after
        the status reaches the caller, a success's just before. ``messages``: the lines that count
        (a call its caller gave up on also ends in an "abandoned rpc finished" line)."""

        def line() -> dict[str, Any] | None:
            return next(
                (x for x in self.lines if x["msg"] in messages and (x.get("method"), x.get("code")) == (method, code)),
                None,
            )

        with self.written:
            found = self.written.wait_for(line, timeout=10)
        assert found is not None, f"no log line for {method} {code}"
        return found


@pytest.fixture
def rpc_log() -> Iterator[JsonLines]:
    logger = logging.getLogger("sessiond.rpc")
    handler, level = JsonLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
