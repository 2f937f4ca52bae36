"""Session titles (/title, /new <name>, /resume <name>): one spelling per title, and lineages.

A title is matched exactly, so it is stored in one spelling: no surrounding whitespace, inner
runs of whitespace as one space, no control characters. A lineage is a title and its numbered
successors (``name``, ``name #2``, ``name #3``...), as the Hermes host numbers resumed chains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sessiond.errors import InvalidArgument

MAX_TITLE_CHARS = 100
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NUMBERED = re.compile(r"^(?P<base>.*?) #(?P<n>[1-9][0-9]*)$")


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
    """The next free title of ``base``'s lineage, given the titles of it in use (the base counts
    as number 1): the base itself when none is taken."""
    numbers = [1 if title == base else _number(title, base) for title in taken]
    numbers = [n for n in numbers if n]
    if not numbers:
        return base
    candidate = f"{base} #{max(numbers) + 1}"
    if len(candidate) > MAX_TITLE_CHARS:
        raise InvalidArgument("title", f"the lineage's next title would exceed {MAX_TITLE_CHARS} characters")
    return candidate


def _number(title: str, base: str) -> int:
    match = _NUMBERED.match(title)
    return int(match["n"]) if match and match["base"] == base else 0
