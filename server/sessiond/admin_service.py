"""The Admin servicer: backups, integrity checks and look-ups by session id, for ``sessiond admin``.

Operator work on the storage itself, not on sessions, so it talks to the storage directly; the
blocking parts run on the same store threads as every RPC, and errors map as everywhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessiond import convert
from sessiond.errors import InvalidArgument, NotFound
from sessiond.service import SessionStoreService, rpc, stream
from sessiond.storage import DaemonStorage
from sessiond_client.v1 import admin_pb2 as pb
from sessiond_client.v1 import admin_pb2_grpc

DONE = object()  # the last item a backup's progress queue carries


def backup_target(path: str) -> Path:
    """An absolute path whose directory exists: where the daemon may create a backup."""
    if not path:
        raise InvalidArgument("path", "required")
    target = Path(path)
    if not target.is_absolute():
        raise InvalidArgument("path", "must be absolute (it is a path on the daemon's host)")
    if not target.parent.is_dir():
        raise InvalidArgument("path", f"directory {target.parent} does not exist")
    return target


class AdminService(admin_pb2_grpc.AdminServicer):
    """sessiond.v1.Admin over the daemon's storage, sharing the session service's store threads."""

    def __init__(self, storage: DaemonStorage, sessions: SessionStoreService):
        self.storage = storage
        self.threads = sessions.threads
        self.metrics = sessions.metrics  # ``rpc`` records every call in it

    @rpc
    def Verify(self, request: pb.VerifyRequest, deadline: float | None) -> pb.VerifyResponse:
        problems = self.storage.integrity_problems()
        stats = self.storage.stats()
        return pb.VerifyResponse(
            ok=not problems,
            problems=problems,
            entries=stats.entries,
            sessions=stats.sessions,
            messages=stats.messages,
            live_leases=stats.live_leases,
            database_bytes=stats.database_bytes,
            wal_bytes=stats.wal_bytes,
        )

    @rpc
    def FindSession(self, request: pb.FindSessionRequest, deadline: float | None) -> pb.FindSessionResponse:
        if not request.session_id:
            raise InvalidArgument("session_id", "required")
        entry = self.storage.read(lambda tx: tx.entry_by_session_id(request.session_id))
        if entry is None:
            raise NotFound(f"no session key points at session id {request.session_id!r}")
        return pb.FindSessionResponse(entry=convert.entry_to_proto(entry))

    @stream
    async def Backup(self, request: pb.BackupRequest, deadline: float | None) -> AsyncIterator[pb.BackupResponse]:
        """Progress as the copy goes; the copy runs on a store thread and reports through a queue."""
        target = backup_target(request.path)
        loop, progress = asyncio.get_running_loop(), asyncio.Queue[Any]()

        def report(done: int, total: int) -> None:
            loop.call_soon_threadsafe(progress.put_nowait, (done, total))

        work = loop.run_in_executor(self.threads, self.storage.backup, target, report)
        work.add_done_callback(lambda _: progress.put_nowait(DONE))
        while (item := await progress.get()) is not DONE:
            yield pb.BackupResponse(pages_done=item[0], pages_total=item[1])
        size = await work
        self.metrics.backup_finished(datetime.now(UTC))
        yield pb.BackupResponse(done=True, bytes=size)
