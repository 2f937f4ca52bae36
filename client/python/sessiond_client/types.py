"""The values the store client returns, shaped like the reference gateway's own classes.

A gateway written against the reference's in-process ``SessionStore`` reads ``entry.session_id``,
``entry.platform.value``, ``entry.origin.chat_id`` and calls ``entry.to_dict()``; these
dataclasses keep those names and that dict format so the gateway runs unchanged on the sidecar.
They add only ``SessionEntry.version`` (for ``expected_version``) and ``.metadata``, and hold no
protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

# A session's metadata value: text, a whole number, a number, a flag, or a list of texts (tags).
MetadataValue: TypeAlias = str | int | float | bool | list[str]


class PlatformName(str):
    """A platform name that also answers ``.value``, as the reference's ``Platform`` enum does.

    The sidecar accepts plugin platforms the gateway's enum may not know, so a plain string is
    the honest type; ``.value`` keeps ``entry.platform.value`` working in existing gateway code.
    """

    __slots__ = ()

    @property
    def value(self) -> PlatformName:
        return self


def platform_value(platform: Any) -> str:
    """A platform's name: the ``.value`` of an Enum member (the gateway's ``Platform``) or the string."""
    return str(getattr(platform, "value", platform))


@dataclass
class SessionSource:
    """Where a message came from (the reference's ``SessionSource``, platform as a string)."""

    platform: Any  # PlatformName here; the gateway's Platform member in sessiond_client.hermes
    chat_id: str
    chat_name: str | None = None
    chat_type: str = "dm"
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

    @property
    def description(self) -> str:
        """Human-readable description, the reference's rule (the daemon's BuildSessionKey agrees)."""
        if platform_value(self.platform) == "local":
            return "CLI terminal"
        if self.chat_type == "dm":
            parts = [f"DM with {self.user_name or self.user_id or 'user'}"]
        elif self.chat_type in ("group", "channel"):
            parts = [f"{self.chat_type}: {self.chat_name or self.chat_id}"]
        else:
            parts = [self.chat_name or self.chat_id]
        if self.thread_id:
            parts.append(f"thread: {self.thread_id}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The reference's format: core fields always, the newer optional ones only when set."""
        result: dict[str, Any] = {
            "platform": platform_value(self.platform),
            "chat_id": self.chat_id,
            "chat_name": self.chat_name,
            "chat_type": self.chat_type,
            "user_id": self.user_id,
            "user_name": self.user_name,
            "thread_id": self.thread_id,
            "chat_topic": self.chat_topic,
        }
        for name in ("user_id_alt", "chat_id_alt", "guild_id", "parent_chat_id", "message_id"):
            if getattr(self, name):
                result[name] = getattr(self, name)
        return result


@dataclass
class SessionEntry:
    """The current session of a session key (the reference's ``SessionEntry`` plus ``version``)."""

    session_key: str
    session_id: str
    created_at: datetime
    updated_at: datetime
    origin: SessionSource | None = None
    display_name: str | None = None
    platform: Any = None  # PlatformName here; the gateway's Platform member in sessiond_client.hermes
    chat_type: str = "dm"
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    total_tokens: int = 0
    estimated_cost_usd: float = 0.0
    cost_status: str = "unknown"
    last_prompt_tokens: int = 0
    was_auto_reset: bool = False
    auto_reset_reason: str | None = None
    reset_had_activity: bool = False
    is_fresh_reset: bool = False
    expiry_finalized: bool = False
    suspended: bool = False
    resume_pending: bool = False
    resume_reason: str | None = None
    last_resume_marked_at: datetime | None = None
    version: int = 0
    # The current session's metadata (update_session_metadata): not part of the reference's format.
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The reference's ``sessions.json`` format, so tools reading that format keep working."""
        result: dict[str, Any] = {
            "session_key": self.session_key,
            "session_id": self.session_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "display_name": self.display_name,
            "platform": platform_value(self.platform) if self.platform else None,
            "chat_type": self.chat_type,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "total_tokens": self.total_tokens,
            "last_prompt_tokens": self.last_prompt_tokens,
            "estimated_cost_usd": self.estimated_cost_usd,
            "cost_status": self.cost_status,
            "expiry_finalized": self.expiry_finalized,
            "suspended": self.suspended,
            "resume_pending": self.resume_pending,
            "resume_reason": self.resume_reason,
            "last_resume_marked_at": self.last_resume_marked_at.isoformat() if self.last_resume_marked_at else None,
            "is_fresh_reset": self.is_fresh_reset,
        }
        if self.origin:
            result["origin"] = self.origin.to_dict()
        return result


@dataclass
class Lease:
    """A lease on a session key: while live, the daemon never resets, expires or prunes it."""

    session_key: str
    owner: str
    expires_at: datetime


@dataclass
class LineageLink:
    """A session in a lineage: where it came from (``None`` for a root) and why."""

    session_id: str
    parent_session_id: str | None
    reason: str | None  # "reset", "auto_reset", "force_new", "switch"
    started_at: datetime
    title: str | None = None


@dataclass
class Handoff:
    """One handoff of a session: from which key to which, and the destination's session it ended."""

    from_session_key: str
    to_session_key: str
    replaced_session_id: str | None
    time: datetime


@dataclass
class SessionLineage:
    """A session, its ancestors (parent first, back to the root), its children (newest first) and
    the chats it was handed off between (oldest first)."""

    session: LineageLink
    ancestors: list[LineageLink]
    children: list[LineageLink]
    handoffs: list[Handoff] = field(default_factory=list)


@dataclass
class IdentityLink:
    """A platform user id linked to an identity (``SessionStoreClient.link_identity``)."""

    platform: str
    user_id: str
    identity: str
    linked_at: datetime


@dataclass
class Turn:
    """A turn on a session key (``begin_turn``); pass it as ``fence=`` to the writes of the turn."""

    session_key: str
    owner: str
    fencing_token: int
    session_id: str | None
    started_at: datetime
    expires_at: datetime


@dataclass
class TurnBegun:
    """What ``begin_turn`` did: ``turn`` is the caller's when ``started``, else the running one (or
    None); ``queue_position`` (on_conflict "queue"): 1 is next; ``interrupted``: the turn it ended."""

    started: bool
    turn: Turn | None
    queue_position: int = 0
    interrupted: Turn | None = None


@dataclass
class SessionSummary:
    """A stored session as search finds it (``SessionStoreClient.search_sessions`` and search hits)."""

    session_id: str
    platform: str
    started_at: datetime
    message_count: int
    title: str | None = None
    session_key: str | None = None  # the key it was started for, when a key started it
    ended_at: datetime | None = None
    end_reason: str | None = None
    parent_session_id: str | None = None
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    archived_at: datetime | None = None  # set while archived (archive_sessions)
    active_at: datetime | None = None  # its last activity: newest message, else its start


@dataclass
class BulkResult:
    """What one delete_sessions or archive_sessions call did (or, dry, would do)."""

    session_ids: list[str]
    messages: int  # theirs
    remaining: int  # sessions the selector still matches after the call (dry: all it matches)
    remaining_messages: int
    session_keys: list[str]  # keys whose entry went with their current session


@dataclass
class SearchHit:
    """A message that matched a full-text search.

    ``snippet`` has the matched words between ">>>" and "<<<"; ``window`` is the message and its
    neighbours, in transcript order, as ``load_transcript`` returns messages. ``score``: higher
    is better (only the order means something).
    """

    session: SessionSummary
    position: int
    message_id: str
    role: str
    time: datetime
    snippet: str
    score: float
    window: list[dict[str, Any]]


@dataclass
class SearchResults:
    """Hits, best first; ``index_building``: older messages may be missing while the index is built."""

    hits: list[SearchHit]
    index_building: bool = False


@dataclass
class SessionEvent:
    """A change of a session key, from ``SessionStoreClient.watch_events``.

    ``kind`` is the contract's ``EventKind`` in lower case without its prefix: "created",
    "auto_reset", "reset", "switched", "suspended", "resume_pending", "expired", "pruned",
    "lease_expired", ..., "identity_linked", "handed_off", "turn_started", "turn_expired".
    Strings unset on the wire are None.
    """

    sequence: int
    kind: str
    session_key: str
    session_id: str
    entry_version: int
    time: datetime
    previous_session_id: str | None = None
    reason: str | None = None
    lease_owner: str | None = None  # the lease's holder, or the turn's owner
    identity: str | None = None  # identity_linked, identity_unlinked
    linked_user: str | None = None  # "<platform>:<user id>" of a link change
    other_session_key: str | None = None  # handed_off: the key at the other end
    fencing_token: int | None = None  # turn_*
