"""The measured RPCs as serialized requests: the same bytes go to sessiond and to the echo server.

``prepare`` uses the typed stub once to find the ids the requests need (sessions to append to,
session keys to read, a 20- and a 200-message transcript); after that every measured call is
plain bytes. Appends carry fresh
message ids on every run, so no call is skipped as a duplicate.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from bench.populate import MESSAGE_TEXT, source
from sessiond.model import Source
from sessiond.rpc import convert
from sessiond_client.v1 import session_pb2, session_store_pb2_grpc, source_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb

METHOD = "/sessiond.v1.SessionStore/{}"
MAX_THREADS = 8  # sessions are prepared for this many threads
TRANSCRIPT_LENGTHS = (20, 200)  # a LoadTranscript scenario each
NAMES = (  # of the scenarios ``prepare`` returns, in its order (known before a daemon runs)
    "GetOrCreateSession", "GetSession", "AppendMessages x1", "AppendMessages x100",
    *(f"LoadTranscript {length}" for length in TRANSCRIPT_LENGTHS), "ListSessions page 1", "BuildSessionContext redact",
)  # fmt: skip

# Stored conversations (``populate.source``) each scenario uses: one per thread, never shared;
# the transcripts are TRANSCRIPT_BASE + their position in TRANSCRIPT_LENGTHS.
GET_OR_CREATE_BASE, APPEND_BASE, GET_SESSION_BASE, TRANSCRIPT_BASE = (n * MAX_THREADS for n in range(4))


@dataclass(frozen=True)
class Scenario:
    """One RPC under load. ``make(thread, count)`` gives that thread's requests, in order.

    ``heavy`` scenarios (a large request or response) get fewer calls per run, to keep runs short.
    """

    name: str
    method: str
    make: Callable[[int, int], list[bytes]]
    writes: bool = False
    heavy: bool = False
    messages_per_call: int = 0

    def requests(self, concurrency: int, per_thread: int) -> list[list[bytes]]:
        return [self.make(thread, per_thread) for thread in range(concurrency)]


def _source_proto(index: int) -> source_pb2.SessionSource:
    return convert.source_to_proto(Source(**source(index)))


def _messages(count: int, ids: itertools.count[int]) -> list[transcript_pb2.Message]:
    roles = ("user", "assistant")
    return [
        transcript_pb2.Message(role=roles[i % 2], text=MESSAGE_TEXT, message_id=f"b{next(ids)}") for i in range(count)
    ]


def get_or_create_request(index: int) -> bytes:
    """GetOrCreateSession of the stored conversation ``populate.source(index)``."""
    return pb.GetOrCreateSessionRequest(source=_source_proto(index)).SerializeToString()


def stored_entry(channel: grpc.Channel, index: int) -> session_pb2.SessionEntry:
    """The current entry of ``populate.source(index)``; an error when it was not stored."""
    method = channel.unary_unary(
        METHOD.format("GetOrCreateSession"), response_deserializer=pb.GetOrCreateSessionResponse.FromString
    )
    response = method(get_or_create_request(index), timeout=30)
    if response.created:
        raise RuntimeError(f"source {index} was not stored: populate the database first")
    return response.entry


def stored_session_id(channel: grpc.Channel, index: int) -> str:
    """The session id of ``populate.source(index)``; an error when it was not stored."""
    return str(stored_entry(channel, index).session_id)


def prepare(target: str) -> list[Scenario]:
    """The scenarios against the daemon at ``target``, whose database holds ``source(0..)``."""
    ids = itertools.count()
    with grpc.insecure_channel(target) as channel:
        stub = session_store_pb2_grpc.SessionStoreStub(channel)
        append_to = [stored_session_id(channel, APPEND_BASE + thread) for thread in range(MAX_THREADS)]
        session_keys = [
            str(stored_entry(channel, GET_SESSION_BASE + thread).session_key) for thread in range(MAX_THREADS)
        ]
        transcripts = [stored_session_id(channel, TRANSCRIPT_BASE + n) for n in range(len(TRANSCRIPT_LENGTHS))]
        for transcript, length in zip(transcripts, TRANSCRIPT_LENGTHS, strict=True):
            for batch in range(0, length, 100):
                messages = _messages(min(100, length - batch), ids)
                stub.AppendMessages(pb.AppendMessagesRequest(session_id=transcript, messages=messages))

    def constant(request: bytes) -> Callable[[int, int], list[bytes]]:
        return lambda thread, count: [request] * count

    def appends(size: int) -> Callable[[int, int], list[bytes]]:
        def make(thread: int, count: int) -> list[bytes]:
            request = pb.AppendMessagesRequest
            return [
                request(session_id=append_to[thread], messages=_messages(size, ids)).SerializeToString()
                for _ in range(count)
            ]

        return make

    def get_or_create(thread: int, count: int) -> list[bytes]:
        return [get_or_create_request(GET_OR_CREATE_BASE + thread)] * count

    def get_session(thread: int, count: int) -> list[bytes]:
        return [pb.GetSessionRequest(session_key=session_keys[thread]).SerializeToString()] * count

    loads = [pb.LoadTranscriptRequest(session_id=transcript).SerializeToString() for transcript in transcripts]
    group = source_pb2.SessionSource(
        platform="telegram", chat_id="-100123456", chat_type=source_pb2.CHAT_TYPE_GROUP, chat_name="Team chat",
        user_id="4242", user_name="Ada", thread_id="17",
    )  # fmt: skip
    context = pb.BuildSessionContextRequest(source=group, redact_pii=True).SerializeToString()
    rpc = METHOD.format
    prepared = [
        Scenario("GetOrCreateSession", rpc("GetOrCreateSession"), get_or_create, writes=True),
        Scenario("GetSession", rpc("GetSession"), get_session),
        Scenario("AppendMessages x1", rpc("AppendMessages"), appends(1), writes=True, messages_per_call=1),
        Scenario(
            "AppendMessages x100", rpc("AppendMessages"), appends(100), writes=True, heavy=True, messages_per_call=100
        ),
        *(
            Scenario(f"LoadTranscript {length}", rpc("LoadTranscript"), constant(request), heavy=length > 100)
            for length, request in zip(TRANSCRIPT_LENGTHS, loads, strict=True)
        ),
        Scenario("ListSessions page 1", rpc("ListSessions"), constant(b""), heavy=True),
        Scenario("BuildSessionContext redact", rpc("BuildSessionContext"), constant(context)),
    ]
    if tuple(scenario.name for scenario in prepared) != NAMES:
        raise RuntimeError("scenarios.NAMES is out of date")
    return prepared


def slug(name: str) -> str:
    """A scenario's name as a file name and a command-line word: "AppendMessages x1" -> "appendmessages-x1"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
