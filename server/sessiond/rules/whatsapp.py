"""WhatsApp identities: one person is a phone JID or a LID; keys must not split them.

Pure rules: the LID-mapping directory is read by ``lid_mapping.MappingDirectory`` and
passed in as ``mapped``, a function from an identifier to the raw values its mapping
files hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from sessiond.errors import shown

# Identifiers that may become part of a mapping file name (the path-traversal guard).
# ``re.match`` with ``$`` on purpose: it is the reference's check, byte for byte.
_SAFE_IDENTIFIER = re.compile(r"^[A-Za-z0-9@.+\-]+$")

MappedValues = Callable[[str], Iterable[Any]]


class UnsafeIdentifier(ValueError):
    """A WhatsApp identifier with characters that can never name a mapping file."""


def normalize(value: Any) -> str:
    """Strip spaces, the first ``+``, the device suffix (``:47``) and the domain (``@lid``)."""
    return str(value or "").strip().replace("+", "", 1).split(":", 1)[0].split("@", 1)[0]


def is_safe(identifier: str) -> bool:
    return _SAFE_IDENTIFIER.match(identifier) is not None


def aliases(identifier: str, mapped: MappedValues) -> set[str]:
    """Every identifier reachable from ``identifier`` through the mapping, breadth first."""
    resolved: set[str] = set()
    queue = [normalize(identifier)]
    while queue:
        current = queue.pop(0)
        if not current or current in resolved or not is_safe(current):
            continue
        resolved.add(current)
        queue.extend(alias for alias in map(normalize, mapped(current)) if alias not in resolved)
    return resolved


def canonical(identifier: Any, mapped: MappedValues) -> str:
    """The shortest alias, ties broken alphabetically; ``""`` for an empty identifier.

    Raises ``UnsafeIdentifier`` where the reference fails (no alias at all).
    """
    normalized = normalize(identifier)
    if not normalized:
        return ""
    found = aliases(normalized, mapped)
    if not found:
        raise UnsafeIdentifier(f"WhatsApp identifier {shown(normalized)} has characters outside [A-Za-z0-9@.+-]")
    return min(found, key=lambda alias: (len(alias), alias))


def no_mapping(_identifier: str) -> tuple[()]:
    """``mapped`` for a deployment without a LID-mapping directory."""
    return ()
