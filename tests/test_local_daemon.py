"""The daemon of a sessions directory (``sessiond_client.local_daemon``), against real processes.

Each test runs gateways as child Python processes (clean interpreters: no reference oracle, no
``SESSIOND_*``, a temp ``HERMES_HOME`` and ``XDG_RUNTIME_DIR``) that name no daemon address, so
the drop-in ``SessionStore`` finds or starts the daemon of its directory itself. Children talk to
the test over their stdin and stdout (one JSON line per fact); the test never sleeps: it waits
on those lines, and on pidfds for processes to end. Every daemon the children start is found by
a /proc scan (its ``SESSIOND_DB`` names the directory) and stopped at teardown: SIGTERM, then
SIGKILL if it has not ended within 30 s.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessiond_client import local_daemon

TIMEOUT = 120.0  # seconds for a child gateway: a daemon start on a busy 2-core machine included

# Every child starts with this: a gateway on the directory argv[1], no address anywhere.
PRELUDE = """
import json, sys
from pathlib import Path
from sessiond_client.hermes import GatewayConfig, Platform, SessionSource, SessionStore
directory = Path(sys.argv[1])
store = SessionStore(directory, GatewayConfig())
source = SessionSource(platform=Platform.TELEGRAM, chat_id="42", user_id="7")
def pid():
    return int((directory / "sessiond.pid").read_text())
def say(**data):
    print(json.dumps(data), flush=True)
"""


def gone(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not necessarily a child of ours) ends within ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def daemon_pids(directory: Path) -> list[int]:
    """The live ``sessiond serve`` processes whose database is in ``directory`` (a /proc scan)."""
    marker = b"\0SESSIOND_DB=" + os.fsencode(directory / local_daemon.DATABASE_NAME) + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = b"\0" + (entry / "environ").read_bytes()
        except OSError:  # ended meanwhile, or not ours
            continue
        if b"sessiond" in cmdline and b"serve" in cmdline and marker in environ and not gone(int(entry.name), 0):
            found.append(int(entry.name))
    return sorted(found)


class Gateways:
    """Child gateway processes, and the daemons they start, all ended at teardown."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.children: list[subprocess.Popen[str]] = []
        self.directories: list[Path] = []
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_") and k != "PYTHONPATH"}
        self.env.update(
            HERMES_HOME=str(tmp_path / "hermes"),
            XDG_RUNTIME_DIR=str(runtime),
            XDG_STATE_HOME=str(tmp_path / "state"),
            PYTHONUNBUFFERED="1",
        )

    def directory(self, path: Path) -> Path:
        """A sessions directory whose daemons are stopped at teardown."""
        self.directories.append(path)
        return path

    def start(self, body: str, *args: object, prelude: bool = True) -> subprocess.Popen[str]:
        """A gateway running ``PRELUDE + body`` with ``args``, in a process group of its own."""
        script = (PRELUDE if prelude else "") + body
        child = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=self.env, cwd=self.tmp_path, start_new_session=True,
        )  # fmt: skip
        self.children.append(child)
        return child

    def run(self, body: str, *args: object, prelude: bool = True) -> list[dict[str, Any]]:
        """Runs a gateway to its end; its JSON lines."""
        child = self.start(body, *args, prelude=prelude)
        out, err = child.communicate(timeout=TIMEOUT)
        assert child.returncode == 0, f"gateway failed ({child.returncode}):\n{err}"
        return [json.loads(line) for line in out.splitlines()]

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
            child.communicate(timeout=TIMEOUT)
        for directory in self.directories:
            for pid in daemon_pids(directory):
                os.kill(pid, signal.SIGTERM)
                if not gone(pid, 30):
                    os.kill(pid, signal.SIGKILL)
                    assert gone(pid, 30), f"daemon {pid} survived SIGKILL"
            fallback = local_daemon.socket_path(directory)
            if not fallback.is_relative_to(directory) and os.path.lexists(fallback):
                fallback.unlink()  # a long directory's socket in /tmp, should the daemon leave it


def line(child: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's next JSON line (its stderr when it ended instead)."""
    assert child.stdout is not None
    text = child.stdout.readline()
    if not text:
        _, err = child.communicate(timeout=TIMEOUT)
        pytest.fail(f"gateway ended ({child.returncode}) without answering:\n{err}")
    return json.loads(text)


def tell(child: subprocess.Popen[str], text: str = "go") -> None:
    assert child.stdin is not None
    child.stdin.write(text + "\n")
    child.stdin.flush()


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Gateways]:
    running = Gateways(tmp_path)
    yield running
    running.close()


