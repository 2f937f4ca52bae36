"""Example tests of the pure rules (keys, WhatsApp ids, descriptions, prompt, resets).

Each documented case of the reference's own tests (NOTES.md, "What the reference's own tests
assert") is checked for its expected value and, where practical, against the reference oracle.
The two deliberate differences from the reference are tested as such.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import oracle
import pytest

from sessiond.errors import InvalidArgument
from sessiond.model import HomeChannel, KeyOptions, ResetPolicies, ResetPolicy, Source
from sessiond.rules import keys, prompt, reset, whatsapp
from sessiond.rules.lid_mapping import MappingDirectory
from sessiond.rules.platforms import Platforms

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
LID = "999999999999999"
PHONE = "15551234567"
GROUP_JID = "120363000000000000@g.us"


def h12(value: str) -> str:
    """The expected 12-hex-digit hash, computed independently of the code under test."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:12]


# --------------------------------------------------------------------------- keys


def key(
    source: dict[str, Any],
    group: bool = True,
    thread: bool = False,
    mapping_dir: Path | None = None,
) -> str:
    """sessiond's key for a source dict, asserted equal to the oracle's."""
    mapped = MappingDirectory(mapping_dir) if mapping_dir else whatsapp.no_mapping
    ours = keys.build_session_key(Source(**source), KeyOptions(group, thread), mapped)
    config = {"whatsapp_mapping_dir": str(mapping_dir) if mapping_dir else ""}
    theirs = oracle.session_key(source, group, thread, config=config)
    assert ours == theirs
    return ours


@pytest.fixture
def lid_dir(tmp_path: Path) -> Path:
    """A mapping directory linking the LID to the phone number (forward file only)."""
    (tmp_path / f"lid-mapping-{LID}.json").write_text(json.dumps(f"{PHONE}@s.whatsapp.net"))
    return tmp_path


def test_dm_key_is_platform_and_chat_id_without_user_id() -> None:
    got = key({"platform": "telegram", "chat_id": "12345", "chat_type": "dm", "user_id": "777"})
    assert got == "agent:main:telegram:dm:12345"
    assert "777" not in got


def test_distinct_dm_chat_ids_give_distinct_keys() -> None:
    first = key({"platform": "discord", "chat_id": "100", "chat_type": "dm", "user_id": "9"})
    second = key({"platform": "discord", "chat_id": "200", "chat_type": "dm", "user_id": "9"})
    assert first != second


def test_dm_thread_key_appends_thread_id() -> None:
    got = key(
        {
            "platform": "slack",
            "chat_id": "D1",
            "chat_type": "dm",
            "thread_id": "1700.5",
            "user_id": "U1",
        }
    )
    assert got == "agent:main:slack:dm:D1:1700.5"


@pytest.mark.parametrize("chat_type", ["group", "channel"])
def test_group_and_channel_keys_are_per_user_by_default(chat_type: str) -> None:
    alice = {"platform": "telegram", "chat_id": "-100123", "chat_type": chat_type, "user_id": "42"}
    bob = {**alice, "user_id": "43"}
    assert key(alice) == f"agent:main:telegram:{chat_type}:-100123:42"
    assert key(bob) == f"agent:main:telegram:{chat_type}:-100123:43"


def test_group_key_is_shared_when_group_isolation_is_off() -> None:
    alice = {"platform": "telegram", "chat_id": "-100123", "chat_type": "group", "user_id": "42"}
    bob = {**alice, "user_id": "43"}
    assert key(alice, group=False) == "agent:main:telegram:group:-100123"
    assert key(bob, group=False) == key(alice, group=False)


def test_user_id_alt_is_the_participant_when_present() -> None:
    source = {
        "platform": "signal",
        "chat_id": "grp",
        "chat_type": "group",
        "user_id": "42",
        "user_id_alt": "uuid-42",
    }
    assert key(source) == "agent:main:signal:group:grp:uuid-42"


@pytest.mark.parametrize("chat_type", ["group", "thread"])
def test_group_thread_key_is_shared_by_default(chat_type: str) -> None:
    alice = {
        "platform": "discord",
        "chat_id": "555",
        "chat_type": chat_type,
        "thread_id": "777",
        "user_id": "42",
    }
    bob = {**alice, "user_id": "43"}
    assert key(alice) == f"agent:main:discord:{chat_type}:555:777"
    assert key(bob) == key(alice)


def test_thread_sessions_per_user_appends_the_user() -> None:
    source = {
        "platform": "discord",
        "chat_id": "555",
        "chat_type": "group",
        "thread_id": "777",
        "user_id": "42",
    }
    assert key(source, thread=True) == "agent:main:discord:group:555:777:42"


