"""Shutdown under load, and deadlines: nothing acknowledged is lost, nothing expired is written.

``test_sigterm_under_load_drains_cleanly``: the daemon as a separate process (grace 5 s), 8 writer
threads each on its own channel and key (GetOrCreateSession every tenth call, otherwise
AppendMessages batches of 1-5 messages with message ids), and a health Watch stream. The writer
whose acknowledgement reaches a fixed count sends SIGTERM while the others' calls are in flight;
every writer goes on until its first failed call. Then: the process exits 0 within grace + margin;
every call succeeded or failed with UNAVAILABLE, CANCELLED or DEADLINE_EXCEEDED (never INTERNAL
or UNKNOWN, and the daemon logged no unexpected exception); the Watch stream was told
NOT_SERVING (before the process exited: the daemon sent it); restarted on the same database,
every acknowledged message is stored exactly once, a failed batch whole or not at all, each key
at its acknowledged session; stopped again, ``PRAGMA integrity_check`` says "ok".

``test_an_expired_deadline_writes_nothing`` (in-process daemon): calls sent with a deadline that
has already passed answer DEADLINE_EXCEEDED and change nothing; and calls whose deadline passes
while they wait for the writer (the test holds the storage's writer lock) are skipped when
the writer reaches them, also inside a group commit with a live call that does go through.

No sleeps: waiting is on events, futures and the health service.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from helpers import process
from helpers.daemons import Running
from helpers.process import CHANNEL_OPTIONS, DEADLINE, SERVICE, START_TIMEOUT, load_transcript
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import source_pb2, transcript_pb2
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub

GRACE = 5.0  # server.grace_seconds of the daemon under test
MARGIN = 10.0  # what exiting may take beyond the grace (interpreter teardown on a busy machine)
WRITERS = 8
TERM_AFTER = 200  # acknowledged writes before SIGTERM
MAX_CALLS = 5_000  # per writer: a guard
CLEAN = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass
class Writer:
    number: int
    key: str = ""
    session_id: str = ""  # the key's session, from the acknowledged GetOrCreateSession answers
    version: int = 0  # the entry version of the last acknowledged one
    get_in_flight: bool = False  # the failed call was a GetOrCreateSession
    failed: tuple[str, list[transcript_pb2.Message]] | None = None  # the failed batch, if any


@dataclass
class Load:
    acked: dict[str, tuple[str, str]] = field(default_factory=dict)  # message id -> (session id, text)
    writes: Counter[str] = field(default_factory=Counter)
    after_term: int = 0  # writes acknowledged after SIGTERM was sent
    failures: Counter[str] = field(default_factory=Counter)  # status code names of failed calls
    sent_before: Counter[str] = field(default_factory=Counter)  # ... of those among them sent before SIGTERM
    samples: dict[str, str] = field(default_factory=dict)  # status code name -> one failure's details
    unclean: list[str] = field(default_factory=list)  # failures with any other code
    problems: list[str] = field(default_factory=list)
    term_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    terminated: threading.Event = field(default_factory=threading.Event)

    def ack(self, kind: str, daemon: process.Daemon) -> None:
        """Count one acknowledged write (under ``lock``); the one reaching TERM_AFTER sends SIGTERM."""
        self.writes[kind] += 1
        if self.terminated.is_set():
            self.after_term += 1
        elif sum(self.writes.values()) >= TERM_AFTER:
            self.terminated.set()
            self.term_at = time.monotonic()
            daemon.process.terminate()


def write(writer: Writer, daemon: process.Daemon, load: Load) -> None:
    """GetOrCreateSession, then appends (a get every tenth call), until the first failed call."""
    source = source_pb2.SessionSource(platform="slack", chat_id=f"shutdown-{writer.number}")
    sent, before_term = 0, True
    try:
        with grpc.insecure_channel(daemon.address, options=CHANNEL_OPTIONS) as channel:
            stub = SessionStoreStub(channel)
            for call in range(MAX_CALLS):
                before_term = not load.terminated.is_set()
                if not writer.session_id or call % 10 == 0:
                    writer.get_in_flight = True
                    request = pb.GetOrCreateSessionRequest(source=source)
                    entry = stub.GetOrCreateSession(request, timeout=DEADLINE).entry
                    writer.get_in_flight = False
                    with load.lock:
                        expected = (writer.session_id, writer.version + 1)  # the same session, one change on
                        if writer.session_id and (entry.session_id, entry.version) != expected:
                            load.problems.append(f"writer {writer.number}: get answered {entry}")
                        writer.key, writer.session_id = entry.session_key, entry.session_id
                        writer.version = entry.version
                        load.ack("get_or_create", daemon)
                    continue
                size = 1 + (call * 7 + writer.number) % 5
                batch = [
                    transcript_pb2.Message(
                        role="user", text=f"writer {writer.number} message {n}", message_id=f"w{writer.number}-m{n}"
                    )
                    for n in range(sent, sent + size)
                ]
                sent += size
                request = pb.AppendMessagesRequest(session_id=writer.session_id, messages=batch)
                try:
                    response = stub.AppendMessages(request, timeout=DEADLINE)
                except grpc.RpcError:
                    writer.failed = (writer.session_id, batch)
                    raise
                with load.lock:
                    if (response.appended, response.duplicates) != (size, 0):
                        load.problems.append(f"{batch[0].message_id}..: {response.appended} of {size} appended")
                    for message in batch:
                        load.acked[message.message_id] = (writer.session_id, message.text)
                    load.ack("append", daemon)
    except grpc.RpcError as error:
        with load.lock:
            load.failures[error.code().name] += 1
            load.sent_before[error.code().name] += before_term
            load.samples.setdefault(error.code().name, str(error.details())[:90])
            if error.code() not in CLEAN:
                load.unclean.append(f"writer {writer.number}: {error.code().name}: {error.details()}")


def watch(daemon: process.Daemon, seen: list[tuple[str, float]], serving: threading.Event) -> None:
    """Follow health; on NOT_SERVING, note when and hang up (an open stream would hold the drain)."""
    with grpc.insecure_channel(daemon.address, options=CHANNEL_OPTIONS) as channel:
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        stream = health_pb2_grpc.HealthStub(channel).Watch(request, timeout=START_TIMEOUT + GRACE + MARGIN)
        try:
            for answer in stream:
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
                seen.append((status, time.monotonic()))
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    serving.set()
                elif answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    stream.cancel()
                    return
        except grpc.RpcError as error:
            seen.append((f"stream ended: {error.code().name}", time.monotonic()))


def test_sigterm_under_load_drains_cleanly(tmp_path: Path) -> None:
    config = process.write_config(tmp_path, grace_seconds=GRACE)
    load, writers = Load(), [Writer(number) for number in range(WRITERS)]
    seen: list[tuple[str, float]] = []
    log_path = tmp_path / "sessiond.log"
    with open(log_path, "ab") as log:
        daemon = process.start(tmp_path, log, config)
        try:
            serving = threading.Event()
            watcher = threading.Thread(target=watch, args=(daemon, seen, serving), name="watcher")
            watcher.start()
            assert serving.wait(timeout=START_TIMEOUT), seen
            threads = [
                threading.Thread(target=write, args=(w, daemon, load), name=f"writer-{w.number}") for w in writers
            ]
            for thread in threads:
                thread.start()
            assert load.terminated.wait(timeout=60), f"only {sum(load.writes.values())} writes: {load.unclean}"
            code = daemon.process.wait(timeout=GRACE + MARGIN)
            exited = time.monotonic()
            for thread in [*threads, watcher]:
                thread.join(timeout=2 * DEADLINE)
            assert not any(thread.is_alive() for thread in [*threads, watcher]), "a client hung"
        finally:
            process.kill(daemon)
        assert code == 0, log_path.read_text()[-2000:]
        drained = exited - load.term_at
        told = [at for status, at in seen if status == "NOT_SERVING"]

        daemon = process.start(tmp_path, log, config)  # on the same database
        try:
            with process.channel_to(daemon.address) as channel:
                stub = SessionStoreStub(channel)
                where = process.stored_messages(stub, {w.session_id for w in writers if w.session_id})
                problems = list(load.problems)
                lost = sorted(mid for mid, place in load.acked.items() if where.get(mid) != [place])
                twice = sorted(mid for mid, places in where.items() if len(places) > 1)
                stored_whole = absent = 0
                in_doubt = set()
                for writer in writers:
                    if writer.failed is not None:
                        session_id, batch = writer.failed
                        present = [where.get(m.message_id) == [(session_id, m.text)] for m in batch]
                        if any(present) and not all(present):
                            problems.append(f"half a batch stored: {[m.message_id for m in batch]}")
                        stored_whole += all(present)
                        absent += not any(present)
                        in_doubt.update(m.message_id for m in batch)
                    if writer.key:
                        entry = stub.GetSession(pb.GetSessionRequest(session_key=writer.key), timeout=DEADLINE).entry
                        versions = (writer.version, writer.version + 1) if writer.get_in_flight else (writer.version,)
                        if entry.session_id != writer.session_id or entry.version not in versions:
                            problems.append(f"writer {writer.number}: {entry.session_id} v{entry.version}")
                unknown = sorted(set(where) - set(load.acked) - in_doubt)
        finally:
            process.stop(daemon)
    result = process.integrity(daemon.db)
    problems += process.file_problems(daemon.db)
    daemon_log = log_path.read_text()
    health = f"NOT_SERVING pushed {told[0] - load.term_at:.3f} s after SIGTERM" if told else "NOT_SERVING not seen"
    print(
        f"\nshutdown: SIGTERM after {TERM_AFTER} acknowledged writes ({dict(load.writes)} in all,"
        f" {load.after_term} of them acknowledged after the signal); failed calls {dict(load.failures)}"
        f" (sent before the signal {dict(load.sent_before)}; e.g. {load.samples});"
        f" exit {code} {drained:.2f} s after SIGTERM (grace {GRACE:g} s); {health}"
    )
    print(
        f"shutdown: after the restart {len(load.acked)} acknowledged messages, {len(lost)} lost,"
        f" {len(twice)} stored twice; failed batches {stored_whole} stored whole, {absent} absent;"
        f" integrity_check {result}"
    )
    assert drained <= GRACE + MARGIN
    assert not load.unclean, load.unclean
    assert '"rpc failed"' not in daemon_log, "the daemon logged an unexpected exception"
    assert told, f"health never said NOT_SERVING on the Watch stream: {seen}"
    assert not lost and not twice and not unknown, (lost[:10], twice[:10], unknown[:10])
    assert not problems, problems
    assert result == "ok"


# -- deadlines -------------------------------------------------------------------------------------

NO_RESETS = {"reset": {"default": {"mode": "none"}}}
PAST = -1.0  # a timeout that puts the deadline one second in the past
QUEUED = 0.3  # seconds: the deadline of calls held behind the writer lock
TINY = 0.000001  # a 1 us timeout: expired on arrival, or (rounded up to a millisecond by gRPC) just not
TINY_CALLS = 60


@dataclass
class Job:
    remaining: float | None  # the deadline minus the time the write reached the storage (s)
    ran: bool = False  # the unit of work was run (and so committed with its batch)


def _message(message_id: str) -> transcript_pb2.Message:
    return transcript_pb2.Message(role="user", text=message_id, message_id=message_id)


def _append(session_id: str, *message_ids: str) -> pb.AppendMessagesRequest:
    return pb.AppendMessagesRequest(session_id=session_id, messages=[_message(m) for m in message_ids])


def _code(call: Callable[[], Any]) -> str:
    try:
        call()
    except grpc.RpcError as error:
        return str(error.code().name)
    return "OK"


def test_an_expired_deadline_writes_nothing(
    start_daemon: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    running = start_daemon(NO_RESETS)
    stub = running.stub
    source = source_pb2.SessionSource(platform="telegram", chat_id="deadlines")
    entry = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source), timeout=DEADLINE).entry
    key, session_id = entry.session_key, entry.session_id
    stub.AppendMessages(_append(session_id, "before-0", "before-1", "before-2"), timeout=DEADLINE)
    before = stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE).entry
    usage = pb.UsageDelta(input_tokens=5, total_tokens=5)

    # Every write reaching the storage is recorded: how much of its deadline was left, whether it ran.
    storage = running.daemon.storage
    jobs: list[Job] = []
    entered = threading.Semaphore(0)
    original = storage.write

    def recorded(work: Callable[[Any], Any], deadline: float | None = None) -> Any:
        job = Job(None if deadline is None else deadline - time.monotonic())
        jobs.append(job)
        entered.release()

        def run(transaction: Any) -> Any:
            job.ran = True
            return work(transaction)

        return original(run, deadline)

    monkeypatch.setattr(storage, "write", recorded)

    # 1. A deadline in the past: refused, whatever the call.
    calls: list[Callable[[], Any]] = [
        lambda: stub.AppendMessages(_append(session_id, "past"), timeout=PAST),
        lambda: stub.UpdateSession(pb.UpdateSessionRequest(session_key=key, usage=usage), timeout=PAST),
        lambda: stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=PAST),
        lambda: stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source, force_new=True), timeout=PAST),
    ]
    past = Counter(_code(call) for call in calls * 5)
    assert past == {"DEADLINE_EXCEEDED": 20}
    assert not any(job.ran for job in jobs)

    # 2. Deadlines that pass while the calls wait for the writer (the test holds the writer lock):
    # the daemon's own check skips them when the writer reaches them, in the same group commit as
    # a live call that does go through.
    with storage._writer_lock:
        futures = [
            stub.AppendMessages.future(_append(session_id, "queued"), timeout=QUEUED),
            stub.UpdateSession.future(pb.UpdateSessionRequest(session_key=key, usage=usage), timeout=QUEUED),
            stub.ResetSession.future(pb.ResetSessionRequest(session_key=key), timeout=QUEUED),
            stub.GetOrCreateSession.future(pb.GetOrCreateSessionRequest(source=source, force_new=True), timeout=QUEUED),
        ]
        for _ in futures:
            assert entered.acquire(timeout=DEADLINE), "a call never reached the storage"
        queued = Counter(_code(future.result) for future in futures)  # waits for the client deadlines
        live = stub.AppendMessages.future(_append(session_id, "live"), timeout=DEADLINE)
        assert entered.acquire(timeout=DEADLINE)
    assert live.result().appended == 1  # committed: the expired jobs queued before it are done with
    assert queued == {"DEADLINE_EXCEEDED": 4}
    assert [job.ran for job in jobs[-5:]] == [False, False, False, False, True]
    after = stub.GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE).entry
    assert after == before, "an expired call changed the entry"
    stored = [m.message_id for m in load_transcript(stub, session_id)]
    assert stored == ["before-0", "before-1", "before-2", "live"], stored

    # 3. A 1 us timeout: gRPC carries deadlines in whole milliseconds, so the daemon may see a
    # fraction of a millisecond left. A write that reached the storage after its deadline is never
    # run; an acknowledged one is stored; one answered DEADLINE_EXCEEDED is in doubt (its deadline
    # may have passed during the commit, as for any call). Only race-free facts are asserted: a
    # handler whose caller gave up may still be on its way to the storage.
    tiny = stub.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source, force_new=True)).entry.session_id
    jobs.clear()
    outcomes = {}
    for n in range(TINY_CALLS):
        outcomes[f"tiny-{n}"] = _code(lambda n=n: stub.AppendMessages(_append(tiny, f"tiny-{n}"), timeout=TINY))
    stored_tiny = {m.message_id for m in load_transcript(stub, tiny)}
    codes = Counter(outcomes.values())
    assert set(codes) <= {"OK", "DEADLINE_EXCEEDED"}, codes
    assert all(mid in stored_tiny for mid, code in outcomes.items() if code == "OK"), "acknowledged, not stored"
    reached = list(jobs)
    expired = [job for job in reached if job.remaining is not None and job.remaining < 0]
    assert not any(job.ran for job in expired), "a write that reached the storage after its deadline was run"
    in_doubt = sum(1 for mid, code in outcomes.items() if code == "DEADLINE_EXCEEDED" and mid in stored_tiny)
    print(
        f"\ndeadlines: {sum(past.values())} calls with a past deadline and {len(futures)} expired behind the writer:"
        f" all DEADLINE_EXCEEDED, nothing written; {TINY_CALLS} appends with a 1 us timeout: {dict(codes)},"
        f" {len(reached)} reached the storage, {len(expired)} of them already expired (none ran),"
        f" {len(stored_tiny)} stored ({in_doubt} of them answered DEADLINE_EXCEEDED: the deadline passed mid-write)"
    )
