"""The errors the store client raises: one class per status a gateway reacts to differently.

A gateway should not have to import grpc to tell "the key is gone" from "someone else changed
the entry" from "the daemon is down"; these classes carry the status code and the server's
message for logs, and ``from_rpc_error`` is the one place that maps a ``grpc.RpcError``.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import BadRequest
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status


class SessiondError(Exception):
    """Any failed call; ``code`` is the gRPC status, ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class InvalidArgumentError(SessiondError, ValueError):
    """A request field was rejected; ``field`` names it (``source.platform``), or is "" if unknown,
    and ``description`` says what is wrong with it.

    Also a ``ValueError``, which is what the reference's functions raised for the same inputs.

    The daemon sends both in a ``google.rpc.BadRequest`` detail of the status, which
    ``from_rpc_error`` passes in. Without them (a status whose detail a proxy dropped) they are
    read from the message, which the daemon words ``field.path: reason``: the field is the part
    before the colon if it holds no space, else "" with the whole message as the description.
    """

    def __init__(
        self, code: grpc.StatusCode, details: str, field: str | None = None, description: str | None = None
    ) -> None:
        super().__init__(code, details)
        if field is None:
            named, separator, reason = details.partition(": ")
            field, description = (named, reason) if named and separator and " " not in named else ("", details)
        self.field = field
        self.description = details if description is None else description


class NotFoundError(SessiondError):
    """An unknown session key or session id."""


class AlreadyExistsError(SessiondError):
    """The name is taken: another session has the title."""


class ConflictError(SessiondError):
    """The entry changed since it was read (``expected_version``) or moved on to another id."""


class FailedPreconditionError(SessiondError):
    """The entry's state forbids the change (suspended, leased by another owner)."""


class ResourceExhaustedError(SessiondError):
    """The daemon's disk is full or a configured limit was exceeded."""


class PermissionDeniedError(SessiondError):
    """The client's credentials do not reach what the call names (another namespace, a write)."""


class OutOfRangeError(SessiondError):
    """An event cursor the daemon no longer covers (events after it were deleted): resync the state."""


class UnavailableError(SessiondError):
    """The daemon could not be reached (after the retries that were safe)."""


class DeadlineExceededError(SessiondError):
    """The call's deadline passed; a mutation may or may not have been applied."""


_BY_CODE: dict[grpc.StatusCode, type[SessiondError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def _field_violation(call: grpc.Call) -> BadRequest.FieldViolation | None:
    """The first field violation of the ``google.rpc.BadRequest`` detail of a call's status, if any.

    A rich status that ``grpc_status`` rejects (its code or message is not the call's) or that
    does not decode counts as absent.
    """
    try:
        status: Status | None = rpc_status.from_call(call)
    except (ValueError, DecodeError):
        return None
    for detail in status.details if status is not None else ():
        bad_request = BadRequest()
        try:
            if detail.Unpack(bad_request) and bad_request.field_violations:
                return bad_request.field_violations[0]
        except DecodeError:
            continue
    return None


def from_rpc_error(error: grpc.RpcError) -> SessiondError:
    """The ``SessiondError`` subclass for a failed call (the base class for other codes).

    For INVALID_ARGUMENT, the field and its description come from the status's BadRequest detail.
    """
    if not isinstance(error, grpc.Call):  # an RpcError that is not a call carries no status: the unknown one
        return SessiondError(grpc.StatusCode.UNKNOWN, str(error))
    code, details = error.code(), error.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT and (violation := _field_violation(error)) is not None:
        return InvalidArgumentError(code, details, violation.field, violation.description)
    return _BY_CODE.get(code, SessiondError)(code, details)
