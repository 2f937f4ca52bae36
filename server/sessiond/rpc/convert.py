"""Protobuf messages to domain values and back; the only place that knows both.

Checks that belong to the wire (enum values, sizes, timestamps, platform names) happen here,
so a bad request fails with the name of its field before any rule or storage runs.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfoNotFoundError

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from sessiond.errors import InvalidArgument, shown
from sessiond.model import (
    ChatType,
    Context,
    Cursor,
    Entry,
    EntryRef,
    Event,
    EventKind,
    Fence,
    Handoff,
    HomeChannel,
    IdentityLink,
    KeyOptions,
    Lease,
    LineageLink,
    Message,
    MessageFilter,
    Metadata,
    MetadataFilter,
    MetadataValue,
    ResetPolicy,
    SearchHit,
    SessionSelector,
    SessionSummary,
    Source,
    Turn,
    Usage,
    fold,
    to_us,
)
from sessiond.rules import keys, turns
from sessiond.rules.platforms import BUILTIN, Platforms
from sessiond.rules.prompt import PromptOptions
from sessiond.rules.settings import Sent, zone_named
from sessiond_client.v1 import events_pb2, session_pb2, session_store_pb2, source_pb2, transcript_pb2

MAX_LEASE_SECONDS = 7 * 24 * 3600

CHAT_TYPES: dict[int, ChatType] = {
    source_pb2.CHAT_TYPE_UNSPECIFIED: "dm",
    source_pb2.CHAT_TYPE_DM: "dm",
    source_pb2.CHAT_TYPE_GROUP: "group",
    source_pb2.CHAT_TYPE_CHANNEL: "channel",
    source_pb2.CHAT_TYPE_THREAD: "thread",
}
CHAT_TYPE_VALUES = {name: number for number, name in CHAT_TYPES.items() if number}

# The contract's optional fields (proto3 ``optional``: they have presence), in declaration order;
# chat_type_name is read with chat_type.
SOURCE_OPTIONAL = tuple(
    f.name for f in source_pb2.SessionSource.DESCRIPTOR.fields if f.has_presence and f.name != "chat_type_name"
)
HOME_OPTIONAL = ("thread_id", "user_id", "scope_id")


def check_sizes(message: Any, path: str, names: Iterable[str], max_bytes: int) -> None:
    """Reject string fields longer than ``max_bytes`` (UTF-8), naming the first one."""
    quarter = max_bytes // 4  # no string of up to that many characters can be longer in UTF-8
    for name in names:
        value = getattr(message, name)
        if len(value) > quarter:  # the field's path is built only for a string that may be too long
            check_size(value, f"{path}.{name}" if path else name, max_bytes)


def _optional(message: Any, name: str) -> str | None:
    return getattr(message, name) if message.HasField(name) else None


def chat_type(message: Any, path: str) -> ChatType:
    """The enum's chat type, or the free one in ``chat_type_name`` (any string, as the reference)."""
    if message.HasField("chat_type_name"):
        if message.chat_type != source_pb2.CHAT_TYPE_UNSPECIFIED:
            raise InvalidArgument(f"{path}.chat_type_name", "set either chat_type or chat_type_name, not both")
        return str(message.chat_type_name)
    try:
        return CHAT_TYPES[message.chat_type]
    except KeyError:
        raise InvalidArgument(f"{path}.chat_type", f"unknown chat type {message.chat_type}") from None


def _set_chat_type(message: Any, value: ChatType) -> None:
    if value in CHAT_TYPE_VALUES:
        message.chat_type = CHAT_TYPE_VALUES[value]
    else:
        message.chat_type_name = value


def source(message: source_pb2.SessionSource, platforms: Platforms, max_bytes: int, path: str = "source") -> Source:
    check_sizes(message, path, ("platform", "chat_id", "chat_type_name", *SOURCE_OPTIONAL), max_bytes)
    return Source(
        platform=platforms.resolve(message.platform, f"{path}.platform"),
        chat_id=message.chat_id,
        chat_type=chat_type(message, path),
        is_bot=message.is_bot,
        **{name: _optional(message, name) for name in SOURCE_OPTIONAL},
    )


