"""``SessionStore(sessions_dir, config)``: the reference's store, every decision made by the daemon.

Same methods, arguments, defaults and return conventions as the reference's: None or False for
an unknown key, ``[]`` for an unknown transcript, the count of what was changed. Transcripts
live in the daemon only (no JSONL copy, no second database): ``get_transcript_path`` still names
the reference's file, which nothing writes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sessiond_client import errors
from sessiond_client.hermes import model, wire
from sessiond_client.store_client import (
    PAGE_SIZE,
    entry_from_proto,
    message_from_proto,
    message_to_proto,
    source_to_proto,
)
from sessiond_client.v1 import session_pb2
from sessiond_client.v1 import session_store_pb2 as pb

log = logging.getLogger(__name__)


class SessionStore:
    """The gateway's session store, kept by sessiond.

    ``address`` (or ``SESSIOND_ADDRESS``) names a daemon; without one the daemon serving
    ``sessions_dir`` on this host is used, and started when none runs.
    """

    def __init__(
        self,
        sessions_dir: Path,
        config: Any,
        has_active_processes_fn: Callable[[str], bool] | None = None,
        *,
        address: str | None = None,
    ):
        self.sessions_dir = sessions_dir
        self.config = config
        self._has_active_processes_fn = has_active_processes_fn
        self._daemon = wire.Connection(address, Path(sessions_dir))
        wire.set_default(self._daemon)  # module-level functions follow the gateway's daemon

    # -- conversions

    def _entry(self, message: session_pb2.SessionEntry) -> model.SessionEntry:
        return model.with_platforms(entry_from_proto(message, aware=False))

    def _active(self, session_key: str) -> bool:
        """The gateway's own word on background work for a key (a failing callback says no, as there)."""
        if self._has_active_processes_fn is None:
            return False
        try:
            return bool(self._has_active_processes_fn(session_key))
        except Exception as exc:
            log.debug("has_active_processes_fn raised for %s: %s", session_key, exc)
            return False

    # -- the reference's methods

    def _generate_session_key(self, source: Any) -> str:
        request = pb.BuildSessionKeyRequest(source=source_to_proto(source), config=wire.store_config(self.config))
        return self._daemon.call(lambda s: s.BuildSessionKey, request).session_key

    def has_any_sessions(self) -> bool:
        return self._daemon.call(lambda s: s.HasAnySessions, pb.HasAnySessionsRequest()).has_any_sessions

    def get_or_create_session(self, source: Any, force_new: bool = False) -> model.SessionEntry:
        request = pb.GetOrCreateSessionRequest(
            source=source_to_proto(source), force_new=force_new, config=wire.store_config(self.config, source)
        )
        if self._has_active_processes_fn is not None:
            request.active_process = self._active(self._generate_session_key(source))
        return self._entry(self._daemon.call(lambda s: s.GetOrCreateSession, request).entry)

    def update_session(self, session_key: str, last_prompt_tokens: int | None = None) -> None:
        request = pb.UpdateSessionRequest(session_key=session_key, last_prompt_tokens=last_prompt_tokens)
        try:
            self._daemon.call(lambda s: s.UpdateSession, request)
        except errors.NotFoundError:
            return

    def suspend_session(self, session_key: str) -> bool:
        return self._changed(lambda s: s.SuspendSession, pb.SuspendSessionRequest(session_key=session_key))

    def mark_resume_pending(self, session_key: str, reason: str = "restart_timeout") -> bool:
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
        request = pb.ClearResumePendingRequest(session_key=session_key)
        try:
            return bool(self._daemon.call(lambda s: s.ClearResumePending, request).cleared)
        except errors.NotFoundError:
            return False

    def prune_old_entries(self, max_age_days: int) -> int:
        """Entries idle for ``max_age_days``; those the gateway's callback says are busy are kept."""
        if max_age_days is None or max_age_days <= 0:
            return 0
        request = pb.PruneOldEntriesRequest(max_age_days=max_age_days)
        if self._has_active_processes_fn is not None:
            request.dry_run = True
            candidates = self._daemon.call(lambda s: s.PruneOldEntries, request).session_keys
            request.dry_run = False
            request.keep_session_keys.extend(key for key in candidates if self._active(key))
        return int(self._daemon.call(lambda s: s.PruneOldEntries, request).count)

    def suspend_recently_active(self, max_age_seconds: int = 120) -> int:
        request = pb.SuspendRecentlyActiveRequest(max_age_seconds=max_age_seconds)
        return int(self._daemon.call(lambda s: s.SuspendRecentlyActive, request).count)

    def reset_session(self, session_key: str) -> model.SessionEntry | None:
        try:
            response = self._daemon.call(lambda s: s.ResetSession, pb.ResetSessionRequest(session_key=session_key))
        except errors.NotFoundError:
            return None
        return self._entry(response.entry)

    def switch_session(self, session_key: str, target_session_id: str) -> model.SessionEntry | None:
        """Points the key at any session id (an unknown one is recorded, as the reference allowed)."""
        request = pb.SwitchSessionRequest(
            session_key=session_key, target_session_id=target_session_id, create_session=True
        )
        try:
            return self._entry(self._daemon.call(lambda s: s.SwitchSession, request).entry)
        except errors.NotFoundError:
            return None

    def list_sessions(self, active_minutes: int | None = None) -> list[model.SessionEntry]:
        request = pb.ListSessionsRequest(active_minutes=active_minutes, page_size=PAGE_SIZE)
        entries = []
        while True:
            response = self._daemon.call(lambda s: s.ListSessions, request)
            entries += [self._entry(entry) for entry in response.entries]
            if not response.next_page_token:
                return entries
            request.page_token = response.next_page_token

    def get_transcript_path(self, session_id: str) -> Path:
        """The reference's JSONL file name; sessiond keeps the transcript itself and writes no file."""
        return Path(self.sessions_dir) / f"{session_id}.jsonl"

    def append_to_transcript(self, session_id: str, message: Mapping[str, Any], skip_db: bool = False) -> None:
        """Appends one message, for any session id (created on first write, as the reference allowed).

        ``skip_db`` told the reference that the agent had written the message to *its* SQLite
        database; sessiond is the one copy of the transcript, so the message is stored either way.
        A fresh ``message_id`` makes a retry after a lost answer harmless.
        """
        if "message_id" not in message:
            message = {**message, "message_id": uuid.uuid4().hex}
        request = pb.AppendMessagesRequest(
            session_id=session_id, messages=[message_to_proto(message)], create_session=True
        )
        self._daemon.call(lambda s: s.AppendMessages, request)

    def rewrite_transcript(self, session_id: str, messages: Iterable[Mapping[str, Any]]) -> None:
        request = pb.RewriteTranscriptRequest(
            session_id=session_id, messages=map(message_to_proto, messages), create_session=True
        )
        self._daemon.call(lambda s: s.RewriteTranscript, request)

    def load_transcript(self, session_id: str) -> list[dict[str, Any]]:
        request = pb.LoadTranscriptRequest(session_id=session_id, page_size=PAGE_SIZE)
        messages: list[dict[str, Any]] = []
        try:
            while True:
                response = self._daemon.call(lambda s: s.LoadTranscript, request)
                messages += [message_from_proto(m) for m in response.messages]
                if not response.next_page_token:
                    return messages
                request.page_token = response.next_page_token
        except errors.NotFoundError:
            return []
