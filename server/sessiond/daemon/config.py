"""The daemon's configuration: an optional TOML file, environment overrides, checked once.

Every key has a default, so no file is needed. A bad value stops the daemon at start with
one line naming the key (``ConfigError``), never later on a request.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sessiond.errors import ConfigError, InvalidArgument
from sessiond.model import HomeChannel, KeyOptions, Limits, ResetPolicies, ResetPolicy
from sessiond.rpc import scopes
from sessiond.rpc.auth import Security
from sessiond.rpc.scopes import Scope
from sessiond.rules import keys
from sessiond.rules.platforms import BUILTIN, Platforms
from sessiond.rules.prompt import PromptOptions
from sessiond.rules.retention import RetentionDays, RetentionPolicy
from sessiond.rules.settings import Profile, Settings, mapping
from sessiond.store.session_store import Retention

CHAT_TYPES = ("dm", "group", "channel", "thread")
RESET_MODES = ("daily", "idle", "both", "none")

# Environment variable -> (config key path, parser of its text).
ENV_OVERRIDES: dict[str, tuple[tuple[str, ...], type]] = {
    "SESSIOND_SOCKET": (("server", "socket"), str),
    "SESSIOND_TCP": (("server", "tcp"), str),
    "SESSIOND_HEALTH_TCP": (("server", "health_tcp"), str),
    "SESSIOND_DB": (("storage", "path"), str),
    "SESSIOND_BACKUP_DIR": (("storage", "backup_dir"), str),
    "SESSIOND_DURABILITY": (("storage", "durability"), str),
    "SESSIOND_BACKEND": (("storage", "backend"), str),
    "SESSIOND_PG_DSN": (("storage", "dsn"), str),
    "SESSIOND_LOG_LEVEL": (("log", "level"), str),
    "SESSIOND_TOKEN_FILE": (("security", "token_file"), str),
    "SESSIOND_METRICS": (("metrics", "address"), str),
    "SESSIOND_IDLE_MINUTES": (("reset", "default", "idle_minutes"), int),
    "SESSIOND_RESET_HOUR": (("reset", "default", "at_hour"), int),
    "SESSIOND_TIME_ZONE": (("reset", "default", "time_zone"), str),
}
LOG_LEVELS = ("debug", "info", "warning", "error")
DURABILITY = ("full", "relaxed")
BACKENDS = ("sqlite", "postgres")

T = TypeVar("T")


def default_socket_path() -> Path:
    """``$XDG_RUNTIME_DIR/sessiond/sessiond.sock``, else a per-user directory under /tmp."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "sessiond" if runtime else Path(f"/tmp/sessiond-{os.getuid()}")
    return base / "sessiond.sock"


def default_database_path() -> Path:
    """``$XDG_STATE_HOME/sessiond/sessiond.db``, else ``~/.local/state/sessiond/sessiond.db``."""
    state = os.environ.get("XDG_STATE_HOME")
    return (Path(state) if state else Path.home() / ".local" / "state") / "sessiond" / "sessiond.db"


