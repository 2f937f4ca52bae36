"""The session context and the "## Current Session Context" prompt section.

Agents and their prompt caches depend on this text, so it equals the reference's byte
for byte, redaction included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sessiond.model import Context, EntryRef, HomeChannel, KeyOptions, Source
from sessiond.rules.keys import is_shared_multi_user
from sessiond.rules.platforms import Platforms

SLACK_NOTE = (
    "**Platform notes:** You are running inside Slack. "
    "You do NOT have access to Slack-specific APIs — you cannot search "
    "channel history, pin/unpin messages, manage channels, or list users. "
    "Do not promise to perform these actions. The gateway may inline the "
    "current message's Slack block/attachment payload when available, but "
    "you still cannot call Slack APIs yourself."
)
DISCORD_NOTE = (
    "**Platform notes:** You are running inside Discord. "
    "You do NOT have access to Discord-specific APIs — you cannot search "
    "channel history, pin messages, manage roles, or list server members. "
    "Do not promise to perform these actions. If the user asks, explain "
    "that you can only read messages sent directly to you and respond."
)
IMESSAGE_NOTE = (
    "**Platform notes:** You are responding via iMessage. "
    "Keep responses short and conversational — think texts, not essays. "
    "Structure longer replies as separate short thoughts, each separated "
    "by a blank line (double newline). Each block between blank lines "
    "will be delivered as its own iMessage bubble, so write accordingly: "
    "one idea per bubble, 1–3 sentences each. "
    "If the user needs a detailed answer, give the short version first "
    "and offer to elaborate."
)
YUANBAO_NOTE = (
    "**Platform notes:** You are running inside Yuanbao. "
    "You CAN send private (DM) messages via the send_message tool. "
    "Use target='yuanbao:direct:<account_id>' for DM "
    "and target='yuanbao:group:<group_code>' for group chat."
)
PLATFORM_NOTES = {"slack": SLACK_NOTE, "bluebubbles": IMESSAGE_NOTE, "yuanbao": YUANBAO_NOTE}


@dataclass(frozen=True)
class PromptOptions:
    """Deployment facts the prompt mentions."""

    agent_home: str = "~/.hermes"
    discord_tools: bool = False


def hash_id(value: str) -> str:
    """Deterministic 12-hex-digit stand-in for an identifier."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


def hash_sender_id(value: str) -> str:
    return f"user_{hash_id(value)}"


def hash_chat_id(value: str) -> str:
    """Hash a chat id, keeping a ``platform:`` prefix readable."""
    prefix, colon, rest = value.partition(":")
    if colon and prefix:
        return f"{prefix}:{hash_id(rest)}"
    return hash_id(value)


def _describe_chat(chat_type: str, user: str, chat: str) -> str:
    if chat_type == "dm":
        return f"DM with {user}"
    if chat_type in ("group", "channel"):
        return f"{chat_type}: {chat}"
    return chat


def describe(source: Source) -> str:
    """Human-readable description of a source ("DM with Alice, thread: 7")."""
    if source.platform == "local":
        return "CLI terminal"
    user = source.user_name or source.user_id or "user"
    description = _describe_chat(source.chat_type, user, source.chat_name or source.chat_id)
    if source.thread_id:
        description += f", thread: {source.thread_id}"
    return description


def build_context(
    source: Source,
    options: KeyOptions,
    connected: Sequence[str],
    home_channels: Mapping[str, HomeChannel],
    entry: EntryRef | None = None,
) -> Context:
    """The context of a source: connected platforms sorted, home channels of connected ones."""
    platforms = tuple(sorted(set(connected)))
    homes = tuple(home_channels[p] for p in platforms if p in home_channels)
    return Context(source, platforms, homes, is_shared_multi_user(source, options), entry)


def _redacted_description(source: Source) -> str:
    user = source.user_name or (hash_sender_id(source.user_id) if source.user_id else "user")
    return _describe_chat(source.chat_type, user, source.chat_name or hash_chat_id(source.chat_id))


def _identity_line(context: Context, redact: bool) -> str | None:
    source = context.source
    if context.shared_multi_user_session:
        label = "Multi-user thread" if source.thread_id else "Multi-user session"
        return f"**Session type:** {label} — messages are prefixed with [sender name]. Multiple users may participate."
    if source.user_name:
        return f"**User:** {source.user_name}"
    if source.user_id:
        return f"**User ID:** {hash_sender_id(source.user_id) if redact else source.user_id}"
    return None


def _discord_ids(source: Source) -> list[str]:
    lines = ["", "**Discord IDs (for the `discord` / `discord_admin` tools):**"]
    if source.guild_id:
        lines.append(f"  - Guild: `{source.guild_id}`")
    if source.thread_id and source.parent_chat_id:
        lines.append(f"  - Parent channel: `{source.parent_chat_id}`")
        lines.append(f"  - Thread: `{source.thread_id}` (use as `channel_id` for fetch_messages etc.)")
    else:
        lines.append(f"  - Channel: `{source.chat_id}`")
    if source.message_id:
        lines.append(f"  - Triggering message: `{source.message_id}`")
    return lines


def _platform_notes(source: Source, options: PromptOptions) -> list[str]:
    if source.platform == "discord":
        return _discord_ids(source) if options.discord_tools else ["", DISCORD_NOTE]
    note = PLATFORM_NOTES.get(source.platform)
    return ["", note] if note else []


def build_prompt(context: Context, platforms: Platforms, options: PromptOptions, redact_pii: bool = False) -> str:
    """The prompt section; ids are hashed only when asked and the platform is PII safe."""
    source = context.source
    redact = redact_pii and platforms.is_pii_safe(source.platform)
    local = source.platform == "local"
    title = source.platform.title()

    if local:
        lines = ["## Current Session Context", "", f"**Source:** {title} (the machine running this agent)"]
    else:
        description = _redacted_description(source) if redact else describe(source)
        lines = ["## Current Session Context", "", f"**Source:** {title} ({description})"]
    if source.chat_topic:
        lines.append(f"**Channel Topic:** {source.chat_topic}")
    identity = _identity_line(context, redact)
    if identity:
        lines.append(identity)
    lines += _platform_notes(source, options)

    connected = ["local (files on this machine)"]
    connected += [f"{p}: Connected ✓" for p in context.connected_platforms if p != "local"]
    lines.append(f"**Connected Platforms:** {', '.join(connected)}")

    if context.home_channels:
        lines += ["", "**Home Channels (default destinations):**"]
        for home in context.home_channels:
            chat_id = hash_chat_id(home.chat_id) if redact else home.chat_id
            lines.append(f"  - {home.platform}: {home.name} (ID: {chat_id})")

    lines += ["", "**Delivery options for scheduled tasks:**"]
    if local:
        lines.append('- `"origin"` → Local output (saved to files)')
    else:
        origin = source.chat_name or (hash_chat_id(source.chat_id) if redact else source.chat_id)
        lines.append(f'- `"origin"` → Back to this chat ({origin})')
    lines.append(f'- `"local"` → Save to local files only ({options.agent_home}/cron/output/)')
    lines += [f'- `"{home.platform}"` → Home channel ({home.name})' for home in context.home_channels]
    lines += [
        "",
        '*For explicit targeting, use `"platform:chat_id"` format if the user provides a specific chat ID.*',
    ]
    return "\n".join(lines)
