"""PostgreSQL fault suite: two daemons on one database, 8 clients, and three kinds of fault.

Two daemons run as processes of their own (``python -m sessiond serve``), one reaching the
database over its Unix socket, the other over loopback TCP, both on one schema of a throwaway
server of this test's own (``tests/postgres.py``; the other tests' shared server is never
stopped). Each round, 8 client threads, half on each daemon (the halves swap every round), do a
seeded mix of GetOrCreateSession (some ``force_new``), AppendMessages (1-5 messages with
message ids), ResetSession, SwitchSession and UpdateSession, recording every acknowledged
answer; once the round's drawn number of writes is acknowledged, the main thread injects the
fault while calls are in flight:

- ``kill9``: SIGKILL of one daemon; the other one's clients carry on, the killed one restarts;
- ``pg_immediate``: ``pg_ctl stop -m immediate``; both daemons' health must turn NOT_SERVING
  (a Watch stream each, no polling), then PostgreSQL starts again on its data and port, and both
  must turn SERVING again by themselves (same processes) and take a write each;
- ``terminate``: ``pg_terminate_backend`` of every backend of the daemons, twice per round under
  load and once with the daemons idle; health must stay SERVING throughout (the database is up:
  a pooled connection cut meanwhile must not turn the health check NOT_SERVING; the idle case
  watches a bounded window of 10 check intervals for the announcement that must not come).

Every client stops at its first failed call, whose status must be UNAVAILABLE or ABORTED; a
failed batch is found stored whole or not at all and is re-sent next round (through the other
daemon), a failed key mutation is resolved by looking. After each round: every acknowledged
message stored exactly once where it was sent, every key at its last acknowledged state (or
its in-flight call's result), one live session per key (GetSession, ListSessions and the
tables agree), message counts right, and the event log consistent with the rest and gapless.

``SESSIOND_PG_FAULT_ROUNDS`` rounds per fault (default 2; ``make reliability`` runs more);
``SESSIOND_PG_FAULT_SEED`` replays the draws. The server runs ``fsync=off`` (a process crash
loses nothing the OS holds) but keeps ``synchronous_commit`` on: with it off, an immediate stop
may drop commits already acknowledged, by PostgreSQL's own definition of that setting.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helpers.postgres import PostgresServer, Unavailable
from sessiond_client.v1 import session_pb2, source_pb2, transcript_pb2
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub

ROUNDS = int(os.environ.get("SESSIOND_PG_FAULT_ROUNDS", "2"))
FAULTS = ("kill9", "pg_immediate", "terminate")
CLIENTS, KEYS_PER_CLIENT = 8, 2
FAULT_AFTER = (20, 120)  # acknowledged writes in a round before the fault, drawn uniformly
AFTER_FAULT = 40  # writes acknowledged after the fault (or the database's return) before the round ends
MAX_OPERATIONS = 5_000  # per client and round: a guard
DEADLINE = 10.0  # seconds, on every client RPC
WAIT = 60.0  # the generous bound on every wait for a signal
ALLOWED = {"UNAVAILABLE", "ABORTED"}
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
]
MIX = {"append": 50, "update": 14, "get": 10, "force": 4, "reset": 7, "switch": 15}
CHECK_SECONDS = 0.2  # the daemons' storage.check_seconds: health follows the database within that
IDLE_CHECKS = 10  # health checks watched after backends of idle daemons are terminated
CONFIG = f"""[server]
grace_seconds = 2

[storage]
backend = "postgres"
check_seconds = {CHECK_SECONDS}

