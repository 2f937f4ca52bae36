"""Shared fixtures: the reference oracle on sys.path, and real daemons on temp sockets."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

import reference  # noqa: F401 - the project's one path trick: puts the reference oracle on sys.path

# Nothing a test starts may write to the user's real state directory.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="sessiond-tests-state-")

from sessiond import config as config_module  # noqa: E402
from sessiond.server import Daemon, create_server  # noqa: E402
from sessiond.store import Clock, utc_now  # noqa: E402
from sessiond.v1 import session_store_pb2_grpc  # noqa: E402


class Running:
    """A started daemon and a channel to it."""

    def __init__(self, daemon: Daemon, channel: grpc.Channel):
        self.daemon, self.channel = daemon, channel
        self.stub = session_store_pb2_grpc.SessionStoreStub(channel)
        self.address = daemon.addresses[0]


@pytest.fixture
def start_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Running]]:
    """Start a daemon from TOML-shaped config data on a fresh temp Unix socket."""
    started: list[Running] = []

    def start(data: dict[str, Any] | None = None, clock: Clock = utc_now) -> Running:
        data = {**(data or {})}
        server = dict(data.get("server", {}))
        server.setdefault("socket", str(tmp_path_factory.mktemp("sock") / "sessiond.sock"))
        storage = {"path": str(tmp_path_factory.mktemp("db") / "sessiond.db"), **data.get("storage", {})}
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
