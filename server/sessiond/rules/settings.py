"""The rules' settings for one call: the daemon's configuration, or what the calling gateway sent.

A gateway's store used to read its own config object on every call (isolation flags, the reset
policy of the source, plugin platforms, the WhatsApp mapping directory, prompt facts). A gateway
on sessiond sends those with the call (``GatewayConfig`` on the wire, ``Sent`` here); every part
it leaves out falls back to its namespace's ``[namespaces.<name>]`` table, then to the daemon's
TOML configuration. Pure values: no gRPC, no SQL.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from sessiond.model import KeyOptions, ResetPolicies, ResetPolicy
from sessiond.rules.lid_mapping import MappingDirectory
from sessiond.rules.platforms import Platforms
from sessiond.rules.prompt import PromptOptions
from sessiond.rules.whatsapp import MappedValues, no_mapping


@dataclass(frozen=True)
class Sent:
    """What a gateway sent with a call; ``None`` (or empty) parts are the daemon's."""

    key_options: KeyOptions | None = None
    reset_policy: ResetPolicy | None = None
    max_age_days: int | None = None
    plugins: Mapping[str, bool] = field(default_factory=dict)
    whatsapp_mapping_dir: str | None = None
    prompt: PromptOptions | None = None
    namespace: str | None = None
    link_identities: bool | None = None


@dataclass(frozen=True)
class Profile:
    """``[namespaces.<name>]``: what one agent namespace (a profile) configures for itself.

    Hermes profiles each had their own config (isolation flags, reset policies, home); on one
    daemon they keep them. ``None`` parts are the daemon's.
    """

    key_options: KeyOptions | None = None
    policies: ResetPolicies | None = None
    max_age_days: int | None = None
    prompt: PromptOptions | None = None
    link_identities: bool | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the rules and the store consult for one call."""

    key_options: KeyOptions
    platforms: Platforms
    mapped: MappedValues
    prompt: PromptOptions
    policies: ResetPolicies
    host_zone: tzinfo
    reset_policy: ResetPolicy | None = None  # the gateway's policy for this call's source
    max_age_days: int | None = None  # the gateway's, when it sent one
    namespace: str = "main"  # the agent namespace of the keys it builds (``keys.DEFAULT_NAMESPACE``)
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    namespace_policies: ResetPolicies | None = None  # the call's namespace's own, when it has some
    link_identities: bool = False  # DM keys of linked user ids converge (``rules.identities``)

    def chosen_policy(self, platform: str | None, chat_type: str | None) -> ResetPolicy | None:
        """The policy this call chooses for a key: the gateway's, else its namespace's (None: neither)."""
        if self.reset_policy is not None:
            return self.reset_policy
        return self.namespace_policies.for_session(platform, chat_type) if self.namespace_policies else None

    def policy_for(self, platform: str | None, chat_type: str | None, kept: ResetPolicy | None = None) -> ResetPolicy:
        """The policy that governs a key: the one this call chooses, else the one its entry kept
        from the gateway that last used it (``kept``), else the daemon's."""
        return self.chosen_policy(platform, chat_type) or kept or self.policies.for_session(platform, chat_type)

    def zone(self, policy: ResetPolicy) -> tzinfo:
        """Where a policy's daily reset hour is read: its named zone, else the daemon host's."""
        return zone_named(policy.time_zone) if policy.time_zone else self.host_zone

    def with_sent(self, sent: Sent | None) -> Settings:
        """These settings with a gateway's parts in place of its namespace's, and those in place of
        the daemon's."""
        namespace = (sent.namespace if sent else None) or self.namespace
        profile = self.profiles.get(namespace)
        if sent is None and profile is None:
            return self
        sent, profile = sent or Sent(), profile or Profile()
        return replace(
            self,
            key_options=sent.key_options or profile.key_options or self.key_options,
            platforms=self.platforms.with_plugins(sent.plugins) if sent.plugins else self.platforms,
            mapped=mapping(sent.whatsapp_mapping_dir) if sent.whatsapp_mapping_dir is not None else self.mapped,
            prompt=sent.prompt or profile.prompt or self.prompt,
            reset_policy=sent.reset_policy,
            max_age_days=profile.max_age_days if sent.max_age_days is None else sent.max_age_days,
            namespace=namespace,
            namespace_policies=profile.policies,
            link_identities=_first(sent.link_identities, profile.link_identities, self.link_identities),
        )


def _first(*values: bool | None) -> bool:
    return next(value for value in values if value is not None)


def mapping(directory: str | Path | None) -> MappedValues:
    """``mapped`` for the WhatsApp rules: a LID-mapping directory's files, or none."""
    return MappingDirectory(Path(directory)) if directory else no_mapping  # as given: "~" means no one here


@functools.lru_cache(maxsize=64)
def zone_named(name: str) -> tzinfo:
    """An IANA zone, cached (names are checked where they enter: config and requests)."""
    return ZoneInfo(name)
