"""A drop-in for the reference gateway's ``SessionStore``, backed by the sessiond sidecar.

A gateway swaps ``SessionStore(sessions_dir, config)`` for ``SessionStoreClient(address)`` and
keeps calling the same methods with the same arguments, getting the same kinds of values back:
entries as ``types.SessionEntry``, transcripts as the OpenAI-format dicts the reference stored.
Where the reference answered None, False or [] for an unknown key, so does this client; every
other failure raises a ``sessiond_client.errors.SessiondError`` subclass.

Reads and pure rules are retried by grpc itself (channel service config) when the daemon is
briefly unavailable; mutations are not, except transcript appends whose messages all carry a
``message_id`` (the daemon skips ids it already stored, so a retry cannot duplicate them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, TypeAlias, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message as ProtoMessage
from google.protobuf.timestamp_pb2 import Timestamp

from sessiond_client import errors, types
from sessiond_client.channel import TLS, open_channel
from sessiond_client.client import default_target
from sessiond_client.coordination import CoordinationCalls, fence_to_proto
from sessiond_client.v1 import events_pb2, session_pb2, source_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub

SERVICE = "sessiond.v1.SessionStore"
# Safe to send twice: reads, pure rules, and AppendMessages once every message has an id.
IDEMPOTENT_METHODS = (
    "BuildSessionKey",
    "BuildSessionContext",
    "GetSession",
    "ListSessions",
    "HasAnySessions",
    "ListExpiredSessions",
    "LoadTranscript",
    "AppendMessages",
    "SetSessionTitle",  # setting the title it already has changes nothing
    "GetSessionTitle",
    "FindSessionByTitle",
    "NextTitleInLineage",
    "GetSessionLineage",
    "GetLineageTip",
    "SearchSessions",
    "SearchMessages",
    "GetSessionMetadata",
)
RETRY_POLICY = {
    "maxAttempts": 3,
    "initialBackoff": "0.05s",
    "maxBackoff": "0.5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
# Callers want whole listings, so ask for big pages (the daemon caps them: 1000 entries, 10000
# messages or ~3 MiB) to save round trips.
PAGE_SIZE = 10_000
SEARCH_PAGE = 20  # sessions or hits a search returns unless asked for more
SEARCH_PAGE_MAX = 100  # the most the daemon puts in one page
# grpc gives up retrying a call whose request outgrew this buffer (default 256 KiB); transcripts
# carry messages of megabytes, and the daemon accepts requests up to 16 MiB by default.
RETRY_BUFFER_BYTES = 16 * 1024 * 1024

ChatTypeValue: TypeAlias = source_pb2.ChatType.ValueType
CHAT_TYPES: dict[str, ChatTypeValue] = {
    "dm": source_pb2.CHAT_TYPE_DM,
    "group": source_pb2.CHAT_TYPE_GROUP,
    "channel": source_pb2.CHAT_TYPE_CHANNEL,
    "thread": source_pb2.CHAT_TYPE_THREAD,
}
# Read with .get(..., "dm"): unset means dm, as in the reference.
CHAT_TYPE_NAMES = {number: name for name, number in CHAT_TYPES.items()}
# The contract's optional source fields (proto3 ``optional``: they have presence); chat_type_name
# travels with chat_type.
SOURCE_OPTIONAL = tuple(
    f.name for f in source_pb2.SessionSource.DESCRIPTOR.fields if f.has_presence and f.name != "chat_type_name"
)
# Message dict keys stored as JSON text, only when truthy (as the reference's SessionDB).
MESSAGE_JSON_FIELDS = ("tool_calls", "reasoning_details", "codex_reasoning_items", "codex_message_items")
# Message dict keys copied as they are when present (not None).
MESSAGE_PLAIN_FIELDS = ("tool_call_id", "tool_name", "reasoning", "reasoning_content", "finish_reason", "token_count")

Response = TypeVar("Response")


class Page(Protocol):
    """A listing response: one page and the token of the next."""

    next_page_token: str


class PageRequest(Protocol):
    page_token: str


PageT = TypeVar("PageT", bound=Page)
RequestT = TypeVar("RequestT", bound=PageRequest)


def pages(call: Callable[[RequestT], PageT], request: RequestT) -> Iterator[PageT]:
    """Every page of a listing: ``call`` again with each ``next_page_token`` until there is none."""
    while True:
        response = call(request)
        yield response
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


class ResponseStream(Protocol):
    """A server-streaming call: its responses, and a way to end it."""

    def __iter__(self) -> Iterator[pb.WatchSessionEventsResponse]: ...

    def cancel(self) -> bool: ...


class EntryLike(Protocol):
    """What a context prompt needs of an entry: ours, or the reference's own ``SessionEntry``."""

    session_key: str
    session_id: str
    created_at: datetime
    updated_at: datetime


