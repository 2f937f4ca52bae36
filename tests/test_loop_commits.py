"""Writes on the event loop (SQLite): one commit per turn of the loop, the log synced before any
answer, slow syncs off the loop, and a writer held by a thread never stalls the loop.

In-process daemons, real sockets and a real database file; the slow disk and the busy writer are
made by holding the storage's own sync and lock, released by the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helpers.daemons import Running
from sessiond.storage.sqlite import SqliteStorage
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import source_pb2, transcript_pb2

pytestmark = pytest.mark.sqlite_only
Start = Callable[..., Running]
WAIT = 30.0  # a guard against hanging, never a budget: each wait ends on a signal


def storage_of(running: Running) -> SqliteStorage:
    storage = running.daemon.storage
    assert isinstance(storage, SqliteStorage)
    return storage


def session_of(running: Running, chat_id: str = "42") -> pb.GetOrCreateSessionResponse:
    source = source_pb2.SessionSource(platform="telegram", chat_id=chat_id, user_id=chat_id)
    return running.stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source), timeout=WAIT)


def append_request(session_id: str, text: str) -> pb.AppendMessagesRequest:
    return pb.AppendMessagesRequest(session_id=session_id, messages=[transcript_pb2.Message(role="user", text=text)])


def key_read(running: Running, session_key: str) -> str:
    """A read: answered from the loop whatever the writer is doing."""
    return str(running.stub.GetSession(pb.GetSessionRequest(session_key=session_key), timeout=WAIT).entry.session_id)


def messages_of(running: Running, session_id: str) -> list[str]:
    loaded = running.stub.LoadTranscript(pb.LoadTranscriptRequest(session_id=session_id), timeout=WAIT)
    return [message.text for message in loaded.messages]


class HeldSync:
    """The storage's log sync, made to wait until the test lets it go (a slow disk)."""

    def __init__(self, storage: SqliteStorage):
        self.entered, self.release = threading.Event(), threading.Event()
        self._real = storage._sync_log

    def __call__(self) -> None:
        self.entered.set()
        assert self.release.wait(WAIT)
        self._real()


def test_an_answer_waits_for_the_sync_and_a_slow_sync_stalls_no_read(start_daemon: Start) -> None:
    running = start_daemon()
    storage = storage_of(running)
    entry = session_of(running).entry
    session_id = entry.session_id
    held = HeldSync(storage)
    syncs = storage._log_syncs
    syncs._sync, syncs.on_loop = held, False  # as after slow syncs: the thread syncs
    with futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(running.stub.AppendMessages, append_request(session_id, "held"), timeout=WAIT)
        assert held.entered.wait(WAIT)
        # The commit is made and the sync is on the disk's side: the loop still reads...
        assert key_read(running, entry.session_key) == session_id
        assert messages_of(running, session_id) == ["held"]
        # ...but the writer's caller has no answer until the log is on disk.
        assert not answer.done()
        held.release.set()
        assert answer.result(WAIT).appended == 1


def test_slow_syncs_leave_the_loop_and_quick_ones_come_back(daemon: Running) -> None:
    storage = storage_of(daemon)
    session_id = session_of(daemon).entry.session_id
    syncs = storage._log_syncs
    syncs.average_s = 1.0  # as after a burst of slow syncs
    daemon.stub.AppendMessages(append_request(session_id, "slow"), timeout=WAIT)
    assert not syncs.on_loop
    written = 1
    while not syncs.on_loop:  # each quick sync pulls the average down; a bounded number of them
        daemon.stub.AppendMessages(append_request(session_id, f"quick {written}"), timeout=WAIT)
        written += 1
        assert written < 200, syncs.average_s
    assert len(messages_of(daemon, session_id)) == written


def test_a_failed_sync_fails_the_write_and_every_later_one_until_a_restart(start_daemon: Start) -> None:
    running = start_daemon({"storage": {"check_seconds": 0.05}})
    storage = storage_of(running)
    session_id = session_of(running).entry.session_id
    statuses = health_pb2_grpc.HealthStub(running.channel).Watch(health_pb2.HealthCheckRequest(), timeout=WAIT)
    assert next(statuses).status == health_pb2.HealthCheckResponse.SERVING
    storage._log_path = storage._log_path.with_name("no-such-log")  # the sync's open fails: as an I/O error
    for text in ("lost", "refused"):
        with pytest.raises(grpc.RpcError) as failed:
            running.stub.AppendMessages(append_request(session_id, text), timeout=WAIT)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "sync failed" in str(failed.value.details()) and "restart the daemon" in str(failed.value.details())
    assert next(statuses).status == health_pb2.HealthCheckResponse.NOT_SERVING
    statuses.cancel()


def test_a_writer_held_by_a_thread_sends_writes_to_a_thread_and_reads_go_on(daemon: Running) -> None:
    storage = storage_of(daemon)
    entry = session_of(daemon).entry
    session_id = entry.session_id
    with futures.ThreadPoolExecutor(1) as pool:
        with storage._writer_lock:  # as a long maintenance write would
            answer = pool.submit(daemon.stub.AppendMessages, append_request(session_id, "queued"), timeout=WAIT)
            assert key_read(daemon, entry.session_key) == session_id  # the loop is not stalled
            assert messages_of(daemon, session_id) == []
            assert not answer.done()
        assert answer.result(WAIT).appended == 1
    assert messages_of(daemon, session_id) == ["queued"]


def test_writes_of_many_callers_all_land_once(daemon: Running) -> None:
    """64 callers appending at once: turns gather several writes each, and every one is stored once."""
    session_id = session_of(daemon).entry.session_id
    texts = [f"m{n}" for n in range(64)]

    def append(text: str) -> pb.AppendMessagesResponse:
        return daemon.stub.AppendMessages(append_request(session_id, text), timeout=WAIT)

    with futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(append, texts))
    assert all(answer.appended == 1 for answer in answers)
    assert sorted(messages_of(daemon, session_id)) == sorted(texts)


def test_failing_writes_in_a_turn_undo_only_themselves(daemon: Running) -> None:
    """Callers whose write fails (an unknown session) among callers whose write works, at once: a
    turn's first write has no savepoint and the others each have one; either way a failure takes
    nothing of the others with it."""
    session_id = session_of(daemon).entry.session_id
    targets = [session_id if n % 2 else f"unknown-{n}" for n in range(64)]

    def append(number: int) -> grpc.StatusCode:
        try:
            daemon.stub.AppendMessages(append_request(targets[number], f"m{number}"), timeout=WAIT)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    with futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(append, range(64)))
    assert codes == [grpc.StatusCode.OK if n % 2 else grpc.StatusCode.NOT_FOUND for n in range(64)]
    assert sorted(messages_of(daemon, session_id)) == sorted(f"m{n}" for n in range(1, 64, 2))
