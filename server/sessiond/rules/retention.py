"""The transcript retention policy: after how many days without activity sessions are archived
and deleted, by default and per platform or chat type (a platform's wins over a chat type's,
as reset policies do), and what it never touches (titled sessions, unless told otherwise;
leased ones, always: storage never selects those)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sessiond.model import ActivityCutoffs

Action = Literal["archive", "delete"]
ACTIONS: tuple[Action, ...] = ("archive", "delete")  # in the order a policy applies them


@dataclass(frozen=True)
class RetentionDays:
    """Days without activity before a session is archived, and deleted; 0 is never."""

    archive_after_days: int = 0
    delete_after_days: int = 0

    def days(self, action: Action) -> int:
        return self.archive_after_days if action == "archive" else self.delete_after_days


@dataclass(frozen=True)
class RetentionPolicy:
    default: RetentionDays = RetentionDays()
    platforms: Mapping[str, RetentionDays] = field(default_factory=dict)
    chat_types: Mapping[str, RetentionDays] = field(default_factory=dict)
    keep_titled: bool = True

    def acts(self, action: Action) -> bool:
        """Whether any of its policies ever archives (or deletes)."""
        every = (self.default, *self.platforms.values(), *self.chat_types.values())
        return any(days.days(action) > 0 for days in every)


def cutoffs(policy: RetentionPolicy, action: Action, now: datetime) -> ActivityCutoffs:
    """Per policy, the instant before which a session's last activity makes it due (None: never)."""

    def cutoff(days: RetentionDays) -> datetime | None:
        return now - timedelta(days=days.days(action)) if days.days(action) > 0 else None

    return ActivityCutoffs(
        default=cutoff(policy.default),
        platforms={name: cutoff(days) for name, days in policy.platforms.items()},
        chat_types={name: cutoff(days) for name, days in policy.chat_types.items()},
    )
