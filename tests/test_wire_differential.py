"""Over the wire: BuildSessionKey and BuildSessionContext of real daemons equal the reference.

Four daemons (one per fixed configuration) run on temp Unix sockets; Hypothesis draws the
daemon, the source, the gateway's run-time platforms, the entry and redaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import oracle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import cases
from helpers.daemons import Running
from sessiond_client.v1 import session_store_pb2 as pb

MIN_CASES = 2000


def ask(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
        return "error", None


def reference(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except ValueError:
        return "error", None
    except OSError:  # mapping file name too long: the reference crashes (see README)
        return "crash", None


def with_home_platforms(cfg: dict[str, Any]) -> dict[str, Any]:
    """Configured connected platforms and home channels for half the daemons."""
    return {
        **cfg,
        "connected_platforms": ["telegram", "discord", "irc", "local"],
        "home_channels": {"telegram": {"chat_id": "-100777", "name": "Ops ☃"}, "irc": {"chat_id": "#home"}},
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(oracle config, running daemon) pairs, started once for the module."""
    from sessiond.daemon import config as config_module
    from sessiond.daemon.server import create_server

    configs = cases.daemon_configs(cases.whatsapp_mapping(tmp_path_factory.mktemp("wa")))
    configs = [with_home_platforms(c) if i % 2 == 0 else c for i, c in enumerate(configs)]
    started = []
    for cfg in configs:
        data = cases.config_data(cfg)
        data["server"] = {"socket": str(tmp_path_factory.mktemp("sock") / "s.sock")}
        data["storage"] = {"path": str(tmp_path_factory.mktemp("db") / "s.db")}
        daemon = create_server(config_module.parse(data))
        daemon.start()
        channel = grpc.insecure_channel(daemon.addresses[0])
        grpc.channel_ready_future(channel).result(timeout=10)
        started.append((cfg, Running(daemon, channel)))
    yield started
    for _, running in started:
        running.channel.close()
        running.daemon.stop(0)


def test_wire_matches_reference(fleet: list[tuple[dict[str, Any], Running]]) -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=MIN_CASES + 200, deadline=None)
    @given(
        pick=st.integers(0, len(fleet) - 1),
        source=cases.sources(),
        runtime=st.one_of(st.none(), cases.runtime_platforms()),
        entry=cases.entries(),
        redact=st.booleans(),
    )
    def case(
        pick: int, source: dict[str, Any], runtime: dict[str, Any] | None, entry: dict[str, Any] | None, redact: bool
    ) -> None:
        cfg, running = fleet[pick]
        stub = running.stub
        if runtime is not None:
            cfg = {**cfg, **runtime}
        options = {k: cfg[k] for k in ("group_sessions_per_user", "thread_sessions_per_user") if k in cfg}
        request = pb.BuildSessionContextRequest(source=cases.source_proto(source), redact_pii=redact)
        if runtime is not None:
            request.platforms.CopyFrom(cases.runtime_proto(runtime))
        if entry is not None:
            request.entry.CopyFrom(cases.entry_proto(entry))

        got_key = ask(lambda: stub.BuildSessionKey(pb.BuildSessionKeyRequest(source=request.source), timeout=10))
        want_key = reference(lambda: oracle.session_key(source, config=cfg, **options))
        if want_key[0] == "crash":
            seen["reference crashed (documented)"] += 1
            assert got_key[0] == "ok"
            return
        assert (got_key[0], got_key[1] and got_key[1].session_key) == want_key
        expected_cfg = cases.prompt_config(source, cfg)
        if got_key[0] == "ok":
            assert got_key[1].description == oracle.describe(source, cfg)
            shared = cases.is_flag_difference(source, cfg) or oracle.shared_multi_user(source, config=cfg, **options)
            assert got_key[1].shared_multi_user_session == shared

        got = ask(lambda: stub.BuildSessionContext(request, timeout=10))
        assert got[0] == "ok", "the context never depends on the WhatsApp identity"
        context, text = got[1].context, got[1].prompt
        assert text == oracle.context_prompt(source, expected_cfg, entry, redact_pii=redact)
        assert cases.context_as_dict(context) == cases.oracle_context_dict(
            oracle.context_dict(source, expected_cfg, entry)
        )
        seen["cases"] += 1
        seen["keys rejected as the reference" if got_key[0] == "error" else "keys equal"] += 1
        seen["prompts redacted" if redact else "prompts plain"] += 1
        seen["documented flag difference"] += cases.is_flag_difference(source, cfg)

    case()
    print(f"\nwire differential: {dict(seen)}")
    assert seen["cases"] >= MIN_CASES
