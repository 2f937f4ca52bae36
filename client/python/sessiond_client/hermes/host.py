"""What the drop-in reads of the Hermes host it runs in: its types, plugins, home and tools.

In a Hermes deployment these are the host's own modules (``gateway.config``,
``gateway.platform_registry``, ``hermes_constants``, ``hermes_cli``), so entries carry the
gateway's ``Platform`` members and the prompt shows the gateway's home. Outside one (a fresh
process, another gateway), small stand-ins with the same names and fields take their place.
Nothing here decides a key, a reset or a prompt: it only gathers what the daemon is told.
"""

from __future__ import annotations

import enum
import importlib
import os
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUILTIN_PLATFORMS = (
    "local telegram discord whatsapp whatsapp_cloud slack signal mattermost matrix homeassistant email sms"
    " dingtalk api_server webhook msgraph_webhook feishu wecom wecom_callback weixin bluebubbles qqbot yuanbao relay"
).split()


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


class _Platform(enum.Enum):
    """Stand-in for ``gateway.config.Platform`` (values as the host's; lenient lookup as its ``_missing_``)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, str) and value.strip().lower() in cls._value2member_map_:
            return cls._value2member_map_[value.strip().lower()]
        return None


StandInPlatform = _Platform("Platform", [(name.upper(), name) for name in BUILTIN_PLATFORMS])  # type: ignore[call-arg]


@dataclass
class StandInHomeChannel:
    """Stand-in for ``gateway.config.HomeChannel``."""

    platform: Any
    chat_id: str
    name: str = "Home"
    thread_id: str | None = None
    user_id: str | None = None
    scope_id: str | None = None


@dataclass
class StandInSessionResetPolicy:
    """Stand-in for ``gateway.config.SessionResetPolicy`` (the reference's defaults)."""

    mode: str = "both"
    at_hour: int = 4
    idle_minutes: int = 1440
    notify: bool = True
    notify_exclude_platforms: tuple[str, ...] = ("api_server", "webhook")


@dataclass
class StandInGatewayConfig:
    """Stand-in for ``gateway.config.GatewayConfig``: the fields and methods the store reads."""

    default_reset_policy: StandInSessionResetPolicy = field(default_factory=StandInSessionResetPolicy)
    reset_by_type: dict[str, StandInSessionResetPolicy] = field(default_factory=dict)
    reset_by_platform: dict[Any, StandInSessionResetPolicy] = field(default_factory=dict)
    connected_platforms: list[Any] = field(default_factory=list)
    home_channels: dict[Any, StandInHomeChannel] = field(default_factory=dict)
    group_sessions_per_user: bool = True
    thread_sessions_per_user: bool = False
    session_store_max_age_days: int = 90

    def get_connected_platforms(self) -> list[Any]:
        return sorted(self.connected_platforms, key=lambda p: str(p.value))

    def get_home_channel(self, platform: Any) -> StandInHomeChannel | None:
        return self.home_channels.get(platform)

    def get_reset_policy(self, platform: Any = None, session_type: str | None = None) -> StandInSessionResetPolicy:
        if platform and platform in self.reset_by_platform:
            return self.reset_by_platform[platform]
        if session_type and session_type in self.reset_by_type:
            return self.reset_by_type[session_type]
        return self.default_reset_policy


_config = _module("gateway.config")
Platform: Any = getattr(_config, "Platform", StandInPlatform)
HomeChannel: Any = getattr(_config, "HomeChannel", StandInHomeChannel)
SessionResetPolicy: Any = getattr(_config, "SessionResetPolicy", StandInSessionResetPolicy)
GatewayConfig: Any = getattr(_config, "GatewayConfig", StandInGatewayConfig)


class PluginPlatformName(str):
    """A platform the gateway's enum does not know: a string that also answers ``.value``."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)


def platform(name: str) -> Any:
    """The gateway's ``Platform`` member for a name the daemon sent, or a plain name for a plugin."""
    try:
        return Platform(name)
    except ValueError:
        return PluginPlatformName(name)


def plugins() -> Iterator[tuple[str, bool]]:
    """The host's registered plugin platforms and whether each is PII safe."""
    registry = getattr(_module("gateway.platform_registry"), "platform_registry", None)
    for entry in registry.all_entries() if registry is not None else ():
        yield str(entry.name), bool(getattr(entry, "pii_safe", False))


def hermes_home() -> Path:
    constants = _module("hermes_constants")
    if constants is not None and hasattr(constants, "get_hermes_home"):
        return Path(constants.get_hermes_home())
    value = os.environ.get("HERMES_HOME", "").strip()
    return Path(value) if value else Path.home() / ".hermes"


def namespace() -> str:
    """The agent namespace of the host's profile: ``SESSIOND_NAMESPACE``, else the name of the
    profile whose home this is (Hermes profiles live in ``<root>/profiles/<name>``), else ``main``
    (the reference's keys). Profiles sharing one daemon so see only their own sessions."""
    named = os.environ.get("SESSIOND_NAMESPACE", "").strip()
    if named:
        return named
    home = hermes_home()
    return home.name if home.parent.name == "profiles" else "main"


def display_home() -> str:
    """The home as the host's prompt shows it (``display_hermes_home``)."""
    constants = _module("hermes_constants")
    if constants is not None and hasattr(constants, "display_hermes_home"):
        return str(constants.display_hermes_home())
    home = hermes_home()
    try:
        return "~/" + str(home.relative_to(Path.home()))
    except ValueError:
        return str(home)


def whatsapp_mapping_dir() -> str:
    """Where the host's WhatsApp bridge writes its LID mapping files."""
    identity = _module("gateway.whatsapp_identity")
    session_dir = getattr(identity, "_session_dir", None)
    if callable(session_dir):  # the host's own rule (it may say "no mapping directory")
        found = session_dir()
        return str(found) if found else ""
    return str(hermes_home() / "whatsapp" / "session")


def discord_tools() -> bool:
    """Whether the agent has Discord tools: the host's toolsets enable them and a bot token is set."""
    if not (os.environ.get("DISCORD_BOT_TOKEN") or "").strip():
        return False
    try:
        from hermes_cli.config import load_config  # type: ignore[import-not-found]
        from hermes_cli.tools_config import _get_platform_tools  # type: ignore[import-not-found]

        enabled = _get_platform_tools(load_config(), "discord", include_default_mcp_servers=False)
        return "discord" in enabled or "discord_admin" in enabled
    except Exception:  # as the host: a bad config never promises tools the agent lacks
        return False


def local_zone() -> str:
    """The IANA name of this process's local zone (the reference's daily resets used local time),
    or "" (the daemon's host zone) when it has none: a POSIX ``TZ`` rule, a copied zone file."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            _, marker, name = os.readlink("/etc/localtime").partition("zoneinfo/")
        except OSError:
            return ""
        if not marker:
            return ""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return ""
    return name