def test_whatsapp_dm_phone_jid_is_canonicalised() -> None:
    source = {"platform": "whatsapp", "chat_id": f"{PHONE}@s.whatsapp.net", "chat_type": "dm"}
    assert key(source) == f"agent:main:whatsapp:dm:{PHONE}"


def test_whatsapp_dm_lid_resolves_to_phone_with_mapping(lid_dir: Path) -> None:
    lid = {"platform": "whatsapp", "chat_id": f"{LID}@lid", "chat_type": "dm"}
    phone = {"platform": "whatsapp", "chat_id": f"{PHONE}@s.whatsapp.net", "chat_type": "dm"}
    assert key(lid, mapping_dir=lid_dir) == f"agent:main:whatsapp:dm:{PHONE}"
    assert key(phone, mapping_dir=lid_dir) == key(lid, mapping_dir=lid_dir)


def test_whatsapp_dm_lid_without_mapping_stays_the_lid(tmp_path: Path) -> None:
    source = {"platform": "whatsapp", "chat_id": f"{LID}@lid", "chat_type": "dm"}
    assert key(source, mapping_dir=tmp_path) == f"agent:main:whatsapp:dm:{LID}"


def test_whatsapp_group_participant_is_canonicalised_and_chat_id_kept_raw(lid_dir: Path) -> None:
    expected = f"agent:main:whatsapp:group:{GROUP_JID}:{PHONE}"
    for participant in (f"{LID}@lid", f"{PHONE}@s.whatsapp.net", f"+{PHONE}:12@s.whatsapp.net"):
        source = {
            "platform": "whatsapp",
            "chat_id": GROUP_JID,
            "chat_type": "group",
            "user_id": participant,
        }
        assert key(source, mapping_dir=lid_dir) == expected


def test_whatsapp_group_shared_mode_has_no_participant(lid_dir: Path) -> None:
    source = {
        "platform": "whatsapp",
        "chat_id": GROUP_JID,
        "chat_type": "group",
        "user_id": f"{LID}@lid",
    }
    assert key(source, group=False, mapping_dir=lid_dir) == f"agent:main:whatsapp:group:{GROUP_JID}"


def test_non_whatsapp_ids_are_not_normalised(lid_dir: Path) -> None:
    source = {"platform": "signal", "chat_id": f"+{PHONE}", "chat_type": "dm"}
    assert key(source, mapping_dir=lid_dir) == f"agent:main:signal:dm:+{PHONE}"


def test_unsafe_whatsapp_dm_chat_id_is_invalid_argument_where_the_oracle_raises() -> None:
    source = {"platform": "whatsapp", "chat_id": "a_b", "chat_type": "dm"}
    with pytest.raises(InvalidArgument) as caught:
        keys.build_session_key(Source(**source), KeyOptions(), whatsapp.no_mapping)
    assert caught.value.field == "source.chat_id"
    assert str(caught.value).startswith("source.chat_id:")
    with pytest.raises(ValueError):
        oracle.session_key(source)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"user_id": "a b"}, "source.user_id"),
        ({"user_id": "42", "user_id_alt": "../x"}, "source.user_id_alt"),
    ],
)
def test_unsafe_whatsapp_participant_names_its_field(extra: dict[str, str], field: str) -> None:
    source = {"platform": "whatsapp", "chat_id": GROUP_JID, "chat_type": "group", **extra}
    with pytest.raises(InvalidArgument) as caught:
        keys.build_session_key(Source(**source), KeyOptions(), whatsapp.no_mapping)
    assert caught.value.field == field
    with pytest.raises(ValueError):
        oracle.session_key(source)


# ------------------------------------------------------------------ shared flag


@pytest.mark.parametrize(
    ("source", "group", "thread", "shared"),
    [
        ({"chat_type": "dm", "thread_id": "7"}, True, False, False),
        ({"chat_type": "dm"}, False, False, False),
        ({"chat_type": "group"}, True, False, False),
        ({"chat_type": "group"}, False, False, True),
        ({"chat_type": "group", "thread_id": "7"}, True, False, True),
        ({"chat_type": "group", "thread_id": "7"}, True, True, False),
        ({"chat_type": "thread", "thread_id": "7"}, True, False, True),
        ({"chat_type": "channel"}, False, True, True),
    ],
)
def test_shared_flag_agrees_with_oracle(source: dict[str, str], group: bool, thread: bool, shared: bool) -> None:
    data = {"platform": "telegram", "chat_id": "-1", "user_id": "42", **source}
    ours = keys.is_shared_multi_user(Source(**data), KeyOptions(group, thread))
    assert ours is shared
    assert oracle.shared_multi_user(data, group, thread) is shared


