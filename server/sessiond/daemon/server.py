"""The daemon: a grpc.aio server with the store service, health checks and reflection.

Why asyncio: a request is received on the event loop, and only a complete request takes one of
the ``max_workers`` store threads. With grpcio's thread-per-call server, a client that sends
headers and half a message held a worker until it finished or went away, so a few stalled
clients starved everyone else. The event loop runs in a thread of its own, so the ``Daemon``
API (start, stop, health) stays plain blocking calls for the command line and the tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import threading
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sessiond.daemon.config import Config
from sessiond.daemon.maintenance import Maintenance
from sessiond.errors import ConfigError, StorageError
from sessiond.rpc import auth
from sessiond.rpc.admin_service import AdminService
from sessiond.rpc.framework import Runtime, add_to_server
from sessiond.rpc.metrics import Metrics, MetricsEndpoint
from sessiond.rpc.session_service import Connected, SessionStoreService
from sessiond.storage.interface import DaemonStorage, Storage
from sessiond.storage.sqlite import SqliteStorage
from sessiond.store.session_store import Clock, SessionStore, utc_now
from sessiond_client.v1 import admin_pb2
from sessiond_client.v1 import session_store_pb2 as pb

log = logging.getLogger("sessiond.server")
T = TypeVar("T")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["SessionStore"].full_name
# Health name that is NOT_SERVING while the database's disk is full (reads still work).
WRITES_SERVICE_NAME = "sessiond.writes"
DAEMON_HEALTH_NAMES = ("", SERVICE_NAME)


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


def _bind(server: grpc.aio.Server, config: Config) -> list[str]:
    """Bind the Unix socket, if configured (TCP has a server of its own: ``_tcp_server``)."""
    if not config.socket:
        return []
    _prepare_socket(config.socket)
    server.add_insecure_port(f"unix:{config.socket}")
    os.chmod(config.socket, 0o600)
    return [f"unix:{config.socket}"]


def _bind_tcp(server: grpc.aio.Server, address: str, key: str, tls: grpc.ServerCredentials | None = None) -> str:
    """Bind ``host:port`` (port 0 picks one), with TLS when given; the address actually bound."""
    host, _, _ = address.rpartition(":")
    try:
        port = server.add_secure_port(address, tls) if tls else server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if not port:
        hint = " (or security.tls_cert and tls_key are not a PEM certificate and its key)" if tls else ""
        raise ConfigError(f"{key}: cannot listen on {address!r}{hint}")
    return f"{host}:{port}"


def _tcp_server(
    config: Config, with_services: Callable[[grpc.aio.Server], grpc.aio.Server]
) -> tuple[grpc.aio.Server | None, list[str]]:
    """The optional TCP listener: every service, behind TLS and/or the bearer token (``auth``).

    A server of its own, so that callers on the Unix socket, which its file permissions already
    vouch for, need no token.
    """
    if not config.tcp:
        return None, []
    server = with_services(grpc_server(config, auth.interceptors(config.security)))
    return server, [_bind_tcp(server, config.tcp, "server.tcp", auth.server_credentials(config.security))]


def _probe_server(config: Config, servicer: health.aio.HealthServicer) -> tuple[grpc.aio.Server | None, list[str]]:
    """The optional health-only TCP listener for probes (Kubernetes' grpc probes need TCP): no data RPCs."""
    if not config.health_tcp:
        return None, []
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return server, [f"health:{_bind_tcp(server, config.health_tcp, 'server.health_tcp')}"]


def _metrics_endpoint(config: Config, metrics: Metrics) -> tuple[MetricsEndpoint | None, list[str]]:
    """The optional Prometheus endpoint. It serves at once: open it after every bind that may fail."""
    if not config.metrics_address:
        return None, []
    endpoint = MetricsEndpoint(config.metrics_address, metrics.registry)
    return endpoint, [f"metrics:{endpoint.url}"]


def _serving(ok: bool) -> int:
    return health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING


NOT_SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING)
HealthContext = grpc.aio.ServicerContext[health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse]


