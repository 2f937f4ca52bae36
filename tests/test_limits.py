"""Limits (issue 6, "Limits"): each configured bound is enforced with a clear status and a rejected
request writes nothing; slow or stalled clients do not block others; deadlines are honoured.

Every test runs a real daemon on a temp Unix socket (``start_daemon``) with small limits, and
compares what a client can see of the store (every entry, the raw transcripts, HasAnySessions)
before and after each rejected request. Stalled clients are raw HTTP/2 connections on the
daemon's socket that do exactly what a test says and nothing more. Nothing sleeps: waits are
deadlines, events and socket reads.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import apsw
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helpers.daemons import JsonLines, Running
from helpers.wire import load_transcript, snapshot, violated_field
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import session_store_pb2_grpc, source_pb2, transcript_pb2

Start = Callable[..., Running]
Code = grpc.StatusCode
NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
SERVICE = pb.DESCRIPTOR.services_by_name["SessionStore"].full_name


def fixed_clock() -> datetime:
    return NOW


# --------------------------------------------------------------------------- helpers


def source(chat_id: str = "1001", **fields: Any) -> source_pb2.SessionSource:
    return source_pb2.SessionSource(platform="telegram", chat_id=chat_id, **fields)


def msg(text: str, role: str = "user", **fields: Any) -> transcript_pb2.Message:
    return transcript_pb2.Message(role=role, text=text, **fields)


def seed(stub: Any) -> tuple[str, str]:
    """A session with a one-message transcript: its key and id."""
    entry = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source()), timeout=5).entry
    stub.AppendMessages(pb.AppendMessagesRequest(session_id=entry.session_id, messages=[msg("before")]), timeout=5)
    return entry.session_key, entry.session_id


def append(stub: Any, session_id: str, *messages: transcript_pb2.Message) -> pb.AppendMessagesResponse:
    return stub.AppendMessages(pb.AppendMessagesRequest(session_id=session_id, messages=messages), timeout=5)


def rewrite(stub: Any, session_id: str, *messages: transcript_pb2.Message) -> pb.RewriteTranscriptResponse:
    return stub.RewriteTranscript(pb.RewriteTranscriptRequest(session_id=session_id, messages=messages), timeout=5)


def rejection(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert "Traceback" not in (raised.value.details() or "")
    return raised.value


def serving(address: str, timeout: float = 5) -> bool:
    with grpc.insecure_channel(address) as channel:
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        status = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout).status
        return status == health_pb2.HealthCheckResponse.SERVING


def message_of_size(size: int, unit: str = "x") -> transcript_pb2.Message:
    """A user message whose wire size (``Message.ByteSize()``, what the limit counts) is ``size``."""
    for count in range(size // len(unit.encode()), -1, -1):
        message = msg(unit * count)
        if message.ByteSize() == size:
            return message
        if message.ByteSize() < size:
            break
    raise AssertionError(f"no message of exactly {size} bytes with {unit!r}")


# --------------------------------------------------------------------------- limits.max_message_bytes


@pytest.mark.parametrize("rpc", ["AppendMessages", "RewriteTranscript"])
def test_message_over_max_message_bytes_is_invalid_argument_naming_it(start_daemon: Start, rpc: str) -> None:
    limit = 1024
    stub = start_daemon({"limits": {"max_message_bytes": limit}}, clock=fixed_clock).stub
    _, sid = seed(stub)
    before = snapshot(stub, sid)
    over = message_of_size(limit + 1)
    request = getattr(pb, f"{rpc}Request")(session_id=sid, messages=[msg("fine"), over, msg("after")])
    error = rejection(lambda: getattr(stub, rpc)(request, timeout=5))
    assert violated_field(error) == "messages[1]"
    assert f"{limit + 1} bytes, more than the limit of {limit}" in error.details()
    assert snapshot(stub, sid) == before  # not even messages[0]

    multibyte = message_of_size(limit + 1, "é")  # bytes are counted, not characters
    assert len(multibyte.text) < limit
    request = getattr(pb, f"{rpc}Request")(session_id=sid, messages=[multibyte])
    assert violated_field(rejection(lambda: getattr(stub, rpc)(request, timeout=5))) == "messages[0]"
    assert snapshot(stub, sid) == before

    at_limit = message_of_size(limit)
    request = getattr(pb, f"{rpc}Request")(session_id=sid, messages=[at_limit])
    getattr(stub, rpc)(request, timeout=5)  # exactly the limit is accepted
    assert load_transcript(stub, sid, raw=True)[-1].text == at_limit.text


# --------------------------------------------------------------------------- limits.max_transcript_messages


def test_append_beyond_max_transcript_messages_is_resource_exhausted(start_daemon: Start) -> None:
    stub = start_daemon({"limits": {"max_transcript_messages": 5}}, clock=fixed_clock).stub
    _, sid = seed(stub)  # 1 message
    assert append(stub, sid, msg("1", message_id="m1"), msg("2", message_id="m2")).message_count == 3
    before = snapshot(stub, sid)

    error = rejection(lambda: append(stub, sid, msg("3"), msg("4"), msg("5")))
    assert error.code() == Code.RESOURCE_EXHAUSTED
    assert error.details() == "session_id: the transcript would exceed 5 messages"
    assert snapshot(stub, sid) == before  # none of the three

    assert append(stub, sid, msg("3", message_id="m3"), msg("4", message_id="m4")).message_count == 5  # exactly
    full = snapshot(stub, sid)
    assert rejection(lambda: append(stub, sid, msg("5"))).code() == Code.RESOURCE_EXHAUSTED
    assert snapshot(stub, sid) == full
    retry = append(stub, sid, msg("3", message_id="m3"), msg("4", message_id="m4"))  # a retry stores nothing new
    assert (retry.appended, retry.duplicates, retry.message_count) == (0, 2, 5)
    error = rejection(lambda: append(stub, sid, msg("4", message_id="m4"), msg("new", message_id="m5")))
    assert error.code() == Code.RESOURCE_EXHAUSTED
    assert snapshot(stub, sid) == full

    # A rewrite longer than the limit is refused too (as INVALID_ARGUMENT naming "messages"), writing nothing.
    assert violated_field(rejection(lambda: rewrite(stub, sid, *[msg(str(i)) for i in range(6)]))) == "messages"
    assert snapshot(stub, sid) == full
    assert rewrite(stub, sid, *[msg(str(i)) for i in range(5)]).message_count == 5


# --------------------------------------------------------------------------- limits.max_batch


def test_batch_over_max_batch_is_invalid_argument(start_daemon: Start) -> None:
    stub = start_daemon({"limits": {"max_batch": 3}}, clock=fixed_clock).stub
    _, sid = seed(stub)
    before = snapshot(stub, sid)
    error = rejection(lambda: append(stub, sid, *[msg(str(i)) for i in range(4)]))
    assert violated_field(error) == "messages"
    assert error.details() == "messages: 4 messages, more than the limit of 3"
    assert snapshot(stub, sid) == before
    assert append(stub, sid, *[msg(str(i)) for i in range(3)]).message_count == 4


# --------------------------------------------------------------------------- limits.max_request_bytes


def test_request_over_max_request_bytes_is_resource_exhausted_from_grpc(start_daemon: Start) -> None:
    limit = 64 * 1024
    running = start_daemon({"limits": {"max_request_bytes": limit}}, clock=fixed_clock)
    stub = running.stub
    _, sid = seed(stub)
    before = snapshot(stub, sid)

    big = pb.AppendMessagesRequest(session_id=sid, messages=[msg("x" * 70_000)])
    error = rejection(lambda: stub.AppendMessages(big, timeout=5))
    assert error.code() == Code.RESOURCE_EXHAUSTED
    assert f"vs. {limit}" in error.details(), error.details()  # grpc's "Received message larger than max (n vs. m)"
    new_key = pb.GetOrCreateSessionRequest(source=source("2002", chat_name="n" * 70_000))
    assert rejection(lambda: stub.GetOrCreateSession(new_key, timeout=5)).code() == Code.RESOURCE_EXHAUSTED
    assert snapshot(stub, sid) == before  # no message, no new session

    assert serving(running.address)
    assert append(stub, sid, msg("x" * 60_000)).appended == 1  # under the limit


# --------------------------------------------------------------------------- limits.max_field_bytes

FIELD_LIMIT = 64
KEY, SID = "<key>", "<sid>"  # replaced by the seeded session's key and id
TTL = Duration(seconds=60)
FIELD_CASES = [
    ("GetSession", "session_key", {}),
    ("UpdateSession", "session_key", {}),
    ("SuspendSession", "session_key", {}),
    ("MarkResumePending", "session_key", {}),
    ("ClearResumePending", "session_key", {}),
    ("ResetSession", "session_key", {}),
    ("SwitchSession", "session_key", {"target_session_id": SID}),
    ("SwitchSession", "target_session_id", {"session_key": KEY}),
    ("MarkExpiryFinalized", "session_key", {"session_id": SID}),
    ("MarkExpiryFinalized", "session_id", {"session_key": KEY}),
    ("AcquireLease", "session_key", {"owner": "gateway", "ttl": TTL}),
    ("AcquireLease", "owner", {"session_key": KEY, "ttl": TTL}),
    ("ReleaseLease", "session_key", {"owner": "gateway"}),
    ("ReleaseLease", "owner", {"session_key": KEY}),
    ("AppendMessages", "session_id", {"messages": [msg("hi")]}),
    ("RewriteTranscript", "session_id", {"messages": [msg("hi")]}),
    ("LoadTranscript", "session_id", {}),
]


@pytest.mark.parametrize("rpc, name, fields", FIELD_CASES, ids=[f"{rpc}.{name}" for rpc, name, _ in FIELD_CASES])
def test_field_over_max_field_bytes_is_invalid_argument_naming_it(
    start_daemon: Start, rpc: str, name: str, fields: dict[str, Any]
) -> None:
    stub = start_daemon({"limits": {"max_field_bytes": FIELD_LIMIT}}, clock=fixed_clock).stub
    key, sid = seed(stub)
    assert len(key.encode()) <= FIELD_LIMIT and len(sid) <= FIELD_LIMIT
    real = {field: {KEY: key, SID: sid}.get(value, value) for field, value in fields.items() if isinstance(value, str)}

    def request(value: str) -> Message:
        message: Message = getattr(pb, f"{rpc}Request")(**{**fields, **real, name: value})
        return message

    before = snapshot(stub, sid)
    for value in ("k" * (FIELD_LIMIT + 1), "é" * (FIELD_LIMIT // 2 + 1)):  # 65 bytes; 66 bytes in 33 characters
        error = rejection(lambda v=value: getattr(stub, rpc)(request(v), timeout=5))
        assert violated_field(error) == name
        assert error.details() == f"{name}: longer than {FIELD_LIMIT} bytes"
        assert snapshot(stub, sid) == before
    for value in ("k" * FIELD_LIMIT, "é" * (FIELD_LIMIT // 2)):  # exactly the limit passes the check
        try:
            getattr(stub, rpc)(request(value), timeout=5)
        except grpc.RpcError as error:
            assert error.code() != Code.INVALID_ARGUMENT, error.details()


@pytest.mark.parametrize("rpc", ["GetOrCreateSession", "BuildSessionKey", "BuildSessionContext"])
@pytest.mark.parametrize("name", ["chat_id", "user_id", "chat_name", "thread_id"])
def test_source_field_over_max_field_bytes_is_invalid_argument(start_daemon: Start, rpc: str, name: str) -> None:
    stub = start_daemon({"limits": {"max_field_bytes": FIELD_LIMIT}}, clock=fixed_clock).stub
    _, sid = seed(stub)
    before = snapshot(stub, sid)
    fields = {"chat_id": "2002", name: "v" * (FIELD_LIMIT + 1)}
    request = getattr(pb, f"{rpc}Request")(source=source_pb2.SessionSource(platform="telegram", **fields))
    error = rejection(lambda: getattr(stub, rpc)(request, timeout=5))
    assert violated_field(error) == f"source.{name}"
    assert snapshot(stub, sid) == before  # GetOrCreateSession created nothing


# --------------------------------------------------------------------------- deadlines


WRITES: list[tuple[str, Callable[[str, str], Message]]] = [
    ("GetOrCreateSession", lambda key, sid: pb.GetOrCreateSessionRequest(source=source("new-chat"))),
    ("AppendMessages", lambda key, sid: pb.AppendMessagesRequest(session_id=sid, messages=[msg("late")])),
    ("UpdateSession", lambda key, sid: pb.UpdateSessionRequest(session_key=key, usage=pb.UsageDelta(total_tokens=5))),
    ("ResetSession", lambda key, sid: pb.ResetSessionRequest(session_key=key)),
    ("RewriteTranscript", lambda key, sid: pb.RewriteTranscriptRequest(session_id=sid)),
]


@pytest.mark.parametrize("rpc, build", WRITES, ids=[rpc for rpc, _ in WRITES])
def test_a_write_whose_deadline_passed_before_it_ran_writes_nothing(
    start_daemon: Start, rpc_log: JsonLines, rpc: str, build: Callable[[str, str], Message]
) -> None:
    """The database is held by another connection (``BEGIN IMMEDIATE``) until the caller's deadline
    has passed; then the write gets its turn, finds its deadline gone, and does nothing.

    The daemon's own log line (method, DEADLINE_EXCEEDED) shows the call reached the daemon and was
    answered there, not only given up by the client.
    """
    running = start_daemon(clock=fixed_clock)
    stub = running.stub
    key, sid = seed(stub)
    before = snapshot(stub, sid)
    blocker = apsw.Connection(str(running.daemon.storage.path))
    try:
        blocker.execute("BEGIN IMMEDIATE")
        error = rejection(lambda: getattr(stub, rpc)(build(key, sid), timeout=1.0))
        assert error.code() == Code.DEADLINE_EXCEEDED
        blocker.execute("ROLLBACK")
        rpc_log.answered(rpc, "DEADLINE_EXCEEDED", ("rpc", "abandoned rpc finished"))  # the daemon answered it
    finally:
        blocker.close()
    assert snapshot(stub, sid) == before
    getattr(stub, rpc)(build(key, sid), timeout=5)  # the same call in time is done
    assert snapshot(stub, sid) != before


# --------------------------------------------------------------------------- slow and stalled clients

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING = 0x0, 0x1, 0x4, 0x6
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
Frame = tuple[int, int, int, bytes]  # type, flags, stream id, payload


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _hpack_int(value: int, prefix_bits: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out, value = [limit], value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


def _hpack_literal(name: str, value: str) -> bytes:
    """A header as "literal without indexing, new name", no Huffman coding (RFC 7541 6.2.2)."""
    raw_name, raw_value = name.encode(), value.encode()
    return b"\x00" + _hpack_int(len(raw_name), 7) + raw_name + _hpack_int(len(raw_value), 7) + raw_value


def grpc_headers(method: str) -> bytes:
    pairs = (
        (":method", "POST"),
        (":scheme", "http"),
        (":path", f"/{SERVICE}/{method}"),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    )
    return b"".join(_hpack_literal(name, value) for name, value in pairs)


class RawHttp2:
    """An HTTP/2 connection to the daemon that says only what a test tells it to.

    It completes the connection preface and acknowledges the daemon's SETTINGS, as any client
    does, and never sends a WINDOW_UPDATE: the daemon may send it at most the initial 65,535
    bytes of flow-control window, whatever it has to say.
    """

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)  # a bound on every read below, not a pause
        self.sock.connect(address.removeprefix("unix:"))
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.received: list[Frame] = []
        self.unsent: dict[int, bytes] = {}
        self.read_until(lambda f: f[0] == SETTINGS and not f[1] & ACK)
        self.sock.sendall(frame(SETTINGS, ACK, 0))

    def _read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError("the daemon closed the connection")
            data += chunk
        return data

    def read_until(self, done: Callable[[Frame], bool]) -> Frame:
        while True:
            head = self._read_exactly(9)
            payload = self._read_exactly(int.from_bytes(head[:3], "big"))
            received = (head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, payload)
            self.received.append(received)
            if done(received):
                return received

    def call(self, stream: int, method: str, request: bytes, send: int | None = None) -> None:
        """Start a call; ``send``: stop after that many bytes of the gRPC message (never end the stream)."""
        body = b"\x00" + len(request).to_bytes(4, "big") + request
        self.sock.sendall(frame(HEADERS, END_HEADERS, stream, grpc_headers(method)))
        if send is None:
            self.sock.sendall(frame(DATA, END_STREAM, stream, body))
        else:
            self.sock.sendall(frame(DATA, 0, stream, body[:send]))
            self.unsent[stream] = body[send:]

    def finish(self, stream: int) -> None:
        """Send the rest of a call started with ``send``, and end the stream."""
        self.sock.sendall(frame(DATA, END_STREAM, stream, self.unsent.pop(stream)))

    def sync(self) -> None:
        """Read everything the daemon sent so far: up to the answer to a PING sent now."""
        self.sock.sendall(frame(PING, 0, 0, b"sessiond"))
        self.read_until(lambda f: f[0] == PING and f[1] & ACK and f[3] == b"sessiond")

    def data_bytes(self, stream: int) -> int:
        return sum(len(f[3]) for f in self.received if f[0] == DATA and f[2] == stream)

    def ended(self, stream: int) -> bool:
        return any(f[2] == stream and f[1] & END_STREAM for f in self.received if f[0] in (DATA, HEADERS))

    def close(self) -> None:
        self.sock.close()


def other_client_succeeds(address: str) -> float:
    """A new client's GetOrCreateSession with a 5 s deadline; the seconds it took."""
    with grpc.insecure_channel(address) as channel:
        stub = session_store_pb2_grpc.SessionStoreStub(channel)
        started = datetime.now(UTC)
        request = pb.GetOrCreateSessionRequest(source=source("other-client"))
        assert stub.GetOrCreateSession(request, timeout=5).entry.session_id
        return (datetime.now(UTC) - started).total_seconds()


