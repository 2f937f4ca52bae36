"""The Admin servicer: backups, integrity checks, look-ups by session id, retention and vacuum, for
``sessiond admin``.

Backups and checks are operator work on the storage itself, not on sessions, so they talk to the
storage directly; look-ups go through the store. The blocking parts run on the daemon's store
threads (``Runtime``), and errors map as everywhere else.

A caller never chooses where the daemon writes: ``Backup`` creates plain file names inside the
operator's ``storage.backup_dir`` only, and ``Snapshot`` streams the copy to the caller, who
writes it on its own side.
"""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessiond.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from sessiond.rpc import convert
from sessiond.rpc.framework import Runtime, blocking_rpc, rpc, stream
from sessiond.rules.retention import RetentionPolicy
from sessiond.storage import space
from sessiond.storage.interface import DaemonStorage
from sessiond.store.bulk import RetentionProgress
from sessiond.store.session_store import SessionStore
from sessiond_client.v1 import admin_pb2 as pb
from sessiond_client.v1 import admin_pb2_grpc

DONE = object()  # the last item a backup's progress queue carries
SNAPSHOT_CHUNK = 1024 * 1024  # bytes per Snapshot response
INDEX_BATCH = 5000  # messages a rebuild indexes per write transaction (tens of milliseconds)
NAME_BYTES = 255  # the longest file name the usual file systems take


def backup_target(directory: Path | None, name: str) -> Path:
    """Where ``Backup`` may create ``name``: a new plain file right inside the operator's directory.

    No directory part, no "..", no leading dot (the copy's partial files start with one), and a
    name that exists already (a link too, which is never followed) is refused.
    """
    if directory is None:
        raise FailedPrecondition(
            "name: backups on the daemon's host are off (set storage.backup_dir); Snapshot streams"
            " the copy instead (sessiond admin backup PATH writes it on the caller's side)"
        )
    if not name:
        raise InvalidArgument("name", "required")
    if "/" in name or "\0" in name or name.startswith(".") or len(name.encode("utf-8", "replace")) > NAME_BYTES:
        raise InvalidArgument("name", "a plain file name inside storage.backup_dir: no '/', no leading '.'")
    try:
        info = directory.stat()
    except OSError:
        raise FailedPrecondition(f"storage.backup_dir: {directory} does not exist") from None
    if not stat.S_ISDIR(info.st_mode):
        raise FailedPrecondition(f"storage.backup_dir: {directory} is not a directory")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise FailedPrecondition(f"storage.backup_dir: {directory} is writable by other users; it must be private")
    target = directory / name
    if os.path.lexists(target):
        raise AlreadyExists(f"name: {name} exists in storage.backup_dir; a backup never overwrites a file")
    return target


