"""Inputs for the differential and drop-in tests in the oracle's dict form, generated (sources,
platforms, entries, configs) and fixed (a conversation), and their translations into sessiond's
config data, domain values and protobuf requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from sessiond.model import Source
from sessiond.rpc import convert
from sessiond.rules.platforms import BUILTIN
from sessiond_client.v1 import session_pb2, session_store_pb2, source_pb2

PLUGINS = {"irc": {"pii_safe": True}, "teams": {"pii_safe": False}}
PHONE, LID = "15551234567", "999999999999999"

WEIRD = [
    "",
    " ",
    "0",
    ":",
    "a:b",
    "telegram:12345",
    ":lead",
    "x" * 300,
    "naïve ☃",
    "Ω≈ç√∫",
    "🙂👍🏽",
    "null\x00byte",
    "line\nbreak",
    "tab\t",
    "\u200b",
    "İstanbul",
    "ß",
    "ﬁ",
    f"+{PHONE}@s.whatsapp.net",
    f"{PHONE}:47@s.whatsapp.net",
    f"{LID}@lid",
    "120363000000000000@g.us",
    f"+{LID}",
    "+",
    "@",
    "a_b",
    "../etc",
    "with space",
    "1.2.3",
    "abc\n:1",
]
text = st.one_of(
    st.sampled_from(WEIRD),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=24),
    st.text("0123456789+:@._-abcXYZ", max_size=20),
)
optional_text = st.one_of(st.none(), text)
platform_names = sorted(BUILTIN) + sorted(PLUGINS)
platform = st.one_of(
    st.sampled_from(platform_names),
    st.sampled_from(["whatsapp", "whatsapp", "telegram", "discord", "slack", "local", "bluebubbles"]),
    st.sampled_from([" Telegram ", "WHATSAPP", "Discord", "IRC", " irc"]),
)
CHAT_TYPES = ["dm", "group", "channel", "thread"]

SOURCE_FIELDS = convert.SOURCE_OPTIONAL  # in the order of the reference's to_dict()

# A conversation as the gateway's agent writes it (OpenAI chat format): system, Unicode, structured
# content, a tool call and its result, reasoning fields.
CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "<memory-context>recalled</memory-context>  Grüße ☃ 你好  "},
    {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {}}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        "finish_reason": "tool_calls",
    },
    {"role": "tool", "content": '{"result": 1}', "tool_call_id": "call_1", "tool_name": "lookup"},
    {
        "role": "assistant",
        "content": "Done.",
        "reasoning": "thought about it",
        "reasoning_content": "",
        "reasoning_details": [{"type": "reasoning.text", "text": "x"}],
        "codex_reasoning_items": [{"id": "rs_1"}],
        "finish_reason": "stop",
    },
]


@st.composite
def sources(draw: st.DrawFn) -> dict[str, Any]:
    source: dict[str, Any] = {"platform": draw(platform), "chat_id": draw(text)}
    chat_type = draw(st.one_of(st.none(), st.sampled_from(CHAT_TYPES)))
    if chat_type is not None:
        source["chat_type"] = chat_type
    for name in SOURCE_FIELDS:
        value = draw(optional_text)
        if value is not None or draw(st.booleans()):
            source[name] = value
    return source


home_channel = st.fixed_dictionaries(
    {"chat_id": text},
    optional={"name": text, "thread_id": text, "user_id": text, "scope_id": text},
)


@st.composite
def runtime_platforms(draw: st.DrawFn) -> dict[str, Any]:
    """Connected platforms and home channels as a gateway would send them."""
    connected = draw(st.lists(st.sampled_from(platform_names), max_size=6))
    homes = draw(st.dictionaries(st.sampled_from(platform_names), home_channel, max_size=4))
    return {"connected_platforms": connected, "home_channels": homes}


naive_times = st.datetimes(datetime(2001, 1, 1), datetime(2090, 1, 1))


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    created = draw(naive_times)
    return {
        "session_key": draw(text),
        "session_id": draw(text),
        "created_at": created,
        "updated_at": created + draw(st.timedeltas(timedelta(0), timedelta(days=400))),
    }


def whatsapp_mapping(directory: Path) -> Path:
    """A LID-mapping directory: LID <-> phone, and a chain of three aliases."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        f"lid-mapping-{LID}_reverse.json": f"{PHONE}@s.whatsapp.net",
        f"lid-mapping-{PHONE}.json": f"{LID}@lid",
        "lid-mapping-777.json": "7777@lid",
        "lid-mapping-7777_reverse.json": "77@s.whatsapp.net",
        "lid-mapping-broken.json": "{not json",
    }
    for name, value in files.items():
        (directory / name).write_text(value if value.startswith("{") else json.dumps(value))
    return directory


def daemon_configs(mapping_dir: Path) -> list[dict[str, Any]]:
    """A few daemon configurations covering the fixed settings, in the oracle's dict form."""
    base = {"plugin_platforms": PLUGINS, "whatsapp_mapping_dir": str(mapping_dir)}
    return [
        {**base},
        {**base, "group_sessions_per_user": False, "discord_tools": True, "hermes_home_display": "/srv/agent"},
        {**base, "thread_sessions_per_user": True, "hermes_home_display": "~/.hermes-ü"},
        {**base, "group_sessions_per_user": False, "thread_sessions_per_user": True, "discord_tools": True},
    ]


