"""Session titles (/title, /new <name>, /resume <name>): one spelling per title, and lineages.

A title is matched exactly, so it is stored in one spelling: no surrounding whitespace, inner
runs of whitespace as one space, no control characters (ASCII ones, and the invisible and
direction-changing Unicode ones a title could hide behind). A lineage is a title and its
numbered successors (``name``, ``name #2``, ``name #3``...). Both as the Hermes host's session
database spells and numbers them, so a gateway moving to sessiond keeps its titles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sessiond.errors import InvalidArgument

MAX_TITLE_CHARS = 100
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufffc\ufff9-\ufffb]"
)
_NUMBERED = re.compile(r"^(?P<base>.*?) #(?P<n>[0-9]+)$")
_SUFFIX = re.compile(r"^.* #(?P<n>[0-9]+)$")


def normalized(title: str, field: str = "title") -> str:
    """The stored spelling of ``title`` ("" when nothing is left of it)."""
    spelled = " ".join(_CONTROL.sub("", title).split())
    if len(spelled) > MAX_TITLE_CHARS:
        raise InvalidArgument(field, f"{len(spelled)} characters, more than {MAX_TITLE_CHARS}")
    return spelled


def lineage_base(title: str) -> str:
    """``name`` for ``name #3``; a title without a number is its own base."""
    match = _NUMBERED.match(title)
    return match["base"] if match and match["base"] else title


def numbered_prefix(base: str) -> str:
    """What every numbered title of the lineage starts with."""
    return f"{base} #"


def next_in_lineage(base: str, taken: Iterable[str]) -> str:
    """The next free title of ``base``'s lineage, given the titles in use that are ``base`` or
    start with ``base #``: the base itself when there are none, else one past the highest
    trailing number (the base counts as 1; ``base #x`` counts as 1 too)."""
    taken = list(taken)
    if not taken:
        return base
    highest = max([1, *(int(match["n"]) for title in taken if (match := _SUFFIX.match(title)))])
    candidate = f"{base} #{highest + 1}"
    if len(candidate) > MAX_TITLE_CHARS:
        raise InvalidArgument("title", f"the lineage's next title would exceed {MAX_TITLE_CHARS} characters")
    return candidate
