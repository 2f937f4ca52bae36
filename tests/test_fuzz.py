"""Fuzzing every RPC of ``sessiond.v1.SessionStore`` with random and malformed requests (issue 6, "Bad input").

Requests are built generically from the message descriptors (every field of every request
message, nested messages included), with huge strings, unicode edge cases, NUL bytes, int64
extremes, unknown enum numbers, out-of-range timestamps and durations, invalid JSON and garbage
page tokens, mixed with well-formed values (valid sources, the session keys and ids of seeded
and created sessions, real page tokens) so that the deeper code paths run too.

What is checked, against a real daemon on a temp Unix socket:

- a request that parses never gets ``INTERNAL`` or ``UNKNOWN``: only the statuses of the
  contract (``ALLOWED``), never a "Traceback" in the status message or its details;
- an ``INVALID_ARGUMENT`` names a field of the request (its ``BadRequest`` detail);
- a rejected request writes nothing: every entry (``ListSessions``, all pages), the raw
  transcripts of the seeded sessions and ``HasAnySessions`` are the same before and after;
- bytes that are not a request message at all get grpcio's own answer and garbage on the
  socket is survived; the daemon is still ``SERVING`` afterwards (``grpc.health.v1``).

The server bugs this fuzzing found (B1-B6) are fixed; the regression tests at the end keep
each exact reproduction.
"""

from __future__ import annotations

import base64
import json
import random
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from helpers.daemons import Running
from helpers.wire import Snapshot, snapshot
from sessiond_client.v1 import session_pb2, session_store_pb2_grpc, source_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

Start = Callable[..., Running]
Code = grpc.StatusCode

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
SERVICE = pb.DESCRIPTOR.services_by_name["SessionStore"]
METHODS = {method.name: method for method in SERVICE.methods}
NAMES = sorted(METHODS)
READ_ONLY = frozenset(
    {"BuildSessionKey", "BuildSessionContext", "GetSession", "ListSessions", "HasAnySessions"}
    | {"ListExpiredSessions", "LoadTranscript", "WatchSessionEvents", "SearchSessions", "SearchMessages"}
    | {"GetSessionMetadata"}
)
ALLOWED = frozenset(
    {
        Code.OK,
        Code.INVALID_ARGUMENT,
        Code.NOT_FOUND,
        Code.ALREADY_EXISTS,  # a title another session has
        Code.ABORTED,
        Code.FAILED_PRECONDITION,
        Code.RESOURCE_EXHAUSTED,
        Code.DEADLINE_EXCEEDED,
        Code.OUT_OF_RANGE,  # WatchSessionEvents: a cursor outside the event log
    }
)
ROUNDS, EXAMPLES_PER_ROUND = 3, 21  # per RPC: 3 x 21 Hypothesis examples of one request each (63; 1,890 for 30 RPCs)
MIN_REQUESTS = 1000
RAW_EXAMPLES = 300
SERVING = health_pb2.HealthCheckResponse.SERVING
JSON_FIELDS = (
    "json",
    "tool_calls_json",
    "reasoning_details_json",
    "codex_reasoning_items_json",
    "codex_message_items_json",
)
USAGE_COUNTERS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens")
INT64_MAX = 2**63 - 1


def fixed_clock() -> datetime:
    return NOW


def call_once(method: grpc.UnaryUnaryMultiCallable | grpc.UnaryStreamMultiCallable, request: Any) -> Any:
    """A unary call's response, or a stream's first (which the daemon sends at once); the stream is then left."""
    answer = method(request, timeout=10)
    if not isinstance(method, grpc.UnaryStreamMultiCallable):
        return answer
    try:
        return next(answer)
    finally:
        answer.cancel()


# --------------------------------------------------------------------------- values


