"""How domain objects map to table rows, shared by the SQL backends (SQLite and PostgreSQL).

Times are integer microseconds since the epoch in both (exact equality, integer cursors), an
origin is its JSON object, flags are integers; the column lists fix the order of every tuple.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sessiond.model import Cursor, Entry, Event, Message, ResetPolicy, Source, Usage, from_us, to_us
from sessiond.storage.interface import ExpiryCutoffs

NEVER = -(2**63)  # a cutoff no timestamp is below
DAY_US = 86_400_000_000

ENTRY_COLUMNS = (
    "session_key, session_id, created_at, updated_at, origin, display_name, platform, chat_type, "
    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_tokens, estimated_cost_usd, "
    "cost_status, last_prompt_tokens, was_auto_reset, auto_reset_reason, reset_had_activity, is_fresh_reset, "
    "expiry_finalized, suspended, resume_pending, resume_reason, last_resume_marked_at, version, "
    "reset_policy, max_age_days"
)
ENTRY_COLUMN_COUNT = len(ENTRY_COLUMNS.split(", "))
MESSAGE_COLUMNS = (
    "role, content, content_is_json, tool_calls, tool_call_id, tool_name, reasoning, reasoning_content, "
    "reasoning_details, codex_reasoning_items, codex_message_items, timestamp, token_count, finish_reason, "
    "message_id, position"
)
STORED_POLICIES = "SELECT DISTINCT reset_policy FROM entries WHERE reset_policy IS NOT NULL"
EVENT_COLUMNS = "sequence, kind, session_key, session_id, version, previous_session_id, reason, lease_owner, at"


def optional_us(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def entry_row(entry: Entry) -> tuple[Any, ...]:
    usage = entry.usage
    return (
        entry.session_key, entry.session_id, to_us(entry.created_at), to_us(entry.updated_at),
        json.dumps(vars(entry.origin), ensure_ascii=False) if entry.origin else None,
        entry.display_name, entry.platform, entry.chat_type,
        usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
        usage.total_tokens, usage.estimated_cost_usd, entry.cost_status, entry.last_prompt_tokens,
        entry.was_auto_reset, entry.auto_reset_reason, entry.reset_had_activity, entry.is_fresh_reset,
        entry.expiry_finalized, entry.suspended, entry.resume_pending, entry.resume_reason,
        optional_us(entry.last_resume_marked_at), entry.version,
        policy_text(entry.reset_policy), entry.max_age_days,
    )  # fmt: skip


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
    (key, session_id, created, updated, origin, display_name, platform, chat_type, *counters) = row[:14]
    return Entry(
        session_key=key,
        session_id=session_id,
        created_at=from_us(created),
        updated_at=from_us(updated),
        origin=Source(**json.loads(origin)) if origin else None,
        display_name=display_name,
        platform=platform,
        chat_type=chat_type,
        usage=Usage(*counters),
        cost_status=row[14],
        last_prompt_tokens=row[15],
        was_auto_reset=bool(row[16]),
        auto_reset_reason=row[17],
        reset_had_activity=bool(row[18]),
        is_fresh_reset=bool(row[19]),
        expiry_finalized=bool(row[20]),
        suspended=bool(row[21]),
        resume_pending=bool(row[22]),
        resume_reason=row[23],
        last_resume_marked_at=None if row[24] is None else from_us(row[24]),
        version=row[25],
        reset_policy=policy_from_text(row[26]),
        max_age_days=row[27],
    )


def message_row(session_id: str, message: Message, position: int, now: datetime) -> tuple[Any, ...]:
    return (
        session_id, message.role, message.content, message.content_is_json, message.tool_calls,
        message.tool_call_id, message.tool_name, message.reasoning, message.reasoning_content,
        message.reasoning_details, message.codex_reasoning_items, message.codex_message_items,
        to_us(message.timestamp or now), message.token_count, message.finish_reason, message.message_id, position,
    )  # fmt: skip


def message_from_row(row: Sequence[Any]) -> Message:
    return Message(
        *row[:2],
        bool(row[2]),
        *row[3:11],
        from_us(row[11]),
        *row[12:],  # type: ignore[misc]
    )


def event_from_row(row: Sequence[Any]) -> Event:
    sequence, kind, key, session_id, version, previous, reason, owner, at = row
    return Event(kind, key, session_id, version, previous, reason, owner, sequence, from_us(at))


def cursor_params(after: Cursor | None, first: Cursor) -> dict[str, Any]:
    after_us, after_key = after or first
    return {"after_us": after_us, "after_key": after_key}


def prune_params(cutoff: datetime | None, now: datetime, own_ages: bool, **more: Any) -> dict[str, Any]:
    """The parameters of a prune statement (a ``None`` cutoff prunes nothing by the default age)."""
    return {"cutoff": NEVER if cutoff is None else to_us(cutoff), "now": to_us(now), "own": own_ages, **more}


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

    def each(cutoff_of: dict[Any, datetime | None], name: Callable[[Any], Any] = str) -> Any:
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
