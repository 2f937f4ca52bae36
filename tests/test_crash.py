"""kill -9 smoke test: nothing acknowledged is lost or stored twice, and the database stays sound.

The daemon runs as its own process (``python -m sessiond.cli serve``). Four client threads
create sessions and append messages with message ids, recording every acknowledged append; once
a fixed number of appends has been acknowledged (counted under a lock, an Event tells the main
thread) the daemon gets SIGKILL. It is restarted on the same database and every acknowledged
message must be there exactly once; the batches whose calls failed at the kill are sent again
(a client's retry) and must end up stored exactly once too. The restarted daemon is stopped with
SIGTERM and ``PRAGMA integrity_check`` must say "ok". Three rounds on one database, each also
checking everything acknowledged in the rounds before. No sleeps: readiness is the health
service's answer, waiting is on events, and every RPC has a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import apsw
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sessiond.v1 import session_store_pb2 as pb
from sessiond.v1 import source_pb2, transcript_pb2
from sessiond.v1.session_store_pb2_grpc import SessionStoreStub

ROUNDS = 3
CLIENTS = 4
KILL_AFTER = 300  # acknowledged appends per round before SIGKILL
PER_SESSION = 20  # appends before a client moves on to a new session (force_new)
DEADLINE = 10.0  # seconds, on every RPC
START_TIMEOUT = 30.0
CHANNEL_OPTIONS = [  # reconnect quickly while the daemon starts or restarts
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]
SERVICE = "sessiond.v1.SessionStore"


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    address: str
    log: Path


@contextmanager
def channel_to(address: str) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    try:
        grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
        yield channel
    finally:
        channel.close()


def start(tmp_path: Path, log: IO[bytes]) -> Daemon:
    """The daemon as a separate process, once its health service says SERVING."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    env.update(XDG_RUNTIME_DIR=str(tmp_path / "run"), XDG_STATE_HOME=str(tmp_path / "state"))
    socket, db = tmp_path / "run" / "sessiond.sock", tmp_path / "state" / "sessiond.db"
    command = [sys.executable, "-m", "sessiond.cli", "serve", "--socket", str(socket), "--db", str(db)]
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    daemon = Daemon(process, f"unix:{socket}", Path(log.name))
    try:
        with channel_to(daemon.address) as channel:
            request = health_pb2.HealthCheckRequest(service=SERVICE)
            health = health_pb2_grpc.HealthStub(channel)
            for answer in health.Watch(request, timeout=START_TIMEOUT):  # no polling: updates are pushed
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            assert health.Check(request, timeout=DEADLINE).status == health_pb2.HealthCheckResponse.SERVING
    except Exception:
        process.kill()
        process.wait(timeout=START_TIMEOUT)
        raise AssertionError(f"the daemon did not start serving:\n{daemon.log.read_text()[-2000:]}") from None
    return daemon


@dataclass
class Ledger:
    """What the clients were told, shared by all client threads."""

    acked: dict[str, tuple[str, str]] = field(default_factory=dict)  # message id -> (session id, text)
    in_doubt: list[tuple[str, list[transcript_pb2.Message]]] = field(default_factory=list)  # failed batches
    sessions: set[str] = field(default_factory=set)
    heads: dict[str, str] = field(default_factory=dict)  # key -> session id it was last acknowledged at
    appends: int = 0  # acknowledged AppendMessages calls of this round
    messages: int = 0  # messages in them, all rounds
    unexpected: list[str] = field(default_factory=list)  # failures before the kill
    lock: threading.Lock = field(default_factory=threading.Lock)
    enough: threading.Event = field(default_factory=threading.Event)
    killing: threading.Event = field(default_factory=threading.Event)

    def failed(self, error: grpc.RpcError) -> None:
        if not self.killing.is_set():
            with self.lock:
                self.unexpected.append(f"{error.code()}: {error.details()}")


