"""What a caller limited to namespaces, or to reading, may ask: checked on every call before the
handler runs, so a call outside its scope is PERMISSION_DENIED and writes nothing.

A scope comes with the credential (``security.scoped_tokens``: a bearer token; ``security.
scoped_clients``: a TLS client certificate's subject); the daemon's own token, any other client
certificate its CA signed, and the Unix socket (guarded by its file permissions) have full
access. A request is judged by its fields, the same for every RPC: a ``namespace`` must name one
of the scope's (a scoped caller always names it), a gateway ``config`` builds keys in one (the
daemon's default when it names none), a ``session_key`` (a ``target_session_key``, a ``fence``'s)
and a ``selector`` must be of one, and a ``session_id`` must be a session started for a key of
one (looked up). Look-ups by title across the whole store, and the identity links, are refused
to namespace-limited callers: titles are unique daemon-wide and links span namespaces, so the
answer would tell about other namespaces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sessiond.errors import PermissionDenied
from sessiond.rules import keys


@dataclass(frozen=True)
class Scope:
    """What a credential reaches: ``namespaces`` (None: all) and whether it may only read."""

    namespaces: frozenset[str] | None = None
    read_only: bool = False

    @property
    def full(self) -> bool:
        return self.namespaces is None and not self.read_only


FULL = Scope()
READS = frozenset(
    {
        "BuildSessionKey", "BuildSessionContext", "CheckReset", "ResolveWhatsAppIdentifier", "GetSession",
        "ListSessions", "HasAnySessions", "ListExpiredSessions", "LoadTranscript", "WatchSessionEvents",
        "GetSessionTitle", "FindSessionByTitle", "NextTitleInLineage", "GetSessionLineage", "GetLineageTip",
        "SearchSessions", "SearchMessages", "GetSessionMetadata", "ListIdentityLinks",
    }
)  # fmt: skip
# Calls whose answer depends on sessions of every namespace (titles are unique daemon-wide), and the
# identity links, which are the operator's and hold user ids of every namespace.
DAEMON_WIDE = frozenset(
    {"FindSessionByTitle", "NextTitleInLineage", "LinkIdentity", "UnlinkIdentity", "ListIdentityLinks"}
)
KEY_FIELDS = ("session_key", "target_session_key")
SESSION_ID_FIELDS = ("session_id", "target_session_id")
NamespaceOf = Callable[[Iterable[str]], dict[str, str | None]]  # session ids -> their namespace, if any


def check(
    scope: Scope, service: str, method: str, request: Any, default_namespace: str, namespace_of: NamespaceOf
) -> None:
    """Raise ``PermissionDenied`` (naming the field) unless ``scope`` reaches everything the request names."""
    if scope.full:
        return
    if service != "sessiond.v1.SessionStore":
        raise PermissionDenied(f"{service}: needs full access (the daemon's own token or its Unix socket)")
    if scope.read_only and method not in READS:
        raise PermissionDenied(f"{method}: these credentials may only read")
    if scope.namespaces is None:
        return
    if method in DAEMON_WIDE:
        raise PermissionDenied(f"{method}: looks across every namespace; not for credentials limited to some")
    allowed = scope.namespaces
    _fields(request, "", allowed, default_namespace, namespace_of)


def _fields(request: Any, path: str, allowed: frozenset[str], default: str, namespace_of: NamespaceOf) -> None:
    names = request.DESCRIPTOR.fields_by_name
    sessions = {}
    if "namespace" in names:
        given = request.namespace if request.HasField("namespace") else None
        _within(given, f"{path}namespace", allowed, "name one of your namespaces")
    if "config" in names:
        config = request.config
        own = config.namespace if config.HasField("namespace") else default
        _within(own, f"{path}config.namespace", allowed, "keys are built in a namespace you may not use")
    if "selector" in names:  # an unset one too: it must name a namespace
        _fields(request.selector, "selector.", allowed, default, namespace_of)
    if "fence" in names and request.HasField("fence"):
        _fields(request.fence, "fence.", allowed, default, namespace_of)
    for name in KEY_FIELDS:
        if name in names and getattr(request, name):
            _within(keys.namespace_of(getattr(request, name)), f"{path}{name}", allowed, "a key of another namespace")
    if "target_title" in names and request.target_title:
        raise PermissionDenied(f"{path}target_title: looks across every namespace; use target_session_id")
    for name in SESSION_ID_FIELDS:
        if name in names and getattr(request, name):
            sessions[getattr(request, name)] = f"{path}{name}"
    if "session_ids" in names:
        sessions.update({sid: f"{path}session_ids[{i}]" for i, sid in enumerate(request.session_ids)})
    if sessions:
        found = namespace_of(sessions)
        for session_id, field in sessions.items():
            _within(found.get(session_id), field, allowed, "not a session of your namespaces")


def _within(namespace: str | None, field: str, allowed: frozenset[str], why: str) -> None:
    if namespace not in allowed:
        raise PermissionDenied(f"{field}: {why}")


def namespaces(values: Iterable[str], field: str) -> frozenset[str]:
    """A scope's namespaces, each checked as keys name them."""
    return frozenset(keys.checked_namespace(value, f"{field}[{i}]") for i, value in enumerate(values))
