"""The reference module's dataclasses, with its dict formats and its tolerance of old stored data.

``SessionSource`` and ``SessionEntry`` are the store client's, plus ``from_dict``; their
``platform`` is the gateway's ``Platform`` member (a plugin the enum does not know stays a
name). ``SessionContext`` is the reference's, for ``build_session_context_prompt``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sessiond_client import types
from sessiond_client.hermes import host

log = logging.getLogger(__name__)


@dataclass
class SessionSource(types.SessionSource):
    """Where a message came from (the reference's ``SessionSource``)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionSource:
        """As the reference: an unknown platform raises ``ValueError``; a missing chat type is "dm"."""
        return cls(
            platform=host.Platform(data["platform"]),
            chat_id=str(data["chat_id"]),
            chat_name=data.get("chat_name"),
            chat_type=data.get("chat_type", "dm"),
            user_id=data.get("user_id"),
            user_name=data.get("user_name"),
            thread_id=data.get("thread_id"),
            chat_topic=data.get("chat_topic"),
            user_id_alt=data.get("user_id_alt"),
            chat_id_alt=data.get("chat_id_alt"),
            guild_id=data.get("guild_id"),
            parent_chat_id=data.get("parent_chat_id"),
            message_id=data.get("message_id"),
        )


# Fields a gateway sets on the entries it holds, which the store writes back (``SessionStore._save``).
WRITTEN_BACK = frozenset(
    {"session_id", "suspended", "expiry_finalized", "is_fresh_reset", "was_auto_reset", "last_prompt_tokens"}
)


@dataclass
class SessionEntry(types.SessionEntry):
    """The current session of a key (the reference's ``SessionEntry``, plus ``version``).

    A store's entries are live, as the reference's were: the store hands out one object per key
    and updates it in place, and what the gateway assigns to its ``WRITTEN_BACK`` fields reaches
    the daemon at the store's next call (or ``_save()``), as it reached ``sessions.json`` there.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        changed = self.__dict__.get("_changed")
        if changed is not None and name in WRITTEN_BACK:
            changed(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionEntry:
        """As the reference: an unknown platform becomes None, a malformed resume time None, and the
        old ``memory_flushed`` name still means ``expiry_finalized``."""
        origin = SessionSource.from_dict(data["origin"]) if data.get("origin") else None
        platform = None
        if data.get("platform"):
            try:
                platform = host.Platform(data["platform"])
            except ValueError:
                log.debug("unknown platform value %r", data["platform"])
        marked = None
        if data.get("last_resume_marked_at"):
            try:
                marked = datetime.fromisoformat(data["last_resume_marked_at"])
            except (TypeError, ValueError):
                marked = None
        return cls(
            session_key=data["session_key"],
            session_id=data["session_id"],
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            origin=origin,
            display_name=data.get("display_name"),
            platform=platform,
            chat_type=data.get("chat_type", "dm"),
            input_tokens=data.get("input_tokens", 0),
            output_tokens=data.get("output_tokens", 0),
            cache_read_tokens=data.get("cache_read_tokens", 0),
            cache_write_tokens=data.get("cache_write_tokens", 0),
            total_tokens=data.get("total_tokens", 0),
            last_prompt_tokens=data.get("last_prompt_tokens", 0),
            estimated_cost_usd=data.get("estimated_cost_usd", 0.0),
            cost_status=data.get("cost_status", "unknown"),
            expiry_finalized=data.get("expiry_finalized", data.get("memory_flushed", False)),
            suspended=data.get("suspended", False),
            resume_pending=data.get("resume_pending", False),
            resume_reason=data.get("resume_reason"),
            last_resume_marked_at=marked,
            is_fresh_reset=data.get("is_fresh_reset", False),
        )


@dataclass
class SessionContext:
    """What the agent is told about where it is (the reference's ``SessionContext``)."""

    source: Any
    connected_platforms: list[Any]
    home_channels: dict[Any, Any]
    shared_multi_user_session: bool = False
    session_key: str = ""
    session_id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.to_dict(),
            "connected_platforms": [types.platform_value(p) for p in self.connected_platforms],
            "home_channels": {types.platform_value(p): home_dict(h) for p, h in self.home_channels.items()},
            "shared_multi_user_session": self.shared_multi_user_session,
            "session_key": self.session_key,
            "session_id": self.session_id,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def home_dict(home: Any) -> dict[str, Any]:
    """A home channel's dict: the host's own ``to_dict`` when it has one."""
    if hasattr(home, "to_dict"):
        return dict(home.to_dict())
    result = {"platform": types.platform_value(home.platform), "chat_id": home.chat_id, "name": home.name}
    result.update({key: getattr(home, key) for key in ("thread_id", "user_id", "scope_id") if getattr(home, key)})
    return result


def with_platforms(entry: types.SessionEntry) -> SessionEntry:
    """The store client's entry as the drop-in's, platforms as the gateway's ``Platform`` members."""
    values = {f.name: getattr(entry, f.name) for f in fields(entry)}
    values["platform"] = host.platform(entry.platform) if entry.platform is not None else None
    if entry.origin is not None:
        origin = {f.name: getattr(entry.origin, f.name) for f in fields(entry.origin)}
        values["origin"] = SessionSource(**{**origin, "platform": host.platform(entry.origin.platform)})
    return SessionEntry(**values)


__all__ = ["SessionContext", "SessionEntry", "SessionSource"]
