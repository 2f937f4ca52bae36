"""The client distribution installed as a gateway's user would: a wheel, a fresh venv, PyPI.

``sessiond-client`` must bring only what talking to the daemon needs (grpcio, protobuf,
grpcio-status): never the daemon, its storage drivers or its tooling. The test builds the wheel
of ``client/python``, installs it into a new virtual environment (dependencies from the package
index this machine is configured with, so it is slow: minutes on a cold cache), checks what got
installed, prints the install's size, and runs a gateway loop with that environment's Python
against a real daemon using nothing but the installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.daemons import Running

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "sessiond", "apsw", "psycopg", "psycopg-binary", "psycopg-pool", "prometheus-client", "tqdm",
    "grpcio-health-checking", "grpcio-reflection", "grpcio-tools",
}  # fmt: skip

# The installed distributions' own files (their RECORD), in bytes, pip and setuptools aside.
SIZE = """
import json
from importlib import metadata
sizes = {}
for dist in metadata.distributions():
    name = dist.metadata["Name"].lower()
    if name not in ("pip", "setuptools"):
        sizes[name] = sum(dist.locate_file(f).stat().st_size for f in dist.files or () if dist.locate_file(f).exists())
print(json.dumps(sizes))
"""

GATEWAY = """
import json, sys
from sessiond_client import SessionStoreClient, connect
from sessiond_client.hermes import (
    GatewayConfig, Platform, SessionSource, SessionStore, build_session_context, build_session_context_prompt,
)
from sessiond_client.v1 import source_pb2

address, sessions_dir = sys.argv[1], sys.argv[2]
config = GatewayConfig()
store = SessionStore(sessions_dir, config, address=address)
source = SessionSource(platform=Platform.TELEGRAM, chat_id="4242", user_id="7", user_name="Ada")
for n in range(3):
    entry = store.get_or_create_session(source)
    store.append_to_transcript(entry.session_id, {"role": "user", "content": f"question {n}"})
    store.append_to_transcript(entry.session_id, {"role": "assistant", "content": f"answer {n}"})
    store.update_session(entry.session_key, last_prompt_tokens=100 * (n + 1))
messages = store.load_transcript(entry.session_id)
prompt = build_session_context_prompt(build_session_context(source, config, entry))
with connect(address) as client:
    typed_key = client.build_session_key(source_pb2.SessionSource(platform="telegram", chat_id="4242")).session_key
with SessionStoreClient(address) as typed:
    stored = typed.get_session(entry.session_key)
print(json.dumps({
    "session_key": entry.session_key,
    "session_id": entry.session_id,
    "platform_type": type(entry.platform).__name__,
    "platform_is_member": entry.platform is Platform.TELEGRAM,
    "messages": [[m["role"], m["content"]] for m in messages],
    "prompt": prompt,
    "typed_key": typed_key,
    "typed_session_id": stored.session_id,
    "typed_last_prompt_tokens": stored.last_prompt_tokens,
}))
"""


def run(*command: object, env: dict[str, str], cwd: Path, timeout: float = 600) -> str:
    """The command's standard output; it must succeed."""
    done = subprocess.run(list(map(str, command)), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.timeout(900)
def test_the_client_installs_alone_and_runs_a_gateway(tmp_path: Path, start_daemon: Callable[..., Running]) -> None:
    """A gateway host gets the client without the daemon's dependencies, and the drop-in and the
    typed client work from that install alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_") and k != "PYTHONPATH"}
    env.update(HERMES_HOME=str(tmp_path / "hermes"), XDG_RUNTIME_DIR=str(tmp_path))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", tmp_path / "dist", ROOT / "client/python"]
    run(*pip_wheel, env=env, cwd=ROOT)
    (wheel,) = (tmp_path / "dist").glob("sessiond_client-*.whl")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, env=env, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", wheel, env=env, cwd=tmp_path)

    listed = json.loads(run(python, "-m", "pip", "list", "--format=json", env=env, cwd=tmp_path))
    installed = {d["name"].lower() for d in listed}
    assert "sessiond-client" in installed
    assert installed & FORBIDDEN == set()
    no_daemon = subprocess.run([python, "-c", "import sessiond"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert no_daemon.returncode != 0 and "ModuleNotFoundError" in no_daemon.stderr

    sizes = json.loads(run(python, "-c", SIZE, env=env, cwd=tmp_path))
    listing = ", ".join(f"{name} {size / 1e6:.1f}" for name, size in sorted(sizes.items(), key=lambda x: -x[1]))
    print(f"client install: {sum(sizes.values()) / 1e6:.1f} MB ({listing})")

    daemon = start_daemon()
    sessions = tmp_path / "sessions"
    answer = json.loads(run(python, "-c", GATEWAY, daemon.address, sessions, env=env, cwd=tmp_path, timeout=120))
    turns = (("user", "question"), ("assistant", "answer"))
    expected = [[role, f"{word} {n}"] for n in range(3) for role, word in turns]
    assert answer["session_key"] == "agent:main:telegram:dm:4242"
    assert answer["messages"] == expected
    assert answer["platform_type"] == "Platform" and answer["platform_is_member"]
    assert answer["prompt"].startswith("## Current Session Context")
    assert answer["typed_key"] == answer["session_key"]
    assert answer["typed_session_id"] == answer["session_id"] and answer["typed_last_prompt_tokens"] == 300
    assert not (sessions / "sessiond.pid").exists(), "a named address must not start a local daemon"
