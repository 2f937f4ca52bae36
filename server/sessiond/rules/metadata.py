"""Per-session metadata (a model override, an owner, a workspace, tags): a small typed map.

Checked here, once, for both the servicer's input and the store's merge: keys are short
lower-case names (so that they can be matched, logged in events and quoted in a JSON path
without escaping), values are text, whole numbers, finite numbers, flags or lists of texts, and
the whole map stays small enough to ride along with every entry read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping

from sessiond.errors import InvalidArgument
from sessiond.model import Metadata, MetadataFilter, MetadataValue

KEY = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
MAX_KEYS = 32
MAX_TEXT_BYTES = 1024
MAX_TEXTS = 64
MAX_ITEM_BYTES = 256
MAX_ENCODED_BYTES = 16 * 1024


def checked_key(key: str, field: str) -> str:
    if not KEY.fullmatch(key):
        raise InvalidArgument(
            field, "a key is 1-64 lower-case letters, digits and '_.:-', starting with a letter or digit"
        )
    return key


def _utf8_bytes(text: str, field: str) -> int:
    if "\x00" in text:  # metadata is JSON a database parses (PostgreSQL's jsonb refuses U+0000)
        raise InvalidArgument(field, "may not contain U+0000")
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument(field, "not valid UTF-8 (a lone surrogate)") from None


def checked_value(value: MetadataValue, field: str) -> MetadataValue:
    """``value`` if it may be stored (an empty list is left to the caller: it removes the key)."""
    if isinstance(value, str):
        if _utf8_bytes(value, field) > MAX_TEXT_BYTES:
            raise InvalidArgument(field, f"text longer than {MAX_TEXT_BYTES} bytes")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(field, "a number must be finite")
    elif isinstance(value, tuple):
        if len(value) > MAX_TEXTS:
            raise InvalidArgument(field, f"{len(value)} texts, more than {MAX_TEXTS}")
        for index, item in enumerate(value):
            if not 0 < _utf8_bytes(item, f"{field}[{index}]") <= MAX_ITEM_BYTES:
                raise InvalidArgument(f"{field}[{index}]", f"a listed text is 1 to {MAX_ITEM_BYTES} bytes")
    return value


def updated(
    current: Metadata, changes: Mapping[str, MetadataValue], remove: Iterable[str], replace: bool
) -> tuple[dict[str, MetadataValue], tuple[str, ...]]:
    """The map after a change, and the keys whose value it changed (sorted; empty: no change)."""
    removed = [checked_key(key, f"remove[{index}]") for index, key in enumerate(remove)]
    for key in removed:
        if key in changes:
            raise InvalidArgument(f"remove[{removed.index(key)}]", f"{key!r} is also in set")
    result = {} if replace else dict(current)
    for key in removed:
        result.pop(key, None)
    for key, value in changes.items():
        field = f"set[{key!r}]"
        checked_key(key, field)
        if value == ():
            result.pop(key, None)
        else:
            result[key] = checked_value(value, field)
    if len(result) > MAX_KEYS:
        raise InvalidArgument("set", f"{len(result)} keys, more than {MAX_KEYS}")
    if len(json.dumps(result, default=list)) > MAX_ENCODED_BYTES:
        raise InvalidArgument("set", f"the metadata would take more than {MAX_ENCODED_BYTES} bytes")
    changed = tuple(
        sorted(key for key in result.keys() | current.keys() if not _same(result.get(key), current.get(key)))
    )
    return result, changed


def _same(left: MetadataValue | None, right: MetadataValue | None) -> bool:
    """Equal and of one kind: ``True`` is not ``1``, ``3`` is not ``3.0``."""
    return type(left) is type(right) and left == right


def checked_filters(filters: Iterable[MetadataFilter], field: str = "metadata") -> tuple[MetadataFilter, ...]:
    return tuple(checked_filter(wanted, f"{field}[{index}]") for index, wanted in enumerate(filters))


def checked_filter(wanted: MetadataFilter, field: str) -> MetadataFilter:
    checked_key(wanted.key, f"{field}.key")
    if isinstance(wanted.equals, tuple):
        raise InvalidArgument(f"{field}.equals", "a filter matches one text, number or flag, not a list")
    if wanted.equals is not None:
        checked_value(wanted.equals, f"{field}.equals")
    return wanted
