"""The drop-in store client: conversions against the reference, grpc behaviour against a fake
server, and every method against a real daemon.

The conversion tests compare with what the reference itself does (the oracle's seed
``SessionStore`` and its SQLite ``SessionDB``), so "drop-in" means the same dicts come back.
"""

from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import oracle
import pytest
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cases
from helpers.clock import Clock
from helpers.daemons import Running
from sessiond_client import SessionStoreClient, errors, types
from sessiond_client.store_client import (
    entry_from_proto,
    event_kind_to_proto,
    message_from_proto,
    message_to_proto,
    source_from_proto,
    source_to_proto,
)
from sessiond_client.v1 import session_pb2, session_store_pb2_grpc, source_pb2
from sessiond_client.v1 import session_store_pb2 as pb

BIG = 2**100
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Grüße ☃ 你好 🎉"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this? ☃"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"n": 1}'}}],
        "finish_reason": "tool_calls",
    },
    {"role": "tool", "content": '{"result": 1}', "tool_call_id": "call_1", "tool_name": "lookup"},
    {
        "role": "assistant",
        "content": "Done.",
        "reasoning": "thought about it",
        "reasoning_content": "",
        "reasoning_details": [{"type": "reasoning.text", "text": "x", "signature": "s"}],
        "codex_reasoning_items": [{"id": "rs_1", "encrypted_content": "gAAA"}],
        "codex_message_items": [{"id": "msg_1", "content": [{"type": "output_text", "text": "Done."}]}],
        "finish_reason": "stop",
        "token_count": 7,
    },
    {
        "role": "user",
        "content": {"big": BIG, "neg": -(2**80), "pi": 3.25, "order": {"z": 1, "a": 2}, "x": [None, True]},
    },
    {"content": "a message without a role"},
    {"role": "user", "content": "reasoning of a user message is not replayed", "reasoning": "r", "finish_reason": "x"},
    {"role": "assistant", "content": "", "tool_calls": [], "reasoning": "", "reasoning_details": []},
]
SOURCE = {"platform": "telegram", "chat_id": "12345", "chat_name": "Alice", "user_id": "42", "user_name": "Alice"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The reference's own store (the oracle's seed ``SessionStore`` with its SQLite ``SessionDB``)."""
    return oracle.make_store(tmp_path_factory.mktemp("reference"))


def reference_replay(reference: Any, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the reference's store returns for a new session rewritten to ``messages``.

    The rewrite path stores every field (its append path drops ``finish_reason``).
    """
    session_id = reference.get_or_create_session(oracle.make_source(SOURCE), force_new=True).session_id
    reference.rewrite_transcript(session_id, messages)
    loaded: list[dict[str, Any]] = reference.load_transcript(session_id)
    return loaded


def round_trip(message: dict[str, Any]) -> dict[str, Any]:
    return message_from_proto(message_to_proto(message))


def ref_source(**fields: Any) -> Any:
    """The reference's own ``SessionSource`` (platform an Enum member)."""
    return oracle.make_source({**SOURCE, **fields})


# -- conversions (no daemon) --------------------------------------------------------------------


def test_messages_round_trip_as_the_reference_replays_them(reference: Any) -> None:
    assert [round_trip(m) for m in MESSAGES] == reference_replay(reference, MESSAGES)


def test_structured_content_keeps_big_ints_unicode_and_key_order() -> None:
    message = {"role": "user", "content": {"big": BIG, "text": "naïve ☃ 🙂", "order": {"z": 1, "a": 2}}}
    proto = message_to_proto(message)
    assert proto.WhichOneof("content") == "json"
    back = round_trip(message)
    assert back == message and back["content"]["big"] == BIG and list(back["content"]["order"]) == ["z", "a"]


def test_fields_map_onto_the_wire_message() -> None:
    proto = message_to_proto(MESSAGES[5])
    assert proto.role == "assistant" and proto.text == "Done." and proto.token_count == 7
    assert proto.HasField("reasoning_content") and proto.reasoning_content == ""
    assert proto.reasoning_details_json and proto.codex_message_items_json and not proto.HasField("tool_calls_json")
    empty = message_to_proto(MESSAGES[-1])
    assert empty.text == "" and not empty.HasField("tool_calls_json") and not empty.HasField("reasoning_details_json")
    assert message_to_proto({"content": None}).WhichOneof("content") is None
    assert message_to_proto({"content": "x"}).role == "unknown"
    assert message_to_proto({"role": "user", "message_id": "m1"}).message_id == "m1"