def test_deliberate_difference_shared_flag_for_thread_follows_the_key() -> None:
    """group_sessions_per_user=False, thread_sessions_per_user=True: key has no participant."""
    data = {
        "platform": "discord",
        "chat_id": "555",
        "chat_type": "group",
        "thread_id": "777",
        "user_id": "42",
        "user_name": "Alice",
    }
    options = KeyOptions(group_sessions_per_user=False, thread_sessions_per_user=True)
    got = keys.build_session_key(Source(**data), options, whatsapp.no_mapping)
    assert got == "agent:main:discord:group:555:777"
    assert keys.is_shared_multi_user(Source(**data), options) is True
    # The reference's flag disagrees with its own key (a known flaw).
    assert oracle.session_key(data, False, True) == got
    assert oracle.shared_multi_user(data, False, True) is False
    # ... and so the prompt tells the agent about several users where the reference does not.
    ours = prompt.build_prompt(
        prompt.build_context(Source(**data), options, (), {}), Platforms(), prompt.PromptOptions()
    )
    theirs = oracle.context_prompt(data, {"group_sessions_per_user": False, "thread_sessions_per_user": True})
    assert "Multi-user thread" in ours and "**User:** Alice" not in ours
    assert "**User:** Alice" in theirs and "Multi-user" not in theirs


# --------------------------------------------------------------- WhatsApp ids


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{PHONE}@s.whatsapp.net", PHONE),
        (f"{LID}@lid", LID),
        ("60123456789:47@s.whatsapp.net", "60123456789"),
        (f"+{PHONE}@s.whatsapp.net", PHONE),
        (f"+{PHONE}", PHONE),
        (PHONE, PHONE),
        (f"  {PHONE}  ", PHONE),
        ("", ""),
        (None, ""),
        ("+", ""),
    ],
)
def test_normalize(value: str | None, expected: str) -> None:
    assert whatsapp.normalize(value) == expected
    assert oracle.normalize_whatsapp_identifier(value) == expected


def canonical(value: str | None, mapping_dir: Path) -> str:
    ours = whatsapp.canonical(value, MappingDirectory(mapping_dir))
    theirs = oracle.canonical_whatsapp_identifier(value, {"whatsapp_mapping_dir": str(mapping_dir)})
    assert ours == theirs
    return ours


def test_canonical_without_mapping_is_the_normalised_id(tmp_path: Path) -> None:
    assert canonical(f"{LID}@lid", tmp_path) == LID
    assert canonical(f"+{PHONE}:3@s.whatsapp.net", tmp_path) == PHONE
    assert whatsapp.canonical(f"{LID}@lid", whatsapp.no_mapping) == LID


def test_canonical_empty_is_empty(tmp_path: Path) -> None:
    assert canonical("", tmp_path) == ""
    assert canonical(None, tmp_path) == ""


def test_canonical_resolves_lid_to_phone_through_forward_file(lid_dir: Path) -> None:
    assert canonical(f"{LID}@lid", lid_dir) == PHONE
    assert canonical(LID, lid_dir) == PHONE


def test_canonical_resolves_through_reverse_file(tmp_path: Path) -> None:
    (tmp_path / f"lid-mapping-{LID}_reverse.json").write_text(json.dumps(f"+{PHONE}"))
    assert canonical(f"{LID}@lid", tmp_path) == PHONE


def test_canonical_follows_chains_and_breaks_ties_alphabetically(tmp_path: Path) -> None:
    (tmp_path / "lid-mapping-zz9.json").write_text(json.dumps("bb1@lid"))
    (tmp_path / "lid-mapping-bb1_reverse.json").write_text(json.dumps("ab7"))
    assert canonical("zz9", tmp_path) == "ab7"
    assert canonical("bb1", tmp_path) == "ab7"


def test_canonical_skips_an_unreadable_mapping_file(tmp_path: Path) -> None:
    (tmp_path / f"lid-mapping-{LID}.json").write_text("{not json")
    assert canonical(f"{LID}@lid", tmp_path) == LID


def test_mapping_is_reread_on_every_lookup(tmp_path: Path) -> None:
    mapped = MappingDirectory(tmp_path)
    assert whatsapp.canonical(f"{LID}@lid", mapped) == LID
    (tmp_path / f"lid-mapping-{LID}.json").write_text(json.dumps(f"{PHONE}@s.whatsapp.net"))
    assert whatsapp.canonical(f"{LID}@lid", mapped) == PHONE


def test_canonical_of_unsafe_id_raises_where_the_oracle_raises(tmp_path: Path) -> None:
    with pytest.raises(whatsapp.UnsafeIdentifier):
        whatsapp.canonical("../etc/passwd", MappingDirectory(tmp_path))
    with pytest.raises(ValueError):
        oracle.canonical_whatsapp_identifier("../etc/passwd", {"whatsapp_mapping_dir": str(tmp_path)})


