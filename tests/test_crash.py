"""kill -9 harness: nothing acknowledged is lost, nothing is half-written, the database stays sound.

The daemon runs as its own process (``python -m sessiond.cli serve``) on one database for the
whole run. Each round, 8 client threads (each with its own channel and its own two session keys)
do a seeded random mix of GetOrCreateSession (some ``force_new``), AppendMessages (batches of
1-5 messages with message ids), ResetSession, SwitchSession (to an id seen before for that key)
and UpdateSession (usage deltas), recording every acknowledged answer. The round's kill point,
a number of acknowledged operations, is drawn from a seeded ``random.Random`` (the seed is
printed; ``SESSIOND_CRASH_SEED`` replays the draws); the client thread whose acknowledgement
reaches it sends SIGKILL at once, while the other threads' calls are in flight. Every client
stops at its first failed call and remembers it: a failed batch is re-sent after the restart
(a client's retry), a failed key mutation is resolved by looking.

After each restart (readiness: channel_ready_future, then the health service's Watch and
Check saying SERVING; no sleeps) everything is checked:

- every acknowledged message is stored exactly once, in the session it was sent to
  (LoadTranscript raw=True, by message id), no message id is stored twice, positions have no
  holes, and nothing is stored that no client sent;
- every failed batch is stored completely or not at all (one RPC, one transaction), and its
  retry answers accordingly (all duplicates, or all appended);
- each key holds the state of its last acknowledged mutation (session id, version, tokens),
  or, when a mutation on it was in flight at the kill, that mutation's result (a reset's or a
  forced get's session id never seen before); acknowledged usage deltas are all counted in the
  totals of a session not reset since;
- no key maps to two live sessions: GetSession answers one entry, the key appears once in
  ListSessions with the same session id, and in the file the sessions not ended are exactly the
  entries' current ones; every session's message_count matches its stored messages;
- the event log agrees (each event is written in its change's transaction): every session has
  the event that created it, no event names a session that does not exist, each key's latest
  session-changing event names its current session, and the sequences have no gap.

At the end the daemon is stopped with SIGTERM (exit 0) and ``PRAGMA integrity_check`` on the
file says "ok". ``SESSIOND_CRASH_ROUNDS`` raises the number of rounds (default 20).

A SIGKILL during the daemon's WAL checkpoint once left a file shorter than its header says
(page 1 written, the extending pages still only in the WAL), which the daemon refused as
truncated; ``test_restart_after_a_kill_during_a_checkpoint`` reproduces that case exactly.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw
import grpc
import pytest

from helpers.process import (
    CHANNEL_OPTIONS,
    DEADLINE,
    START_TIMEOUT,
    Daemon,
    channel_to,
    file_problems,
    integrity,
    kill,
    load_transcript,
    start,
    stop,
    stored_messages,
    write_config,
)
from sessiond_client.v1 import session_pb2, source_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub

REWOUND, ARCHIVED = transcript_pb2.MESSAGE_VISIBILITY_REWOUND, transcript_pb2.MESSAGE_VISIBILITY_ARCHIVED
ROUNDS = int(os.environ.get("SESSIOND_CRASH_ROUNDS", "20"))
CLIENTS = 8
KEYS_PER_CLIENT = 2
KILL_AFTER = (1, 240)  # acknowledged operations per round before SIGKILL, drawn uniformly
MAX_OPERATIONS = 20_000  # per client and round: a guard, never reached when the kill comes
# Operation mix of the clients (weights); an append goes to the key's current session.
MIX = {
    "append": 50,
    "update": 14,
    "get": 10,
    "force": 4,
    "reset": 7,
    "switch": 15,
    "title": 6,
    "rewind": 4,
    "compact": 3,
    "metadata": 4,
}


# -- the database file ----------------------------------------------------------------------------


def cut_checkpoint(db: Path) -> tuple[int, int]:
    """Leave ``db`` as a SIGKILL during a checkpoint of its WAL does; (file size, size its header says).

    A checkpoint copies the latest committed version of each page in the WAL to the main file in
    ascending page order (page 1, holding the page count, first), then sets the file's size. It
    is cut here after the pages that lie inside the file, before those that extend it.
    """
    wal = Path(f"{db}-wal").read_bytes()
    page_size, salts = int.from_bytes(wal[8:12], "big"), wal[16:24]
    frame, pages, committed = 24 + page_size, {}, {}
    for offset in range(32, len(wal) - frame + 1, frame):
        if wal[offset + 8 : offset + 16] != salts:
            break  # a frame of an earlier generation of the WAL
        pages[int.from_bytes(wal[offset : offset + 4], "big")] = wal[offset + 24 : offset + frame]
        if int.from_bytes(wal[offset + 4 : offset + 8], "big"):  # a commit frame
            committed = dict(pages)
    size = db.stat().st_size
    with open(db, "r+b") as file:
        for number in sorted(committed):
            if number * page_size > size:
                break
            file.seek((number - 1) * page_size)
            file.write(committed[number])
    header = db.read_bytes()[:100]
    return db.stat().st_size, int.from_bytes(header[28:32], "big") * page_size


def list_entries(stub: SessionStoreStub) -> list[session_pb2.SessionEntry]:
    entries: list[session_pb2.SessionEntry] = []
    request = pb.ListSessionsRequest(page_size=1000)
    while True:
        response = stub.ListSessions(request, timeout=DEADLINE)
        entries.extend(response.entries)
        if not response.next_page_token:
            return entries
        request.page_token = response.next_page_token


# -- what the clients were told --------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """What a key holds: its session id, entry version, and token totals (input, output, total)."""

    session_id: str
    version: int
    tokens: tuple[int, int, int]


NEW = "<a session id never seen before>"
ZERO = (0, 0, 0)


def state_of(entry: session_pb2.SessionEntry) -> State:
    return State(entry.session_id, entry.version, (entry.input_tokens, entry.output_tokens, entry.total_tokens))


@dataclass
class Key:
    source: source_pb2.SessionSource
    name: str = ""  # the session key (BuildSessionKey)
    last: State | None = None  # after the last acknowledged mutation; None: never created
    sessions: list[str] = field(default_factory=list)  # every session id seen for this key
    acked_tokens: int = 0  # acknowledged total_tokens deltas since the key's session last changed


@dataclass
class InFlight:
    """A key mutation whose call failed at the kill: it happened or it did not."""

    kind: str  # get | force | reset | switch | update | metadata
    key: Key
    target: str = ""  # switch
    delta: tuple[int, int, int] = ZERO  # update

    def outcomes(self) -> list[State | None]:
        """Every state the key may hold now: the acknowledged one, or this call's result."""
        last = self.key.last
        if last is None:  # the key's first GetOrCreateSession
            return [None, State(NEW, 1, ZERO)]
        if self.kind == "switch" and self.target == last.session_id:
            return [last]  # a switch to where the key is changes nothing
        (given, taken, total), (d_given, d_taken, d_total) = last.tokens, self.delta
        after = {
            "get": State(last.session_id, last.version + 1, last.tokens),
            "force": State(NEW, last.version + 1, ZERO),
            "reset": State(NEW, last.version + 1, ZERO),
            "switch": State(self.target, last.version + 1, ZERO),
            "update": State(last.session_id, last.version + 1, (given + d_given, taken + d_taken, total + d_total)),
            "metadata": State(last.session_id, last.version + 1, last.tokens),
        }[self.kind]
        return [last, after]

    def result(self) -> State:
        """What the call does when it goes through."""
        outcome = self.outcomes()[-1]
        assert outcome is not None
        return outcome


