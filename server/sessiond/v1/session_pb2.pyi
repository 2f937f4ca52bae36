import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sessiond.v1 import source_pb2 as _source_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResetMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESET_MODE_UNSPECIFIED: _ClassVar[ResetMode]
    RESET_MODE_DAILY: _ClassVar[ResetMode]
    RESET_MODE_IDLE: _ClassVar[ResetMode]
    RESET_MODE_BOTH: _ClassVar[ResetMode]
    RESET_MODE_NONE: _ClassVar[ResetMode]
RESET_MODE_UNSPECIFIED: ResetMode
RESET_MODE_DAILY: ResetMode
RESET_MODE_IDLE: ResetMode
RESET_MODE_BOTH: ResetMode
RESET_MODE_NONE: ResetMode

class ResetPolicy(_message.Message):
    __slots__ = ("mode", "at_hour", "idle_minutes", "notify", "notify_exclude_platforms", "time_zone")
    MODE_FIELD_NUMBER: _ClassVar[int]
    AT_HOUR_FIELD_NUMBER: _ClassVar[int]
    IDLE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_EXCLUDE_PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    mode: ResetMode
    at_hour: int
    idle_minutes: int
    notify: bool
    notify_exclude_platforms: _containers.RepeatedScalarFieldContainer[str]
    time_zone: str
    def __init__(self, mode: _Optional[_Union[ResetMode, str]] = ..., at_hour: _Optional[int] = ..., idle_minutes: _Optional[int] = ..., notify: _Optional[bool] = ..., notify_exclude_platforms: _Optional[_Iterable[str]] = ..., time_zone: _Optional[str] = ...) -> None: ...

class SessionEntry(_message.Message):
    __slots__ = ("session_key", "session_id", "created_at", "updated_at", "origin", "display_name", "platform", "chat_type", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens", "estimated_cost_usd", "cost_status", "last_prompt_tokens", "was_auto_reset", "auto_reset_reason", "reset_had_activity", "is_fresh_reset", "expiry_finalized", "suspended", "resume_pending", "resume_reason", "last_resume_marked_at", "version")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    CHAT_TYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    COST_STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WAS_AUTO_RESET_FIELD_NUMBER: _ClassVar[int]
    AUTO_RESET_REASON_FIELD_NUMBER: _ClassVar[int]
    RESET_HAD_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    IS_FRESH_RESET_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_FINALIZED_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_FIELD_NUMBER: _ClassVar[int]
    RESUME_PENDING_FIELD_NUMBER: _ClassVar[int]
    RESUME_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_RESUME_MARKED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    session_id: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    origin: _source_pb2.SessionSource
    display_name: str
    platform: str
    chat_type: _source_pb2.ChatType
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    total_tokens: int
    estimated_cost_usd: float
    cost_status: str
    last_prompt_tokens: int
    was_auto_reset: bool
    auto_reset_reason: str
    reset_had_activity: bool
    is_fresh_reset: bool
    expiry_finalized: bool
    suspended: bool
    resume_pending: bool
    resume_reason: str
    last_resume_marked_at: _timestamp_pb2.Timestamp
    version: int
    def __init__(self, session_key: _Optional[str] = ..., session_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., origin: _Optional[_Union[_source_pb2.SessionSource, _Mapping]] = ..., display_name: _Optional[str] = ..., platform: _Optional[str] = ..., chat_type: _Optional[_Union[_source_pb2.ChatType, str]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., estimated_cost_usd: _Optional[float] = ..., cost_status: _Optional[str] = ..., last_prompt_tokens: _Optional[int] = ..., was_auto_reset: _Optional[bool] = ..., auto_reset_reason: _Optional[str] = ..., reset_had_activity: _Optional[bool] = ..., is_fresh_reset: _Optional[bool] = ..., expiry_finalized: _Optional[bool] = ..., suspended: _Optional[bool] = ..., resume_pending: _Optional[bool] = ..., resume_reason: _Optional[str] = ..., last_resume_marked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class SessionContext(_message.Message):
    __slots__ = ("source", "connected_platforms", "home_channels", "shared_multi_user_session", "session_key", "session_id", "created_at", "updated_at")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    HOME_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SHARED_MULTI_USER_SESSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    source: _source_pb2.SessionSource
    connected_platforms: _containers.RepeatedScalarFieldContainer[str]
    home_channels: _containers.RepeatedCompositeFieldContainer[_source_pb2.HomeChannel]
    shared_multi_user_session: bool
    session_key: str
    session_id: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, source: _Optional[_Union[_source_pb2.SessionSource, _Mapping]] = ..., connected_platforms: _Optional[_Iterable[str]] = ..., home_channels: _Optional[_Iterable[_Union[_source_pb2.HomeChannel, _Mapping]]] = ..., shared_multi_user_session: _Optional[bool] = ..., session_key: _Optional[str] = ..., session_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Lease(_message.Message):
    __slots__ = ("session_key", "owner", "expires_at")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    owner: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, session_key: _Optional[str] = ..., owner: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
