"""Domain values the rules and the store work on, free of protobuf and SQL.

Optional strings are ``None`` when a gateway did not send them; the rules treat
``None`` and ``""`` alike (as the reference does), but contexts echo them back
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

ChatType = Literal["dm", "group", "channel", "thread"]
ResetMode = Literal["daily", "idle", "both", "none"]


@dataclass(frozen=True)
class Source:
    """Where a message came from (the reference's ``SessionSource``)."""

    platform: str
    chat_id: str
    chat_name: str | None = None
    chat_type: ChatType = "dm"
    user_id: str | None = None
    user_name: str | None = None
    thread_id: str | None = None
    chat_topic: str | None = None
    user_id_alt: str | None = None
    chat_id_alt: str | None = None
    is_bot: bool = False
    guild_id: str | None = None
    parent_chat_id: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class HomeChannel:
    """A platform's default delivery destination."""

    platform: str
    chat_id: str
    name: str = "Home"
    thread_id: str | None = None
    user_id: str | None = None
    scope_id: str | None = None


@dataclass(frozen=True)
class ResetPolicy:
    """When a session goes stale. ``time_zone`` is an IANA name, resolved by the config."""

    mode: ResetMode = "both"
    at_hour: int = 4
    idle_minutes: int = 1440
    notify: bool = True
    notify_exclude_platforms: tuple[str, ...] = ("api_server", "webhook")
    time_zone: str = ""


@dataclass(frozen=True)
class ResetPolicies:
    """The default policy and its overrides; a platform override beats a chat-type one."""

    default: ResetPolicy = field(default_factory=ResetPolicy)
    platforms: dict[str, ResetPolicy] = field(default_factory=dict)
    chat_types: dict[str, ResetPolicy] = field(default_factory=dict)

    def for_session(self, platform: str | None, chat_type: str | None) -> ResetPolicy:
        if platform and platform in self.platforms:
            return self.platforms[platform]
        if chat_type and chat_type in self.chat_types:
            return self.chat_types[chat_type]
        return self.default


@dataclass(frozen=True)
class KeyOptions:
    """How group and thread sessions are split between participants."""

    group_sessions_per_user: bool = True
    thread_sessions_per_user: bool = False


@dataclass(frozen=True)
class EntryRef:
    """The parts of a session entry that a context shows."""

    session_key: str
    session_id: str
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class Context:
    """What the agent is told about where it is (the reference's ``SessionContext``)."""

    source: Source
    connected_platforms: tuple[str, ...]
    home_channels: tuple[HomeChannel, ...]
    shared_multi_user_session: bool
    entry: EntryRef | None = None