def source_to_proto(value: Source) -> source_pb2.SessionSource:
    message = source_pb2.SessionSource(platform=value.platform, chat_id=value.chat_id, is_bot=value.is_bot)
    _set_chat_type(message, value.chat_type)
    for name in SOURCE_OPTIONAL:
        if getattr(value, name) is not None:
            setattr(message, name, getattr(value, name))
    return message


def home_channel(message: source_pb2.HomeChannel, platforms: Platforms, max_bytes: int, path: str) -> HomeChannel:
    check_sizes(message, path, ("platform", "chat_id", "name", *HOME_OPTIONAL), max_bytes)
    return HomeChannel(
        platform=platforms.resolve(message.platform, f"{path}.platform"),
        chat_id=message.chat_id,
        name=message.name if message.HasField("name") else "Home",
        **{name: getattr(message, name) or None for name in HOME_OPTIONAL},
    )


def home_channel_to_proto(value: HomeChannel) -> source_pb2.HomeChannel:
    message = source_pb2.HomeChannel(platform=value.platform, chat_id=value.chat_id, name=value.name)
    for name in HOME_OPTIONAL:
        if getattr(value, name):
            setattr(message, name, getattr(value, name))
    return message


def timestamp(message: Timestamp, path: str) -> datetime:
    try:
        return message.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(path, f"invalid timestamp ({exc})") from None


def timestamp_to_proto(value: datetime) -> Timestamp:
    """Built from integer microseconds: ``Timestamp.FromDatetime`` is slow pure Python."""
    seconds, micros = divmod(to_us(value), 1_000_000)
    return Timestamp(seconds=seconds, nanos=micros * 1000)


def _set_time(message: Any, name: str, value: datetime | None) -> None:
    if value is not None:
        getattr(message, name).CopyFrom(timestamp_to_proto(value))


def entry_ref(message: session_pb2.SessionEntry, max_bytes: int, path: str = "entry") -> EntryRef:
    check_sizes(message, path, ("session_key", "session_id"), max_bytes)
    times = {
        name: timestamp(getattr(message, name), f"{path}.{name}") if message.HasField(name) else None
        for name in ("created_at", "updated_at")
    }
    return EntryRef(message.session_key, message.session_id, **times)


def context_to_proto(value: Context) -> session_pb2.SessionContext:
    message = session_pb2.SessionContext(
        source=source_to_proto(value.source),
        connected_platforms=value.connected_platforms,
        home_channels=[home_channel_to_proto(h) for h in value.home_channels],
        shared_multi_user_session=value.shared_multi_user_session,
    )
    if value.entry:
        message.session_key, message.session_id = value.entry.session_key, value.entry.session_id
        _set_time(message, "created_at", value.entry.created_at)
        _set_time(message, "updated_at", value.entry.updated_at)
    return message


# -- entries, policies, leases -----------------------------------------------------------

RESET_MODES = {
    "daily": session_pb2.RESET_MODE_DAILY,
    "idle": session_pb2.RESET_MODE_IDLE,
    "both": session_pb2.RESET_MODE_BOTH,
    "none": session_pb2.RESET_MODE_NONE,
}


def entry_to_proto(entry: Entry) -> session_pb2.SessionEntry:
    message = session_pb2.SessionEntry(
        session_key=entry.session_key,
        session_id=entry.session_id,
        origin=source_to_proto(entry.origin) if entry.origin else None,
        cost_status=entry.cost_status,
        last_prompt_tokens=entry.last_prompt_tokens,
        was_auto_reset=entry.was_auto_reset,
        reset_had_activity=entry.reset_had_activity,
        is_fresh_reset=entry.is_fresh_reset,
        expiry_finalized=entry.expiry_finalized,
        suspended=entry.suspended,
        resume_pending=entry.resume_pending,
        version=entry.version,
        **vars(entry.usage),  # flat: vars() without asdict()'s deep copies
    )
    _set_chat_type(message, entry.chat_type)
    for name in ("display_name", "platform", "auto_reset_reason", "resume_reason"):
        if getattr(entry, name) is not None:
            setattr(message, name, getattr(entry, name))
    for name in ("created_at", "updated_at", "last_resume_marked_at"):
        _set_time(message, name, getattr(entry, name))
    metadata_to_proto(message.metadata, entry.metadata)
    return message


