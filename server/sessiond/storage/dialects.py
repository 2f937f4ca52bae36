"""What the SQL statements shared by both backends spell differently: parameters, and JSON.

Lists and maps travel as one JSON parameter that a statement walks with the database's JSON
functions, so a statement's text never depends on how many values a call sends. Metadata is
stored as canonical JSON text in both backends (``rows.metadata_text``); a metadata filter
(``MetadataFilter``) on a list value matches when one of its texts does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sessiond.model import MetadataFilter


# Each condition first compares the parameter with "[]" (no filters), so that a query without any
# pays nothing per row (a search ranks every match: the walk would cost microseconds each).
def _sqlite_condition(column: str, param: str) -> str:
    # json_each over a path yields the array's elements, or the one scalar there (none when absent).
    return f"""({param} = '[]' OR NOT EXISTS (SELECT 1 FROM json_each({param}) AS f WHERE NOT EXISTS (
        SELECT 1 FROM json_each({column}, json_extract(f.value, '$.path')) AS m
        WHERE m.type IN (SELECT value FROM json_each(f.value, '$.kinds'))
          AND (json_extract(f.value, '$.value') IS NULL OR m.value = json_extract(f.value, '$.value')))))"""


def _postgres_condition(column: str, param: str) -> str:
    found = f"({column})::jsonb -> (f.filter ->> 'key')"
    return f"""(({param})::text = '[]' OR NOT EXISTS (
        SELECT 1 FROM jsonb_array_elements(({param})::jsonb) AS f (filter) WHERE NOT EXISTS (
        SELECT 1 FROM jsonb_array_elements(
            CASE WHEN jsonb_typeof({found}) = 'array' THEN {found} ELSE jsonb_build_array({found}) END) AS m (value)
        WHERE jsonb_typeof(m.value) IN (SELECT jsonb_array_elements_text(f.filter -> 'kinds'))
          AND (f.filter -> 'value' = 'null'::jsonb OR m.value = f.filter -> 'value'))))"""


_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")  # a ":name" parameter, not a "::type" cast

# PostgreSQL text cannot hold U+0000, which sessiond's strings may (a transcript is stored exactly):
# the postgres backend escapes every string on its way in and out, U+0000 as U+E000 "0" and U+E000
# itself as U+E000 "E" (private use: rare; strings without either pass unchanged). Strings inside a
# JSON parameter are compared with stored ones, so they are escaped the same way.
PG_ESCAPE = "\ue000"


def pg_escaped(text: str) -> str:
    if "\x00" in text or PG_ESCAPE in text:
        return text.replace(PG_ESCAPE, PG_ESCAPE + "E").replace("\x00", PG_ESCAPE + "0")
    return text


@dataclass(frozen=True)
class Dialect:
    """How a backend names JSON value kinds, and its condition over (metadata column, parameter)."""

    kinds: Mapping[str, tuple[str, ...]]
    condition: Callable[[str, str], str]
    exact_flags: bool  # booleans compare as values (PostgreSQL); SQLite's json_each reads them as 0/1
    member: Callable[[str, str], str]  # SQL: the value is one of a JSON array parameter's texts
    lookup: Callable[[str, str], str]  # SQL: a JSON object parameter's integer at a key, NULL if absent
    named: Callable[[str], str]  # a statement written with ":name" parameters, in the backend's spelling
    binary: Callable[[str], str]  # a text compared by code points (as ``rows.prefix_range`` counts)
    escaped: Callable[[str], str]  # a string as the backend stores it (inside JSON parameters)

    def texts(self, values: Sequence[str]) -> str:
        """A JSON array parameter of strings, each as the backend stores it."""
        return json.dumps([self.escaped(value) for value in values])

    def filters(self, filters: Sequence[MetadataFilter]) -> str:
        """The JSON parameter of ``condition``: per filter its key, JSON path, the kinds of value it
        matches and the value (null: any of those kinds)."""
        return json.dumps([self._one(wanted) for wanted in filters])

    def _one(self, wanted: MetadataFilter) -> dict[str, Any]:
        value: Any = wanted.equals
        if value is None:
            matched = {kind for each in self.kinds.values() for kind in each}
        elif isinstance(value, bool):
            matched, value = set(self.kinds["true" if value else "false"]), value if self.exact_flags else None
        else:
            matched = set(self.kinds["text" if isinstance(value, str) else "number"])
        return {"key": wanted.key, "path": f'$."{wanted.key}"', "kinds": sorted(matched), "value": value}


SQLITE = Dialect(
    {"text": ("text",), "number": ("integer", "real"), "true": ("true",), "false": ("false",)},
    _sqlite_condition,
    exact_flags=False,
    member=lambda value, param: f"{value} IN (SELECT value FROM json_each({param}))",
    lookup=lambda param, key: f"(SELECT value FROM json_each({param}) WHERE key = {key})",
    named=lambda sql: sql,
    binary=lambda text: text,  # SQLite's default collation is already BINARY
    escaped=lambda text: text,
)
POSTGRES = Dialect(
    {"text": ("string",), "number": ("number",), "true": ("boolean",), "false": ("boolean",)},
    _postgres_condition,
    exact_flags=True,
    member=lambda value, param: f"{value} IN (SELECT jsonb_array_elements_text(({param})::jsonb))",
    lookup=lambda param, key: f"((({param})::jsonb ->> {key})::BIGINT)",
    named=lambda sql: _NAMED.sub(r"%(\1)s", sql),
    binary=lambda text: f'{text} COLLATE "C"',  # the database's collation may order '_' anywhere
    escaped=pg_escaped,
)