[reset.default]
mode = "none"
"""


# -- the daemons -----------------------------------------------------------------------------------


@dataclass
class Daemon:
    name: str
    root: Path
    dsn: str
    log: IO[bytes]
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"unix:{self.root / 'sessiond.sock'}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
        env.update(SESSIOND_PG_DSN=self.dsn, XDG_RUNTIME_DIR=str(self.root), XDG_STATE_HOME=str(self.root))
        config = self.root / "sessiond.toml"
        config.write_text(CONFIG)
        command = [sys.executable, "-m", "sessiond", "serve", "--socket", str(self.root / "sessiond.sock")]
        self.log.flush()
        self.process = subprocess.Popen(
            [*command, "--config", str(config)], env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log
        )
        try:
            with connected(self.address) as channel:
                wait_health(channel, SERVING)
        except Exception:
            self.kill()
            raise AssertionError(f"daemon {self.name} did not start serving:\n{self.tail()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=WAIT)
        finally:
            self.kill()

    def tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_bytes()[-3000:].decode(errors="replace")


@contextmanager
def connected(address: str) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    try:
        grpc.channel_ready_future(channel).result(timeout=WAIT)
        yield channel
    finally:
        channel.close()


def wait_health(channel: grpc.Channel, wanted: int, service: str = "") -> None:
    """Until the daemon's health (Watch: the current status, then each change) is ``wanted``."""
    request = health_pb2.HealthCheckRequest(service=service)
    watch = health_pb2_grpc.HealthStub(channel).Watch(request, timeout=WAIT)
    try:
        for answer in watch:
            if answer.status == wanted:
                return
        raise AssertionError(f"health stream ended before {wanted}")
    finally:
        watch.cancel()


@contextmanager
def health_seen(daemons: list[Daemon], flapped: threading.Event | None = None) -> Iterator[list[list[int]]]:
    """Every health status each daemon announces meanwhile (a Watch stream each, in a thread).

    ``flapped`` is set when one announces anything but SERVING.
    """
    seen: list[list[int]] = [[] for _ in daemons]
    with ExitStack() as stack:
        watches = []
        for daemon, statuses in zip(daemons, seen, strict=True):
            channel = stack.enter_context(connected(daemon.address))
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=WAIT)
            statuses.append(next(watch).status)

            def record(watch: Any = watch, statuses: list[int] = statuses) -> None:
                try:
                    for answer in watch:
                        statuses.append(answer.status)
                        if answer.status != SERVING and flapped is not None:
                            flapped.set()
                except grpc.RpcError:
                    pass  # cancelled at the end

            thread = threading.Thread(target=record, name=f"health-{daemon.name}")
            thread.start()
            watches.append((watch, thread))
        try:
            yield seen
        finally:
            for watch, thread in watches:
                watch.cancel()
                thread.join(timeout=WAIT)


# -- what the clients were told --------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    session_id: str
    version: int
    tokens: tuple[int, int, int]


NEW, ZERO = "<new>", (0, 0, 0)


def state_of(entry: session_pb2.SessionEntry) -> State:
    return State(entry.session_id, entry.version, (entry.input_tokens, entry.output_tokens, entry.total_tokens))


@dataclass
class Key:
    source: source_pb2.SessionSource
    name: str = ""
    last: State | None = None
    sessions: list[str] = field(default_factory=list)
    acked_tokens: int = 0


@dataclass
class InFlight:
    kind: str  # get | force | reset | switch | update
    key: Key
    target: str = ""
    delta: tuple[int, int, int] = ZERO

    def outcomes(self) -> list[State | None]:
        last = self.key.last
        if last is None:
            return [None, State(NEW, 1, ZERO)]
        if self.kind == "switch" and self.target == last.session_id:
            return [last]
        tokens = tuple(a + b for a, b in zip(last.tokens, self.delta, strict=True))
        after = {
            "get": State(last.session_id, last.version + 1, last.tokens),
            "force": State(NEW, last.version + 1, ZERO),
            "reset": State(NEW, last.version + 1, ZERO),
            "switch": State(self.target, last.version + 1, ZERO),
            "update": State(last.session_id, last.version + 1, tokens),  # type: ignore[arg-type]
        }[self.kind]
        return [last, after]


@dataclass
class Client:
    number: int
    keys: list[Key]
    sent: int = 0
    in_flight: InFlight | None = None
    failed: tuple[str, list[transcript_pb2.Message]] | None = None  # a batch whose call failed
    failed_stored: bool = False


@dataclass
class Ledger:
    acked: dict[str, tuple[str, str]] = field(default_factory=dict)  # message id -> (session id, text)
    sessions: set[str] = field(default_factory=set)
    writes: Counter[str] = field(default_factory=Counter)  # acknowledged writes by fault
    operations: int = 0  # acknowledged this round
    running: int = 0  # client threads still running this round
    failures: Counter[str] = field(default_factory=Counter)  # status codes this round
    details: Counter[str] = field(default_factory=Counter)  # status and message of each failure, all rounds
    problems: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    stop: threading.Event = field(default_factory=threading.Event)
    fault: str = ""

    def ack(self) -> None:  # under ``changed``
        self.operations += 1
        self.writes[self.fault] += 1
        self.changed.notify_all()

    def wait_for(self, operations: int) -> None:
        """Until ``operations`` acknowledged this round, or no client runs any more."""
        with self.changed:
            done = self.changed.wait_for(lambda: self.operations >= operations or self.running == 0, timeout=WAIT)
        assert done, f"no progress: {self.operations} of {operations} acknowledged, {self.running} clients running"