# -- metadata --------------------------------------------------------------------------------


def metadata_value(message: session_pb2.MetadataValue, path: str) -> MetadataValue:
    """A metadata value from the wire (the rules check its size and range); unset is INVALID_ARGUMENT."""
    kind = message.WhichOneof("kind")
    if kind is None:
        raise InvalidArgument(path, "no value set (to remove a key, list it in remove)")
    if kind == "texts":
        return tuple(message.texts.values)
    value: MetadataValue = getattr(message, kind)
    return value


def metadata_changes(values: Mapping[str, session_pb2.MetadataValue], path: str) -> dict[str, MetadataValue]:
    return {key: metadata_value(value, f"{path}[{key!r}]") for key, value in values.items()}


def metadata_to_proto(target: Any, metadata: Metadata) -> None:
    """Fill a ``map<string, MetadataValue>`` field (bool before int: a flag is an int to Python)."""
    for key, value in metadata.items():
        slot = target[key]
        if isinstance(value, bool):
            slot.flag = value
        elif isinstance(value, int):
            slot.integer = value
        elif isinstance(value, float):
            slot.number = value
        elif isinstance(value, str):
            slot.text = value
        else:
            slot.texts.values.extend(value)


def metadata_filters(
    filters: Iterable[session_pb2.MetadataFilter], path: str = "metadata"
) -> tuple[MetadataFilter, ...]:
    """Filters from the wire; keys and values are checked by the rules."""
    return tuple(
        MetadataFilter(
            wanted.key, metadata_value(wanted.equals, f"{path}[{index}].equals") if wanted.HasField("equals") else None
        )
        for index, wanted in enumerate(filters)
    )


def policy_to_proto(policy: ResetPolicy) -> session_pb2.ResetPolicy:
    return session_pb2.ResetPolicy(
        mode=RESET_MODES[policy.mode],
        at_hour=policy.at_hour,
        idle_minutes=policy.idle_minutes,
        notify=policy.notify,
        notify_exclude_platforms=policy.notify_exclude_platforms,
        time_zone=policy.time_zone,
    )


RESET_MODE_NAMES = {number: name for name, number in RESET_MODES.items()}


