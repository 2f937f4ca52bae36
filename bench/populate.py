"""The fast bulk path to a large database: the storage itself, in-process, daemon not running.

One ``SqliteStorage(db, durable=False)`` and one ``storage.write`` job fill the database
through the Transaction methods the daemon uses (``create_session``, ``put_entry``,
``append_messages``), so the rows are exactly what the daemon would have written, without an
RPC and an fsync per session. Every stored conversation is a Telegram DM built by ``source``,
which the reference store is populated from too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sessiond.model import Entry, KeyOptions, Message, Source
from sessiond.rules import keys
from sessiond.rules.whatsapp import no_mapping
from sessiond.storage.interface import Storage, Transaction
from sessiond.storage.postgres import PostgresStorage
from sessiond.storage.sqlite import SqliteStorage

MESSAGE_TEXT = "Could you summarise what we decided about the deployment window yesterday? " * 2
STAMP = "20250101_000000"  # session ids keep sessiond's format; a fixed stamp lets add_messages find them


def session_id(index: int) -> str:
    return f"{STAMP}_{index:08x}"


def source(index: int) -> dict[str, Any]:
    """The ``index``-th stored conversation, as a dict that both sessiond and the oracle read."""
    return {
        "platform": "telegram",
        "chat_id": str(100_000_000 + index),
        "chat_type": "dm",
        "chat_name": f"Chat {index}",
        "user_id": str(500_000_000 + index),
        "user_name": f"user{index}",
    }


def add_sessions(db: Path, count: int, dsn: str = "") -> float:
    """Store ``count`` sessions with their entries (keys ``source(0..count-1)``); the seconds it took.

    With ``dsn``, into that PostgreSQL database instead of the file ``db``.
    """
    now = datetime.now(UTC)

    def work(tx: Transaction) -> None:
        for index in range(count):
            origin = Source(**source(index))
            tx.create_session(session_id(index), origin.platform, origin.user_id, now)
            key = keys.build_session_key(origin, KeyOptions(), no_mapping)
            tx.put_entry(Entry.started(key, session_id(index), origin, now))

    return _timed_write(db, work, dsn)


def add_messages(db: Path, sessions: int, per_session: int) -> float:
    """Append ``per_session`` messages (alternating user and assistant) to sessions ``0..sessions-1``."""
    now = datetime.now(UTC)
    batch = [
        Message(role=("user", "assistant")[i % 2], content=MESSAGE_TEXT, message_id=f"m{i}", timestamp=now)
        for i in range(per_session)
    ]

    def work(tx: Transaction) -> None:
        for index in range(sessions):
            tx.append_messages(session_id(index), batch, now)

    return _timed_write(db, work)


def _timed_write(db: Path, work: Any, dsn: str = "") -> float:
    """Run one write job on a relaxed (unsynced) SQLite storage, or on PostgreSQL (one transaction);
    the time includes the final commit."""
    started = time.perf_counter()
    storage: Storage = PostgresStorage(dsn, pool_size=1) if dsn else SqliteStorage(db, durable=False)
    try:
        storage.write(work)
    finally:
        storage.close()
    return time.perf_counter() - started
