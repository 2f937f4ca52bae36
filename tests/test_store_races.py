"""Real concurrency against a real daemon: many threads, each with its own channel, released at once.

Every thread waits on one ``threading.Barrier`` before its first call, so the calls reach the
daemon together; every RPC has a deadline. The raw generated stub is used because these checks
need what the drop-in client hides: ``created``, ``version``, ``switched``, the status codes and
the append counters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest

from helpers.daemons import Running
from helpers.races import DEADLINE, NO_RESETS, batches, check_transcript, codes, stubs, together
from helpers.wire import load_transcript, source
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import transcript_pb2
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub


@pytest.fixture
def running(start_daemon: Callable[..., Running]) -> Running:
    return start_daemon(NO_RESETS)


def key_of(stub: SessionStoreStub, chat_id: str) -> str:
    request = pb.BuildSessionKeyRequest(source=source(chat_id))
    return str(stub.BuildSessionKey(request, timeout=DEADLINE).session_key)


# -- one new key, 64 callers -----------------------------------------------------------------------


def test_concurrent_first_access_creates_exactly_one_session(running: Running) -> None:
    threads, rounds = 64, 3
    with stubs(running.address, threads) as clients:
        for round_ in range(rounds):
            request = pb.GetOrCreateSessionRequest(source=source(f"first-{round_}"))

            def get(index: int, request: pb.GetOrCreateSessionRequest = request) -> pb.GetOrCreateSessionResponse:
                return clients[index].GetOrCreateSession(request, timeout=DEADLINE)

            results = together(threads, get)
            assert codes(results) == [grpc.StatusCode.OK] * threads
            assert len({r.entry.session_id for r in results}) == 1, "two sessions for one key"
            assert sum(r.created for r in results) == 1
            # Each call is one change (created, or updated_at refreshed): 64 distinct versions.
            assert sorted(r.entry.version for r in results) == list(range(1, threads + 1))
            current = clients[0].GetSession(pb.GetSessionRequest(session_key=results[0].entry.session_key))
            assert current.entry.version == threads
            assert current.entry.session_id == results[0].entry.session_id
    print(f"\nfirst access: {rounds} rounds x {threads} threads, one session and one creator each")


def test_concurrent_forced_new_sessions_are_all_distinct(running: Running) -> None:
    threads = 64
    with stubs(running.address, threads) as clients:
        created = clients[0].GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("forced")))
        request = pb.GetOrCreateSessionRequest(source=source("forced"), force_new=True)

        def get(index: int) -> pb.GetOrCreateSessionResponse:
            return clients[index].GetOrCreateSession(request, timeout=DEADLINE)

        results = together(threads, get)
        assert codes(results) == [grpc.StatusCode.OK] * threads
        assert all(r.created for r in results)
        ids = {r.entry.session_id for r in results} | {created.entry.session_id}
        assert len(ids) == threads + 1, "two forced sessions share an id"
        assert sorted(r.entry.version for r in results) == list(range(2, threads + 2))
        final = clients[0].GetSession(pb.GetSessionRequest(session_key=created.entry.session_key)).entry
        assert final == max(results, key=lambda r: r.entry.version).entry
    print(f"\nforced new: {threads} threads, {threads} distinct sessions, the last one current")


# -- reset, get-or-create and switch on one key ----------------------------------------------------


def test_reset_get_and_switch_on_one_key_serialise(running: Running) -> None:
    threads, calls = 16, 25
    with stubs(running.address, threads) as clients:
        setup = clients[0]
        first = setup.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("contended")), timeout=DEADLINE)
        key = first.entry.session_key
        pool = [first.entry.session_id]
        for _ in range(2):
            pool.append(setup.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=DEADLINE).entry.session_id)
        start_version = setup.GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE).entry.version

        def work(index: int) -> list[tuple[str, Any]]:
            stub, done = clients[index], []
            for call in range(calls):
                kind = ("get", "force", "reset", "switch", "switch")[(index + call) % 5]
                if kind in ("get", "force"):
                    request = pb.GetOrCreateSessionRequest(source=source("contended"), force_new=kind == "force")
                    done.append((kind, stub.GetOrCreateSession(request, timeout=DEADLINE)))
                elif kind == "reset":
                    done.append((kind, stub.ResetSession(pb.ResetSessionRequest(session_key=key), timeout=DEADLINE)))
                else:
                    target = pool[(index * 7 + call) % len(pool)]
                    switch = pb.SwitchSessionRequest(session_key=key, target_session_id=target)
                    done.append((kind, stub.SwitchSession(switch, timeout=DEADLINE)))
            return done

        results = together(threads, work)
        final = setup.GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE).entry

    assert codes(results) == [grpc.StatusCode.OK] * threads
    changes: list[tuple[int, str]] = []  # (version, session id) of every call that changed the entry
    new_ids: list[str] = []
    for done in results:
        assert isinstance(done, list)
        last = start_version
        for kind, response in done:
            version, session_id = response.entry.version, response.entry.session_id
            assert response.entry.session_key == key
            changed = kind != "switch" or response.switched  # a switch to the current id changes nothing
            assert version > last if changed else version >= last, "a thread saw its own history go back"
            last = version
            if changed:
                changes.append((version, session_id))
            if kind in ("force", "reset"):
                new_ids.append(session_id)
            if kind == "get":
                assert not response.created, "an existing key got a new session without a reason"
            if kind == "force":
                assert response.created
            if kind == "switch":
                assert session_id in pool
    versions = [version for version, _ in changes]
    assert len(set(versions)) == len(versions), "two changes produced the same version"
    assert len(set(new_ids)) == len(new_ids), "two resets produced the same session id"
    assert final.version == start_version + len(changes), "a change was lost or counted twice"
    assert (final.version, final.session_id) == max(changes), "the last change is not what the key holds"
    assert final.session_id in set(pool) | set(new_ids)
    print(f"\nreset/get/switch: {threads} threads x {calls} calls, {len(changes)} changes, versions 1..{final.version}")


# -- leases ----------------------------------------------------------------------------------------


def test_one_lease_holder_among_32(running: Running) -> None:
    threads, rounds = 32, 3
    ttl = timedelta(minutes=10)
    with stubs(running.address, threads) as clients:
        for round_ in range(rounds):
            key = key_of(clients[0], f"leased-{round_}")

            def acquire(index: int, key: str = key) -> pb.AcquireLeaseResponse:
                request = pb.AcquireLeaseRequest(session_key=key, owner=f"worker-{index}", ttl=ttl)
                return clients[index].AcquireLease(request, timeout=DEADLINE)

            results = together(threads, acquire)
            statuses = codes(results)
            assert statuses.count(grpc.StatusCode.OK) == 1
            assert statuses.count(grpc.StatusCode.FAILED_PRECONDITION) == threads - 1
            winner = statuses.index(grpc.StatusCode.OK)
            assert results[winner].lease.owner == f"worker-{winner}"
            # The holder renews; anyone else is still refused; released, the key is free again.
            assert acquire(winner).lease.owner == f"worker-{winner}"
            with pytest.raises(grpc.RpcError) as refused:
                acquire((winner + 1) % threads)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            release = pb.ReleaseLeaseRequest(session_key=key, owner=f"worker-{winner}")
            assert clients[0].ReleaseLease(release, timeout=DEADLINE).released
            assert acquire((winner + 1) % threads).lease.owner == f"worker-{(winner + 1) % threads}"
    print(f"\nleases: {rounds} rounds x {threads} threads, one holder each")


# -- appends with retries --------------------------------------------------------------------------


def test_concurrent_appends_with_retries_store_each_message_once(running: Running) -> None:
    threads, per_thread = 8, 50
    with stubs(running.address, threads) as clients:
        created = clients[0].GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("appends")))
        session_id = created.entry.session_id

        def work(index: int) -> int:
            highest = 0
            for batch in batches(index, per_thread):
                request = pb.AppendMessagesRequest(session_id=session_id, messages=batch)
                first = clients[index].AppendMessages(request, timeout=DEADLINE)
                retry = clients[index].AppendMessages(request, timeout=DEADLINE)  # as if the ack was lost
                assert (first.appended, first.duplicates) == (len(batch), 0)
                assert (retry.appended, retry.duplicates) == (0, len(batch))
                assert retry.message_count >= first.message_count > highest
                highest = retry.message_count
            return highest

        results = together(threads, work)
        assert codes(results) == [grpc.StatusCode.OK] * threads
        assert max(results) == threads * per_thread  # type: ignore[type-var]
        check_transcript(load_transcript(clients[0], session_id, raw=True), threads, per_thread)
    print(f"\nappends: {threads} threads x {per_thread} messages, every batch sent twice, stored once")


def test_a_retry_racing_its_original_is_stored_once(running: Running) -> None:
    """Pairs of threads send the same batches at the same moment (a retry overtaking its original)."""
    pairs, per_thread = 4, 50
    with stubs(running.address, 2 * pairs) as clients:
        created = clients[0].GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("racing-retries")))
        session_id = created.entry.session_id
        cut = [batches(pair, per_thread) for pair in range(pairs)]
        step = threading.Barrier(2 * pairs)

        def work(index: int) -> list[tuple[int, int]]:
            counts = []
            for batch in cut[index // 2]:
                step.wait(timeout=DEADLINE)  # both copies of a batch leave together
                request = pb.AppendMessagesRequest(session_id=session_id, messages=batch)
                response = clients[index].AppendMessages(request, timeout=DEADLINE)
                counts.append((response.appended, response.duplicates))
            return counts

        results = together(2 * pairs, work)
        assert codes(results) == [grpc.StatusCode.OK] * (2 * pairs)
        for pair in range(pairs):
            for n, batch in enumerate(cut[pair]):
                one, other = results[2 * pair][n], results[2 * pair + 1][n]  # type: ignore[index]
                assert one[0] + other[0] == len(batch) and one[1] + other[1] == len(batch)
        check_transcript(load_transcript(clients[0], session_id, raw=True), pairs, per_thread)
    print(f"\nracing retries: {pairs} pairs x {per_thread} messages, stored once")


def test_rewrite_racing_appends_is_atomic_and_ordered(running: Running) -> None:
    """Appenders and one rewriter on one transcript: the last rewrite is the prefix, then appends."""
    appenders, per_thread, rewrites = 6, 40, 12
    with stubs(running.address, appenders + 1) as clients:
        created = clients[0].GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("rewrites")))
        session_id = created.entry.session_id
        rewritten = [transcript_pb2.Message(role="user", text=f"summary {n}", message_id=f"rw-{n}") for n in range(3)]

        def work(index: int) -> list[tuple[float, float, str]]:
            stub, timed = clients[index], []  # (sent, acknowledged, message id or "") on time.monotonic()
            for n in range(rewrites if index == appenders else per_thread):
                sent = time.monotonic()
                if index == appenders:
                    request = pb.RewriteTranscriptRequest(session_id=session_id, messages=rewritten)
                    stub.RewriteTranscript(request, timeout=DEADLINE)
                    timed.append((sent, time.monotonic(), ""))
                else:
                    message = transcript_pb2.Message(role="assistant", text=f"{index}/{n}", message_id=f"a{index}-{n}")
                    append = pb.AppendMessagesRequest(session_id=session_id, messages=[message])
                    stub.AppendMessages(append, timeout=DEADLINE)
                    timed.append((sent, time.monotonic(), message.message_id))
            return timed

        results = together(appenders + 1, work)
        assert codes(results) == [grpc.StatusCode.OK] * (appenders + 1)
        stored = load_transcript(clients[0], session_id, raw=True)

    assert [m.position for m in stored] == list(range(len(stored)))
    assert [(m.message_id, m.text) for m in stored[:3]] == [(m.message_id, m.text) for m in rewritten]
    ids = [m.message_id for m in stored[3:]]
    assert len(set(ids)) == len(ids) and not any(i.startswith("rw-") for i in ids)
    last_sent, last_acked, _ = results[appenders][-1]  # type: ignore[index]
    for index in range(appenders):
        timed = results[index]
        assert isinstance(timed, list)
        present = [message_id in set(ids) for _, _, message_id in timed]
        # Sequential appends of one thread: what survived the last rewrite is a suffix, in order.
        assert present == sorted(present), f"thread {index}: an earlier append survived a later one's loss"
        assert [i for i in ids if i.startswith(f"a{index}-")] == [m for _, _, m in timed if m in set(ids)]
        for (sent, acked, message_id), kept in zip(timed, present, strict=True):
            assert kept or sent < last_acked, f"{message_id}: sent after the last rewrite, yet lost"
            assert not kept or acked > last_sent, f"{message_id}: acknowledged before the last rewrite, yet kept"
    print(f"\nrewrite vs appends: {rewrites} rewrites, {appenders}x{per_thread} appends, {len(ids)} after the last")


# -- expected_version ------------------------------------------------------------------------------


def test_same_expected_version_lets_exactly_one_update_through(running: Running) -> None:
    threads, rounds = 16, 5
    with stubs(running.address, threads) as clients:
        created = clients[0].GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("versioned")))
        key = created.entry.session_key
        for _ in range(rounds):
            version = clients[0].GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE).entry.version

            def update(index: int, version: int = version) -> pb.UpdateSessionResponse:
                request = pb.UpdateSessionRequest(
                    session_key=key, last_prompt_tokens=1000 + index, expected_version=version
                )
                return clients[index].UpdateSession(request, timeout=DEADLINE)

            results = together(threads, update)
            statuses = codes(results)
            assert statuses.count(grpc.StatusCode.OK) == 1
            assert statuses.count(grpc.StatusCode.ABORTED) == threads - 1
            winner = statuses.index(grpc.StatusCode.OK)
            entry = clients[0].GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE).entry
            assert (entry.version, entry.last_prompt_tokens) == (version + 1, 1000 + winner)
    print(f"\nexpected_version: {rounds} rounds x {threads} updates, one through each")


def test_same_expected_version_lets_exactly_one_of_mixed_changes_through(running: Running) -> None:
    """Update, suspend, mark-resume, reset and switch, all conditional on one version."""
    threads, rounds = 15, 5
    with stubs(running.address, threads) as clients:
        setup = clients[0]
        created = setup.GetOrCreateSession(pb.GetOrCreateSessionRequest(source=source("mixed")), timeout=DEADLINE)
        key, other = created.entry.session_key, created.entry.session_id
        for _ in range(rounds):
            # A fresh, unsuspended session, and an id to switch to that is not the current one.
            fresh = setup.GetOrCreateSession(
                pb.GetOrCreateSessionRequest(source=source("mixed"), force_new=True), timeout=DEADLINE
            ).entry
            version, current = fresh.version, fresh.session_id

            def change(index: int, version: int = version, target: str = other) -> Any:
                stub, kind = clients[index], index % 5
                if kind == 0:
                    request = pb.UpdateSessionRequest(session_key=key, last_prompt_tokens=7, expected_version=version)
                    return stub.UpdateSession(request, timeout=DEADLINE)
                if kind == 1:
                    suspend = pb.SuspendSessionRequest(session_key=key, expected_version=version)
                    return stub.SuspendSession(suspend, timeout=DEADLINE)
                if kind == 2:
                    mark = pb.MarkResumePendingRequest(session_key=key, expected_version=version)
                    return stub.MarkResumePending(mark, timeout=DEADLINE)
                if kind == 3:
                    reset = pb.ResetSessionRequest(session_key=key, expected_version=version)
                    return stub.ResetSession(reset, timeout=DEADLINE)
                switch = pb.SwitchSessionRequest(session_key=key, target_session_id=target, expected_version=version)
                return stub.SwitchSession(switch, timeout=DEADLINE)

            results = together(threads, change)
            statuses = codes(results)
            assert statuses.count(grpc.StatusCode.OK) == 1, statuses
            assert statuses.count(grpc.StatusCode.ABORTED) == threads - 1, statuses
            winner = results[statuses.index(grpc.StatusCode.OK)]
            entry = setup.GetSession(pb.GetSessionRequest(session_key=key), timeout=DEADLINE).entry
            assert entry.version == version + 1
            assert entry == winner.entry
            other = current
    print(f"\nmixed expected_version: {rounds} rounds x {threads} changes, one through each")
