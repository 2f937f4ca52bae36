"""Differential property tests of the pure rules against the reference oracle.

Every generated source, configuration and time must give the reference's key, flag,
description, context, prompt (with and without redaction), WhatsApp identity and reset
decision, except where README documents a deliberate difference.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import oracle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cases
from sessiond.daemon import config as config_module
from sessiond.errors import InvalidArgument
from sessiond.model import EntryRef
from sessiond.rpc import convert
from sessiond.rules import keys, prompt, reset, whatsapp
from sessiond.rules.lid_mapping import MappingDirectory

EXAMPLES = settings(max_examples=600, deadline=None)


def outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """("ok", value), or ("error", None) where the rule rejects the input."""
    try:
        return "ok", call(*args, **kwargs)
    except (ValueError, InvalidArgument):
        return "error", None


def agree(ours: tuple[str, Any], reference: Any, *args: Any, **kwargs: Any) -> None:
    """Our outcome equals the reference's, except where the reference crashes on a mapping
    file name too long for the file system (documented): there sessiond answers."""
    try:
        expected = outcome(reference, *args, **kwargs)
    except OSError:
        assert ours[0] == "ok"
        return
    assert ours == expected


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return cases.daemon_configs(cases.whatsapp_mapping(tmp_path_factory.mktemp("wa")))


def sessiond_config(oracle_config: dict[str, Any]) -> config_module.Config:
    return config_module.parse(cases.config_data(oracle_config))


def mapped(config: config_module.Config) -> Any:
    return MappingDirectory(config.whatsapp_mapping_dir) if config.whatsapp_mapping_dir else whatsapp.no_mapping


@EXAMPLES
@given(data=st.data(), source=cases.sources())
def test_key_flag_and_description_match(
    configs: list[dict[str, Any]], data: st.DataObject, source: dict[str, Any]
) -> None:
    cfg = data.draw(st.sampled_from(configs))
    config = sessiond_config(cfg)
    domain = cases.domain_source(source, config.platforms)
    options = {k: cfg[k] for k in ("group_sessions_per_user", "thread_sessions_per_user") if k in cfg}

    ours = outcome(keys.build_session_key, domain, config.key_options, mapped(config))
    agree(ours, oracle.session_key, source, config=cfg, **options)
    assert prompt.describe(domain) == oracle.describe(source, config=cfg)
    flag = keys.is_shared_multi_user(domain, config.key_options)
    if cases.is_flag_difference(source, cfg):
        assert flag is True and oracle.shared_multi_user(source, config=cfg, **options) is False
    else:
        assert flag == oracle.shared_multi_user(source, config=cfg, **options)


@EXAMPLES
@given(
    data=st.data(),
    source=cases.sources(),
    runtime=cases.runtime_platforms(),
    entry=cases.entries(),
    redact=st.booleans(),
)
def test_context_and_prompt_match(
    configs: list[dict[str, Any]],
    data: st.DataObject,
    source: dict[str, Any],
    runtime: dict[str, Any],
    entry: dict[str, Any] | None,
    redact: bool,
) -> None:
    cfg = {**data.draw(st.sampled_from(configs)), **runtime}
    config = sessiond_config(cfg)
    domain = cases.domain_source(source, config.platforms)
    ref = None
    if entry:
        created, updated = (entry[name].replace(tzinfo=UTC) for name in ("created_at", "updated_at"))
        ref = EntryRef(entry["session_key"], entry["session_id"], created, updated)
    context = prompt.build_context(domain, config.key_options, config.connected_platforms, config.home_channels, ref)
    expected_cfg = cases.prompt_config(source, cfg)
    assert prompt.build_prompt(context, config.platforms, config.prompt, redact) == oracle.context_prompt(
        source, expected_cfg, entry, redact_pii=redact
    )
    assert cases.context_as_dict(convert.context_to_proto(context)) == cases.oracle_context_dict(
        oracle.context_dict(source, expected_cfg, entry)
    )


@settings(max_examples=1000, deadline=None)
@given(
    value=st.one_of(
        cases.text, st.sampled_from([cases.LID, f"{cases.PHONE}@s.whatsapp.net", "777", "7777@lid", "broken"])
    )
)
def test_whatsapp_identity_matches(configs: list[dict[str, Any]], value: str) -> None:
    directory = Path(configs[0]["whatsapp_mapping_dir"])
    assert whatsapp.normalize(value) == oracle.normalize_whatsapp_identifier(value)
    ours = outcome(whatsapp.canonical, value, MappingDirectory(directory))
    agree(ours, oracle.canonical_whatsapp_identifier, value, configs[0])
    assert outcome(whatsapp.canonical, value, whatsapp.no_mapping) == outcome(
        oracle.canonical_whatsapp_identifier, value
    )


policy = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.sampled_from(config_module.RESET_MODES),
        "at_hour": st.integers(0, 23),
        "idle_minutes": st.integers(1, 4000),
    },
)
reset_config = st.fixed_dictionaries(
    {"default": policy},
    optional={
        "platforms": st.dictionaries(st.sampled_from(["telegram", "whatsapp", "discord", "irc"]), policy, max_size=2),
        "chat_types": st.dictionaries(st.sampled_from(cases.CHAT_TYPES), policy, max_size=2),
    },
)


@settings(max_examples=1500, deadline=None)
@given(
    source=cases.sources(),
    reset_cfg=reset_config,
    updated=cases.naive_times,
    elapsed=st.timedeltas(timedelta(hours=-2), timedelta(days=3)),
    zone=st.sampled_from(["UTC", "Asia/Kolkata", "Asia/Tokyo"]),
)
def test_reset_decision_matches(
    source: dict[str, Any], reset_cfg: dict[str, Any], updated: Any, elapsed: Any, zone: str
) -> None:
    cfg = {"plugin_platforms": cases.PLUGINS, "reset": reset_cfg}
    config = sessiond_config(cfg)
    domain = cases.domain_source(source, config.platforms)
    chosen = config.policies.for_session(domain.platform, domain.chat_type)
    tz = ZoneInfo(zone)
    now = updated + elapsed
    got = reset.reset_reason(chosen, tz, updated.replace(tzinfo=tz), now.replace(tzinfo=tz))
    assert got == oracle.should_reset({"updated_at": updated}, source, cfg, now=now)