WORKERS = 4
STALLED = 20


@pytest.fixture
def few_workers(start_daemon: Start) -> Running:
    """A daemon with 4 RPC worker threads, so that starving them takes only a few stalled calls."""
    return start_daemon({"server": {"max_workers": WORKERS}}, clock=fixed_clock)


def test_connections_stalled_after_the_preface_do_not_block_others(few_workers: Running) -> None:
    """20 connections that complete the HTTP/2 preface and SETTINGS exchange and then say nothing:
    another client's GetOrCreateSession still succeeds within its 5 s deadline. Proves: an idle
    connection holds no RPC worker (there are only 4) and does not stop the daemon accepting."""
    stalled = [RawHttp2(few_workers.address) for _ in range(STALLED)]
    try:
        took = other_client_succeeds(few_workers.address)
        for raw in stalled:
            raw.sync()  # each is still open and answered by the daemon
    finally:
        for raw in stalled:
            raw.close()
    print(f"\nstalled after preface: {STALLED} connections, 4 workers; another client answered in {took:.3f} s")


def test_stalled_readers_of_large_transcripts_do_not_block_others(few_workers: Running) -> None:
    """20 connections each ask for a 1 MiB transcript page and never grant flow-control window.

    Each LoadTranscript handler has run (its response HEADERS arrived) and its response is stuck in
    the daemon's transport: at most 65,535 bytes of it can be sent. While all 20 are stuck, with
    only 4 RPC workers, another client's GetOrCreateSession succeeds within its 5 s deadline; after
    it, none of the 20 responses has been completed. Proves: a response the client does not read
    holds no worker thread (and no database lock) once the handler returned.
    """
    stub = few_workers.stub
    _, sid = seed(stub)
    append(stub, sid, *[msg("t" * 65_536, message_id=f"big{i}") for i in range(16)])
    request = pb.LoadTranscriptRequest(session_id=sid, raw=True)
    size = stub.LoadTranscript(request, timeout=10).ByteSize()
    assert size > 1_000_000 and not stub.LoadTranscript(request, timeout=10).next_page_token  # one page
    readers = [RawHttp2(few_workers.address) for _ in range(STALLED)]
    try:
        for reader in readers:
            reader.call(1, "LoadTranscript", request.SerializeToString())
        for reader in readers:
            reader.read_until(lambda f: f[0] == HEADERS and f[2] == 1)  # the handler answered
        took = other_client_succeeds(few_workers.address)
        for reader in readers:
            reader.sync()
            assert not reader.ended(1), "a response completed without window: the stall was not real"
            assert reader.data_bytes(1) <= 65_535 < size
    finally:
        for reader in readers:
            reader.close()
    print(f"\nstalled readers: {STALLED} x {size:,}-byte LoadTranscript responses stuck behind flow control,")
    print(f"  4 workers; another client's GetOrCreateSession answered in {took:.3f} s")


