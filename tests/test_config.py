"""The daemon's configuration: defaults, a full TOML file, errors naming their key, overrides."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sessiond.daemon import config
from sessiond.errors import ConfigError
from sessiond.model import HomeChannel, KeyOptions, ResetPolicy
from sessiond.rules.retention import RetentionDays, RetentionPolicy

FULL_TOML = """
[server]
socket = "{socket}"
tcp = "127.0.0.1:0"
grace_seconds = 2.5
max_workers = 4

[log]
level = "debug"

[sessions]
group_sessions_per_user = false
thread_sessions_per_user = true
max_age_days = 30

[platforms]
connected = ["telegram", "Discord", "irc"]

[platforms.plugins.irc]
pii_safe = true

[platforms.plugins.teams]

[platforms.home_channels.telegram]
chat_id = -100123
name = "Ops"
thread_id = "7"

[platforms.home_channels.irc]
chat_id = "#agents"
user_id = "bot"
scope_id = "libera"

[reset.default]
mode = "idle"
at_hour = 5
idle_minutes = 60
notify = false
notify_exclude_platforms = ["webhook"]
time_zone = "Europe/Berlin"

[reset.platforms.telegram]
mode = "daily"
at_hour = 3
time_zone = "America/New_York"

[reset.platforms.irc]
mode = "none"

[reset.chat_types.thread]
idle_minutes = 15

[whatsapp]
mapping_dir = "{mapping_dir}"

[prompt]
agent_home = "/srv/agent"
discord_tools = true

