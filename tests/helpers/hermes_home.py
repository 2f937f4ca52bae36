"""A Hermes home written by the reference store itself, driven the way a gateway drives it.

Shared by ``test_import_hermes`` (what ``sessiond admin import-hermes`` makes of it) and
``test_admin`` (the command line on it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.cases import CONVERSATION
from helpers.reference import oracle

SOURCES: dict[str, dict[str, Any]] = {
    "dm": {"platform": "telegram", "chat_id": "1001", "chat_type": "dm", "user_id": "u1", "user_name": "Ann"},
    "group": {"platform": "discord", "chat_id": "g5", "chat_type": "group", "user_id": "u2", "chat_name": "Guild",
              "guild_id": "G1"},
    "thread": {"platform": "slack", "chat_id": "C9", "chat_type": "group", "user_id": "u3", "thread_id": "th1",
               "chat_topic": "ops"},
    "whatsapp": {"platform": "whatsapp", "chat_id": "+15551234567@s.whatsapp.net", "chat_type": "dm",
                 "user_id": "15551234567@s.whatsapp.net"},
    "signal": {"platform": "signal", "chat_id": "grp", "chat_type": "group", "user_id": "u5", "user_id_alt": "uuid-5",
               "chat_id_alt": "alt-grp"},
    "local": {"platform": "local", "chat_id": "cli", "chat_type": "dm"},
}  # fmt: skip


def say(store: Any, session_id: str, text: str, **options: Any) -> None:
    store.append_to_transcript(session_id, {"role": "user", "content": text}, **options)


def build_home(path: Path) -> dict[str, str]:
    """Drive the reference store as a gateway does; returns the final session id of each source."""
    store = oracle.make_store(path)
    entries = {name: store.get_or_create_session(oracle.make_source(source)) for name, source in SOURCES.items()}
    dm, group, thread, whatsapp, signal, local = entries.values()
    for message in CONVERSATION:
        store.append_to_transcript(dm.session_id, message)
    # The gateway adds usage to its entry object and has the store save it.
    dm.input_tokens, dm.output_tokens, dm.cache_read_tokens, dm.cache_write_tokens = 1200, 340, 50, 7
    dm.total_tokens, dm.estimated_cost_usd, dm.cost_status = 1597, 0.0123, "estimated"
    store.update_session(dm.session_key, last_prompt_tokens=321)
    store.mark_resume_pending(dm.session_key)

    store.rewrite_transcript(group.session_id, CONVERSATION)
    store.suspend_session(group.session_key)
    group = store.get_or_create_session(oracle.make_source(SOURCES["group"]))  # auto-reset: suspended
    say(store, group.session_id, "after the reset")

    say(store, thread.session_id, "in the thread")
    thread = store.reset_session(thread.session_key)
    say(store, thread.session_id, "fresh start")

    # The agent writes to the database itself (SessionDB.append_message): the database is longer.
    for text in ("one", "two", "three"):
        store._db.append_message(whatsapp.session_id, role="user", content=text)
    say(store, whatsapp.session_id, "four")
    whatsapp.expiry_finalized = True
    store.suspend_session(whatsapp.session_key)

    for text in ("jsonl only 1", "jsonl only 2", "jsonl only 3"):  # skip_db: only the JSONL copy grows
        say(store, signal.session_id, text, skip_db=True)

    say(store, local.session_id, "before switching")
    old_local = local.session_id
    store.reset_session(local.session_key)
    local = store.switch_session(local.session_key, old_local)
    store._db.close()  # the gateway stops
    return {"dm": dm.session_id, "group": group.session_id, "thread": thread.session_id,
            "whatsapp": whatsapp.session_id, "signal": signal.session_id, "local": local.session_id}  # fmt: skip
