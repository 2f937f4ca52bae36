"""Identity links: platform user ids that are one person, so that their DMs are one conversation.

With links on (``link_identities``, off by default: a deliberate difference from the reference),
a DM from a linked user id is keyed by its identity, ``agent:<namespace>:identity:dm:<identity>``,
whatever the platform; the platform slot of the key reads ``identity``. Only DMs converge: a
group's session belongs to the group. Pure values: no gRPC, no SQL.
"""

from __future__ import annotations

import re

from sessiond.errors import InvalidArgument
from sessiond.model import Source

IDENTITY_PLATFORM = "identity"  # the platform part of a linked DM's key
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}")


def checked_identity(identity: str, field: str) -> str:
    if not _IDENTITY.fullmatch(identity):
        raise InvalidArgument(
            field, "an identity is 1-128 letters, digits and '._@+-', starting with a letter or digit"
        )
    return identity


def linked_user(source: Source) -> tuple[str, str] | None:
    """The platform user id a DM is linked by: its ``user_id``, else its chat id (a DM's chat is its
    user on most platforms); None for a source that is no DM."""
    if source.chat_type != "dm":
        return None
    return source.platform, source.user_id or source.chat_id


def shown(platform: str, user_id: str) -> str:
    """``telegram:12345``: how events and the admin command name a linked user id."""
    return f"{platform}:{user_id}"