# -- a client thread -------------------------------------------------------------------------------


def run_client(client: Client, address: str, rng: random.Random, ledger: Ledger) -> None:
    try:
        with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
            stub = SessionStoreStub(channel)
            if client.failed is not None:
                retry(stub, client, ledger)
            kinds, weights = zip(*MIX.items(), strict=True)
            for _ in range(MAX_OPERATIONS):
                if ledger.stop.is_set():
                    break
                key = rng.choice(client.keys)
                kind = "get" if key.last is None else rng.choices(kinds, weights)[0]
                if kind == "switch" and len(key.sessions) < 2:
                    kind = "force"
                OPERATIONS[kind](stub, client, key, rng, ledger)
    except grpc.RpcError as error:
        with ledger.changed:
            ledger.failures[error.code().name] += 1
            ledger.details[f"{ledger.fault}: {error.code().name}: {error.details()}"] += 1
            if error.code().name not in ALLOWED:
                ledger.problems.append(f"client {client.number}: {error.code().name}: {error.details()}")
    except Exception:
        with ledger.changed:
            ledger.problems.append(traceback.format_exc())
    finally:
        with ledger.changed:
            ledger.running -= 1
            ledger.changed.notify_all()


def retry(stub: SessionStoreStub, client: Client, ledger: Ledger) -> None:
    assert client.failed is not None
    session_id, batch = client.failed
    response = stub.AppendMessages(pb.AppendMessagesRequest(session_id=session_id, messages=batch), timeout=DEADLINE)
    with ledger.changed:
        expected = (0, len(batch)) if client.failed_stored else (len(batch), 0)
        if (response.appended, response.duplicates) != expected:
            ledger.problems.append(f"retry of {batch[0].message_id}: {response.appended}/{response.duplicates}")
        for message in batch:
            ledger.acked[message.message_id] = (session_id, message.text)
        client.failed = None
        ledger.ack()