def client(address: str, round_: int, number: int, ledger: Ledger) -> None:
    """Create sessions and append 1-3 messages a call until the daemon stops answering."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = SessionStoreStub(channel)
        source = source_pb2.SessionSource(platform="telegram", chat_id=f"crash-{round_}-{number}")
        sent, key = 0, None
        while True:
            try:
                request = pb.GetOrCreateSessionRequest(source=source, force_new=sent > 0)
                entry = stub.GetOrCreateSession(request, timeout=DEADLINE).entry
            except grpc.RpcError as error:
                ledger.failed(error)
                with ledger.lock:
                    ledger.heads.pop(key or "", None)  # the key may or may not have moved on
                return
            key = entry.session_key
            with ledger.lock:
                ledger.sessions.add(entry.session_id)
                ledger.heads[entry.session_key] = entry.session_id
            for _ in range(PER_SESSION):
                size = 1 + sent % 3
                batch = [
                    transcript_pb2.Message(
                        role="user" if n % 2 else "assistant",
                        text=f"round {round_} client {number} message {n}",
                        message_id=f"r{round_}-c{number}-m{n}",
                    )
                    for n in range(sent, sent + size)
                ]
                sent += size
                try:
                    request = pb.AppendMessagesRequest(session_id=entry.session_id, messages=batch)
                    stub.AppendMessages(request, timeout=DEADLINE)
                except grpc.RpcError as error:
                    ledger.failed(error)
                    with ledger.lock:
                        ledger.in_doubt.append((entry.session_id, batch))
                    return
                with ledger.lock:
                    for message in batch:
                        ledger.acked[message.message_id] = (entry.session_id, message.text)
                    ledger.appends += 1
                    ledger.messages += len(batch)
                    if ledger.appends >= KILL_AFTER:
                        ledger.enough.set()


def transcripts(stub: SessionStoreStub, session_ids: set[str]) -> dict[str, list[transcript_pb2.Message]]:
    stored = {}
    for session_id in sorted(session_ids):
        messages: list[transcript_pb2.Message] = []
        request = pb.LoadTranscriptRequest(session_id=session_id, raw=True)
        while True:
            response = stub.LoadTranscript(request, timeout=DEADLINE)
            messages.extend(response.messages)
            if not response.next_page_token:
                break
            request.page_token = response.next_page_token
        assert [m.position for m in messages] == list(range(len(messages))), f"{session_id}: positions have holes"
        stored[session_id] = messages
    return stored


def check(stub: SessionStoreStub, ledger: Ledger) -> int:
    """Every acknowledged message once, no message id twice; the number lost (asserted 0 by the caller)."""
    stored = transcripts(stub, ledger.sessions)
    where: dict[str, list[tuple[str, str]]] = {}
    for session_id, messages in stored.items():
        for message in messages:
            where.setdefault(message.message_id, []).append((session_id, message.text))
    duplicates = {mid: places for mid, places in where.items() if len(places) > 1}
    assert not duplicates, f"stored more than once: {sorted(duplicates)[:10]}"
    for _, batch in ledger.in_doubt:  # one call is one transaction: all of it or none
        present = [m.message_id in where for m in batch]
        assert all(present) or not any(present), f"half a batch stored: {[m.message_id for m in batch]}"
    lost = [mid for mid, place in ledger.acked.items() if where.get(mid) != [place]]
    for key, session_id in ledger.heads.items():
        entry = stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE).entry
        assert entry.session_id == session_id, f"{key}: acknowledged session {session_id} is not current"
    return len(lost)


def integrity(db: Path) -> str:
    connection = apsw.Connection(str(db))
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchall()[0][0])
    finally:
        connection.close()


def stop(daemon: Daemon) -> None:
    """SIGTERM, and a clean exit; killed if it does not come."""
    daemon.process.send_signal(signal.SIGTERM)
    try:
        code = daemon.process.wait(timeout=START_TIMEOUT)
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
    assert code == 0, daemon.log.read_text()[-2000:]


def test_kill_9_loses_no_acknowledged_append(tmp_path: Path) -> None:
    db = tmp_path / "state" / "sessiond.db"
    ledger = Ledger()
    appends = retried = losses = 0
    with open(tmp_path / "sessiond.log", "ab") as log:
        for round_ in range(ROUNDS):
            daemon = start(tmp_path, log)
            try:
                with channel_to(daemon.address) as channel:
                    assert check(SessionStoreStub(channel), ledger) == 0, "lost before this round began"
                ledger.appends, ledger.in_doubt = 0, []
                ledger.enough.clear()
                ledger.killing.clear()
                clients = [
                    threading.Thread(target=client, args=(daemon.address, round_, n, ledger), name=f"client-{n}")
                    for n in range(CLIENTS)
                ]
                for thread in clients:
                    thread.start()
                assert ledger.enough.wait(timeout=60), f"only {ledger.appends} appends acknowledged"
                ledger.killing.set()
                daemon.process.send_signal(signal.SIGKILL)
                assert daemon.process.wait(timeout=START_TIMEOUT) == -signal.SIGKILL
                for thread in clients:
                    thread.join(timeout=2 * DEADLINE)
                assert not any(thread.is_alive() for thread in clients), "a client hung after the kill"
                assert not ledger.unexpected, f"calls failed before the kill: {ledger.unexpected}"
            finally:
                if daemon.process.poll() is None:
                    daemon.process.kill()
                    daemon.process.wait()

            daemon = start(tmp_path, log)  # on the same database; the killed daemon's socket is stale
            try:
                with channel_to(daemon.address) as channel:
                    stub = SessionStoreStub(channel)
                    lost = check(stub, ledger)
                    for session_id, batch in ledger.in_doubt:  # what a client retries after reconnecting
                        request = pb.AppendMessagesRequest(session_id=session_id, messages=batch)
                        response = stub.AppendMessages(request, timeout=DEADLINE)
                        assert response.appended + response.duplicates == len(batch)
                        for message in batch:
                            ledger.acked[message.message_id] = (session_id, message.text)
                    lost += check(stub, ledger)
            finally:
                stop(daemon)
            result = integrity(db)
            print(
                f"\nround {round_ + 1}: SIGKILL after {ledger.appends} acknowledged appends; "
                f"{len(ledger.in_doubt)} failed batches retried after the restart; {lost} lost; "
                f"integrity_check {result}; {len(ledger.acked)} messages stored so far"
            )
            assert result == "ok"
            assert lost == 0
            appends += ledger.appends
            retried += len(ledger.in_doubt)
            losses += lost
    print(
        f"crash: {ROUNDS} rounds, {appends} acknowledged appends ({ledger.messages} messages), "
        f"{retried} failed batches retried, {losses} losses"
    )