EDGE_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x00" * 64,
    "e\u0301",  # e + combining acute
    "\u0301\u0301\u0301",  # combining marks with nothing to combine with
    "Z\u0351\u0362\u0334\u0337\u0338",  # zalgo
    "\u202eevil\u202c",  # right-to-left override
    "\u200f\u200e\u200b\u2060",  # RTL/LTR marks, zero-width space, word joiner
    "שלום",
    "مرحبا بالعالم",
    "👨\u200d👩\u200d👧\u200d👦",  # a ZWJ family
    "🏳\ufe0f\u200d🌈",
    "\U0001f600" * 3,
    "\uffff",
    "\ufffe",
    "\ufeff",  # BOM
    "\U0010ffff",
    "\u2028\u2029",
    "\r\n\t\x0b\x0c",
    "\x7f\x1b[31m",
    "%",
    "%00%s%n",
    "'\"\\",
    "None",
    "null",
    "-1",
    "İ",  # lower() makes it longer
    "ß",
    "  Telegram ",
    "TELEGRAM",
    "<memory-context>recalled</memory-context>",
    "agent:main:telegram:dm:1001",
    "20260504_100000_deadbeef",
)
HUGE_UNITS = ("a", "\x00", "é", "e\u0301", "😀", "\uffff", "\u202e", "[", '{"a":')
HUGE_BYTES = (4095, 4096, 4097, 8192, 16_384, 65_536, 100_000)  # about max_field_bytes, and up to ~100 KB
PLATFORMS = ("telegram", "discord", "slack", "signal", "whatsapp", "matrix", "local", "  Telegram ", "irc", "")
ROLES = ("user", "assistant", "system", "tool", "")
JSON_TEXTS = (
    "{}",
    "[]",
    '"text"',
    "1",
    "null",
    '{"a": [1, 2.5, null, true, "x"]}',
    '[{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:x"}}]',
    '[{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]',
    '{"a": NaN, "b": Infinity}',  # Python's json accepts these
    "1e999999",
    '"\\ud800"',  # a lone surrogate escape
    '{"a": 1, "a": 2}',
    "",
    "{",
    "[1,]",
    "{'a': 1}",
    "nul\x00l",
    "[" * 500 + "]" * 500,
)
TOKEN_VALUES: tuple[Any, ...] = (
    [0, ""],
    [0, "agent:main:telegram:dm:1001"],
    [INT64_MAX, "~"],
    [-(2**63), ""],
    [2**63, "x"],
    [-(2**63) - 1, "x"],
    [1.5, "x"],
    [True, "x"],
    [0, None],
    [0, "\x00"],
    [0],
    [0, "a", 1],
    [],
    {},
    None,
    "x",
    0,
    -1,
    5,
    INT64_MAX,
    2**63,
    1e308,
    True,
    [[0, "x"]],
)
SPECIAL_INTS = (
    0,
    1,
    -1,
    2,
    7,
    59,
    60,
    120,
    1000,
    604_800,
    604_801,
    10**9,
    2**31 - 1,
    -(2**31),
    2**32,
    10**11,
    10**14,
) + (2**53 + 1, 2**62, INT64_MAX, INT64_MAX - 1, -(2**63), -(2**63) + 1, 2**64 - 1)
SPECIAL_FLOATS = (0.0, -0.0, 0.5, 1e-9, 5e-324, 1.0, -1.0, 1e308, -1e308, float("inf"), float("-inf"), float("nan"))
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), INT64_MAX),
    FieldDescriptor.TYPE_SINT64: (-(2**63), INT64_MAX),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), INT64_MAX),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
REPEATED_MAX = {"messages": 5}
PRESENT = st.sampled_from((True, True, True, False))  # a field is set 3 times in 4
MAX_DEPTH = 3
# RPCs whose random requests mostly fail on a random config or context: some get a source alone.
SOURCE_ONLY = ("BuildSessionKey", "BuildSessionContext", "GetOrCreateSession")


def b64(raw: str | bytes) -> str:
    return base64.urlsafe_b64encode(raw.encode() if isinstance(raw, str) else raw).decode()


