"""Background maintenance inside the daemon, each job at its ``[maintenance]`` interval (0 = off).

- ``prune``: entries idle for ``sessions.max_age_days`` (``PruneOldEntries``'s rule and events,
  1000 entries per transaction);
- ``event_retention``: events older than ``event_retention_days``, at the prune interval;
- ``lease_sweep``: lapsed leases, each announced once;
- ``turn_sweep``: turns whose owner let their time to live pass (TURN_EXPIRED, once each), at the
  lease sweep's interval; lapsed waiters leave their line;
- ``expiry_scan``: an "expired" event for each newly expired session, after the lease sweep at
  the same interval (a lapsed lease can make a session reportable);
- ``checkpoint``: the WAL copied into the database file and truncated;
- ``search_index``: while the full-text index is being built (after an upgrade, or a rebuild),
  the next messages indexed, in batches of short write transactions for at most half a second
  per run, so that building it never stops the daemon;
- ``retention``: the ``[retention]`` policy (sessions archived, then deleted, 100 per
  transaction), then the full-text index merged (what deleted messages left in it goes) and the
  freed space given back to the file system, in short steps (SQLite with incremental
  auto-vacuum; PostgreSQL's autovacuum does it there).

One thread runs them all, one after another: each is one or a few short transactions, and one
at a time they never compete with each other for the writer. Each job first runs one interval
after start. A job logs one line when it changed something; one that fails is logged and runs
again at its next interval: nothing here stops the daemon.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sessiond.daemon.config import Config
from sessiond.errors import FailedPrecondition
from sessiond.rules.retention import RetentionPolicy
from sessiond.storage import space
from sessiond.storage.interface import DaemonStorage
from sessiond.store.bulk import RetentionProgress
from sessiond.store.session_store import SessionStore

log = logging.getLogger("sessiond.maintenance")

Facts = dict[str, int]  # what a run did; logged when any is non-zero
INDEX_BATCH = 2000  # messages indexed per write transaction
INDEX_RUN_SECONDS = 0.5  # the longest one run of the search_index job keeps indexing


@dataclass
class Job:
    name: str
    interval: float
    run: Callable[[], Facts]
    due: float = 0.0  # on the time.monotonic() clock


class Maintenance:
    """The daemon's scheduled jobs over its store and storage."""

    def __init__(self, store: SessionStore, storage: DaemonStorage, config: Config):
        every, policy = config.maintenance, config.retention_policy
        retention_days = every.event_retention_days

        def checkpointed() -> Facts:
            done, wal_bytes = storage.checkpoint()
            return {"wal_bytes": wal_bytes, "busy": int(not done)}

        jobs = (
            Job("prune", every.prune_seconds, lambda: {"pruned": store.prune_in_batches()}),
            Job("event_retention", every.prune_seconds, lambda: {"deleted": store.delete_events(retention_days)}),
            Job("lease_sweep", every.lease_sweep_seconds, lambda: {"expired": store.expire_leases()}),
            Job("turn_sweep", every.lease_sweep_seconds, lambda: {"lapsed": store.announce_lapsed_turns()}),
            Job("expiry_scan", every.lease_sweep_seconds, lambda: {"announced": store.announce_expired()}),
            Job("checkpoint", every.checkpoint_seconds, checkpointed),
            Job("search_index", every.search_index_seconds, lambda: _build_index(storage)),
            Job("retention", every.retention_seconds if _acts(policy) else 0, lambda: _retain(store, storage, policy)),
        )
        self.jobs = [job for job in jobs if job.interval > 0]
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        """Run the jobs on a thread of their own until ``stop`` is set."""
        if self.jobs:
            self._thread = threading.Thread(target=self._run, args=(stop,), name="maintenance")
            self._thread.start()

    def join(self) -> None:
        """Wait for the thread to end (after ``stop`` was set): at most the job running then."""
        if self._thread is not None:
            self._thread.join()

    def _run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        for job in self.jobs:
            job.due = started + job.interval
        while True:
            job = min(self.jobs, key=lambda j: j.due)  # ties: in the order above
            if stop.wait(max(0.0, job.due - time.monotonic())):
                return
            _run_once(job)
            job.due = time.monotonic() + job.interval


def _build_index(storage: DaemonStorage) -> Facts:
    """Index messages while the index is being built: batch after batch, for ``INDEX_RUN_SECONDS``."""
    status, built = storage.search_index()
    if status != "building":
        return {}
    before, until = built.done, time.monotonic() + INDEX_RUN_SECONDS
    while not built.complete and time.monotonic() < until:
        built = storage.index_batch(INDEX_BATCH)
    return {"indexed": built.done - before, "done": built.done, "total": built.total, "complete": int(built.complete)}


def _acts(policy: RetentionPolicy) -> bool:
    return policy.acts("archive") or policy.acts("delete")


def _retain(store: SessionStore, storage: DaemonStorage, policy: RetentionPolicy) -> Facts:
    """Apply the policy, then give back the pages of what it deleted."""
    done = RetentionProgress()
    for done in store.apply_retention(policy):  # noqa: B007 - each is the total so far
        pass
    reclaimed = _reclaim(storage) if done.deleted else 0
    return {
        "archived": done.archived,
        "deleted": done.deleted,
        "deleted_messages": done.deleted_messages,
        "pages_reclaimed": reclaimed,
    }


def _reclaim(storage: DaemonStorage) -> int:
    """The pages given back after deletions (none where the backend does it itself, or the file
    predates incremental auto-vacuum: ``sessiond admin vacuum`` converts it)."""
    try:
        states = list(space.reclaim(storage))
    except FailedPrecondition:
        return 0
    return states[0].free_pages - states[-1].free_pages


def _run_once(job: Job) -> None:
    try:
        facts = job.run()
    except Exception:
        log.exception("maintenance job failed", extra={"job": job.name})
        return
    if any(facts.values()):
        log.info("maintenance", extra={"job": job.name, **facts})