# ----------------------------------------------------------------- description


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({"platform": "local", "chat_id": "cli", "chat_type": "dm", "user_name": "me"}, "CLI terminal"),
        (
            {"platform": "telegram", "chat_id": "1", "chat_type": "dm", "user_id": "42", "user_name": "Alice"},
            "DM with Alice",
        ),
        ({"platform": "telegram", "chat_id": "1", "chat_type": "dm", "user_id": "42"}, "DM with 42"),
        ({"platform": "telegram", "chat_id": "1", "chat_type": "dm"}, "DM with user"),
        ({"platform": "telegram", "chat_id": "-100", "chat_type": "group", "chat_name": "Team"}, "group: Team"),
        ({"platform": "telegram", "chat_id": "-100", "chat_type": "group"}, "group: -100"),
        ({"platform": "slack", "chat_id": "C1", "chat_type": "channel", "chat_name": "#ops"}, "channel: #ops"),
        ({"platform": "discord", "chat_id": "555", "chat_type": "thread", "chat_name": "bugs"}, "bugs"),
        ({"platform": "discord", "chat_id": "555", "chat_type": "thread"}, "555"),
        (
            {"platform": "discord", "chat_id": "555", "chat_type": "group", "chat_name": "Guild", "thread_id": "777"},
            "group: Guild, thread: 777",
        ),
        (
            {"platform": "slack", "chat_id": "D1", "chat_type": "dm", "user_name": "Bob", "thread_id": "1.2"},
            "DM with Bob, thread: 1.2",
        ),
    ],
)
def test_describe(source: dict[str, str], expected: str) -> None:
    assert prompt.describe(Source(**source)) == expected
    assert oracle.describe(source) == expected


# ---------------------------------------------------------------------- prompt


def context_prompt(
    source: dict[str, Any],
    *,
    redact: bool = False,
    group: bool = True,
    thread: bool = False,
    connected: tuple[str, ...] = (),
    homes: dict[str, dict[str, str]] | None = None,
    plugins: dict[str, bool] | None = None,
    discord_tools: bool = False,
    agent_home: str = "~/.hermes",
) -> str:
    """sessiond's prompt for a source dict and deployment, asserted equal to the oracle's."""
    homes = homes or {}
    plugins = plugins or {}
    context = prompt.build_context(
        Source(**source),
        KeyOptions(group, thread),
        connected,
        {name: HomeChannel(platform=name, **home) for name, home in homes.items()},
    )
    ours = prompt.build_prompt(
        context,
        Platforms(plugins=plugins),
        prompt.PromptOptions(agent_home=agent_home, discord_tools=discord_tools),
        redact_pii=redact,
    )
    config = {
        "group_sessions_per_user": group,
        "thread_sessions_per_user": thread,
        "connected_platforms": list(connected),
        "home_channels": homes,
        "plugin_platforms": {name: {"pii_safe": safe} for name, safe in plugins.items()},
        "discord_tools": discord_tools,
        "hermes_home_display": agent_home,
    }
    assert ours == oracle.context_prompt(source, config, redact_pii=redact)
    return ours


def test_prompt_shows_platform_title_and_chat_name() -> None:
    got = context_prompt(
        {
            "platform": "whatsapp",
            "chat_id": GROUP_JID,
            "chat_type": "group",
            "chat_name": "Family",
            "user_id": "1",
            "user_name": "Alice",
        }
    )
    assert got.startswith("## Current Session Context\n\n**Source:** Whatsapp (group: Family)\n")
    assert '- `"origin"` → Back to this chat (Family)' in got
    assert '- `"local"` → Save to local files only (~/.hermes/cron/output/)' in got


def test_prompt_title_of_api_server() -> None:
    got = context_prompt({"platform": "api_server", "chat_id": "c1", "chat_type": "dm"})
    assert "**Source:** Api_Server (DM with user)" in got


def test_prompt_for_local() -> None:
    got = context_prompt({"platform": "local", "chat_id": "cli", "chat_type": "dm"}, agent_home="/srv/agent")
    assert "**Source:** Local (the machine running this agent)" in got
    assert '- `"origin"` → Local output (saved to files)' in got
    assert '- `"local"` → Save to local files only (/srv/agent/cron/output/)' in got


def test_prompt_lists_connected_platforms_sorted_without_local() -> None:
    got = context_prompt(
        {"platform": "telegram", "chat_id": "1", "chat_type": "dm"},
        connected=("telegram", "local", "discord"),
    )
    assert (
        "**Connected Platforms:** local (files on this machine), discord: Connected ✓, telegram: Connected ✓"
    ) in got