DEEP_TOKENS = (b64("[" * 100_000), b64('{"a":' * 30_000), b64("[" * 1000 + "]" * 1000))


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each with its weight (Hypothesis' one_of weighs them equally)."""
    total = sum(weight for weight, _ in choices)

    def pick(n: int) -> st.SearchStrategy[Any]:
        for weight, strategy in choices:
            if n < weight:
                return strategy
            n -= weight
        raise AssertionError("unreachable")

    return st.integers(0, total - 1).flatmap(pick)


def integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    specials = sorted({v for v in SPECIAL_INTS if lo <= v <= hi})
    return weighted(
        (2, st.sampled_from(specials)), (2, st.integers(max(lo, -3), min(hi, 100))), (1, st.integers(lo, hi))
    )


def huge_strings() -> st.SearchStrategy[str]:
    sizes = st.one_of(st.sampled_from(HUGE_BYTES), st.integers(4097, 100_000))
    return st.builds(lambda unit, size: unit * max(1, size // len(unit.encode())), st.sampled_from(HUGE_UNITS), sizes)


FUZZ_STRINGS = weighted(
    (5, st.sampled_from(EDGE_STRINGS)),
    (5, st.text(st.characters(codec="utf-8"), max_size=24)),  # protobuf strings are UTF-8: no lone surrogates
    (1, huge_strings()),
)
TIMESTAMPS = st.builds(
    Timestamp,
    seconds=weighted((3, st.integers(-62_135_596_800, 253_402_300_799)), (1, integers(-(2**63), INT64_MAX))),
    nanos=weighted((3, st.integers(0, 999_999_999)), (1, integers(-(2**31), 2**31 - 1))),
)
DURATIONS = st.builds(
    Duration,
    seconds=weighted((3, st.integers(0, 700_000)), (1, integers(-(2**63), INT64_MAX))),
    nanos=weighted((3, st.integers(0, 999_999_999)), (1, integers(-(2**31), 2**31 - 1))),
)
FLOATS = weighted((2, st.sampled_from(SPECIAL_FLOATS)), (1, st.floats()))


class Pools:
    """Real values seen on the wire (session keys, ids, page tokens), offered to the fuzzer."""

    LIMIT = 64

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.ids: list[str] = []
        self.tokens: list[str] = []
        self.pairs: list[tuple[str, str]] = []  # (session key, its session id when seen)

    def add(self, values: list[str], value: str) -> None:
        if value and value not in values and len(values) < self.LIMIT:
            values.append(value)

    @staticmethod
    def pick(values: list[str]) -> st.SearchStrategy[str]:
        """One of ``values`` as they are when drawn (the lists grow during the run)."""
        return st.integers(0, 2**16).map(lambda i: values[i % len(values)] if values else "")

    def harvest(self, response: Message) -> None:
        entries = []
        if "entry" in response.DESCRIPTOR.fields_by_name and response.HasField("entry"):
            entries.append(response.entry)
        entries.extend(getattr(response, "entries", ()))
        for entry in entries:
            self.add(self.keys, entry.session_key)
            self.add(self.ids, entry.session_id)
            if len(self.pairs) < self.LIMIT and entry.session_key:
                self.pairs.append((entry.session_key, entry.session_id))
        self.add(self.tokens, getattr(response, "next_page_token", ""))


class Requests:
    """Strategies of request messages, built from the descriptors with hints by field name."""

    def __init__(self, pools: Pools):
        self.pools = pools
        self.cache: dict[tuple[str, int], st.SearchStrategy[Any]] = {}
        self.sources = st.builds(
            self._source,
            platform=st.sampled_from(PLATFORMS[:6]),
            chat_id=st.sampled_from(("1001", "1002", "-100123", "42")),
            chat_type=st.sampled_from(tuple(source_pb2.ChatType.values())),
            user_id=st.one_of(st.none(), st.sampled_from(("u1", "u2")), FUZZ_STRINGS),
            chat_name=st.one_of(st.none(), FUZZ_STRINGS),
            thread_id=st.one_of(st.none(), st.sampled_from(("t1", ""))),
        )
        self.messages = st.builds(
            self._message,
            role=st.sampled_from(ROLES[:4]),
            text=st.one_of(st.none(), FUZZ_STRINGS),
            json_text=st.one_of(st.none(), st.sampled_from(JSON_TEXTS[:8])),
            message_id=st.sampled_from(("", "m1", "m2", "m3", "m4")),
            timestamp=st.one_of(st.none(), TIMESTAMPS),
        )

    @staticmethod
    def _source(**fields: Any) -> source_pb2.SessionSource:
        return source_pb2.SessionSource(**{name: value for name, value in fields.items() if value is not None})

    @staticmethod
    def _message(
        role: str, text: str | None, json_text: str | None, message_id: str, timestamp: Timestamp | None
    ) -> transcript_pb2.Message:
        message = transcript_pb2.Message(role=role, message_id=message_id)
        if json_text is not None:
            message.json = json_text
        elif text is not None:
            message.text = text
        if timestamp is not None:
            message.timestamp.CopyFrom(timestamp)
        return message

    def request(self, name: str) -> st.SearchStrategy[Message]:
        generic = self.message(METHODS[name].input_type, 0)
        pairs = self.pools.pairs
        pair = st.integers(0, 2**16).map(lambda i: pairs[i % len(pairs)] if pairs else ("", ""))
        if name == "MarkExpiryFinalized":  # a key with the id it had: the only way past ABORTED
            request = pair.map(lambda p: pb.MarkExpiryFinalizedRequest(session_key=p[0], session_id=p[1]))
            return weighted((1, request), (2, generic))
        if name == "UpdateSession":  # a known key and plausible usage (now and then int64 max, to overflow)
            counts = weighted((6, st.integers(0, 10_000)), (1, st.just(INT64_MAX)))
            usage = st.builds(
                pb.UsageDelta, input_tokens=counts, total_tokens=counts, estimated_cost_usd=st.floats(0, 1)
            )
            keys = self.pools.pick(self.pools.keys)
            request = st.builds(
                pb.UpdateSessionRequest, session_key=keys, usage=usage, cost_status=st.just("estimated")
            )
            return weighted((1, request), (2, generic))
        if name == "SwitchSession":  # a known key to a known id: the switch itself runs
            ids = self.pools.pick(self.pools.ids)
            request = st.builds(
                lambda p, sid: pb.SwitchSessionRequest(session_key=p[0], target_session_id=sid), pair, ids
            )
            return weighted((1, request), (2, generic))
        if name == "UpdateSessionMetadata":  # a known key without expected_version: the change itself runs
            values = st.builds(session_pb2.MetadataValue, text=st.sampled_from(("a", "b", "")))
            changes = st.dictionaries(st.sampled_from(("model", "owner", "n")), values, max_size=3)
            keys = self.pools.pick(self.pools.keys)
            request = st.builds(
                lambda key, change: pb.UpdateSessionMetadataRequest(session_key=key, set=change), keys, changes
            )
            return weighted((1, request), (2, generic))
        if name in ("DeleteSessions", "ArchiveSessions"):  # a known session, mostly dry: the selection runs
            request_class = getattr(pb, f"{name}Request")
            ids = self.pools.pick(self.pools.ids)
            dry = weighted((3, st.just(True)), (1, st.just(False)))
            request = st.builds(
                lambda sid, dry_run: request_class(selector=pb.SessionSelector(session_ids=[sid]), dry_run=dry_run),
                ids,
                dry,
            )
            return weighted((1, request), (2, generic))
        if name == "CompactTranscript":  # a known session, a short range, a new summary: the compaction runs
            ids = self.pools.pick(self.pools.ids)
            request = st.builds(
                lambda sid, last, n: pb.CompactTranscriptRequest(
                    session_id=sid,
                    first_position=0,
                    last_position=last,
                    summary=transcript_pb2.Message(role="user", text="summary", message_id=f"fuzz-summary-{n}"),
                ),
                ids,
                st.integers(0, 3),
                st.integers(0, 2**32),
            )
            return weighted((1, request), (2, generic))
        if name == "CheckReset":  # a plausible time and platform: the rule itself runs
            stamp = Timestamp()
            stamp.FromDatetime(NOW)
            request = st.builds(
                lambda platform: pb.CheckResetRequest(updated_at=stamp, platform=platform), st.sampled_from(PLATFORMS)
            )
            return weighted((1, request), (2, generic))
        if name in ("SearchSessions", "ListSessions"):  # a plain query or listing: the read itself runs
            request_class = getattr(pb, f"{name}Request")
            queries = st.sampled_from(("2", "c1", "title")) if name == "SearchSessions" else st.just(None)
            namespaces = st.sampled_from((None, "main", "research"))
            request = st.builds(
                lambda q, ns: request_class(**({"query": q} if q else {}), namespace=ns), queries, namespaces
            )
            return weighted((1, request), (2, generic))
        if name == "SearchMessages":  # words (the generic strings are mostly punctuation): the search runs
            words = st.lists(st.sampled_from(("message", "client", "hello", "u1", "summary*", '"a b"')), min_size=1)
            request = words.map(lambda w: pb.SearchMessagesRequest(query=" ".join(w)))
            return weighted((1, request), (2, generic))
        hinted = self._hinted(name)
        if hinted is not None:
            return weighted((1, hinted), (2, generic))
        if name in SOURCE_ONLY:  # a source alone (no random config or context): the rule itself runs
            request_class = getattr(pb, f"{name}Request")
            request = st.builds(lambda source: request_class(source=source), self.sources)
            return weighted((1, request), (2, generic))
        return generic

    def _hinted(self, name: str) -> st.SearchStrategy[Message] | None:
        """Plausible rewinds, WhatsApp ids, links, handoffs and turns on known keys and sessions: the
        call itself runs (random strings alone are refused at the edge nearly always)."""
        keys, ids = self.pools.pick(self.pools.keys), self.pools.pick(self.pools.ids)
        users = {
            "platform": st.sampled_from(PLATFORMS[:6]), "user_id": st.sampled_from(("u1", "u2")),
        }  # fmt: skip
        fences = st.builds(pb.TurnFence, session_key=keys, fencing_token=st.integers(1, 4))
        ttls = st.builds(Duration, seconds=st.integers(1, 120))
        hints: dict[str, st.SearchStrategy[Message]] = {
            "RewindTranscript": st.builds(pb.RewindTranscriptRequest, session_id=ids, turns=st.integers(1, 2)),
            "RewriteTranscript": st.builds(
                pb.RewriteTranscriptRequest, session_id=ids, messages=st.lists(self.messages, max_size=3)
            ),
            "ResolveWhatsAppIdentifier": st.builds(
                pb.ResolveWhatsAppIdentifierRequest,
                identifier=st.sampled_from(("15551234567@s.whatsapp.net", "123456789@lid", "+1 555 123")),
                normalize_only=st.booleans(),
            ),
            "LinkIdentity": st.builds(pb.LinkIdentityRequest, identity=st.sampled_from(("alice", "bob")), **users),
            "UnlinkIdentity": st.builds(pb.UnlinkIdentityRequest, **users),
            "ListIdentityLinks": st.builds(pb.ListIdentityLinksRequest, identity=st.sampled_from((None, "alice"))),
            "HandoffSession": st.builds(pb.HandoffSessionRequest, session_key=keys, target_source=self.sources),
            "BeginTurn": st.builds(
                pb.BeginTurnRequest,
                session_key=keys,
                owner=st.sampled_from(("a", "b")),
                ttl=ttls,
                on_conflict=st.sampled_from(tuple(pb.TurnConflict.values())),
            ),
            "RenewTurn": st.builds(pb.RenewTurnRequest, fence=fences, ttl=ttls),
            "EndTurn": st.builds(pb.EndTurnRequest, fence=fences),
        }
        return hints.get(name)

    def message(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
        key = (descriptor.full_name, depth)
        if key not in self.cache:
            self.cache[key] = self._message_strategy(descriptor, depth)
        return self.cache[key]

    def _message_strategy(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
        if descriptor.full_name == "google.protobuf.Timestamp":
            return TIMESTAMPS
        if descriptor.full_name == "google.protobuf.Duration":
            return DURATIONS
        generic = self._generic(descriptor, depth)
        if descriptor.full_name == "sessiond.v1.SessionSource":
            return weighted((1, self.sources), (1, generic))
        if descriptor.full_name == "sessiond.v1.Message":
            return weighted((1, self.messages), (1, generic))
        return generic

    def _generic(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
        cls = message_factory.GetMessageClass(descriptor)
        fields = [f for f in descriptor.fields if f.type != FieldDescriptor.TYPE_MESSAGE or depth < MAX_DEPTH]

        @st.composite
        def build(draw: st.DrawFn) -> Message:
            message = cls()
            for f in fields:  # a later member of a oneof replaces an earlier one, as on the wire
                values = self.field(f, depth)
                if f.type == FieldDescriptor.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
                    entry = f.message_type.fields_by_name
                    pairs = st.tuples(self.field(entry["key"], depth), self.field(entry["value"], depth))
                    for key, value in draw(st.lists(pairs, max_size=REPEATED_MAX.get(f.name, 3))):
                        getattr(message, f.name)[key].CopyFrom(value)
                elif f.is_repeated:
                    drawn = draw(st.lists(values, max_size=REPEATED_MAX.get(f.name, 3)))
                    container = getattr(message, f.name)
                    for value in drawn:
                        if f.type == FieldDescriptor.TYPE_MESSAGE:
                            container.add().CopyFrom(value)
                        else:
                            container.append(value)
                elif draw(PRESENT):
                    value = draw(values)
                    if f.type == FieldDescriptor.TYPE_MESSAGE:
                        getattr(message, f.name).CopyFrom(value)
                    else:
                        setattr(message, f.name, value)
            return message

        return build()

    def field(self, f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message(f.message_type, depth + 1)
        if f.type == FieldDescriptor.TYPE_STRING:
            return self.strings(f.name)
        if f.type == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        if f.type == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if f.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return FLOATS
        if f.type == FieldDescriptor.TYPE_ENUM:  # open enums: any int32 goes on the wire
            known = st.sampled_from([v.number for v in f.enum_type.values])
            return weighted((3, known), (1, integers(-(2**31), 2**31 - 1)))
        lo, hi = INT_RANGES[f.type]
        return integers(lo, hi)

    def strings(self, name: str) -> st.SearchStrategy[str]:
        pools = self.pools
        if name == "session_key":
            return weighted((3, pools.pick(pools.keys)), (2, FUZZ_STRINGS))
        if name in ("session_id", "target_session_id"):
            return weighted((3, pools.pick(pools.ids)), (2, FUZZ_STRINGS))
        if name == "page_token":
            return weighted(
                (2, st.just("")),
                (2, pools.pick(pools.tokens)),
                (3, st.sampled_from(TOKEN_VALUES).map(lambda v: b64(json.dumps(v)))),
                (1, st.just(b64(json.dumps([0, "\ud800"])))),  # '[0, "\\ud800"]': a lone surrogate
                (2, st.binary(max_size=48).map(b64)),
                (1, st.sampled_from(DEEP_TOKENS)),
                (2, FUZZ_STRINGS),
            )
        hints = {"platform": PLATFORMS, "role": ROLES, "owner": ("gateway-1", "gateway-2")}
        hints |= {"key": ("model", "tags", "owner", "n"), "remove": ("model", "tags")}  # metadata keys
        hints |= {"namespace": ("main", "research")}
        hints |= {"message_id": ("", "m1", "m2", "m3"), "chat_id": ("1001", "42"), "user_id": ("u1", "u2")}
        if name in hints:
            return weighted((3, st.sampled_from(hints[name])), (2, FUZZ_STRINGS))
        if name == "json" or name.endswith("_json"):
            return weighted((3, st.sampled_from(JSON_TEXTS)), (1, st.sampled_from(DEEP_JSON)), (2, FUZZ_STRINGS))
        return FUZZ_STRINGS


DEEP_JSON = ("[" * 100_000, "[" * 1000 + "]" * 1000, '{"a":' * 2000 + "1" + "}" * 2000)


# --------------------------------------------------------------------------- the daemon's state


def health(channel: grpc.Channel, timeout: float = 5) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service=SERVICE.full_name)
    return stub.Check(request, timeout=timeout).status


def assert_serving(address: str) -> None:
    """A fresh connection (new clients are accepted) gets SERVING within a deadline."""
    with grpc.insecure_channel(address) as channel:
        assert health(channel) == SERVING


def seed(stub: Any) -> tuple[list[str], list[str]]:
    """Two sessions, one with a transcript; their keys and ids."""
    sources = (
        source_pb2.SessionSource(platform="telegram", chat_id="1001", chat_name="Alice"),
        source_pb2.SessionSource(
            platform="discord", chat_id="2002", chat_type=source_pb2.CHAT_TYPE_GROUP, user_id="u1"
        ),
    )
    entries = [stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=s), timeout=10).entry for s in sources]
    messages = [
        transcript_pb2.Message(role="user", text="hello", message_id="m1"),
        transcript_pb2.Message(role="assistant", json='[{"type": "text", "text": "hi"}]', message_id="m2"),
        transcript_pb2.Message(role="tool", text="{}", tool_call_id="call_1", tool_name="f"),
    ]
    stub.AppendMessages(pb.AppendMessagesRequest(session_id=entries[0].session_id, messages=messages), timeout=10)
    return [e.session_key for e in entries], [e.session_id for e in entries]


# --------------------------------------------------------------------------- checks


def check_error(request: Message, error: grpc.RpcError) -> None:
    """No stack trace anywhere in the status; INVALID_ARGUMENT names a field of the request."""
    assert "Traceback" not in (error.details() or "")
    for _, value in error.trailing_metadata() or ():
        assert (b"Traceback" if isinstance(value, bytes) else "Traceback") not in value
    if error.code() != Code.INVALID_ARGUMENT:
        return
    status = rpc_status.from_call(error)
    assert status is not None, "INVALID_ARGUMENT without a google.rpc.Status"
    bad_request = error_details_pb2.BadRequest()
    assert status.details and status.details[0].Unpack(bad_request), "INVALID_ARGUMENT without a BadRequest"
    path = bad_request.field_violations[0].field
    assert error.details().startswith(f"{path}: ")
    root = re.split(r"[.\[]", path)[0]
    assert root in request.DESCRIPTOR.fields_by_name, f"{path!r} is not a field of {request.DESCRIPTOR.name}"


@dataclass
class Fuzzer:
    running: Running
    seeded_ids: list[str]
    pools: Pools
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    cached: Snapshot | None = None
    requests: int = 0

    def state(self) -> Snapshot:
        return snapshot(self.running.stub, *self.seeded_ids)

    def send(self, name: str, request: Message) -> None:
        stub = self.running.stub
        # The request parses: it was built by protobuf, and the daemon parses what we serialise.
        assert type(request).FromString(request.SerializeToString()) == request
        before = self.cached = self.cached or self.state()
        self.requests += 1
        try:
            response = call_once(getattr(stub, name), request)
        except grpc.RpcError as error:
            code = error.code()
            check_error(request, error)
            assert code in ALLOWED, f"{name} answered {code.name}: {error.details()!r}"
            if code == Code.DEADLINE_EXCEEDED:  # the call may have run after the client gave up
                self.cached = None
            else:
                assert self.state() == before, f"{name} answered {code.name} but changed the store"
        else:
            code = Code.OK
            self.pools.harvest(response)
            if name not in READ_ONLY:
                self.cached = None
        self.seen[(name, code.name)] += 1
        if self.requests % 250 == 0:
            assert health(self.running.channel) == SERVING


def test_fuzz_every_rpc(start_daemon: Start) -> None:
    running = start_daemon(clock=fixed_clock)
    pools = Pools()
    keys, ids = seed(running.stub)
    for key, sid in zip(keys, ids, strict=True):
        pools.add(pools.keys, key)
        pools.add(pools.ids, sid)
    fuzzer = Fuzzer(running, ids, pools)
    requests = Requests(pools)
    strategies = {name: requests.request(name) for name in METHODS}

    def fuzz_rpc(name: str) -> Callable[[], None]:
        @settings(
            max_examples=EXAMPLES_PER_ROUND,
            deadline=None,
            phases=(Phase.generate,),  # no replay, no shrinking: the daemon's state has moved on
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(salt=st.integers(0, 2**32), request=strategies[name])
        def fuzz(salt: int, request: Message) -> None:  # salt: HasAnySessionsRequest alone has one value
            fuzzer.send(name, request)

        return fuzz

    for _ in range(ROUNDS):  # rounds, so that each RPC meets the state the others left
        for name in NAMES:
            fuzz_rpc(name)()
    assert_serving(running.address)

    print(f"\nfuzz: {fuzzer.requests} requests to {len(METHODS)} RPCs")
    for name in sorted(METHODS):
        codes = ", ".join(f"{code} {n}" for (rpc, code), n in sorted(fuzzer.seen.items()) if rpc == name)
        print(f"  {name}: {codes}")
    assert fuzzer.requests >= MIN_REQUESTS
    per_rpc = Counter(name for name, _ in fuzzer.seen.elements())
    assert min(per_rpc[name] for name in METHODS) >= 20, per_rpc
    past_the_edge = {name for name, code in fuzzer.seen if code != "INVALID_ARGUMENT"}
    assert past_the_edge == set(METHODS), f"only rejected at the edge: {set(METHODS) - past_the_edge}"


# --------------------------------------------------------------------------- bytes that are not a request

UNPARSABLE = "request: not a valid sessiond.v1.{name}Request message"
CRAFTED_BYTES = (
    b"\x0a",  # a length-delimited field 1 without its length
    b"\x0a\xff\xff\xff\xff\x0f",  # a length far beyond the end
    b"\x08",  # a varint without its value
    b"\x08" + b"\xff" * 10 + b"\x01",  # a varint of 11 bytes
    b"\x0a\x04\x0a\x02\xff\xfe",  # invalid UTF-8 in a nested string (proto3: a parse error)
    b"\x0a\x02\xc3\x28",  # invalid UTF-8 in a top-level string
    b"\x7b" * 200 + b"\x7c" * 200,  # unknown groups nested 200 deep
    b"\x0b",  # a group that never ends
    b"\x0c",  # the end of a group that never started
    b"\x00\x00",  # field number 0
    b"\x0e\x01",  # wire type 6
    b"\x0f\x01",  # wire type 7
    b"\x12\x03abc" + b"\x80",  # a valid field, then a truncated tag
    b"",  # the empty message: parses (all fields unset)
    b"\x0a\x00" * 1000,  # the same message field 1000 times: parses
)


def parses(name: str, payload: bytes) -> bool:
    try:
        message_factory.GetMessageClass(METHODS[name].input_type).FromString(payload)
    except DecodeError:
        return False
    return True


def test_bytes_that_are_not_a_request(start_daemon: Start) -> None:
    """Raw bytes in place of a request message, to every RPC.

    Bytes that do not parse get INVALID_ARGUMENT naming the request type (sessiond parses requests
    itself, so grpcio never answers UNKNOWN). Bytes that happen to parse are a request like any
    other and get only the contract's statuses.
    """
    running = start_daemon(clock=fixed_clock)
    keys, ids = seed(running.stub)
    seen: Counter[str] = Counter()

    def send(name: str, payload: bytes) -> None:
        kind = running.channel.unary_stream if METHODS[name].server_streaming else running.channel.unary_unary
        call = kind(f"/{SERVICE.full_name}/{name}", request_serializer=None, response_deserializer=None)
        try:
            call_once(call, payload)
            code = Code.OK
        except grpc.RpcError as error:
            code = error.code()
            assert "Traceback" not in (error.details() or "")
            if not parses(name, payload):
                assert (code, error.details()) == (Code.INVALID_ARGUMENT, UNPARSABLE.format(name=name))
            else:
                assert code in ALLOWED, f"{name} answered {code.name} to parsable bytes: {error.details()!r}"
        seen[f"{'parsable' if parses(name, payload) else 'unparsable'} -> {code.name}"] += 1

    for name in sorted(METHODS):
        for payload in CRAFTED_BYTES:
            send(name, payload)

    @settings(max_examples=RAW_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        name=st.sampled_from(sorted(METHODS)),
        payload=st.one_of(
            st.binary(max_size=512),
            st.builds(lambda seed, size: random.Random(seed).randbytes(size), st.integers(), st.integers(0, 100_000)),
        ),
    )
    def fuzz(name: str, payload: bytes) -> None:
        send(name, payload)

    fuzz()
    assert health(running.channel) == SERVING
    assert_serving(running.address)
    assert running.stub.GetSession(pb.GetSessionRequest(session_key=keys[0]), timeout=5).entry.session_id == ids[0]
    print(f"\nraw bytes: {sum(seen.values())} requests: {dict(sorted(seen.items()))}")


def _parse(name: str, payload: bytes) -> Message:
    return message_factory.GetMessageClass(METHODS[name].input_type).FromString(payload)


# --------------------------------------------------------------------------- garbage on the socket

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GARBAGE = (
    PREFACE[:3],
    PREFACE[:16],
    PREFACE[:-1],
    PREFACE + b"\xff" * 9,  # a frame header: length 16 MiB, type 0xff
    PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",  # SETTINGS then nothing
    PREFACE + b"\x00\x00\x05\x01\x05\x00\x00\x00\x01" + b"\xff" * 5,  # HEADERS with a garbage HPACK block
    b"GET / HTTP/1.1\r\nHost: sessiond\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32,  # a TLS ClientHello
    b"\x00" * 1_000_000,
)


def unix_path(address: str) -> str:
    assert address.startswith("unix:")
    return address.removeprefix("unix:")


def still_open(raw: socket.socket) -> bool:
    """Whether the daemon kept the connection: what it sent (its SETTINGS) is there, no end of file."""
    raw.setblocking(False)
    try:
        while raw.recv(65536):
            pass
    except BlockingIOError:
        return True
    return False  # recv returned b"": closed by the daemon


def test_garbage_on_the_socket_does_not_stop_the_daemon(start_daemon: Start) -> None:
    running = start_daemon(clock=fixed_clock)
    keys, _ = seed(running.stub)
    path = unix_path(running.address)
    rng = random.Random(6)
    payloads = [*GARBAGE, *(rng.randbytes(rng.randrange(1, 70_000)) for _ in range(40))]
    for payload in payloads:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.settimeout(10)
            raw.connect(path)
            try:
                raw.sendall(payload)
            except OSError:  # the daemon may close a connection that makes no sense: that is fine
                pass
    # Left open: one connection that sent nothing at all, one that stopped inside the preface.
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    partial = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        silent.connect(path)
        partial.connect(path)
        partial.sendall(PREFACE[:10])
        assert_serving(running.address)  # a new client, while both are open and idle
        created = threading.Event()

        def other_client() -> None:
            with grpc.insecure_channel(running.address) as channel:
                stub = session_store_pb2_grpc.SessionStoreStub(channel)
                request = pb.GetOrCreateSessionRequest(source=source_pb2.SessionSource(platform="slack", chat_id="9"))
                assert stub.GetOrCreateSession(request, timeout=5).created
                created.set()

        worker = threading.Thread(target=other_client)
        worker.start()
        worker.join(timeout=10)
        assert created.is_set(), "a new client's GetOrCreateSession did not finish within its 5 s deadline"
        assert health(running.channel) == SERVING  # the first client's connection is unaffected
        assert running.stub.GetSession(pb.GetSessionRequest(session_key=keys[0]), timeout=5).entry.session_key
        assert still_open(silent) and still_open(partial)
    finally:
        silent.close()
        partial.close()
    assert_serving(running.address)
    print(f"\nsocket garbage: {len(payloads)} connections of garbage, 2 left open and idle; daemon SERVING")


# --------------------------------------------------------------------------- regressions found by the fuzzer
#
# Each reproduces one server bug the fuzzer found (now fixed) exactly.


def status(call: Callable[[], object]) -> tuple[Code, str]:
    try:
        call()
    except grpc.RpcError as error:
        assert "Traceback" not in (error.details() or "")
        return error.code(), error.details() or ""
    return Code.OK, ""


@pytest.mark.parametrize(
    "name, request_message",
    [
        ("SuspendRecentlyActive", pb.SuspendRecentlyActiveRequest(max_age_seconds=10**11)),
        ("SuspendRecentlyActive", pb.SuspendRecentlyActiveRequest(max_age_seconds=INT64_MAX)),
        ("PruneOldEntries", pb.PruneOldEntriesRequest(max_age_days=10**6)),
        ("PruneOldEntries", pb.PruneOldEntriesRequest(max_age_days=2**31 - 1)),
        ("ListSessions", pb.ListSessionsRequest(active_minutes=2**31 - 1)),
    ],
    ids=["suspend-1e11s", "suspend-int64max", "prune-1e6days", "prune-int32max", "list-int32max-minutes"],
)
def test_huge_ages_are_invalid_arguments(start_daemon: Start, name: str, request_message: Message) -> None:
    """``now - timedelta(...)`` overflows (store.py) for ages beyond year 1: the whole store, or a clear error."""
    running = start_daemon(clock=fixed_clock)
    seed(running.stub)
    before = snapshot(running.stub)
    code, details = status(lambda: getattr(running.stub, name)(request_message, timeout=5))
    assert code in (Code.OK, Code.INVALID_ARGUMENT), f"{code.name}: {details}"
    if code != Code.OK:
        assert snapshot(running.stub) == before


def test_usage_counter_overflow_is_an_invalid_argument(start_daemon: Start) -> None:
    running = start_daemon(clock=fixed_clock)
    keys, _ = seed(running.stub)
    request = pb.UpdateSessionRequest(session_key=keys[0], usage=pb.UsageDelta(input_tokens=INT64_MAX))
    assert running.stub.UpdateSession(request, timeout=5).entry.input_tokens == INT64_MAX
    before = snapshot(running.stub)
    code, details = status(lambda: running.stub.UpdateSession(request, timeout=5))
    assert code in (Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED, Code.FAILED_PRECONDITION), f"{code.name}: {details}"
    assert snapshot(running.stub) == before


@pytest.mark.parametrize(
    "name, token",
    [
        ("ListSessions", b64("[" * 100_000)),
        ("ListExpiredSessions", b64("[" * 100_000)),
        ("LoadTranscript", b64("[" * 100_000)),
        ("ListSessions", b64(json.dumps([0, "\ud800"]))),  # '[0, "\\ud800"]'
        ("ListExpiredSessions", b64(json.dumps([0, "\ud800"]))),
    ],
    ids=["deep-list", "deep-expired", "deep-load", "surrogate-list", "surrogate-expired"],
)
def test_malformed_page_tokens_are_invalid_arguments(start_daemon: Start, name: str, token: str) -> None:
    """convert._decode_token lets RecursionError through; a str with a surrogate reaches the SQL binding."""
    running = start_daemon(clock=fixed_clock)
    _, ids = seed(running.stub)
    request: Message = getattr(pb, f"{name}Request")(page_token=token)
    if name == "LoadTranscript":
        request.session_id = ids[0]
    code, details = status(lambda: getattr(running.stub, name)(request, timeout=5))
    assert code == Code.INVALID_ARGUMENT and details.startswith("page_token: "), f"{code.name}: {details}"


@pytest.mark.parametrize("name", ["AppendMessages", "RewriteTranscript"])
@pytest.mark.parametrize("json_field", ["json", "tool_calls_json"])
@pytest.mark.parametrize("text", ["[" * 1000 + "]" * 1000, "[" * 100_000], ids=["valid-depth-1000", "unclosed"])
def test_deeply_nested_json_is_an_invalid_argument(start_daemon: Start, name: str, json_field: str, text: str) -> None:
    """convert.message catches ValueError only; json.loads raises RecursionError at depth ~1000."""
    running = start_daemon(clock=fixed_clock)
    _, ids = seed(running.stub)
    before = snapshot(running.stub, *ids)
    message = transcript_pb2.Message(role="assistant", **{json_field: text})
    request = getattr(pb, f"{name}Request")(session_id=ids[0], messages=[message])
    code, details = status(lambda: getattr(running.stub, name)(request, timeout=5))
    assert code in (Code.OK, Code.INVALID_ARGUMENT), f"{code.name}: {details}"
    if code == Code.INVALID_ARGUMENT:
        assert details.startswith(f"messages[0].{json_field}: ")
        assert snapshot(running.stub, *ids) == before


@pytest.mark.parametrize(
    "name, request_message, expected",
    [
        ("GetSession", pb.GetSessionRequest(session_key="\x00" * 4096), Code.NOT_FOUND),
        ("ResetSession", pb.ResetSessionRequest(session_key="\x01" * 4096), Code.NOT_FOUND),
        (
            "BuildSessionKey",
            pb.BuildSessionKeyRequest(source=source_pb2.SessionSource(platform="\x00" * 4096)),
            Code.INVALID_ARGUMENT,
        ),
    ],
    ids=["get-unknown-key", "reset-unknown-key", "unknown-platform"],
)
def test_long_values_echoed_in_statuses_keep_the_status(
    start_daemon: Start, name: str, request_message: Message, expected: Code
) -> None:
    """A 4096-byte value (within limits.max_field_bytes) quoted with repr() in the status message:

    4 bytes per control character, percent-encoded in grpc-message, is over 16 KiB: a client with
    gRPC's default limits gets RESOURCE_EXHAUSTED "received metadata size exceeds hard limit" (and
    between 8 and 16 KiB, at random, "exceeds soft limit") instead of the status the daemon sent.
    """
    running = start_daemon(clock=fixed_clock)
    code, details = status(lambda: getattr(running.stub, name)(request_message, timeout=5))
    assert code == expected, f"{code.name}: {details[:200]}"
