"""The errors the store client raises: one class per status a gateway reacts to differently.

A gateway should not have to import grpc to tell "the key is gone" from "someone else changed
the entry" from "the daemon is down"; these classes carry the status code and the server's
message for logs, and ``from_rpc_error`` is the one place that maps a ``grpc.RpcError``.
"""

from __future__ import annotations

import grpc


class SessiondError(Exception):
    """Any failed call; ``code`` is the gRPC status, ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class InvalidArgumentError(SessiondError, ValueError):
    """A request field was rejected; ``field`` names it (``source.platform``), or is "" if unknown.

    Also a ``ValueError``, which is what the reference's functions raised for the same inputs.

    The daemon phrases these as ``field.path: reason``, so the field is the part before the colon.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        field, separator, _ = details.partition(": ")
        self.field = field if separator and " " not in field else ""


class NotFoundError(SessiondError):
    """An unknown session key or session id."""


class ConflictError(SessiondError):
    """The entry changed since it was read (``expected_version``) or moved on to another id."""


class FailedPreconditionError(SessiondError):
    """The entry's state forbids the change (suspended, leased by another owner)."""


class ResourceExhaustedError(SessiondError):
    """The daemon's disk is full or a configured limit was exceeded."""


class OutOfRangeError(SessiondError):
    """An event cursor the daemon no longer covers (events after it were deleted): resync the state."""


class UnavailableError(SessiondError):
    """The daemon could not be reached (after the retries that were safe)."""


class DeadlineExceededError(SessiondError):
    """The call's deadline passed; a mutation may or may not have been applied."""


_BY_CODE: dict[grpc.StatusCode, type[SessiondError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def from_rpc_error(error: grpc.RpcError) -> SessiondError:
    """The ``SessiondError`` subclass for a failed call (the base class for other codes)."""
    if isinstance(error, grpc.Call):
        code, details = error.code(), error.details() or ""
    else:  # an RpcError that is not a call carries no status; treat it as the unknown one
        code, details = grpc.StatusCode.UNKNOWN, str(error)
    return _BY_CODE.get(code, SessiondError)(code, details)
