"""The Python client against a real daemon."""

from __future__ import annotations

from helpers.daemons import Running
from sessiond_client import connect
from sessiond_client.v1.session_store_pb2 import RuntimePlatforms
from sessiond_client.v1.source_pb2 import CHAT_TYPE_GROUP, HomeChannel, SessionSource


def test_client_builds_keys_and_contexts(daemon: Running) -> None:
    with connect(daemon.address) as client:
        client.wait_ready()
        assert client.is_serving()
        group = SessionSource(platform="telegram", chat_id="-100123", chat_type=CHAT_TYPE_GROUP, user_id="42")
        assert client.build_session_key(group).session_key == "agent:main:telegram:group:-100123:42"
        platforms = RuntimePlatforms(
            connected_platforms=["telegram"], home_channels=[HomeChannel(platform="telegram", chat_id="111")]
        )
        response = client.build_session_context(group, redact_pii=True, platforms=platforms)
        assert "**User ID:** user_" in response.prompt and "42" not in response.prompt.split("**User ID:**")[1][:20]
        assert list(response.context.connected_platforms) == ["telegram"]