def policy(message: session_pb2.ResetPolicy, max_bytes: int, path: str) -> ResetPolicy:
    """A reset policy from the wire, checked as the configuration's are (the reference crashed later)."""
    check_sizes(message, path, ("time_zone",), max_bytes)
    mode = RESET_MODE_NAMES.get(message.mode, "both") if message.mode else "both"
    if message.mode and message.mode not in RESET_MODE_NAMES:
        raise InvalidArgument(f"{path}.mode", f"unknown reset mode {message.mode}")
    if not 0 <= message.at_hour <= 23:
        raise InvalidArgument(f"{path}.at_hour", f"expected 0-23, got {message.at_hour}")
    if message.idle_minutes <= 0:
        raise InvalidArgument(f"{path}.idle_minutes", f"expected a positive number, got {message.idle_minutes}")
    if message.time_zone:
        try:
            zone_named(message.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(f"{path}.time_zone", f"unknown time zone {shown(message.time_zone)}") from None
    for index, name in enumerate(message.notify_exclude_platforms):
        check_size(name, f"{path}.notify_exclude_platforms[{index}]", max_bytes)
    return ResetPolicy(
        mode=mode,  # type: ignore[arg-type]  # a RESET_MODES name
        at_hour=message.at_hour,
        idle_minutes=message.idle_minutes,
        notify=message.notify,
        notify_exclude_platforms=tuple(message.notify_exclude_platforms),
        time_zone=message.time_zone,
    )


def gateway_config(message: session_store_pb2.GatewayConfig, max_bytes: int, path: str = "config") -> Sent:
    """What a gateway sent for this call; the parts it left unset stay the daemon's."""
    plugins = {}
    for index, plugin in enumerate(message.plugin_platforms):
        name = plugin.name
        check_size(name, f"{path}.plugin_platforms[{index}].name", max_bytes)
        if not name or name != name.strip().lower() or name in BUILTIN:
            reason = "plugin names are lower-case, not empty, and not a built-in platform"
            raise InvalidArgument(f"{path}.plugin_platforms[{index}].name", reason)
        plugins[name] = plugin.pii_safe
    mapping_dir = None
    if message.HasField("whatsapp_mapping_dir"):
        check_size(message.whatsapp_mapping_dir, f"{path}.whatsapp_mapping_dir", max_bytes)
        mapping_dir = message.whatsapp_mapping_dir
    prompt = None
    if message.HasField("prompt"):
        given = message.prompt
        home = given.agent_home if given.HasField("agent_home") else PromptOptions.agent_home
        check_size(home, f"{path}.prompt.agent_home", max_bytes)
        prompt = PromptOptions(agent_home=home, discord_tools=given.discord_tools)
    options = message.key_options
    return Sent(
        key_options=KeyOptions(options.group_sessions_per_user, options.thread_sessions_per_user)
        if message.HasField("key_options")
        else None,
        reset_policy=policy(message.reset_policy, max_bytes, f"{path}.reset_policy")
        if message.HasField("reset_policy")
        else None,
        max_age_days=bounded_days(message.max_age_days, f"{path}.max_age_days")
        if message.HasField("max_age_days")
        else None,
        plugins=plugins,
        whatsapp_mapping_dir=mapping_dir,
        prompt=prompt,
        namespace=namespace(message, f"{path}.namespace"),
        link_identities=message.link_identities if message.HasField("link_identities") else None,
    )


def namespace(message: Any, path: str = "namespace") -> str | None:
    """A request's optional agent namespace, checked (``None`` when unset)."""
    if not message.HasField("namespace"):
        return None
    return keys.checked_namespace(message.namespace, path)


def bounded_days(days: int, path: str) -> int:
    """An age in days; zero or less means "never", as the reference's ``max_age_days``."""
    if days > MAX_AGE_DAYS:
        raise InvalidArgument(path, f"must be at most {MAX_AGE_DAYS}")
    return days


def check_size(value: str, path: str, max_bytes: int) -> None:
    if len(value) > max_bytes // 4 and len(value.encode("utf-8")) > max_bytes:
        raise InvalidArgument(path, f"longer than {max_bytes} bytes")


def context(
    message: session_pb2.SessionContext, platforms: Platforms, max_bytes: int, path: str = "context"
) -> Context:
    """A context to render as given: its platforms, home channels, sharing flag and entry."""
    if not message.HasField("source"):
        raise InvalidArgument(f"{path}.source", "required")
    connected = tuple(
        platforms.resolve(name, f"{path}.connected_platforms[{i}]")
        for i, name in enumerate(message.connected_platforms)
    )
    homes = tuple(
        home_channel(home, platforms, max_bytes, f"{path}.home_channels[{i}]")
        for i, home in enumerate(message.home_channels)
    )
    check_sizes(message, path, ("session_key", "session_id"), max_bytes)
    entry = None
    if message.session_key or message.session_id or message.HasField("created_at") or message.HasField("updated_at"):
        times = {
            name: timestamp(getattr(message, name), f"{path}.{name}") if message.HasField(name) else None
            for name in ("created_at", "updated_at")
        }
        entry = EntryRef(message.session_key, message.session_id, **times)
    source_ = source(message.source, platforms, max_bytes, f"{path}.source")
    return Context(source_, connected, homes, message.shared_multi_user_session, entry)


def lease_to_proto(lease: Lease) -> session_pb2.Lease:
    return session_pb2.Lease(
        session_key=lease.session_key, owner=lease.owner, expires_at=timestamp_to_proto(lease.expires_at)
    )


# -- events ----------------------------------------------------------------------------------

# "created" <-> EVENT_KIND_CREATED, ...: the stored names are the enum's, lower case.
EVENT_KINDS: dict[events_pb2.EventKind.ValueType, EventKind] = {
    number: name.removeprefix("EVENT_KIND_").lower()  # type: ignore[misc]
    for name, number in events_pb2.EventKind.items()
    if number != events_pb2.EVENT_KIND_UNSPECIFIED
}
EVENT_KIND_VALUES = {name: number for number, name in EVENT_KINDS.items()}
EVENT_OPTIONAL = (
    "previous_session_id", "reason", "lease_owner", "identity", "linked_user", "other_session_key", "fencing_token",
)  # fmt: skip


def event_kinds(numbers: Iterable[events_pb2.EventKind.ValueType], path: str = "kinds") -> frozenset[EventKind]:
    """The kinds a watch asks for; unknown numbers and UNSPECIFIED are rejected, naming the item."""
    kinds = set()
    for index, number in enumerate(numbers):
        if number not in EVENT_KINDS:
            raise InvalidArgument(f"{path}[{index}]", f"not an event kind: {number}")
        kinds.add(EVENT_KINDS[number])
    return frozenset(kinds)


def event_to_proto(event: Event) -> events_pb2.SessionEvent:
    message = events_pb2.SessionEvent(
        sequence=event.sequence,
        kind=EVENT_KIND_VALUES[event.kind],
        session_key=event.session_key,
        session_id=event.session_id,
        entry_version=event.version,
    )
    for name in EVENT_OPTIONAL:
        if getattr(event, name) is not None:
            setattr(message, name, getattr(event, name))
    _set_time(message, "time", event.at)
    return message


def usage(message: session_store_pb2.UsageDelta, path: str = "usage") -> Usage:
    """Token and cost increments; counters only grow."""
    values = {field.name: getattr(message, field.name) for field in message.DESCRIPTOR.fields}
    for name, value in values.items():
        if value < 0 or not math.isfinite(value):
            raise InvalidArgument(f"{path}.{name}", f"must be a finite number >= 0, got {value}")
    return Usage(**values)


def non_negative(value: int, path: str, maximum: int = 2**63 - 1) -> int:
    return bounded(value, path, 0, maximum)


def bounded(value: int, path: str, least: int, maximum: int = 2**31 - 1) -> int:
    """``value`` when within ``least..maximum``, else INVALID_ARGUMENT naming ``path``."""
    if not least <= value <= maximum:
        raise InvalidArgument(path, f"must be between {least} and {maximum}, got {value}")
    return value


# Bounds of ages in requests: a century, far beyond any session, still a valid datetime.
MAX_AGE_DAYS = 36_500
MAX_AGE_MINUTES = MAX_AGE_DAYS * 24 * 60
MAX_AGE_SECONDS = MAX_AGE_MINUTES * 60


def duration(message: Duration, path: str) -> timedelta:
    if message.seconds < 0 or not 0 <= message.nanos <= 999_999_999 or (message.seconds == 0 and message.nanos == 0):
        raise InvalidArgument(path, "must be positive, with nanos in 0..999999999")
    if message.seconds > MAX_LEASE_SECONDS:
        raise InvalidArgument(path, f"must be at most {MAX_LEASE_SECONDS} seconds")
    return message.ToTimedelta()


# -- page tokens -------------------------------------------------------------------------


def page_token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def entry_cursor(token: str, path: str = "page_token") -> Cursor | None:
    if not token:
        return None
    value = _decode_token(token, path)
    if not (isinstance(value, list) and len(value) == 2 and _is_int64(value[0]) and _is_utf8(value[1])):
        raise InvalidArgument(path, "not a token of this listing")
    return value[0], value[1]


def link_cursor(token: str, path: str = "page_token") -> tuple[str, str]:
    """The (platform, user id) after which a page of identity links starts."""
    if not token:
        return "", ""
    value = _decode_token(token, path)
    if not (isinstance(value, list) and len(value) == 2 and all(_is_utf8(v) for v in value)):
        raise InvalidArgument(path, "not a token of this listing")
    return value[0], value[1]


def offset_cursor(token: str, path: str = "page_token") -> int:
    """How many results earlier pages of a ranked search returned (0: the first page)."""
    if not token:
        return 0
    value = _decode_token(token, path)
    if not (_is_int64(value) and value >= 0):
        raise InvalidArgument(path, "not a token of this search")
    return int(value)


def position_cursor(token: str, path: str = "page_token") -> int:
    """The position after which a transcript page starts (-1: from the beginning)."""
    if not token:
        return -1
    value = _decode_token(token, path)
    if not _is_int64(value):
        raise InvalidArgument(path, "not a token of this listing")
    return int(value)


def _is_utf8(value: object) -> bool:
    """A string the storage can bind (JSON text may spell lone surrogates, which UTF-8 cannot)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _decode_token(token: str, path: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, RecursionError):
        raise InvalidArgument(path, "malformed page token") from None


def page_size(requested: int, default: int, maximum: int, path: str = "page_size") -> int:
    if requested < 0:
        raise InvalidArgument(path, f"must be >= 0, got {requested}")
    return min(requested or default, maximum)


# -- transcript messages ------------------------------------------------------------------

# Final: the names stay literals, which HasField takes.
MESSAGE_JSON: Final = (
    "json",
    "tool_calls_json",
    "reasoning_details_json",
    "codex_reasoning_items_json",
    "codex_message_items_json",
)
MESSAGE_OPTIONAL = ("tool_call_id", "tool_name", "reasoning", "reasoning_content", "finish_reason")


def message(value: transcript_pb2.Message, max_bytes: int, path: str) -> Message:
    """A domain message from the wire, checked: a role, valid JSON, a bounded size."""
    if not value.role:
        raise InvalidArgument(f"{path}.role", "required")
    size = value.ByteSize()
    if size > max_bytes:
        raise InvalidArgument(path, f"{size} bytes, more than the limit of {max_bytes}")
    for name in MESSAGE_JSON:
        if value.HasField(name):
            try:
                json.loads(getattr(value, name))
            except ValueError:
                raise InvalidArgument(f"{path}.{name}", "not valid JSON") from None
            except RecursionError:
                raise InvalidArgument(f"{path}.{name}", "JSON nested too deeply") from None
    kind = value.WhichOneof("content")
    return Message(
        role=value.role,
        content=getattr(value, kind) if kind else None,
        content_is_json=kind == "json",
        tool_calls=_optional(value, "tool_calls_json"),
        reasoning_details=_optional(value, "reasoning_details_json"),
        codex_reasoning_items=_optional(value, "codex_reasoning_items_json"),
        codex_message_items=_optional(value, "codex_message_items_json"),
        timestamp=timestamp(value.timestamp, f"{path}.timestamp") if value.HasField("timestamp") else None,
        token_count=non_negative(value.token_count, f"{path}.token_count") if value.HasField("token_count") else None,
        message_id=value.message_id,
        tool_call_id=_optional(value, "tool_call_id"),  # the fields of MESSAGE_OPTIONAL, by name
        tool_name=_optional(value, "tool_name"),
        reasoning=_optional(value, "reasoning"),
        reasoning_content=_optional(value, "reasoning_content"),
        finish_reason=_optional(value, "finish_reason"),
    )


def messages(
    values: Sequence[transcript_pb2.Message], max_count: int, max_bytes: int, field: str = "messages"
) -> list[Message]:
    if len(values) > max_count:
        raise InvalidArgument(field, f"{len(values)} messages, more than the limit of {max_count}")
    return [message(v, max_bytes, f"{field}[{i}]") for i, v in enumerate(values)]


# Domain field -> wire field, for the message fields sent only when set.
_MESSAGE_WIRE = (
    ("tool_calls", "tool_calls_json"),
    ("reasoning_details", "reasoning_details_json"),
    ("codex_reasoning_items", "codex_reasoning_items_json"),
    ("codex_message_items", "codex_message_items_json"),
    ("token_count", "token_count"),
    *((name, name) for name in MESSAGE_OPTIONAL),
)


def message_to_proto(value: Message) -> transcript_pb2.Message:
    """Built with one constructor call: a transcript page converts thousands of these."""
    fields: dict[str, Any] = {
        wire: getattr(value, name) for name, wire in _MESSAGE_WIRE if getattr(value, name) is not None
    }
    if value.content is not None:
        fields["json" if value.content_is_json else "text"] = value.content
    if value.timestamp is not None:
        fields["timestamp"] = timestamp_to_proto(value.timestamp)
    if value.visibility:
        fields["visibility"], fields["hidden_by"] = VISIBILITY[value.visibility], value.hidden_by
    return transcript_pb2.Message(role=value.role, message_id=value.message_id, position=value.position, **fields)


VISIBILITY = {
    "rewound": transcript_pb2.MESSAGE_VISIBILITY_REWOUND,
    "archived": transcript_pb2.MESSAGE_VISIBILITY_ARCHIVED,
}


def handoff_to_proto(handoff: Handoff) -> session_store_pb2.Handoff:
    result = session_store_pb2.Handoff(
        from_session_key=handoff.from_session_key,
        to_session_key=handoff.to_session_key,
        replaced_session_id=handoff.replaced_session_id,
    )
    _set_time(result, "time", handoff.at)
    return result


def lineage_link_to_proto(link: LineageLink) -> session_store_pb2.LineageLink:
    result = session_store_pb2.LineageLink(
        session_id=link.session_id, parent_session_id=link.parent_session_id, reason=link.reason, title=link.title
    )
    _set_time(result, "started_at", link.started_at)
    return result


# -- search ---------------------------------------------------------------------------------

MAX_WINDOW = 10  # neighbours on each side of a hit


def message_filter(request: session_store_pb2.SearchMessagesRequest, max_bytes: int) -> MessageFilter:
    """Which messages a search looks at, each field checked (sizes, times in order)."""
    check_sizes(request, "", ("platform", "session_key", "session_id"), max_bytes)
    for index, role in enumerate(request.roles):
        check_size(role, f"roles[{index}]", max_bytes)
        if not role:
            raise InvalidArgument(f"roles[{index}]", "required")
    since = timestamp(request.since, "since") if request.HasField("since") else None
    until = timestamp(request.until, "until") if request.HasField("until") else None
    if since is not None and until is not None and until <= since:
        raise InvalidArgument("until", "must be after since")
    return MessageFilter(
        platform=request.platform if request.HasField("platform") else None,
        session_key=request.session_key if request.HasField("session_key") else None,
        session_id=request.session_id if request.HasField("session_id") else None,
        roles=tuple(request.roles),
        since=since,
        until=until,
        metadata=metadata_filters(request.metadata),
        include_archived=request.include_archived,
        namespace=namespace(request),
    )


MAX_SELECTED_IDS = 1000
MAX_INACTIVE_DAYS = 100 * 366


def selector(message: session_store_pb2.SessionSelector, max_bytes: int) -> SessionSelector:
    """A bulk call's selector, each field checked; one with no condition at all is refused (it
    would select every session)."""
    path, fields = "selector", message.DESCRIPTOR.fields
    given: Any = message  # read by field name below
    check_sizes(message, path, ("platform", "chat_type", "title_prefix"), max_bytes)
    if len(message.session_ids) > MAX_SELECTED_IDS:
        raise InvalidArgument(f"{path}.session_ids", f"{len(message.session_ids)} ids, more than {MAX_SELECTED_IDS}")
    for name in ("session_ids", "end_reasons"):
        for index, value in enumerate(getattr(message, name)):
            check_size(value, f"{path}.{name}[{index}]", max_bytes)
            if not value:
                raise InvalidArgument(f"{path}.{name}[{index}]", "required")
    if not any(getattr(message, f.name) if f.is_repeated else given.HasField(f.name) for f in fields):
        raise InvalidArgument(path, "set at least one condition (a selector without any would select every session)")
    if message.HasField("inactive_days"):
        bounded(message.inactive_days, f"{path}.inactive_days", 1, MAX_INACTIVE_DAYS)
    if message.HasField("title_prefix") and not fold(message.title_prefix):
        raise InvalidArgument(f"{path}.title_prefix", "has no letters or digits to match")

    def optional(name: str) -> Any:
        return getattr(message, name) if given.HasField(name) else None

    for name in ("min_messages", "max_messages"):
        if given.HasField(name):
            non_negative(getattr(message, name), f"{path}.{name}")
    return SessionSelector(
        session_ids=tuple(message.session_ids),
        inactive_days=optional("inactive_days"),
        platform=optional("platform"),
        chat_type=optional("chat_type"),
        titled=optional("titled"),
        title_prefix=optional("title_prefix"),
        end_reasons=tuple(message.end_reasons),
        ended=optional("ended"),
        min_messages=optional("min_messages"),
        max_messages=optional("max_messages"),
        metadata=metadata_filters(message.metadata, f"{path}.metadata"),
        archived=optional("archived"),
        namespace=namespace(message, f"{path}.namespace"),
    )


def search_window(request: session_store_pb2.SearchMessagesRequest) -> int:
    if not request.HasField("window"):
        return 1
    return non_negative(request.window, "window", MAX_WINDOW)


def summary_to_proto(summary: SessionSummary) -> session_store_pb2.SessionSummary:
    result = session_store_pb2.SessionSummary(
        session_id=summary.session_id,
        title=summary.title,
        platform=summary.platform,
        session_key=summary.session_key,
        end_reason=summary.end_reason,
        message_count=summary.message_count,
        parent_session_id=summary.parent_session_id,
    )
    _set_time(result, "started_at", summary.started_at)
    _set_time(result, "ended_at", summary.ended_at)
    _set_time(result, "archived_at", summary.archived_at)
    _set_time(result, "active_at", summary.active_at)
    metadata_to_proto(result.metadata, summary.metadata)
    return result


def hit_to_proto(hit: SearchHit) -> session_store_pb2.SearchHit:
    result = session_store_pb2.SearchHit(
        session=summary_to_proto(hit.session),
        position=hit.position,
        message_id=hit.message_id,
        role=hit.role,
        snippet=hit.snippet,
        score=hit.score,
        window=[message_to_proto(message) for message in hit.window],
    )
    _set_time(result, "time", hit.timestamp)
    return result


# -- identity links, turns --------------------------------------------------------------------


def identity_link_to_proto(link: IdentityLink) -> session_store_pb2.IdentityLink:
    result = session_store_pb2.IdentityLink(platform=link.platform, user_id=link.user_id, identity=link.identity)
    _set_time(result, "linked_at", link.linked_at)
    return result


def turn_to_proto(turn: Turn) -> session_store_pb2.Turn:
    result = session_store_pb2.Turn(
        session_key=turn.session_key, owner=turn.owner, fencing_token=turn.token, session_id=turn.session_id
    )
    _set_time(result, "started_at", turn.started_at)
    _set_time(result, "expires_at", turn.expires_at)
    return result


def fence(message: session_store_pb2.TurnFence, max_bytes: int, path: str = "fence") -> Fence:
    if not message.session_key:
        raise InvalidArgument(f"{path}.session_key", "required")
    check_size(message.session_key, f"{path}.session_key", max_bytes)
    if message.fencing_token <= 0:
        raise InvalidArgument(f"{path}.fencing_token", f"must be positive (BeginTurn's), got {message.fencing_token}")
    return Fence(message.session_key, message.fencing_token)


def turn_ttl(message: Duration, path: str = "ttl") -> timedelta:
    ttl = duration(message, path)
    if ttl > turns.MAX_TTL:
        raise InvalidArgument(path, f"must be at most {int(turns.MAX_TTL.total_seconds())} seconds")
    return ttl


ON_CONFLICT: dict[int, turns.OnConflict] = {
    session_store_pb2.TURN_CONFLICT_UNSPECIFIED: "reject",
    session_store_pb2.TURN_CONFLICT_REJECT: "reject",
    session_store_pb2.TURN_CONFLICT_QUEUE: "queue",
    session_store_pb2.TURN_CONFLICT_INTERRUPT: "interrupt",
}


def on_conflict(value: int, path: str = "on_conflict") -> turns.OnConflict:
    if value not in ON_CONFLICT:
        raise InvalidArgument(path, f"not a TurnConflict: {value}")
    return ON_CONFLICT[value]
