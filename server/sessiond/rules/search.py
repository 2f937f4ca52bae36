"""Search queries: what a caller types, as the words each backend's full-text index matches.

A query is words that must all occur, ``"quoted phrases"`` whose words occur in that order, and
``word*`` for words starting so. Everything that is not a letter or a digit separates words, as
both indexes tokenize text (SQLite FTS5's ``unicode61``, PostgreSQL's ``simple`` parser), so
``foo-bar`` is the phrase "foo bar". Reducing a query to lower-case alphanumeric words first
means no character of it can reach either query language's syntax: no escaping, no syntax
error from user text, and the same query on both backends.

Title search folds case and punctuation away (``model.fold``) and matches the start of the
folded title, so "my-proj" finds "My Project #2".
"""

from __future__ import annotations

import re

from sessiond.errors import InvalidArgument
from sessiond.model import Term, words

MAX_TERMS = 32
_PART = re.compile(r'"([^"]*)"?|(\S+)')  # a quoted phrase (its closing quote may be missing), or a bare word


def parse(query: str, field: str = "query") -> tuple[Term, ...]:
    """The terms of a query; INVALID_ARGUMENT when it has no word, or more than ``MAX_TERMS``."""
    terms = []
    for match in _PART.finditer(query):
        phrase, bare = match.group(1), match.group(2)
        text = phrase if phrase is not None else bare
        found = tuple(words(text))
        if found:
            terms.append(Term(found, prefix=bare is not None and bare.endswith("*")))
    if not terms:
        raise InvalidArgument(field, "no word to search for (letters or digits)")
    if len(terms) > MAX_TERMS:
        raise InvalidArgument(field, f"{len(terms)} terms, more than {MAX_TERMS}")
    return tuple(terms)
