"""Bulk changes of stored sessions: delete and archive by selector (DeleteSessions,
ArchiveSessions), and the retention policy that uses them.

Each call is one transaction over at most ``limit`` sessions, so that a large cleanup never holds
the writer for long: the caller (an admin command, the daemon's maintenance) calls again while
sessions remain. Every session changed gets its event, under the key it was current for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from sessiond.model import Event, EventKind, SessionSelector
from sessiond.rules import keys, metadata, retention
from sessiond.storage.interface import Storage, Transaction

RETENTION_BATCH = 100  # sessions the retention policy changes per transaction (~50 ms of the writer each)
Deadline = float | None
Change = Literal["delete", "archive", "unarchive"]


@dataclass(frozen=True)
class BulkResult:
    """What one bulk call did (or, dry, would do) and what the selector still matches just after it."""

    session_ids: tuple[str, ...]
    messages: int
    remaining: int
    remaining_messages: int
    session_keys: tuple[str, ...] = ()  # keys whose entry went with their current session


@dataclass(frozen=True)
class RetentionProgress:
    archived: int = 0
    deleted: int = 0
    deleted_messages: int = 0
    remaining: int = 0


class BulkSessions:
    """Part of ``SessionStore``: needs its ``storage`` and ``clock``."""

    storage: Storage
    clock: Callable[[], datetime]

    def delete_sessions(
        self, selector: SessionSelector, dry_run: bool = False, limit: int = 100, reason: str = "delete",
        deadline: Deadline = None,
    ) -> BulkResult:  # fmt: skip
        return self._bulk("delete", selector, dry_run, limit, reason, deadline)

    def archive_sessions(
        self, selector: SessionSelector, dry_run: bool = False, limit: int = 100, unarchive: bool = False,
        reason: str | None = None, deadline: Deadline = None,
    ) -> BulkResult:  # fmt: skip
        """Archive what the selector matches among sessions not archived (or bring back archived ones)."""
        change: Change = "unarchive" if unarchive else "archive"
        return self._bulk(change, replace(selector, archived=unarchive), dry_run, limit, reason or change, deadline)

    def _bulk(
        self, change: Change, selector: SessionSelector, dry_run: bool, limit: int, reason: str, deadline: Deadline
    ) -> BulkResult:
        checked = metadata.checked_filters(selector.metadata, "selector.metadata")
        wanted = replace(selector, metadata=checked, namespace=keys.scope_prefix(selector.namespace))

        now = self.clock()

        def change_some(tx: Transaction) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
            chosen = tx.select_sessions(wanted, now, limit)
            ids = tuple(c.session_id for c in chosen)
            dropped = [] if dry_run or not ids else self._apply(tx, change, ids, now, reason)
            return ids, sum(c.messages for c in chosen), tuple(key for key, _, _ in dropped)

        def count(tx: Transaction) -> tuple[int, int]:
            return tx.count_selected(wanted, now)

        if dry_run:
            (ids, messages, gone), left = self.storage.read(lambda tx: (change_some(tx), count(tx)), deadline)
        else:  # counted after the commit, by a reader: the writer is held for the change alone
            ids, messages, gone = self.storage.write(change_some, deadline)
            left = self.storage.read(count, deadline)
        return BulkResult(ids, messages, *left, session_keys=gone)

    @staticmethod
    def _apply(
        tx: Transaction, change: Change, ids: tuple[str, ...], now: datetime, reason: str
    ) -> list[tuple[str, str, int]]:
        """Change the sessions; one event each, under the key whose entry pointed at it (it went)."""
        if change == "unarchive":
            tx.unarchive_sessions(ids)
            dropped = []
        else:
            dropped = tx.delete_sessions(ids) if change == "delete" else tx.archive_sessions(ids, now)
        kind: EventKind = "session_deleted" if change == "delete" else "session_archived"
        entries = {session_id: (key, version) for key, session_id, version in dropped}
        for session_id in ids:
            key, version = entries.get(session_id, ("", 0))
            tx.add_event(Event(kind, key, session_id, version, reason=reason), now)
        return dropped

    def apply_retention(self, policy: retention.RetentionPolicy, dry_run: bool = False) -> Iterator[RetentionProgress]:
        """Archive, then delete, what the policy says is due, ``RETENTION_BATCH`` sessions per
        transaction; progress after each (a dry run: one count of what is due)."""
        now = self.clock()
        actions = [action for action in retention.ACTIONS if policy.acts(action)]
        selectors = {
            action: SessionSelector(
                inactive_before=retention.cutoffs(policy, action, now), keep_titled=policy.keep_titled
            )
            for action in actions
        }
        if dry_run:
            due = {action: self._stage(action, selectors[action], True, 0) for action in actions}
            counted = {action: (r.remaining, r.remaining_messages) for action, r in due.items()}
            yield _progress(counted, sum(r.remaining for r in due.values()))
            return
        counted = {action: (0, 0) for action in actions}
        for action in actions:
            while True:
                result = self._stage(action, selectors[action], False, RETENTION_BATCH)
                sessions, messages = counted[action]
                counted[action] = (sessions + len(result.session_ids), messages + result.messages)
                yield _progress(counted, result.remaining)
                if not result.session_ids or not result.remaining:
                    break

    def _stage(self, action: retention.Action, selector: SessionSelector, dry_run: bool, limit: int) -> BulkResult:
        if action == "archive":
            return self.archive_sessions(selector, dry_run, limit, reason="retention")
        return self.delete_sessions(selector, dry_run, limit, reason="retention")


def _progress(counted: dict[retention.Action, tuple[int, int]], remaining: int) -> RetentionProgress:
    """Progress from (sessions, messages) per action."""
    archived, _ = counted.get("archive", (0, 0))
    deleted, deleted_messages = counted.get("delete", (0, 0))
    return RetentionProgress(archived, deleted, deleted_messages, remaining)
