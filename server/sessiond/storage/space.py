"""Giving space back after deletions, in short writes, so that live calls queue behind each for
well under 0.1 s: shared by the retention job and ``Admin.Vacuum``."""

from __future__ import annotations

from collections.abc import Iterator

from sessiond.storage.interface import DaemonStorage, VacuumState

MERGE_PAGES = 500  # pages of full-text index merging per write (under 0.1 s)
RECLAIM_PAGES = 1000  # free pages given back per write (4 MiB at 4 KiB pages)


def reclaim(storage: DaemonStorage) -> Iterator[VacuumState]:
    """Merge the full-text index (what deleted messages left in it goes), then give free pages back
    a step at a time: the state before the first step, then after each, until one frees nothing.
    ``FailedPrecondition`` where the backend reclaims space itself."""
    storage.merge_index(MERGE_PAGES)
    state = storage.vacuum_state()
    yield state
    while state.incremental and state.free_pages:
        left = state.free_pages
        state = storage.reclaim(RECLAIM_PAGES)
        yield state
        if state.free_pages >= left:
            return
