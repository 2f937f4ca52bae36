"""Domain values the rules and the store work on, free of protobuf and SQL.

Optional strings are ``None`` when a gateway did not send them; the rules treat
``None`` and ``""`` alike (as the reference does), but contexts echo them back
exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

# "dm", "group", "channel", "thread", or any other string a gateway sends ("forum"), as the
# reference accepted: keyed like a group, described by the chat's name.
ChatType = str
ResetMode = Literal["daily", "idle", "both", "none"]
EventKind = Literal[
    "created",
    "auto_reset",
    "reset",
    "switched",
    "suspended",
    "resume_pending",
    "expired",
    "pruned",
    "lease_expired",
    "titled",
    "rewound",
    "branched",
    "compacted",
    "metadata_changed",
    "session_deleted",
    "session_archived",
    "identity_linked",
    "identity_unlinked",
    "handed_off",
    "turn_started",
    "turn_ended",
    "turn_interrupted",
    "turn_expired",
]
Visibility = Literal["", "rewound", "archived"]


# A session's metadata value (``sessiond.v1.MetadataValue``): a list of texts is a tuple.
MetadataValue = str | int | float | bool | tuple[str, ...]
Metadata = dict[str, MetadataValue]

Cursor = tuple[int, str]  # (updated_at in microseconds, session_key): the keyset of entry listings


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


@dataclass(frozen=True)
class Usage:
    """Token and cost counters of a session (or increments of them)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    total_tokens: int = 0
    estimated_cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{name: value + vars(other)[name] for name, value in vars(self).items()})


@dataclass(slots=True)
class Entry:
    """The current session of a session key (the reference's ``SessionEntry``) plus a version.

    Slotted and not frozen, as ``Message``: one is built per row read, and a frozen
    dataclass's ``__init__`` costs several times more. Code changes them with ``replace``.
    """

    session_key: str
    session_id: str
    created_at: datetime
    updated_at: datetime
    origin: Source | None = None
    display_name: str | None = None
    platform: str | None = None
    chat_type: str = "dm"
    usage: Usage = field(default_factory=Usage)
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
    # What governs the key, kept from the gateway that last used it (None: the daemon's config):
    # its reset policy and its maximum age, for the daemon's scheduled expiry and prune.
    reset_policy: ResetPolicy | None = None
    max_age_days: int | None = None
    metadata: Metadata = field(default_factory=dict)  # of the current session (stored with it, not here)

    @classmethod
    def started(cls, session_key: str, session_id: str, origin: Source, now: datetime, **fields: Any) -> Entry:
        """A new session of a key, described by the source of the message that started it."""
        return cls(
            session_key=session_key,
            session_id=session_id,
            created_at=now,
            updated_at=now,
            origin=origin,
            display_name=origin.chat_name,
            platform=origin.platform,
            chat_type=origin.chat_type,
            **fields,
        )


@dataclass(frozen=True)
class Event:
    """A change of a session key, stored with the change itself (``sessiond.v1.SessionEvent``).

    ``version`` is the entry's version after the change; ``sequence`` and ``at`` are the
    log's, set when it is stored.
    """

    kind: EventKind
    session_key: str
    session_id: str
    version: int
    previous_session_id: str | None = None
    reason: str | None = None
    lease_owner: str | None = None  # the lease's holder, or the turn's owner
    sequence: int = 0
    at: datetime | None = None
    identity: str | None = None  # of a link change
    linked_user: str | None = None  # of a link change: "<platform>:<user id>"
    other_session_key: str | None = None  # of a handoff: the key at the other end
    fencing_token: int | None = None  # of a turn


@dataclass(frozen=True)
class IdentityLink:
    """A platform user id that is one person (``identity``) with the other ids linked to it."""

    platform: str
    user_id: str
    identity: str
    linked_at: datetime


@dataclass(frozen=True)
class Handoff:
    """A session continued on another key (HandoffSession)."""

    from_session_key: str
    to_session_key: str
    replaced_session_id: str | None
    at: datetime


@dataclass(frozen=True)
class Turn:
    """The newest turn begun on a key: its ``token`` grows with every turn; ``running`` until ended
    or replaced (a running turn past ``expires_at`` was abandoned by its owner)."""

    session_key: str
    owner: str
    token: int
    session_id: str | None
    started_at: datetime
    expires_at: datetime
    running: bool = True

    def live(self, now: datetime) -> bool:
        return self.running and self.expires_at > now

    def abandoned(self, now: datetime) -> bool:
        return self.running and self.expires_at <= now


@dataclass(frozen=True)
class Fence:
    """What a write carries to show it comes from the newest turn of ``session_key``."""

    session_key: str
    token: int


@dataclass(frozen=True)
class LineageLink:
    """A session as its lineage sees it: where it came from and why (``None`` for a root)."""

    session_id: str
    parent_session_id: str | None
    reason: str | None
    started_at: datetime
    title: str | None = None


@dataclass(frozen=True)
class Term:
    """Words of a search that must occur together, in order; ``prefix``: the last may be a word's start."""

    words: tuple[str, ...]
    prefix: bool = False


