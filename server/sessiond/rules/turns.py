"""One turn at a time per session key: who may begin one while another runs. Pure: the store
reads the key's newest turn and its line of waiters, asks ``decide``, and writes what it says.

A turn is live until it ends, is replaced, or its time to live passes (its owner died: the turn
is abandoned, and the next begin takes the key). A free key goes to the first live waiter in
line, so that queued callers are served in order; an interrupt jumps the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sessiond.model import Turn

OnConflict = Literal["reject", "queue", "interrupt"]
MAX_TTL = timedelta(days=1)


@dataclass(frozen=True)
class Decision:
    """``begin`` the caller's turn now (ending ``ends``, for ``reason``), or not (``wait`` in line)."""

    begin: bool
    ends: Turn | None = None
    reason: str | None = None  # "interrupted" (another owner's turn) or "replaced" (the owner's own)
    wait: bool = False


def decide(
    current: Turn | None, owner: str, on_conflict: OnConflict, first_waiter: str | None, now: datetime
) -> Decision:
    """What a BeginTurn of ``owner`` does, given the key's newest turn and the first live waiter."""
    if current is not None and current.live(now):
        if current.owner == owner:
            return Decision(True, current, "replaced")  # a restarted loop of the same owner
        if on_conflict == "interrupt":
            return Decision(True, current, "interrupted")
        return Decision(False, wait=on_conflict == "queue")
    if first_waiter not in (None, owner) and on_conflict != "interrupt":
        return Decision(False, wait=on_conflict == "queue")  # the free key is the first waiter's
    return Decision(True)