def test_a_megabyte_message_round_trips() -> None:
    message = {"role": "user", "content": "ü☃x" * 200_000}
    assert len(message["content"].encode()) > 1_000_000
    assert round_trip(message) == message
    parts = {"role": "assistant", "content": [{"type": "text", "text": "é" * 600_000}], "reasoning": "r" * 1_000}
    assert round_trip(parts) == parts


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
optional_strings = st.none() | st.text(max_size=12)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """OpenAI-format messages; text without surrounding whitespace (the daemon strips that)."""
    message: dict[str, Any] = {}
    if draw(st.integers(0, 9)):  # now and then a message without a role
        message["role"] = draw(st.sampled_from(["system", "user", "assistant", "tool", "developer"]))
    message["content"] = draw(
        st.none()
        | st.text().map(str.strip)
        | st.lists(json_values, max_size=3)
        | st.dictionaries(st.text(), json_values)
    )
    for name in ("tool_call_id", "tool_name", "reasoning", "reasoning_content", "finish_reason"):
        if draw(st.booleans()):
            message[name] = draw(optional_strings)
    for name in ("tool_calls", "reasoning_details", "codex_reasoning_items", "codex_message_items"):
        if draw(st.booleans()):
            message[name] = draw(st.lists(json_values, max_size=3))
    return message


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(messages(), min_size=1, max_size=4))
def test_generated_messages_round_trip_as_the_reference_replays_them(
    reference: Any, batch: list[dict[str, Any]]
) -> None:
    assert [round_trip(m) for m in batch] == reference_replay(reference, batch)


class Platform(enum.Enum):
    TELEGRAM = "telegram"


