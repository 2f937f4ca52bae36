"""The daemon as a separate process (``python -m sessiond.cli serve``) on a directory's socket and
database, and what its file and its transcripts show afterwards: shared by the kill -9 harness
(``test_crash``) and the shutdown tests (``test_shutdown``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import apsw
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import transcript_pb2
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub

DEADLINE = 10.0  # seconds, on every RPC
START_TIMEOUT = 120.0  # a hang guard on readiness signals (the "serving" line), generous for a busy machine
CHANNEL_OPTIONS = [  # reconnect quickly while the daemon starts or restarts
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
]
SERVICE = "sessiond.v1.SessionStore"


@dataclass
class Daemon:
    process: subprocess.Popen[bytes]
    address: str
    log: Path
    db: Path


class DaemonExited(AssertionError):
    """The daemon process ended before it served; ``code`` is its exit status, ``log`` what it wrote."""

    def __init__(self, code: int | None, log: str):
        super().__init__(f"the daemon did not start serving (exit status {code}):\n{log[-2000:]}")
        self.code, self.log = code, log


@contextmanager
def channel_to(address: str, process: subprocess.Popen[bytes] | None = None) -> Iterator[grpc.Channel]:
    """A connected channel; with ``process``, waiting stops as soon as that process ends."""
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    try:
        ready = grpc.channel_ready_future(channel)
        if process is not None:

            def cancel_when_gone() -> None:
                process.wait()
                ready.cancel()

            threading.Thread(target=cancel_when_gone, name="exit-watch", daemon=True).start()
        ready.result(timeout=START_TIMEOUT)
        yield channel
    finally:
        channel.close()


def write_config(root: Path, grace_seconds: float = 10) -> Path:
    """A configuration without policy resets (no daily boundary may fall inside a run)."""
    path = root / "sessiond.toml"
    path.write_text(f'[server]\ngrace_seconds = {grace_seconds}\n\n[reset.default]\nmode = "none"\n')
    return path


def start(root: Path, log: IO[bytes], config: Path | None = None) -> Daemon:
    """The daemon as a separate process on ``root``'s socket and database, once health says SERVING."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    env.update(XDG_RUNTIME_DIR=str(root / "run"), XDG_STATE_HOME=str(root / "state"))
    socket, db = root / "run" / "sessiond.sock", root / "state" / "sessiond.db"
    command = [sys.executable, "-m", "sessiond.cli", "serve", "--socket", str(socket), "--db", str(db)]
    if config is not None:
        command += ["--config", str(config)]
    log.flush()
    offset = os.fstat(log.fileno()).st_size  # this process's lines start here
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    daemon = Daemon(process, f"unix:{socket}", Path(log.name), db)
    try:
        with channel_to(daemon.address, process) as channel:
            request = health_pb2.HealthCheckRequest(service=SERVICE)
            health = health_pb2_grpc.HealthStub(channel)
            for answer in health.Watch(request, timeout=START_TIMEOUT):  # no polling: updates are pushed
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            assert health.Check(request, timeout=DEADLINE).status == health_pb2.HealthCheckResponse.SERVING
    except Exception as exc:
        if process.poll() is None:
            process.kill()  # it still ran: the health check failed (``exc`` says how)
        code = process.wait(timeout=START_TIMEOUT)
        with open(daemon.log, "rb") as written:
            written.seek(offset)
            raise DaemonExited(code, f"{written.read().decode(errors='replace')}\n(health: {exc!r})") from None
    return daemon


def stop(daemon: Daemon, timeout: float = START_TIMEOUT) -> int:
    """SIGTERM, and a clean exit (asserted); killed if it does not come. The exit status."""
    daemon.process.send_signal(signal.SIGTERM)
    try:
        code = daemon.process.wait(timeout=timeout)
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
    assert code == 0, daemon.log.read_text()[-2000:]
    return code


def kill(daemon: Daemon) -> None:
    if daemon.process.poll() is None:
        daemon.process.kill()
        daemon.process.wait()


def integrity(db: Path) -> str:
    connection = apsw.Connection(str(db))
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchall()[0][0])
    finally:
        connection.close()


