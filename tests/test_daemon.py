"""The daemon skeleton on real sockets: health, reflection, errors, sockets and shutdown."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from helpers.daemons import Running
from helpers.wire import invalid_field
from sessiond.daemon import config as config_module
from sessiond.daemon.server import create_server
from sessiond.errors import ConfigError
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import session_store_pb2_grpc, source_pb2

RPCS = {
    "BuildSessionKey",
    "BuildSessionContext",
    "GetOrCreateSession",
    "GetSession",
    "UpdateSession",
    "SuspendSession",
    "MarkResumePending",
    "ClearResumePending",
    "SuspendRecentlyActive",
    "ResetSession",
    "SwitchSession",
    "PruneOldEntries",
    "ListSessions",
    "HasAnySessions",
    "ListExpiredSessions",
    "MarkExpiryFinalized",
    "AcquireLease",
    "ReleaseLease",
    "AppendMessages",
    "RewriteTranscript",
    "LoadTranscript",
}
TELEGRAM_DM = source_pb2.SessionSource(platform="telegram", chat_id="12345", user_id="12345")


def test_reflection_lists_the_service_and_every_rpc(daemon: Running) -> None:
    database = ProtoReflectionDescriptorDatabase(daemon.channel)
    assert "sessiond.v1.SessionStore" in database.get_services()
    assert "grpc.health.v1.Health" in database.get_services()
    service = descriptor_pool.DescriptorPool(database).FindServiceByName("sessiond.v1.SessionStore")
    assert {method.name for method in service.methods} >= RPCS


def test_health_is_serving(daemon: Running) -> None:
    health = health_pb2_grpc.HealthStub(daemon.channel)
    for name in ("", "sessiond.v1.SessionStore"):
        response = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_build_session_key_over_the_wire(daemon: Running) -> None:
    response = daemon.stub.BuildSessionKey(pb.BuildSessionKeyRequest(source=TELEGRAM_DM), timeout=5)
    assert response.session_key == "agent:main:telegram:dm:12345"
    assert response.description == "DM with 12345"
    assert response.shared_multi_user_session is False


def key_request(**fields: object) -> pb.BuildSessionKeyRequest:
    source = source_pb2.SessionSource()
    source.CopyFrom(TELEGRAM_DM)
    for name, value in fields.items():
        setattr(source, name, value)
    return pb.BuildSessionKeyRequest(source=source)


def test_bad_input_is_invalid_argument_naming_the_field(daemon: Running) -> None:
    stub = daemon.stub
    assert invalid_field(lambda: stub.BuildSessionKey(key_request(platform="myspace"), timeout=5)) == "source.platform"
    assert invalid_field(lambda: stub.BuildSessionKey(key_request(platform=""), timeout=5)) == "source.platform"
    assert invalid_field(lambda: stub.BuildSessionKey(key_request(chat_type=9), timeout=5)) == "source.chat_type"
    huge = "x" * 5000
    assert invalid_field(lambda: stub.BuildSessionKey(key_request(chat_name=huge), timeout=5)) == "source.chat_name"
    assert invalid_field(lambda: stub.BuildSessionKey(pb.BuildSessionKeyRequest(), timeout=5)) == "source"
    whatsapp = key_request(platform="whatsapp", chat_id="not_a/jid")
    assert invalid_field(lambda: stub.BuildSessionKey(whatsapp, timeout=5)) == "source.chat_id"

    context = pb.BuildSessionContextRequest(source=TELEGRAM_DM)
    context.entry.updated_at.seconds = 1 << 62
    assert invalid_field(lambda: stub.BuildSessionContext(context, timeout=5)) == "entry.updated_at"
    context = pb.BuildSessionContextRequest(source=TELEGRAM_DM)
    context.platforms.connected_platforms.extend(["telegram", "friendster"])
    field = invalid_field(lambda: stub.BuildSessionContext(context, timeout=5))
    assert field == "platforms.connected_platforms[1]"


def test_socket_is_private(daemon: Running) -> None:
    path = Path(daemon.address.removeprefix("unix:"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(path.stat().st_mode)


def test_tcp_listener_binds_port_zero(start_daemon: Callable[..., Running], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("tcp-token")
    running = start_daemon({"server": {"socket": "", "tcp": "127.0.0.1:0"}, "security": {"token_file": str(token)}})
    host, port = running.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    request = pb.BuildSessionKeyRequest(source=TELEGRAM_DM)
    response = running.stub.BuildSessionKey(request, timeout=5, metadata=[("authorization", "Bearer tcp-token")])
    assert response.session_key == "agent:main:telegram:dm:12345"


def test_a_stale_socket_is_replaced_and_a_live_one_is_not_stolen(tmp_path: Path, daemon: Running) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(stale))  # bound, never listening: what a killed daemon leaves
    fresh = create_server(
        config_module.parse({"server": {"socket": str(stale)}, "storage": {"path": str(tmp_path / "a.db")}})
    )
    fresh.stop(0)

    live = daemon.address.removeprefix("unix:")
    with pytest.raises(ConfigError, match="another process is listening"):
        create_server(config_module.parse({"server": {"socket": live}, "storage": {"path": str(tmp_path / "b.db")}}))


def test_shutdown_turns_health_not_serving_before_draining(start_daemon: Callable[..., Running]) -> None:
    running = start_daemon()
    health = health_pb2_grpc.HealthStub(running.channel)
    statuses = health.Watch(health_pb2.HealthCheckRequest(service="sessiond.v1.SessionStore"), timeout=10)
    assert next(statuses).status == health_pb2.HealthCheckResponse.SERVING
    stopper = threading.Thread(target=running.daemon.stop, args=(5,))
    stopper.start()
    assert next(statuses).status == health_pb2.HealthCheckResponse.NOT_SERVING
    statuses.cancel()
    stopper.join(timeout=10)
    assert not stopper.is_alive()


def test_an_open_health_watch_does_not_hold_shutdown(start_daemon: Callable[..., Running]) -> None:
    """A Watch never ends by itself; stopping ends it (after NOT_SERVING) instead of waiting the grace."""
    running = start_daemon()
    statuses = health_pb2_grpc.HealthStub(running.channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
    assert next(statuses).status == health_pb2.HealthCheckResponse.SERVING
    # Not waiting the grace is the point: a long one tells the two apart however busy the machine.
    grace, started = 60.0, time.monotonic()
    running.daemon.stop(grace)
    assert time.monotonic() - started < grace / 4
    assert [s.status for s in statuses] == [health_pb2.HealthCheckResponse.NOT_SERVING]  # then a clean end


def test_serve_with_no_config_listens_privately_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("SESSIOND_CONFIG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "sessiond.cli", "serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        lines = iter(process.stderr.readline, "")
        serving = next(line for line in lines if '"serving"' in line)  # logged once bound
        socket_path = runtime / "sessiond" / "sessiond.sock"
        assert f"unix:{socket_path}" in serving
        assert (tmp_path / "state" / "sessiond" / "sessiond.db").exists()
        assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
        with grpc.insecure_channel(f"unix:{socket_path}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == 1
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()  # until the daemon closes it: its exit is the signal, not a clock
        assert process.wait() == 0 and '"stopped"' in rest
    finally:
        process.kill()
        process.wait()


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sessiond.cli", "health", *args], capture_output=True, text=True, timeout=30
    )


def test_health_command_is_an_exec_probe(daemon: Running, tmp_path: Path) -> None:
    serving = probe("--address", daemon.address)
    assert serving.returncode == 0 and serving.stdout.strip().endswith("(daemon): SERVING")
    writes = probe("--address", daemon.address, "--service", "sessiond.writes")
    assert writes.returncode == 0 and "SERVING" in writes.stdout
    unknown = probe("--address", daemon.address, "--service", "no.such.service")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stdout
    absent = probe("--address", f"unix:{tmp_path / 'absent.sock'}", "--timeout", "1")
    assert absent.returncode == 1 and len(absent.stdout.strip().splitlines()) == 1


def test_health_only_tcp_listener_serves_probes_and_nothing_else(start_daemon: Callable[..., Running]) -> None:
    running = start_daemon({"server": {"health_tcp": "127.0.0.1:0"}})
    probe_address = next(a for a in running.daemon.addresses if a.startswith("health:")).removeprefix("health:")
    with grpc.insecure_channel(probe_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        stub = session_store_pb2_grpc.SessionStoreStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.BuildSessionKey(pb.BuildSessionKeyRequest(source=TELEGRAM_DM), timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_sigterm_taken_by_another_thread_still_stops_the_daemon(tmp_path: Path) -> None:
    """The kernel may give a process's SIGTERM to any of its threads; the daemon must stop all the same."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path / "run"), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("SESSIOND_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "sessiond", "serve"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        next(line for line in iter(process.stderr.readline, "") if '"serving"' in line)
        others = [int(t) for t in os.listdir(f"/proc/{process.pid}/task") if int(t) != process.pid]
        libc = ctypes.CDLL(None, use_errno=True)
        assert others and libc.tgkill(process.pid, others[0], signal.SIGTERM) == 0
        rest = process.stderr.read()  # until the daemon exits
        assert process.wait() == 0 and '"stopped"' in rest
    finally:
        process.kill()
        process.wait()