class GatewaySource:
    """A gateway's own source class: attributes only, platform an Enum of its own."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def test_source_from_the_reference_object_and_its_dict() -> None:
    reference = ref_source(chat_type="group", thread_id="7", guild_id="g", chat_id_alt=None)
    for given_source in (reference, reference.to_dict()):
        proto = source_to_proto(given_source)
        assert proto.platform == "telegram" and proto.chat_type == source_pb2.CHAT_TYPE_GROUP
        assert proto.thread_id == "7" and proto.guild_id == "g"
        assert not proto.HasField("chat_id_alt") and not proto.HasField("chat_topic")
        back = source_from_proto(proto)
        assert back.to_dict() == reference.to_dict() and back.description == reference.description
        assert back.platform.value == "telegram"


def test_source_from_an_object_with_an_enum_platform_and_defaults() -> None:
    proto = source_to_proto(GatewaySource(platform=Platform.TELEGRAM, chat_id=12345, user_id=None))
    assert proto.platform == "telegram" and proto.chat_id == "12345"
    assert proto.chat_type == source_pb2.CHAT_TYPE_DM and not proto.HasField("user_id") and not proto.is_bot
    assert source_to_proto({"platform": "discord", "chat_id": "1", "chat_type": "thread", "is_bot": True}).is_bot
    assert source_to_proto(proto) is proto
    ours = source_to_proto(types.SessionSource(types.PlatformName("slack"), "C1", chat_type="channel"))
    assert (ours.platform, ours.chat_id, ours.chat_type) == ("slack", "C1", source_pb2.CHAT_TYPE_CHANNEL)
    # Any other chat type travels by name, as the reference accepted any string.
    forum = source_to_proto({"platform": "telegram", "chat_id": "1", "chat_type": "forum"})
    assert forum.chat_type == source_pb2.CHAT_TYPE_UNSPECIFIED and forum.chat_type_name == "forum"


@settings(max_examples=300, deadline=None)
@given(data=cases.sources())
def test_generated_sources_round_trip_like_the_reference(data: dict[str, Any]) -> None:
    try:
        reference = oracle.make_source(data, {"plugin_platforms": cases.PLUGINS})
    except ValueError:  # a platform the reference does not know: nothing to compare
        return
    back = source_from_proto(source_to_proto(reference))
    assert back.to_dict() == reference.to_dict()
    assert back.description == reference.description


def wire_entry() -> session_pb2.SessionEntry:
    entry = session_pb2.SessionEntry(
        session_key="agent:main:telegram:dm:12345",
        session_id="20250101_120000_abcdef01",
        origin=source_to_proto(SOURCE),
        display_name="Alice",
        platform="telegram",
        chat_type=source_pb2.CHAT_TYPE_DM,
        total_tokens=5,
        estimated_cost_usd=0.25,
        cost_status="estimated",
        resume_pending=True,
        resume_reason="restart_timeout",
        version=3,
    )
    entry.created_at.FromDatetime(datetime(2025, 1, 1, 12, 0, tzinfo=UTC))
    entry.updated_at.FromDatetime(datetime(2025, 1, 1, 12, 5, tzinfo=UTC))
    entry.last_resume_marked_at.FromDatetime(datetime(2025, 1, 1, 12, 6, tzinfo=UTC))
    return entry


def test_entries_carry_the_reference_names_and_dict_format() -> None:
    entry = entry_from_proto(wire_entry(), aware=False)
    utc = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert entry.created_at == utc.astimezone().replace(tzinfo=None) and entry.created_at.tzinfo is None
    assert entry.platform is not None and entry.platform.value == "telegram" and entry.version == 3
    assert entry.auto_reset_reason is None and entry.origin is not None and entry.origin.user_name == "Alice"
    reference = oracle.session.SessionEntry.from_dict(entry.to_dict())
    assert reference.to_dict() == entry.to_dict()
    aware = entry_from_proto(wire_entry(), aware=True)
    assert aware.created_at == utc and aware.last_resume_marked_at == datetime(2025, 1, 1, 12, 6, tzinfo=UTC)


def test_invalid_argument_names_its_field() -> None:
    error = errors.InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, "source.platform: unknown platform 'x'")
    assert error.field == "source.platform" and error.details.endswith("'x'")
    assert error.description == "unknown platform 'x'"
    unnamed = errors.InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, "bad request: no field")
    assert unnamed.field == "" and unnamed.description == "bad request: no field"
    explicit = errors.InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, "whatever: x", "kinds", "unknown")
    assert explicit.field == "kinds" and explicit.description == "unknown"
    with pytest.raises(errors.InvalidArgumentError) as raised:
        event_kind_to_proto("nope")
    assert raised.value.field == "kinds" and raised.value.description == "unknown event kind 'nope'"


# -- grpc behaviour against a fake server ------------------------------------------------------


class FakeStore(session_store_pb2_grpc.SessionStoreServicer):
    """Answers from a script: the first ``unavailable[m]`` calls of ``m`` fail, then it answers."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.unavailable: Counter[str] = Counter()
        self.status: dict[str, tuple[grpc.StatusCode, str]] = {}
        self.trailers: dict[str, tuple[tuple[str, bytes], ...]] = {}  # sent with the status of ``status[m]``
        self.release = threading.Event()
        self.page_tokens: list[str] = []

    def _answer(self, method: str, context: grpc.ServicerContext, response: Any) -> Any:
        self.calls[method] += 1
        if self.unavailable[method] > 0:
            self.unavailable[method] -= 1
            context.abort(grpc.StatusCode.UNAVAILABLE, "daemon restarting")
        if method in self.status:
            context.set_trailing_metadata(self.trailers.get(method, ()))
            context.abort(*self.status[method])
        return response

    def GetSession(self, request: pb.GetSessionRequest, context: grpc.ServicerContext) -> Any:
        return self._answer("GetSession", context, pb.GetSessionResponse(entry=wire_entry()))

    def UpdateSession(self, request: pb.UpdateSessionRequest, context: grpc.ServicerContext) -> Any:
        return self._answer("UpdateSession", context, pb.UpdateSessionResponse(entry=wire_entry()))

    def AppendMessages(self, request: pb.AppendMessagesRequest, context: grpc.ServicerContext) -> Any:
        response = pb.AppendMessagesResponse(appended=len(request.messages), message_count=len(request.messages))
        return self._answer("AppendMessages", context, response)

    def HasAnySessions(self, request: pb.HasAnySessionsRequest, context: grpc.ServicerContext) -> Any:
        self.release.wait(timeout=10)
        return self._answer("HasAnySessions", context, pb.HasAnySessionsResponse(has_any_sessions=True))

    def ListSessions(self, request: pb.ListSessionsRequest, context: grpc.ServicerContext) -> Any:
        self.page_tokens.append(request.page_token)
        following = {"": "p2", "p2": "p3", "p3": ""}[request.page_token]
        response = pb.ListSessionsResponse(entries=[wire_entry()] * 2, next_page_token=following)
        return self._answer("ListSessions", context, response)

    def LoadTranscript(self, request: pb.LoadTranscriptRequest, context: grpc.ServicerContext) -> Any:
        following = "" if request.page_token else "next"
        page = [message_to_proto(MESSAGES[1 if request.page_token else 0])]
        return self._answer(
            "LoadTranscript", context, pb.LoadTranscriptResponse(messages=page, next_page_token=following)
        )


@pytest.fixture
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeStore, SessionStoreClient]]:
    store = FakeStore()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", -1)])
    session_store_pb2_grpc.add_SessionStoreServicer_to_server(store, server)
    address = f"unix:{tmp_path_factory.mktemp('fake') / 'fake.sock'}"
    server.add_insecure_port(address)
    server.start()
    client = SessionStoreClient(address, timeout=5.0)
    yield store, client
    store.release.set()
    client.close()
    server.stop(0)