[limits]
max_field_bytes = 100
max_request_bytes = 2048
"""


def write(tmp_path: Path, text: str, name: str = "sessiond.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -------------------------------------------------------------------- defaults


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    got = config.parse({})
    assert got.key_options == KeyOptions(group_sessions_per_user=True, thread_sessions_per_user=False)
    assert got.max_age_days == 90
    default = got.policies.default
    assert (default.mode, default.at_hour, default.idle_minutes) == ("both", 4, 1440)
    assert default.time_zone == ""
    assert got.policies.platforms == {} and got.policies.chat_types == {}
    assert got.tcp == ""
    assert got.socket == tmp_path / "sessiond" / "sessiond.sock"
    assert got.log_level == "info"
    assert got.connected_platforms == () and dict(got.home_channels) == {}
    assert got.whatsapp_mapping_dir is None
    assert got.prompt.agent_home == "~/.hermes" and got.prompt.discord_tools is False
    assert got.platforms.plugins == {}
    assert got.zone(default) is got.zones[""]


def test_default_socket_without_xdg_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    got = config.parse({})
    assert got.socket is not None
    assert got.socket.parent == Path(f"/tmp/sessiond-{os.getuid()}")


def test_load_without_a_file_is_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    loaded, parsed = config.load(None, environ={}), config.parse({})
    # The host zone is read afresh each time (ZoneInfo.from_file objects do not compare equal).
    assert dataclasses.replace(loaded, zones={}) == dataclasses.replace(parsed, zones={})
    assert set(loaded.zones) == {""}


# ----------------------------------------------------------------- a full file


def test_full_document(tmp_path: Path) -> None:
    socket, mapping_dir = tmp_path / "run" / "s.sock", tmp_path / "wa"
    path = write(tmp_path, FULL_TOML.format(socket=socket, mapping_dir=mapping_dir))
    got = config.load(path, environ={"SESSIOND_TOKEN": "secret"})

    assert got.socket == socket and got.tcp == "127.0.0.1:0" and got.security.token == "secret"
    assert got.grace_seconds == 2.5 and got.max_workers == 4
    assert got.log_level == "debug"
    assert got.key_options == KeyOptions(group_sessions_per_user=False, thread_sessions_per_user=True)
    assert got.max_age_days == 30

    assert dict(got.platforms.plugins) == {"irc": True, "teams": False}
    assert got.platforms.is_pii_safe("irc") and not got.platforms.is_pii_safe("teams")
    assert got.connected_platforms == ("telegram", "discord", "irc")
    assert got.home_channels == {
        "telegram": HomeChannel("telegram", "-100123", "Ops", thread_id="7"),
        "irc": HomeChannel("irc", "#agents", "Home", user_id="bot", scope_id="libera"),
    }

    assert got.policies.default == ResetPolicy(
        mode="idle",
        at_hour=5,
        idle_minutes=60,
        notify=False,
        notify_exclude_platforms=("webhook",),
        time_zone="Europe/Berlin",
    )
    telegram = got.policies.platforms["telegram"]
    assert telegram == ResetPolicy(mode="daily", at_hour=3, time_zone="America/New_York")
    assert got.policies.platforms["irc"] == ResetPolicy(mode="none")
    assert got.policies.chat_types == {"thread": ResetPolicy(idle_minutes=15)}
    assert got.policies.for_session("telegram", "thread") is telegram
    assert got.policies.for_session("discord", "thread").idle_minutes == 15
    assert got.zone(telegram) == ZoneInfo("America/New_York")
    assert got.zone(got.policies.default) == ZoneInfo("Europe/Berlin")
    assert got.zone(got.policies.chat_types["thread"]) is got.zones[""]

    assert got.whatsapp_mapping_dir == mapping_dir
    assert got.prompt.agent_home == "/srv/agent" and got.prompt.discord_tools is True
    assert (got.limits.max_field_bytes, got.limits.max_request_bytes) == (100, 2048)


def test_empty_socket_with_tcp_only(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nsocket = ""\ntcp = "127.0.0.1:0"\n')
    got = config.load(path, environ={"SESSIOND_TOKEN": "secret"})
    assert got.socket is None and got.tcp == "127.0.0.1:0"


def test_tcp_without_tls_or_token_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\ntcp = "127.0.0.1:0"\n')
    with pytest.raises(ConfigError, match=r"^server\.tcp: TCP needs TLS"):
        config.load(path, environ={})


def test_token_file_is_read_and_never_shown(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    path = write(tmp_path, f'[server]\ntcp = "127.0.0.1:0"\n[security]\ntoken_file = "{token}"\n')
    got = config.load(path, environ={"SESSIOND_TOKEN": "ignored"})
    assert got.security.token == "s3cret-token" and "s3cret" not in repr(got)


@pytest.mark.parametrize(
    "security, message",
    [
        ('tls_cert = "/c.pem"', r"^security\.tls_cert: tls_cert and tls_key go together"),
        ('tls_client_ca = "/ca.pem"', r"^security\.tls_client_ca: needs tls_cert"),
        ('token_file = "/nonexistent/token"', r"^security\.token_file: cannot read"),
    ],
)
def test_bad_security_settings_name_the_key(tmp_path: Path, security: str, message: str) -> None:
    path = write(tmp_path, f"[security]\n{security}\n")
    with pytest.raises(ConfigError, match=message):
        config.load(path, environ={})


def test_no_listener_at_all_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nsocket = ""\n')
    with pytest.raises(ConfigError, match=r"^server\.socket: "):
        config.load(path, environ={})


# --------------------------------------------------------------- invalid values


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"sessions": {"group_session_per_user": False}}, "sessions.group_session_per_user"),
        ({"sever": {"socket": "/x"}}, "sever"),
        ({"reset": {"default": {"idle_minute": 5}}}, "reset.default.idle_minute"),
        ({"reset": {"default": {"at_hour": 24}}}, "reset.default.at_hour"),
        ({"reset": {"default": {"at_hour": -1}}}, "reset.default.at_hour"),
        ({"reset": {"default": {"at_hour": True}}}, "reset.default.at_hour"),
        ({"reset": {"platforms": {"telegram": {"idle_minutes": 0}}}}, "reset.platforms.telegram.idle_minutes"),
        ({"reset": {"chat_types": {"group": {"at_hour": 24}}}}, "reset.chat_types.group.at_hour"),
        ({"reset": {"default": {"mode": "weekly"}}}, "reset.default.mode"),
        ({"reset": {"default": {"time_zone": "Mars/Olympus"}}}, "reset.default.time_zone"),
        ({"reset": {"platforms": {"nope": {}}}}, "reset.platforms.nope"),
        ({"reset": {"chat_types": {"forum": {}}}}, "reset.chat_types.forum"),
        ({"reset": {"default": {"notify_exclude_platforms": [1]}}}, "reset.default.notify_exclude_platforms"),
        ({"platforms": {"connected": ["nope"]}}, "platforms.connected[0]"),
        ({"platforms": {"connected": "telegram"}}, "platforms.connected"),
        ({"platforms": {"plugins": {"Irc": {}}}}, "platforms.plugins.Irc"),
        ({"platforms": {"plugins": {"telegram": {}}}}, "platforms.plugins.telegram"),
        ({"platforms": {"plugins": {"irc": {"pii_safe": "yes"}}}}, "platforms.plugins.irc.pii_safe"),
        ({"platforms": {"home_channels": {"nope": {"chat_id": "1"}}}}, "platforms.home_channels.nope"),
        ({"platforms": {"home_channels": {"telegram": {"name": "Ops"}}}}, "platforms.home_channels.telegram.chat_id"),
        ({"sessions": {"max_age_days": "x"}}, "sessions.max_age_days"),
        ({"sessions": {"group_sessions_per_user": "yes"}}, "sessions.group_sessions_per_user"),
        ({"log": {"level": "loud"}}, "log.level"),
        ({"server": {"socket": 5}}, "server.socket"),
        ({"prompt": {"discord_tools": 1}}, "prompt.discord_tools"),
        ({"whatsapp": {"mapping_dir": ["a"]}}, "whatsapp.mapping_dir"),
        ({"reset": {"default": 5}}, "reset.default"),
    ],
)
def test_invalid_value_names_its_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(data)
    message = str(caught.value)
    assert message.startswith(f"{key}:"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"server": {"max_workers": 0}}, "server.max_workers"),
        ({"server": {"grace_seconds": -1}}, "server.grace_seconds"),
        ({"limits": {"max_field_bytes": 0}}, "limits.max_field_bytes"),
        ({"limits": {"max_request_bytes": 10}}, "limits.max_request_bytes"),
    ],
)
def test_out_of_range_server_and_limits_values_are_rejected(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(data)
    assert str(caught.value).startswith(f"{key}: expected at least ")


def test_invalid_value_in_a_file_names_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[reset.default]\nat_hour = 24\n")
    with pytest.raises(ConfigError, match=r"^reset\.default\.at_hour: "):
        config.load(path, environ={})


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[reset.default\nat_hour = 4\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    assert str(caught.value).startswith(f"{path}:")


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ={})
    assert str(caught.value).startswith(f"{path}:")


# --------------------------------------------------------------- env overrides


def test_env_overrides(tmp_path: Path) -> None:
    environ = {
        "SESSIOND_IDLE_MINUTES": "30",
        "SESSIOND_RESET_HOUR": "7",
        "SESSIOND_TIME_ZONE": "Asia/Tokyo",
        "SESSIOND_SOCKET": str(tmp_path / "env.sock"),
        "SESSIOND_TCP": "127.0.0.1:0",
        "SESSIOND_LOG_LEVEL": "warning",
        "SESSIOND_TOKEN": "secret",
    }
    got = config.load(None, environ=environ)
    default = got.policies.default
    assert (default.idle_minutes, default.at_hour, default.time_zone) == (30, 7, "Asia/Tokyo")
    assert default.mode == "both"
    assert got.zone(default) == ZoneInfo("Asia/Tokyo")
    assert got.socket == tmp_path / "env.sock" and got.tcp == "127.0.0.1:0"
    assert got.log_level == "warning"


def test_env_overrides_beat_the_file_and_keep_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, '[reset.default]\nmode = "idle"\nidle_minutes = 60\nat_hour = 2\n')
    got = config.load(path, environ={"SESSIOND_IDLE_MINUTES": "30"})
    default = got.policies.default
    assert (default.mode, default.idle_minutes, default.at_hour) == ("idle", 30, 2)


def test_unrelated_environment_is_ignored() -> None:
    got = config.load(None, environ={"SESSION_IDLE_MINUTES": "5", "SESSIOND_UNKNOWN": "x"})
    assert got.policies.default.idle_minutes == 1440


@pytest.mark.parametrize("variable", ["SESSIOND_IDLE_MINUTES", "SESSIOND_RESET_HOUR"])
@pytest.mark.parametrize("value", ["thirty", "1.5", ""])
def test_non_integer_env_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(None, environ={variable: value})
    assert str(caught.value).startswith(f"{variable}:")


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"SESSIOND_RESET_HOUR": "24"}, "reset.default.at_hour"),
        ({"SESSIOND_IDLE_MINUTES": "0"}, "reset.default.idle_minutes"),
        ({"SESSIOND_TIME_ZONE": "Mars/Olympus"}, "reset.default.time_zone"),
        ({"SESSIOND_LOG_LEVEL": "loud"}, "log.level"),
    ],
)
def test_out_of_range_env_value_is_checked_like_the_file(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(None, environ=environ)
    assert str(caught.value).startswith(f"{key}:")


@pytest.mark.parametrize(
    ("text", "environ", "key"),
    [
        ("reset = 3\n", {"SESSIOND_IDLE_MINUTES": "30"}, "reset"),
        ("[reset]\ndefault = 5\n", {"SESSIOND_RESET_HOUR": "5"}, "reset.default"),
        ('server = "x"\n', {"SESSIOND_SOCKET": "/tmp/x.sock"}, "server"),
    ],
)
def test_env_override_into_a_non_table_is_a_config_error(
    tmp_path: Path, text: str, environ: dict[str, str], key: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path, environ=environ)
    assert str(caught.value).startswith(f"{key}:")


# ------------------------------------------------------------------ the daemon


def serve(path: Path, tmp_path: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "xdg")
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "sessiond.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("text", "extra_env", "expected"),
    [
        ("[reset.default]\nat_hour = 24\n", {}, "reset.default.at_hour"),
        ("[sessions]\ngroup_session_per_user = false\n", {}, "sessions.group_session_per_user"),
        ("[reset.default\n", {}, "sessiond.toml"),
        ("", {"SESSIOND_IDLE_MINUTES": "soon"}, "SESSIOND_IDLE_MINUTES"),
        ("reset = 3\n", {"SESSIOND_IDLE_MINUTES": "30"}, "reset"),
    ],
)
def test_daemon_refuses_a_bad_config_with_one_line(
    tmp_path: Path, text: str, extra_env: dict[str, str], expected: str
) -> None:
    result = serve(write(tmp_path, text), tmp_path, extra_env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr
    assert not (tmp_path / "xdg" / "sessiond" / "sessiond.sock").exists()


def test_retention_policy_overrides_inherit_the_default_days() -> None:
    parsed = config.parse(
        {
            "retention": {
                "archive_after_days": 30,
                "delete_after_days": 365,
                "keep_titled": False,
                "platforms": {"discord": {"delete_after_days": 7}},
                "chat_types": {"group": {"archive_after_days": 0}},
            }
        }
    )
    policy = parsed.retention_policy
    assert (policy.default, policy.keep_titled) == (RetentionDays(30, 365), False)
    assert policy.platforms == {"discord": RetentionDays(30, 7)}
    assert policy.chat_types == {"group": RetentionDays(0, 365)}
    assert config.parse({}).retention_policy == RetentionPolicy()  # nothing archived or deleted by default


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"delete_after_days": -1}, r"^retention\.delete_after_days: expected 0 \(never\) or more"),
        ({"platforms": {"discord": {"delete_days": 1}}}, r"^retention\.platforms\.discord\.delete_days: unknown key"),
        ({"chat_types": {"forum": {}}}, r"^retention\.chat_types\.forum: expected a chat type"),
        ({"platforms": {"nowhere": {}}}, r"^retention\.platforms\.nowhere"),
        ({"keep_titled": "yes"}, r"^retention\.keep_titled: expected bool"),
    ],
)
def test_bad_retention_settings_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.parse({"retention": data})


def test_a_namespace_profile_inherits_what_it_leaves_out() -> None:
    parsed = config.parse(
        {
            "sessions": {"thread_sessions_per_user": True},
            "prompt": {"agent_home": "/srv/agent"},
            "reset": {"default": {"idle_minutes": 90}},
            "namespaces": {
                "research": {
                    "group_sessions_per_user": False,
                    "discord_tools": True,
                    "reset": {"default": {"mode": "idle"}, "platforms": {"slack": {"mode": "none"}}},
                },
                "ops": {"max_age_days": 7, "reset": {"default": {"time_zone": "Asia/Tokyo"}}},
            },
        }
    )
    research, ops = parsed.profiles["research"], parsed.profiles["ops"]
    assert research.key_options == KeyOptions(group_sessions_per_user=False, thread_sessions_per_user=True)
    assert research.prompt is not None and (research.prompt.agent_home, research.prompt.discord_tools) == (
        "/srv/agent",
        True,
    )
    assert research.policies is not None and research.policies.default == ResetPolicy(mode="idle", idle_minutes=90)
    assert research.policies.platforms["slack"].mode == "none" and research.max_age_days is None
    assert (ops.key_options, ops.prompt, ops.max_age_days) == (None, None, 7)
    assert "Asia/Tokyo" in parsed.zones  # a namespace's zone is known to the daemon's expiry scan
    assert config.parse({}).profiles == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"Research": {}}, r"^namespaces\.Research: a namespace is"),
        ({"research": {"idle_minutes": 5}}, r"^namespaces\.research\.idle_minutes: unknown key"),
        ({"research": {"max_age_days": 0}}, r"^namespaces\.research\.max_age_days: expected a positive number"),
        ({"research": {"reset": {"default": {"at_hour": 25}}}}, r"^namespaces\.research\.reset\.default\.at_hour"),
        ({"research": {"agent_home": 1}}, r"^namespaces\.research\.agent_home: expected str"),
        ({"research": "yes"}, r"^namespaces\.research: expected a table"),
    ],
)
def test_bad_namespace_settings_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.parse({"namespaces": data})
