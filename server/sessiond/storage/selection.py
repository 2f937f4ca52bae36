"""Which stored sessions a bulk call (DeleteSessions, ArchiveSessions, retention) acts on, and the
acting: statements written once for both SQL backends.

A selector's conditions travel as parameters (lists and per-platform cutoffs as JSON), so the
statements' text never depends on which conditions a call sets. Written with ``:name``
parameters; ``Dialect.named`` spells them for the backend, and the dialect supplies the JSON
functions. A session that is the current one of a key with a live lease is never selected.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sessiond.model import ActivityCutoffs, SessionSelector, fold, to_us
from sessiond.storage.dialects import Dialect
from sessiond.storage.rows import LAST_US, NEVER, in_namespace, namespace_params, prefix_range


def _where(dialect: Dialect) -> str:
    # Per session, the age cutoff of its platform, else of its chat type, else the default.
    cutoff = (
        f"COALESCE({dialect.lookup(':platform_cutoffs', 's.platform')},"
        f" {dialect.lookup(':chat_type_cutoffs', 's.chat_type')}, :default_cutoff)"
    )
    flag = "(CASE WHEN {} IS NULL THEN 0 ELSE 1 END)"
    return f"""
        (:any_id OR {dialect.member("s.id", ":ids")})
        AND s.active_at < :latest_cutoff AND s.active_at < {cutoff}
        AND NOT EXISTS (SELECT 1 FROM entries AS e WHERE e.session_id = s.id AND e.updated_at >= {cutoff})
        AND s.platform = coalesce(:platform, s.platform)
        AND coalesce(s.chat_type, '') = coalesce(:chat_type, s.chat_type, '')
        AND (:titled < 0 OR {flag.format("s.title")} = :titled)
        AND (:title_from = '' OR (s.title_folded >= :title_from AND s.title_folded < :title_to))
        AND (:any_reason OR {dialect.member("s.end_reason", ":reasons")})
        AND (:ended < 0 OR {flag.format("s.ended_at")} = :ended)
        AND s.message_count >= :min_messages AND s.message_count <= :max_messages
        AND (:archived < 0 OR {flag.format("s.archived_at")} = :archived)
        AND NOT (:keep_titled AND s.title IS NOT NULL) AND {in_namespace("s.session_key")}
        AND {dialect.condition("s.metadata", ":metadata")}
        AND NOT EXISTS (SELECT 1 FROM entries AS e JOIN leases AS l ON l.session_key = e.session_key
                        WHERE e.session_id = s.id AND l.expires_at > :now)"""


def statements(dialect: Dialect) -> dict[str, str]:
    """The backend's statements, by name."""
    where = _where(dialect)
    ids = ":chosen"
    sql = {
        "select": f"""SELECT s.id, s.message_count FROM sessions AS s WHERE {where}
                      ORDER BY s.active_at, s.id LIMIT :limit""",
        "count": f"SELECT count(*), coalesce(sum(s.message_count), 0) FROM sessions AS s WHERE {where}",
        "drop_entries": (
            f"DELETE FROM entries WHERE {dialect.member('session_id', ids)} RETURNING session_key, session_id, version"
        ),
        "delete_messages": f"DELETE FROM messages WHERE {dialect.member('session_id', ids)}",
        "delete_handoffs": f"DELETE FROM handoffs WHERE {dialect.member('session_id', ids)}",
        "delete_sessions": f"DELETE FROM sessions WHERE {dialect.member('id', ids)}",
        "archive": f"""UPDATE sessions SET archived_at = :now, ended_at = coalesce(ended_at, :now),
                           end_reason = coalesce(end_reason, 'session_archived')
                       WHERE {dialect.member("id", ids)}""",
        "unarchive": f"UPDATE sessions SET archived_at = NULL WHERE {dialect.member('id', ids)}",
    }
    return {name: dialect.named(text) for name, text in sql.items()}


def _tristate(value: bool | None) -> int:
    return -1 if value is None else int(value)


def _us(at: datetime | None) -> int:
    return NEVER if at is None else to_us(at)  # None: never old enough


def params(selector: SessionSelector, now: datetime, dialect: Dialect, limit: int = 0) -> dict[str, Any]:
    """The parameters of ``select`` and ``count`` for a selector (no age condition: every age)."""
    age = selector.inactive_before
    if selector.inactive_days is not None:
        age = ActivityCutoffs(now - timedelta(days=selector.inactive_days))
    default = LAST_US if age is None else _us(age.default)
    platforms = {name: _us(at) for name, at in (age.platforms if age else {}).items()}
    chat_types = {name: _us(at) for name, at in (age.chat_types if age else {}).items()}
    title_from, title_to = prefix_range(fold(selector.title_prefix or ""))
    return {
        "latest_cutoff": max([default, *platforms.values(), *chat_types.values()]),  # sessions_by_activity's range
        "any_id": not selector.session_ids,
        "ids": dialect.texts(selector.session_ids),
        "default_cutoff": default,
        "platform_cutoffs": json.dumps(platforms),
        "chat_type_cutoffs": json.dumps(chat_types),
        "platform": selector.platform,
        "chat_type": selector.chat_type,
        "titled": _tristate(selector.titled),
        "title_from": title_from,
        "title_to": title_to,
        "any_reason": not selector.end_reasons,
        "reasons": dialect.texts(selector.end_reasons),
        "ended": _tristate(selector.ended),
        "min_messages": selector.min_messages or 0,
        "max_messages": LAST_US if selector.max_messages is None else selector.max_messages,
        "archived": _tristate(selector.archived),
        "keep_titled": selector.keep_titled,
        **namespace_params(selector.namespace),
        "metadata": dialect.filters(selector.metadata),
        "now": to_us(now),
        "limit": limit,
    }
