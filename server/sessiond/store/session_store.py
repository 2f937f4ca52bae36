"""The session store: each operation is one transaction that reads, asks the rules, and writes.

Semantics are the reference's ``SessionStore``; where it returned ``None``/``False`` for an
unknown key this raises ``NotFound``. Leases stand in for its ``has_active_processes_fn``.
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sessiond.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    shown,
)
from sessiond.model import (
    Cursor,
    Entry,
    Event,
    EventKind,
    Fence,
    Handoff,
    Lease,
    LineageLink,
    Message,
    MessageFilter,
    Metadata,
    MetadataFilter,
    MetadataValue,
    ResetPolicy,
    SearchHit,
    SessionSummary,
    Source,
    Usage,
    cursor_of,
)
from sessiond.rules import keys, metadata, reset, search, titles, transcript
from sessiond.rules.settings import Settings
from sessiond.storage.interface import AppendResult, EventPage, ExpiryCutoffs, Storage, Transaction
from sessiond.store.bulk import BulkSessions
from sessiond.store.identities import IdentityLinks, key_in
from sessiond.store.turns import Turns, fenced

Clock = Callable[[], datetime]
NO_USAGE = Usage()
Deadline = float | None
EXPIRY_BATCH = 500  # expired entries announced per transaction
PRUNE_BATCH = 1000  # entries a scheduled prune removes per transaction
LAST_POSITION = 2**62  # a branch "through" the end of the transcript
MAX_ANCESTORS = 1000  # a lineage walked back further is cut (GetSessionLineage says at most this many)
RESYNC = "resync with ListSessions (watch from_now first, then list, so that nothing falls in between)"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Rewound:
    """What a rewind (or a restore of one) did: its number, the messages it hid (or showed again),
    the visible messages after it, and those appended with it."""

    rewind: int
    messages: int
    visible_messages: int
    appended: int = 0


@dataclass(frozen=True)
class Compacted:
    """What a compaction did: its number, the messages it archived, where its summary went."""

    compaction: int
    archived_messages: int
    summary_position: int
    visible_messages: int


@dataclass(frozen=True)
class Lineage:
    """A session's place among others (GetSessionLineage)."""

    session: LineageLink
    ancestors: builtins.list[LineageLink]
    children: builtins.list[LineageLink]
    handoffs: builtins.list[Handoff]


@dataclass(frozen=True)
class Retention:
    """The daemon's bounds on what it keeps: the default age of a prune, the longest transcript."""

    max_age_days: int = 90
    max_transcript_messages: int = 100_000


