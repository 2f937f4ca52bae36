"""Observability: the Prometheus endpoint of a real daemon, the metrics object, request ids in logs."""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from helpers.daemons import JsonLines, Running
from helpers.metrics import metrics_url, scrape
from helpers.wire import invalid_field
from sessiond.daemon import config as config_module
from sessiond.daemon.server import create_server
from sessiond.errors import ConfigError, StorageError
from sessiond.rpc.metrics import Metrics
from sessiond.storage.interface import StorageStats
from sessiond_client.v1 import session_pb2, source_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

Start = Callable[..., Running]
METRICS_ON = {"metrics": {"address": "127.0.0.1:0"}}
CHAT_ID, USER_ID, TEXT = "chat-7f3a9e", "user-51c2d8", "the launch code is swordfish"
STATS = StorageStats(entries=3, sessions=4, messages=5, live_leases=1, database_bytes=4096, wal_bytes=0)


def source(chat_id: str = CHAT_ID) -> source_pb2.SessionSource:
    return source_pb2.SessionSource(platform="telegram", chat_id=chat_id, user_id=USER_ID)


def create(stub: Any, chat_id: str = CHAT_ID) -> session_pb2.SessionEntry:
    return stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source(chat_id)), timeout=5).entry


def rpc_samples(text: str, suffix: str) -> dict[tuple[str, str], float]:
    """The RPC histogram's ``suffix`` series (``_count``, or ``_bucket`` at +Inf), by (method, code)."""
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == "sessiond_rpc_duration_seconds")
    return {
        (s.labels["method"], s.labels["code"]): s.value
        for s in family.samples
        if s.name.endswith(suffix) and s.labels.get("le", "+Inf") == "+Inf"
    }


def gauges(text: str) -> dict[str, float]:
    return {f.name: f.samples[0].value for f in text_string_to_metric_families(text) if f.type == "gauge"}


def endpoint_threads() -> list[threading.Thread]:
    """prometheus_client's HTTP server threads (named after their target)."""
    return [thread for thread in threading.enumerate() if "serve_forever" in thread.name]


# --------------------------------------------------------------------------- the endpoint of a daemon


