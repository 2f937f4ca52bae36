"""Server subprocesses: the real daemon and the echo server, started and stopped alike.

Both log a JSON line ``{"msg": "serving", "addresses": [...]}`` on stderr once bound; the
harness reads the (port 0) TCP address from it, then waits for health SERVING. No sleeps: the
waits block on the pipe and on gRPC. The daemon logs a line per RPC, so a thread keeps draining
its stderr (keeping the last lines for the error message when a server dies).
"""

from __future__ import annotations

import collections
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

START_TIMEOUT = 300.0  # seconds; a start on a large database checks the whole file first
# The daemon's TCP port needs a bearer token: a fresh one per run, given as SESSIOND_TOKEN.
TOKEN = secrets.token_urlsafe(32)
AUTHORIZATION = (("authorization", f"Bearer {TOKEN}"),)


@dataclass
class Server:
    """A running server process and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    unix: str
    tcp: str
    start_seconds: float  # process start to health SERVING
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=40))

    def target(self, transport: str) -> str:
        return self.unix if transport == "unix" else self.tcp

    def memory_mb(self) -> dict[str, float]:
        """Resident memory now (VmRSS) and at its peak (VmHWM) in MB, from /proc/<pid>/status (kB)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        values = dict(line.split(":", 1) for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM")))
        return {name: int(value.split()[0]) * 1024 / 1e6 for name, value in values.items()}

    def stop(self) -> None:
        """SIGTERM, as an operator would; the daemon drains and exits 0."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        if code != 0:
            raise RuntimeError(f"{self.name} exited {code}:\n" + "".join(self.tail))


def start_sessiond(
    workdir: Path, db: Path, durability: str = "full", environment: Mapping[str, str] | None = None
) -> Server:
    """``sessiond serve`` on a temp Unix socket and loopback TCP port 0 (with ``TOKEN``), default configuration
    but for ``environment`` (``SESSIOND_*`` overrides, e.g. the PostgreSQL backend)."""
    # The default configuration, whatever SESSIOND_* variables the caller's shell holds.
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIOND_")}
    env["SESSIOND_DURABILITY"] = durability
    env["SESSIOND_TOKEN"] = TOKEN
    env.update(environment or {})
    argv = ["-m", "sessiond.cli", "serve", "--socket", str(workdir / "sessiond.sock"), "--tcp", "127.0.0.1:0"]
    return _start("sessiond", [sys.executable, *argv, "--db", str(db)], env)


def start_echo(workdir: Path, sync: bool = False) -> Server:
    """``bench.echo``: the grpc.aio echo ("echo-aio"), or with ``sync`` grpcio's sync server ("echo-sync")."""
    name = "echo-sync" if sync else "echo-aio"
    argv = [sys.executable, "-m", "bench.echo", "--socket", str(workdir / f"{name}.sock"), "--tcp", "127.0.0.1:0"]
    return _start(name, argv + ["--sync"] * sync, dict(os.environ))


def _start(name: str, argv: list[str], env: dict[str, str]) -> Server:
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    tail: collections.deque[str] = collections.deque(maxlen=40)
    serving: queue.Queue[list[str] | None] = queue.Queue()
    assert process.stderr is not None
    threading.Thread(target=_drain, args=(process.stderr, tail, serving), daemon=True).start()
    try:
        addresses = serving.get(timeout=START_TIMEOUT)
    except queue.Empty:
        addresses = None
    if addresses is None:
        process.kill()
        raise RuntimeError(f"{name} did not start (exit {process.wait()}):\n" + "".join(tail))
    unix = next(a for a in addresses if a.startswith("unix:"))
    tcp = next(a for a in addresses if not a.startswith("unix:"))
    wait_serving(unix)
    return Server(name, process, unix, tcp, time.perf_counter() - started, tail)


def _drain(stream: IO[bytes], tail: collections.deque[str], serving: queue.Queue[list[str] | None]) -> None:
    """Hand over the addresses of the "serving" line, then keep the pipe from filling up."""
    found = False
    for raw in stream:
        line = raw.decode(errors="replace")
        tail.append(line)
        if not found and line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "serving":
                found = True
                serving.put(record["addresses"])
    if not found:
        serving.put(None)


def wait_serving(target: str, timeout: float = 30.0) -> None:
    """Block until the server at ``target`` answers health SERVING."""
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(f"{target}: health is {response.status}, not SERVING")