class _LastSent:
    """The context a stock Watch writes through, remembering the last status delivered."""

    def __init__(self, context: HealthContext):
        self.context = context
        self.status: int | None = None

    async def write(self, response: health_pb2.HealthCheckResponse) -> None:
        await self.context.write(response)
        self.status = response.status


class HealthServicer(health.aio.HealthServicer):
    """The stock health servicer, whose Watch streams the daemon ends when it stops.

    A Watch never finishes by itself, so an open one (a load balancer's, a gRPC client's health
    checking) would hold every shutdown for the whole grace period. ``end_watches`` ends each
    with an OK status once it has delivered NOT_SERVING.
    """

    def __init__(self) -> None:
        super().__init__()
        self._watches: set[asyncio.Future[None]] = set()
        self._ending = False

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: HealthContext) -> None:
        sent = _LastSent(context)
        # The stock Watch only writes through its context: that much of one is all _LastSent is.
        watch = asyncio.ensure_future(super().Watch(request, cast(HealthContext, sent)))
        self._watches.add(watch)
        try:
            await watch
        except asyncio.CancelledError:
            if not self._ending:  # the caller went away
                raise
            if sent.status != NOT_SERVING.status:
                await context.write(NOT_SERVING)
        finally:
            self._watches.discard(watch)

    def end_watches(self) -> None:
        """Call after ``enter_graceful_shutdown``."""
        self._ending = True
        for watch in self._watches:
            watch.cancel()


