"""Structured logs: one JSON object per line on stderr. Callers pass facts as ``extra``;
message content never goes in, user and chat ids only ``hashed``, secrets not at all."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Random per process: see ``hashed``.
_SALT = secrets.token_bytes(16)


def hashed(value: str) -> str:
    """A short keyed hash of a user or chat id, to log instead of the id.

    Lines about the same id match within one run of the daemon, which is what following a
    problem needs. The key is random per process and never written anywhere, because ids are
    guessable (phone numbers, numeric user ids): a plain or fixed-salt hash is reversed by hashing
    every candidate. The price: lines from different runs do not match.
    """
    return hashlib.blake2b(value.encode(), key=_SALT, digest_size=6).hexdigest()


def _stack(exc_info: tuple[type[BaseException], BaseException, TracebackType | None]) -> str:
    """Where an exception came from and its type, not its message: messages quote data (a key, an id)."""
    kind, _, stack = exc_info
    return "".join(traceback.format_tb(stack)) + kind.__qualname__


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info and record.exc_info[0] is not None:
            line["exc"] = _stack(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
