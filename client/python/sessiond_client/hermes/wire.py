"""The drop-in's connection to its daemon and what it sends: the gateway's config, as it reads it.

The reference read its gateway's config object on every call; the drop-in reads the same
attributes and methods on every call and sends them (``sessiond.v1.GatewayConfig``), so a change
of the gateway's config applies at once, and two gateways with different configs can share one
daemon. Which daemon: ``address``, else ``SESSIOND_ADDRESS``, else the one serving the sessions
directory on this host (``local_daemon``: started when none runs).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from sessiond_client import errors, local_daemon
from sessiond_client.channel import open_channel
from sessiond_client.hermes import host
from sessiond_client.store_client import IDEMPOTENT_METHODS, channel_options
from sessiond_client.v1 import session_pb2
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub

Response = TypeVar("Response")
RESET_MODES = {
    "daily": session_pb2.RESET_MODE_DAILY,
    "idle": session_pb2.RESET_MODE_IDLE,
    "both": session_pb2.RESET_MODE_BOTH,
    "none": session_pb2.RESET_MODE_NONE,
}
TIMEOUT = 10.0


class Connection:
    """One daemon, reached lazily: the first call finds (or starts) it, later calls reuse the channel."""

    def __init__(self, address: str | None, sessions_dir: Path | None):
        self._address = address or os.environ.get("SESSIOND_ADDRESS") or None
        self._sessions_dir = sessions_dir
        self._lock = threading.Lock()
        self._stub: SessionStoreStub | None = None

    def _target(self) -> str:
        if self._address:
            return self._address
        assert self._sessions_dir is not None
        return local_daemon.ensure(self._sessions_dir)

    @property
    def local(self) -> bool:
        return not self._address

    def stub(self) -> SessionStoreStub:
        with self._lock:
            if self._stub is None:
                channel = open_channel(self._target(), channel_options(IDEMPOTENT_METHODS))
                self._stub = SessionStoreStub(channel)
            return self._stub

    def call(self, method: Callable[[SessionStoreStub], Callable[..., Response]], request: object) -> Response:
        """One RPC; a daemon of the sessions directory that went away is started again, once."""
        try:
            return self._call(method, request)
        except errors.UnavailableError:
            if not self.local:
                raise
            assert self._sessions_dir is not None
            local_daemon.ensure(self._sessions_dir)
            # The channel may still be backing off from the refused connection: wait for it.
            return self._call(method, request, wait_for_ready=True)

    def _call(
        self,
        method: Callable[[SessionStoreStub], Callable[..., Response]],
        request: object,
        wait_for_ready: bool | None = None,
    ) -> Response:
        try:
            return method(self.stub())(request, timeout=TIMEOUT, wait_for_ready=wait_for_ready)
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from error


_default: Connection | None = None
_default_lock = threading.Lock()


def default_connection() -> Connection:
    """For the module-level functions: the last store's daemon, else ``SESSIOND_ADDRESS``, else the
    daemon of the host's default sessions directory (``$HERMES_HOME/sessions``)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Connection(None, host.hermes_home() / "sessions")
        return _default


def set_default(connection: Connection) -> None:
    global _default
    with _default_lock:
        _default = connection


def policy_to_proto(policy: Any) -> session_pb2.ResetPolicy:
    """A ``SessionResetPolicy``; a mode the reference did not know never resets, as there.

    The daily hour is the gateway's local time, as the reference's ``datetime.now()`` was.
    """
    return session_pb2.ResetPolicy(
        mode=RESET_MODES.get(str(policy.mode), session_pb2.RESET_MODE_NONE),
        at_hour=int(policy.at_hour),
        idle_minutes=int(policy.idle_minutes),
        notify=bool(policy.notify),
        notify_exclude_platforms=[str(p) for p in policy.notify_exclude_platforms],
        time_zone=host.local_zone(),
    )


def key_options(group_sessions_per_user: bool, thread_sessions_per_user: bool) -> pb.KeyOptions:
    return pb.KeyOptions(
        group_sessions_per_user=bool(group_sessions_per_user), thread_sessions_per_user=bool(thread_sessions_per_user)
    )


def config_key_options(config: Any) -> pb.KeyOptions:
    """The isolation flags as the reference read them (missing attributes take its defaults)."""
    return key_options(
        getattr(config, "group_sessions_per_user", True), getattr(config, "thread_sessions_per_user", False)
    )


def host_config(options: pb.KeyOptions | None = None, namespace: str | None = None) -> pb.GatewayConfig:
    """What the host contributes to every call: its profile's namespace (``namespace`` when the
    gateway named one), plugins, the WhatsApp mapping, the prompt's facts."""
    return pb.GatewayConfig(
        namespace=namespace or host.namespace(),
        key_options=options,
        plugin_platforms=[pb.PluginPlatform(name=name, pii_safe=safe) for name, safe in host.plugins()],
        whatsapp_mapping_dir=host.whatsapp_mapping_dir(),
        prompt=pb.PromptOptions(agent_home=host.display_home(), discord_tools=host.discord_tools()),
    )


def store_config(config: Any, source: Any = None, namespace: str | None = None) -> pb.GatewayConfig:
    """The gateway's config for a store call: the host's part, the isolation flags, the maximum
    age, and the reset policy the config gives the source's platform and chat type."""
    message = host_config(config_key_options(config), namespace)
    max_age = getattr(config, "session_store_max_age_days", None)
    if max_age is not None:
        message.max_age_days = int(max_age)
    if source is not None and hasattr(config, "get_reset_policy"):
        policy = config.get_reset_policy(platform=source.platform, session_type=source.chat_type)
        message.reset_policy.CopyFrom(policy_to_proto(policy))
    return message