def test_two_gateways_on_one_directory_share_its_daemon(gateways: Gateways, tmp_path: Path) -> None:
    """Nothing set up: the first gateway starts the directory's daemon, which outlives it; the
    second finds it (same pid) and the same session and transcript under the same key."""
    sessions = gateways.directory(tmp_path / "sessions")
    first = gateways.run(
        """
entry = store.get_or_create_session(source)
store.append_to_transcript(entry.session_id, {"role": "user", "content": "hello"})
say(session_key=entry.session_key, session_id=entry.session_id, pid=pid())
""",
        sessions,
    )[0]
    assert first["session_key"] == "agent:main:telegram:dm:42"
    assert not gone(first["pid"], 0), "the daemon ended with the gateway that started it"
    assert {"sessiond.db", "sessiond.log", "sessiond.pid"} <= {p.name for p in sessions.iterdir()}
    assert stat.S_ISSOCK((sessions / "sessiond.sock").stat().st_mode)

    second = gateways.run(
        """
entry = store.get_or_create_session(source)
say(session_id=entry.session_id, messages=store.load_transcript(entry.session_id), pid=pid())
""",
        sessions,
    )[0]
    assert second["session_id"] == first["session_id"]
    assert [(m["role"], m["content"]) for m in second["messages"]] == [("user", "hello")]
    assert second["pid"] == first["pid"]
    assert daemon_pids(sessions) == [first["pid"]]


def test_gateways_starting_at_once_start_one_daemon(gateways: Gateways, tmp_path: Path) -> None:
    """The lock file serialises starts: four gateways released together onto a directory with no
    daemon end up on one daemon and one session."""
    sessions = gateways.directory(tmp_path / "sessions")
    body = """
say(ready=True)
sys.stdin.readline()
entry = store.get_or_create_session(source)
say(session_id=entry.session_id, pid=pid())
"""
    children = [gateways.start(body, sessions) for _ in range(4)]
    for child in children:  # imported and waiting: the race is only the daemon's start
        assert line(child) == {"ready": True}
    for child in children:
        tell(child)
    answers = [line(child) for child in children]
    assert len({a["session_id"] for a in answers}) == 1, answers
    assert len({a["pid"] for a in answers}) == 1, answers
    assert daemon_pids(sessions) == [answers[0]["pid"]]


def test_a_killed_gateway_loses_no_acknowledged_message(gateways: Gateways, tmp_path: Path) -> None:
    """``kill -9`` of a gateway's whole process group mid-stream: every append it saw acknowledged
    is stored exactly once, at most the one in flight besides, and the daemon (its own session)
    lives on for the next gateway."""
    sessions = gateways.directory(tmp_path / "sessions")
    sent, seen = 400, 25
    child = gateways.start(
        """
entry = store.get_or_create_session(source)
say(session_id=entry.session_id, pid=pid())
for i in range(int(sys.argv[2])):
    store.append_to_transcript(entry.session_id, {"role": "user", "content": f"m{i}"})
    say(ack=i)
""",
        sessions,
        sent,
    )
    start = line(child)
    acked = [line(child)["ack"] for _ in range(seen)]
    os.killpg(child.pid, signal.SIGKILL)
    out, _ = child.communicate(timeout=TIMEOUT)
    acked += [json.loads(text)["ack"] for text in out.splitlines()]  # printed before the kill
    assert child.returncode == -signal.SIGKILL
    assert acked == list(range(len(acked))) and len(acked) < sent, "the kill came after the last append"

    after = gateways.run(
        """
entry = store.get_or_create_session(source)
say(session_id=entry.session_id, contents=[m["content"] for m in store.load_transcript(entry.session_id)], pid=pid())
""",
        sessions,
    )[0]
    assert after["session_id"] == start["session_id"]
    stored = after["contents"]
    assert max(Counter(stored).values()) == 1, "a message is stored twice"
    assert stored[: len(acked)] == [f"m{i}" for i in acked], "an acknowledged message is missing"
    assert stored[len(acked) :] in ([], [f"m{len(acked)}"]), "stored more than the one append in flight"
    assert after["pid"] == start["pid"] and daemon_pids(sessions) == [start["pid"]]