def test_reads_are_retried_when_unavailable(fake: tuple[FakeStore, SessionStoreClient]) -> None:
    store, client = fake
    store.unavailable["GetSession"] = 2
    entry = client.get_session("k")
    assert entry is not None and entry.session_id == "20250101_120000_abcdef01"
    assert store.calls["GetSession"] == 3
    store.unavailable["GetSession"] = 5
    with pytest.raises(errors.UnavailableError):
        client.get_session("k")
    assert store.calls["GetSession"] == 6  # three attempts, no more


def test_mutations_are_not_retried(fake: tuple[FakeStore, SessionStoreClient]) -> None:
    store, client = fake
    store.unavailable["UpdateSession"] = 1
    with pytest.raises(errors.UnavailableError):
        client.update_session("k", 10)
    assert store.calls["UpdateSession"] == 1


def test_appends_are_retried_only_when_every_message_has_an_id(fake: tuple[FakeStore, SessionStoreClient]) -> None:
    store, client = fake
    store.unavailable["AppendMessages"] = 1
    client.append_to_transcript("s", {"role": "user", "content": "x" * 1_500_000})  # bigger than grpc's buffer
    assert store.calls["AppendMessages"] == 2
    store.unavailable["AppendMessages"] = 1
    with pytest.raises(errors.UnavailableError):
        client.append_messages("s", [{"role": "user", "content": "a", "message_id": "m1"}, {"role": "user"}])
    assert store.calls["AppendMessages"] == 3


def test_every_call_has_a_deadline(fake: tuple[FakeStore, SessionStoreClient]) -> None:
    store, client = fake
    client.timeout = 0.3
    with pytest.raises(errors.DeadlineExceededError):
        client.has_any_sessions()


def test_listings_follow_every_page(fake: tuple[FakeStore, SessionStoreClient]) -> None:
    store, client = fake
    assert len(client.list_sessions()) == 6 and store.page_tokens == ["", "p2", "p3"]
    assert client.load_transcript("s") == [MESSAGES[0], MESSAGES[1]]


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgumentError),
        (grpc.StatusCode.NOT_FOUND, errors.NotFoundError),
        (grpc.StatusCode.ABORTED, errors.ConflictError),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPreconditionError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhaustedError),
        (grpc.StatusCode.UNAVAILABLE, errors.UnavailableError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceededError),
        (grpc.StatusCode.INTERNAL, errors.SessiondError),
    ],
)
def test_status_codes_become_error_classes(
    fake: tuple[FakeStore, SessionStoreClient], code: grpc.StatusCode, error_class: type[errors.SessiondError]
) -> None:
    store, client = fake
    store.status["AppendMessages"] = (code, "messages[0].role: required")
    with pytest.raises(error_class) as raised:
        client.append_messages("s", [{"role": "user", "content": "x"}])
    assert type(raised.value) is error_class and raised.value.code == code
    assert raised.value.details == "messages[0].role: required"
    if error_class is errors.InvalidArgumentError:
        assert raised.value.field == "messages[0].role"


def rich_status(message: str, *details: Message, code: int = code_pb2.INVALID_ARGUMENT) -> tuple[tuple[str, bytes]]:
    """The trailer of a google.rpc.Status with ``details`` (how the daemon sends INVALID_ARGUMENT)."""
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return (("grpc-status-details-bin", status.SerializeToString()),)


def bad_request(*violations: tuple[str, str]) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in violations]
    )


MISLEADING = "messages[0].role: required"  # a message naming another field than the detail does


@pytest.mark.parametrize(
    ("message", "trailers", "field", "description"),
    [
        # The BadRequest detail decides, whatever the message says.
        (
            MISLEADING,
            rich_status(MISLEADING, bad_request(("source.platform", "unknown"))),
            "source.platform",
            "unknown",
        ),
        (
            "rejected",
            rich_status("rejected", bad_request(("messages[3].role", "required"))),
            "messages[3].role",
            "required",
        ),
        (
            MISLEADING,
            rich_status(MISLEADING, error_details_pb2.ErrorInfo(reason="x"), bad_request(("a.b", "c"), ("d", "e"))),
            "a.b",
            "c",
        ),
        # Without a usable detail, the message: no trailer, a BadRequest without violations, only
        # another detail, a status that is not the call's (grpc_status refuses it), bytes that are no Status.
        (MISLEADING, (), "messages[0].role", "required"),
        ("a sentence: with a colon", (), "", "a sentence: with a colon"),
        (MISLEADING, rich_status(MISLEADING, bad_request()), "messages[0].role", "required"),
        (MISLEADING, rich_status(MISLEADING, error_details_pb2.ErrorInfo(reason="x")), "messages[0].role", "required"),
        (
            MISLEADING,
            rich_status("source.platform: x", bad_request(("source.platform", "x"))),
            "messages[0].role",
            "required",
        ),
        (
            MISLEADING,
            rich_status(MISLEADING, bad_request(("a", "b")), code=code_pb2.NOT_FOUND),
            "messages[0].role",
            "required",
        ),
        (MISLEADING, (("grpc-status-details-bin", b"\xff\xff not a status"),), "messages[0].role", "required"),
    ],
)
def test_invalid_argument_reads_the_bad_request_detail_else_the_message(
    fake: tuple[FakeStore, SessionStoreClient],
    message: str,
    trailers: tuple[tuple[str, bytes], ...],
    field: str,
    description: str,
) -> None:
    store, client = fake
    store.status["GetSession"] = (grpc.StatusCode.INVALID_ARGUMENT, message)
    store.trailers["GetSession"] = trailers
    with pytest.raises(errors.InvalidArgumentError) as raised:
        client.get_session("k")
    assert (raised.value.field, raised.value.description, raised.value.details) == (field, description, message)


