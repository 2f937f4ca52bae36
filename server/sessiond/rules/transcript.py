"""How stored messages are replayed to the agent (the reference's conversation view).

The gateway injects recalled memory into user turns between ``<memory-context>`` tags; when
a transcript is replayed those blocks are removed so they are not recalled twice.
"""

from __future__ import annotations

import re
from dataclasses import replace

from sessiond.model import Message

_MEMORY_BLOCK = re.compile(r"<\s*memory-context\s*>[\s\S]*?</\s*memory-context\s*>", re.IGNORECASE)
_MEMORY_NOTE = re.compile(
    r"\[System note:\s*The following is recalled memory context,\s*NOT new user input\.\s*"
    r"Treat as informational background data\.\]\s*",
    re.IGNORECASE,
)
_MEMORY_TAG = re.compile(r"</?\s*memory-context\s*>", re.IGNORECASE)
REASONING_FIELDS = (
    "reasoning", "reasoning_content", "reasoning_details", "codex_reasoning_items", "codex_message_items",
)  # fmt: skip


def strip_memory_context(text: str) -> str:
    for pattern in (_MEMORY_BLOCK, _MEMORY_NOTE, _MEMORY_TAG):
        text = pattern.sub("", text)
    return text


def as_replayed(message: Message) -> Message:
    """User and assistant text without memory blocks and surrounding whitespace."""
    if message.role in ("user", "assistant") and message.content is not None and not message.content_is_json:
        replayed = strip_memory_context(message.content).strip()
        if replayed != message.content:
            return replace(message, content=replayed)
    return message


def as_stored(message: Message) -> Message:
    """Reasoning is kept for assistant messages only, as the reference stores it."""
    if message.role == "assistant" or not any(getattr(message, name) for name in REASONING_FIELDS):
        return message
    # The fields of REASONING_FIELDS, by name: ``replace`` then checks each against the dataclass.
    return replace(
        message,
        reasoning=None,
        reasoning_content=None,
        reasoning_details=None,
        codex_reasoning_items=None,
        codex_message_items=None,
    )