@dataclass
class Client:
    number: int
    keys: list[Key]
    sent: int = 0  # messages made so far, all rounds (message ids are c<number>-m<n>)
    in_flight: InFlight | None = None
    failed: tuple[str, list[transcript_pb2.Message]] | None = None  # a batch whose call failed
    failed_stored: bool = False  # what the check after the restart found for it
    titles: int = 0  # titles made so far, all rounds (c<number>-t<n>: unique among clients)
    title_failed: tuple[str, str] | None = None  # (session id, title) of a SetSessionTitle the kill failed
    summaries: int = 0  # compaction summaries made so far, all rounds (message ids c<number>-s<n>)
    hiding_failed: str | None = None  # the session of a rewind or compaction the kill failed
    summary_failed: tuple[str, transcript_pb2.Message] | None = None  # ... and that compaction's summary
    stamps: int = 0  # metadata values set so far, all rounds (each set is a change)
    stamp_failed: tuple[str, int] | None = None  # (session id, value) of an UpdateSessionMetadata the kill failed


@dataclass
class Ledger:
    """Everything acknowledged, shared by the client threads (under ``lock``)."""

    acked: dict[str, tuple[str, str]] = field(default_factory=dict)  # message id -> (session id, text)
    titles: dict[str, str] = field(default_factory=dict)  # session id -> its acknowledged title
    stamps: dict[str, int] = field(default_factory=dict)  # session id -> its acknowledged metadata "stamp"
    # (session id, "rewound" or "archived", the rewind's or compaction's number) -> messages it hid
    hidden: dict[tuple[str, int, int], int] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)  # every session id seen
    writes: Counter[str] = field(default_factory=Counter)  # acknowledged writes by kind, all rounds
    messages: int = 0  # in acknowledged appends, all rounds (retries not counted)
    operations: int = 0  # acknowledged this round
    kill_after: int = 0
    at_kill: Counter[str] = field(default_factory=Counter)  # status codes of calls failed by the kill
    problems: list[str] = field(default_factory=list)  # acknowledged answers that contradict the ledger
    unexpected: list[str] = field(default_factory=list)  # failures before the kill
    lock: threading.Lock = field(default_factory=threading.Lock)
    killing: threading.Event = field(default_factory=threading.Event)

    def ack(self, kind: str, kill: Callable[[], None]) -> None:
        """Count one acknowledged write; the one that reaches the round's kill point kills the daemon."""
        self.writes[kind] += 1
        self.operations += 1
        if self.operations >= self.kill_after and not self.killing.is_set():
            self.killing.set()
            kill()

    def failed(self, error: grpc.RpcError) -> None:
        with self.lock:
            if self.killing.is_set():
                self.at_kill[error.code().name] += 1
            else:
                self.unexpected.append(f"{error.code()}: {error.details()}")


# -- a client thread -------------------------------------------------------------------------------


