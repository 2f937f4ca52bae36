"""A thin synchronous client: the generated stub behind snake_case methods with deadlines."""

from __future__ import annotations

import os
from types import TracebackType

import grpc

from sessiond_client import health
from sessiond_client.channel import TLS, open_channel
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import session_store_pb2_grpc
from sessiond_client.v1.session_pb2 import SessionEntry
from sessiond_client.v1.source_pb2 import SessionSource


def default_target() -> str:
    """Where a default daemon listens: ``$SESSIOND_TARGET``, else its default Unix socket."""
    if os.environ.get("SESSIOND_TARGET"):
        return os.environ["SESSIOND_TARGET"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = f"{runtime}/sessiond" if runtime else f"/tmp/sessiond-{os.getuid()}"
    return f"unix:{base}/sessiond.sock"


class SessiondClient:
    """One channel to one daemon. Every call takes a deadline (``timeout`` seconds)."""

    def __init__(self, channel: grpc.Channel, timeout: float = 5.0):
        self.channel = channel
        self.timeout = timeout
        self.stub = session_store_pb2_grpc.SessionStoreStub(channel)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the channel connects (raises ``grpc.FutureTimeoutError``)."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def is_serving(self) -> bool:
        return health.is_serving(self.channel, "sessiond.v1.SessionStore", self.timeout)

    def build_session_key(self, source: SessionSource) -> pb.BuildSessionKeyResponse:
        return self.stub.BuildSessionKey(pb.BuildSessionKeyRequest(source=source), timeout=self.timeout)

    def build_session_context(
        self,
        source: SessionSource,
        entry: SessionEntry | None = None,
        redact_pii: bool = False,
        platforms: pb.RuntimePlatforms | None = None,
    ) -> pb.BuildSessionContextResponse:
        request = pb.BuildSessionContextRequest(source=source, entry=entry, redact_pii=redact_pii, platforms=platforms)
        return self.stub.BuildSessionContext(request, timeout=self.timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> SessiondClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def connect(
    target: str | None = None, timeout: float = 5.0, *, token: str | None = None, tls: TLS | None = None
) -> SessiondClient:
    """A client for ``target`` (``unix:/path`` or ``host:port``; default: ``default_target()``).

    A TCP target needs what the daemon's ``[security]`` asks for: ``tls``, the bearer ``token``, or both.
    """
    return SessiondClient(open_channel(target or default_target(), token=token, tls=tls), timeout)