# -- every method against a real daemon --------------------------------------------------------


@pytest.fixture
def store(daemon: Running) -> Iterator[SessionStoreClient]:
    with SessionStoreClient(daemon.address) as client:
        yield client


def near_now(value: datetime) -> bool:
    return value.tzinfo is None and abs(value - datetime.now()) < timedelta(minutes=1)


def test_build_session_key_and_prompt_equal_the_reference(store: SessionStoreClient) -> None:
    group = ref_source(chat_type="group", chat_id="-100123")
    assert store.build_session_key(group) == oracle.session_key(group.to_dict())
    assert store.build_session_key(GatewaySource(platform=Platform.TELEGRAM, chat_id="9")) == "agent:main:telegram:dm:9"
    entry = store.get_or_create_session(group)
    prompt = store.build_session_context_prompt(group, entry, redact_pii=True)
    assert prompt == oracle.context_prompt(group.to_dict(), entry=entry.to_dict(), redact_pii=True)
    assert store.build_session_context_prompt(SOURCE) == oracle.context_prompt(SOURCE)


def test_get_or_create_session(store: SessionStoreClient) -> None:
    entry = store.get_or_create_session(SOURCE)
    assert entry.session_key == "agent:main:telegram:dm:12345" and entry.display_name == "Alice"
    assert entry.platform is not None and entry.platform.value == "telegram" and entry.chat_type == "dm"
    assert entry.origin is not None and entry.origin.to_dict() == ref_source().to_dict()
    assert near_now(entry.created_at) and near_now(entry.updated_at) and entry.cost_status == "unknown"
    assert not entry.was_auto_reset and not entry.is_fresh_reset
    again = store.get_or_create_session(ref_source())
    assert again.session_id == entry.session_id and again.updated_at >= entry.updated_at
    forced = store.get_or_create_session(SOURCE, force_new=True)
    assert forced.session_id != entry.session_id