def test_slack_platform_note() -> None:
    got = context_prompt({"platform": "slack", "chat_id": "C1", "chat_type": "channel"})
    assert "cannot search" in got
    assert "pin" in got
    assert "current message's Slack block/attachment payload" in got


def test_discord_note_without_tools() -> None:
    got = context_prompt({"platform": "discord", "chat_id": "555", "chat_type": "group"})
    assert "You do NOT have access to Discord-specific APIs" in got
    assert "Discord IDs" not in got


def test_discord_ids_with_tools_for_a_channel() -> None:
    got = context_prompt(
        {"platform": "discord", "chat_id": "555", "chat_type": "group", "guild_id": "G1", "message_id": "M9"},
        discord_tools=True,
    )
    assert "**Discord IDs (for the `discord` / `discord_admin` tools):**" in got
    assert "  - Guild: `G1`\n  - Channel: `555`\n  - Triggering message: `M9`" in got
    assert "do NOT have access" not in got


def test_discord_ids_with_tools_for_a_thread() -> None:
    got = context_prompt(
        {"platform": "discord", "chat_id": "777", "chat_type": "thread", "thread_id": "777", "parent_chat_id": "555"},
        discord_tools=True,
    )
    assert "  - Parent channel: `555`" in got
    assert "  - Thread: `777` (use as `channel_id` for fetch_messages etc.)" in got
    assert "Guild:" not in got and "  - Channel:" not in got


def test_bluebubbles_note() -> None:
    got = context_prompt({"platform": "bluebubbles", "chat_id": "c1", "chat_type": "dm"})
    for phrase in ("responding via iMessage", "short and conversational", "blank line"):
        assert phrase in got


def test_yuanbao_note() -> None:
    got = context_prompt({"platform": "yuanbao", "chat_id": "c1", "chat_type": "dm"})
    assert "You are running inside Yuanbao" in got
    assert "target='yuanbao:direct:<account_id>'" in got


@pytest.mark.parametrize("platform", ["telegram", "whatsapp", "signal", "matrix"])
def test_no_platform_note_elsewhere(platform: str) -> None:
    got = context_prompt({"platform": platform, "chat_id": "c1", "chat_type": "dm"})
    assert "Platform notes" not in got


def test_channel_topic_line_only_when_set() -> None:
    base = {"platform": "slack", "chat_id": "C1", "chat_type": "channel", "chat_name": "#ops"}
    with_topic = context_prompt({**base, "chat_topic": "Release planning"})
    assert "**Source:** Slack (channel: #ops)\n**Channel Topic:** Release planning\n" in with_topic
    assert "Channel Topic" not in context_prompt(base)
    assert "Channel Topic" not in context_prompt({**base, "chat_topic": ""})


def test_shared_group_thread_is_multi_user_thread() -> None:
    got = context_prompt(
        {
            "platform": "telegram",
            "chat_id": "-100",
            "chat_type": "group",
            "thread_id": "5",
            "user_id": "42",
            "user_name": "Alice",
        }
    )
    assert "**Session type:** Multi-user thread" in got
    assert "[sender name]" in got
    assert "**User:** Alice" not in got


def test_shared_non_thread_group_is_multi_user_session() -> None:
    got = context_prompt(
        {"platform": "telegram", "chat_id": "-100", "chat_type": "group", "user_id": "42", "user_name": "Alice"},
        group=False,
    )
    assert "**Session type:** Multi-user session" in got
    assert "**User:** Alice" not in got


def test_isolated_group_and_dm_thread_name_the_user() -> None:
    group = context_prompt(
        {
            "platform": "telegram",
            "chat_id": "-100",
            "chat_type": "group",
            "user_id": "42",
            "user_name": "Alice",
        }
    )
    dm_thread = context_prompt(
        {
            "platform": "slack",
            "chat_id": "D1",
            "chat_type": "dm",
            "thread_id": "1.2",
            "user_id": "U1",
            "user_name": "Alice",
        }
    )
    for got in (group, dm_thread):
        assert "**User:** Alice" in got
        assert "Multi-user" not in got


def test_user_id_line_without_user_name() -> None:
    got = context_prompt({"platform": "discord", "chat_id": "1", "chat_type": "dm", "user_id": "42"})
    assert "**User ID:** 42" in got