def append(stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger) -> None:
    assert key.last is not None
    size = rng.randint(1, 5)
    batch = [
        transcript_pb2.Message(
            role="user", text=f"client {client.number} message {n}", message_id=f"c{client.number}-m{n}"
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
    with ledger.changed:
        if (response.appended, response.duplicates) != (size, 0):
            ledger.problems.append(f"{batch[0].message_id}: {response.appended} appended of {size}")
        for message in batch:
            ledger.acked[message.message_id] = (session_id, message.text)
        ledger.ack()


def mutate(client: Client, in_flight: InFlight, call: Callable[[], Any], ledger: Ledger, check_created: bool) -> None:
    """A key mutation: on failure it stays in flight; on success its entry must be the predicted one."""
    try:
        response = call()
    except grpc.RpcError:
        client.in_flight = in_flight
        raise
    key = in_flight.key
    with ledger.changed:
        expected = in_flight.outcomes()[-1]
        assert expected is not None
        got = state_of(response.entry)
        fresh = expected.session_id == NEW
        if fresh:
            expected = State(got.session_id, expected.version, expected.tokens)
        if got != expected or (fresh and got.session_id in ledger.sessions) or response.entry.session_key != key.name:
            ledger.problems.append(f"{in_flight.kind} on {key.name}: {got}, expected {expected}")
        if check_created and response.created != fresh:
            ledger.problems.append(f"{in_flight.kind} on {key.name}: created={response.created}")
        if got.session_id != (key.last.session_id if key.last else None):
            key.acked_tokens = 0
        key.acked_tokens += in_flight.delta[2]
        key.last = got
        if got.session_id not in key.sessions:
            key.sessions.append(got.session_id)
        ledger.sessions.add(got.session_id)
        ledger.ack()


def get(
    stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger, force: bool = False
) -> None:
    request = pb.GetOrCreateSessionRequest(source=key.source, force_new=force)
    in_flight = InFlight("force" if force else "get", key)
    mutate(client, in_flight, lambda: stub.GetOrCreateSession(request, timeout=DEADLINE), ledger, True)


def force(stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger) -> None:
    get(stub, client, key, rng, ledger, force=True)


def reset(stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger) -> None:
    request = pb.ResetSessionRequest(session_key=key.name)
    mutate(client, InFlight("reset", key), lambda: stub.ResetSession(request, timeout=DEADLINE), ledger, False)


def switch(stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger) -> None:
    assert key.last is not None
    others = [sid for sid in key.sessions if sid != key.last.session_id]
    target = rng.choice(others) if rng.random() < 0.9 else key.last.session_id
    request = pb.SwitchSessionRequest(session_key=key.name, target_session_id=target)
    in_flight = InFlight("switch", key, target=target)
    mutate(client, in_flight, lambda: stub.SwitchSession(request, timeout=DEADLINE), ledger, False)


def update(stub: SessionStoreStub, client: Client, key: Key, rng: random.Random, ledger: Ledger) -> None:
    given, taken = rng.randint(1, 5000), rng.randint(1, 2000)
    usage = pb.UsageDelta(input_tokens=given, output_tokens=taken, total_tokens=given + taken)
    request = pb.UpdateSessionRequest(session_key=key.name, usage=usage, last_prompt_tokens=given)
    in_flight = InFlight("update", key, delta=(given, taken, given + taken))
    mutate(client, in_flight, lambda: stub.UpdateSession(request, timeout=DEADLINE), ledger, False)


OPERATIONS = {"append": append, "update": update, "get": get, "force": force, "reset": reset, "switch": switch}


# -- the checks ------------------------------------------------------------------------------------


@dataclass
class Findings:
    lost: int = 0
    applied: int = 0  # in-flight key mutations found done
    not_applied: int = 0
    batches_stored: int = 0  # failed batches found stored whole
    batches_absent: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: Findings) -> None:
        for name in ("lost", "applied", "not_applied", "batches_stored", "batches_absent"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


TABLE_PROBLEMS = {  # each query finds what breaks one guarantee, straight from the tables
    "live sessions that are no key's current one": "SELECT id FROM sessions WHERE ended_at IS NULL"
    " AND id NOT IN (SELECT session_id FROM entries)",
    "current sessions that are ended": "SELECT e.session_id FROM entries AS e JOIN sessions AS s"
    " ON s.id = e.session_id WHERE s.ended_at IS NOT NULL",
    "sessions current for two keys": "SELECT session_id FROM entries GROUP BY session_id HAVING COUNT(*) > 1",
    "message ids stored twice": "SELECT message_id FROM messages WHERE message_id <> ''"
    " GROUP BY message_id HAVING COUNT(*) > 1",
    "wrong message_count": "SELECT id FROM sessions AS s"
    " WHERE message_count <> (SELECT COUNT(*) FROM messages AS m WHERE m.session_id = s.id)",
    "sessions without their creating event": "SELECT id FROM sessions WHERE id NOT IN"
    " (SELECT session_id FROM events WHERE kind IN ('created', 'reset', 'auto_reset'))",
    "events naming no session": "SELECT sequence FROM events"
    " WHERE session_id <> '' AND session_id NOT IN (SELECT id FROM sessions)",
    "keys whose latest event is not their current session": "SELECT session_key FROM entries AS e"
    " WHERE session_id IS DISTINCT FROM (SELECT v.session_id FROM events AS v WHERE v.session_key = e.session_key"
    " AND v.kind IN ('created', 'reset', 'auto_reset', 'switched') ORDER BY v.sequence DESC LIMIT 1)",
    "events after a gap in the sequence": "SELECT sequence FROM events AS v"
    " WHERE sequence > (SELECT MIN(sequence) FROM events)"
    " AND NOT EXISTS (SELECT 1 FROM events AS w WHERE w.sequence = v.sequence - 1)",
    "event log head behind the events": "SELECT newest FROM event_log"
    " WHERE newest <> (SELECT MAX(sequence) FROM events)",
}


def table_problems(dsn: str) -> list[str]:
    with psycopg.connect(dsn, connect_timeout=10) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot for all queries
        found = {name: connection.execute(query).fetchall() for name, query in TABLE_PROBLEMS.items()}
    return [f"{name}: {[row[0] for row in rows[:5]]}" for name, rows in found.items() if rows]


def stored_messages(
    stub: SessionStoreStub, session_ids: set[str]
) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    where: dict[str, list[tuple[str, str]]] = {}
    problems = []
    for session_id in sorted(session_ids):
        request = pb.LoadTranscriptRequest(session_id=session_id, raw=True, page_size=10_000)
        try:
            messages = list(stub.LoadTranscript(request, timeout=DEADLINE).messages)  # < 10k per session here
        except grpc.RpcError as error:
            problems.append(f"{session_id}: {error.code().name}")
            continue
        positions = [m.position for m in messages]
        if positions != sorted(set(positions)):
            problems.append(f"{session_id}: positions out of order {positions[:10]}")
        for message in messages:
            where.setdefault(message.message_id, []).append((session_id, message.text))
    return where, problems


def check(stub: SessionStoreStub, clients: list[Client], ledger: Ledger, dsn: str, extra_keys: set[str]) -> Findings:
    """Everything acknowledged is there once; what was in flight is there whole or not at all."""
    found = Findings()
    for client in clients:
        for key in client.keys:
            try:
                now: State | None = state_of(
                    stub.GetSession(pb.GetSessionRequest(session_key=key.name), timeout=DEADLINE).entry
                )
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                now = None
            in_flight = client.in_flight if client.in_flight and client.in_flight.key is key else None
            allowed = in_flight.outcomes() if in_flight else [key.last]
            ok = any(
                s == now
                or (
                    s is not None
                    and now is not None
                    and s.session_id == NEW
                    and now.session_id not in ledger.sessions
                    and (s.version, s.tokens) == (now.version, now.tokens)
                )
                for s in allowed
            )
            if not ok:
                found.lost += 1
                found.problems.append(f"{key.name} holds {now}; allowed {allowed}")
                continue
            if now is not None and key.last is not None and now.session_id == key.last.session_id:
                if now.tokens[2] < key.acked_tokens:
                    found.lost += 1
                    found.problems.append(f"{key.name}: {now.tokens[2]} tokens < {key.acked_tokens} acknowledged")
            if in_flight:
                found.not_applied += now == key.last
                found.applied += now != key.last
            if now is not None and now != key.last:  # the in-flight call went through: adopt it
                same = key.last is not None and now.session_id == key.last.session_id
                key.acked_tokens = now.tokens[2] if same else 0
                if now.session_id not in key.sessions:
                    key.sessions.append(now.session_id)
                ledger.sessions.add(now.session_id)
            key.last = now
        client.in_flight = None

    names = {key.name: key for client in clients for key in client.keys}
    request, entries = pb.ListSessionsRequest(page_size=1000), []
    while True:
        page = stub.ListSessions(request, timeout=DEADLINE)
        entries += page.entries
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    listed = Counter(entry.session_key for entry in entries)
    for entry in entries:
        key = names.get(entry.session_key)
        if key is None and entry.session_key not in extra_keys:
            found.problems.append(f"an entry nobody created: {entry.session_key}")
        elif key is not None and (key.last is None or entry.session_id != key.last.session_id):
            found.problems.append(f"{entry.session_key} listed at {entry.session_id}, GetSession said {key.last}")
    found.problems += [f"{n} listed {listed[n]} times" for n, k in names.items() if listed[n] != (k.last is not None)]

    where, problems = stored_messages(stub, ledger.sessions)
    found.problems += problems
    found.problems += [f"{mid} stored {len(at)} times" for mid, at in sorted(where.items()) if len(at) > 1][:10]
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
        found.batches_stored += all(present)
        found.batches_absent += not any(present)
        in_doubt.update(m.message_id for m in batch)
    unknown = sorted(set(where) - set(ledger.acked) - in_doubt)
    if unknown:
        found.problems.append(f"stored, never sent or acknowledged: {unknown[:10]}")
    found.problems += table_problems(dsn)
    return found


# -- the faults ------------------------------------------------------------------------------------


def terminate_backends(server: PostgresServer) -> int:
    """``pg_terminate_backend`` of every client backend but this one; how many."""
    with server.connect() as admin:
        row = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def probe_write(daemon: Daemon, tag: str, extra_keys: set[str]) -> None:
    """A get-or-create and an append through ``daemon``: it serves writes again."""
    with connected(daemon.address) as channel:
        stub = SessionStoreStub(channel)
        source = source_pb2.SessionSource(platform="telegram", chat_id=f"probe-{daemon.name}")
        entry = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source), timeout=DEADLINE).entry
        extra_keys.add(entry.session_key)
        message = transcript_pb2.Message(role="user", text=tag, message_id=f"probe-{tag}")
        request = pb.AppendMessagesRequest(session_id=entry.session_id, messages=[message])
        assert stub.AppendMessages(request, timeout=DEADLINE).appended == 1


