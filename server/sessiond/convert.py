"""Protobuf messages to domain values and back; the only place that knows both.

Checks that belong to the wire (enum values, sizes, timestamps, platform names) happen here,
so a bad request fails with the name of its field before any rule or storage runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from sessiond.errors import InvalidArgument
from sessiond.model import ChatType, Context, EntryRef, HomeChannel, Source
from sessiond.platforms import Platforms
from sessiond.v1 import session_pb2, source_pb2

CHAT_TYPES: dict[int, ChatType] = {
    source_pb2.CHAT_TYPE_UNSPECIFIED: "dm",
    source_pb2.CHAT_TYPE_DM: "dm",
    source_pb2.CHAT_TYPE_GROUP: "group",
    source_pb2.CHAT_TYPE_CHANNEL: "channel",
    source_pb2.CHAT_TYPE_THREAD: "thread",
}
CHAT_TYPE_VALUES = {name: number for number, name in CHAT_TYPES.items() if number}

SOURCE_OPTIONAL = (
    "chat_name",
    "user_id",
    "user_name",
    "thread_id",
    "chat_topic",
    "user_id_alt",
    "chat_id_alt",
    "guild_id",
    "parent_chat_id",
    "message_id",
)
HOME_OPTIONAL = ("thread_id", "user_id", "scope_id")


def check_sizes(message: Any, path: str, names: Iterable[str], max_bytes: int) -> None:
    """Reject string fields longer than ``max_bytes`` (UTF-8), naming the first one."""
    for name in names:
        value = getattr(message, name)
        if len(value) > max_bytes // 4 and len(value.encode("utf-8")) > max_bytes:
            raise InvalidArgument(f"{path}.{name}", f"longer than {max_bytes} bytes")


def _optional(message: Any, name: str) -> str | None:
    return getattr(message, name) if message.HasField(name) else None


def chat_type(number: int, path: str) -> ChatType:
    try:
        return CHAT_TYPES[number]
    except KeyError:
        raise InvalidArgument(path, f"unknown chat type {number}") from None


def source(message: source_pb2.SessionSource, platforms: Platforms, max_bytes: int, path: str = "source") -> Source:
    check_sizes(message, path, ("platform", "chat_id", *SOURCE_OPTIONAL), max_bytes)
    return Source(
        platform=platforms.resolve(message.platform, f"{path}.platform"),
        chat_id=message.chat_id,
        chat_type=chat_type(message.chat_type, f"{path}.chat_type"),
        is_bot=message.is_bot,
        **{name: _optional(message, name) for name in SOURCE_OPTIONAL},
    )


def source_to_proto(value: Source) -> source_pb2.SessionSource:
    message = source_pb2.SessionSource(
        platform=value.platform,
        chat_id=value.chat_id,
        chat_type=CHAT_TYPE_VALUES[value.chat_type],
        is_bot=value.is_bot,
    )
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
    message = Timestamp()
    message.FromDatetime(value)
    return message


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
