"""Domain errors. The servicer maps each class to one gRPC status, in one place."""

from __future__ import annotations


def shown(value: str, limit: int = 64) -> str:
    """A value quoted for an error message, cut short: statuses travel in size-limited metadata."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}… ({len(value)} characters)"


class SessiondError(Exception):
    """Base of the errors a caller can act on; the message is safe to send on the wire."""


class InvalidArgument(SessiondError):
    """A request field is malformed; ``field`` is its path, e.g. ``source.chat_id``."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConfigError(SessiondError):
    """The configuration is invalid; the message names the key."""


class NotFound(SessiondError):
    """An unknown session key or session id."""


class Conflict(SessiondError):
    """The entry changed since the caller read it (``expected_version``), or moved on."""


class AlreadyExists(SessiondError):
    """A file the operation would create exists already (it is never overwritten)."""


class FailedPrecondition(SessiondError):
    """The entry's state forbids the change (a suspended entry, a lease held by another owner)."""


class ResourceExhausted(SessiondError):
    """The disk is full or a configured limit is exceeded."""


class DiskFull(ResourceExhausted):
    """The database's file system is full: writes fail, reads go on."""


class DeadlineExceeded(SessiondError):
    """The caller's deadline passed before the operation ran; nothing was written."""


class PermissionDenied(SessiondError):
    """The caller's credentials do not reach what the call names (another namespace, a write)."""


class OutOfRange(SessiondError):
    """An event cursor outside the log: the events after it were deleted, or it is ahead of the newest."""


class ShuttingDown(SessiondError):
    """The daemon is stopping; the caller reconnects (a stream with its last cursor)."""


class StorageError(SessiondError):
    """The database cannot be opened or used (corrupt, newer schema, locked by another daemon)."""
