"""Channels to the daemon: plaintext (Unix socket, or TCP with a token) or TLS, and the token.

A daemon's TCP port needs TLS, a bearer token, or both; its Unix socket needs neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

# What an interceptor calls to go on with the call (typed loosely: the stubs' call types are private).
Continuation = Callable[[grpc.ClientCallDetails, Any], Any]


@dataclass(frozen=True)
class TLS:
    """How to check the daemon's certificate and, for mutual TLS, this client's own (PEM bytes)."""

    root_certificates: bytes | None = None  # None: the system's trusted roots
    private_key: bytes | None = None
    certificate_chain: bytes | None = None


@dataclass
class _CallDetails(grpc.ClientCallDetails):
    """A call's details with other metadata (grpc's ``ClientCallDetails`` is abstract)."""

    method: str
    timeout: float | None
    metadata: tuple[tuple[str, str | bytes], ...] | None = field(repr=False)  # it carries the token
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Sends ``authorization: Bearer <token>`` with every call (the contract's requests are all unary).

    An interceptor rather than ``grpc.access_token_call_credentials``: grpc sends call
    credentials over TLS only, and a daemon may take its token over plaintext TCP.
    """

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _intercept(self, continuation: Continuation, client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        details = client_call_details
        metadata = (*(details.metadata or ()), self._header)
        with_token = _CallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready, details.compression
        )
        return continuation(with_token, request)

    intercept_unary_unary = intercept_unary_stream = _intercept


def open_channel(
    target: str, options: Sequence[tuple[str, Any]] = (), *, token: str | None = None, tls: TLS | None = None
) -> grpc.Channel:
    """A channel to ``target``: TLS when ``tls`` is given, the bearer ``token`` on every call when given."""
    if tls is None:
        channel = grpc.insecure_channel(target, options=list(options))
    else:
        credentials = grpc.ssl_channel_credentials(tls.root_certificates, tls.private_key, tls.certificate_chain)
        channel = grpc.secure_channel(target, credentials, options=list(options))
    return grpc.intercept_channel(channel, _BearerToken(token)) if token else channel
