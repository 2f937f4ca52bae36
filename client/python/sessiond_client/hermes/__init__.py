"""The Hermes gateway's session module over sessiond: ``from sessiond_client.hermes import *``.

A Hermes deployment replaces the body of its ``gateway/session.py`` with that one line. The
public names, signatures, defaults, return values and dict formats are the reference's; every
decision (keys, the sharing flag, prompt text, reset decisions, canonical WhatsApp ids, store
behaviour) is the daemon's, asked over the wire: this package converts and never decides. The
one rule computed here is ``SessionSource.description``, which the reference computes without a
store (tests hold it equal to the daemon's).

``Platform``, ``GatewayConfig``, ``SessionResetPolicy`` and ``HomeChannel`` are the host's own
(``gateway.config``) when it has them, as the reference re-exported them.
"""

from __future__ import annotations

from typing import Any

from sessiond_client import errors
from sessiond_client.hermes import host, wire
from sessiond_client.hermes.host import GatewayConfig, HomeChannel, Platform, SessionResetPolicy
from sessiond_client.hermes.model import SessionContext, SessionEntry, SessionSource, home_dict
from sessiond_client.hermes.store import SessionStore
from sessiond_client.store_client import datetime_to_proto, source_to_proto
from sessiond_client.types import platform_value
from sessiond_client.v1 import session_pb2, source_pb2
from sessiond_client.v1 import session_store_pb2 as pb

__all__ = [
    "GatewayConfig",
    "HomeChannel",
    "Platform",
    "SessionContext",
    "SessionEntry",
    "SessionResetPolicy",
    "SessionSource",
    "SessionStore",
    "build_session_context",
    "build_session_context_prompt",
    "build_session_key",
    "canonical_whatsapp_identifier",
    "is_shared_multi_user_session",
    "normalize_whatsapp_identifier",
]


def _key(source: Any, group_sessions_per_user: bool, thread_sessions_per_user: bool) -> pb.BuildSessionKeyResponse:
    options = wire.key_options(group_sessions_per_user, thread_sessions_per_user)
    request = pb.BuildSessionKeyRequest(source=source_to_proto(source), config=wire.host_config(options))
    return wire.default_connection().call(lambda s: s.BuildSessionKey, request)


def build_session_key(source: Any, group_sessions_per_user: bool = True, thread_sessions_per_user: bool = False) -> str:
    """The session key of a message's source: ``agent:main:<platform>:<chat type>:...``."""
    return _key(source, group_sessions_per_user, thread_sessions_per_user).session_key


def is_shared_multi_user_session(
    source: Any, *, group_sessions_per_user: bool = True, thread_sessions_per_user: bool = False
) -> bool:
    """True when several participants share the source's session.

    The daemon decides it by the key's own rule; the reference disagreed with its key for a
    thread when only ``thread_sessions_per_user`` was on (see the README).
    """
    return bool(_key(source, group_sessions_per_user, thread_sessions_per_user).shared_multi_user_session)


def _home_channels(config: Any, connected: list[Any]) -> dict[str, Any]:
    homes = {}
    for platform in connected:
        home = config.get_home_channel(platform)
        if home:
            homes[platform_value(platform)] = home
    return homes


def _home_to_proto(home: Any) -> source_pb2.HomeChannel:
    data = home_dict(home)
    return source_pb2.HomeChannel(
        platform=data["platform"], chat_id=str(data["chat_id"]), name=str(home.name),
        **{key: str(data[key]) for key in ("thread_id", "user_id", "scope_id") if data.get(key)},
    )  # fmt: skip


def build_session_context(source: Any, config: Any, session_entry: Any = None) -> SessionContext:
    """The context of a source under the gateway's config: its connected platforms and home channels,
    and whether the session is shared (the daemon's answer)."""
    connected = list(config.get_connected_platforms())
    homes = _home_channels(config, connected)
    request = pb.BuildSessionContextRequest(
        source=source_to_proto(source),
        platforms=pb.RuntimePlatforms(
            connected_platforms=[platform_value(p) for p in connected],
            home_channels=[_home_to_proto(home) for home in homes.values()],
        ),
        config=wire.host_config(wire.config_key_options(config)),
    )
    answer = wire.default_connection().call(lambda s: s.BuildSessionContext, request).context
    by_name = {platform_value(p): p for p in connected}
    context = SessionContext(
        source=source,
        connected_platforms=[by_name.get(name, host.platform(name)) for name in answer.connected_platforms],
        home_channels={
            by_name.get(h.platform, host.platform(h.platform)): homes[h.platform] for h in answer.home_channels
        },
        shared_multi_user_session=answer.shared_multi_user_session,
    )
    if session_entry:
        context.session_key = session_entry.session_key
        context.session_id = session_entry.session_id
        context.created_at = session_entry.created_at
        context.updated_at = session_entry.updated_at
    return context


def build_session_context_prompt(context: Any, *, redact_pii: bool = False) -> str:
    """The "## Current Session Context" section of the system prompt, for this context as it is."""
    given = session_pb2.SessionContext(
        source=source_to_proto(context.source),
        connected_platforms=[platform_value(p) for p in context.connected_platforms],
        home_channels=[_home_to_proto(home) for home in context.home_channels.values()],
        shared_multi_user_session=bool(context.shared_multi_user_session),
        session_key=context.session_key or "",
        session_id=context.session_id or "",
    )
    for name in ("created_at", "updated_at"):
        if getattr(context, name, None):
            getattr(given, name).CopyFrom(datetime_to_proto(getattr(context, name)))
    request = pb.BuildSessionContextRequest(context=given, redact_pii=redact_pii, config=wire.host_config())
    return wire.default_connection().call(lambda s: s.BuildSessionContext, request).prompt


def _whatsapp(value: Any, normalize_only: bool = False) -> pb.ResolveWhatsAppIdentifierResponse:
    request = pb.ResolveWhatsAppIdentifierRequest(
        identifier=str(value or ""), config=wire.host_config(), normalize_only=normalize_only
    )
    try:
        return wire.default_connection().call(lambda s: s.ResolveWhatsAppIdentifier, request)
    except errors.InvalidArgumentError as exc:  # the reference failed here with ValueError too
        raise ValueError(exc.details) from None


def normalize_whatsapp_identifier(value: Any) -> str:
    """``+``, device suffix and domain removed: ``+1555:47@s.whatsapp.net`` is ``1555``."""
    return _whatsapp(value, normalize_only=True).normalized


def canonical_whatsapp_identifier(value: Any) -> str:
    """The shortest alias of a WhatsApp identity through the bridge's LID mapping files."""
    return _whatsapp(value).canonical