def run_round(
    fault: str,
    number: int,
    server: PostgresServer,
    daemons: list[Daemon],
    clients: list[Client],
    ledger: Ledger,
    seed: int,
    draws: random.Random,
    extra_keys: set[str],
) -> str:
    """One round: clients, the fault at a drawn point, recovery; a line on what happened."""
    fault_after = draws.randint(*FAULT_AFTER)
    ledger.operations, ledger.running, ledger.fault = 0, len(clients), fault
    ledger.stop.clear()
    threads = [
        threading.Thread(
            target=run_client,
            args=(client, daemons[(client.number + number) % 2].address, random.Random(f"{seed}/{number}/{i}"), ledger),
            name=f"client-{client.number}",
        )
        for i, client in enumerate(clients)
    ]
    victim = daemons[number % 2]
    pids = [d.process.pid for d in daemons if d.process is not None]
    note = ""
    try:
        for thread in threads:
            thread.start()
        ledger.wait_for(fault_after)
        at_fault = ledger.operations
        if fault == "kill9":
            assert victim.process is not None
            victim.process.send_signal(signal.SIGKILL)
            assert victim.process.wait(timeout=WAIT) == -signal.SIGKILL
            ledger.wait_for(at_fault + AFTER_FAULT)  # the other daemon's clients carry on
            note = f"SIGKILL of daemon {victim.name} at {at_fault} writes"
        elif fault == "pg_immediate":
            with ExitStack() as stack:
                channels = [stack.enter_context(connected(d.address)) for d in daemons]
                server.stop("immediate")
                down = time.monotonic()
                for channel in channels:
                    wait_health(channel, NOT_SERVING)
                noticed = time.monotonic() - down
                server.start()
                for channel in channels:
                    wait_health(channel, SERVING)
                back = time.monotonic() - down
            at_return = ledger.operations
            ledger.wait_for(at_return + AFTER_FAULT)
            note = f"immediate stop at {at_fault} writes, both NOT_SERVING after {noticed:.1f}s, SERVING {back:.1f}s"
        else:
            with health_seen(daemons) as seen:
                first = terminate_backends(server)
                ledger.wait_for(at_fault + AFTER_FAULT // 2)
                second = terminate_backends(server)
                ledger.wait_for(at_fault + AFTER_FAULT)
            flaps = [statuses.count(NOT_SERVING) for statuses in seen]
            note = f"{first} then {second} backends terminated from {at_fault} writes; NOT_SERVING announced {flaps}"
            assert flaps == [0, 0], f"health flapped with the database up: {seen}"
    finally:
        ledger.stop.set()
        for thread in threads:
            thread.join(timeout=WAIT)
    assert not any(thread.is_alive() for thread in threads), "a client hung"
    if fault == "terminate":  # and once more with the daemons idle: only their health checks meet the cut
        flapped = threading.Event()
        with health_seen(daemons, flapped) as seen:
            idle = terminate_backends(server)
            # A bounded window of IDLE_CHECKS health checks for a NOT_SERVING that must not come.
            assert not flapped.wait(IDLE_CHECKS * CHECK_SECONDS), f"health flapped, idle, database up: {seen}"
        note += f"; {idle} idle backends terminated, health stayed SERVING"
    if fault == "kill9":
        victim.start()  # same socket, same database
    else:
        assert [d.process.pid for d in daemons if d.process is not None] == pids, "a daemon was restarted"
        assert all(d.process is not None and d.process.poll() is None for d in daemons), "a daemon exited"
        for daemon in daemons:  # serving writes again, without a restart
            probe_write(daemon, f"{fault}-{number}-{daemon.name}", extra_keys)
    return note


def test_two_daemons_survive_postgres_faults(tmp_path: Path) -> None:
    seed = int(os.environ.get("SESSIOND_PG_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\npostgres faults: seed {seed} (SESSIOND_PG_FAULT_SEED replays), {ROUNDS} rounds per fault")
    started = time.monotonic()
    try:
        server = PostgresServer(durable=True)
    except Unavailable as exc:
        pytest.skip(str(exc))
    logs: list[IO[bytes]] = []
    daemons: list[Daemon] = []
    try:
        server.stop("fast")  # fsync off (nothing here survives an OS crash), synchronous_commit kept on
        server.settings = ("fsync=off", "full_page_writes=off")
        server.start()
        dsn = server.fresh_dsn()
        for name, tcp in (("a", False), ("b", True)):
            root = tmp_path / name
            root.mkdir()
            logs.append(open(root / "daemon.log", "ab"))  # noqa: SIM115 - closed in finally
            schema_dsn = dsn if not tcp else dsn.replace(f"host={server.socket_dir}", "host=127.0.0.1")
            daemons.append(Daemon(name, root, schema_dsn, logs[-1]))
        assert "127.0.0.1" in daemons[1].dsn
        for daemon in daemons:
            daemon.start()
        clients = [
            Client(n, [Key(source_pb2.SessionSource(platform="telegram", chat_id=f"pg-{n}-{k}")) for k in range(2)])
            for n in range(CLIENTS)
        ]
        with connected(daemons[0].address) as channel:
            stub = SessionStoreStub(channel)
            for client in clients:
                for key in client.keys:
                    key.name = stub.BuildSessionKey(pb.BuildSessionKeyRequest(source=key.source)).session_key
        ledger, draws, extra_keys = Ledger(), random.Random(seed), set[str]()
        totals = {fault: Findings() for fault in FAULTS}
        failures = {fault: Counter[str]() for fault in FAULTS}
        number = 0
        for fault in FAULTS:
            for _ in range(ROUNDS):
                number += 1
                ledger.failures.clear()
                note = run_round(fault, number, server, daemons, clients, ledger, seed, draws, extra_keys)
                with connected(daemons[number % 2].address) as channel:
                    found = check(SessionStoreStub(channel), clients, ledger, dsn, extra_keys)
                totals[fault].add(found)
                failures[fault].update(ledger.failures)
                print(
                    f"round {number} ({fault}): {note}; {ledger.operations} writes acknowledged;"
                    f" failed calls {dict(ledger.failures)}; in-flight mutations {found.applied} applied,"
                    f" {found.not_applied} not; failed batches {found.batches_stored} whole,"
                    f" {found.batches_absent} absent; {found.lost} lost"
                )
                problems = found.problems + ledger.problems
                assert not problems, f"seed {seed}, round {number} ({fault}): {problems}"
        # the last round's failed batches, re-sent
        ledger.stop.set()
        ledger.running, ledger.fault = len(clients), "retries"
        for client in clients:
            run_client(client, daemons[0].address, random.Random(0), ledger)
        with connected(daemons[1].address) as channel:
            found = check(SessionStoreStub(channel), clients, ledger, dsn, extra_keys)
        assert not found.problems + ledger.problems, f"seed {seed}, after the retries: {found.problems}"
        assert all(client.failed is None for client in clients)
        for daemon in daemons:
            assert daemon.stop() == 0, daemon.tail()
        seconds = time.monotonic() - started
        print(f"postgres faults (seed {seed}, {seconds:.0f}s): {ROUNDS} rounds per fault, 2 daemons, {CLIENTS} clients")
        for fault in FAULTS:
            t = totals[fault]
            print(
                f"  {fault}: {ledger.writes[fault]} acknowledged writes;"
                f" failed calls {dict(failures[fault]) or 'none'};"
                f" in-flight mutations {t.applied} applied, {t.not_applied} not; failed batches"
                f" {t.batches_stored} stored whole, {t.batches_absent} absent (all retried); losses {t.lost}"
            )
        print(
            f"  {len(ledger.acked)} messages stored, {len(ledger.sessions)} sessions, {CLIENTS * KEYS_PER_CLIENT} keys"
        )
        for detail, count in sorted(ledger.details.items()):
            print(f"  {count} x {detail}")
        assert sum(t.lost for t in totals.values()) == 0
        assert set().union(*failures.values()) <= ALLOWED, failures
    except BaseException:
        for daemon in daemons:
            print(f"--- daemon {daemon.name} log tail:\n{daemon.tail()}")
        raise
    finally:
        for daemon in daemons:
            daemon.kill()
        for file in logs:
            file.close()
        server.close()