def test_a_killed_daemon_is_started_again(gateways: Gateways, tmp_path: Path) -> None:
    """``kill -9`` of the daemon under a live gateway: its next call starts a new daemon on the
    same database and succeeds, and what was acknowledged before is still there. Three kills in a
    row: whether the gateway's old channel is still backing off from its failed connect when it
    retries is a matter of timing, so one kill alone could pass by luck."""
    sessions = gateways.directory(tmp_path / "sessions")
    child = gateways.start(
        """
entry = store.get_or_create_session(source)
store.append_to_transcript(entry.session_id, {"role": "user", "content": "before"})
say(pid=pid())
for n in range(3):
    sys.stdin.readline()
    store.append_to_transcript(entry.session_id, {"role": "user", "content": f"after {n}"})
    say(pid=pid())
again = store.get_or_create_session(source)
say(same=again.session_id == entry.session_id, contents=[m["content"] for m in store.load_transcript(entry.session_id)])
""",
        sessions,
    )
    pids = [line(child)["pid"]]
    for _ in range(3):
        os.kill(pids[-1], signal.SIGKILL)
        assert gone(pids[-1], 30)
        tell(child)
        pids.append(line(child)["pid"])
        assert daemon_pids(sessions) == [pids[-1]]
    answer = line(child)
    assert child.wait(timeout=TIMEOUT) == 0
    assert len(set(pids)) == 4, pids
    assert answer == {"same": True, "contents": ["before", "after 0", "after 1", "after 2"]}
    assert (sessions / "sessiond.db").exists()


def test_module_functions_start_the_daemon_of_hermes_home(gateways: Gateways, tmp_path: Path) -> None:
    """A fresh process with no store and no address: the module-level functions use (and start)
    the daemon of ``$HERMES_HOME/sessions``."""
    sessions = gateways.directory(tmp_path / "hermes" / "sessions")
    answer = gateways.run(
        """
import json, os
from pathlib import Path
from sessiond_client.hermes import Platform, SessionSource, build_session_key
key = build_session_key(SessionSource(platform=Platform.TELEGRAM, chat_id="42"))
sessions = Path(os.environ["HERMES_HOME"]) / "sessions"
print(json.dumps({"key": key, "pid": int((sessions / "sessiond.pid").read_text())}))
""",
        prelude=False,
    )[0]
    assert answer["key"] == "agent:main:telegram:dm:42"
    assert daemon_pids(sessions) == [answer["pid"]]
    assert stat.S_ISSOCK((sessions / "sessiond.sock").stat().st_mode)


def test_a_long_directory_gets_a_short_socket(gateways: Gateways, tmp_path: Path) -> None:
    """AF_UNIX paths are limited to 107 bytes: a longer directory's socket is a short one in /tmp
    named after it, and the store works there."""
    sessions = gateways.directory(tmp_path / ("d" * 60) / ("s" * 60))
    assert len(os.fsencode(sessions / "sessiond.sock")) > 100
    socket = local_daemon.socket_path(sessions)
    assert len(os.fsencode(socket)) <= local_daemon.MAX_SOCKET_PATH
    assert not socket.is_relative_to(sessions) and socket == local_daemon.socket_path(sessions)
    answer = gateways.run(
        """
from sessiond_client import local_daemon
entry = store.get_or_create_session(source)
store.append_to_transcript(entry.session_id, {"role": "user", "content": "long"})
say(target=local_daemon.ensure(directory), pid=pid(),
    contents=[m["content"] for m in store.load_transcript(entry.session_id)])
""",
        sessions,
    )[0]
    assert answer["target"] == f"unix:{socket}"
    assert answer["contents"] == ["long"]
    assert stat.S_ISSOCK(socket.stat().st_mode)
    assert daemon_pids(sessions) == [answer["pid"]] and (sessions / "sessiond.db").exists()


def test_without_the_daemon_installed_the_error_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A gateway host with only the client installed and no address: the error names both ways
    out (install the daemon, or point at one) instead of a bare ``FileNotFoundError``."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sessiond" else find_spec(name, *a)
    )
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(local_daemon.DaemonUnavailable) as raised:
        local_daemon._command()
    assert "pip install sessiond" in str(raised.value) and "SESSIOND_ADDRESS" in str(raised.value)
    with pytest.raises(local_daemon.DaemonUnavailable, match="pip install sessiond"):
        local_daemon.ensure(tmp_path / "sessions")  # the path a store takes on its first call
    assert not (tmp_path / "sessions" / "sessiond.pid").exists()