def test_hash_helpers() -> None:
    assert prompt.hash_id("12345") == h12("12345") == oracle.session._hash_id("12345")
    assert len(prompt.hash_id("x")) == 12
    assert prompt.hash_id("x") == prompt.hash_id("x")
    assert prompt.hash_sender_id("42") == f"user_{h12('42')}" == oracle.session._hash_sender_id("42")
    assert prompt.hash_chat_id("telegram:12345") == f"telegram:{h12('12345')}"
    assert prompt.hash_chat_id("12345") == h12("12345")
    for value in ("telegram:12345", "12345", ":12345", "a:b:c"):
        assert prompt.hash_chat_id(value) == oracle.session._hash_chat_id(value)


def test_redaction_is_off_by_default() -> None:
    got = context_prompt({"platform": "telegram", "chat_id": "123456789", "chat_type": "dm", "user_id": "123456789"})
    assert "**User ID:** 123456789" in got
    assert "user_" not in got


@pytest.mark.parametrize("platform", ["telegram", "whatsapp", "signal", "bluebubbles"])
def test_redaction_hides_raw_ids_on_pii_safe_platforms(platform: str) -> None:
    source = {"platform": platform, "chat_id": "555000111", "chat_type": "dm", "user_id": "123456789"}
    got = context_prompt(source, redact=True)
    assert "123456789" not in got and "555000111" not in got
    assert f"**User ID:** user_{h12('123456789')}" in got
    assert f"DM with user_{h12('123456789')}" in got
    assert f"Back to this chat ({h12('555000111')})" in got
    assert context_prompt(source, redact=True) == got
    other = context_prompt({**source, "user_id": "987654321"}, redact=True)
    assert other != got


def test_redaction_keeps_user_name() -> None:
    got = context_prompt(
        {
            "platform": "telegram",
            "chat_id": "123456789",
            "chat_type": "dm",
            "user_id": "123456789",
            "user_name": "Alice",
        },
        redact=True,
    )
    assert "DM with Alice" in got and "**User:** Alice" in got
    assert "123456789" not in got


def test_redaction_of_group_keeps_telegram_prefix() -> None:
    got = context_prompt(
        {"platform": "telegram", "chat_id": "telegram:-100123", "chat_type": "group", "user_id": "42"},
        redact=True,
    )
    assert f"**Source:** Telegram (group: telegram:{h12('-100123')})" in got
    assert f"Back to this chat (telegram:{h12('-100123')})" in got
    assert "-100123" not in got


@pytest.mark.parametrize("platform", ["discord", "slack"])
def test_discord_and_slack_are_never_redacted(platform: str) -> None:
    got = context_prompt(
        {"platform": platform, "chat_id": "555000111", "chat_type": "dm", "user_id": "42"},
        redact=True,
        connected=(platform,),
        homes={platform: {"chat_id": "999888", "name": "Ops"}},
    )
    assert "**User ID:** 42" in got
    assert "Back to this chat (555000111)" in got
    assert f"  - {platform}: Ops (ID: 999888)" in got
    assert "user_" not in got


@pytest.mark.parametrize(("pii_safe", "redacted"), [(True, True), (False, False)])
def test_plugin_platform_redaction_follows_pii_safe(pii_safe: bool, redacted: bool) -> None:
    got = context_prompt(
        {"platform": "irc", "chat_id": "#agents", "chat_type": "channel", "user_id": "nick42"},
        redact=True,
        plugins={"irc": pii_safe},
    )
    assert got.startswith("## Current Session Context\n\n**Source:** Irc (channel: ")
    assert (f"**User ID:** user_{h12('nick42')}" in got) is redacted
    assert ("**User ID:** nick42" in got) is not redacted
    assert ("#agents" in got) is not redacted


def test_home_channels_hashed_when_redacting_and_raw_otherwise() -> None:
    source = {"platform": "telegram", "chat_id": "1", "chat_type": "dm", "user_id": "1"}
    deployment: dict[str, Any] = {
        "connected": ("telegram", "discord"),
        "homes": {
            "telegram": {"chat_id": "telegram:-100123", "name": "Ops"},
            "discord": {"chat_id": "424242"},
        },
    }
    redacted = context_prompt(source, redact=True, **deployment)
    assert "**Home Channels (default destinations):**" in redacted
    assert f"  - discord: Home (ID: {h12('424242')})" in redacted
    assert f"  - telegram: Ops (ID: telegram:{h12('-100123')})" in redacted
    assert '- `"telegram"` → Home channel (Ops)' in redacted
    assert "424242" not in redacted and "-100123" not in redacted
    plain = context_prompt(source, **deployment)
    assert "  - discord: Home (ID: 424242)" in plain
    assert "  - telegram: Ops (ID: telegram:-100123)" in plain


def test_home_channel_of_unconnected_platform_is_not_shown() -> None:
    got = context_prompt(
        {"platform": "telegram", "chat_id": "1", "chat_type": "dm"},
        connected=("telegram",),
        homes={"slack": {"chat_id": "C9", "name": "Ops"}},
    )
    assert "Home Channels" not in got and "C9" not in got