EVENT_PROBLEMS = {  # each query finds what breaks "an event exists exactly when its change committed"
    "sessions without their creating event": "SELECT id FROM sessions WHERE id NOT IN"
    " (SELECT session_id FROM events WHERE kind IN ('created', 'reset', 'auto_reset'))",
    "events naming a session that does not exist (and was not deleted)": "SELECT sequence FROM events"
    " WHERE session_id <> '' AND session_id NOT IN (SELECT id FROM sessions)"
    " AND session_id NOT IN (SELECT session_id FROM events WHERE kind = 'session_deleted')",
    "sessions deleted yet still stored": "SELECT id FROM sessions"
    " WHERE id IN (SELECT session_id FROM events WHERE kind = 'session_deleted')",
    "keys whose latest event is not their current session": "SELECT session_key FROM entries AS e"
    " WHERE session_id IS NOT (SELECT v.session_id FROM events AS v WHERE v.session_key = e.session_key"
    " AND v.kind IN ('created', 'reset', 'auto_reset', 'switched') ORDER BY v.sequence DESC LIMIT 1)",
    "events after a gap in the sequence": "SELECT sequence FROM events AS v"
    " WHERE sequence > (SELECT MIN(sequence) FROM events)"
    " AND NOT EXISTS (SELECT 1 FROM events AS w WHERE w.sequence = v.sequence - 1)",
}
# Each finds where the full-text index and the messages disagree (when the index is complete):
# a text message its own words do not find, and an index entry of a message no longer stored.
SEARCH_PROBLEMS = {
    "messages their own text does not find": "SELECT m.id FROM messages AS m"
    " WHERE NOT m.content_is_json AND m.content GLOB '*[0-9A-Za-z]*' AND NOT EXISTS (SELECT 1 FROM message_index"
    " WHERE message_index MATCH '\"' || replace(m.content, '\"', '\"\"') || '\"' AND rowid = m.id)",
    "index entries of messages no longer stored": "SELECT d.id FROM message_index_docsize AS d"
    " WHERE NOT EXISTS (SELECT 1 FROM messages AS m WHERE m.id = d.id)",
}


def _has_table(connection: apsw.Connection, name: str) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_schema WHERE name = ?", (name,)).fetchone() is not None


def file_problems(db: Path) -> list[str]:
    """What reading the file directly shows (read-only; the daemon may be running).

    The sessions not ended must be exactly the entries' current ones (no key holds two live
    sessions, none is orphaned open), no session is current for two keys, no message id is
    stored twice, each session's message_count matches its messages, the event log agrees with
    the rest (``EVENT_PROBLEMS``), and so does the full-text index, once built (``SEARCH_PROBLEMS``).
    """
    connection = apsw.Connection(str(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        connection.execute("BEGIN")
        live = {row[0] for row in connection.execute("SELECT id FROM sessions WHERE ended_at IS NULL")}
        current = [row[0] for row in connection.execute("SELECT session_id FROM entries")]
        twice = connection.execute(
            "SELECT message_id FROM messages WHERE message_id <> '' GROUP BY message_id HAVING COUNT(*) > 1"
        ).fetchall()
        miscounted = connection.execute(
            "SELECT id FROM sessions AS s"
            " WHERE message_count <> (SELECT COUNT(*) FROM messages AS m WHERE m.session_id = s.id)"
        ).fetchall()
        events = {problem: connection.execute(sql).fetchall() for problem, sql in EVENT_PROBLEMS.items()}
        built = "SELECT next_id >= end_id FROM search_backfill"  # the index covers every message
        if _has_table(connection, "message_index") and connection.execute(built).fetchone()[0]:
            events.update({problem: connection.execute(sql).fetchall() for problem, sql in SEARCH_PROBLEMS.items()})
        connection.execute("COMMIT")
    finally:
        connection.close()
    problems = []
    if live - set(current):
        problems.append(f"live sessions {sorted(live - set(current))[:5]} are no key's current one")
    if set(current) - live:
        problems.append(f"current sessions {sorted(set(current) - live)[:5]} are ended")
    if len(set(current)) != len(current):
        problems.append("one session is current for two keys")
    if twice:
        problems.append(f"message ids stored twice: {[row[0] for row in twice[:10]]}")
    if miscounted:
        problems.append(f"message_count wrong for {[row[0] for row in miscounted[:10]]}")
    problems += [f"{problem}: {[row[0] for row in rows[:10]]}" for problem, rows in events.items() if rows]
    return problems


def load_transcript(
    stub: SessionStoreStub, session_id: str, include_hidden: bool = False
) -> list[transcript_pb2.Message]:
    messages: list[transcript_pb2.Message] = []
    request = pb.LoadTranscriptRequest(session_id=session_id, raw=True, page_size=10_000, include_hidden=include_hidden)
    while True:
        response = stub.LoadTranscript(request, timeout=DEADLINE)
        messages.extend(response.messages)
        if not response.next_page_token:
            return messages
        request.page_token = response.next_page_token


def stored_messages(
    stub: SessionStoreStub, session_ids: set[str], missing: list[str] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """message id -> every (session id, text) it is stored at, over ``session_ids`` (4 loads at a time),
    rewound and archived messages included.

    A session the daemon does not know (NOT_FOUND) is added to ``missing``.
    """

    def load(session_id: str) -> list[transcript_pb2.Message] | None:
        try:
            return load_transcript(stub, session_id, include_hidden=True)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND or missing is None:
                raise
            missing.append(session_id)
            return None

    ordered = sorted(session_ids)
    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = dict(zip(ordered, pool.map(load, ordered), strict=True))
    where: dict[str, list[tuple[str, str]]] = {}
    for session_id, messages in loaded.items():
        if messages is None:
            continue
        positions = [m.position for m in messages]  # an archived range and its summary share its last one
        assert positions == sorted(positions) and sorted(set(positions)) == list(range(len(set(positions)))), (
            f"{session_id}: positions out of order or with holes"
        )
        for message in messages:
            where.setdefault(message.message_id, []).append((session_id, message.text))
    return where