def test_aware_times(daemon: Running) -> None:
    with SessionStoreClient(daemon.address, aware_times=True) as client:
        entry = client.get_or_create_session(SOURCE)
    assert entry.created_at.utcoffset() == timedelta(0)
    assert abs(entry.created_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_get_session(store: SessionStoreClient) -> None:
    entry = store.get_or_create_session(SOURCE)
    got = store.get_session(entry.session_key)
    assert got is not None and got.session_id == entry.session_id and got.version == entry.version
    assert store.get_session("agent:main:telegram:dm:nobody") is None


def test_update_session_accumulates_usage(store: SessionStoreClient) -> None:
    key = store.get_or_create_session(SOURCE).session_key
    store.update_session(key, 1200, input_tokens=100, output_tokens=20, total_tokens=120, estimated_cost_usd=0.5)
    store.update_session(key, input_tokens=1, total_tokens=1, estimated_cost_usd=0.25, cost_status="estimated")
    entry = store.get_session(key)
    assert entry is not None and entry.last_prompt_tokens == 1200 and entry.input_tokens == 101
    assert entry.output_tokens == 20 and entry.total_tokens == 121 and entry.estimated_cost_usd == 0.75
    assert entry.cost_status == "estimated"
    store.update_session(key, 0)
    assert store.get_session(key).last_prompt_tokens == 0  # type: ignore[union-attr]
    assert store.update_session("agent:main:telegram:dm:nobody", 5) is None


def test_expected_version_conflicts(store: SessionStoreClient) -> None:
    entry = store.get_or_create_session(SOURCE)
    store.update_session(entry.session_key, 1, expected_version=entry.version)
    with pytest.raises(errors.ConflictError):
        store.update_session(entry.session_key, 2, expected_version=entry.version)
    with pytest.raises(errors.ConflictError):
        store.reset_session(entry.session_key, expected_version=entry.version)
    with pytest.raises(errors.ConflictError):
        store.suspend_session(entry.session_key, expected_version=entry.version)


def test_suspend_session(store: SessionStoreClient) -> None:
    entry = store.get_or_create_session(SOURCE)
    assert store.suspend_session(entry.session_key) is True
    assert store.get_session(entry.session_key).suspended  # type: ignore[union-attr]
    assert store.mark_resume_pending(entry.session_key) is False  # suspended beats resume
    fresh = store.get_or_create_session(SOURCE)
    assert fresh.session_id != entry.session_id and fresh.was_auto_reset and fresh.auto_reset_reason == "suspended"
    assert store.suspend_session("agent:main:telegram:dm:nobody") is False


def test_resume_pending_is_marked_and_cleared(store: SessionStoreClient) -> None:
    entry = store.get_or_create_session(SOURCE)
    assert store.mark_resume_pending(entry.session_key) is True
    marked = store.get_session(entry.session_key)
    assert marked is not None and marked.resume_pending and marked.resume_reason == "restart_timeout"
    assert marked.last_resume_marked_at is not None and near_now(marked.last_resume_marked_at)
    assert store.mark_resume_pending(entry.session_key, reason="restart_interrupted") is True
    assert store.get_session(entry.session_key).resume_reason == "restart_interrupted"  # type: ignore[union-attr]
    resumed = store.get_or_create_session(SOURCE)
    assert resumed.session_id == entry.session_id and resumed.resume_pending and not resumed.was_auto_reset
    assert store.clear_resume_pending(entry.session_key) is True
    cleared = store.get_session(entry.session_key)
    assert cleared is not None and not cleared.resume_pending and cleared.resume_reason is None
    assert cleared.last_resume_marked_at is None
    assert store.clear_resume_pending(entry.session_key) is False
    assert store.clear_resume_pending("agent:main:telegram:dm:nobody") is False
    assert store.mark_resume_pending("agent:main:telegram:dm:nobody") is False


def test_suspend_recently_active(store: SessionStoreClient) -> None:
    first = store.get_or_create_session(SOURCE)
    store.get_or_create_session({**SOURCE, "chat_id": "777"})
    assert store.suspend_recently_active() == 2
    entry = store.get_session(first.session_key)
    assert entry is not None and entry.resume_pending and entry.resume_reason == "restart_interrupted"
    assert not entry.suspended and entry.session_id == first.session_id
    assert store.suspend_recently_active(max_age_seconds=120) == 0  # already pending


def test_reset_session(store: SessionStoreClient) -> None:
    entry = store.get_or_create_session(SOURCE)
    reset = store.reset_session(entry.session_key)
    assert reset is not None and reset.session_id != entry.session_id and reset.is_fresh_reset
    assert reset.origin == entry.origin and reset.display_name == "Alice"
    assert store.get_or_create_session(SOURCE).is_fresh_reset
    assert store.reset_session("agent:main:telegram:dm:nobody") is None


def test_switch_session(store: SessionStoreClient) -> None:
    old = store.get_or_create_session(SOURCE)
    new = store.reset_session(old.session_key)
    assert new is not None
    switched = store.switch_session(old.session_key, old.session_id)
    assert switched is not None and switched.session_id == old.session_id
    same = store.switch_session(old.session_key, old.session_id)
    assert same is not None and same.session_id == old.session_id
    assert store.switch_session("agent:main:telegram:dm:nobody", old.session_id) is None
    assert store.switch_session(old.session_key, "20000101_000000_deadbeef") is None


def test_prune_old_entries_keeps_fresh_ones(store: SessionStoreClient) -> None:
    entry = store.get_or_create_session(SOURCE)
    assert store.prune_old_entries(0) == 0
    assert store.prune_old_entries(-3) == 0
    assert store.prune_old_entries(1) == 0
    assert store.prune_old_entries(None) == 0
    assert store.get_session(entry.session_key) is not None


def test_list_sessions_most_recent_first(store: SessionStoreClient) -> None:
    assert store.list_sessions() == []
    keys = [store.get_or_create_session({**SOURCE, "chat_id": str(n)}).session_key for n in range(3)]
    store.update_session(keys[0])
    listed = store.list_sessions()
    assert [e.session_key for e in listed] == [keys[0], keys[2], keys[1]]
    assert [e.session_key for e in store.list_sessions(active_minutes=5)] == [keys[0], keys[2], keys[1]]


def test_list_sessions_over_many_pages(store: SessionStoreClient) -> None:
    keys = {store.get_or_create_session({**SOURCE, "chat_id": str(n)}).session_key for n in range(1200)}
    assert {e.session_key for e in store.list_sessions()} == keys


def test_has_any_sessions(store: SessionStoreClient) -> None:
    assert store.has_any_sessions() is False
    entry = store.get_or_create_session(SOURCE)
    assert store.has_any_sessions() is False  # the current session does not count, as in the reference
    store.reset_session(entry.session_key)
    assert store.has_any_sessions() is True


def test_transcripts_replay_as_the_reference(store: SessionStoreClient, reference: Any) -> None:
    session_id = store.get_or_create_session(SOURCE).session_id
    padded = [*MESSAGES, {"role": "user", "content": "  <memory-context>secret</memory-context> hi \n"}]
    store.rewrite_transcript(session_id, padded)
    assert store.load_transcript(session_id) == reference_replay(reference, padded)
    assert store.load_transcript(session_id, raw=True)[-1]["content"] == padded[-1]["content"]


def test_append_to_transcript(store: SessionStoreClient) -> None:
    session_id = store.get_or_create_session(SOURCE).session_id
    for message in MESSAGES:
        store.append_to_transcript(session_id, message)
    store.append_to_transcript(session_id, {"role": "user", "content": "already stored by the agent"}, skip_db=True)
    assert store.load_transcript(session_id) == [round_trip(m) for m in MESSAGES]


def test_appends_with_a_message_id_are_stored_once(store: SessionStoreClient) -> None:
    session_id = store.get_or_create_session(SOURCE).session_id
    message = {"role": "user", "content": "hello", "message_id": "m-1"}
    store.append_to_transcript(session_id, message)
    response = store.append_messages(session_id, [message, {"role": "assistant", "content": "hi", "message_id": "m-2"}])
    assert (response.appended, response.duplicates, response.message_count) == (1, 1, 2)
    assert store.load_transcript(session_id) == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
    ]