class AdminService(admin_pb2_grpc.AdminServicer):
    """sessiond.v1.Admin over the daemon's storage and store."""

    SERVICE = "sessiond.v1.Admin"

    def __init__(
        self,
        storage: DaemonStorage,
        store: SessionStore,
        runtime: Runtime,
        backup_dir: Path | None,
        scratch: Path,
        retention: RetentionPolicy | None = None,
    ):
        self.storage, self.store, self.runtime = storage, store, runtime
        self.retention = retention or RetentionPolicy()
        self.threads, self.metrics = runtime.threads, runtime.metrics
        self.backup_dir = backup_dir
        self.scratch = scratch  # the daemon's own directory (the database's), for a snapshot's copy

    @blocking_rpc
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
            search_index=self.storage.search_index()[0],
        )

    @rpc
    def FindSession(self, request: pb.FindSessionRequest, deadline: float | None) -> pb.FindSessionResponse:
        if not request.session_id:
            raise InvalidArgument("session_id", "required")
        return pb.FindSessionResponse(entry=convert.entry_to_proto(self.store.find(request.session_id)))

    @stream
    async def RebuildSearchIndex(
        self, request: pb.RebuildSearchIndexRequest, deadline: float | None
    ) -> AsyncIterator[pb.RebuildSearchIndexResponse]:
        """Empty the index, then fill it batch by batch on a store thread, reporting each batch."""
        loop = asyncio.get_running_loop()
        built = await loop.run_in_executor(self.threads, self.storage.start_index_rebuild)
        while True:
            yield pb.RebuildSearchIndexResponse(
                messages_done=built.done, messages_total=built.total, done=built.complete
            )
            if built.complete:
                return
            built = await loop.run_in_executor(self.threads, self.storage.index_batch, INDEX_BATCH)

    @stream
    async def ApplyRetention(
        self, request: pb.ApplyRetentionRequest, deadline: float | None
    ) -> AsyncIterator[pb.ApplyRetentionResponse]:
        """Each batch (one transaction) on a store thread, its progress streamed as it commits."""
        loop, batches = asyncio.get_running_loop(), self.store.apply_retention(self.retention, request.dry_run)
        progress = RetentionProgress()
        while (step := await loop.run_in_executor(self.threads, next, batches, None)) is not None:
            progress = step
            yield pb.ApplyRetentionResponse(**vars(progress))
        yield pb.ApplyRetentionResponse(**vars(progress), done=True)

    @stream
    async def Vacuum(self, request: pb.VacuumRequest, deadline: float | None) -> AsyncIterator[pb.VacuumResponse]:
        """Convert the file to incremental auto-vacuum when it is not, then merge the full-text index
        and free pages step by step (``space.reclaim``), each step's progress streamed; a checkpoint
        last, so that the database file itself has its new size (not only the log)."""
        loop, threads = asyncio.get_running_loop(), self.threads
        state = await loop.run_in_executor(threads, self.storage.vacuum_state)
        converted = not state.incremental
        if converted:
            await loop.run_in_executor(threads, self.storage.make_incremental)
        steps = space.reclaim(self.storage)
        first = await loop.run_in_executor(threads, next, steps)
        before = first.free_pages + (state.free_pages if converted else 0)  # the VACUUM freed those at once
        state = first
        while (step := await loop.run_in_executor(threads, next, steps, None)) is not None:
            state = step
            yield pb.VacuumResponse(
                free_pages_before=before, pages_freed=before - state.free_pages, file_bytes=state.file_bytes
            )
        await loop.run_in_executor(threads, self.storage.checkpoint)  # the file itself shrinks now
        state = await loop.run_in_executor(threads, self.storage.vacuum_state)
        yield pb.VacuumResponse(
            free_pages_before=before,
            pages_freed=before - state.free_pages,
            converted=converted,
            file_bytes=state.file_bytes,
            done=True,
        )

    async def _copy(self, target: Path) -> AsyncIterator[tuple[int, int] | int]:
        """Copy the database to ``target`` on a store thread: (pages done, total) as it goes, then its size."""
        loop, progress = asyncio.get_running_loop(), asyncio.Queue[Any]()

        def report(done: int, total: int) -> None:
            loop.call_soon_threadsafe(progress.put_nowait, (done, total))

        work = loop.run_in_executor(self.threads, self.storage.backup, target, report)
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(progress.put_nowait, DONE))
        while (item := await progress.get()) is not DONE:
            yield item
        yield await work
        self.metrics.backup_finished(datetime.now(UTC))

    @stream
    async def Backup(self, request: pb.BackupRequest, deadline: float | None) -> AsyncIterator[pb.BackupResponse]:
        """Progress as the copy goes, into the operator's backup directory."""
        if request.path:
            raise InvalidArgument("path", "the daemon no longer writes where a caller names: set name, or use Snapshot")
        async for item in self._copy(backup_target(self.backup_dir, request.name)):
            if isinstance(item, int):
                yield pb.BackupResponse(done=True, bytes=item)
            else:
                yield pb.BackupResponse(pages_done=item[0], pages_total=item[1])

    @stream
    async def Snapshot(self, request: pb.SnapshotRequest, deadline: float | None) -> AsyncIterator[pb.SnapshotResponse]:
        """The copy is made in the daemon's own directory, opened, unlinked at once, then streamed."""
        loop, copy = asyncio.get_running_loop(), self.scratch / f".sessiond-snapshot-{uuid.uuid4().hex}.db"
        try:
            async for item in self._copy(copy):
                if isinstance(item, int):
                    size = item
                else:
                    yield pb.SnapshotResponse(pages_done=item[0], pages_total=item[1])
            with open(copy, "rb") as file:
                copy.unlink()  # nothing is left behind, whatever happens to the stream
                while data := await loop.run_in_executor(self.threads, file.read, SNAPSHOT_CHUNK):
                    yield pb.SnapshotResponse(data=data, bytes_total=size)
            yield pb.SnapshotResponse(done=True, bytes_total=size)
        finally:
            copy.unlink(missing_ok=True)
