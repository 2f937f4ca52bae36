"""The daemon: a grpcio server with the store service, health checks and reflection."""

from __future__ import annotations

import logging
import os
import socket
import stat
import threading
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sessiond.config import Config
from sessiond.errors import ConfigError, StorageError
from sessiond.service import SessionStoreService
from sessiond.sqlite_storage import SqliteStorage
from sessiond.store import Clock, SessionStore, utc_now
from sessiond.v1 import session_store_pb2, session_store_pb2_grpc

log = logging.getLogger("sessiond.server")

SERVICE_NAME = session_store_pb2.DESCRIPTOR.services_by_name["SessionStore"].full_name
# Health name that is NOT_SERVING while the database's disk is full (reads still work).
WRITES_SERVICE_NAME = "sessiond.writes"


def _prepare_socket(path: Path) -> None:
    """A private directory for the socket, and no live daemon already on it.

    A socket file left by a crashed daemon is removed; one that answers is not stolen.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_uid != os.getuid():
        raise ConfigError(f"server.socket: {path.parent} belongs to another user")
    if not os.path.lexists(path):
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise ConfigError(f"server.socket: {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()
            return
    raise ConfigError(f"server.socket: another process is listening on {path}")


def _bind(server: grpc.Server, config: Config) -> list[str]:
    addresses = []
    if config.socket:
        _prepare_socket(config.socket)
        server.add_insecure_port(f"unix:{config.socket}")
        os.chmod(config.socket, 0o600)
        addresses.append(f"unix:{config.socket}")
    if config.tcp:
        addresses.append(_bind_tcp(server, config.tcp, "server.tcp"))
    return addresses


def _bind_tcp(server: grpc.Server, address: str, key: str) -> str:
    """Bind ``host:port`` (port 0 picks one); the address actually bound."""
    host, _, _ = address.rpartition(":")
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if not port:
        raise ConfigError(f"{key}: cannot listen on {address!r}")
    return f"{host}:{port}"


def _probe_server(config: Config, servicer: health.HealthServicer) -> tuple[grpc.Server | None, list[str]]:
    """The optional health-only TCP listener for probes (Kubernetes' grpc probes need TCP): no data RPCs."""
    if not config.health_tcp:
        return None, []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe"))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return server, [f"health:{_bind_tcp(server, config.health_tcp, 'server.health_tcp')}"]


def _serving(ok: bool) -> int:
    return health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Daemon:
    """A bound, not yet started, sessiond server."""

    server: grpc.Server
    health: health.HealthServicer
    addresses: list[str]
    storage: SqliteStorage
    probe_server: grpc.Server | None = None
    check_seconds: float = 5.0
    _checks: threading.Thread | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    failure: StorageError | None = None

    def start(self) -> None:
        self.server.start()
        if self.probe_server is not None:
            self.probe_server.start()
        for name in ("", SERVICE_NAME, WRITES_SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.storage.on_writable = self._writable
        log.info("serving", extra={"addresses": self.addresses})
        threading.Thread(target=self._verify, name="verify", daemon=True).start()
        self._checks = threading.Thread(target=self._watch_database, args=(self.check_seconds,), name="db-check")
        self._checks.start()

    def _writable(self, writable: bool) -> None:
        self.health.set(WRITES_SERVICE_NAME, _serving(writable))

    def _watch_database(self, interval: float) -> None:
        """Health follows the database: NOT_SERVING while a cheap check fails, SERVING once it passes."""
        healthy = True
        while not self.stop_requested.wait(interval):
            try:
                self.storage.check()
                now_healthy, error = True, ""
            except StorageError as exc:
                now_healthy, error = False, str(exc)
            if now_healthy != healthy:
                healthy = now_healthy
                log.log(logging.INFO if healthy else logging.ERROR, "database check", extra={"error": error})
                for name in ("", SERVICE_NAME):
                    self.health.set(name, _serving(healthy))

    def _verify(self) -> None:
        """The full integrity check, after serving starts; a bad database stops the daemon."""
        try:
            self.storage.verify()
        except StorageError as exc:
            log.error("database failed its integrity check; stopping", extra={"error": str(exc)})
            self.failure = exc
            self.health.enter_graceful_shutdown()
            self.stop_requested.set()

    def stop(self, grace: float) -> None:
        """Health goes NOT_SERVING first, then in-flight RPCs get ``grace`` seconds to finish."""
        self.stop_requested.set()  # also ends the database checks
        self.health.enter_graceful_shutdown()
        log.info("draining", extra={"grace_seconds": grace})
        self.server.stop(grace).wait()
        if self._checks is not None:
            self._checks.join()  # before the storage closes the connection it may be reading on
        if self.probe_server is not None:
            self.probe_server.stop(0).wait()
        self.storage.close()
        log.info("stopped")


def grpc_server(config: Config) -> grpc.Server:
    """A grpcio server with sessiond's worker pool and options (the benchmark's echo uses it too)."""
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc"),
        options=[
            ("grpc.max_receive_message_length", config.limits.max_request_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )


def create_server(config: Config, clock: Clock = utc_now) -> Daemon:
    """Open the database, build and bind the daemon; tests pass port 0, temp paths and a clock."""
    storage = SqliteStorage(config.database, durable=config.durable)
    try:
        server = grpc_server(config)
        service = SessionStoreService(config, SessionStore(storage, config, clock))
        session_store_pb2_grpc.add_SessionStoreServicer_to_server(service, server)
        health_servicer = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        probe_server, probe_addresses = _probe_server(config, health_servicer)
        addresses = _bind(server, config) + probe_addresses
        return Daemon(server, health_servicer, addresses, storage, probe_server, config.check_seconds)
    except BaseException:
        storage.close()
        raise