_WORD = re.compile(r"[^\W_]+")  # letters and digits


def words(text: str) -> list[str]:
    """The lower-case words of ``text``: runs of letters and digits, as the full-text indexes split text."""
    return _WORD.findall(text.lower())


def fold(text: str) -> str:
    """``text`` lower-cased without anything but letters and digits: the form title search compares."""
    return "".join(words(text))


@dataclass(frozen=True)
class SessionSummary:
    """A stored session as search finds it."""

    session_id: str
    platform: str
    started_at: datetime
    message_count: int
    title: str | None = None
    session_key: str | None = None  # the key it was started for, when a key started it
    ended_at: datetime | None = None
    end_reason: str | None = None
    parent_session_id: str | None = None
    metadata: Metadata = field(default_factory=dict, hash=False)
    archived_at: datetime | None = None
    active_at: datetime | None = None  # its newest message, else its start (an entry's activity aside)
    chat_type: str | None = None  # of the chat that started it, where sessiond recorded one


@dataclass(frozen=True)
class MetadataFilter:
    """A condition on a session's metadata: ``key`` present and, unless ``equals`` is ``None``, equal
    to it (numbers by value) or, for a list, holding it."""

    key: str
    equals: MetadataValue | None = None


@dataclass(frozen=True)
class ActivityCutoffs:
    """Per-policy instants: a session last active before its cutoff is old enough (``None``: never).
    A platform's cutoff wins over its chat type's, which wins over the default."""

    default: datetime | None
    platforms: Mapping[str, datetime | None] = field(default_factory=dict, hash=False)
    chat_types: Mapping[str, datetime | None] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class SessionSelector:
    """Which stored sessions a bulk call acts on: every condition set (not ``None`` or empty) holds."""

    session_ids: tuple[str, ...] = ()
    inactive_days: int | None = None  # last active more than this many days before the call
    inactive_before: ActivityCutoffs | None = None  # or, per policy, before these (retention)
    platform: str | None = None
    chat_type: str | None = None
    titled: bool | None = None
    title_prefix: str | None = None
    end_reasons: tuple[str, ...] = ()
    ended: bool | None = None
    min_messages: int | None = None
    max_messages: int | None = None
    metadata: tuple[MetadataFilter, ...] = ()
    archived: bool | None = None
    namespace: str | None = None  # key prefix (``keys.namespace_prefix``) of the key it was started for
    keep_titled: bool = False  # retention's: titled sessions are never selected


@dataclass(frozen=True)
class Selected:
    """A session a bulk call chose: its id and stored messages."""

    session_id: str
    messages: int


@dataclass(frozen=True)
class MessageFilter:
    """Which messages a full-text search looks at (``None``, or no roles: any)."""

    platform: str | None = None
    session_key: str | None = None
    session_id: str | None = None
    roles: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    metadata: tuple[MetadataFilter, ...] = ()  # of the messages' sessions
    include_archived: bool = False  # messages of archived sessions too
    namespace: str | None = None  # key prefix (``keys.namespace_prefix``) of the sessions' keys; None: any


@dataclass(frozen=True)
class SearchHit:
    """A message that matched a search: where it is, a snippet of it, and its neighbours."""

    session: SessionSummary
    position: int
    message_id: str
    role: str
    timestamp: datetime
    snippet: str
    score: float  # higher is better; the scale is the backend's
    window: tuple[Message, ...] = ()
    visibility: Visibility = ""  # "" or "archived": rewound messages are never hits
    hidden_by: int = 0  # the compaction that archived it


@dataclass(frozen=True)
class Lease:
    """A claim on a session key by a background job, until ``expires_at``."""

    session_key: str
    owner: str
    expires_at: datetime


@dataclass(slots=True)
class Message:
    """One transcript message. Structured values are JSON text, kept exactly as sent."""

    role: str
    content: str | None = None
    content_is_json: bool = False
    tool_calls: str | None = None
    tool_call_id: str | None = None
    tool_name: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None
    reasoning_details: str | None = None
    codex_reasoning_items: str | None = None
    codex_message_items: str | None = None
    timestamp: datetime | None = None
    token_count: int | None = None
    finish_reason: str | None = None
    message_id: str = ""
    position: int = 0
    visibility: Visibility = ""  # set by the storage on reading: "" visible, "rewound", "archived"
    hidden_by: int = 0  # the rewind or compaction that hid it


# Time as the contract and the storage keep it: integer microseconds since the epoch, UTC.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (value - EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return EPOCH + _MICROSECOND * value


def cursor_of(entry: Entry) -> Cursor:
    """Where a listing that ended with ``entry`` goes on."""
    return to_us(entry.updated_at), entry.session_key


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may carry."""

    max_field_bytes: int = 4096
    max_request_bytes: int = 16 * 1024 * 1024
    max_message_bytes: int = 4 * 1024 * 1024
    max_batch: int = 1000
    max_transcript_messages: int = 100_000
