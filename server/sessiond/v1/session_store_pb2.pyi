import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from sessiond.v1 import session_pb2 as _session_pb2
from sessiond.v1 import source_pb2 as _source_pb2
from sessiond.v1 import transcript_pb2 as _transcript_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RuntimePlatforms(_message.Message):
    __slots__ = ("connected_platforms", "home_channels")
    CONNECTED_PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    HOME_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    connected_platforms: _containers.RepeatedScalarFieldContainer[str]
    home_channels: _containers.RepeatedCompositeFieldContainer[_source_pb2.HomeChannel]
    def __init__(self, connected_platforms: _Optional[_Iterable[str]] = ..., home_channels: _Optional[_Iterable[_Union[_source_pb2.HomeChannel, _Mapping]]] = ...) -> None: ...

class BuildSessionKeyRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: _source_pb2.SessionSource
    def __init__(self, source: _Optional[_Union[_source_pb2.SessionSource, _Mapping]] = ...) -> None: ...

class BuildSessionKeyResponse(_message.Message):
    __slots__ = ("session_key", "shared_multi_user_session", "description")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SHARED_MULTI_USER_SESSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    shared_multi_user_session: bool
    description: str
    def __init__(self, session_key: _Optional[str] = ..., shared_multi_user_session: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...

class BuildSessionContextRequest(_message.Message):
    __slots__ = ("source", "entry", "redact_pii", "platforms")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    REDACT_PII_FIELD_NUMBER: _ClassVar[int]
    PLATFORMS_FIELD_NUMBER: _ClassVar[int]
    source: _source_pb2.SessionSource
    entry: _session_pb2.SessionEntry
    redact_pii: bool
    platforms: RuntimePlatforms
    def __init__(self, source: _Optional[_Union[_source_pb2.SessionSource, _Mapping]] = ..., entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ..., redact_pii: _Optional[bool] = ..., platforms: _Optional[_Union[RuntimePlatforms, _Mapping]] = ...) -> None: ...

class BuildSessionContextResponse(_message.Message):
    __slots__ = ("context", "prompt")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    context: _session_pb2.SessionContext
    prompt: str
    def __init__(self, context: _Optional[_Union[_session_pb2.SessionContext, _Mapping]] = ..., prompt: _Optional[str] = ...) -> None: ...

class GetOrCreateSessionRequest(_message.Message):
    __slots__ = ("source", "force_new")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FORCE_NEW_FIELD_NUMBER: _ClassVar[int]
    source: _source_pb2.SessionSource
    force_new: bool
    def __init__(self, source: _Optional[_Union[_source_pb2.SessionSource, _Mapping]] = ..., force_new: _Optional[bool] = ...) -> None: ...

class GetOrCreateSessionResponse(_message.Message):
    __slots__ = ("entry", "created", "policy")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    entry: _session_pb2.SessionEntry
    created: bool
    policy: _session_pb2.ResetPolicy
    def __init__(self, entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ..., created: _Optional[bool] = ..., policy: _Optional[_Union[_session_pb2.ResetPolicy, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_key",)
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    def __init__(self, session_key: _Optional[str] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _session_pb2.SessionEntry
    def __init__(self, entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ...) -> None: ...

class UsageDelta(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens", "estimated_cost_usd")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COST_USD_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    total_tokens: int
    estimated_cost_usd: float
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., estimated_cost_usd: _Optional[float] = ...) -> None: ...

class UpdateSessionRequest(_message.Message):
    __slots__ = ("session_key", "last_prompt_tokens", "usage", "cost_status", "expected_version")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    LAST_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    last_prompt_tokens: int
    usage: UsageDelta
    cost_status: str
    expected_version: int
    def __init__(self, session_key: _Optional[str] = ..., last_prompt_tokens: _Optional[int] = ..., usage: _Optional[_Union[UsageDelta, _Mapping]] = ..., cost_status: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdateSessionResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _session_pb2.SessionEntry
    def __init__(self, entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ...) -> None: ...

class SuspendSessionRequest(_message.Message):
    __slots__ = ("session_key", "expected_version")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    expected_version: int
    def __init__(self, session_key: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SuspendSessionResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _session_pb2.SessionEntry
    def __init__(self, entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ...) -> None: ...

class MarkResumePendingRequest(_message.Message):
    __slots__ = ("session_key", "reason", "expected_version")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    reason: str
    expected_version: int
    def __init__(self, session_key: _Optional[str] = ..., reason: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class MarkResumePendingResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _session_pb2.SessionEntry
    def __init__(self, entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ...) -> None: ...

class ClearResumePendingRequest(_message.Message):
    __slots__ = ("session_key", "expected_version")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    expected_version: int
    def __init__(self, session_key: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ClearResumePendingResponse(_message.Message):
    __slots__ = ("cleared", "entry")
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    cleared: bool
    entry: _session_pb2.SessionEntry
    def __init__(self, cleared: _Optional[bool] = ..., entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ...) -> None: ...

class SuspendRecentlyActiveRequest(_message.Message):
    __slots__ = ("max_age_seconds",)
    MAX_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    max_age_seconds: int
    def __init__(self, max_age_seconds: _Optional[int] = ...) -> None: ...

class SuspendRecentlyActiveResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ResetSessionRequest(_message.Message):
    __slots__ = ("session_key", "expected_version")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    expected_version: int
    def __init__(self, session_key: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ResetSessionResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _session_pb2.SessionEntry
    def __init__(self, entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ...) -> None: ...

class SwitchSessionRequest(_message.Message):
    __slots__ = ("session_key", "target_session_id", "expected_version")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    TARGET_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    target_session_id: str
    expected_version: int
    def __init__(self, session_key: _Optional[str] = ..., target_session_id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class SwitchSessionResponse(_message.Message):
    __slots__ = ("entry", "switched")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    SWITCHED_FIELD_NUMBER: _ClassVar[int]
    entry: _session_pb2.SessionEntry
    switched: bool
    def __init__(self, entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ..., switched: _Optional[bool] = ...) -> None: ...

class PruneOldEntriesRequest(_message.Message):
    __slots__ = ("max_age_days",)
    MAX_AGE_DAYS_FIELD_NUMBER: _ClassVar[int]
    max_age_days: int
    def __init__(self, max_age_days: _Optional[int] = ...) -> None: ...

class PruneOldEntriesResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("active_minutes", "page_size", "page_token")
    ACTIVE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    active_minutes: int
    page_size: int
    page_token: str
    def __init__(self, active_minutes: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_session_pb2.SessionEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[_session_pb2.SessionEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class HasAnySessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HasAnySessionsResponse(_message.Message):
    __slots__ = ("has_any_sessions",)
    HAS_ANY_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    has_any_sessions: bool
    def __init__(self, has_any_sessions: _Optional[bool] = ...) -> None: ...

class ListExpiredSessionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListExpiredSessionsResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[_session_pb2.SessionEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[_session_pb2.SessionEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MarkExpiryFinalizedRequest(_message.Message):
    __slots__ = ("session_key", "session_id")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    session_id: str
    def __init__(self, session_key: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class MarkExpiryFinalizedResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: _session_pb2.SessionEntry
    def __init__(self, entry: _Optional[_Union[_session_pb2.SessionEntry, _Mapping]] = ...) -> None: ...

class AcquireLeaseRequest(_message.Message):
    __slots__ = ("session_key", "owner", "ttl")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    owner: str
    ttl: _duration_pb2.Duration
    def __init__(self, session_key: _Optional[str] = ..., owner: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AcquireLeaseResponse(_message.Message):
    __slots__ = ("lease",)
    LEASE_FIELD_NUMBER: _ClassVar[int]
    lease: _session_pb2.Lease
    def __init__(self, lease: _Optional[_Union[_session_pb2.Lease, _Mapping]] = ...) -> None: ...

class ReleaseLeaseRequest(_message.Message):
    __slots__ = ("session_key", "owner")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    owner: str
    def __init__(self, session_key: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class ReleaseLeaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class AppendMessagesRequest(_message.Message):
    __slots__ = ("session_id", "messages")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    messages: _containers.RepeatedCompositeFieldContainer[_transcript_pb2.Message]
    def __init__(self, session_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_transcript_pb2.Message, _Mapping]]] = ...) -> None: ...

class AppendMessagesResponse(_message.Message):
    __slots__ = ("appended", "duplicates", "message_count")
    APPENDED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    appended: int
    duplicates: int
    message_count: int
    def __init__(self, appended: _Optional[int] = ..., duplicates: _Optional[int] = ..., message_count: _Optional[int] = ...) -> None: ...

class RewriteTranscriptRequest(_message.Message):
    __slots__ = ("session_id", "messages")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    messages: _containers.RepeatedCompositeFieldContainer[_transcript_pb2.Message]
    def __init__(self, session_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_transcript_pb2.Message, _Mapping]]] = ...) -> None: ...

class RewriteTranscriptResponse(_message.Message):
    __slots__ = ("message_count",)
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    message_count: int
    def __init__(self, message_count: _Optional[int] = ...) -> None: ...

class LoadTranscriptRequest(_message.Message):
    __slots__ = ("session_id", "page_size", "page_token", "raw")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    page_size: int
    page_token: str
    raw: bool
    def __init__(self, session_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., raw: _Optional[bool] = ...) -> None: ...

class LoadTranscriptResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_transcript_pb2.Message]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[_transcript_pb2.Message, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
