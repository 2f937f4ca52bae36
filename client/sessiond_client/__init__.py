"""Python client of sessiond: a channel to the daemon and the generated stub, ready to use.

from sessiond_client import connect
with connect() as client:
    key = client.build_session_key(SessionSource(platform="telegram", chat_id="42")).session_key
"""

from sessiond_client.client import SessiondClient, connect, default_target

__all__ = ["SessiondClient", "connect", "default_target"]
