"""Who may call over TCP: the listener's TLS credentials, its bearer-token check, and the scope of
each caller (``Authorizer``).

The Unix socket needs neither: its file permissions (0600 in a 0700 directory) already limit it
to the daemon's user. A TCP port is reachable by whoever shares the network, so the daemon
serves TCP from a server of its own, built with ``server_credentials`` and ``interceptors``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health

from sessiond.errors import ConfigError
from sessiond.rpc.scopes import FULL, NamespaceOf, Scope, check


@dataclass(frozen=True)
class Security:
    """Who may call over TCP (the Unix socket is guarded by its file permissions).

    TCP needs TLS (``tls_cert`` + ``tls_key``; mutual when ``tls_client_ca`` is set) or a bearer
    token: the contents of ``token_file``, or the ``SESSIOND_TOKEN`` environment variable. Those
    have full access; ``scoped_tokens`` (token, scope) and ``scoped_clients`` (a client
    certificate's subject, scope) reach only their scope (``scopes``).
    """

    token_file: Path | None = None
    token: str = field(default="", repr=False)  # never printed or logged
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    health_without_auth: bool = True
    scoped_tokens: tuple[tuple[str, Scope], ...] = field(default=(), repr=False)
    scoped_clients: tuple[tuple[str, Scope], ...] = ()

    def tokens(self) -> list[str]:
        """Every token the TCP listener accepts."""
        return [token for token in (self.token, *(t for t, _ in self.scoped_tokens)) if token]


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

    def __init__(self, tokens: list[str], exempt_health: bool):
        self._tokens = [token.encode() for token in tokens]
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
        token = bearer_token(metadata)
        matches = [hmac.compare_digest(token, known) for known in self._tokens]  # all: no early exit
        return bool(token) and any(matches)


def bearer_token(metadata: Any) -> bytes:
    """The token of a call's ``authorization: Bearer <token>`` header; b"" without one."""
    header = next((str(value) for key, value in metadata or () if key == "authorization"), "")
    scheme, _, token = header.partition(" ")
    return token.encode() if scheme.lower() == "bearer" else b""


def interceptors(security: Security) -> list[grpc.aio.ServerInterceptor]:
    """The token check when a token is configured (with TLS as well, both apply)."""
    tokens = security.tokens()
    return [BearerToken(tokens, security.health_without_auth)] if tokens else []


class Authorizer:
    """The scope of each call's caller, checked against what the call names (``scopes.check``).

    The Unix socket, the daemon's own token and client certificates without a scoped subject have
    full access and cost nothing here; a scoped caller's session ids are looked up on a store thread.
    """

    def __init__(
        self, security: Security, default_namespace: str, namespace_of: NamespaceOf, threads: futures.Executor
    ):
        self._tokens = [(token.encode(), scope) for token, scope in security.scoped_tokens]
        self._subjects = dict(security.scoped_clients)
        self._default, self._namespace_of, self._threads = default_namespace, namespace_of, threads

    def scope_of(self, context: grpc.aio.ServicerContext[Any, Any]) -> Scope:
        if context.peer().startswith("unix:"):
            return FULL
        token = bearer_token(context.invocation_metadata())
        found = [scope for known, scope in self._tokens if hmac.compare_digest(token, known)]
        if found:
            return found[0]
        auth = context.auth_context() or {}
        names = [*auth.get("x509_common_name", ()), *auth.get("x509_subject_alternative_name", ())]
        subjects = [self._subjects[name.decode()] for name in names if name.decode() in self._subjects]
        return subjects[0] if subjects else FULL

    async def __call__(self, path: str, request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        scope = self.scope_of(context)
        if scope.full:
            return
        service, _, method = path.rpartition("/")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._threads, check, scope, service, method, request, self._default, self._namespace_of
        )


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
