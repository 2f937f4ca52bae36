"""What the daemon fixtures of ``conftest`` hand to tests: the run's databases, a started daemon,
and the daemon's RPC log lines."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import grpc
import pytest

from helpers.postgres import PostgresServer
from sessiond.daemon.server import Daemon
from sessiond.logs import JsonFormatter
from sessiond_client.v1 import session_store_pb2_grpc


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


class Running:
    """A started daemon and a channel to it."""

    def __init__(self, daemon: Daemon, channel: grpc.Channel):
        self.daemon, self.channel = daemon, channel
        self.stub = session_store_pb2_grpc.SessionStoreStub(channel)
        self.address = daemon.addresses[0]


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