def host_zone() -> tzinfo:
    """The host's time zone, as the reference's naive local time used it."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as localtime:
            return ZoneInfo.from_file(localtime, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return UTC


@dataclass(frozen=True)
class Maintenance:
    """Background work inside the daemon; an interval of 0 turns that job off."""

    prune_seconds: float = 3600.0  # prune entries older than sessions.max_age_days
    lease_sweep_seconds: float = 60.0  # delete expired leases (and announce them)
    checkpoint_seconds: float = 300.0  # WAL checkpoint
    event_retention_days: int = 7  # how long WatchSessionEvents can resume from
    search_index_seconds: float = 1.0  # build the full-text index further, while it is being built
    retention_seconds: float = 3600.0  # apply the [retention] policy (when it archives or deletes at all)


@dataclass(frozen=True)
class Config:
    """Everything the daemon reads from its configuration, checked."""

    socket: Path | None = field(default_factory=default_socket_path)
    tcp: str = ""
    health_tcp: str = ""
    database: Path = field(default_factory=default_database_path)
    backup_dir: Path | None = None  # where Admin.Backup may create files (off when unset)
    durable: bool = True
    full_text_search: bool = True  # SQLite: keep the FTS5 index of transcripts (SearchMessages)
    backend: str = "sqlite"  # or "postgres": ``dsn`` names the database, ``pool_size`` bounds its connections
    dsn: str = field(default="", repr=False)  # may hold a password: never printed or logged
    pool_size: int = 32
    check_seconds: float = 5.0
    grace_seconds: float = 10.0
    max_workers: int = 32
    log_level: str = "info"
    key_options: KeyOptions = field(default_factory=KeyOptions)
    max_age_days: int = 90
    namespace: str = "main"  # the agent namespace of keys when a gateway names none
    profiles: Mapping[str, Profile] = field(default_factory=dict)  # [namespaces.<name>]
    link_identities: bool = False  # DM keys of linked user ids converge on their identity's key
    policies: ResetPolicies = field(default_factory=ResetPolicies)
    zones: Mapping[str, tzinfo] = field(default_factory=lambda: {"": host_zone()})
    platforms: Platforms = field(default_factory=Platforms)
    connected_platforms: tuple[str, ...] = ()
    home_channels: Mapping[str, HomeChannel] = field(default_factory=dict)
    whatsapp_mapping_dir: Path | None = None
    prompt: PromptOptions = field(default_factory=PromptOptions)
    limits: Limits = field(default_factory=Limits)
    security: Security = field(default_factory=Security)
    metrics_address: str = ""
    maintenance: Maintenance = field(default_factory=Maintenance)
    retention_policy: RetentionPolicy = field(default_factory=RetentionPolicy)

    def zone(self, policy: ResetPolicy) -> tzinfo:
        """The time zone of a policy's daily reset (the host's when the policy names none)."""
        return self.zones[policy.time_zone]

    def settings(self) -> Settings:
        """The rule settings the store applies when a gateway sends none of its own."""
        return Settings(
            key_options=self.key_options,
            platforms=self.platforms,
            mapped=mapping(self.whatsapp_mapping_dir),
            prompt=self.prompt,
            policies=self.policies,
            host_zone=self.zones[""],
            namespace=self.namespace,
            profiles=self.profiles,
            link_identities=self.link_identities,
        )

    def retention(self) -> Retention:
        return Retention(self.max_age_days, self.limits.max_transcript_messages)


class _Table:
    """A TOML table being read: typed getters whose errors name the full key."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'config'}: expected a table")
        self.data, self.path = data, path
        self.read: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str, kind: type[T] | tuple[type, ...], default: T) -> T:
        self.read.add(name)
        value = self.data.get(name, default)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"{self.key(name)}: expected {expected}, got {value!r}")
        return value  # type: ignore[return-value]

    def table(self, name: str) -> _Table:
        self.read.add(name)
        return _Table(self.data.get(name, {}), self.key(name))

    def str_list(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        values = self.get(name, list, list(default))
        if not all(isinstance(v, str) for v in values):
            raise ConfigError(f"{self.key(name)}: expected a list of strings")
        return tuple(values)

    def done(self) -> None:
        """Reject keys nobody read: a typo must not silently fall back to a default."""
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            raise ConfigError(f"{self.key(unknown[0])}: unknown key")


BUILT_IN_POLICY = ResetPolicy()


def _policy(table: _Table, defaults: ResetPolicy = BUILT_IN_POLICY) -> ResetPolicy:
    """A reset policy; a key it leaves out is ``defaults``'."""
    mode = table.get("mode", str, defaults.mode)
    if mode not in RESET_MODES:
        raise ConfigError(f"{table.key('mode')}: expected one of {', '.join(RESET_MODES)}, got {mode!r}")
    at_hour = table.get("at_hour", int, defaults.at_hour)
    if not 0 <= at_hour <= 23:
        raise ConfigError(f"{table.key('at_hour')}: expected 0-23, got {at_hour}")
    idle_minutes = table.get("idle_minutes", int, defaults.idle_minutes)
    if idle_minutes <= 0:
        raise ConfigError(f"{table.key('idle_minutes')}: expected a positive number, got {idle_minutes}")
    time_zone = table.get("time_zone", str, defaults.time_zone)
    if time_zone:
        _zone(time_zone, table.key("time_zone"))
    policy = ResetPolicy(
        mode=mode,  # type: ignore[arg-type]  # checked above
        at_hour=at_hour,
        idle_minutes=idle_minutes,
        notify=table.get("notify", bool, defaults.notify),
        notify_exclude_platforms=table.str_list("notify_exclude_platforms", defaults.notify_exclude_platforms),
        time_zone=time_zone,
    )
    table.done()
    return policy


def _zone(name: str, key: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{key}: unknown time zone {name!r}") from None


def _platform(platforms: Platforms, name: str, key: str) -> str:
    try:
        return platforms.resolve(name, key)
    except InvalidArgument as exc:
        raise ConfigError(str(exc)) from None


def _plugins(table: _Table) -> Platforms:
    plugins = {}
    for name in list(table.data):
        spec = table.table(name)
        if name != name.strip().lower() or not name or name in BUILTIN:
            raise ConfigError(f"{spec.path}: plugin names are lower-case and not a built-in platform")
        plugins[name] = spec.get("pii_safe", bool, False)
        spec.done()
    table.done()
    return Platforms(plugins)


def _policies(
    table: _Table, platforms: Platforms, inherited: ResetPolicy = BUILT_IN_POLICY
) -> tuple[ResetPolicies, dict[str, tzinfo]]:
    default = _policy(table.table("default"), inherited)
    by_platform, by_type = table.table("platforms"), table.table("chat_types")
    overrides = {
        _platform(platforms, n, by_platform.key(n)): _policy(by_platform.table(n)) for n in list(by_platform.data)
    }
    for name in by_type.data:
        if name not in CHAT_TYPES:
            raise ConfigError(f"{by_type.key(name)}: expected a chat type ({', '.join(CHAT_TYPES)})")
    per_type = {n: _policy(by_type.table(n)) for n in list(by_type.data)}
    for t in (table, by_platform, by_type):
        t.done()
    policies = ResetPolicies(default, overrides, per_type)
    every = [default, *overrides.values(), *per_type.values()]
    zones = {p.time_zone: ZoneInfo(p.time_zone) for p in every if p.time_zone}
    return policies, {"": host_zone(), **zones}


def _home_channel(platform: str, table: _Table) -> HomeChannel:
    if "chat_id" not in table.data:
        raise ConfigError(f"{table.key('chat_id')}: required")
    chat_id = table.get("chat_id", (str, int), "")
    channel = HomeChannel(
        platform=platform,
        chat_id=str(chat_id),
        name=table.get("name", str, "Home"),
        thread_id=table.get("thread_id", str, "") or None,
        user_id=table.get("user_id", str, "") or None,
        scope_id=table.get("scope_id", str, "") or None,
    )
    table.done()
    return channel


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    for variable, (path, parse) in ENV_OVERRIDES.items():
        if variable not in environ:
            continue
        try:
            value = parse(environ[variable])
        except ValueError:
            raise ConfigError(f"{variable}: expected {parse.__name__}, got {environ[variable]!r}") from None
        table = data
        for depth, part in enumerate(path[:-1], start=1):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{'.'.join(path[:depth])}: expected a table")
        table[path[-1]] = value


def _optional_path(table: _Table, name: str) -> Path | None:
    value = table.get(name, str, "")
    return Path(value).expanduser() if value else None


def _security(table: _Table, environ: Mapping[str, str]) -> Security:
    security = Security(
        token_file=_optional_path(table, "token_file"),
        tls_cert=_optional_path(table, "tls_cert"),
        tls_key=_optional_path(table, "tls_key"),
        tls_client_ca=_optional_path(table, "tls_client_ca"),
        health_without_auth=table.get("health_without_auth", bool, True),
    )
    if (security.tls_cert is None) != (security.tls_key is None):
        raise ConfigError(f"{table.key('tls_cert')}: tls_cert and tls_key go together")
    if security.tls_client_ca is not None and security.tls_cert is None:
        raise ConfigError(f"{table.key('tls_client_ca')}: needs tls_cert and tls_key")
    security = replace(
        security,
        scoped_tokens=tuple(_scoped(table, "scoped_tokens", "token_file", _token_of)),
        scoped_clients=tuple(_scoped(table, "scoped_clients", "subject", lambda t, k: t.get(k, str, ""))),
    )
    if security.scoped_clients and security.tls_client_ca is None:
        raise ConfigError(f"{table.key('scoped_clients')}: needs tls_client_ca (client certificates)")
    token = _token_of(table, "token_file") if security.token_file else environ.get("SESSIOND_TOKEN", "")
    return replace(security, token=token)


def _token_of(table: _Table, key: str) -> str:
    path = _optional_path(table, key)
    if path is None:
        raise ConfigError(f"{table.key(key)}: required")
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{table.key(key)}: cannot read {path} ({exc})") from None
    if not token:
        raise ConfigError(f"{table.key(key)}: {path} is empty")
    return token


def _scoped(table: _Table, name: str, key: str, credential: Callable[[_Table, str], str]) -> list[tuple[str, Scope]]:
    """``[[security.<name>]]``: each a credential (``key``) with the namespaces and access it reaches."""
    entries = table.get(name, list, [])
    found = []
    for index, data in enumerate(entries):
        entry = _Table(data, f"{table.key(name)}[{index}]")
        value = credential(entry, key)
        if not value:
            raise ConfigError(f"{entry.key(key)}: required")
        listed = entry.str_list("namespaces", ())
        try:
            namespaces = scopes.namespaces(listed, entry.key("namespaces")) if listed else None
        except InvalidArgument as exc:
            raise ConfigError(str(exc)) from None
        found.append((value, scopes.Scope(namespaces, entry.get("read_only", bool, False))))
        entry.done()
    return found


def _maintenance(table: _Table) -> Maintenance:
    return Maintenance(
        prune_seconds=float(table.get("prune_seconds", (int, float), Maintenance.prune_seconds)),
        lease_sweep_seconds=float(table.get("lease_sweep_seconds", (int, float), Maintenance.lease_sweep_seconds)),
        checkpoint_seconds=float(table.get("checkpoint_seconds", (int, float), Maintenance.checkpoint_seconds)),
        event_retention_days=table.get("event_retention_days", int, Maintenance.event_retention_days),
        search_index_seconds=float(table.get("search_index_seconds", (int, float), Maintenance.search_index_seconds)),
        retention_seconds=float(table.get("retention_seconds", (int, float), Maintenance.retention_seconds)),
    )


def _namespace(name: str, key: str) -> str:
    try:
        return keys.checked_namespace(name, key)
    except InvalidArgument as exc:
        raise ConfigError(str(exc)) from None


def _overridden(table: _Table, base: T, names: tuple[str, ...]) -> T | None:
    """``base`` with the table's values of ``names`` (each of the base's type); None when it sets none."""
    if not any(name in table.data for name in names):
        return None
    return replace(base, **{n: table.get(n, type(getattr(base, n)), getattr(base, n)) for n in names})  # type: ignore[type-var]


def _profile(table: _Table, platforms: Platforms, config: Config) -> tuple[Profile, dict[str, tzinfo]]:
    """``[namespaces.<name>]``: a key it leaves out is the daemon's (``[sessions]``, ``[prompt]``);
    its ``reset`` table, when it has one, is a whole ``[reset]`` whose default inherits the daemon's."""
    policies, zones = None, dict[str, tzinfo]()
    if "reset" in table.data:
        policies, zones = _policies(table.table("reset"), platforms, config.policies.default)
    max_age_days = table.get("max_age_days", int, config.max_age_days)
    if max_age_days <= 0:
        raise ConfigError(f"{table.key('max_age_days')}: expected a positive number, got {max_age_days}")
    profile = Profile(
        key_options=_overridden(table, config.key_options, ("group_sessions_per_user", "thread_sessions_per_user")),
        policies=policies,
        max_age_days=max_age_days if "max_age_days" in table.data else None,
        prompt=_overridden(table, config.prompt, ("agent_home", "discord_tools")),
        link_identities=table.get("link_identities", bool, config.link_identities)
        if "link_identities" in table.data
        else None,
    )
    table.done()
    return profile, zones


def _profiles(table: _Table, platforms: Platforms, config: Config) -> Config:
    """The config with its ``[namespaces.<name>]`` profiles (and their reset zones)."""
    profiles, zones = {}, dict(config.zones)
    for name in list(table.data):
        profile, found = _profile(table.table(name), platforms, config)
        profiles[_namespace(name, table.key(name))] = profile
        zones.update(found)
    table.done()
    return replace(config, profiles=profiles, zones=zones)


def _retention_days(table: _Table, inherited: RetentionDays) -> RetentionDays:
    """A policy's days; a key it leaves out is the default policy's."""
    days = {}
    for name in ("archive_after_days", "delete_after_days"):
        days[name] = table.get(name, int, getattr(inherited, name))
        if days[name] < 0:
            raise ConfigError(f"{table.key(name)}: expected 0 (never) or more, got {days[name]}")
    return RetentionDays(**days)


def _retention(table: _Table, platforms: Platforms) -> RetentionPolicy:
    """``[retention]``, its ``platforms.<name>`` and ``chat_types.<type>`` overrides (platform first)."""
    default = _retention_days(table, RetentionDays())
    by_platform, by_type = table.table("platforms"), table.table("chat_types")
    for name in by_type.data:
        if name not in CHAT_TYPES:
            raise ConfigError(f"{by_type.key(name)}: expected a chat type ({', '.join(CHAT_TYPES)})")
    platform_tables = {
        _platform(platforms, n, by_platform.key(n)): by_platform.table(n) for n in list(by_platform.data)
    }
    type_tables = {n: by_type.table(n) for n in list(by_type.data)}
    policy = RetentionPolicy(
        default=default,
        platforms={name: _retention_days(t, default) for name, t in platform_tables.items()},
        chat_types={name: _retention_days(t, default) for name, t in type_tables.items()},
        keep_titled=table.get("keep_titled", bool, True),
    )
    for t in (*platform_tables.values(), *type_tables.values(), table, by_platform, by_type):
        t.done()
    return policy


def _backend(table: _Table, max_workers: int) -> tuple[str, str, int]:
    """``storage.backend``, ``dsn`` and ``pool_size`` (one connection per store thread by default).

    A DSN is checked here, so that a typo stops the daemon at start; the error never quotes it,
    since it may hold a password.
    """
    backend = table.get("backend", str, "sqlite")
    if backend not in BACKENDS:
        raise ConfigError(f"storage.backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    dsn = table.get("dsn", str, "")
    if backend == "postgres":
        if not dsn:
            raise ConfigError('storage.dsn: required when storage.backend is "postgres" (or set SESSIOND_PG_DSN)')
        try:  # the driver is an extra, imported only by those who chose this backend
            from psycopg import ProgrammingError
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            raise ConfigError(
                "storage.backend: \"postgres\" needs the PostgreSQL driver: pip install 'sessiond[postgres]'"
            ) from None
        try:
            conninfo_to_dict(dsn)
        except ProgrammingError:
            raise ConfigError(
                "storage.dsn: not a PostgreSQL connection string (key=value pairs or a postgresql:// URI)"
            ) from None
    return backend, dsn, table.get("pool_size", int, max_workers)


def parse(data: dict[str, Any], environ: Mapping[str, str] = os.environ) -> Config:
    """A checked ``Config`` from a TOML document's data."""
    root = _Table(data, "")
    server, log, sessions = root.table("server"), root.table("log"), root.table("sessions")
    platforms_table, limits_table = root.table("platforms"), root.table("limits")
    platforms = _plugins(platforms_table.table("plugins"))
    connected = platforms_table.str_list("connected", ())
    homes = platforms_table.table("home_channels")
    home_channels = {}
    for name in list(homes.data):
        platform = _platform(platforms, name, homes.key(name))
        home_channels[platform] = _home_channel(platform, homes.table(name))
    policies, zones = _policies(root.table("reset"), platforms)
    whatsapp, prompt, storage = root.table("whatsapp"), root.table("prompt"), root.table("storage")
    security, metrics, maintenance = root.table("security"), root.table("metrics"), root.table("maintenance")
    retention = root.table("retention")
    durability = storage.get("durability", str, "full")
    if durability not in DURABILITY:
        raise ConfigError(f"storage.durability: expected one of {', '.join(DURABILITY)}, got {durability!r}")
    backend, dsn, pool_size = _backend(storage, server.get("max_workers", int, 32))
    database = storage.get("path", str, str(default_database_path()))
    if not database:
        raise ConfigError("storage.path: required")
    socket = server.get("socket", str, str(default_socket_path()))
    log_level = log.get("level", str, "info")
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"log.level: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    mapping_dir = whatsapp.get("mapping_dir", str, "")
    config = Config(
        socket=Path(socket) if socket else None,
        tcp=server.get("tcp", str, ""),
        health_tcp=server.get("health_tcp", str, ""),
        database=Path(database).expanduser(),
        backup_dir=_optional_path(storage, "backup_dir"),
        durable=durability == "full",
        full_text_search=storage.get("full_text_search", bool, True),
        backend=backend,
        dsn=dsn,
        pool_size=pool_size,
        check_seconds=float(storage.get("check_seconds", (int, float), 5.0)),
        grace_seconds=float(server.get("grace_seconds", (int, float), 10.0)),
        max_workers=server.get("max_workers", int, 32),
        log_level=log_level,
        key_options=KeyOptions(
            group_sessions_per_user=sessions.get("group_sessions_per_user", bool, True),
            thread_sessions_per_user=sessions.get("thread_sessions_per_user", bool, False),
        ),
        max_age_days=sessions.get("max_age_days", int, 90),
        link_identities=sessions.get("link_identities", bool, False),
        namespace=_namespace(sessions.get("namespace", str, keys.DEFAULT_NAMESPACE), sessions.key("namespace")),
        policies=policies,
        zones=zones,
        platforms=platforms,
        connected_platforms=tuple(
            _platform(platforms, name, f"platforms.connected[{i}]") for i, name in enumerate(connected)
        ),
        home_channels=home_channels,
        whatsapp_mapping_dir=Path(mapping_dir).expanduser() if mapping_dir else None,
        prompt=PromptOptions(
            agent_home=prompt.get("agent_home", str, "~/.hermes"),
            discord_tools=prompt.get("discord_tools", bool, False),
        ),
        limits=Limits(
            max_field_bytes=limits_table.get("max_field_bytes", int, Limits.max_field_bytes),
            max_request_bytes=limits_table.get("max_request_bytes", int, Limits.max_request_bytes),
            max_message_bytes=limits_table.get("max_message_bytes", int, Limits.max_message_bytes),
            max_batch=limits_table.get("max_batch", int, Limits.max_batch),
            max_transcript_messages=limits_table.get("max_transcript_messages", int, Limits.max_transcript_messages),
        ),
        security=_security(security, environ),
        metrics_address=metrics.get("address", str, ""),
        maintenance=_maintenance(maintenance),
        retention_policy=_retention(retention, platforms),
    )
    config = _profiles(root.table("namespaces"), platforms, config)
    tables = (server, log, sessions, platforms_table, homes, limits_table, whatsapp, prompt, storage)
    for table in (*tables, security, metrics, maintenance, root):
        table.done()
    if config.backup_dir is not None and not config.backup_dir.is_absolute():
        raise ConfigError(f"storage.backup_dir: must be an absolute path, got {str(config.backup_dir)!r}")
    if not config.socket and not config.tcp:
        raise ConfigError("server.socket: no listener configured (set server.socket or server.tcp)")
    if config.tcp and not (config.security.tokens() or config.security.tls_cert):
        raise ConfigError(
            "server.tcp: TCP needs TLS (security.tls_cert, security.tls_key) or a token"
            " (security.token_file or SESSIOND_TOKEN)"
        )
    for key, value, least in (
        ("server.max_workers", config.max_workers, 1),
        ("storage.pool_size", config.pool_size, 1),
        ("storage.check_seconds", config.check_seconds, 0.01),
        ("server.grace_seconds", config.grace_seconds, 0),
        ("limits.max_field_bytes", config.limits.max_field_bytes, 1),
        ("limits.max_request_bytes", config.limits.max_request_bytes, 1024),
        ("limits.max_message_bytes", config.limits.max_message_bytes, 1),
        ("limits.max_batch", config.limits.max_batch, 1),
        ("limits.max_transcript_messages", config.limits.max_transcript_messages, 1),
        ("maintenance.prune_seconds", config.maintenance.prune_seconds, 0),
        ("maintenance.lease_sweep_seconds", config.maintenance.lease_sweep_seconds, 0),
        ("maintenance.checkpoint_seconds", config.maintenance.checkpoint_seconds, 0),
        ("maintenance.search_index_seconds", config.maintenance.search_index_seconds, 0),
        ("maintenance.retention_seconds", config.maintenance.retention_seconds, 0),
        ("maintenance.event_retention_days", config.maintenance.event_retention_days, 1),
    ):
        if value < least:
            raise ConfigError(f"{key}: expected at least {least}, got {value}")
    return config


def path_from_environment(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The configuration file named by ``SESSIOND_CONFIG``, if any."""
    value = environ.get("SESSIOND_CONFIG", "")
    return Path(value) if value else None


def load(path: Path | None, environ: Mapping[str, str] = os.environ) -> Config:
    """Read the TOML file (if any), apply environment overrides and check everything."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    _apply_env(data, environ)
    return parse(data, environ)