def test_rewrite_transcript(store: SessionStoreClient) -> None:
    session_id = store.get_or_create_session(SOURCE).session_id
    store.append_to_transcript(session_id, {"role": "user", "content": "one"})
    store.rewrite_transcript(session_id, [{"role": "user", "content": "two"}])
    assert store.load_transcript(session_id) == [{"role": "user", "content": "two"}]
    store.rewrite_transcript(session_id, [])
    assert store.load_transcript(session_id) == []


def test_big_messages_and_long_transcripts(store: SessionStoreClient) -> None:
    session_id = store.get_or_create_session(SOURCE).session_id
    big = {"role": "user", "content": "ü☃x" * 200_000}
    structured = {"role": "user", "content": {"big": BIG, "text": "naïve ☃"}}
    store.append_to_transcript(session_id, big)
    for start in (0, 1000):  # the daemon's default batch limit is 1000 messages
        store.append_messages(
            session_id, [{"role": "assistant", "content": str(n)} for n in range(start, start + 1000)]
        )
    store.append_to_transcript(session_id, structured)
    loaded = store.load_transcript(session_id)  # more than one page (1000 messages, ~3 MiB)
    assert len(loaded) == 2002 and loaded[0] == big and loaded[-1] == structured
    assert [m["content"] for m in loaded[1:-1]] == [str(n) for n in range(2000)]


def test_rewrite_keeps_a_long_transcript(store: SessionStoreClient) -> None:
    """/undo on a long session rewrites its whole history, which the reference allowed at any length."""
    session_id = store.get_or_create_session(SOURCE).session_id
    history = [{"role": "user", "content": str(n)} for n in range(1500)]
    store.rewrite_transcript(session_id, history)
    assert store.load_transcript(session_id) == history


def test_unknown_session_ids(store: SessionStoreClient) -> None:
    assert store.load_transcript("20000101_000000_deadbeef") == []
    with pytest.raises(errors.NotFoundError):
        store.append_to_transcript("20000101_000000_deadbeef", {"role": "user", "content": "x"})