class EventLoopThread:
    """An asyncio loop running in a thread of its own; other threads hand it coroutines."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-loop", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def post(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` on the loop without waiting (posts run in order)."""
        asyncio.run_coroutine_threadsafe(work, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@dataclass
class Daemon:
    """A bound, not yet started, sessiond server."""

    loop: EventLoopThread
    server: grpc.aio.Server  # the Unix socket's (with no port when server.socket is off)
    service: SessionStoreService
    health: HealthServicer
    addresses: list[str]
    storage: DaemonStorage
    probe_server: grpc.aio.Server | None = None
    check_seconds: float = 5.0
    tcp_server: grpc.aio.Server | None = None
    metrics_endpoint: MetricsEndpoint | None = None
    maintenance: Maintenance | None = None
    _checks: threading.Thread | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    failure: StorageError | None = None
    _stop_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    def start(self) -> None:
        self.loop.run(self._start())
        self.storage.on_writable = self._writable
        self.storage.on_events = self.service.events.notify
        log.info("serving", extra={"addresses": self.addresses})
        if self.maintenance is not None:
            self.maintenance.start(self.stop_requested)
        threading.Thread(target=self._verify, name="verify", daemon=True).start()
        self._checks = threading.Thread(target=self._watch_database, args=(self.check_seconds,), name="db-check")
        self._checks.start()

    async def _start(self) -> None:
        for server in (self.server, self.tcp_server, self.probe_server):
            if server is not None:
                await server.start()
        await self._set_health((*DAEMON_HEALTH_NAMES, WRITES_SERVICE_NAME), True)

    async def _set_health(self, names: Iterable[str], ok: bool) -> None:
        for name in names:
            await self.health.set(name, _serving(ok))

    def _writable(self, writable: bool) -> None:
        self.loop.post(self._set_health((WRITES_SERVICE_NAME,), writable))

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
                self.loop.post(self._set_health(DAEMON_HEALTH_NAMES, healthy))

    def _verify(self) -> None:
        """The full integrity check, after serving starts; a bad database stops the daemon."""
        try:
            self.storage.verify()
        except StorageError as exc:
            log.error("database failed its integrity check; stopping", extra={"error": str(exc)})
            self.failure = exc
            self.loop.post(self.health.enter_graceful_shutdown())
            self.stop_requested.set()

    def stop(self, grace: float) -> None:
        """Health goes NOT_SERVING first, then in-flight RPCs get ``grace`` seconds to finish.

        Stopping a stopped daemon does nothing.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True
            self.stop_requested.set()  # also ends the database checks
            log.info("draining", extra={"grace_seconds": grace})
            self.loop.run(self._stop(grace))
            self.loop.close()
            self.service.runtime.threads.shutdown(wait=True)  # store work that outlived a cancelled call
            if self._checks is not None:
                self._checks.join()  # before the storage closes the connection it may be reading on
            if self.maintenance is not None:
                self.maintenance.join()  # likewise
            if self.metrics_endpoint is not None:
                self.metrics_endpoint.close()
            self.storage.close()
            log.info("stopped")

    async def _stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        self.health.end_watches()  # they have just been told NOT_SERVING; waiting the grace on them helps no one
        self.service.events.close()  # event streams never finish by themselves: end them, not the grace
        await asyncio.gather(*(server.stop(grace) for server in (self.server, self.tcp_server) if server is not None))
        if self.probe_server is not None:
            await self.probe_server.stop(0)


def grpc_server(config: Config, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> grpc.aio.Server:
    """A grpc.aio server with sessiond's options (the benchmark's echo uses it too); call it on the loop."""
    return grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", config.limits.max_request_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )


async def _build(config: Config, storage: DaemonStorage, clock: Clock, loop: EventLoopThread) -> Daemon:
    metrics = Metrics(lambda: storage.stats(clock()))
    # Store work that blocks (or cannot run on the loop) runs here; the event loop only moves bytes.
    threads = futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc")
    store = new_store(storage, config, clock)
    security = config.security
    scoped = security.scoped_tokens or security.scoped_clients
    authorize = auth.Authorizer(security, config.namespace, store.session_namespaces, threads) if scoped else None
    runtime = Runtime(storage, threads, metrics, authorize)
    connected = Connected(config.connected_platforms, config.home_channels)
    service = SessionStoreService(store, runtime, config.limits, connected)
    admin = AdminService(storage, store, runtime, config.backup_dir, config.database.parent, config.retention_policy)
    health_servicer = HealthServicer()

    def with_services(server: grpc.aio.Server) -> grpc.aio.Server:
        """Every service on ``server``; the socket's and the TCP servers share these servicers."""
        names = (add_to_server(service, pb, server), add_to_server(admin, admin_pb2, server))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection((*names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        return server

    server = with_services(grpc_server(config))
    tcp_server, tcp_addresses = _tcp_server(config, with_services)
    probe_server, probe_addresses = _probe_server(config, health_servicer)
    addresses = _bind(server, config) + tcp_addresses + probe_addresses
    metrics_endpoint, metrics_addresses = _metrics_endpoint(config, metrics)
    return Daemon(
        loop,
        server,
        service,
        health_servicer,
        addresses + metrics_addresses,
        storage,
        probe_server,
        config.check_seconds,
        tcp_server,
        metrics_endpoint,
        Maintenance(service.store, storage, config),
    )


def new_store(storage: Storage, config: Config, clock: Clock = utc_now) -> SessionStore:
    """The store over ``storage`` with the configured rule settings and retention."""
    return SessionStore(storage, config.settings(), config.retention(), clock)


def open_storage(config: Config) -> DaemonStorage:
    """The configured backend: the embedded SQLite file (the default), or a PostgreSQL database
    that daemons on several hosts share."""
    if config.backend == "postgres":
        from sessiond.storage.postgres import PostgresStorage  # the driver is an extra: imported only when chosen

        return PostgresStorage(config.dsn, config.pool_size)
    return SqliteStorage(config.database, durable=config.durable, full_text_search=config.full_text_search)


def create_server(config: Config, clock: Clock = utc_now) -> Daemon:
    """Open the database, build and bind the daemon; tests pass port 0, temp paths and a clock."""
    storage = open_storage(config)
    loop = None
    try:
        loop = EventLoopThread()
        return loop.run(_build(config, storage, clock, loop))
    except BaseException:
        if loop is not None:
            loop.close()
        storage.close()
        raise
