"""``SessionStore(sessions_dir, config)``: the reference's store, every decision made by the daemon.

Same methods, arguments, defaults and return conventions as the reference's: None or False for
an unknown key, ``[]`` for an unknown transcript, the count of what was changed. Transcripts
live in the daemon only (no JSONL copy, no second database): ``get_transcript_path`` still names
the reference's file, which nothing writes.

Gateways also used the reference's insides, and these work too: ``_entries`` (a live view of
the daemon's entries), ``_lock``, ``_save()`` (writes back what the gateway assigned to its
entries), ``_ensure_loaded()``, ``_generate_session_key()``, ``_is_session_expired()`` and
``_should_reset()`` (the daemon's rule, under the gateway's policy), and ``_db`` (None).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import fields
from pathlib import Path
from typing import Any

from sessiond_client import errors, types
from sessiond_client.coordination import OnConflict, begin_turn_request, fence_to_proto, turn_begun_from_proto
from sessiond_client.hermes import host, model, wire
from sessiond_client.store_client import (
    PAGE_SIZE,
    datetime_from_proto,
    datetime_to_proto,
    entry_from_proto,
    message_from_proto,
    message_to_proto,
    metadata_filters_to_proto,
    metadata_value_to_proto,
    pages,
    source_to_proto,
)
from sessiond_client.v1 import session_pb2
from sessiond_client.v1 import session_store_pb2 as pb

log = logging.getLogger(__name__)


class SessionStore:
    """The gateway's session store, kept by sessiond.

    ``address`` (or ``SESSIOND_ADDRESS``) names a daemon; without one the daemon serving
    ``sessions_dir`` on this host is used, and started when none runs. ``namespace``: the agent
    namespace its keys are built in and its listings, prunes and restart marks see (default: the
    host profile's when the store is made, ``host.namespace``), so that profiles can share one daemon.
    """

    def __init__(
        self,
        sessions_dir: Path,
        config: Any,
        has_active_processes_fn: Callable[[str], bool] | None = None,
        *,
        address: str | None = None,
        namespace: str | None = None,
    ):
        self.sessions_dir = sessions_dir
        self.namespace = namespace or host.namespace()  # beyond the reference: the agent namespace it works in
        self.config = config
        self._has_active_processes_fn = has_active_processes_fn
        self._daemon = wire.Connection(address, Path(sessions_dir))
        wire.set_default(self._daemon)  # module-level functions follow the gateway's daemon
        self._lock = threading.RLock()  # gateways hold it around _save(), as they did the reference's
        self._live: dict[str, model.SessionEntry] = {}  # the one object per key the gateway holds
        self._known: dict[str, dict[str, Any]] = {}  # its WRITTEN_BACK fields as the daemon has them
        self._dirty: set[str] = set()
        self._entries = LiveEntries(self)
        self._db = None  # the reference's SessionDB: the daemon keeps the one copy
        self._loaded = True

    # -- live entries

    def _entry(self, message: session_pb2.SessionEntry) -> model.SessionEntry:
        """The key's live entry, updated in place from the daemon's answer; a new session of the key
        is a new object, as in the reference (an old one a gateway still holds keeps its id)."""
        fresh = model.with_platforms(entry_from_proto(message, aware=False))
        key = fresh.session_key
        with self._lock:
            live = self._live.get(key)
            if live is not None and live.session_id == fresh.session_id:
                for f in fields(fresh):
                    object.__setattr__(live, f.name, getattr(fresh, f.name))
            else:
                if live is not None:
                    object.__setattr__(live, "_changed", None)  # replaced: its changes no longer count
                live = self._live[key] = fresh
                object.__setattr__(live, "_changed", self._mark)
            self._known[key] = {name: getattr(fresh, name) for name in model.WRITTEN_BACK}
            self._dirty.discard(key)
            return live

    def _mark(self, entry: model.SessionEntry) -> None:
        with self._lock:
            self._dirty.add(entry.session_key)

    def _save(self) -> None:
        """Write back what the gateway assigned to its entries (the reference rewrote sessions.json)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            for key in dirty:
                if key in self._live:
                    self._write_back(self._live[key])

    def _write_back(self, entry: model.SessionEntry) -> None:
        known, key = self._known.get(entry.session_key, {}), entry.session_key
        wanted = {name: getattr(entry, name) for name in model.WRITTEN_BACK}
        changed = {name for name, value in wanted.items() if value != known.get(name)}
        calls: list[tuple[Callable[[Any], Callable[..., Any]], object]] = []
        if "session_id" in changed:
            switch = pb.SwitchSessionRequest(
                session_key=key, target_session_id=wanted["session_id"], create_session=True
            )
            calls.append((lambda s: s.SwitchSession, switch))
        if "suspended" in changed and wanted["suspended"]:
            calls.append((lambda s: s.SuspendSession, pb.SuspendSessionRequest(session_key=key)))
        if "expiry_finalized" in changed and wanted["expiry_finalized"]:
            finalized = pb.MarkExpiryFinalizedRequest(session_key=key, session_id=wanted["session_id"])
            calls.append((lambda s: s.MarkExpiryFinalized, finalized))
        update = pb.UpdateSessionRequest(session_key=key, keep_updated_at=True)
        if "is_fresh_reset" in changed:
            update.is_fresh_reset = wanted["is_fresh_reset"]
        if "was_auto_reset" in changed and not wanted["was_auto_reset"]:
            update.clear_auto_reset = True
        if "last_prompt_tokens" in changed:
            update.last_prompt_tokens = wanted["last_prompt_tokens"]
        if update.HasField("is_fresh_reset") or update.clear_auto_reset or update.HasField("last_prompt_tokens"):
            calls.append((lambda s: s.UpdateSession, update))
        try:
            for method, request in calls:
                self._daemon.call(method, request)
            self._entry(self._daemon.call(lambda s: s.GetSession, pb.GetSessionRequest(session_key=key)).entry)
        except (errors.NotFoundError, errors.ConflictError):  # the key is gone or moved on meanwhile
            self._live.pop(key, None)

    def _get(self, session_key: str) -> model.SessionEntry | None:
        self._save()
        try:
            response = self._daemon.call(lambda s: s.GetSession, pb.GetSessionRequest(session_key=session_key))
        except errors.NotFoundError:
            return None
        return self._entry(response.entry)

    def _ensure_loaded(self) -> None:
        """The reference read sessions.json once; the daemon always has everything."""

    _ensure_loaded_locked = _ensure_loaded

    def _reset_reason(self, updated_at: Any, policy: Any) -> str | None:
        request = pb.CheckResetRequest(
            updated_at=datetime_to_proto(updated_at), config=pb.GatewayConfig(reset_policy=wire.policy_to_proto(policy))
        )
        response = self._daemon.call(lambda s: s.CheckReset, request)
        return response.reason if response.HasField("reason") else None

    def _is_session_expired(self, entry: Any) -> bool:
        """Whether the entry's policy (the gateway's, for its platform and chat type) says it expired."""
        if self._has_active_processes_fn is not None and self._has_active_processes_fn(entry.session_key):
            return False
        policy = self.config.get_reset_policy(platform=entry.platform, session_type=entry.chat_type)
        return self._reset_reason(entry.updated_at, policy) is not None

    def _should_reset(self, entry: Any, source: Any) -> str | None:
        """ "idle", "daily" or None for an entry reached from ``source`` (the source's policy)."""
        if self._has_active_processes_fn is not None and self._has_active_processes_fn(
            self._generate_session_key(source)
        ):
            return None
        policy = self.config.get_reset_policy(platform=source.platform, session_type=source.chat_type)
        return self._reset_reason(entry.updated_at, policy)

    def _active(self, session_key: str) -> bool:
        """The gateway's own word on background work for a key (a failing callback says no, as there)."""
        if self._has_active_processes_fn is None:
            return False
        try:
            return bool(self._has_active_processes_fn(session_key))
        except Exception as exc:
            log.debug("has_active_processes_fn raised for %s: %s", session_key, exc)
            return False

    def _config(self, source: Any = None) -> pb.GatewayConfig:
        return wire.store_config(self.config, source, self.namespace)

    # -- the reference's methods

    def _generate_session_key(self, source: Any) -> str:
        request = pb.BuildSessionKeyRequest(source=source_to_proto(source), config=self._config())
        return self._daemon.call(lambda s: s.BuildSessionKey, request).session_key

    def has_any_sessions(self) -> bool:
        request = pb.HasAnySessionsRequest(namespace=self.namespace)
        return self._daemon.call(lambda s: s.HasAnySessions, request).has_any_sessions

    def get_or_create_session(self, source: Any, force_new: bool = False) -> model.SessionEntry:
        self._save()  # first what the gateway assigned to its entries: each call saved there
        request = pb.GetOrCreateSessionRequest(
            source=source_to_proto(source), force_new=force_new, config=self._config(source)
        )
        if self._has_active_processes_fn is not None:
            request.active_process = self._active(self._generate_session_key(source))
        return self._entry(self._daemon.call(lambda s: s.GetOrCreateSession, request).entry)

    def update_session(self, session_key: str, last_prompt_tokens: int | None = None) -> None:
        self._save()
        request = pb.UpdateSessionRequest(session_key=session_key, last_prompt_tokens=last_prompt_tokens)
        try:
            self._daemon.call(lambda s: s.UpdateSession, request)
        except errors.NotFoundError:
            return

    def suspend_session(self, session_key: str) -> bool:
        self._save()
        return self._changed(lambda s: s.SuspendSession, pb.SuspendSessionRequest(session_key=session_key))

    def mark_resume_pending(self, session_key: str, reason: str = "restart_timeout") -> bool:
        self._save()
        request = pb.MarkResumePendingRequest(session_key=session_key, reason=reason)
        return self._changed(lambda s: s.MarkResumePending, request)

    def _changed(self, method: Callable[[Any], Callable[..., Any]], request: object) -> bool:
        """True when the daemon made the change; False for an unknown key or a refused state."""
        try:
            self._daemon.call(method, request)
        except (errors.NotFoundError, errors.FailedPreconditionError):
            return False
        return True

    def clear_resume_pending(self, session_key: str) -> bool:
        self._save()
        request = pb.ClearResumePendingRequest(session_key=session_key)
        try:
            return bool(self._daemon.call(lambda s: s.ClearResumePending, request).cleared)
        except errors.NotFoundError:
            return False

    def prune_old_entries(self, max_age_days: int) -> int:
        """Entries idle for ``max_age_days``; those the gateway's callback says are busy are kept."""
        self._save()
        if max_age_days is None or max_age_days <= 0:
            return 0
        request = pb.PruneOldEntriesRequest(max_age_days=max_age_days, namespace=self.namespace)
        if self._has_active_processes_fn is not None:
            request.dry_run = True
            candidates = self._daemon.call(lambda s: s.PruneOldEntries, request).session_keys
            request.dry_run = False
            request.keep_session_keys.extend(key for key in candidates if self._active(key))
        return int(self._daemon.call(lambda s: s.PruneOldEntries, request).count)

    def suspend_recently_active(self, max_age_seconds: int = 120) -> int:
        self._save()
        request = pb.SuspendRecentlyActiveRequest(max_age_seconds=max_age_seconds, namespace=self.namespace)
        return int(self._daemon.call(lambda s: s.SuspendRecentlyActive, request).count)

    def reset_session(self, session_key: str) -> model.SessionEntry | None:
        self._save()
        try:
            response = self._daemon.call(lambda s: s.ResetSession, pb.ResetSessionRequest(session_key=session_key))
        except errors.NotFoundError:
            return None
        return self._entry(response.entry)

    def switch_session(self, session_key: str, target_session_id: str) -> model.SessionEntry | None:
        """Points the key at any session id (an unknown one is recorded, as the reference allowed)."""
        self._save()
        request = pb.SwitchSessionRequest(
            session_key=session_key, target_session_id=target_session_id, create_session=True
        )
        try:
            return self._entry(self._daemon.call(lambda s: s.SwitchSession, request).entry)
        except errors.NotFoundError:
            return None

    def set_session_metadata(
        self, session_key: str, values: Mapping[str, Any] | None = None, *, remove: Iterable[str] = ()
    ) -> model.SessionEntry | None:
        """Beyond the reference: keep per-session values (a /model override, an owner, tags) with the
        session in the daemon, where they survive restarts; read them as ``entry.metadata``.
        None when the key has no session."""
        self._save()
        request = pb.UpdateSessionMetadataRequest(
            session_key=session_key,
            set={key: metadata_value_to_proto(value, key) for key, value in (values or {}).items()},
            remove=list(remove),
        )
        try:
            return self._entry(self._daemon.call(lambda s: s.UpdateSessionMetadata, request).entry)
        except errors.NotFoundError:
            return None

    def list_sessions(
        self, active_minutes: int | None = None, *, metadata: Mapping[str, Any] | None = None
    ) -> list[model.SessionEntry]:
        """``metadata`` (beyond the reference): only sessions with these values, as
        ``SessionStoreClient.list_sessions``."""
        self._save()
        request = pb.ListSessionsRequest(
            namespace=self.namespace,
            active_minutes=active_minutes,
            page_size=PAGE_SIZE,
            metadata=metadata_filters_to_proto(metadata),
        )
        listing = pages(lambda page_request: self._daemon.call(lambda s: s.ListSessions, page_request), request)
        return [self._entry(entry) for page in listing for entry in page.entries]

    def get_transcript_path(self, session_id: str) -> Path:
        """The reference's JSONL file name; sessiond keeps the transcript itself and writes no file."""
        return Path(self.sessions_dir) / f"{session_id}.jsonl"

    def append_to_transcript(
        self, session_id: str, message: Mapping[str, Any], skip_db: bool = False, *, fence: types.Turn | None = None
    ) -> None:
        """Appends one message, for any session id (created on first write, as the reference allowed).

        ``skip_db`` told the reference that the agent had written the message to *its* SQLite
        database; sessiond is the one copy of the transcript, so the message is stored either way.
        A fresh ``message_id`` makes a retry after a lost answer harmless. ``fence`` (beyond the
        reference): the turn (``begin_turn``) the message belongs to; ``errors.ConflictError``, and
        nothing stored, once a newer turn began on its key.
        """
        if "message_id" not in message:
            message = {**message, "message_id": uuid.uuid4().hex}
        request = pb.AppendMessagesRequest(
            session_id=session_id,
            messages=[message_to_proto(message)],
            create_session=True,
            fence=fence_to_proto(fence),
        )
        self._daemon.call(lambda s: s.AppendMessages, request)

    def rewrite_transcript(
        self, session_id: str, messages: Iterable[Mapping[str, Any]], *, fence: types.Turn | None = None
    ) -> None:
        """Replace the transcript, keeping what the gateway's commands cut where sessiond can.

        ``/undo`` and ``/retry`` rewrite the transcript without its last user turns, ``/compress``
        with its head replaced by a summary. Those two shapes become a rewind (the turns stay
        stored, restorable) and a compaction in place (the head stays stored, archived and
        searchable); any other rewrite replaces the transcript, as the reference did.
        """
        wanted = [dict(message) for message in messages]
        if not self._rewrite_in_place(session_id, wanted, fence_to_proto(fence)):
            request = pb.RewriteTranscriptRequest(
                session_id=session_id,
                messages=map(message_to_proto, wanted),
                create_session=True,
                fence=fence_to_proto(fence),
            )
            self._daemon.call(lambda s: s.RewriteTranscript, request)

    def _rewrite_in_place(self, session_id: str, wanted: list[dict[str, Any]], fence: pb.TurnFence | None) -> bool:
        """Rewind or compact instead of rewriting, when ``wanted`` has one of their shapes."""
        stored = self._visible(session_id)
        now = [message for _, message in stored]
        if now == wanted:
            return True
        cut = len(wanted)
        if 0 < len(now) and cut < len(now) and now[:cut] == wanted and now[cut]["role"] == "user":
            turns = sum(message["role"] == "user" for message in now[cut:])
            rewind = pb.RewindTranscriptRequest(session_id=session_id, turns=turns, fence=fence)
            self._daemon.call(lambda s: s.RewindTranscript, rewind)
            return True
        kept = _common_tail(now, wanted)
        if kept and len(wanted) - kept == 1 and len(now) - kept >= 1:  # a summary, then a kept tail
            request = pb.CompactTranscriptRequest(
                session_id=session_id,
                first_position=stored[0][0],
                last_position=stored[len(now) - kept - 1][0],
                summary=message_to_proto(wanted[0]),
                fence=fence,
            )
            self._daemon.call(lambda s: s.CompactTranscript, request)
            return True
        return False

    def _visible(self, session_id: str) -> list[tuple[int, dict[str, Any]]]:
        """The visible transcript, each message with its position; [] for an unknown session."""
        request = pb.LoadTranscriptRequest(session_id=session_id, page_size=PAGE_SIZE)
        transcript = pages(lambda page_request: self._daemon.call(lambda s: s.LoadTranscript, page_request), request)
        try:
            return [(m.position, message_from_proto(m)) for page in transcript for m in page.messages]
        except errors.NotFoundError:
            return []

    def load_transcript(self, session_id: str) -> list[dict[str, Any]]:
        return [message for _, message in self._visible(session_id)]

    # -- beyond the reference: handoffs and turns

    def handoff_session(
        self, session_key: str, target_source: Any, *, release_source: bool = False
    ) -> model.SessionEntry | None:
        """Continue the key's session in another chat (``target_source``, keyed as its messages
        would be): the destination's former session ends; ``release_source`` takes the session
        from this key too. The destination's entry; None when the key has no session."""
        self._save()
        request = pb.HandoffSessionRequest(
            session_key=session_key,
            target_source=source_to_proto(target_source),
            config=self._config(target_source),
            release_source=release_source,
        )
        try:
            return self._entry(self._daemon.call(lambda s: s.HandoffSession, request).entry)
        except errors.NotFoundError:
            return None

    def begin_turn(
        self, session_key: str, owner: str, ttl_seconds: float = 600, *, on_conflict: OnConflict = "reject"
    ) -> types.TurnBegun:
        """One agent turn at a time on the key: pass ``.turn`` as ``fence=`` to the turn's writes, so
        that a stale loop (a restart mid-turn, a second client) cannot write once a newer turn
        began; ``on_conflict`` "reject", "queue" or "interrupt" while another owner's turn runs."""
        request = begin_turn_request(session_key, owner, ttl_seconds, on_conflict)
        return turn_begun_from_proto(self._daemon.call(lambda s: s.BeginTurn, request), _naive_time)

    def end_turn(self, turn: types.Turn) -> bool:
        """End the turn; False when it had ended or a newer one began."""
        request = pb.EndTurnRequest(fence=fence_to_proto(turn))
        return bool(self._daemon.call(lambda s: s.EndTurn, request).ended)


def _naive_time(message: Any, name: str) -> Any:
    """A timestamp field as the reference's naive local datetime."""
    return datetime_from_proto(getattr(message, name), aware=False)


class LiveEntries(Mapping[str, model.SessionEntry]):
    """``store._entries``: the daemon's entries by key, as the store's live objects."""

    def __init__(self, store: SessionStore):
        self._store = store

    def __getitem__(self, session_key: str) -> model.SessionEntry:
        entry = self._store._get(session_key)
        if entry is None:
            raise KeyError(session_key)
        return entry

    def __contains__(self, session_key: object) -> bool:
        return isinstance(session_key, str) and self._store._get(session_key) is not None

    def _snapshot(self) -> dict[str, model.SessionEntry]:
        return {entry.session_key: entry for entry in self._store.list_sessions()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self._snapshot())

    def items(self) -> ItemsView[str, model.SessionEntry]:
        return self._snapshot().items()  # one listing, not a look-up per key

    def values(self) -> ValuesView[model.SessionEntry]:
        return self._snapshot().values()


def _common_tail(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> int:
    """How many messages at the end of ``first`` and ``second`` are the same."""
    length = 0
    while length < min(len(first), len(second)) and first[-1 - length] == second[-1 - length]:
        length += 1
    return length
