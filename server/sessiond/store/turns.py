"""Turns (BeginTurn, RenewTurn, EndTurn) and the fence every fenced write passes.

Each key's newest turn is one row whose token only grows; a write carrying a ``Fence`` reads
that row in its own transaction (locked, on PostgreSQL) and is refused (``Conflict``, ABORTED)
unless its token is the newest, so a stale agent loop's write never lands after a newer turn
began. Turns whose owner died are announced by the daemon's sweep (TURN_EXPIRED) and listed with
the expired sessions, for the gateway to resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sessiond.errors import Conflict, shown
from sessiond.model import Entry, Event, EventKind, Fence, Turn
from sessiond.rules import keys
from sessiond.rules import turns as rules
from sessiond.storage.interface import Storage, Transaction

Deadline = float | None
SWEEP_BATCH = 500  # lapsed turns announced per transaction


@dataclass(frozen=True)
class TurnBegun:
    """What BeginTurn did: ``turn`` is the caller's new one when ``started``, else the live one."""

    started: bool
    turn: Turn | None
    queue_position: int = 0
    interrupted: Turn | None = None


def fenced(tx: Transaction, fence: Fence | None) -> Turn | None:
    """Refuse a write whose fence is not the newest turn of its key; that turn (None: no fence)."""
    if fence is None:
        return None
    newest = tx.turn_of(fence.session_key)
    if newest is None:
        raise Conflict(f"fence.fencing_token: no turn began on {shown(fence.session_key)}")
    if newest.token != fence.token:
        raise Conflict(f"fence.fencing_token: turn {newest.token} began after turn {fence.token}: it is stale")
    return newest


class Turns:
    """Part of ``SessionStore``: needs its ``storage`` and ``clock``."""

    storage: Storage
    clock: Callable[[], datetime]

    def begin_turn(
        self, session_key: str, owner: str, ttl: timedelta, on_conflict: rules.OnConflict, deadline: Deadline = None
    ) -> TurnBegun:
        def work(tx: Transaction) -> TurnBegun:
            now = self.clock()
            current = tx.turn_of(session_key)
            decision = rules.decide(current, owner, on_conflict, tx.first_waiter(session_key, now), now)
            if not decision.begin:
                position = tx.queue_position(session_key, owner, now + ttl, now) if decision.wait else 0
                running = current if current is not None and current.live(now) else None
                return TurnBegun(False, running, position)
            entry = tx.get_entry(session_key)
            token = (current.token if current else 0) + 1
            turn = Turn(session_key, owner, token, entry.session_id if entry else None, now, now + ttl)
            if decision.ends is not None:
                self._turn_event(tx, "turn_interrupted", decision.ends, entry, reason=decision.reason)
            tx.begin_turn(turn)
            tx.drop_waiter(session_key, owner)
            self._turn_event(tx, "turn_started", turn, entry)
            return TurnBegun(True, turn, interrupted=decision.ends)

        return self.storage.write(work, deadline)

    def renew_turn(self, fence: Fence, ttl: timedelta, deadline: Deadline = None) -> Turn:
        def work(tx: Transaction) -> Turn:
            current = fenced(tx, fence)
            assert current is not None  # a fence was given
            if not current.running:
                raise Conflict(f"fence.fencing_token: turn {fence.token} ended")
            turn = replace(current, expires_at=self.clock() + ttl)
            tx.update_turn(turn)
            return turn

        return self.storage.write(work, deadline)

    def end_turn(self, fence: Fence, deadline: Deadline = None) -> bool:
        """End the turn; False when it had ended, or a newer one began."""

        def work(tx: Transaction) -> bool:
            current = tx.turn_of(fence.session_key)
            if current is None or current.token != fence.token or not current.running:
                return False
            tx.update_turn(replace(current, running=False))
            self._turn_event(tx, "turn_ended", current, tx.get_entry(current.session_key))
            return True

        return self.storage.write(work, deadline)

    def abandoned_turns(self, limit: int, namespace: str | None = None) -> list[Turn]:
        """Running turns past their time to live, soonest lapsed first."""
        now = self.clock()
        return self.storage.read(lambda tx: tx.lapsed_turns(now, limit, False, keys.scope_prefix(namespace)))

    def announce_lapsed_turns(self) -> int:
        """The daemon's sweep: a TURN_EXPIRED event for each turn that lapsed, once; waiters gone."""

        def work(tx: Transaction) -> int:
            now = self.clock()
            lapsed = tx.lapsed_turns(now, SWEEP_BATCH, True)
            for turn in lapsed:
                self._turn_event(tx, "turn_expired", turn, tx.get_entry(turn.session_key))
                tx.mark_turn_announced(turn)
            tx.drop_lapsed_waiters(now)
            return len(lapsed)

        announced = 0
        while (batch := self.storage.write(work)) > 0:
            announced += batch
            if batch < SWEEP_BATCH:
                break
        return announced

    def _turn_event(self, tx: Transaction, kind: EventKind, turn: Turn, entry: Entry | None, **fields: Any) -> None:
        """An event of the turn, naming the session its key (``entry``, read by the caller) points at."""
        session_id, version = (entry.session_id, entry.version) if entry else (turn.session_id or "", 0)
        event = Event(kind, turn.session_key, session_id, version, lease_owner=turn.owner, fencing_token=turn.token)
        tx.add_event(replace(event, **fields), self.clock())