def test_bad_input_is_invalid_argument(store: SessionStoreClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The field and its description come from the daemon's BadRequest detail: with the message
    parsing made to fail, they still arrive."""
    parse = errors.InvalidArgumentError.__init__

    def without_parsing(self: errors.InvalidArgumentError, *args: Any) -> None:
        assert len(args) == 4 and args[2] is not None, "the field was parsed out of the message"
        parse(self, *args)

    monkeypatch.setattr(errors.InvalidArgumentError, "__init__", without_parsing)
    with pytest.raises(errors.InvalidArgumentError) as raised:
        store.get_or_create_session({"platform": "myspace", "chat_id": "1"})
    assert raised.value.field == "source.platform"
    assert raised.value.description == "unknown platform 'myspace' (not built in, not a configured plugin)"
    assert raised.value.details == f"source.platform: {raised.value.description}"


def test_expiry_watcher_calls(store: SessionStoreClient) -> None:
    entry = store.get_or_create_session(SOURCE)
    assert store.list_expired_sessions() == []
    finalized = store.mark_expiry_finalized(entry.session_key, entry.session_id)
    assert finalized.expiry_finalized and finalized.session_id == entry.session_id
    with pytest.raises(errors.ConflictError):
        store.mark_expiry_finalized(entry.session_key, "20000101_000000_deadbeef")
    with pytest.raises(errors.NotFoundError):
        store.mark_expiry_finalized("agent:main:telegram:dm:nobody", entry.session_id)


def test_time_driven_calls_follow_the_daemon_clock(start_daemon: Callable[..., Running]) -> None:
    """Idle resets, expiry, leases and pruning, two days on."""
    clock = Clock()
    with SessionStoreClient(start_daemon(clock=clock).address) as store:
        active, idle, leased, paused = (store.get_or_create_session({**SOURCE, "chat_id": str(n)}) for n in range(4))
        store.update_session(active.session_key, total_tokens=10)
        store.acquire_lease(leased.session_key, "job", ttl_seconds=7 * 86400)
        store.suspend_session(paused.session_key)
        clock.now += timedelta(days=2)
        assert store.list_sessions(active_minutes=60) == []
        assert store.suspend_recently_active() == 0
        expired = {e.session_key for e in store.list_expired_sessions()}
        assert active.session_key in expired and idle.session_key in expired and leased.session_key not in expired
        store.mark_expiry_finalized(idle.session_key, idle.session_id)
        assert idle.session_key not in {e.session_key for e in store.list_expired_sessions()}
        renewed = store.get_or_create_session({**SOURCE, "chat_id": "0"})
        assert renewed.session_id != active.session_id and renewed.was_auto_reset
        assert renewed.auto_reset_reason == "idle" and renewed.reset_had_activity
        assert store.get_or_create_session({**SOURCE, "chat_id": "2"}).session_id == leased.session_id
        assert [e.session_key for e in store.list_sessions(active_minutes=60)] == [
            leased.session_key,
            active.session_key,
        ]
        assert store.prune_old_entries(1) == 1  # the idle one: suspended and fresh ones stay
        assert store.get_session(idle.session_key) is None and store.get_session(paused.session_key) is not None


def test_leases(store: SessionStoreClient) -> None:
    key = store.get_or_create_session(SOURCE).session_key
    lease = store.acquire_lease(key, "worker-1", ttl_seconds=30)
    assert lease.session_key == key and lease.owner == "worker-1" and near_now(lease.expires_at)
    assert lease.expires_at > datetime.now() + timedelta(seconds=20)
    renewed = store.acquire_lease(key, "worker-1", ttl_seconds=60.5)
    assert renewed.expires_at > lease.expires_at
    with pytest.raises(errors.FailedPreconditionError):
        store.acquire_lease(key, "worker-2", ttl_seconds=30)
    assert store.release_lease(key, "worker-2") is False
    assert store.release_lease(key, "worker-1") is True
    assert store.release_lease(key, "worker-1") is False
    assert store.acquire_lease(key, "worker-2", ttl_seconds=1).owner == "worker-2"
    with pytest.raises(errors.InvalidArgumentError):
        store.acquire_lease(key, "worker-2", ttl_seconds=0)


def test_a_gateway_swaps_the_store_by_its_constructor(daemon: Running, tmp_path: Path) -> None:
    """The same calls, in a gateway's order, on the reference and on the sidecar agree."""
    with SessionStoreClient(daemon.address) as client:
        results = []
        for store in (oracle.make_store(tmp_path), client):
            entry = store.get_or_create_session(ref_source())
            store.update_session(entry.session_key, last_prompt_tokens=300)
            store.append_to_transcript(entry.session_id, {"role": "user", "content": " hi "})
            store.append_to_transcript(entry.session_id, {"role": "assistant", "content": "hello", "reasoning": "r"})
            marked = store.mark_resume_pending(entry.session_key)
            again = store.get_or_create_session(ref_source())
            cleared = store.clear_resume_pending(entry.session_key)
            listed = store.list_sessions()
            results.append(
                (
                    again.session_id == entry.session_id,
                    again.last_prompt_tokens,
                    marked,
                    cleared,
                    store.load_transcript(entry.session_id),
                    [e.session_key for e in listed],
                    sorted(listed[0].to_dict()),
                    store.has_any_sessions(),
                )
            )
    assert results[0] == results[1]
