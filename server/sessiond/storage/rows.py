"""How domain objects map to table rows, shared by the SQL backends (SQLite and PostgreSQL).

Times are integer microseconds since the epoch in both (exact equality, integer cursors), an
origin is its JSON object, flags are integers.

Each table's columns are one tuple of names, from which the statements' column lists and
placeholders are derived, and values go to and come from rows by column name: nothing has to
agree with a column list by position, or count its placeholders, by hand.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from operator import itemgetter
from typing import Any

from sessiond.model import (
    Cursor,
    Entry,
    Event,
    Lease,
    LineageLink,
    Message,
    MessageFilter,
    Metadata,
    ResetPolicy,
    SearchHit,
    SessionSummary,
    Source,
    Usage,
    from_us,
    to_us,
)
from sessiond.storage.dialects import Dialect
from sessiond.storage.interface import ExpiryCutoffs

NEVER = -(2**63)  # a cutoff no timestamp is below
LAST_US = 2**63 - 1  # an end no timestamp reaches
DAY_US = 86_400_000_000

ENTRY_COLUMNS = (
    "session_key", "session_id", "created_at", "updated_at", "origin", "display_name", "platform", "chat_type",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_tokens", "estimated_cost_usd",
    "cost_status", "last_prompt_tokens", "was_auto_reset", "auto_reset_reason", "reset_had_activity",
    "is_fresh_reset", "expiry_finalized", "suspended", "resume_pending", "resume_reason", "last_resume_marked_at",
    "version", "reset_policy", "max_age_days",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "role", "content", "content_is_json", "tool_calls", "tool_call_id", "tool_name", "reasoning",
    "reasoning_content", "reasoning_details", "codex_reasoning_items", "codex_message_items", "timestamp",
    "token_count", "finish_reason", "message_id", "position",
)  # fmt: skip
MESSAGE_INSERT_COLUMNS = ("session_id", *MESSAGE_COLUMNS)  # a message is read without its session's id
# Read with where it stands: an archived message at the position it had, and whether it is hidden.
MESSAGE_READ_COLUMNS = (*MESSAGE_COLUMNS, "visibility", "hidden_by")
EVENT_COLUMNS = (
    "sequence", "kind", "session_key", "session_id", "version", "previous_session_id", "reason", "lease_owner", "at",
    "identity", "linked_user", "other_session_key", "fencing_token",
)  # fmt: skip
LEASE_COLUMNS = ("session_key", "owner", "expires_at")
SESSION_INSERT_COLUMNS = ("id", "platform", "user_id", "started_at", "session_key", "chat_type", "active_at")
LINEAGE_COLUMNS = ("id", "parent_session_id", "parent_reason", "started_at", "title")
SUMMARY_COLUMNS = (
    "id", "platform", "started_at", "message_count", "title", "session_key", "ended_at", "end_reason",
    "parent_session_id", "metadata", "archived_at", "active_at", "chat_type",
)  # fmt: skip
# A search hit: the message's place and text around the match, then its session's summary (``s.``).
HIT_COLUMNS = ("position", "message_id", "role", "timestamp", "snippet", "score", "visibility", "hidden_by")
STORED_POLICIES = "SELECT DISTINCT reset_policy FROM entries WHERE reset_policy IS NOT NULL"


def listed(columns: Sequence[str]) -> str:
    """Columns as SQL's list of them (SELECT, INSERT, RETURNING): constant names, never request values."""
    return ", ".join(columns)


def placeholders(columns: Sequence[str], marker: str) -> str:
    """One parameter marker (``?`` for SQLite, ``%s`` for psycopg) per column: an INSERT's VALUES."""
    return ", ".join([marker] * len(columns))