def test_stalled_senders_do_not_block_others(few_workers: Running) -> None:
    """20 connections each start a GetOrCreateSession and send only the first half of the request
    message, without a deadline (5 times the 4 RPC workers). Another client's GetOrCreateSession
    still succeeds within its 5 s deadline; then each stalled caller sends the rest and gets its
    answer. Proves: a request still arriving holds no worker thread (the event loop receives it),
    and a slow sender is served, not dropped.
    """
    body = pb.GetOrCreateSessionRequest(source=source("slow-sender")).SerializeToString()
    senders = [RawHttp2(few_workers.address) for _ in range(STALLED)]
    try:
        for sender in senders:
            sender.call(1, "GetOrCreateSession", body, send=5 + len(body) // 2)
            sender.sync()
        took = other_client_succeeds(few_workers.address)
        for sender in senders:
            sender.finish(1)
            sender.read_until(lambda f: f[2] == 1 and f[0] == HEADERS and f[1] & END_STREAM)
            assert sender.data_bytes(1) > 0, "the stalled call ended without an answer"
    finally:
        for sender in senders:
            sender.close()
    print(f"\nstalled senders: {STALLED} half-sent requests, 4 workers; another client answered in {took:.3f} s;")
    print(f"  then all {STALLED} finished sending and were answered")
