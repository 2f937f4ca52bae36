"""Domain errors. The servicer maps each class to one gRPC status, in one place."""

from __future__ import annotations


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
