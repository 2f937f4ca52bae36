"""Reset decisions: is a session stale, and why ("idle" or "daily")?

Times are aware datetimes; ``now`` is passed in. The daily boundary is the policy's
``at_hour`` in its time zone (the reference used the host's naive local time, which this
reproduces when the zone is the host's). Idle time is elapsed time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from sessiond.model import ResetPolicy


def last_daily_reset(now: datetime, at_hour: int, zone: tzinfo) -> datetime:
    """The most recent ``at_hour:00`` wall-clock time in ``zone`` at or before ``now``."""
    local = now.astimezone(zone).replace(tzinfo=None)
    boundary = local.replace(hour=at_hour, minute=0, second=0, microsecond=0)
    if local.hour < at_hour:
        boundary -= timedelta(days=1)
    return boundary.replace(tzinfo=zone).astimezone(UTC)


def reset_reason(policy: ResetPolicy, zone: tzinfo, updated_at: datetime, now: datetime) -> str | None:
    """``"idle"``, ``"daily"`` or ``None`` for a session last active at ``updated_at``."""
    if policy.mode in ("idle", "both") and now > updated_at + timedelta(minutes=policy.idle_minutes):
        return "idle"
    if policy.mode in ("daily", "both") and updated_at < last_daily_reset(now, policy.at_hour, zone):
        return "daily"
    return None


def expiry_cutoff(policy: ResetPolicy, zone: tzinfo, now: datetime) -> datetime | None:
    """The instant before which a last activity means "expired" (``None``: never expires).

    ``reset_reason`` is not None exactly when ``updated_at < expiry_cutoff(...)``, which lets
    storage find expired sessions with one indexed range per policy.
    """
    cutoffs = []
    if policy.mode in ("idle", "both"):
        cutoffs.append(now - timedelta(minutes=policy.idle_minutes))
    if policy.mode in ("daily", "both"):
        cutoffs.append(last_daily_reset(now, policy.at_hour, zone))
    return max(cutoffs, default=None)