# ---------------------------------------------------------------------- resets

NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


def decide(
    policy: dict[str, Any],
    updated_at: datetime,
    now: datetime = NOW,
    source: dict[str, str] | None = None,
) -> str | None:
    """sessiond's reset reason in UTC, asserted equal to the oracle's (naive UTC times)."""
    ours = reset.reset_reason(ResetPolicy(**policy), UTC_ZONE, updated_at, now)
    source = source or {"platform": "telegram", "chat_id": "1", "chat_type": "dm"}

    def naive(value: datetime) -> datetime:
        return value.astimezone(UTC).replace(tzinfo=None)

    theirs = oracle.should_reset({"updated_at": naive(updated_at)}, source, {"reset": {"default": policy}}, naive(now))
    assert ours == theirs
    return ours


def test_reset_both_just_updated_is_none() -> None:
    assert decide({"mode": "both"}, NOW) is None


def test_reset_idle_after_idle_minutes() -> None:
    assert decide({"mode": "idle", "idle_minutes": 30}, NOW - timedelta(minutes=60)) == "idle"
    assert decide({"mode": "both", "idle_minutes": 30}, NOW - timedelta(minutes=60)) == "idle"


def test_reset_idle_deadline_is_exclusive() -> None:
    assert decide({"mode": "idle", "idle_minutes": 30}, NOW - timedelta(minutes=30)) is None
    updated = NOW - timedelta(minutes=30, microseconds=1)
    assert decide({"mode": "idle", "idle_minutes": 30}, updated) == "idle"


def test_reset_daily_at_this_hour_updated_yesterday() -> None:
    policy = {"mode": "daily", "at_hour": NOW.hour}
    assert decide(policy, NOW - timedelta(days=1)) == "daily"
    # Updated after today's boundary: nothing to do.
    assert decide(policy, NOW.replace(minute=0) + timedelta(seconds=1)) is None


def test_reset_daily_boundary_before_at_hour_is_yesterdays() -> None:
    policy = {"mode": "daily", "at_hour": 16}  # now is 15:30: the last boundary is 9 March 16:00
    assert decide(policy, datetime(2026, 3, 9, 16, 30, tzinfo=UTC)) is None
    assert decide(policy, datetime(2026, 3, 9, 15, 59, tzinfo=UTC)) == "daily"


def test_reset_mode_none_never_resets() -> None:
    assert decide({"mode": "none", "idle_minutes": 1}, NOW - timedelta(days=365)) is None


def test_reset_idle_mode_ignores_the_daily_boundary() -> None:
    assert decide({"mode": "idle", "at_hour": NOW.hour}, NOW - timedelta(hours=2)) is None


def test_reset_daily_mode_ignores_idleness() -> None:
    updated = NOW.replace(hour=10)
    assert decide({"mode": "daily", "at_hour": 4, "idle_minutes": 1}, updated) is None


def test_policy_precedence_platform_then_chat_type_then_default() -> None:
    platform = ResetPolicy(mode="none")
    chat_type = ResetPolicy(mode="idle", idle_minutes=1)
    default = ResetPolicy(mode="daily", at_hour=3)
    policies = ResetPolicies(default, {"telegram": platform}, {"group": chat_type})
    assert policies.for_session("telegram", "group") is platform
    assert policies.for_session("telegram", "dm") is platform
    assert policies.for_session("discord", "group") is chat_type
    assert policies.for_session("discord", "dm") is default
    assert policies.for_session(None, None) is default


@pytest.mark.parametrize(
    ("platform", "chat_type", "expected"),
    [("telegram", "group", None), ("discord", "group", "idle"), ("discord", "dm", None)],
)
def test_policy_precedence_agrees_with_oracle(platform: str, chat_type: str, expected: str | None) -> None:
    specs = {
        "platform": {"mode": "none"},
        "chat_type": {"mode": "idle", "idle_minutes": 1},
        "default": {"mode": "daily", "at_hour": 4},
    }
    policies = ResetPolicies(
        ResetPolicy(**specs["default"]),
        {"telegram": ResetPolicy(**specs["platform"])},
        {"group": ResetPolicy(**specs["chat_type"])},
    )
    updated = NOW - timedelta(minutes=10)
    policy = policies.for_session(platform, chat_type)
    assert reset.reset_reason(policy, UTC_ZONE, updated, NOW) == expected
    config = {
        "reset": {
            "default": specs["default"],
            "platforms": {"telegram": specs["platform"]},
            "chat_types": {"group": specs["chat_type"]},
        }
    }
    source = {"platform": platform, "chat_id": "1", "chat_type": chat_type}
    naive_now, naive_updated = NOW.replace(tzinfo=None), updated.replace(tzinfo=None)
    got = oracle.should_reset({"updated_at": naive_updated}, source, config, naive_now)
    assert got == expected


