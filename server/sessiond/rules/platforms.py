"""Platform names: the built-in ones, the deployment's plugin platforms, and which are PII safe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sessiond.errors import InvalidArgument, shown

BUILTIN = frozenset(
    {
        "local",
        "telegram",
        "discord",
        "whatsapp",
        "whatsapp_cloud",
        "slack",
        "signal",
        "mattermost",
        "matrix",
        "homeassistant",
        "email",
        "sms",
        "dingtalk",
        "api_server",
        "webhook",
        "msgraph_webhook",
        "feishu",
        "wecom",
        "wecom_callback",
        "weixin",
        "bluebubbles",
        "qqbot",
        "yuanbao",
        "relay",
    }
)

# Platforms without an in-message mention system that needs raw ids, so the prompt may hash
# them (Discord is left out: mentions are ``<@user_id>``).
PII_SAFE_BUILTIN = frozenset({"whatsapp", "signal", "telegram", "bluebubbles"})


@dataclass(frozen=True)
class Platforms:
    """The platforms a deployment accepts: the built-in ones plus its plugins.

    ``plugins`` maps a lower-case plugin name to whether it is PII safe.
    """

    plugins: Mapping[str, bool] = field(default_factory=dict)

    def resolve(self, name: str, field_name: str) -> str:
        """The canonical name of a platform, or ``InvalidArgument`` naming ``field_name``.

        As the reference: an exact name wins, otherwise it is stripped and lower-cased.
        """
        if name in BUILTIN or name in self.plugins:
            return name
        folded = name.strip().lower()
        if folded and (folded in BUILTIN or folded in self.plugins):
            return folded
        raise InvalidArgument(field_name, f"unknown platform {shown(name)} (not built in, not a configured plugin)")

    def with_plugins(self, plugins: Mapping[str, bool]) -> Platforms:
        """These platforms and a gateway's plugins (its word on PII safety wins for its names)."""
        return Platforms({**self.plugins, **plugins})

    def is_pii_safe(self, platform: str) -> bool:
        return platform in PII_SAFE_BUILTIN or bool(self.plugins.get(platform))