def config_data(oracle_config: dict[str, Any]) -> dict[str, Any]:
    """sessiond's TOML-shaped config data for an oracle config dict (rules only)."""
    data: dict[str, Any] = {
        "sessions": {
            "group_sessions_per_user": oracle_config.get("group_sessions_per_user", True),
            "thread_sessions_per_user": oracle_config.get("thread_sessions_per_user", False),
        },
        "platforms": {
            "plugins": oracle_config.get("plugin_platforms", {}),
            "connected": oracle_config.get("connected_platforms", []),
            "home_channels": oracle_config.get("home_channels", {}),
        },
        "prompt": {
            "agent_home": oracle_config.get("hermes_home_display", "~/.hermes"),
            "discord_tools": oracle_config.get("discord_tools", False),
        },
        "whatsapp": {"mapping_dir": oracle_config.get("whatsapp_mapping_dir", "")},
    }
    if "reset" in oracle_config:
        data["reset"] = oracle_config["reset"]
    return data


def _set_optional(message: Any, values: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if values.get(name) is not None:
            setattr(message, name, values[name])


def source_proto(source: dict[str, Any]) -> source_pb2.SessionSource:
    message = source_pb2.SessionSource(
        platform=source["platform"],
        chat_id=source["chat_id"],
        chat_type=convert.CHAT_TYPE_VALUES[source.get("chat_type", "dm")],
    )
    _set_optional(message, source, SOURCE_FIELDS)
    return message


def runtime_proto(platforms: dict[str, Any]) -> session_store_pb2.RuntimePlatforms:
    homes = []
    for name, channel in platforms["home_channels"].items():
        home = source_pb2.HomeChannel(platform=name, chat_id=channel["chat_id"])
        _set_optional(home, channel, ("name", "thread_id", "user_id", "scope_id"))
        homes.append(home)
    return session_store_pb2.RuntimePlatforms(connected_platforms=platforms["connected_platforms"], home_channels=homes)


def entry_proto(entry: dict[str, Any]) -> session_pb2.SessionEntry:
    message = session_pb2.SessionEntry(session_key=entry["session_key"], session_id=entry["session_id"])
    for name in ("created_at", "updated_at"):
        getattr(message, name).FromDatetime(entry[name].replace(tzinfo=UTC))
    return message


def domain_source(source: dict[str, Any], platforms: Any) -> Source:
    """The domain Source sessiond builds from the same request."""
    return convert.source(source_proto(source), platforms, 1 << 20)


def _naive_iso(message: Any, name: str) -> str | None:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime().isoformat()


def context_as_dict(context: session_pb2.SessionContext) -> dict[str, Any]:
    """sessiond's SessionContext in the shape of the reference's SessionContext.to_dict()."""
    src = context.source
    source = {"platform": src.platform, "chat_id": src.chat_id}
    source.update({n: getattr(src, n) if src.HasField(n) else None for n in SOURCE_FIELDS[:5]})
    source["chat_type"] = convert.CHAT_TYPES[src.chat_type]
    source.update({n: getattr(src, n) for n in SOURCE_FIELDS[5:] if getattr(src, n)})
    source = {k: source[k] for k in sorted(source)}
    homes = {}
    for home in context.home_channels:
        homes[home.platform] = {"platform": home.platform, "chat_id": home.chat_id, "name": home.name}
        homes[home.platform].update(
            {n: getattr(home, n) for n in ("thread_id", "user_id", "scope_id") if getattr(home, n)}
        )
    return {
        "source": source,
        "connected_platforms": list(context.connected_platforms),
        "home_channels": homes,
        "shared_multi_user_session": context.shared_multi_user_session,
        "session_key": context.session_key,
        "session_id": context.session_id,
        "created_at": _naive_iso(context, "created_at"),
        "updated_at": _naive_iso(context, "updated_at"),
    }


def oracle_context_dict(context: dict[str, Any]) -> dict[str, Any]:
    """The oracle's context dict with its source keys sorted, to compare with context_as_dict."""
    return {**context, "source": {k: context["source"][k] for k in sorted(context["source"])}}


def is_flag_difference(source: dict[str, Any], oracle_config: dict[str, Any]) -> bool:
    """The documented case where sessiond's shared flag deliberately differs from the reference."""
    return (
        source.get("chat_type", "dm") != "dm"
        and bool(source.get("thread_id"))
        and oracle_config.get("group_sessions_per_user", True) is False
        and oracle_config.get("thread_sessions_per_user", False) is True
    )


def prompt_config(source: dict[str, Any], oracle_config: dict[str, Any]) -> dict[str, Any]:
    """The oracle config whose prompt sessiond must reproduce.

    In the documented flag case sessiond flags the thread shared, as the reference does
    with ``thread_sessions_per_user`` off, which gives the same key there.
    """
    if is_flag_difference(source, oracle_config):
        return {**oracle_config, "thread_sessions_per_user": False}
    return oracle_config
