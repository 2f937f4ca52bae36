"""Who may call over TCP: the listener's TLS credentials and its bearer-token check.

The Unix socket needs neither: its file permissions (0600 in a 0700 directory) already limit it
to the daemon's user. A TCP port is reachable by whoever shares the network, so the daemon
serves TCP from a server of its own, built with ``server_credentials`` and ``interceptors``.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health

from sessiond.errors import ConfigError


@dataclass(frozen=True)
class Security:
    """Who may call over TCP (the Unix socket is guarded by its file permissions).

    TCP needs TLS (``tls_cert`` + ``tls_key``; mutual when ``tls_client_ca`` is set) or a bearer
    token: the contents of ``token_file``, or the ``SESSIOND_TOKEN`` environment variable.
    """

    token_file: Path | None = None
    token: str = field(default="", repr=False)  # never printed or logged
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    health_without_auth: bool = True


REJECTED = "missing or invalid bearer token"
HEALTH_METHODS = f"/{health.SERVICE_NAME}/"

Request = TypeVar("Request")
Response = TypeVar("Response")


async def _reject(_requests: AsyncIterator[object], context: grpc.aio.ServicerContext[object, object]) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REJECTED)


# Streaming both ways suits every method: it answers at once and reads nothing of the request,
# so it stands for a handler of any request and response types.
_REJECTION: grpc.RpcMethodHandler[Any, Any] = grpc.stream_stream_rpc_method_handler(_reject)


class BearerToken(grpc.aio.ServerInterceptor):
    """Lets a call through only with ``authorization: Bearer <token>``, else UNAUTHENTICATED.

    The token is compared in constant time (``hmac.compare_digest``), so response times do not
    tell how much of a guess was right, and the answer never echoes what was sent. The real
    handler never runs for a rejected call, so it reads and writes nothing. Health checks may
    be exempt: orchestrator probes (kubelet, load balancers) cannot send a token.
    """

    def __init__(self, token: str, exempt_health: bool):
        self._token = token.encode()
        self._exempt_health = exempt_health

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Request, Response] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Request, Response] | None:
        exempt = self._exempt_health and handler_call_details.method.startswith(HEALTH_METHODS)
        if exempt or self._authorized(handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        return _REJECTION

    def _authorized(self, metadata: Any) -> bool:
        header = next((str(value) for key, value in metadata or () if key == "authorization"), "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), self._token)


def interceptors(security: Security) -> list[grpc.aio.ServerInterceptor]:
    """The token check when a token is configured (with TLS as well, both apply)."""
    return [BearerToken(security.token, security.health_without_auth)] if security.token else []


def server_credentials(security: Security) -> grpc.ServerCredentials | None:
    """TLS for the TCP listener, mutual when ``tls_client_ca`` is set; None without a certificate."""
    if security.tls_cert is None or security.tls_key is None:
        return None
    client_ca = _read(security.tls_client_ca, "tls_client_ca") if security.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(_read(security.tls_key, "tls_key"), _read(security.tls_cert, "tls_cert"))],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"security.{key}: cannot read {path} ({exc.strerror})") from None
