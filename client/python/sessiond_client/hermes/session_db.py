"""``SessionDB``: the titles, search and cleanup of the Hermes host's session database
(``hermes_state.SessionDB``), kept by sessiond.

A Hermes gateway on sessiond keeps no ``state.db`` of its own, yet its ``/title``, ``/new <name>``
and ``/resume <name>`` handlers, the agent's session-search tool (``search_messages``) and the
host's session cleanup (``delete_session``, ``prune_sessions``) ask a ``SessionDB``. This one
answers those calls from the daemon with the host's names, arguments and conventions:
``ValueError`` for a title another session has or one too long, ``None`` where nothing is found,
``True``/``False`` for whether a session was there. Built without arguments it follows the
gateway's ``SessionStore`` (the last one made), else ``SESSIOND_ADDRESS``, else the daemon of
``$HERMES_HOME/sessions``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sessiond_client import errors
from sessiond_client.hermes import host, wire
from sessiond_client.store_client import pages
from sessiond_client.v1 import session_store_pb2 as pb

_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufffc\ufff9-\ufffb]"
)


CONTEXT_CHARS = 200  # of each neighbouring message in a search result, as the host cut them
SEARCH_PAGE_MAX = 100
PRUNE_BATCH = 1000  # sessions prune_sessions deletes per call (one transaction each)


class SessionDB:
    """The title, search and cleanup calls of the host's ``SessionDB``, over sessiond."""

    MAX_TITLE_LENGTH = 100

    def __init__(self, db_path: Path | None = None, *, address: str | None = None):
        # ``db_path`` is the host's state.db: accepted and unused, the daemon holds the sessions.
        self._daemon = wire.Connection(address, None) if address else wire.default_connection()

    @staticmethod
    def sanitize_title(title: str | None) -> str | None:
        """The stored spelling (the daemon's too): None when nothing printable is left; a
        ``ValueError`` past ``MAX_TITLE_LENGTH`` characters."""
        if not title:
            return None
        cleaned = " ".join(_CONTROL.sub("", title).split())
        if len(cleaned) > SessionDB.MAX_TITLE_LENGTH:
            raise ValueError(f"Title too long ({len(cleaned)} chars, max {SessionDB.MAX_TITLE_LENGTH})")
        return cleaned or None

    def set_session_title(self, session_id: str, title: str) -> bool:
        """Set (or with an empty title clear) the title; False for an unknown session, a
        ``ValueError`` when another session has the title."""
        request = pb.SetSessionTitleRequest(session_id=session_id, title=self.sanitize_title(title) or "")
        try:
            self._daemon.call(lambda s: s.SetSessionTitle, request)
        except errors.NotFoundError:
            return False
        except errors.AlreadyExistsError as exc:
            raise ValueError(exc.details) from None
        return True

    def get_session_title(self, session_id: str) -> str | None:
        try:
            response = self._daemon.call(lambda s: s.GetSessionTitle, pb.GetSessionTitleRequest(session_id=session_id))
        except errors.NotFoundError:
            return None
        return response.title if response.HasField("title") else None

    def get_session_by_title(self, title: str) -> dict[str, Any] | None:
        """``{"id", "title"}`` of the session with exactly this title, or None."""
        found = self._find(title, latest_in_lineage=False)
        return None if found is None else {"id": found, "title": self.sanitize_title(title)}

    def resolve_session_by_title(self, title: str) -> str | None:
        """The newest ``<title> #<n>`` session (a resumed chain's latest), else the one titled exactly."""
        return self._find(title, latest_in_lineage=True)

    def get_next_title_in_lineage(self, base_title: str) -> str:
        request = pb.NextTitleInLineageRequest(title=base_title)
        return self._daemon.call(lambda s: s.NextTitleInLineage, request).title

    def _find(self, title: str, latest_in_lineage: bool) -> str | None:
        spelled = self.sanitize_title(title)
        if spelled is None:
            return None
        request = pb.FindSessionByTitleRequest(title=spelled, latest_in_lineage=latest_in_lineage)
        try:
            return self._daemon.call(lambda s: s.FindSessionByTitle, request).session_id
        except errors.NotFoundError:
            return None

    def search_messages(
        self,
        query: str,
        source_filter: list[str] | None = None,
        exclude_sources: list[str] | None = None,
        role_filter: list[str] | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Full-text search of every transcript, as the host's: dicts with ``id``, ``session_id``,
        ``role``, ``snippet`` (matches between ">>>" and "<<<"), ``timestamp``, ``tool_name``,
        ``source``, ``model``, ``session_started`` and ``context`` (the neighbouring messages'
        role and first 200 characters). [] for a query with no word; the daemon's FAILED_PRECONDITION
        (no index) as ``errors.FailedPreconditionError``."""
        sources = set(source_filter or ())
        excluded = set(exclude_sources or ())
        platform = next(iter(sources)) if len(sources) == 1 else None
        request = pb.SearchMessagesRequest(
            query=query,
            platform=platform,
            roles=role_filter or [],
            window=1,
            page_size=SEARCH_PAGE_MAX,
            namespace=host.namespace(),
        )
        found: list[dict[str, Any]] = []
        try:
            for page in pages(
                lambda page_request: self._daemon.call(lambda s: s.SearchMessages, page_request), request
            ):
                found += [
                    _found(hit)
                    for hit in page.hits
                    if (not sources or hit.session.platform in sources) and hit.session.platform not in excluded
                ]
                if len(found) >= offset + limit:
                    break
        except errors.InvalidArgumentError:
            return []  # the host answered [] for a query of punctuation only
        return found[offset : offset + limit]

    def delete_session(self, session_id: str) -> bool:
        """Delete a session with its messages; False when there is none (or it is a leased key's
        current session, which sessiond never deletes)."""
        selector = pb.SessionSelector(session_ids=[session_id])
        response = self._daemon.call(lambda s: s.DeleteSessions, pb.DeleteSessionsRequest(selector=selector))
        return bool(response.session_ids)

    def prune_sessions(self, older_than_days: int = 90, source: str | None = None) -> int:
        """Delete ended sessions (of the ``source`` platform, when given) idle for ``older_than_days``
        (sessiond counts from the last activity, the host from the start: never more); how many."""
        selector = pb.SessionSelector(ended=True, platform=source, namespace=host.namespace())
        if older_than_days > 0:
            selector.inactive_days = older_than_days
        request, deleted = pb.DeleteSessionsRequest(selector=selector, limit=PRUNE_BATCH), 0
        while True:
            response = self._daemon.call(lambda s: s.DeleteSessions, request)
            deleted += len(response.session_ids)
            if not response.remaining or not response.session_ids:
                return deleted


def _found(hit: pb.SearchHit) -> dict[str, Any]:
    """A hit in the host's shape (times as epoch seconds, as its database stored them)."""
    here = next((m for m in hit.window if m.position == hit.position), None)
    return {
        "id": hit.position,
        "session_id": hit.session.session_id,
        "role": hit.role,
        "snippet": hit.snippet,
        "timestamp": hit.time.ToMicroseconds() / 1e6,
        "tool_name": here.tool_name if here is not None and here.HasField("tool_name") else None,
        "source": hit.session.platform,
        "model": None,
        "session_started": hit.session.started_at.ToMicroseconds() / 1e6,
        "context": [
            {"role": m.role, "content": (m.text or m.json)[:CONTEXT_CHARS]}
            for m in hit.window
            if m.position != hit.position
        ],
    }
