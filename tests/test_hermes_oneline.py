"""The one-line switch, literally: a Hermes host whose ``gateway/session.py`` is
``from sessiond_client.hermes import *`` runs gateway code unchanged.

The host is the oracle's stand-ins (``gateway.config``, ``gateway.platform_registry``,
``hermes_constants``, ...), linked into a temporary tree beside a one-line ``gateway/session.py``;
a fresh interpreter imports it the way Hermes's own modules do (``gateway/__init__.py``,
``gateway/run.py``, the platform adapters) and its answers are compared with the reference's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from helpers.daemons import Running
from helpers.reference import ORACLE_DIR, oracle

HOST = ORACLE_DIR / "hermes_seed"
GATEWAY_CODE = """
import json, sys
from pathlib import Path
from gateway.session import (  # as gateway/run.py imports them
    SessionStore, SessionSource, SessionContext, build_session_context, build_session_context_prompt,
    build_session_key, is_shared_multi_user_session,
)
from gateway.session import SessionResetPolicy, Platform  # the re-exports gateway/__init__.py and tests use
from gateway.config import GatewayConfig, PlatformConfig, HomeChannel

config = GatewayConfig(platforms={
    Platform.TELEGRAM: PlatformConfig(enabled=True, home_channel=HomeChannel(Platform.TELEGRAM, "-100", "Ops")),
    Platform.DISCORD: PlatformConfig(enabled=True),
})
store = SessionStore(Path(sys.argv[1]), config, has_active_processes_fn=lambda key: False)
source = SessionSource(platform=Platform.TELEGRAM, chat_id="-1001", chat_type="group", user_id="42", user_name="Al")
entry = store.get_or_create_session(source)
store.append_to_transcript(entry.session_id, {"role": "user", "content": "hello"})
context = build_session_context(source, config, entry)
print(json.dumps({
    "key": entry.session_key,
    "again": store.get_or_create_session(source).session_id == entry.session_id,
    "platform_is_member": entry.platform is Platform.TELEGRAM,
    "shared": is_shared_multi_user_session(source, group_sessions_per_user=False),
    "flat_key": build_session_key(source, group_sessions_per_user=False),
    "context": context.to_dict(),
    "prompt": build_session_context_prompt(context),
    "transcript": store.load_transcript(entry.session_id),
    "policy": isinstance(SessionResetPolicy(), SessionResetPolicy),
    "module": SessionStore.__module__,
}))
"""


def host_tree(root: Path) -> Path:
    """The host's modules, linked, and a ``gateway/session.py`` of one line."""
    (root / "gateway").mkdir(parents=True)
    for item in HOST.iterdir():
        if item.name != "gateway" and item.name != "__pycache__":
            (root / item.name).symlink_to(item)
    for item in (HOST / "gateway").iterdir():
        if item.name not in ("session.py", "__pycache__"):
            (root / "gateway" / item.name).symlink_to(item)
    (root / "gateway" / "session.py").write_text("from sessiond_client.hermes import *\n")
    return root


def test_a_one_line_session_module_runs_gateway_code_unchanged(
    start_daemon: Callable[..., Running], tmp_path: Path
) -> None:
    daemon = start_daemon()
    root = host_tree(tmp_path / "hermes")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    env.update(SESSIOND_ADDRESS=daemon.address, PYTHONPATH=str(root), HERMES_HOME=str(tmp_path / "home"))
    run = subprocess.run(
        [sys.executable, "-c", GATEWAY_CODE, str(tmp_path / "sessions")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    source = {"platform": "telegram", "chat_id": "-1001", "chat_type": "group", "user_id": "42", "user_name": "Al"}
    config = {
        "connected_platforms": ["telegram", "discord"],
        "home_channels": {"telegram": {"chat_id": "-100", "name": "Ops"}},
        "hermes_home_display": str(tmp_path / "home"),  # the child's HERMES_HOME, as its host shows it
    }
    assert answer["module"] == "sessiond_client.hermes.store"
    assert answer["key"] == oracle.session_key(source) and answer["again"] and answer["platform_is_member"]
    assert answer["shared"] is oracle.shared_multi_user(source, group_sessions_per_user=False) is True
    assert answer["flat_key"] == oracle.session_key(source, group_sessions_per_user=False)
    entry = {k: answer["context"][k] for k in ("session_key", "session_id", "created_at", "updated_at")}
    assert answer["context"] == oracle.context_dict(source, config, entry)
    assert answer["prompt"] == oracle.context_prompt(source, config, entry)
    assert answer["transcript"] == [{"role": "user", "content": "hello"}] and answer["policy"]