def test_the_endpoint_counts_rpcs_by_method_and_code_and_reports_the_database(
    start_daemon: Start, rpc_log: JsonLines
) -> None:
    running = start_daemon(METRICS_ON)
    stub = running.stub
    first, _ = (create(stub, chat_id) for chat_id in (CHAT_ID, f"{CHAT_ID}-2"))
    message = transcript_pb2.Message(role="user", text=TEXT)
    stub.AppendMessages(pb.AppendMessagesRequest(session_id=first.session_id, messages=[message]), timeout=5)
    lease = pb.AcquireLeaseRequest(session_key=first.session_key, owner="worker", ttl=Duration(seconds=60))
    stub.AcquireLease(lease, timeout=5)
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetSession(pb.GetSessionRequest(session_key="agent:main:telegram:dm:nobody"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert invalid_field(lambda: stub.BuildSessionKey(pb.BuildSessionKeyRequest(), timeout=5)) == "source"
    for method, code in (("GetSession", "NOT_FOUND"), ("BuildSessionKey", "INVALID_ARGUMENT")):
        rpc_log.answered(method, code)  # errors are recorded just after their status is sent

    text = scrape(metrics_url(running))

    calls = {
        ("GetOrCreateSession", "OK"): 2,
        ("AppendMessages", "OK"): 1,
        ("AcquireLease", "OK"): 1,
        ("GetSession", "NOT_FOUND"): 1,
        ("BuildSessionKey", "INVALID_ARGUMENT"): 1,
    }
    assert rpc_samples(text, "_count") == calls
    assert rpc_samples(text, "_bucket") == calls  # every call fell in some bucket
    assert all(seconds > 0 for seconds in rpc_samples(text, "_sum").values())
    values = gauges(text)
    assert values["sessiond_sessions"] == 2
    assert values["sessiond_live_leases"] == 1
    assert values["sessiond_database_bytes"] > 0 and values["sessiond_wal_bytes"] > 0
    assert values["sessiond_last_backup_timestamp_seconds"] == 0
    for private in (CHAT_ID, USER_ID, TEXT, first.session_id, first.session_key, "worker"):
        assert private not in text


def test_metrics_are_off_by_default(daemon: Running) -> None:
    assert not [address for address in daemon.daemon.addresses if address.startswith("metrics:")]
    assert daemon.daemon.metrics_endpoint is None
    assert not endpoint_threads()


def test_stopping_the_daemon_frees_the_port_and_the_thread(start_daemon: Start) -> None:
    running = start_daemon(METRICS_ON)
    url = metrics_url(running)
    assert "sessiond_rpc_duration_seconds" in scrape(url)
    running.daemon.stop(0)
    assert not endpoint_threads()
    with pytest.raises(urllib.error.URLError):
        scrape(url)


def test_an_address_it_cannot_listen_on_is_a_configuration_error(tmp_path_factory: pytest.TempPathFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        for address in (f"127.0.0.1:{taken.getsockname()[1]}", "127.0.0.1:http", "9100"):
            data = {
                "server": {"socket": str(tmp_path_factory.mktemp("sock") / "sessiond.sock")},
                "storage": {"path": str(tmp_path_factory.mktemp("db") / "sessiond.db")},
                "metrics": {"address": address},
            }
            with pytest.raises(ConfigError, match="^metrics.address: cannot listen on"):
                create_server(config_module.parse(data))


def test_storage_stats_count_rows_and_the_leases_live_at_an_instant(daemon: Running) -> None:
    stub = daemon.stub
    entry = create(stub)
    messages = [transcript_pb2.Message(role="user", text=TEXT)] * 3
    stub.AppendMessages(pb.AppendMessagesRequest(session_id=entry.session_id, messages=messages), timeout=5)
    stub.ResetSession(pb.ResetSessionRequest(session_key=entry.session_key), timeout=5)
    lease = pb.AcquireLeaseRequest(session_key=entry.session_key, owner="worker", ttl=Duration(seconds=60))
    stub.AcquireLease(lease, timeout=5)

    stats = daemon.daemon.storage.stats()
    assert (stats.entries, stats.sessions, stats.messages, stats.live_leases) == (1, 2, 3, 1)
    assert stats.database_bytes == daemon.daemon.storage.path.stat().st_size and stats.wal_bytes > 0
    assert daemon.daemon.storage.stats(datetime.now(UTC) + timedelta(minutes=2)).live_leases == 0


# --------------------------------------------------------------------------- the metrics object


def test_the_last_backup_time_is_zero_until_a_backup_finishes() -> None:
    metrics = Metrics(lambda: STATS)
    assert metrics.registry.get_sample_value("sessiond_last_backup_timestamp_seconds") == 0
    finished = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)
    metrics.backup_finished(finished)
    assert metrics.registry.get_sample_value("sessiond_last_backup_timestamp_seconds") == finished.timestamp()


def test_database_statistics_are_counted_at_most_once_per_max_age() -> None:
    counted: list[StorageStats] = []

    def stats() -> StorageStats:
        counted.append(STATS)
        return STATS

    cached, fresh = Metrics(stats, stats_max_age=3600), Metrics(stats, stats_max_age=0)
    for metrics in (cached, cached, fresh, fresh):
        assert gauges(generate_latest(metrics.registry).decode())["sessiond_sessions"] == STATS.entries
    assert len(counted) == 3


def test_an_unreadable_database_leaves_out_only_the_database_gauges() -> None:
    def stats() -> StorageStats:
        raise StorageError("sessiond.db: cannot be read")

    metrics = Metrics(stats)
    metrics.observe("GetSession", "UNAVAILABLE", 0.002)
    text = generate_latest(metrics.registry).decode()
    assert rpc_samples(text, "_count") == {("GetSession", "UNAVAILABLE"): 1}
    assert "sessiond_sessions" not in text and "sessiond_database_bytes" not in text


# --------------------------------------------------------------------------- request ids in the logs


def test_each_rpc_log_line_carries_the_request_id_given_or_a_generated_one(daemon: Running, rpc_log: JsonLines) -> None:
    request = pb.BuildSessionKeyRequest(source=source())
    daemon.stub.BuildSessionKey(request, timeout=5, metadata=(("x-request-id", "req-0042"),))
    daemon.stub.BuildSessionKey(request, timeout=5)
    given, generated = (line for line in rpc_log.lines if line["msg"] == "rpc")
    assert (given["method"], given["code"], given["request_id"]) == ("BuildSessionKey", "OK", "req-0042")
    assert isinstance(generated["request_id"], str) and len(generated["request_id"]) == 16


def test_an_internal_error_names_its_request_id_to_the_caller_and_in_the_log(
    daemon: Running, rpc_log: JsonLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(key: str) -> None:
        raise RuntimeError("an unexpected failure")

    monkeypatch.setattr(daemon.daemon.service.store, "get", broken)
    with pytest.raises(grpc.RpcError) as raised:
        daemon.stub.GetSession(
            pb.GetSessionRequest(session_key="k"), timeout=5, metadata=(("x-request-id", "req-internal-7"),)
        )
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert raised.value.details() == "internal error (request req-internal-7)"
    failed = next(line for line in rpc_log.lines if line["msg"] == "rpc failed")
    assert failed["request_id"] == "req-internal-7" and "RuntimeError" in str(failed["exc"])
    assert rpc_log.answered("GetSession", "INTERNAL")["request_id"] == "req-internal-7"
    registry = daemon.daemon.service.runtime.metrics.registry
    labels = {"method": "GetSession", "code": "INTERNAL"}
    assert registry.get_sample_value("sessiond_rpc_duration_seconds_count", labels) == 1