ENTRY_LIST = listed(ENTRY_COLUMNS)
MESSAGE_LIST = listed(
    [
        *("COALESCE(original_position, position)" if c == "position" else c for c in MESSAGE_COLUMNS),
        "COALESCE(visibility, '')",
        "COALESCE(hidden_by, 0)",
    ]
)  # the columns of MESSAGE_READ_COLUMNS
MESSAGE_COPY_LIST = listed([c for c in MESSAGE_COLUMNS if c != "position"])  # a branch copies these as they are
EVENT_LIST = listed(EVENT_COLUMNS)
LEASE_LIST = listed(LEASE_COLUMNS)
LINEAGE_LIST = listed(LINEAGE_COLUMNS)
SUMMARY_LIST = listed(SUMMARY_COLUMNS)
SUMMARY_OF_S = listed([f"s.{column}" for column in SUMMARY_COLUMNS])  # the summary of a query's sessions AS s


def in_order(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """Values named by column to a tuple in ``columns``' order, the statement's (a missing one: ``KeyError``).

    Rows are bound positionally, not by name (``:name``): SQLite binds a named row about twice as slowly.
    """
    assert len(columns) > 1, "itemgetter of one key returns a value, not a tuple"
    return itemgetter(*columns)


def picker(columns: Sequence[str], names: Sequence[str]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """The values of ``names`` in a row of ``columns``, in that order, located by name once, at import.

    For the hot rows: a dataclass built from ``picker(COLUMNS, its field names)(row)`` positionally
    costs about half as much as one built with keyword arguments from ``dict(zip(COLUMNS, row))``.
    """
    assert len(names) > 1, "itemgetter of one index returns a value, not a tuple"
    return itemgetter(*(columns.index(name) for name in names))


def row_type(name: str, columns: Sequence[str]) -> Any:
    """A tuple type of ``columns``: ``row_type(...)._make(row)`` reads a row's values by column name.

    A named tuple rather than ``dict(zip(columns, row))``: it checks the row's length and costs a
    third as much to build (an entry read through a dict took 1.4 times as long as by index).
    """
    return namedtuple(name, columns)


def field_names(cls: Any) -> tuple[str, ...]:
    """A dataclass's fields in their order: its constructor's positional arguments."""
    return tuple(field.name for field in fields(cls))


_ENTRY_VALUES = in_order(ENTRY_COLUMNS)
_ENTRY_WIDTH = len(ENTRY_COLUMNS)
_ENTRY_ROW = row_type("EntryRow", ENTRY_COLUMNS)
_USAGE_FIELDS = picker(ENTRY_COLUMNS, field_names(Usage))  # each counter has a column of its name


def optional_us(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def optional_from_us(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def entry_row(entry: Entry) -> tuple[Any, ...]:
    """An entry as a row of ``ENTRY_COLUMNS``; each value named by its column."""
    return _ENTRY_VALUES(
        {
            "session_key": entry.session_key,
            "session_id": entry.session_id,
            "created_at": to_us(entry.created_at),
            "updated_at": to_us(entry.updated_at),
            "origin": json.dumps(vars(entry.origin), ensure_ascii=False) if entry.origin else None,
            "display_name": entry.display_name,
            "platform": entry.platform,
            "chat_type": entry.chat_type,
            **vars(entry.usage),
            "cost_status": entry.cost_status,
            "last_prompt_tokens": entry.last_prompt_tokens,
            "was_auto_reset": entry.was_auto_reset,
            "auto_reset_reason": entry.auto_reset_reason,
            "reset_had_activity": entry.reset_had_activity,
            "is_fresh_reset": entry.is_fresh_reset,
            "expiry_finalized": entry.expiry_finalized,
            "suspended": entry.suspended,
            "resume_pending": entry.resume_pending,
            "resume_reason": entry.resume_reason,
            "last_resume_marked_at": optional_us(entry.last_resume_marked_at),
            "version": entry.version,
            "reset_policy": policy_text(entry.reset_policy),
            "max_age_days": entry.max_age_days,
        }
    )


def policy_text(policy: ResetPolicy | None) -> str | None:
    """A policy as canonical JSON: equal policies are equal text (storage groups entries by it)."""
    if policy is None:
        return None
    return json.dumps(
        {**vars(policy), "notify_exclude_platforms": list(policy.notify_exclude_platforms)}, sort_keys=True
    )


def policy_from_text(text: str | None) -> ResetPolicy | None:
    if text is None:
        return None
    data = json.loads(text)
    return ResetPolicy(**{**data, "notify_exclude_platforms": tuple(data["notify_exclude_platforms"])})


def entry_from_row(row: Sequence[Any]) -> Entry:
    """An entry from a row of ``ENTRY_COLUMNS``, by name (keyword arguments: small next to its JSON decoding),
    then its session's metadata where the statement read it (``SELECT_ENTRY``; not a prune's RETURNING)."""
    column = _ENTRY_ROW._make(row[:_ENTRY_WIDTH])
    return Entry(
        session_key=column.session_key,
        session_id=column.session_id,
        created_at=from_us(column.created_at),
        updated_at=from_us(column.updated_at),
        origin=Source(**json.loads(column.origin)) if column.origin else None,
        display_name=column.display_name,
        platform=column.platform,
        chat_type=column.chat_type,
        usage=Usage(*_USAGE_FIELDS(row)),
        cost_status=column.cost_status,
        last_prompt_tokens=column.last_prompt_tokens,
        was_auto_reset=bool(column.was_auto_reset),
        auto_reset_reason=column.auto_reset_reason,
        reset_had_activity=bool(column.reset_had_activity),
        is_fresh_reset=bool(column.is_fresh_reset),
        expiry_finalized=bool(column.expiry_finalized),
        suspended=bool(column.suspended),
        resume_pending=bool(column.resume_pending),
        resume_reason=column.resume_reason,
        last_resume_marked_at=optional_from_us(column.last_resume_marked_at),
        version=column.version,
        reset_policy=policy_from_text(column.reset_policy),
        max_age_days=column.max_age_days,
        metadata=metadata_from_text(row[_ENTRY_WIDTH]) if len(row) > _ENTRY_WIDTH else {},
    )


def metadata_text(metadata: Metadata) -> str | None:
    """Canonical JSON of a session's metadata (sorted keys; a list of texts an array), None when empty."""
    if not metadata:
        return None
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in metadata.items()}, sort_keys=True)


def metadata_from_text(text: str | None) -> Metadata:
    if not text:
        return {}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(text).items()}


_MESSAGE_VALUES = in_order(MESSAGE_INSERT_COLUMNS)
# A Message's fields each have a column of their name; two are stored as integers (0/1, microseconds).
_MESSAGE_FIELDS = picker(MESSAGE_READ_COLUMNS, field_names(Message))
_MESSAGE_STORED = picker(MESSAGE_READ_COLUMNS, ("content_is_json", "timestamp"))


def message_row(session_id: str, message: Message, position: int, now: datetime) -> tuple[Any, ...]:
    """A message as a row of ``MESSAGE_INSERT_COLUMNS``, at ``position``; each value named by its column."""
    return _MESSAGE_VALUES(
        {
            "session_id": session_id,
            "role": message.role,
            "content": message.content,
            "content_is_json": message.content_is_json,
            "tool_calls": message.tool_calls,
            "tool_call_id": message.tool_call_id,
            "tool_name": message.tool_name,
            "reasoning": message.reasoning,
            "reasoning_content": message.reasoning_content,
            "reasoning_details": message.reasoning_details,
            "codex_reasoning_items": message.codex_reasoning_items,
            "codex_message_items": message.codex_message_items,
            "timestamp": to_us(message.timestamp or now),
            "token_count": message.token_count,
            "finish_reason": message.finish_reason,
            "message_id": message.message_id,
            "position": position,
        }
    )


def message_from_row(row: Sequence[Any]) -> Message:
    """A message from a row of ``MESSAGE_READ_COLUMNS``, its fields' values picked by name.

    Built positionally, then its two integer-stored fields converted in place (``Message`` is
    slotted and mutable): a transcript load converts thousands of rows, and keyword arguments
    would double the cost of each.
    """
    message = Message(*_MESSAGE_FIELDS(row))
    is_json, timestamp = _MESSAGE_STORED(row)
    message.content_is_json, message.timestamp = bool(is_json), from_us(timestamp)
    return message


_EVENT_VALUES = in_order(EVENT_COLUMNS)
_EVENT_ROW = row_type("EventRow", EVENT_COLUMNS)


def event_row(event: Event, at: datetime, sequence: int | None) -> tuple[Any, ...]:
    """An event stored ``at``; SQLite's ``sequence`` is ``None``: a NULL key takes the next AUTOINCREMENT."""
    return _EVENT_VALUES({**vars(event), "sequence": sequence, "at": to_us(at)})  # each field is a column


def event_from_row(row: Sequence[Any]) -> Event:
    column = _EVENT_ROW._make(row)
    return Event(
        kind=column.kind,
        session_key=column.session_key,
        session_id=column.session_id,
        version=column.version,
        previous_session_id=column.previous_session_id,
        reason=column.reason,
        lease_owner=column.lease_owner,
        sequence=column.sequence,
        at=from_us(column.at),
        identity=column.identity,
        linked_user=column.linked_user,
        other_session_key=column.other_session_key,
        fencing_token=column.fencing_token,
    )


_LEASE_VALUES = in_order(LEASE_COLUMNS)
_LEASE_ROW = row_type("LeaseRow", LEASE_COLUMNS)


def lease_row(lease: Lease) -> tuple[Any, ...]:
    return _LEASE_VALUES({**vars(lease), "expires_at": to_us(lease.expires_at)})  # each field is a column


def lease_from_row(row: Sequence[Any]) -> Lease:
    column = _LEASE_ROW._make(row)
    return Lease(session_key=column.session_key, owner=column.owner, expires_at=from_us(column.expires_at))


_LINEAGE_ROW = row_type("LineageRow", LINEAGE_COLUMNS)


def lineage_from_row(row: Sequence[Any]) -> LineageLink:
    column = _LINEAGE_ROW._make(row)
    return LineageLink(
        column.id, column.parent_session_id, column.parent_reason, from_us(column.started_at), column.title
    )


_SUMMARY_ROW = row_type("SummaryRow", SUMMARY_COLUMNS)
_HIT_ROW = row_type("HitRow", HIT_COLUMNS)


def summary_from_row(row: Sequence[Any]) -> SessionSummary:
    column = _SUMMARY_ROW._make(row)
    return SessionSummary(
        session_id=column.id,
        platform=column.platform,
        started_at=from_us(column.started_at),
        message_count=column.message_count,
        title=column.title,
        session_key=column.session_key,
        ended_at=optional_from_us(column.ended_at),
        end_reason=column.end_reason,
        parent_session_id=column.parent_session_id,
        metadata=metadata_from_text(column.metadata),
        archived_at=optional_from_us(column.archived_at),
        active_at=optional_from_us(column.active_at),
        chat_type=column.chat_type,
    )


def hit_from_row(row: Sequence[Any]) -> SearchHit:
    """A hit from a row of ``HIT_COLUMNS`` followed by ``SUMMARY_COLUMNS`` (the window is added later)."""
    column = _HIT_ROW._make(row[: len(HIT_COLUMNS)])
    return SearchHit(
        session=summary_from_row(row[len(HIT_COLUMNS) :]),
        position=column.position,
        message_id=column.message_id,
        role=column.role,
        timestamp=from_us(column.timestamp),
        snippet=column.snippet or "",
        score=float(column.score),
        visibility=column.visibility,
        hidden_by=column.hidden_by,
    )


LAST_CHARACTER = "\U0010ffff"
SURROGATES = range(0xD800, 0xE000)  # no code points of text: the next character after them is U+E000


MAX_PREFIXED = 4096  # characters: longer than any field a request may send (limits.max_field_bytes)


def prefix_range(prefix: str) -> tuple[str, str]:
    """The half-open range of the strings that start with ``prefix``, in code point order (an index
    range scan, no LIKE escaping); empty for an empty prefix. The end is the prefix with its last
    character that can grow grown by one (U+10FFFF cannot: it is dropped; U+D7FF becomes U+E000);
    a prefix of U+10FFFF alone ends past any string a request can hold."""
    if not prefix:
        return "", ""
    stem = prefix.rstrip(LAST_CHARACTER)
    if not stem:
        return prefix, prefix + LAST_CHARACTER * MAX_PREFIXED
    following = ord(stem[-1]) + 1
    return prefix, stem[:-1] + chr(SURROGATES.stop if following in SURROGATES else following)


_SESSION_VALUES = in_order(SESSION_INSERT_COLUMNS)


def session_row(
    session_id: str,
    platform: str,
    user_id: str | None,
    started_at: datetime,
    session_key: str | None,
    chat_type: str | None,
) -> tuple[Any, ...]:
    """A new session's row of ``SESSION_INSERT_COLUMNS`` (active since it started)."""
    values = {
        "id": session_id,
        "platform": platform,
        "user_id": user_id,
        "started_at": to_us(started_at),
        "session_key": session_key,
        "chat_type": chat_type,
        "active_at": to_us(started_at),
    }
    return _SESSION_VALUES(values)


def in_namespace(column: str, ns: str = ":ns", ns_len: str = ":ns_len") -> str:
    """SQL: the key in ``column`` is of the agent namespace whose prefix is ``ns`` (any when it is
    ''): a prefix compared by characters, the same in both backends whatever their collation."""
    return f"({ns} = '' OR substr({column}, 1, {ns_len}) = {ns})"


def namespace_params(prefix: str | None) -> dict[str, Any]:
    """The parameters of ``in_namespace``: a namespace's key prefix (``keys.namespace_prefix``), or
    None for every key."""
    return {"ns": prefix or "", "ns_len": len(prefix or "")}


def namespace_positional(prefix: str | None) -> tuple[str, int, str]:
    """``in_namespace``'s parameters bound by position (``?``), in its order."""
    ns = namespace_params(prefix)
    return ns["ns"], ns["ns_len"], ns["ns"]


def cursor_params(after: Cursor | None, first: Cursor) -> dict[str, Any]:
    after_us, after_key = after or first
    return {"after_us": after_us, "after_key": after_key}


def prune_params(cutoff: datetime | None, now: datetime, own_ages: bool, **more: Any) -> dict[str, Any]:
    """The parameters of a prune statement (a ``None`` cutoff prunes nothing by the default age)."""
    return {"cutoff": NEVER if cutoff is None else to_us(cutoff), "now": to_us(now), "own": own_ages, **more}


def search_params(
    match: str, where: MessageFilter, offset: int, limit: int, as_list: Callable[[list[str]], Any], dialect: Dialect
) -> dict[str, Any]:
    """The parameters of a backend's search query (``match`` in its query language); ``as_list``
    binds the roles as the backend binds a list."""
    return {
        "metadata": dialect.filters(where.metadata),
        "include_archived": where.include_archived,
        **namespace_params(where.namespace),
        "match": match,
        "platform": where.platform,
        "key": where.session_key or "",
        "any_key": where.session_key is None,
        "session": where.session_id,
        "since": NEVER if where.since is None else to_us(where.since),
        "until": LAST_US if where.until is None else to_us(where.until),
        "any_role": not where.roles,
        "roles": as_list(list(where.roles)),
        "limit": limit,
        "offset": offset,
    }


def expiry_params(
    cutoffs: ExpiryCutoffs,
    now: datetime,
    after: Cursor | None,
    limit: int,
    unannounced: bool,
    as_json: Callable[[dict[str, int]], Any],
) -> dict[str, Any]:
    """The parameters of the expiry query; ``as_json`` wraps a mapping as the backend binds JSON."""

    def us(value: datetime | None) -> int:
        return NEVER if value is None else to_us(value)

    def each(cutoff_of: Mapping[Any, datetime | None], name: Callable[[Any], Any] = str) -> Any:
        return as_json({name(k): us(v) for k, v in cutoff_of.items()})

    return {
        "latest": us(cutoffs.latest()),
        "stored": each(cutoffs.stored, policy_text),
        "platforms": each(cutoffs.platforms),
        "chat_types": each(cutoffs.chat_types),
        "default": us(cutoffs.default),
        "now": to_us(now),
        "limit": limit,
        "announced": not unannounced,
        **cursor_params(after, (NEVER, "")),
    }


def policies_from_rows(rows: Iterable[Sequence[Any]]) -> list[ResetPolicy]:
    """The policies of ``STORED_POLICIES``' rows (a text this version cannot read is left out)."""
    return [policy for (text,) in rows if (policy := policy_from_text(text)) is not None]