def channel_options(retried_methods: Iterable[str]) -> list[tuple[str, Any]]:
    """Channel arguments: large responses, and grpc's own retry policy for ``retried_methods``."""
    names = [{"service": SERVICE, "method": method} for method in retried_methods]
    config = {"methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}]} if names else {}
    return [
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.per_rpc_retry_buffer_size", RETRY_BUFFER_BYTES),
        ("grpc.enable_retries", 1 if names else 0),
        ("grpc.service_config", json.dumps(config)),
    ]


# -- sources -----------------------------------------------------------------------------------


def _source_field(source: object, name: str) -> Any:
    """A field of a source given as a ``to_dict()`` mapping or as an object with attributes."""
    if isinstance(source, Mapping):
        return source.get(name)
    return getattr(source, name, None)


def set_chat_type(message: source_pb2.SessionSource, value: Any) -> None:
    """The enum's value for the reference's four names, else the free ``chat_type_name``
    ("forum"), as the reference accepted any string; missing means dm, as in ``from_dict``."""
    name = "dm" if value is None else str(getattr(value, "value", value))
    if name in CHAT_TYPES:
        message.chat_type = CHAT_TYPES[name]
    else:
        message.chat_type_name = name


def chat_type_of(message: source_pb2.SessionSource | session_pb2.SessionEntry) -> str:
    if message.HasField("chat_type_name"):
        return message.chat_type_name
    return CHAT_TYPE_NAMES.get(message.chat_type, "dm")


def source_to_proto(source: object) -> source_pb2.SessionSource:
    """A ``SessionSource`` message from a dict, a reference-like object or a message.

    The platform may be an Enum (its ``.value`` is sent) or a string; ``None`` optionals stay
    unset so the daemon can tell "not sent" from "empty", as its contexts echo them back.
    """
    if isinstance(source, source_pb2.SessionSource):
        return source
    platform, chat_id = _source_field(source, "platform"), _source_field(source, "chat_id")
    message = source_pb2.SessionSource(
        platform="" if platform is None else types.platform_value(platform),
        chat_id="" if chat_id is None else str(chat_id),
        is_bot=bool(_source_field(source, "is_bot")),
    )
    set_chat_type(message, _source_field(source, "chat_type"))
    for name in SOURCE_OPTIONAL:
        value = _source_field(source, name)
        if value is not None:
            setattr(message, name, str(value))
    return message


def source_from_proto(message: source_pb2.SessionSource) -> types.SessionSource:
    """Unset optionals come back as None, as the reference's ``from_dict`` leaves missing keys."""
    optional = {name: _optional(message, name) for name in SOURCE_OPTIONAL}
    return types.SessionSource(
        platform=types.PlatformName(message.platform),
        chat_id=message.chat_id,
        chat_type=chat_type_of(message),
        is_bot=message.is_bot,
        **optional,
    )


# -- entries and times -------------------------------------------------------------------------


def datetime_from_proto(timestamp: Timestamp, aware: bool) -> datetime:
    """Aware UTC, or naive local time as the reference's ``datetime.now()`` produced."""
    value = timestamp.ToDatetime(tzinfo=UTC)
    return value if aware else value.astimezone().replace(tzinfo=None)


def datetime_to_proto(value: datetime) -> Timestamp:
    """A naive datetime is local time (the reference's convention), not UTC as protobuf assumes."""
    timestamp = Timestamp()
    timestamp.FromDatetime(value if value.tzinfo else value.astimezone())
    return timestamp


def _optional(message: ProtoMessage, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def entry_from_proto(message: session_pb2.SessionEntry, aware: bool) -> types.SessionEntry:
    """Field for field; unset optional strings and times are None, as in the reference's entries."""
    last_marked = message.last_resume_marked_at if message.HasField("last_resume_marked_at") else None
    return types.SessionEntry(
        session_key=message.session_key,
        session_id=message.session_id,
        created_at=datetime_from_proto(message.created_at, aware),
        updated_at=datetime_from_proto(message.updated_at, aware),
        origin=source_from_proto(message.origin) if message.HasField("origin") else None,
        display_name=_optional(message, "display_name"),
        platform=types.PlatformName(message.platform) if message.HasField("platform") else None,
        chat_type=chat_type_of(message),
        input_tokens=message.input_tokens,
        output_tokens=message.output_tokens,
        cache_read_tokens=message.cache_read_tokens,
        cache_write_tokens=message.cache_write_tokens,
        total_tokens=message.total_tokens,
        estimated_cost_usd=message.estimated_cost_usd,
        cost_status=message.cost_status,
        last_prompt_tokens=message.last_prompt_tokens,
        was_auto_reset=message.was_auto_reset,
        auto_reset_reason=_optional(message, "auto_reset_reason"),
        reset_had_activity=message.reset_had_activity,
        is_fresh_reset=message.is_fresh_reset,
        expiry_finalized=message.expiry_finalized,
        suspended=message.suspended,
        resume_pending=message.resume_pending,
        resume_reason=_optional(message, "resume_reason"),
        last_resume_marked_at=datetime_from_proto(last_marked, aware) if last_marked else None,
        version=message.version,
        metadata=metadata_from_proto(message.metadata),
    )


def metadata_from_proto(values: Mapping[str, session_pb2.MetadataValue]) -> dict[str, types.MetadataValue]:
    """A metadata map as plain values (a list of texts as a list)."""
    result: dict[str, types.MetadataValue] = {}
    for key, value in values.items():
        kind = value.WhichOneof("kind")
        result[key] = list(value.texts.values) if kind == "texts" else getattr(value, kind or "text")
    return result


def metadata_value_to_proto(value: types.MetadataValue, key: str) -> session_pb2.MetadataValue:
    """str -> text, bool -> flag, int -> integer, float -> number, a list or tuple of str -> texts."""
    if isinstance(value, bool):
        return session_pb2.MetadataValue(flag=value)
    if isinstance(value, int):
        return session_pb2.MetadataValue(integer=value)
    if isinstance(value, float):
        return session_pb2.MetadataValue(number=value)
    if isinstance(value, str):
        return session_pb2.MetadataValue(text=value)
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return session_pb2.MetadataValue(texts=session_pb2.TextList(values=value))
    raise TypeError(f"metadata {key!r}: a str, int, float, bool or list of str, not {type(value).__name__}")


def selector_to_proto(selector: Mapping[str, Any]) -> pb.SessionSelector:
    """A selector from SessionSelector's field names; ``metadata`` as list_sessions takes it."""
    fields = dict(selector)
    metadata = metadata_filters_to_proto(fields.pop("metadata", None))
    return pb.SessionSelector(**fields, metadata=metadata)


def bulk_from_proto(response: pb.DeleteSessionsResponse | pb.ArchiveSessionsResponse) -> types.BulkResult:
    return types.BulkResult(
        list(response.session_ids),
        response.messages,
        response.remaining,
        response.remaining_messages,
        list(response.session_keys),
    )


def metadata_filters_to_proto(wanted: Mapping[str, Any] | None) -> list[session_pb2.MetadataFilter]:
    """``{key: value}`` as filters: the key present with that value (a list holding it), or with any
    value for ``None``."""
    return [
        session_pb2.MetadataFilter(key=key, equals=None if value is None else metadata_value_to_proto(value, key))
        for key, value in (wanted or {}).items()
    ]


def entry_ref_to_proto(entry: EntryLike) -> session_pb2.SessionEntry:
    """The part of an entry the context prompt uses: key, id and times."""
    return session_pb2.SessionEntry(
        session_key=entry.session_key,
        session_id=entry.session_id,
        created_at=datetime_to_proto(entry.created_at),
        updated_at=datetime_to_proto(entry.updated_at),
    )


# -- events ------------------------------------------------------------------------------------

EVENT_KIND_PREFIX = "EVENT_KIND_"


def event_kind_to_proto(kind: str) -> events_pb2.EventKind.ValueType:
    """The enum value of a kind's name ("expired": EVENT_KIND_EXPIRED); ``InvalidArgumentError`` if unknown."""
    name = EVENT_KIND_PREFIX + kind.upper()
    if kind != kind.lower() or name not in events_pb2.EventKind.keys() or name == "EVENT_KIND_UNSPECIFIED":
        reason = f"unknown event kind {kind!r}"
        raise errors.InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, f"kinds: {reason}", "kinds", reason)
    return events_pb2.EventKind.Value(name)


def event_from_proto(message: events_pb2.SessionEvent, aware: bool) -> types.SessionEvent:
    return types.SessionEvent(
        sequence=message.sequence,
        kind=events_pb2.EventKind.Name(message.kind).removeprefix(EVENT_KIND_PREFIX).lower(),
        session_key=message.session_key,
        session_id=message.session_id,
        entry_version=message.entry_version,
        time=datetime_from_proto(message.time, aware),
        previous_session_id=_optional(message, "previous_session_id"),
        reason=_optional(message, "reason"),
        lease_owner=_optional(message, "lease_owner"),
        identity=_optional(message, "identity"),
        linked_user=_optional(message, "linked_user"),
        other_session_key=_optional(message, "other_session_key"),
        fencing_token=_optional(message, "fencing_token"),
    )


class EventWatch:
    """One ``WatchSessionEvents`` stream: iterate for the events, in sequence order, as they commit.

    ``cursor`` is where the next watch resumes after this one ends (``after_sequence=watch.cursor``):
    while the loop body handles an event it is that event's sequence, and it also moves past
    events the ``kinds`` filter skipped, so persist it rather than the last event's sequence.
    The iteration ends with a ``SessiondError``: ``UnavailableError`` when the daemon stops or
    cannot be reached (watch again from the cursor), ``OutOfRangeError`` when the events after
    the cursor are no longer retained (resync with ``list_sessions``). ``close()``, from any
    thread, ends it without an error.
    """

    def __init__(self, call: ResponseStream, after_sequence: int, aware: bool) -> None:
        self.cursor = after_sequence
        self._call, self._aware, self._closed = call, aware, False

    def __iter__(self) -> Iterator[types.SessionEvent]:
        try:
            for response in self._call:
                for event in response.events:
                    self.cursor = event.sequence
                    yield event_from_proto(event, self._aware)
                self.cursor = response.cursor
        except grpc.RpcError as error:
            if not self._closed:
                raise errors.from_rpc_error(error) from error

    def close(self) -> None:
        self._closed = True
        self._call.cancel()

    def __enter__(self) -> EventWatch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


# -- messages ----------------------------------------------------------------------------------


def message_to_proto(message: Mapping[str, Any]) -> transcript_pb2.Message:
    """A transcript message from an OpenAI-format dict, stored the way the reference's SessionDB did.

    String content travels as text, anything else as JSON text (so numbers of any size and key
    order survive); structured fields only when truthy; a missing role becomes "unknown".
    """
    proto = transcript_pb2.Message(role=message.get("role") or "unknown")
    if message.get("message_id") is not None:
        proto.message_id = str(message["message_id"])
    content = message.get("content")
    if isinstance(content, str):
        proto.text = content
    elif content is not None:
        proto.json = json.dumps(content)
    for name in MESSAGE_PLAIN_FIELDS:
        if message.get(name) is not None:
            setattr(proto, name, message[name])
    for name in MESSAGE_JSON_FIELDS:
        if message.get(name):
            setattr(proto, f"{name}_json", json.dumps(message[name]))
    return proto


def message_from_proto(proto: transcript_pb2.Message) -> dict[str, Any]:
    """The dict the reference's ``get_messages_as_conversation`` returned for the same message."""
    kind = proto.WhichOneof("content")
    result: dict[str, Any] = {
        "role": proto.role,
        "content": json.loads(proto.json) if kind == "json" else proto.text if kind == "text" else None,
    }
    tool_calls = json.loads(proto.tool_calls_json) if proto.tool_calls_json else None
    for name, value in (
        ("tool_call_id", proto.tool_call_id),
        ("tool_name", proto.tool_name),
        ("tool_calls", tool_calls),
    ):
        if value:
            result[name] = value
    if proto.role == "assistant":
        result.update(_assistant_fields(proto))
    if proto.visibility:  # only in a load with include_hidden
        result["visibility"] = VISIBILITY[proto.visibility]
        result["hidden_by"] = proto.hidden_by
    return result


VISIBILITY = {
    transcript_pb2.MESSAGE_VISIBILITY_REWOUND: "rewound",
    transcript_pb2.MESSAGE_VISIBILITY_ARCHIVED: "archived",
}


def _assistant_fields(proto: transcript_pb2.Message) -> dict[str, Any]:
    """Reasoning fields, which the reference replays for assistant messages only."""
    fields: dict[str, Any] = {
        name: getattr(proto, name) for name in ("finish_reason", "reasoning") if getattr(proto, name)
    }
    if proto.HasField("reasoning_content"):
        fields["reasoning_content"] = proto.reasoning_content
    for name in ("reasoning_details", "codex_reasoning_items", "codex_message_items"):
        text = getattr(proto, f"{name}_json")
        if text:
            fields[name] = json.loads(text)
    return fields


# -- the client --------------------------------------------------------------------------------


class SessionStoreClient(CoordinationCalls):
    """The reference ``SessionStore``'s methods over one daemon connection; thread safe.

    ``address`` is ``unix:/path`` or ``host:port`` (default: ``default_target()``; a TCP address
    needs what the daemon's ``[security]`` asks for: ``tls``, the bearer ``token``, or both); every call
    has a deadline of ``timeout`` seconds. Entry times are naive local datetimes like the
    reference's, or aware UTC ones with ``aware_times=True``.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 5.0,
        aware_times: bool = False,
        token: str | None = None,
        tls: TLS | None = None,
        namespace: str | None = None,
        link_identities: bool | None = None,
    ) -> None:
        """``namespace``: the agent namespace (profile) this client's gateway works in: the keys it
        builds are ``agent:<namespace>:...`` and its listings, searches, prunes, bulk calls and event
        watches (and SuspendRecentlyActive, HasAnySessions) see that namespace only (None: the daemon's
        default for keys, every key otherwise). ``link_identities``: DMs of linked user ids share
        their identity's key (None: as the daemon's configuration says; off by default)."""
        target = address or default_target()
        self.timeout = timeout
        self.aware_times = aware_times
        self.namespace = namespace
        self.link_identities = link_identities
        self._channel = open_channel(target, channel_options(IDEMPOTENT_METHODS), token=token, tls=tls)
        # Appends with a message lacking an id would be stored twice by a retry: one attempt only.
        self._single_attempt_channel = open_channel(target, channel_options(()), token=token, tls=tls)
        self._stub = SessionStoreStub(self._channel)
        self._single_attempt_stub = SessionStoreStub(self._single_attempt_channel)

    # -- plumbing

    def _call(self, method: Callable[..., Response], request: object) -> Response:
        """One RPC with the deadline; grpc errors become ``SessiondError`` subclasses."""
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from error

    def _pages(self, method: Callable[..., PageT], request: PageRequest) -> Iterator[PageT]:
        """Every page of a listing (each page has its own deadline)."""
        return pages(lambda page_request: self._call(method, page_request), request)

    def _entry(self, message: session_pb2.SessionEntry) -> types.SessionEntry:
        return entry_from_proto(message, self.aware_times)

    def _config(self) -> pb.GatewayConfig | None:
        """The gateway config this client sends: its namespace and link setting, if it has them."""
        if self.namespace is None and self.link_identities is None:
            return None
        return pb.GatewayConfig(namespace=self.namespace, link_identities=self.link_identities)

    @staticmethod
    def _source(source: object) -> source_pb2.SessionSource:
        return source_to_proto(source)

    def _selector(self, selector: Mapping[str, Any]) -> pb.SessionSelector:
        """The selector in this client's namespace; an empty one stays empty (the daemon refuses it:
        it would select every session of the namespace)."""
        scoped = self.namespace is not None and selector and "namespace" not in selector
        return selector_to_proto({**selector, "namespace": self.namespace} if scoped else selector)

    # -- the reference's methods

    def get_or_create_session(
        self, source: object, force_new: bool = False, *, title: str | None = None
    ) -> types.SessionEntry:
        """The current session of the source's key; a new one when missing, stale, suspended or forced.
        ``title``: the title a new session gets (/new <name>); AlreadyExistsError when it is taken."""
        request = pb.GetOrCreateSessionRequest(
            source=source_to_proto(source), force_new=force_new, title=title, config=self._config()
        )
        return self._entry(self._call(self._stub.GetOrCreateSession, request).entry)

    def update_session(
        self,
        session_key: str,
        last_prompt_tokens: int | None = None,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        total_tokens: int = 0,
        estimated_cost_usd: float = 0.0,
        cost_status: str | None = None,
        expected_version: int | None = None,
        fence: types.Turn | None = None,
    ) -> None:
        """Records activity and adds the usage deltas; an unknown key is ignored, as the reference did.
        ``fence``: the turn this write belongs to (ConflictError once a newer turn began)."""
        usage = pb.UsageDelta(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            total_tokens=total_tokens,
            estimated_cost_usd=estimated_cost_usd,
        )
        request = pb.UpdateSessionRequest(
            session_key=session_key,
            last_prompt_tokens=last_prompt_tokens,
            usage=usage,
            cost_status=cost_status,
            expected_version=expected_version,
            fence=fence_to_proto(fence),
        )
        try:
            self._call(self._stub.UpdateSession, request)
        except errors.NotFoundError:
            return

    def suspend_session(self, session_key: str, *, expected_version: int | None = None) -> bool:
        """Makes the key's next access start a new session (/stop); False for an unknown key."""
        request = pb.SuspendSessionRequest(session_key=session_key, expected_version=expected_version)
        try:
            self._call(self._stub.SuspendSession, request)
        except errors.NotFoundError:
            return False
        return True

    def mark_resume_pending(
        self, session_key: str, reason: str = "restart_timeout", *, expected_version: int | None = None
    ) -> bool:
        """Keeps the session id across a restart; False for an unknown or suspended key, as the reference."""
        request = pb.MarkResumePendingRequest(session_key=session_key, reason=reason, expected_version=expected_version)
        try:
            self._call(self._stub.MarkResumePending, request)
        except (errors.NotFoundError, errors.FailedPreconditionError):
            return False
        return True

    def clear_resume_pending(self, session_key: str, *, expected_version: int | None = None) -> bool:
        """True when a pending flag was cleared; False when none was set or the key is unknown."""
        request = pb.ClearResumePendingRequest(session_key=session_key, expected_version=expected_version)
        try:
            return self._call(self._stub.ClearResumePending, request).cleared
        except errors.NotFoundError:
            return False

    def suspend_recently_active(self, max_age_seconds: int = 120) -> int:
        """Marks sessions active within ``max_age_seconds`` resume-pending (after a crash); their count."""
        request = pb.SuspendRecentlyActiveRequest(max_age_seconds=max_age_seconds, namespace=self.namespace)
        return self._call(self._stub.SuspendRecentlyActive, request).count

    def reset_session(
        self, session_key: str, *, expected_version: int | None = None, title: str | None = None
    ) -> types.SessionEntry | None:
        """A new session id for the key (/new, /reset), titled ``title`` if given; None for an unknown key."""
        request = pb.ResetSessionRequest(session_key=session_key, expected_version=expected_version, title=title)
        try:
            return self._entry(self._call(self._stub.ResetSession, request).entry)
        except errors.NotFoundError:
            return None

    def switch_session(
        self,
        session_key: str,
        target_session_id: str = "",
        *,
        expected_version: int | None = None,
        target_title: str = "",
    ) -> types.SessionEntry | None:
        """Points the key at an existing session id, or at the session titled ``target_title``
        (/resume, /resume <name>); None when the key, the id or the title is unknown."""
        request = pb.SwitchSessionRequest(
            session_key=session_key,
            target_session_id=target_session_id,
            expected_version=expected_version,
            target_title=target_title,
        )
        try:
            return self._entry(self._call(self._stub.SwitchSession, request).entry)
        except errors.NotFoundError:
            return None

    def set_session_title(self, session_id: str, title: str) -> str | None:
        """Sets the session's title (an empty one clears it); the title as stored, in its one spelling.
        AlreadyExistsError when another session has it, NotFoundError for an unknown session."""
        response = self._call(self._stub.SetSessionTitle, pb.SetSessionTitleRequest(session_id=session_id, title=title))
        return response.title if response.HasField("title") else None

    def get_session_title(self, session_id: str) -> str | None:
        """The session's title; None when it has none or the session is unknown."""
        try:
            response = self._call(self._stub.GetSessionTitle, pb.GetSessionTitleRequest(session_id=session_id))
        except errors.NotFoundError:
            return None
        return response.title if response.HasField("title") else None

    def find_session_by_title(self, title: str, *, latest_in_lineage: bool = False) -> str | None:
        """The id of the session with this title, or None; ``latest_in_lineage`` prefers the newest
        session titled ``<title> #<n>`` (where a resumed chain went on)."""
        request = pb.FindSessionByTitleRequest(title=title, latest_in_lineage=latest_in_lineage)
        try:
            return self._call(self._stub.FindSessionByTitle, request).session_id
        except errors.NotFoundError:
            return None

    def get_session_lineage(self, session_id: str) -> types.SessionLineage | None:
        """Where the session came from and what came of it; None for an unknown session."""
        request = pb.GetSessionLineageRequest(session_id=session_id)
        try:
            response = self._call(self._stub.GetSessionLineage, request)
        except errors.NotFoundError:
            return None
        return types.SessionLineage(
            self._link(response.session),
            [self._link(link) for link in response.ancestors],
            [self._link(link) for link in response.children],
            [self._handoff(handoff) for handoff in response.handoffs],
        )

    def get_lineage_tip(self, session_id: str) -> str | None:
        """The newest end of the session's lineage (the newest child at each step); None if unknown."""
        try:
            return self._call(self._stub.GetLineageTip, pb.GetLineageTipRequest(session_id=session_id)).session_id
        except errors.NotFoundError:
            return None

    def search_sessions(
        self,
        query: str,
        *,
        platform: str | None = None,
        limit: int = SEARCH_PAGE,
        metadata: Mapping[str, Any] | None = None,
        include_archived: bool = False,
    ) -> list[types.SessionSummary]:
        """Up to ``limit`` sessions whose id starts with ``query`` or whose title starts with it (case
        and punctuation ignored), newest first; ``metadata``: only those matching (see list_sessions)."""
        request = pb.SearchSessionsRequest(
            namespace=self.namespace,
            query=query,
            platform=platform,
            page_size=min(limit, SEARCH_PAGE_MAX),
            metadata=metadata_filters_to_proto(metadata),
            include_archived=include_archived,
        )
        found: list[types.SessionSummary] = []
        for page in self._pages(self._stub.SearchSessions, request):
            found.extend(self._summary(summary) for summary in page.sessions)
            if len(found) >= limit:
                break
        return found[:limit]

    def search_messages(
        self,
        query: str,
        *,
        platform: str | None = None,
        session_key: str | None = None,
        session_id: str | None = None,
        roles: Iterable[str] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        window: int = 1,
        limit: int = SEARCH_PAGE,
        offset: int = 0,
        metadata: Mapping[str, Any] | None = None,
        include_archived: bool = False,
    ) -> types.SearchResults:
        """Full-text search of transcripts: hits ``offset`` to ``offset + limit``, best first.

        ``query``: words that must all occur, "quoted phrases", ``word*`` prefixes. ``window``:
        neighbours on each side of a hit. ``metadata``: only sessions matching (see list_sessions).
        FailedPreconditionError when the daemon has no index.
        """
        request = pb.SearchMessagesRequest(
            namespace=self.namespace,
            query=query,
            platform=platform,
            session_key=session_key,
            session_id=session_id,
            roles=list(roles),
            since=None if since is None else datetime_to_proto(since),
            until=None if until is None else datetime_to_proto(until),
            window=window,
            page_size=min(offset + limit, SEARCH_PAGE_MAX),
            metadata=metadata_filters_to_proto(metadata),
            include_archived=include_archived,
        )
        hits: list[types.SearchHit] = []
        building = False
        for page in self._pages(self._stub.SearchMessages, request):
            hits.extend(self._hit(hit) for hit in page.hits)
            building = building or page.index_building
            if len(hits) >= offset + limit:
                break
        return types.SearchResults(hits[offset : offset + limit], building)

    def rewind_transcript(
        self,
        session_id: str,
        turns: int = 1,
        *,
        append: Iterable[Mapping[str, Any]] = (),
        fence: types.Turn | None = None,
    ) -> pb.RewindTranscriptResponse:
        """Soft-deletes the last ``turns`` user turns (/undo N), kept and restorable; ``append``:
        messages added after them in the same transaction (/retry). FailedPreconditionError when
        there are fewer user turns. ``.rewind``, ``.rewound_messages``, ``.visible_messages``."""
        request = pb.RewindTranscriptRequest(
            session_id=session_id,
            turns=turns,
            append=[message_to_proto(m) for m in append],
            fence=fence_to_proto(fence),
        )
        return self._call(self._single_attempt_stub.RewindTranscript, request)

    def restore_transcript(self, session_id: str, rewind: int | None = None) -> pb.RestoreTranscriptResponse:
        """Makes a rewind's messages visible again (the newest rewind by default)."""
        request = pb.RestoreTranscriptRequest(session_id=session_id, rewind=rewind)
        return self._call(self._single_attempt_stub.RestoreTranscript, request)

    def compact_transcript(
        self,
        session_id: str,
        first_position: int,
        last_position: int,
        summary: Mapping[str, Any],
        *,
        fence: types.Turn | None = None,
    ) -> pb.CompactTranscriptResponse:
        """Replaces the visible messages in ``first_position..last_position`` by ``summary`` in place
        (/compress): the session id stays; they stay stored, archived and searchable."""
        request = pb.CompactTranscriptRequest(
            session_id=session_id,
            first_position=first_position,
            last_position=last_position,
            summary=message_to_proto(summary),
            fence=fence_to_proto(fence),
        )
        return self._call(self._single_attempt_stub.CompactTranscript, request)

    def branch_session(
        self,
        session_id: str,
        *,
        through_position: int | None = None,
        session_key: str | None = None,
        title: str | None = None,
    ) -> pb.BranchSessionResponse:
        """A new session with a copy of the visible transcript up to ``through_position`` (/branch),
        the source's child in the lineage; ``session_key`` then points at it. ``.session_id``."""
        request = pb.BranchSessionRequest(
            session_id=session_id, through_position=through_position, session_key=session_key, title=title
        )
        return self._call(self._single_attempt_stub.BranchSession, request)

    def update_session_metadata(
        self,
        session_key: str,
        set: Mapping[str, types.MetadataValue] | None = None,  # noqa: A002 - the contract's name
        *,
        remove: Iterable[str] = (),
        replace: bool = False,
        expected_version: int | None = None,
        fence: types.Turn | None = None,
    ) -> types.SessionEntry:
        """Sets and removes keys of the current session's metadata (``replace``: ``set`` becomes the
        whole map; an empty list removes its key); the entry after it, a new version when anything
        changed. ConflictError when ``expected_version`` is not the entry's."""
        request = pb.UpdateSessionMetadataRequest(
            session_key=session_key,
            set={key: metadata_value_to_proto(value, key) for key, value in (set or {}).items()},
            remove=list(remove),
            replace=replace,
            expected_version=expected_version,
            fence=fence_to_proto(fence),
        )
        return self._entry(self._call(self._stub.UpdateSessionMetadata, request).entry)

    def get_session_metadata(self, session_id: str) -> dict[str, types.MetadataValue] | None:
        """A stored session's metadata (ended sessions too); None when there is no such session."""
        try:
            response = self._call(self._stub.GetSessionMetadata, pb.GetSessionMetadataRequest(session_id=session_id))
        except errors.NotFoundError:
            return None
        return metadata_from_proto(response.metadata)

    def delete_sessions(
        self, selector: Mapping[str, Any], *, dry_run: bool = False, limit: int = 100
    ) -> types.BulkResult:
        """Deletes up to ``limit`` stored sessions the selector matches, with their transcripts (and the
        entry of a key whose current session one is), in one transaction; call again while
        ``remaining``. ``selector``: SessionSelector's fields (``session_ids``, ``inactive_days``,
        ``platform``, ``chat_type``, ``titled``, ``title_prefix``, ``end_reasons``, ``ended``,
        ``min_messages``, ``max_messages``, ``archived``), ``metadata`` as in list_sessions."""
        request = pb.DeleteSessionsRequest(selector=self._selector(selector), dry_run=dry_run, limit=limit)
        return bulk_from_proto(self._call(self._single_attempt_stub.DeleteSessions, request))

    def archive_sessions(
        self, selector: Mapping[str, Any], *, dry_run: bool = False, limit: int = 100, unarchive: bool = False
    ) -> types.BulkResult:
        """Archives (or with ``unarchive`` brings back) up to ``limit`` sessions, as delete_sessions
        selects them: kept whole, out of search unless ``include_archived``."""
        request = pb.ArchiveSessionsRequest(
            selector=self._selector(selector), dry_run=dry_run, limit=limit, unarchive=unarchive
        )
        return bulk_from_proto(self._call(self._single_attempt_stub.ArchiveSessions, request))

    def _summary(self, summary: pb.SessionSummary) -> types.SessionSummary:
        return types.SessionSummary(
            session_id=summary.session_id,
            platform=summary.platform,
            started_at=datetime_from_proto(summary.started_at, self.aware_times),
            message_count=summary.message_count,
            title=_optional(summary, "title"),
            session_key=_optional(summary, "session_key"),
            ended_at=self._time(summary, "ended_at"),
            end_reason=_optional(summary, "end_reason"),
            parent_session_id=_optional(summary, "parent_session_id"),
            metadata=metadata_from_proto(summary.metadata),
            archived_at=self._time(summary, "archived_at"),
            active_at=self._time(summary, "active_at"),
        )

    def _time(self, message: ProtoMessage, name: str) -> datetime | None:
        return datetime_from_proto(getattr(message, name), self.aware_times) if message.HasField(name) else None

    def _hit(self, hit: pb.SearchHit) -> types.SearchHit:
        return types.SearchHit(
            session=self._summary(hit.session),
            position=hit.position,
            message_id=hit.message_id,
            role=hit.role,
            time=datetime_from_proto(hit.time, self.aware_times),
            snippet=hit.snippet,
            score=hit.score,
            window=[message_from_proto(message) for message in hit.window],
        )

    def _link(self, link: pb.LineageLink) -> types.LineageLink:
        return types.LineageLink(
            session_id=link.session_id,
            parent_session_id=link.parent_session_id if link.HasField("parent_session_id") else None,
            reason=link.reason if link.HasField("reason") else None,
            started_at=datetime_from_proto(link.started_at, self.aware_times),
            title=link.title if link.HasField("title") else None,
        )

    def next_title_in_lineage(self, title: str) -> str:
        """The next free title of the lineage: ``title`` itself when free, else ``<base> #<n>``."""
        return self._call(self._stub.NextTitleInLineage, pb.NextTitleInLineageRequest(title=title)).title

    def prune_old_entries(self, max_age_days: int | None) -> int:
        """Forgets entries idle for ``max_age_days`` (<= 0: none); None means the daemon's configured age."""
        request = pb.PruneOldEntriesRequest(max_age_days=max_age_days, namespace=self.namespace)
        return self._call(self._stub.PruneOldEntries, request).count

    def list_sessions(
        self, active_minutes: int | None = None, *, metadata: Mapping[str, Any] | None = None
    ) -> list[types.SessionEntry]:
        """Every entry (active within ``active_minutes`` when given), most recently active first.

        ``metadata``: only entries whose session's metadata has each key with that value (a list
        holding it; numbers by value), or with any value where the value is None.
        """
        request = pb.ListSessionsRequest(
            namespace=self.namespace,
            active_minutes=active_minutes,
            page_size=PAGE_SIZE,
            metadata=metadata_filters_to_proto(metadata),
        )
        return [self._entry(e) for page in self._pages(self._stub.ListSessions, request) for e in page.entries]

    def has_any_sessions(self) -> bool:
        """Whether more than one session was ever created (ended ones count)."""
        request = pb.HasAnySessionsRequest(namespace=self.namespace)
        return self._call(self._stub.HasAnySessions, request).has_any_sessions

    def append_to_transcript(self, session_id: str, message: Mapping[str, Any], skip_db: bool = False) -> None:
        """Appends one message; retried safely under a fresh ``message_id`` unless the dict brings one.

        ``skip_db=True`` meant "the agent already wrote it to SQLite"; the daemon keeps the only
        copy, which the agent's write already is, so nothing is sent.
        """
        if skip_db:
            return
        if "message_id" not in message:
            message = {**message, "message_id": uuid.uuid4().hex}
        self.append_messages(session_id, [message])

    def rewrite_transcript(
        self, session_id: str, messages: Iterable[Mapping[str, Any]], *, fence: types.Turn | None = None
    ) -> None:
        """Replaces the whole transcript atomically (/retry, /undo, /compress)."""
        request = pb.RewriteTranscriptRequest(
            session_id=session_id, messages=map(message_to_proto, messages), fence=fence_to_proto(fence)
        )
        self._call(self._stub.RewriteTranscript, request)

    def load_transcript(
        self, session_id: str, *, raw: bool = False, include_hidden: bool = False
    ) -> list[dict[str, Any]]:
        """The transcript in the reference's replay shape; [] for an unknown session id.

        ``raw=True`` returns text as stored, without the daemon stripping memory-context blocks
        and surrounding whitespace as the reference did on replay. ``include_hidden=True`` adds
        the rewound and archived messages, in the order written, each with ``visibility``
        ("rewound" or "archived") and ``hidden_by`` (its rewind or compaction).
        """
        request = pb.LoadTranscriptRequest(
            session_id=session_id, page_size=PAGE_SIZE, raw=raw, include_hidden=include_hidden
        )
        try:
            pages = list(self._pages(self._stub.LoadTranscript, request))
        except errors.NotFoundError:
            return []
        return [message_from_proto(m) for page in pages for m in page.messages]

    # -- beyond the reference

    def get_session(self, session_key: str) -> types.SessionEntry | None:
        """The key's current entry without touching it; None for an unknown key."""
        try:
            return self._entry(self._call(self._stub.GetSession, pb.GetSessionRequest(session_key=session_key)).entry)
        except errors.NotFoundError:
            return None

    def append_messages(
        self, session_id: str, messages: Iterable[Mapping[str, Any]], *, fence: types.Turn | None = None
    ) -> pb.AppendMessagesResponse:
        """Appends messages in one transaction; those whose ``message_id`` is stored already are skipped.
        ``fence``: the turn (``begin_turn``) they belong to: ConflictError, and nothing written, once
        a newer turn began on its key.

        Retried on UNAVAILABLE only when every message has an id, since only then is a second
        attempt harmless.
        """
        protos = [message_to_proto(m) for m in messages]
        stub = self._stub if all(p.message_id for p in protos) else self._single_attempt_stub
        request = pb.AppendMessagesRequest(session_id=session_id, messages=protos, fence=fence_to_proto(fence))
        return self._call(stub.AppendMessages, request)

    def list_expired_sessions(self) -> list[types.SessionEntry]:
        """Entries the policy says expired, not yet finalised nor leased (for the expiry watcher)."""
        pages = self._pages(
            self._stub.ListExpiredSessions, pb.ListExpiredSessionsRequest(page_size=PAGE_SIZE, namespace=self.namespace)
        )
        return [self._entry(e) for page in pages for e in page.entries]

    def mark_expiry_finalized(self, session_key: str, session_id: str) -> types.SessionEntry:
        """Records that ``session_id`` was finalised; ``ConflictError`` if the key moved on."""
        request = pb.MarkExpiryFinalizedRequest(session_key=session_key, session_id=session_id)
        return self._entry(self._call(self._stub.MarkExpiryFinalized, request).entry)

    def acquire_lease(self, session_key: str, owner: str, ttl_seconds: float) -> types.Lease:
        """Takes or renews a lease; ``FailedPreconditionError`` while another owner holds one."""
        ttl = Duration()
        ttl.FromTimedelta(timedelta(seconds=ttl_seconds))
        request = pb.AcquireLeaseRequest(session_key=session_key, owner=owner, ttl=ttl)
        lease = self._call(self._stub.AcquireLease, request).lease
        expires_at = datetime_from_proto(lease.expires_at, self.aware_times)
        return types.Lease(session_key=lease.session_key, owner=lease.owner, expires_at=expires_at)

    def release_lease(self, session_key: str, owner: str) -> bool:
        """True when ``owner`` held a live lease that is now released."""
        request = pb.ReleaseLeaseRequest(session_key=session_key, owner=owner)
        return self._call(self._stub.ReleaseLease, request).released

    def watch_events(self, after_sequence: int = 0, *, kinds: Iterable[str] = (), from_now: bool = False) -> EventWatch:
        """The changes of session keys after ``after_sequence`` (0: the oldest retained; ``from_now``:
        only new ones), then as they commit; only ``kinds`` ("expired", ...) when given.

        The stream has no deadline: it lasts until the daemon stops or ``close()``. An expiry
        watcher is ``for event in client.watch_events(cursor, kinds=["expired"]): finalise, then
        mark_expiry_finalized(event.session_key, event.session_id)``.
        """
        request = pb.WatchSessionEventsRequest(
            namespace=self.namespace,
            after_sequence=after_sequence,
            from_now=from_now,
            kinds=[event_kind_to_proto(kind) for kind in kinds],
        )
        return EventWatch(self._stub.WatchSessionEvents(request), after_sequence, self.aware_times)

    def build_session_key(self, source: object) -> str:
        """The session key the daemon files the source under (its configured isolation rules)."""
        request = pb.BuildSessionKeyRequest(source=source_to_proto(source), config=self._config())
        return self._call(self._stub.BuildSessionKey, request).session_key

    def build_session_context_prompt(
        self, source: object, entry: EntryLike | None = None, redact_pii: bool = False
    ) -> str:
        """The "## Current Session Context" prompt section, with the daemon's platforms and homes."""
        request = pb.BuildSessionContextRequest(
            source=source_to_proto(source),
            entry=entry_ref_to_proto(entry) if entry is not None else None,
            redact_pii=redact_pii,
        )
        return self._call(self._stub.BuildSessionContext, request).prompt

    def close(self) -> None:
        self._channel.close()
        self._single_attempt_channel.close()

    def __enter__(self) -> SessionStoreClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