class SessionStore(BulkSessions, IdentityLinks, Turns):
    """Store operations over a ``Storage`` backend, with the clock injected.

    ``settings`` are the daemon's own rule settings (key options, platforms, policies and zones,
    the WhatsApp mapping lookup); a call may bring its gateway's (``Settings.with_sent``).
    """

    def __init__(
        self, storage: Storage, settings: Settings, retention: Retention = Retention(), clock: Clock = utc_now
    ):
        self.storage, self.settings, self.retention, self.clock = storage, settings, retention, clock

    # -- helpers ------------------------------------------------------------------------

    def _new_session_id(
        self,
        tx: Transaction,
        now: datetime,
        session_key: str | None,
        platform: str,
        user_id: str | None,
        title: str | None = None,
        parent: tuple[str, str] | None = None,
        chat_type: str | None = None,
    ) -> str:
        """``YYYYMMDD_HHMMSS_<8 hex>`` in the host's time, as the reference; unique by construction.
        ``title``: the new session's (the caller checked it is free before it wrote anything);
        ``parent``: the session it starts from and why, for its lineage."""
        stamp = now.astimezone(self.settings.host_zone).strftime("%Y%m%d_%H%M%S")
        while True:
            session_id = f"{stamp}_{uuid.uuid4().hex[:8]}"
            if tx.create_session(session_id, platform, user_id, now, session_key, chat_type):
                if title:
                    tx.set_title(session_id, title)
                if parent is not None:
                    tx.set_parent(session_id, *parent)
                return session_id

    @staticmethod
    def _current(tx: Transaction, session_key: str, expected_version: int | None = None) -> Entry:
        entry = tx.get_entry(session_key)
        if entry is None:
            raise NotFound(f"session_key: no session for {shown(session_key)}")
        if expected_version is not None and entry.version != expected_version:
            raise Conflict(f"expected_version: the entry is at version {entry.version}, not {expected_version}")
        return entry

    @staticmethod
    def _save(tx: Transaction, entry: Entry, **changes: Any) -> Entry:
        saved = replace(entry, **changes, version=entry.version + 1)
        tx.put_entry(saved)
        return saved

    @staticmethod
    def _stale_reason(
        tx: Transaction, entry: Entry, settings: Settings, now: datetime, active_process: bool
    ) -> str | None:
        """Why an existing entry must start over: suspended beats resume-pending beats a lease (or
        the gateway's word that a background process runs for it) beats the policy."""
        if entry.suspended:
            return "suspended"
        if entry.resume_pending or active_process or tx.live_lease(entry.session_key, now):
            return None
        policy = settings.policy_for(entry.platform, entry.chat_type, entry.reset_policy)
        return reset.reset_reason(policy, settings.zone(policy), entry.updated_at, now)

    def policy_for(self, platform: str | None, chat_type: str | None) -> ResetPolicy:
        return self.settings.policy_for(platform, chat_type)

    @staticmethod
    def _event(tx: Transaction, now: datetime, kind: EventKind, entry: Entry, **fields: Any) -> None:
        """Log what happened to ``entry``, in the transaction that made it happen."""
        tx.add_event(Event(kind, entry.session_key, entry.session_id, entry.version, **fields), now)

    def _session_event(self, tx: Transaction, kind: EventKind, session_id: str, **fields: Any) -> None:
        """Log a change of a session (not of a key): under the key pointing at it, "" when none does
        (finding it scans the entries: the RPCs that log these run on a store thread)."""
        entry = tx.entry_by_session_id(session_id)
        key, version = (entry.session_key, entry.version) if entry else ("", 0)
        tx.add_event(Event(kind, key, session_id, version, **fields), self.clock())

    # -- entries --------------------------------------------------------------------------

    def get_or_create(
        self,
        source: Source,
        force_new: bool = False,
        deadline: Deadline = None,
        settings: Settings | None = None,
        active_process: bool = False,
        title: str | None = None,
    ) -> tuple[Entry, bool]:
        """The current entry of the source's key, and whether this call started a new session.

        ``settings``: the calling gateway's (default: the daemon's); ``active_process``: the gateway
        runs background work for the key, so a stale session is kept; ``title``: a new session's.
        """
        settings = settings or self.settings.with_sent(None)  # the default namespace's own, if any
        title = titles.normalized(title) if title is not None else None

        def work(tx: Transaction) -> tuple[Entry, bool]:
            key = key_in(tx, source, settings)  # with the link in force now, when links are on
            now = self.clock()
            old = tx.get_entry(key)
            governs = _governing(settings, old, source)
            reason = None
            if old is not None and not force_new:
                reason = self._stale_reason(tx, old, settings, now, active_process)
                if reason is None:
                    return self._save(tx, old, updated_at=now, **governs), False
            if old is not None:
                tx.end_session(old.session_id, "session_reset", now)
            if title:
                _title_free(tx, title, "title")  # before the old session ends: a refusal writes nothing
            entry = Entry.started(
                key,
                self._new_session_id(
                    tx, now, key, source.platform, source.user_id, title, _parent(old, reason), source.chat_type
                ),
                source,
                now,
                was_auto_reset=reason is not None,
                auto_reset_reason=reason,
                reset_had_activity=reason is not None and old is not None and old.usage.total_tokens > 0,
                version=old.version + 1 if old else 1,
                **governs,
            )
            tx.put_entry(entry)
            if old is None:
                self._event(tx, now, "created", entry)
            else:
                kind: EventKind = "reset" if reason is None else "auto_reset"
                why = "force_new" if reason is None else reason
                self._event(tx, now, kind, entry, previous_session_id=old.session_id, reason=why)
            if title:
                self._event(tx, now, "titled", entry, reason="set")
            return entry, True

        return self.storage.write(work, deadline)

    def get(self, session_key: str) -> Entry:
        return self.storage.read(lambda tx: self._current(tx, session_key))

    def find(self, session_id: str) -> Entry:
        """The entry whose key points at ``session_id`` (an operator's look-up: ``sessiond admin find``)."""
        entry = self.storage.read(lambda tx: tx.entry_by_session_id(session_id))
        if entry is None:
            raise NotFound(f"no session key points at session id {session_id!r}")
        return entry

    def update(
        self,
        session_key: str,
        last_prompt_tokens: int | None = None,
        usage: Usage = NO_USAGE,
        cost_status: str | None = None,
        expected_version: int | None = None,
        deadline: Deadline = None,
        *,
        is_fresh_reset: bool | None = None,
        clear_auto_reset: bool = False,
        keep_updated_at: bool = False,
        fence: Fence | None = None,
    ) -> Entry:
        """Record activity: refresh ``updated_at``, set the last prompt size, add the usage. A gateway
        writing back flags it consumed (``is_fresh_reset``, ``clear_auto_reset``) may leave the
        activity time as it is (``keep_updated_at``)."""

        def work(tx: Transaction) -> Entry:
            fenced(tx, fence)
            entry = self._current(tx, session_key, expected_version)
            total = entry.usage + usage
            for name, value in vars(total).items():
                if isinstance(value, int) and value >= 2**63:
                    raise InvalidArgument(f"usage.{name}", "the counter would exceed 2^63 - 1")
            changes: dict[str, Any] = {}
            if is_fresh_reset is not None:
                changes["is_fresh_reset"] = is_fresh_reset
            if clear_auto_reset:
                changes.update(was_auto_reset=False, auto_reset_reason=None, reset_had_activity=False)
            return self._save(
                tx,
                entry,
                updated_at=entry.updated_at if keep_updated_at else self.clock(),
                usage=total,
                last_prompt_tokens=entry.last_prompt_tokens if last_prompt_tokens is None else last_prompt_tokens,
                cost_status=entry.cost_status if cost_status is None else cost_status,
                **changes,
            )

        return self.storage.write(work, deadline)

    def check_reset(
        self, updated_at: datetime, platform: str | None, chat_type: str | None, settings: Settings | None = None
    ) -> str | None:
        """Why a session last active at ``updated_at`` would start over now ("idle", "daily"), or None."""
        settings = settings or self.settings.with_sent(None)  # the default namespace's own, if any
        policy = settings.policy_for(platform, chat_type)
        return reset.reset_reason(policy, settings.zone(policy), updated_at, self.clock())

    def suspend(self, session_key: str, expected_version: int | None = None, deadline: Deadline = None) -> Entry:
        def work(tx: Transaction) -> Entry:
            entry = self._save(tx, self._current(tx, session_key, expected_version), suspended=True)
            self._event(tx, self.clock(), "suspended", entry)
            return entry

        return self.storage.write(work, deadline)

    def mark_resume_pending(
        self, session_key: str, reason: str, expected_version: int | None = None, deadline: Deadline = None
    ) -> Entry:
        def work(tx: Transaction) -> Entry:
            entry = self._current(tx, session_key, expected_version)
            if entry.suspended:
                raise FailedPrecondition("session_key: the session is suspended; it will start over instead")
            now = self.clock()
            entry = self._save(tx, entry, resume_pending=True, resume_reason=reason, last_resume_marked_at=now)
            self._event(tx, now, "resume_pending", entry, reason=reason)
            return entry

        return self.storage.write(work, deadline)

    def clear_resume_pending(
        self, session_key: str, expected_version: int | None = None, deadline: Deadline = None
    ) -> tuple[bool, Entry]:
        def work(tx: Transaction) -> tuple[bool, Entry]:
            entry = self._current(tx, session_key, expected_version)
            if not entry.resume_pending:
                return False, entry
            return True, self._save(tx, entry, resume_pending=False, resume_reason=None, last_resume_marked_at=None)

        return self.storage.write(work, deadline)

    def suspend_recently_active(
        self, max_age_seconds: int, deadline: Deadline = None, namespace: str | None = None
    ) -> int:
        def work(tx: Transaction) -> int:
            now = self.clock()
            since = now - timedelta(seconds=max_age_seconds)
            marked = tx.mark_recently_active(since, now, "restart_interrupted", keys.scope_prefix(namespace))
            for entry in marked:
                self._event(tx, now, "resume_pending", entry, reason=entry.resume_reason)
            return len(marked)

        return self.storage.write(work, deadline)

    def reset(
        self, session_key: str, expected_version: int | None = None, deadline: Deadline = None, title: str | None = None
    ) -> Entry:
        """A new session id on the user's request; where the message came from is kept. ``title``:
        the new session's (/new <name>)."""
        title = titles.normalized(title) if title is not None else None

        def work(tx: Transaction) -> Entry:
            old = self._current(tx, session_key, expected_version)
            now = self.clock()
            if title:
                _title_free(tx, title, "title")
            tx.end_session(old.session_id, "session_reset", now)
            user_id = old.origin.user_id if old.origin else None
            session_id = self._new_session_id(
                tx,
                now,
                session_key,
                old.platform or "unknown",
                user_id,
                title,
                (old.session_id, "reset"),
                old.chat_type,
            )
            entry = _successor(old, session_id, now)
            entry = replace(entry, is_fresh_reset=True)
            tx.put_entry(entry)
            self._event(tx, now, "reset", entry, previous_session_id=old.session_id, reason="reset")
            if title:
                self._event(tx, now, "titled", entry, reason="set")
            return entry

        return self.storage.write(work, deadline)

    def switch(
        self,
        session_key: str,
        target_session_id: str,
        expected_version: int | None = None,
        deadline: Deadline = None,
        create: bool = False,
        target_title: str | None = None,
    ) -> tuple[Entry, bool]:
        """Point the key at an existing session id, reopening it (``/resume``); ``create`` records an
        unknown one first. ``target_title``: the session with this title instead (/resume <name>)."""
        wanted = titles.normalized(target_title, "target_title") if target_title else None

        def work(tx: Transaction) -> tuple[Entry, bool]:
            old = self._current(tx, session_key, expected_version)
            if wanted is not None:
                target = self._titled(tx, wanted, "target_title")
                return (old, False) if old.session_id == target else self._switch(tx, old, target)
            if old.session_id == target_session_id:
                return old, False
            if create and tx.create_session(target_session_id, "unknown", None, self.clock()):
                tx.set_parent(target_session_id, old.session_id, "switch")
            elif not tx.session_exists(target_session_id):
                raise NotFound(f"target_session_id: no session {shown(target_session_id)}")
            return self._switch(tx, old, target_session_id)

        return self.storage.write(work, deadline)

    def _switch(self, tx: Transaction, old: Entry, target_session_id: str) -> tuple[Entry, bool]:
        now = self.clock()
        tx.end_session(old.session_id, "session_switch", now)
        tx.reopen_session(target_session_id)
        entry = replace(_successor(old, target_session_id, now), metadata=tx.metadata_of(target_session_id) or {})
        tx.put_entry(entry)
        self._event(tx, now, "switched", entry, previous_session_id=old.session_id)
        return entry, True

    def handoff(
        self,
        session_key: str,
        target: str | Source,
        settings: Settings | None = None,
        release_source: bool = False,
        expected_version: int | None = None,
        deadline: Deadline = None,
    ) -> tuple[Entry, str | None]:
        """Continue the key's current session on another key (HandoffSession): ``target`` names it,
        or is the destination chat's source (its key built, an entry made when it has none). (the
        destination's entry, the former session of it that ended)."""
        settings = settings or self.settings.with_sent(None)

        def work(tx: Transaction) -> tuple[Entry, str | None]:
            source = self._current(tx, session_key, expected_version)
            if isinstance(target, str):
                to_key, field = target, "target_session_key"
            else:
                to_key, field = key_in(tx, target, settings, "target_source"), "target_source"
            _handoff_allowed(session_key, to_key, field)
            old = tx.get_entry(to_key)
            if old is None and isinstance(target, str):
                raise NotFound(f"target_session_key: no session for {shown(to_key)}")
            if old is not None and old.session_id == source.session_id and not release_source:
                return old, None  # it already continues there
            now = self.clock()
            replaced = old.session_id if old is not None and old.session_id != source.session_id else None
            if replaced is not None:
                tx.end_session(replaced, "handoff", now)
            if old is None:
                assert not isinstance(target, str)  # refused above
                governs = _governing(settings, None, target)
                fresh = Entry.started(to_key, source.session_id, target, now, version=1, **governs)
            else:
                fresh = _successor(old, source.session_id, now)
            entry = replace(fresh, metadata=source.metadata)
            tx.put_entry(entry)
            tx.add_handoff(source.session_id, Handoff(session_key, to_key, replaced, now))
            previous = old.session_id if old is not None else None
            self._event(
                tx,
                now,
                "handed_off",
                entry,
                previous_session_id=previous,
                reason="handoff_in",
                other_session_key=session_key,
            )
            if release_source:
                tx.delete_entry(session_key)
            self._event(
                tx,
                now,
                "handed_off",
                source,
                reason="released" if release_source else "handoff_out",
                other_session_key=to_key,
            )
            return entry, replaced

        return self.storage.write(work, deadline)

    # -- titles ---------------------------------------------------------------------------

    def set_title(self, session_id: str, title: str, deadline: Deadline = None) -> str | None:
        """Set (or, with an empty one, clear) a session's title; the title as stored."""
        spelled = titles.normalized(title) or None

        def work(tx: Transaction) -> str | None:
            self._session(tx, session_id)
            if spelled is not None:
                _title_free(tx, spelled, "title", session_id)
            if tx.title_of(session_id) == spelled:
                return spelled
            tx.set_title(session_id, spelled)
            self._session_event(tx, "titled", session_id, reason="cleared" if spelled is None else "set")
            return spelled

        return self.storage.write(work, deadline)

    def title(self, session_id: str) -> str | None:
        def work(tx: Transaction) -> str | None:
            self._session(tx, session_id)
            return tx.title_of(session_id)

        return self.storage.read(work)

    def find_by_title(self, title: str, latest_in_lineage: bool = False) -> str:
        """The session a title names; with ``latest_in_lineage``, the newest session titled
        ``<title> #<n>`` if there is one (where a resumed chain went on)."""
        spelled = titles.normalized(title)

        def work(tx: Transaction) -> str:
            newest = tx.newest_numbered(titles.numbered_prefix(spelled)) if latest_in_lineage and spelled else None
            return newest or self._titled(tx, spelled, "title")

        return self.storage.read(work)

    def next_title(self, title: str) -> str:
        """The next free title of ``title``'s lineage."""
        base = titles.lineage_base(titles.normalized(title))
        if not base:
            raise InvalidArgument("title", "required")
        taken = self.storage.read(lambda tx: tx.lineage_titles(base, titles.numbered_prefix(base)))
        return titles.next_in_lineage(base, taken)

    # -- metadata -------------------------------------------------------------------------

    def update_metadata(
        self,
        session_key: str,
        changes: Mapping[str, MetadataValue],
        remove: Sequence[str] = (),
        replace_all: bool = False,
        expected_version: int | None = None,
        deadline: Deadline = None,
        fence: Fence | None = None,
    ) -> tuple[Entry, bool]:
        """Change the metadata of the key's current session, as a change of its entry (a new version,
        an event naming the keys); (the entry, whether anything changed)."""

        def work(tx: Transaction) -> tuple[Entry, bool]:
            fenced(tx, fence)
            entry = self._current(tx, session_key, expected_version)
            result, changed = metadata.updated(entry.metadata, changes, remove, replace_all)
            if not changed:
                return entry, False
            tx.set_metadata(entry.session_id, result)
            entry = self._save(tx, entry, metadata=result)
            self._event(tx, self.clock(), "metadata_changed", entry, reason=",".join(changed))
            return entry, True

        return self.storage.write(work, deadline)

    def session_namespaces(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        """The namespace of each stored session's key (None: no key, or no such session)."""
        wanted = builtins.list(session_ids)
        found = self.storage.read(lambda tx: tx.keys_of(wanted))
        return {sid: keys.namespace_of(key) if (key := found.get(sid)) else None for sid in wanted}

    def metadata_of(self, session_id: str) -> Metadata:
        found = self.storage.read(lambda tx: tx.metadata_of(session_id))
        if found is None:
            raise NotFound(f"session_id: no session {shown(session_id)}")
        return found

    # -- lineage --------------------------------------------------------------------------

    def lineage(self, session_id: str) -> Lineage:
        """The session, its ancestors (parent first, at most ``MAX_ANCESTORS``), its children (newest
        first) and the chats it was handed off between (oldest first)."""

        def work(tx: Transaction) -> Lineage:
            link = tx.lineage_link(session_id)
            if link is None:
                raise NotFound(f"session_id: no session {shown(session_id)}")
            ancestors: builtins.list[LineageLink] = []
            seen = {session_id}
            parent = link.parent_session_id
            while parent is not None and parent not in seen and len(ancestors) < MAX_ANCESTORS:
                seen.add(parent)
                above = tx.lineage_link(parent)
                if above is None:  # a parent recorded by id only (a transcript by id): the chain ends
                    break
                ancestors.append(above)
                parent = above.parent_session_id
            return Lineage(link, ancestors, tx.children(session_id), tx.handoffs(session_id, MAX_ANCESTORS))

        return self.storage.read(work)

    def lineage_tip(self, session_id: str) -> str:
        """From ``session_id``, the newest child at each step."""

        def work(tx: Transaction) -> str:
            self._session(tx, session_id)
            tip, seen = session_id, {session_id}
            while (children := tx.children(tip)) and children[0].session_id not in seen:
                tip = children[0].session_id
                seen.add(tip)
            return tip

        return self.storage.read(work)

    # -- search ---------------------------------------------------------------------------

    def search_sessions(
        self,
        query: str,
        platform: str | None,
        offset: int,
        limit: int,
        where: Sequence[MetadataFilter] = (),
        include_archived: bool = False,
        namespace: str | None = None,
    ) -> builtins.list[SessionSummary]:
        """Sessions whose id starts with ``query``, or whose title starts with it, case and
        punctuation ignored, and whose metadata matches ``where``; newest first."""
        id_prefix = query.strip()
        if not id_prefix:
            raise InvalidArgument("query", "required")
        wanted = metadata.checked_filters(where)
        prefix = keys.scope_prefix(namespace)
        return self.storage.read(
            lambda tx: tx.search_sessions(id_prefix, query, platform, offset, limit, wanted, include_archived, prefix)
        )

    def search_messages(
        self, query: str, where: MessageFilter, window: int, offset: int, limit: int, deadline: Deadline = None
    ) -> tuple[builtins.list[SearchHit], bool]:
        """Messages with every word of ``query``, best first, each with ``window`` neighbours on
        each side (as replayed); and whether the index is still being built. Ranking is
        O(matches): past ``deadline`` the query is stopped."""
        terms = search.parse(query)
        where = replace(
            where, metadata=metadata.checked_filters(where.metadata), namespace=keys.scope_prefix(where.namespace)
        )

        def work(tx: Transaction) -> tuple[builtins.list[SearchHit], bool]:
            hits, building = tx.search_messages(terms, where, offset, limit)
            return [replace(hit, window=self._window(tx, hit, window)) for hit in hits], building

        return self.storage.read(work, deadline)

    @staticmethod
    def _window(tx: Transaction, hit: SearchHit, window: int) -> tuple[Message, ...]:
        """The hit's neighbours: visible ones, or for an archived hit those its compaction archived."""
        compaction = hit.hidden_by if hit.visibility == "archived" else 0
        around = tx.messages_around(hit.session.session_id, hit.position, window, compaction)
        return tuple(transcript.as_replayed(message) for message in around)

    @staticmethod
    def _titled(tx: Transaction, title: str, field: str) -> str:
        session_id = tx.session_titled(title) if title else None
        if session_id is None:
            raise NotFound(f"{field}: no session is titled {shown(title)}")
        return session_id

    def prune(
        self,
        max_age_days: int | None = None,
        deadline: Deadline = None,
        limit: int | None = None,
        keep: Sequence[str] = (),
        dry_run: bool = False,
        namespace: str | None = None,
    ) -> list[str]:
        """Forget entries idle for ``max_age_days``, at most ``limit``, never those of ``keep``; the keys
        removed (with ``dry_run``, those that would be). Without an age, each entry's own (its
        gateway's) applies, else the configured one."""
        if max_age_days is not None and max_age_days <= 0:
            return []
        days = self.retention.max_age_days if max_age_days is None else max_age_days

        def work(tx: Transaction) -> list[str]:
            now = self.clock()
            cutoff = now - timedelta(days=days) if days > 0 else None
            removed = tx.prune_entries(
                cutoff, now, limit, keep, dry_run, own_ages=max_age_days is None, namespace=keys.scope_prefix(namespace)
            )
            for entry in [] if dry_run else removed:
                self._event(tx, now, "pruned", entry)
            return [entry.session_key for entry in removed]

        return self.storage.read(work) if dry_run else self.storage.write(work, deadline)

    def prune_in_batches(self) -> int:
        """The daemon's scheduled prune: ``prune`` in transactions of ``PRUNE_BATCH`` entries, so that
        a first prune of a large, long unpruned store never holds the writer for seconds."""
        pruned = 0
        while (count := len(self.prune(limit=PRUNE_BATCH))) == PRUNE_BATCH:
            pruned += count
        return pruned + count

    # From here on, ``list`` in this class's annotations is this method: they say ``builtins.list``.
    def list(
        self,
        active_minutes: int | None,
        limit: int,
        after: Cursor | None,
        where: Sequence[MetadataFilter] = (),
        namespace: str | None = None,
    ) -> list[Entry]:
        since = None if active_minutes is None else self.clock() - timedelta(minutes=active_minutes)
        wanted, prefix = metadata.checked_filters(where), keys.scope_prefix(namespace)
        return self.storage.read(lambda tx: tx.list_entries(since, after, limit, wanted, prefix))

    def has_any(self, namespace: str | None = None) -> bool:
        return self.storage.read(lambda tx: tx.has_two_sessions(keys.scope_prefix(namespace)))

    def _expiry_cutoffs(self, tx: Transaction, now: datetime) -> ExpiryCutoffs:
        """The cutoffs of the configured policies and of those entries kept from their gateways."""
        policies = self.settings.policies

        def cutoff(policy: ResetPolicy) -> datetime | None:
            return reset.expiry_cutoff(policy, self.settings.zone(policy), now)

        return ExpiryCutoffs(
            default=cutoff(policies.default),
            platforms={name: cutoff(p) for name, p in policies.platforms.items()},
            chat_types={name: cutoff(p) for name, p in policies.chat_types.items()},
            stored={policy: cutoff(policy) for policy in tx.stored_policies()},
        )

    def list_expired(self, limit: int, after: Cursor | None, namespace: str | None = None) -> builtins.list[Entry]:
        """What the reference's expiry watcher finds, minus finalised and leased entries."""
        now = self.clock()
        prefix = keys.scope_prefix(namespace)
        return self.storage.read(
            lambda tx: tx.expired_entries(self._expiry_cutoffs(tx, now), now, after, limit, namespace=prefix)
        )

    def announce_expired(self) -> int:
        """The daemon's expiry scan: an "expired" event for each entry ``list_expired`` would show,
        once per session id and entry version (a later change, if it stays expired, is announced anew).

        The search reads without the writer lock (it walks every expired, unfinalised entry, even
        when all were announced); each batch it finds is then written in a short transaction.
        One scan at a time: the daemon's maintenance thread is its only caller.
        """
        now = self.clock()
        cutoffs = self.storage.read(lambda tx: self._expiry_cutoffs(tx, now))
        announced, after = 0, None
        while True:
            found = self._unannounced(cutoffs, now, after)
            if found:
                announced += self.storage.write(functools.partial(self._announce_expired, found=found, now=now))
            if len(found) < EXPIRY_BATCH:
                return announced
            after = cursor_of(found[-1])

    def _unannounced(self, cutoffs: ExpiryCutoffs, now: datetime, after: Cursor | None) -> builtins.list[Entry]:
        return self.storage.read(lambda tx: tx.expired_entries(cutoffs, now, after, EXPIRY_BATCH, unannounced=True))

    def _announce_expired(self, tx: Transaction, found: builtins.list[Entry], now: datetime) -> int:
        """Announce the entries the search found that are still as found (unchanged, not leased since)."""
        count = 0
        for entry in found:
            if tx.get_entry(entry.session_key) != entry or tx.live_lease(entry.session_key, now):
                continue
            policy = self.settings.policy_for(entry.platform, entry.chat_type, entry.reset_policy)
            reason = reset.reset_reason(policy, self.settings.zone(policy), entry.updated_at, now)
            self._event(tx, now, "expired", entry, reason=reason)
            count += 1
        return count

    def mark_expiry_finalized(self, session_key: str, session_id: str, deadline: Deadline = None) -> Entry:
        def work(tx: Transaction) -> Entry:
            entry = self._current(tx, session_key)
            if session_id != entry.session_id:
                raise Conflict(f"session_id: the key moved on to session {shown(entry.session_id)}")
            return self._save(tx, entry, expiry_finalized=True)

        return self.storage.write(work, deadline)

    # -- leases -------------------------------------------------------------------------

    def _expire_leases(self, tx: Transaction, now: datetime, session_key: str | None = None) -> int:
        """Delete lapsed leases, each with a "lease_expired" event naming the key's current session."""
        lapsed = tx.expire_leases(now, session_key)
        for lease in lapsed:
            entry = tx.get_entry(lease.session_key)
            session_id, version = (entry.session_id, entry.version) if entry else ("", 0)
            event = Event("lease_expired", lease.session_key, session_id, version, lease_owner=lease.owner)
            tx.add_event(event, now)
        return len(lapsed)

    def expire_leases(self) -> int:
        """The daemon's lease sweep: every lapsed lease, announced once."""
        return self.storage.write(lambda tx: self._expire_leases(tx, self.clock()))

    def acquire_lease(self, session_key: str, owner: str, ttl: timedelta, deadline: Deadline = None) -> Lease:
        def work(tx: Transaction) -> Lease:
            now = self.clock()
            self._expire_leases(tx, now, session_key)  # a lapse the sweep has not seen is announced first
            held = tx.live_lease(session_key, now)
            if held is not None and held.owner != owner:
                raise FailedPrecondition(f"session_key: leased by another owner until {held.expires_at.isoformat()}")
            lease = Lease(session_key, owner, now + ttl)
            tx.put_lease(lease)
            return lease

        return self.storage.write(work, deadline)

    def release_lease(self, session_key: str, owner: str, deadline: Deadline = None) -> bool:
        return self.storage.write(lambda tx: tx.delete_lease(session_key, owner, self.clock()), deadline)

    # -- events -----------------------------------------------------------------------

    def events_after(
        self, after: int, limit: int, kinds: frozenset[EventKind] = frozenset(), namespace: str | None = None
    ) -> EventPage:
        """The next page of the event log after the cursor ``after`` (0: the oldest retained event),
        only ``namespace``'s keys' when one is named.

        ``OutOfRange`` rather than a silent gap when events after the cursor were deleted, or when
        the cursor is ahead of the log (it comes from another database, e.g. before a restore).
        """

        def work(tx: Transaction) -> EventPage:
            deleted_through, newest = tx.event_bounds()
            if after > newest:
                raise OutOfRange(f"after_sequence: {after} is ahead of the newest event ({newest}); {RESYNC}")
            if 0 < after < deleted_through:
                raise OutOfRange(
                    f"after_sequence: the events after {after} up to {deleted_through} are no longer retained; {RESYNC}"
                )
            return tx.events_after(after, limit, kinds, keys.scope_prefix(namespace))

        return self.storage.read(work)

    def newest_event(self) -> int:
        """The sequence of the newest event (0 before the first): where a watch "from now" starts."""
        return self.storage.read(lambda tx: tx.event_bounds()[1])

    def delete_events(self, retention_days: int) -> int:
        """Forget events older than ``retention_days``; a cursor before them gets ``OutOfRange``."""
        return self.storage.write(lambda tx: tx.delete_events(self.clock() - timedelta(days=retention_days)))

    # -- transcripts --------------------------------------------------------------------

    @staticmethod
    def _session(tx: Transaction, session_id: str) -> None:
        if not tx.session_exists(session_id):
            raise NotFound(f"session_id: no session {shown(session_id)}")

    def _session_to_write(self, tx: Transaction, session_id: str, create: bool) -> None:
        """The transcript's session, recorded first when ``create`` allows an unknown id (the
        reference wrote transcripts of any id: plugins write by id)."""
        if not (create and tx.create_session(session_id, "unknown", None, self.clock())):
            self._session(tx, session_id)

    def append(
        self,
        session_id: str,
        messages: Sequence[Message],
        deadline: Deadline = None,
        create: bool = False,
        fence: Fence | None = None,
    ) -> AppendResult:
        """Append in order; a message id already stored for the session is skipped (retries)."""
        stored = [transcript.as_stored(m) for m in messages]

        def work(tx: Transaction) -> AppendResult:
            fenced(tx, fence)
            self._session_to_write(tx, session_id, create)
            return self._append(tx, session_id, stored, self.clock())

        return self.storage.write(work, deadline)

    def _append(self, tx: Transaction, session_id: str, stored: Sequence[Message], now: datetime) -> AppendResult:
        result = tx.append_messages(session_id, stored, now)
        limit = self.retention.max_transcript_messages
        if result.message_count > limit:
            raise ResourceExhausted(f"session_id: the transcript would exceed {limit} messages")
        return result

    def rewrite(
        self,
        session_id: str,
        messages: Sequence[Message],
        deadline: Deadline = None,
        create: bool = False,
        fence: Fence | None = None,
    ) -> int:
        _unique_message_ids(messages)
        stored = [transcript.as_stored(m) for m in messages]

        def work(tx: Transaction) -> int:
            fenced(tx, fence)
            self._session_to_write(tx, session_id, create)
            return tx.replace_messages(session_id, stored, self.clock())

        return self.storage.write(work, deadline)

    def load(
        self, session_id: str, after_position: int, limit: int, raw: bool = False, include_hidden: bool = False
    ) -> builtins.list[Message]:
        """A page of the visible transcript after ``after_position``; with ``include_hidden``, of every
        stored message in the order written, ``after_position`` then counting the messages before."""

        def work(tx: Transaction) -> list[Message]:
            self._session(tx, session_id)
            if include_hidden:
                return tx.load_all_messages(session_id, after_position, limit)
            return tx.load_messages(session_id, after_position, limit)

        messages = self.storage.read(work)
        return messages if raw else [transcript.as_replayed(m) for m in messages]

    # -- rewinds, compactions, branches ----------------------------------------------------

    def rewind(
        self,
        session_id: str,
        turns: int,
        append: Sequence[Message] = (),
        deadline: Deadline = None,
        fence: Fence | None = None,
    ) -> Rewound:
        """Soft-delete the last ``turns`` user turns (/undo N), then append ``append`` (/retry)."""
        stored = [transcript.as_stored(m) for m in append]

        def work(tx: Transaction) -> Rewound:
            fenced(tx, fence)
            self._session(tx, session_id)
            now = self.clock()
            done = tx.rewind(session_id, turns, now)
            if done is None:
                raise FailedPrecondition(f"turns: the transcript has fewer than {turns} visible user turns")
            appended = self._append(tx, session_id, stored, now).appended if stored else 0
            self._session_event(tx, "rewound", session_id, reason="rewind")
            return Rewound(done[0], done[1], tx.visible_count(session_id), appended)

        return self.storage.write(work, deadline)

    def restore(self, session_id: str, rewind: int | None = None, deadline: Deadline = None) -> Rewound:
        """Make a rewind's messages (the newest rewind's by default) visible again."""

        def work(tx: Transaction) -> Rewound:
            self._session(tx, session_id)
            number = tx.newest_rewind(session_id) if rewind is None else rewind
            hidden = None if number is None else tx.rewound_by(session_id, number)
            if number is None or hidden is None:
                raise FailedPrecondition(f"rewind: nothing of {'any rewind' if rewind is None else rewind} to restore")
            if tx.visible_after(session_id, hidden[0]):
                raise FailedPrecondition(
                    f"rewind: messages were added after rewind {number}; rewind them first, or leave it"
                )
            tx.restore(session_id, number)
            self._session_event(tx, "rewound", session_id, reason="restore")
            return Rewound(number, hidden[1], tx.visible_count(session_id))

        return self.storage.write(work, deadline)

    def compact(
        self,
        session_id: str,
        first: int,
        last: int,
        summary: Message,
        deadline: Deadline = None,
        fence: Fence | None = None,
    ) -> Compacted:
        """Replace the visible messages in ``first..last`` by ``summary``; they stay stored, archived."""
        if last < first:
            raise InvalidArgument("last_position", f"before first_position ({first})")
        stored = transcript.as_stored(summary)

        def work(tx: Transaction) -> Compacted:
            fenced(tx, fence)
            self._session(tx, session_id)
            if stored.message_id and tx.has_message_id(session_id, stored.message_id):
                raise InvalidArgument("summary.message_id", "a message of the session has this id already")
            done = tx.compact(session_id, first, last, stored, self.clock())
            if done is None:
                raise FailedPrecondition(f"first_position: no visible message in positions {first}..{last}")
            self._session_event(tx, "compacted", session_id)
            return Compacted(*done, visible_messages=tx.visible_count(session_id))

        return self.storage.write(work, deadline)

    def branch(
        self,
        session_id: str,
        through: int | None = None,
        session_key: str | None = None,
        title: str | None = None,
        deadline: Deadline = None,
    ) -> tuple[str, int, Entry | None]:
        """A new session with a copy of ``session_id``'s visible messages up to ``through`` (/branch),
        its child in the lineage; ``session_key``, when given, now points at it. (new id, copied, entry)."""
        title = titles.normalized(title) if title is not None else None

        def work(tx: Transaction) -> tuple[str, int, Entry | None]:
            source = tx.session_summary(session_id)
            if source is None:
                raise NotFound(f"session_id: no session {shown(session_id)}")
            old = self._current(tx, session_key) if session_key is not None else None
            if title:
                _title_free(tx, title, "title")
            now = self.clock()
            key = session_key if session_key is not None else source.session_key
            lineage = (session_id, "branch")
            branch = self._new_session_id(tx, now, key, source.platform, None, title, lineage, source.chat_type)
            copied = tx.copy_messages(session_id, branch, LAST_POSITION if through is None else through)
            tx.set_metadata(branch, source.metadata)
            entry = None
            if old is not None:
                tx.end_session(old.session_id, "session_branch", now)
                entry = replace(_successor(old, branch, now), metadata=source.metadata)
                tx.put_entry(entry)
                self._event(tx, now, "branched", entry, previous_session_id=old.session_id, reason="branch")
            else:
                tx.add_event(Event("branched", "", branch, 0, previous_session_id=session_id, reason="branch"), now)
            return branch, copied, entry

        return self.storage.write(work, deadline)


def _governing(settings: Settings, old: Entry | None, source: Source) -> dict[str, Any]:
    """What governs a key from now on: what the call chose (its gateway's, else its namespace's),
    else what its entry kept. Kept on the entry, so the daemon's expiry scan applies it too."""
    kept_policy, kept_age = (old.reset_policy, old.max_age_days) if old else (None, None)
    return {
        "reset_policy": settings.chosen_policy(source.platform, source.chat_type) or kept_policy,
        "max_age_days": kept_age if settings.max_age_days is None else settings.max_age_days,
    }


def _handoff_allowed(from_key: str, to_key: str, field: str) -> None:
    if to_key == from_key:
        raise FailedPrecondition(f"{field}: the session is already this key's")
    if keys.namespace_of(to_key) != keys.namespace_of(from_key):
        raise FailedPrecondition(f"{field}: {shown(to_key)} is of another agent namespace than {shown(from_key)}")


def _successor(old: Entry, session_id: str, now: datetime) -> Entry:
    """A fresh entry for the same key and origin (reset and switch start counters anew)."""
    return Entry(
        session_key=old.session_key,
        session_id=session_id,
        created_at=now,
        updated_at=now,
        origin=old.origin,
        display_name=old.display_name,
        platform=old.platform,
        chat_type=old.chat_type,
        version=old.version + 1,
        reset_policy=old.reset_policy,
        max_age_days=old.max_age_days,
    )


def _unique_message_ids(messages: Sequence[Message]) -> None:
    seen: set[str] = set()
    for index, message in enumerate(messages):
        if message.message_id and message.message_id in seen:
            raise InvalidArgument(f"messages[{index}].message_id", "repeated within the transcript")
        seen.add(message.message_id)


def _parent(old: Entry | None, reason: str | None) -> tuple[str, str] | None:
    """Where a session GetOrCreateSession starts comes from: the key's previous one, auto-reset
    (the policy, or a suspension) or forced."""
    return None if old is None else (old.session_id, "force_new" if reason is None else "auto_reset")


def _title_free(tx: Transaction, title: str, field: str, session_id: str | None = None) -> None:
    """Titles are unique among stored sessions: refuse one another session has."""
    holder = tx.session_titled(title)
    if holder is not None and holder != session_id:
        raise AlreadyExists(f"{field}: session {holder} is already titled {shown(title)}")
