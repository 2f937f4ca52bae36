"""Session keys: which conversation a message belongs to.

The key is the gateway's and the agent's name for a conversation, so it must equal the
reference's byte for byte: ``agent:main:<platform>:<chat type>:<chat>[:<thread>][:<participant>]``.
``main`` is the agent namespace (profile): later versions of the reference stamp the profile
there, and so does sessiond when a gateway or the configuration names one.
"""

from __future__ import annotations

import re

from sessiond.errors import InvalidArgument
from sessiond.model import KeyOptions, Source
from sessiond.rules.identities import IDENTITY_PLATFORM
from sessiond.rules.whatsapp import MappedValues, UnsafeIdentifier, canonical

DEFAULT_NAMESPACE = "main"
_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def checked_namespace(namespace: str, field: str) -> str:
    if not _NAMESPACE.fullmatch(namespace):
        raise InvalidArgument(field, "a namespace is 1-64 lower-case letters, digits, '_' and '-'")
    return namespace


def namespace_of(session_key: str) -> str | None:
    """``research`` for ``agent:research:...``; None for a key of no namespace."""
    agent, _, rest = session_key.partition(":")
    namespace, found, _ = rest.partition(":")
    return namespace if agent == "agent" and found else None


def namespace_prefix(namespace: str) -> str:
    """What every key of the namespace starts with."""
    return f"agent:{namespace}:"


def scope_prefix(namespace: str | None) -> str | None:
    """The key prefix a call scoped to ``namespace`` compares with (None: every key)."""
    return None if namespace is None else namespace_prefix(namespace)


def isolates_participant(source: Source, options: KeyOptions) -> bool:
    """Whether a non-DM key gets a participant part: groups per user, threads shared unless asked."""
    if source.thread_id and not options.thread_sessions_per_user:
        return False
    return options.group_sessions_per_user


def is_shared_multi_user(source: Source, options: KeyOptions) -> bool:
    """True when several participants share the session.

    Decided by the same rule as the key (deliberate difference: the reference says
    "not shared" for threads when ``group_sessions_per_user`` is off and
    ``thread_sessions_per_user`` on, although their key holds no participant).
    """
    return source.chat_type != "dm" and not isolates_participant(source, options)


def _whatsapp_canonical(value: str, field_name: str, mapped: MappedValues) -> str:
    try:
        return canonical(value, mapped)
    except UnsafeIdentifier as exc:
        raise InvalidArgument(field_name, str(exc)) from None


def build_session_key(
    source: Source,
    options: KeyOptions,
    mapped: MappedValues,
    namespace: str = DEFAULT_NAMESPACE,
    identity: str | None = None,
    path: str = "source",
) -> str:
    """The session key of a message's source (``source.platform`` already canonical); ``identity``:
    the one its DM's user id is linked to, when links are on (``rules.identities``); ``path``: the
    source's field in the request, which errors name."""
    whatsapp = source.platform == "whatsapp"
    agent = f"agent:{namespace}"
    if source.chat_type == "dm" and identity:
        return ":".join(part for part in (agent, IDENTITY_PLATFORM, "dm", identity, source.thread_id) if part)
    if source.chat_type == "dm":
        chat = _whatsapp_canonical(source.chat_id, f"{path}.chat_id", mapped) if whatsapp else source.chat_id
        parts = [agent, source.platform, "dm", chat, source.thread_id]
        return ":".join(part for part in parts if part)

    participant = source.user_id_alt or source.user_id
    if participant and whatsapp:
        field_name = f"{path}.user_id_alt" if source.user_id_alt else f"{path}.user_id"
        participant = _whatsapp_canonical(participant, field_name, mapped) or participant
    # The chat type is always a part, even an empty one; the others only when set.
    tail = [part for part in (source.chat_id, source.thread_id) if part]
    if participant and isolates_participant(source, options):
        tail.append(participant)
    return ":".join([agent, source.platform, source.chat_type, *tail])
