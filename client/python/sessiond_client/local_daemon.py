"""The daemon that serves a directory on this host: found on its socket there, started when none runs.

A gateway that names no address gets the daemon of its sessions directory: the socket and the
database live in that directory, so two gateways on one directory share one daemon and nothing
has to be set up first. Starting is serialised by a lock file, so gateways that start at the
same moment end up on one daemon; a daemon outlives the gateway that started it (its own
session, its own process group), so a gateway killed with ``kill -9`` loses nothing and the next
one attaches. It runs until it gets SIGTERM (its pid is in ``sessiond.pid``).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc

from sessiond_client import health

SOCKET_NAME = "sessiond.sock"
DATABASE_NAME = "sessiond.db"
CONFIG_NAME = "sessiond.toml"  # optional: the daemon's own settings (limits, TCP, ...) for this directory
LOG_NAME = "sessiond.log"
PID_NAME = "sessiond.pid"
LOCK_NAME = ".sessiond.lock"
MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 107 bytes
START_SECONDS = 30.0


class DaemonUnavailable(RuntimeError):
    """No daemon serves the directory and none could be started; the message says why."""


def socket_path(directory: Path) -> Path:
    """The directory's socket, or one named after it in a private /tmp folder when the path is too long."""
    path = directory / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(directory.resolve())).hexdigest()[:16]
    return Path(f"/tmp/sessiond-{os.getuid()}") / f"{digest}.sock"


def _accepts(path: Path) -> bool:
    """Whether something listens on the socket: a crashed daemon's socket file refuses at once."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def serving(target: str, timeout: float) -> bool:
    """Whether a daemon answers SERVING at ``target`` within ``timeout`` seconds."""
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
            return health.is_serving(channel, timeout=timeout)
        except (grpc.FutureTimeoutError, grpc.RpcError):
            return False


def ensure(directory: Path, timeout: float = START_SECONDS) -> str:
    """The target of the daemon serving ``directory``, started first if none does."""
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    path = socket_path(directory)
    target = f"unix:{path}"
    if _accepts(path) and serving(target, 1.0):
        return target
    with open(directory / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when this process ends, however it ends
        if not (_accepts(path) and serving(target, 1.0)):
            _start(directory, target, timeout)
    return target


def _command() -> list[str]:
    """The daemon of this interpreter's environment, else ``sessiond`` on the PATH."""
    if importlib.util.find_spec("sessiond") is not None:
        return [sys.executable, "-m", "sessiond"]
    found = shutil.which("sessiond")
    if found is None:
        raise DaemonUnavailable(
            "no sessiond daemon runs here and the daemon is not installed: pip install sessiond,"
            " or set SESSIOND_ADDRESS to a running daemon"
        )
    return [found]


def _environment(directory: Path) -> dict[str, str]:
    """The daemon's settings: this directory's socket and database, nothing inherited from another daemon's."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SESSIOND_")}
    env.update(SESSIOND_SOCKET=str(socket_path(directory)), SESSIOND_DB=str(directory / DATABASE_NAME))
    if (directory / CONFIG_NAME).exists():
        env["SESSIOND_CONFIG"] = str(directory / CONFIG_NAME)
    return env


def _start(directory: Path, target: str, timeout: float) -> None:
    with open(directory / LOG_NAME, "ab") as log:
        process = subprocess.Popen(
            [*_command(), "serve"],
            env=_environment(directory),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not killed with the gateway's process group
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if serving(target, 0.5):  # waits on the channel's readiness, not a sleep
            (directory / PID_NAME).write_text(f"{process.pid}\n", encoding="utf-8")
            return
    if process.poll() is None:
        process.terminate()
    tail = (directory / LOG_NAME).read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
    raise DaemonUnavailable(
        f"the sessiond daemon for {directory} did not start within {timeout:.0f} s"
        f" (exit status {process.poll()}; {directory / LOG_NAME} ends: {' | '.join(tail)})"
    )
