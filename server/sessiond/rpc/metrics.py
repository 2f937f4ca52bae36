"""Prometheus metrics: RPC counts and latencies, database gauges read when scraped, and their HTTP endpoint.

Each daemon has a registry of its own, not prometheus_client's global one, so several daemons in
one process (the tests) keep their counts apart and the endpoint serves exactly this daemon's.
The only labels are the method and the status code: session keys, ids and message content never
reach a metric.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sessiond.errors import ConfigError, StorageError
from sessiond.storage.interface import StorageStats

log = logging.getLogger("sessiond.metrics")  # the logger's name predates the module's place

# From 100 µs (a key built in memory) to 10 s (a large rewrite behind a busy writer or a slow disk).
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Database statistics are recounted at most this often: the counts scan indexes (0.1 s at a
# million entries), and several scrapers, or a short scrape interval, should not multiply that.
STATS_MAX_AGE = 5.0


class Metrics:
    """One daemon's metrics. ``stats`` gives the database's statistics; it is called when scraped."""

    def __init__(self, stats: Callable[[], StorageStats], stats_max_age: float = STATS_MAX_AGE):
        self.registry = CollectorRegistry()
        # Its _count series is the call count: a separate counter would double the cost per RPC.
        self._children: dict[tuple[str, str], Histogram] = {}
        self._rpcs = Histogram(
            "sessiond_rpc_duration_seconds",
            "RPCs answered and how long each took, by method and status code (_count: the number of calls).",
            ("method", "code"),
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._last_backup = Gauge(
            "sessiond_last_backup_timestamp_seconds",
            "When the last backup this daemon made finished, in Unix time; 0 before its first.",
            registry=self.registry,
        )
        self.registry.register(_DatabaseCollector(stats, stats_max_age))

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Record one answered RPC: its method, its status code's name (``OK``, ``NOT_FOUND``…), its duration."""
        child = self._children.get((method, code))
        if child is None:  # labels() takes a lock and builds a key each time: once per pair is enough
            child = self._children[(method, code)] = self._rpcs.labels(method, code)
        child.observe(seconds)

    def backup_finished(self, when: datetime) -> None:
        """Record that a backup finished at ``when`` (an aware datetime); call it when a backup succeeds."""
        self._last_backup.set(when.timestamp())


class _DatabaseCollector(Collector):
    """The database gauges, evaluated when scraped: keeping gauges current would cost every write."""

    def __init__(self, stats: Callable[[], StorageStats], max_age: float):
        self._stats, self._max_age = stats, max_age
        self._lock = threading.Lock()
        self._cached: StorageStats | None = None
        self._taken = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            stats = self._current()
        except StorageError as exc:  # the RPC metrics are still worth serving
            log.warning("database statistics unavailable", extra={"error": str(exc)})
            return
        gauges = (
            ("sessiond_database_bytes", "Size of the database file.", stats.database_bytes),
            ("sessiond_wal_bytes", "Size of the write-ahead log (grows while checkpoints lag).", stats.wal_bytes),
            ("sessiond_sessions", "Session keys with a current session (entries).", stats.entries),
            ("sessiond_live_leases", "Leases not yet expired.", stats.live_leases),
        )
        for name, documentation, value in gauges:
            yield GaugeMetricFamily(name, documentation, value=value)

    def _current(self) -> StorageStats:
        """Statistics at most ``max_age`` seconds old; concurrent scrapes wait for one count."""
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._taken >= self._max_age:
                self._cached, self._taken = self._stats(), now
            return self._cached


class MetricsEndpoint:
    """The HTTP listener serving a registry on ``/metrics``: serving once built, until ``close()``."""

    def __init__(self, address: str, registry: CollectorRegistry):
        host, _, port = address.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")  # an IPv6 host may come bracketed
        try:
            self._server, self._thread = start_http_server(int(port), host, registry)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"metrics.address: cannot listen on {address!r} ({exc})") from None
        url_host = f"[{host}]" if ":" in host else host
        self.url = f"http://{url_host}:{self._server.server_port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port (a scrape already running finishes on its own thread)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
