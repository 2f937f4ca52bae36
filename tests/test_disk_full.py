"""A full disk: writes fail with RESOURCE_EXHAUSTED and write nothing, reads go on, health says
so, and once space is freed writes work again on an intact database."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helpers.daemons import Running
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import source_pb2, transcript_pb2

SOURCE = source_pb2.SessionSource(platform="telegram", chat_id="42")
CHUNK = "x" * 100_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, made for the test and removed after (skipped where mounting is refused)."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def health_of(running: Running, service: str) -> int:
    health = health_pb2_grpc.HealthStub(running.channel)
    return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def append(running: Running, session_id: str, number: int) -> pb.AppendMessagesResponse:
    message = transcript_pb2.Message(role="user", text=CHUNK, message_id=f"m{number}")
    return running.stub.AppendMessages(pb.AppendMessagesRequest(session_id=session_id, messages=[message]), timeout=10)


def test_full_disk_fails_writes_keeps_reads_and_recovers(
    small_disk: Path, start_daemon: Callable[..., Running]
) -> None:
    running = start_daemon({"storage": {"path": str(small_disk / "sessiond.db")}})
    session_id = running.stub.GetOrCreateSession(
        pb.GetOrCreateSessionRequest(source=SOURCE), timeout=10
    ).entry.session_id
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 2_500_000)

    stored = 0
    with pytest.raises(grpc.RpcError) as full:
        while stored < 100:  # 4 MiB cannot take 100 messages of 100 kB
            append(running, session_id, stored)
            stored += 1
    assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, full.value.details()
    assert "disk is full" in full.value.details()
    print(f"\ndisk full after {stored} appends of 100 kB")

    load = pb.LoadTranscriptRequest(session_id=session_id, raw=True)
    assert len(running.stub.LoadTranscript(load, timeout=10).messages) == stored  # nothing of the failed one
    assert running.stub.GetSession(pb.GetSessionRequest(session_key="agent:main:telegram:dm:42"), timeout=10)
    assert health_of(running, "sessiond.writes") == health_pb2.HealthCheckResponse.NOT_SERVING
    assert health_of(running, "") == health_pb2.HealthCheckResponse.SERVING  # reads still served

    ballast.unlink()
    assert append(running, session_id, stored).appended == 1
    assert health_of(running, "sessiond.writes") == health_pb2.HealthCheckResponse.SERVING
    assert len(running.stub.LoadTranscript(load, timeout=10).messages) == stored + 1
    running.daemon.storage.verify()  # raises StorageError if a page was damaged