def run_client(
    client: Client, address: str, rng: random.Random, ledger: Ledger, kill: Callable[[], None], retry_only: bool
) -> None:
    """Re-send the failed batch, then a random mix until a call fails (the kill)."""
    try:
        with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
            stub = SessionStoreStub(channel)
            if client.failed is not None:
                retry(stub, client, ledger, kill)
            if retry_only:
                return
            kinds, weights = zip(*MIX.items(), strict=True)
            for _ in range(MAX_OPERATIONS):
                key = rng.choice(client.keys)
                kind = "get" if key.last is None else rng.choices(kinds, weights)[0]
                if kind == "switch" and len(key.sessions) < 2:
                    kind = "force"
                operation = OPERATIONS[kind]
                operation(stub, client, key, rng, ledger, kill)
    except grpc.RpcError as error:  # the first failure ends the client's round
        ledger.failed(error)
    except Exception:
        with ledger.lock:
            ledger.unexpected.append(traceback.format_exc())


def retry(stub: SessionStoreStub, client: Client, ledger: Ledger, kill: Callable[[], None]) -> None:
    assert client.failed is not None
    session_id, batch = client.failed
    request = pb.AppendMessagesRequest(session_id=session_id, messages=batch)
    response = stub.AppendMessages(request, timeout=DEADLINE)
    with ledger.lock:
        expected = (0, len(batch)) if client.failed_stored else (len(batch), 0)
        if (response.appended, response.duplicates) != expected:
            ledger.problems.append(
                f"retry of {batch[0].message_id}..: appended/duplicates {response.appended}/{response.duplicates},"
                f" expected {expected[0]}/{expected[1]}"
            )
        for message in batch:
            ledger.acked[message.message_id] = (session_id, message.text)
        client.failed = None
        ledger.ack("retried batch", kill)


