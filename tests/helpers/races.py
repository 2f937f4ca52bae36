"""Real concurrency against real daemons: many threads, each with its own channel, released at once.

Every thread waits on one ``threading.Barrier`` before its first call, so the calls reach the
daemon together; every RPC has a deadline. Shared by ``test_store_races`` (one daemon) and
``test_postgres`` (the callers split between two daemons on one database).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc

from sessiond_client.v1 import transcript_pb2
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub

T = TypeVar("T")
DEADLINE = 30.0  # seconds, on every RPC
NO_RESETS = {"reset": {"default": {"mode": "none"}}}  # no daily boundary may fall inside a test


@contextmanager
def stubs(address: str, count: int) -> Iterator[list[SessionStoreStub]]:
    """``count`` stubs, each on its own connected channel."""
    channels = [grpc.insecure_channel(address) for _ in range(count)]
    try:
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=DEADLINE)
        yield [SessionStoreStub(channel) for channel in channels]
    finally:
        for channel in channels:
            channel.close()


def together(count: int, work: Callable[[int], T]) -> list[T | grpc.RpcError]:
    """Run ``work(i)`` on ``count`` threads released by one barrier; a failed RPC is its result."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    crashed: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE)
            results[index] = work(index)
        except grpc.RpcError as error:
            results[index] = error
        except BaseException as error:  # re-raised below, in the test's thread
            crashed.append(error)

    threads = [threading.Thread(target=run, args=(i,), name=f"race-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "a racing thread hung"
    if crashed:
        raise crashed[0]
    return results


def codes(results: list[Any]) -> list[grpc.StatusCode]:
    return [r.code() if isinstance(r, grpc.RpcError) else grpc.StatusCode.OK for r in results]


# Appends with retries: each thread's messages, ids unique, in batches of varying size.
BATCH_SIZES = (1, 3, 7, 2, 5, 4, 8, 1, 6, 3)


def batches(thread: int, count: int) -> list[list[transcript_pb2.Message]]:
    """``count`` messages of one thread, ids unique, cut into batches of varying size."""
    messages = [
        transcript_pb2.Message(
            role="user" if n % 2 else "assistant", text=f"thread {thread} message {n}", message_id=f"t{thread}-m{n}"
        )
        for n in range(count)
    ]
    cut, start = [], 0
    for size in BATCH_SIZES * count:
        if start >= count:
            break
        cut.append(messages[start : start + size])
        start += size
    return cut


def check_transcript(messages: list[transcript_pb2.Message], threads: int, per_thread: int) -> None:
    ids = [m.message_id for m in messages]
    assert len(messages) == threads * per_thread
    assert len(set(ids)) == len(ids), "a message id was stored twice"
    assert [m.position for m in messages] == list(range(len(messages)))
    for thread in range(threads):
        mine = [m for m in messages if m.message_id.startswith(f"t{thread}-")]
        assert [m.message_id for m in mine] == [f"t{thread}-m{n}" for n in range(per_thread)], "order lost"
        assert all(m.text == f"thread {thread} message {m.message_id.split('-m')[1]}" for m in mine)