# ------------------------------------------- deliberate difference: daily reset zone

NY_POLICY = ResetPolicy(at_hour=4, time_zone="America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_daily_reset_in_configured_zone() -> None:
    updated = utc(2026, 3, 10, 8, 30)  # 04:30 EDT
    assert reset.reset_reason(NY_POLICY, NEW_YORK, updated, utc(2026, 3, 11, 7, 59)) is None
    assert reset.reset_reason(NY_POLICY, NEW_YORK, updated, utc(2026, 3, 11, 8, 1)) == "daily"
    # The same instants judged in UTC (04:00 UTC boundary) differ: the zone matters.
    assert reset.reset_reason(NY_POLICY, UTC_ZONE, updated, utc(2026, 3, 11, 7, 59)) == "daily"


def test_daily_reset_in_zone_matches_oracle_on_local_wall_clock() -> None:
    """The reference on a host whose local time is New York decides the same."""
    config = {"reset": {"default": {"mode": "both", "at_hour": 4}}}
    source = {"platform": "telegram", "chat_id": "1", "chat_type": "dm"}
    updated = utc(2026, 3, 10, 8, 30)
    for now in (utc(2026, 3, 11, 7, 59), utc(2026, 3, 11, 8, 1)):
        local = {"updated_at": updated.astimezone(NEW_YORK).replace(tzinfo=None)}
        naive_now = now.astimezone(NEW_YORK).replace(tzinfo=None)
        assert reset.reset_reason(NY_POLICY, NEW_YORK, updated, now) == oracle.should_reset(
            local, source, config, naive_now
        )


def test_last_daily_reset_uses_the_zone_offset_of_that_day() -> None:
    assert reset.last_daily_reset(utc(2026, 3, 7, 12), 4, NEW_YORK) == utc(2026, 3, 7, 9)  # EST
    assert reset.last_daily_reset(utc(2026, 3, 8, 12), 4, NEW_YORK) == utc(2026, 3, 8, 8)  # EDT
    assert reset.last_daily_reset(utc(2026, 3, 8, 7, 59), 4, NEW_YORK) == utc(2026, 3, 7, 9)


def test_daily_reset_across_spring_forward() -> None:
    """2026-03-08: New York moves from EST (UTC-5) to EDT (UTC-4) at 02:00 local."""
    policy = ResetPolicy(mode="daily", at_hour=4, time_zone="America/New_York")
    updated = utc(2026, 3, 8, 7, 30)  # 03:30 EDT, after the jump
    assert reset.reset_reason(policy, NEW_YORK, updated, utc(2026, 3, 8, 7, 59)) is None
    # 04:01 EDT is 08:01 UTC; a fixed EST offset would wait until 09:00 UTC.
    assert reset.reset_reason(policy, NEW_YORK, updated, utc(2026, 3, 8, 8, 1)) == "daily"
    # Updated before the jump (23:00 EST on 7 March): still one reset at 04:00 EDT.
    before = utc(2026, 3, 8, 4)
    assert reset.reset_reason(policy, NEW_YORK, before, utc(2026, 3, 8, 7, 59)) is None
    assert reset.reset_reason(policy, NEW_YORK, before, utc(2026, 3, 8, 8, 1)) == "daily"


def test_daily_reset_across_fall_back() -> None:
    """2026-11-01: New York moves from EDT (UTC-4) back to EST (UTC-5) at 02:00 local."""
    policy = ResetPolicy(mode="daily", at_hour=4, time_zone="America/New_York")
    updated = utc(2026, 11, 1, 8, 30)  # 03:30 EST
    # 08:59 UTC is 03:59 EST; a fixed EDT offset would have reset at 08:00 UTC.
    assert reset.reset_reason(policy, NEW_YORK, updated, utc(2026, 11, 1, 8, 59)) is None
    assert reset.reset_reason(policy, NEW_YORK, updated, utc(2026, 11, 1, 9, 1)) == "daily"


def test_idle_time_is_elapsed_time_across_spring_forward() -> None:
    """01:30 EST to 03:20 EDT is 50 minutes, though the wall clock moved 1 h 50."""
    policy = ResetPolicy(mode="idle", idle_minutes=60, time_zone="America/New_York")
    updated, now = utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 20)
    assert reset.reset_reason(policy, NEW_YORK, updated, now) is None
    assert reset.reset_reason(policy, NEW_YORK, updated, now + timedelta(minutes=11)) == "idle"