def append(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    assert key.last is not None
    size = rng.randint(1, 5)
    batch = [
        transcript_pb2.Message(
            role="user" if n % 2 else "assistant",
            text=f"client {client.number} message {n}",
            message_id=f"c{client.number}-m{n}",
        )
        for n in range(client.sent, client.sent + size)
    ]
    client.sent += size
    session_id = key.last.session_id
    try:
        response = stub.AppendMessages(
            pb.AppendMessagesRequest(session_id=session_id, messages=batch), timeout=DEADLINE
        )
    except grpc.RpcError:
        client.failed, client.failed_stored = (session_id, batch), False
        raise
    with ledger.lock:
        if (response.appended, response.duplicates) != (size, 0):
            ledger.problems.append(f"{batch[0].message_id}..: {response.appended} appended of {size} new messages")
        for message in batch:
            ledger.acked[message.message_id] = (session_id, message.text)
        ledger.messages += size
        ledger.ack("append", kill)


def mutate(call: Callable[[], Any], in_flight: InFlight, client: Client) -> Any:
    """Run a key mutation; a failure leaves it in flight (resolved after the restart)."""
    try:
        return call()
    except grpc.RpcError:
        client.in_flight = in_flight
        raise


def accept(key: Key, entry: session_pb2.SessionEntry, expected: State, ledger: Ledger, what: str) -> None:
    """Record an acknowledged mutation's entry; it must be what the ledger predicts (NEW: an unseen id)."""
    got = state_of(entry)
    fresh = expected.session_id == NEW
    if fresh:
        expected = State(got.session_id, expected.version, expected.tokens)
    if got != expected or (fresh and got.session_id in ledger.sessions) or entry.session_key != key.name:
        ledger.problems.append(f"{what} on {key.name}: answered {got}, expected {expected} (fresh id: {fresh})")
    if got.session_id != (key.last.session_id if key.last else None):
        key.acked_tokens = 0
    key.last = got
    if got.session_id not in key.sessions:
        key.sessions.append(got.session_id)
    ledger.sessions.add(got.session_id)


def get_or_create(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    _get(stub, client, key, ledger, kill, False)


def force_new(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    _get(stub, client, key, ledger, kill, True)


def _get(
    stub: SessionStoreStub, client: Client, key: Key, ledger: Ledger, kill: Callable[[], None], force: bool
) -> None:
    request = pb.GetOrCreateSessionRequest(source=key.source, force_new=force)
    kind = "force" if force else "get"
    in_flight = InFlight(kind, key)
    response = mutate(lambda: stub.GetOrCreateSession(request, timeout=DEADLINE), in_flight, client)
    with ledger.lock:
        expected = in_flight.result()
        if response.created != (expected.session_id == NEW):
            ledger.problems.append(f"{kind} on {key.name}: created={response.created}")
        accept(key, response.entry, expected, ledger, kind)
        ledger.ack("force_new" if force else "get_or_create", kill)


def reset(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    request = pb.ResetSessionRequest(session_key=key.name)
    in_flight = InFlight("reset", key)
    response = mutate(lambda: stub.ResetSession(request, timeout=DEADLINE), in_flight, client)
    with ledger.lock:
        accept(key, response.entry, in_flight.result(), ledger, "reset")
        ledger.ack("reset", kill)


def switch(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    assert key.last is not None
    others = [sid for sid in key.sessions if sid != key.last.session_id]
    target = rng.choice(others) if rng.random() < 0.9 else key.last.session_id  # sometimes to where it is
    request = pb.SwitchSessionRequest(session_key=key.name, target_session_id=target)
    in_flight = InFlight("switch", key, target=target)
    response = mutate(lambda: stub.SwitchSession(request, timeout=DEADLINE), in_flight, client)
    with ledger.lock:
        moves = target != key.last.session_id
        if response.switched != moves:
            ledger.problems.append(f"switch on {key.name} to {target}: switched={response.switched}")
        accept(key, response.entry, in_flight.result(), ledger, "switch")
        ledger.ack("switch", kill)


def update(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    given, taken = rng.randint(1, 5000), rng.randint(1, 2000)
    usage = pb.UsageDelta(input_tokens=given, output_tokens=taken, total_tokens=given + taken)
    request = pb.UpdateSessionRequest(session_key=key.name, usage=usage, last_prompt_tokens=given)
    in_flight = InFlight("update", key, delta=(given, taken, given + taken))
    response = mutate(lambda: stub.UpdateSession(request, timeout=DEADLINE), in_flight, client)
    with ledger.lock:
        accept(key, response.entry, in_flight.result(), ledger, "update")
        key.acked_tokens += given + taken
        ledger.ack("update", kill)


def title(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    """Title the key's current session with a new name; a title a failed call left is in doubt."""
    assert key.last is not None
    client.titles += 1
    session_id, name = key.last.session_id, f"c{client.number}-t{client.titles}"
    request = pb.SetSessionTitleRequest(session_id=session_id, title=name)
    try:
        response = stub.SetSessionTitle(request, timeout=DEADLINE)
    except grpc.RpcError:
        client.title_failed = (session_id, name)
        raise
    with ledger.lock:
        if response.title != name:
            ledger.problems.append(f"title of {session_id}: answered {response.title!r}, set {name!r}")
        ledger.titles[session_id] = name
        ledger.ack("title", kill)


def stamp(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    """Set the metadata "stamp" of the key's session to the client's next number (a new entry version)."""
    assert key.last is not None
    client.stamps += 1
    session_id = key.last.session_id
    request = pb.UpdateSessionMetadataRequest(
        session_key=key.name, set={"stamp": session_pb2.MetadataValue(integer=client.stamps)}
    )
    client.stamp_failed = (session_id, client.stamps)
    response = mutate(lambda: stub.UpdateSessionMetadata(request, timeout=DEADLINE), InFlight("metadata", key), client)
    client.stamp_failed = None
    with ledger.lock:
        accept(key, response.entry, State(session_id, key.last.version + 1, key.last.tokens), ledger, "metadata")
        ledger.stamps[session_id] = client.stamps
        ledger.ack("metadata", kill)


def rewind(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    """Rewind the last user turn of the key's session (/undo); a rewind the kill failed is in doubt."""
    assert key.last is not None
    session_id = key.last.session_id
    request = pb.RewindTranscriptRequest(session_id=session_id, turns=1)
    try:
        response = stub.RewindTranscript(request, timeout=DEADLINE)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return  # no visible user turn: nothing was written
        client.hiding_failed = session_id
        raise
    with ledger.lock:
        ledger.hidden[(session_id, REWOUND, response.rewind)] = response.rewound_messages
        ledger.ack("rewind", kill)


def compact(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, kill: Callable[[], None]
) -> None:
    """Replace the first messages of the key's session by a summary (/compress), in place."""
    assert key.last is not None
    session_id = key.last.session_id
    client.summaries += 1
    summary = transcript_pb2.Message(
        role="system",
        text=f"client {client.number} summary {client.summaries}",
        message_id=f"c{client.number}-s{client.summaries}",
    )
    request = pb.CompactTranscriptRequest(
        session_id=session_id, first_position=0, last_position=rng.randint(0, 8), summary=summary
    )
    try:
        response = stub.CompactTranscript(request, timeout=DEADLINE)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return  # nothing visible in the range: nothing was written
        client.hiding_failed, client.summary_failed = session_id, (session_id, summary)
        raise
    with ledger.lock:
        ledger.hidden[(session_id, ARCHIVED, response.compaction)] = response.archived_messages
        ledger.acked[summary.message_id] = (session_id, summary.text)
        ledger.ack("compact", kill)


OPERATIONS = {
    "metadata": stamp,
    "rewind": rewind,
    "compact": compact,
    "title": title,
    "append": append,
    "update": update,
    "get": get_or_create,
    "force": force_new,
    "reset": reset,
    "switch": switch,
}


# -- after each restart ----------------------------------------------------------------------------


@dataclass
class Findings:
    lost: int = 0  # acknowledged writes not found as acknowledged (must be 0)
    applied: int = 0  # in-flight key mutations found done
    not_applied: int = 0  # ... and found not done
    batches_stored: int = 0  # failed batches found stored whole
    batches_absent: int = 0  # ... and found absent
    problems: list[str] = field(default_factory=list)


def check(stub: SessionStoreStub, clients: list[Client], ledger: Ledger, db: Path) -> Findings:
    """Everything acknowledged is there once; whatever was in flight is there whole or not at all.

    Resolves the in-flight mutations (the ledger adopts what the key holds, once checked).
    """
    found = Findings()
    # Keys: the last acknowledged state, or the in-flight call's result.
    for client in clients:
        for key in client.keys:
            try:
                request = pb.GetSessionRequest(session_key=key.name)
                now: State | None = state_of(stub.GetSession(request, timeout=DEADLINE).entry)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                now = None
            in_flight = client.in_flight if client.in_flight and client.in_flight.key is key else None
            allowed = in_flight.outcomes() if in_flight else [key.last]
            matches = [
                s
                for s in allowed
                if s == now
                or (
                    s is not None
                    and now is not None
                    and s.session_id == NEW
                    and now.session_id not in ledger.sessions
                    and (s.version, s.tokens) == (now.version, now.tokens)
                )
            ]
            if not matches:
                found.lost += 1
                found.problems.append(f"{key.name} holds {now}; allowed: {allowed} ({in_flight})")
                continue
            if now is not None and key.last is not None and now.session_id == key.last.session_id:
                if now.tokens[2] < key.acked_tokens:
                    found.lost += 1
                    found.problems.append(f"{key.name}: {now.tokens[2]} total tokens < {key.acked_tokens} acked")
            if in_flight:
                if now == key.last:
                    found.not_applied += 1
                else:
                    found.applied += 1
            if now is not None and now != key.last:  # the in-flight call went through: adopt its result
                same_session = key.last is not None and now.session_id == key.last.session_id
                key.acked_tokens = now.tokens[2] if same_session else 0
                if now.session_id not in key.sessions:
                    key.sessions.append(now.session_id)
                ledger.sessions.add(now.session_id)
            key.last = now
        client.in_flight = None

    # One entry per key: ListSessions agrees with GetSession.
    names = {key.name: key for client in clients for key in client.keys}
    entries = list_entries(stub)
    listed = Counter(entry.session_key for entry in entries)
    for entry in entries:
        key = names.get(entry.session_key)
        if key is None:
            found.problems.append(f"an entry nobody created: {entry.session_key}")
        elif key.last is None or entry.session_id != key.last.session_id:
            found.problems.append(f"{entry.session_key}: listed at {entry.session_id}, GetSession said {key.last}")
    for name, key in names.items():
        if listed[name] != (0 if key.last is None else 1):
            found.problems.append(f"{name} listed {listed[name]} times")

    # Messages: acknowledged ones once where they were sent; failed batches whole or absent.
    missing: list[str] = []
    where = stored_messages(stub, ledger.sessions, missing)
    if missing:
        found.lost += len(missing)
        found.problems.append(f"acknowledged sessions missing: {missing[:10]}")
    duplicates = sorted(mid for mid, places in where.items() if len(places) > 1)
    if duplicates:
        found.problems.append(f"stored more than once: {duplicates[:10]}")
    lost = sorted(mid for mid, place in ledger.acked.items() if where.get(mid) != [place])
    found.lost += len(lost)
    if lost:
        found.problems.append(f"acknowledged messages lost or misplaced: {lost[:10]}")
    in_doubt = set()
    for client in clients:
        if client.failed is None:
            continue
        session_id, batch = client.failed
        present = [where.get(m.message_id) == [(session_id, m.text)] for m in batch]
        if any(present) and not all(present):
            found.problems.append(f"half a batch stored: {[m.message_id for m in batch]} -> {present}")
        client.failed_stored = all(present)
        found.batches_stored += client.failed_stored
        found.batches_absent += not any(present)
        in_doubt.update(m.message_id for m in batch)
    for client in clients:  # a compaction the kill failed: its summary is there, or it did not happen
        if client.summary_failed is not None:
            session_id, summary = client.summary_failed
            if where.get(summary.message_id) == [(session_id, summary.text)]:
                ledger.acked[summary.message_id] = (session_id, summary.text)
            in_doubt.add(summary.message_id)
            client.summary_failed = None
    unknown = sorted(set(where) - set(ledger.acked) - in_doubt)
    if unknown:
        found.problems.append(f"stored, yet never sent or still in doubt: {unknown[:10]}")
    found.lost += check_titles(stub, clients, ledger, found.problems)
    found.lost += check_stamps(stub, clients, ledger, found.problems)
    found.lost += check_hidden(stub, clients, ledger, found.problems)
    found.problems += file_problems(db)
    return found


def check_titles(stub: SessionStoreStub, clients: list[Client], ledger: Ledger, problems: list[str]) -> int:
    """Each session holds its acknowledged title, or the one a failed call was setting; the lost."""

    def title(session_id: str) -> str | None:
        response = stub.GetSessionTitle(pb.GetSessionTitleRequest(session_id=session_id), timeout=DEADLINE)
        return response.title if response.HasField("title") else None

    in_doubt = {c.title_failed[0]: c.title_failed[1] for c in clients if c.title_failed is not None}
    for client in clients:
        client.title_failed = None
    return check_kept("title", ledger.titles, in_doubt, title, problems)


def check_stamps(stub: SessionStoreStub, clients: list[Client], ledger: Ledger, problems: list[str]) -> int:
    """Each session's metadata holds its acknowledged stamp, or the one a failed call was setting."""

    def stamp(session_id: str) -> int | None:
        stored = stub.GetSessionMetadata(pb.GetSessionMetadataRequest(session_id=session_id), timeout=DEADLINE)
        return stored.metadata["stamp"].integer if "stamp" in stored.metadata else None

    in_doubt = {c.stamp_failed[0]: c.stamp_failed[1] for c in clients if c.stamp_failed is not None}
    for client in clients:
        client.stamp_failed = None
    return check_kept("stamp", ledger.stamps, in_doubt, stamp, problems)


def check_kept(
    what: str, acked: dict[str, Any], in_doubt: dict[str, Any], read: Callable[[str], Any], problems: list[str]
) -> int:
    """Each session's value is its acknowledged one, or the one a failed call was setting (then
    adopted); without an acknowledged one, none is allowed too. How many were lost."""
    lost = 0
    for session_id in set(acked) | set(in_doubt):
        got = read(session_id)
        allowed = {acked.get(session_id), in_doubt.get(session_id)} - {None}
        if session_id not in acked:
            allowed.add(None)
        if got not in allowed:
            lost += 1
            problems.append(f"{what} of {session_id}: {got!r}, allowed {allowed}")
        elif got is not None:
            acked[session_id] = got
    return lost


def check_hidden(stub: SessionStoreStub, clients: list[Client], ledger: Ledger, problems: list[str]) -> int:
    """Each acknowledged rewind and compaction still hides exactly the messages it said; one a failed
    call was making hid its messages whole or not at all (then adopted). The ones lost."""
    in_doubt = {c.hiding_failed for c in clients if c.hiding_failed is not None}
    lost = 0
    for session_id in {s for s, _, _ in ledger.hidden} | in_doubt:
        stored = load_transcript(stub, session_id, include_hidden=True)
        groups = Counter((m.visibility, m.hidden_by) for m in stored if m.visibility)
        for (visibility, number), count in groups.items():
            acked = ledger.hidden.get((session_id, visibility, number))
            if acked is None and session_id in in_doubt:
                ledger.hidden[(session_id, visibility, number)] = count  # the failed call's, adopted
                in_doubt.discard(session_id)
            elif acked != count:
                problems.append(f"{session_id}: {count} messages hidden by {visibility} {number}, acked {acked}")
        gone = [k for k in ledger.hidden if k[0] == session_id and (k[1], k[2]) not in groups and ledger.hidden[k]]
        lost += len(gone)
        problems += [f"{session_id}: acknowledged {k[1]} {k[2]} hides nothing now" for k in gone]
    for client in clients:
        client.hiding_failed = None
    return lost


# -- the test --------------------------------------------------------------------------------------


def run_round(
    daemon: Daemon, clients: list[Client], ledger: Ledger, seed: int, round_: int, kill_after: int | None
) -> None:
    """The clients until the kill at ``kill_after`` acknowledged operations (None: just their retries)."""
    retry_only = kill_after is None
    ledger.operations = 0
    ledger.killing.clear()
    ledger.kill_after = 1 << 62 if kill_after is None else kill_after

    def sigkill() -> None:
        daemon.process.send_signal(signal.SIGKILL)

    threads = [
        threading.Thread(
            target=run_client,
            args=(client, daemon.address, random.Random(f"{seed}/{round_}/{client.number}"), ledger, sigkill),
            kwargs={"retry_only": retry_only},
            name=f"client-{client.number}",
        )
        for client in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    if not retry_only:
        assert ledger.killing.is_set(), f"no kill: {ledger.unexpected}"
        assert daemon.process.wait(timeout=START_TIMEOUT) == -signal.SIGKILL
    assert not ledger.unexpected, f"calls failed before the kill (seed {seed}): {ledger.unexpected}"


def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    seed = int(os.environ.get("SESSIOND_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\ncrash: seed {seed} (SESSIOND_CRASH_SEED={seed} replays the draws), {ROUNDS} rounds")
    config = write_config(tmp_path)
    clients = [
        Client(
            number,
            [
                Key(source_pb2.SessionSource(platform="telegram", chat_id=f"crash-{number}-{k}"))
                for k in range(KEYS_PER_CLIENT)
            ],
        )
        for number in range(CLIENTS)
    ]
    ledger = Ledger()
    totals = Findings()
    draws = random.Random(seed)  # the kill points
    with open(tmp_path / "sessiond.log", "ab") as log:
        daemon = start(tmp_path, log, config)
        try:
            with channel_to(daemon.address) as channel:
                stub = SessionStoreStub(channel)
                for client in clients:
                    for key in client.keys:
                        request = pb.BuildSessionKeyRequest(source=key.source)
                        key.name = stub.BuildSessionKey(request, timeout=DEADLINE).session_key
            for round_ in range(ROUNDS + 1):
                final = round_ == ROUNDS
                with channel_to(daemon.address) as channel:
                    found = check(SessionStoreStub(channel), clients, ledger, daemon.db)
                for name in ("lost", "applied", "not_applied", "batches_stored", "batches_absent"):
                    setattr(totals, name, getattr(totals, name) + getattr(found, name))
                if round_:
                    print(
                        f"round {round_}: SIGKILL at {ledger.operations} acknowledged operations"
                        f" (drawn {ledger.kill_after}); calls failed by the kill {dict(ledger.at_kill)};"
                        f" in-flight mutations {found.applied} applied, {found.not_applied} not;"
                        f" failed batches {found.batches_stored} stored whole, {found.batches_absent} absent;"
                        f" {found.lost} lost"
                    )
                problems = found.problems + ledger.problems
                assert not problems, f"seed {seed}, after round {round_}: {problems}"
                ledger.at_kill.clear()
                run_round(daemon, clients, ledger, seed, round_, None if final else draws.randint(*KILL_AFTER))
                if not final:
                    daemon = start(tmp_path, log, config)  # same database; its socket is stale
            with channel_to(daemon.address) as channel:
                found = check(SessionStoreStub(channel), clients, ledger, daemon.db)
            assert not found.problems + ledger.problems, f"seed {seed}, after the retries: {found.problems}"
            assert all(client.failed is None for client in clients), "a retry did not go through"
            stop(daemon)
        finally:
            kill(daemon)
    result = integrity(daemon.db)
    problems = file_problems(daemon.db)
    kinds = ("get_or_create", "force_new", "append", "retried batch", "reset", "switch", "update", "title",
             "metadata", "rewind", "compact")  # fmt: skip
    writes = ", ".join(f"{kind} {ledger.writes[kind]}" for kind in kinds)
    print(
        f"crash: {ROUNDS} rounds (seed {seed}); {sum(ledger.writes.values())} acknowledged writes: {writes}"
        f" ({ledger.messages} messages in acknowledged appends, {len(ledger.acked)} stored in all);"
        f" {len(ledger.sessions)} sessions, {CLIENTS * KEYS_PER_CLIENT} keys; "
        f"in-flight mutations {totals.applied} applied, {totals.not_applied} not; failed batches "
        f"{totals.batches_stored} stored whole, {totals.batches_absent} absent, all retried; "
        f"losses {totals.lost}; integrity_check {result}"
    )
    assert totals.lost == 0
    assert result == "ok"
    assert not problems, problems


def test_restart_after_a_kill_during_a_checkpoint(tmp_path: Path) -> None:
    """A deterministic kill -9 during a checkpoint: the daemon must restart with everything acknowledged."""
    config, db = write_config(tmp_path), tmp_path / "state" / "sessiond.db"
    acked: list[str] = []
    with open(tmp_path / "sessiond.log", "ab") as log:
        stop(start(tmp_path, log, config))  # a clean stop checkpoints: the schema is in the main file
        daemon = start(tmp_path, log, config)
        try:
            with channel_to(daemon.address) as channel:
                stub = SessionStoreStub(channel)
                source = source_pb2.SessionSource(platform="telegram", chat_id="checkpoint")
                session_id = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source)).entry.session_id
                for n in range(0, 200, 5):  # the database grows by ~60 pages, in the WAL
                    batch = [
                        transcript_pb2.Message(role="user", text=f"{m:04d}" * 250, message_id=f"m{m}")
                        for m in range(n, n + 5)
                    ]
                    stub.AppendMessages(pb.AppendMessagesRequest(session_id=session_id, messages=batch))
                    acked += [m.message_id for m in batch]
        finally:
            kill(daemon)
        size, says = cut_checkpoint(db)
        assert size < says, "the cut did not leave the file shorter than its header (no test)"
        sqlite = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)  # SQLite itself: all there
        try:
            assert sqlite.pragma("quick_check") == "ok"
            assert sqlite.execute("SELECT COUNT(*) FROM messages").fetchall()[0][0] == len(acked)
        finally:
            sqlite.close()
        print(f"\ncheckpoint cut: file {size} bytes, header says {says}; SQLite reads all {len(acked)} messages")
        daemon = start(tmp_path, log, config)  # once refused: exit 3, "truncated"
        try:
            with channel_to(daemon.address) as channel:
                stored = [m.message_id for m in load_transcript(SessionStoreStub(channel), session_id)]
            assert stored == acked
        finally:
            stop(daemon)
    assert integrity(db) == "ok"


def test_a_kill_during_bulk_deletes_leaves_each_batch_whole_or_absent(tmp_path: Path) -> None:
    """DeleteSessions in batches of one transaction each, killed (-9) while a batch is in flight:
    after the restart every acknowledged batch is gone, the one in flight is gone whole or not at
    all, every other session keeps all its messages, and the full-text index agrees with them."""
    config, rng = write_config(tmp_path), random.Random()
    sessions, per_session, batch = 120, 10, 25
    with open(tmp_path / "daemon.log", "wb") as log:
        daemon = start(tmp_path, log, config)
        db, acked = daemon.db, []
        try:
            with channel_to(daemon.address) as channel:
                stub = SessionStoreStub(channel)
                order = [_session_with_messages(stub, n, per_session) for n in range(sessions)]
                request = pb.DeleteSessionsRequest(selector=pb.SessionSelector(platform="telegram"), limit=batch)
                for _ in range(rng.randint(1, 3)):
                    acked += stub.DeleteSessions(request, timeout=DEADLINE).session_ids
                in_flight = stub.DeleteSessions.future(request, timeout=DEADLINE)
        finally:
            kill(daemon)
        with contextlib.suppress(grpc.RpcError):
            in_flight.result()
        daemon = start(tmp_path, log, config)
        try:
            with channel_to(daemon.address) as channel:
                missing: list[str] = []
                stored = stored_messages(SessionStoreStub(channel), set(order), missing)
        finally:
            stop(daemon)
    assert acked == order[: len(acked)]  # least recently active first
    assert set(acked) <= set(missing) and len(missing) - len(acked) in (0, batch), (len(acked), len(missing))
    assert set(missing) == set(order[: len(missing)])  # the batch in flight: whole, or not at all
    kept = [sid for sid in order if sid not in missing]
    assert sorted(where[0][0] for where in stored.values()) == sorted(kept * per_session)
    assert file_problems(db) == []  # the index holds exactly the kept messages
    print(f"\nbulk delete: {len(acked)} acknowledged, {len(missing) - len(acked)} of the killed batch gone")


def _session_with_messages(stub: SessionStoreStub, n: int, count: int) -> str:
    source = source_pb2.SessionSource(platform="telegram", chat_id=f"bulk{n}")
    entry = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source), timeout=DEADLINE).entry
    messages = [
        transcript_pb2.Message(role="user", text=f"walrus {n} {m}", message_id=f"b{n}-{m}") for m in range(count)
    ]
    stub.AppendMessages(pb.AppendMessagesRequest(session_id=entry.session_id, messages=messages), timeout=DEADLINE)
    return entry.session_id


TURN_KEY = "agent:main:telegram:dm:turns"


def test_no_write_of_a_stale_turn_lands_across_kills(tmp_path: Path) -> None:
    """4 agent loops on one key each begin turns (interrupting each other) and append up to 5
    fenced messages per turn, tagged with their token; the daemon is killed (-9) mid-run, several rounds. After each
    restart: a new turn's token is past every token handed out before the kill, every earlier
    token's write is ABORTED, every acknowledged message is stored once, and along the transcript
    the tokens never go back (a write landed only while its token was the newest)."""
    config, rng = write_config(tmp_path), random.Random()
    issued: set[int] = set()
    acked: dict[str, int] = {}  # message id -> token
    with open(tmp_path / "daemon.log", "wb") as log:
        daemon = start(tmp_path, log, config)
        with channel_to(daemon.address) as channel:
            source = source_pb2.SessionSource(platform="telegram", chat_id="turns")
            request = pb.GetOrCreateSessionRequest(source=source)
            session_id = SessionStoreStub(channel).GetOrCreateSession(request, timeout=DEADLINE).entry.session_id
        for round_ in range(5):
            _fenced_loops(daemon, session_id, f"r{round_}", len(acked) + rng.randint(5, 40), issued, acked)
            kill(daemon)
            daemon = start(tmp_path, log, config)
            with channel_to(daemon.address) as channel:
                stub = SessionStoreStub(channel)
                resumed = _begin(stub, "after", pb.TURN_CONFLICT_INTERRUPT).turn.fencing_token
                assert resumed > max(issued), (resumed, max(issued))
                issued.add(resumed)
                stale = rng.choice(sorted(issued - {resumed}))
                with pytest.raises(grpc.RpcError) as raised:
                    _fenced_append(stub, session_id, f"stale-{round_}", stale)
                assert raised.value.code() == grpc.StatusCode.ABORTED
                stored = load_transcript(stub, session_id)
            tokens = [int(m.text) for m in stored]
            assert tokens == sorted(tokens), "a stale token's write landed after a newer turn began"
            ids = [m.message_id for m in stored]
            assert len(ids) == len(set(ids)) and set(acked) <= set(ids)
            assert all(acked[i] == int(m.text) for m, i in zip(stored, ids, strict=True) if i in acked)
        stop(daemon)
    print(f"\nturn fencing: {len(issued)} turns, {len(acked)} fenced appends acknowledged over 5 kills")


def _fenced_loops(
    daemon: Daemon, session_id: str, prefix: str, kill_at: int, issued: set[int], acked: dict[str, int]
) -> None:
    """4 loops begin turns (interrupting) and append fenced messages until ``acked`` holds
    ``kill_at`` acknowledged appends: then the daemon is killed (-9), the others' calls in flight."""
    lock, killed = threading.Lock(), threading.Event()

    def loop(worker: int) -> None:
        with channel_to(daemon.address) as own:
            stub, turn, written = SessionStoreStub(own), None, 0
            for n in itertools.count():
                message_id = f"{prefix}-w{worker}-{n}"
                try:
                    if turn is None or written == 5:
                        turn, written = _begin(stub, f"w{worker}", pb.TURN_CONFLICT_INTERRUPT).turn, 0
                        with lock:
                            issued.add(turn.fencing_token)
                    _fenced_append(stub, session_id, message_id, turn.fencing_token)
                    written += 1
                except grpc.RpcError as error:
                    if error.code() == grpc.StatusCode.ABORTED:
                        turn = None  # a newer turn began: this loop's write was refused
                        continue
                    return  # the daemon is gone
                with lock:
                    acked[message_id] = turn.fencing_token
                    if len(acked) >= kill_at and not killed.is_set():
                        killed.set()
                        kill(daemon)

    workers = [threading.Thread(target=loop, args=(w,)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=4 * DEADLINE)
    assert not any(worker.is_alive() for worker in workers), "a fenced loop hung"


def _begin(stub: SessionStoreStub, owner: str, on_conflict: int) -> pb.BeginTurnResponse:
    request = pb.BeginTurnRequest(session_key=TURN_KEY, owner=owner, ttl={"seconds": 600}, on_conflict=on_conflict)
    return stub.BeginTurn(request, timeout=DEADLINE)


def _fenced_append(stub: SessionStoreStub, session_id: str, message_id: str, token: int) -> None:
    message = transcript_pb2.Message(role="user", text=str(token), message_id=message_id)
    fence = pb.TurnFence(session_key=TURN_KEY, fencing_token=token)
    stub.AppendMessages(
        pb.AppendMessagesRequest(session_id=session_id, messages=[message], fence=fence), timeout=DEADLINE
    )
