"""The statements of identity links, handoffs and turns, the same in both SQL backends (written
in SQLite's placeholders; ``SessionsTable`` puts in its backend's).

A write that must not lose a race across PostgreSQL daemons (a key's first turn, a user id's
first link) is guarded in SQL: it changes nothing when another transaction got there first, and
``_lost_race`` (the backend's) has the unit of work run again. SQLite has one writer: it never
loses one. Rows the decision read are locked by ``lock`` (PostgreSQL's ``FOR UPDATE`` in writes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sessiond.model import Handoff, IdentityLink, Turn, from_us, to_us
from sessiond.storage.rows import in_namespace, namespace_positional
from sessiond.storage.transcript_table import TranscriptTable

LINK_LIST = "platform, user_id, identity, linked_at"
TURN_LIST = "session_key, owner, token, session_id, started_at, expires_at, running"
COORDINATION_STATEMENTS = {
    "identity_link": f"SELECT {LINK_LIST} FROM identity_links WHERE platform = ? AND user_id = ?",
    # Insert a user id's first link, or move an existing one from the identity the caller read.
    "link": """
        INSERT INTO identity_links (platform, user_id, identity, linked_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (platform, user_id) DO UPDATE SET identity = excluded.identity, linked_at = excluded.linked_at
        WHERE identity_links.identity = ?
        RETURNING identity""",
    "unlink": "DELETE FROM identity_links WHERE platform = ? AND user_id = ? RETURNING identity",
    "links": f"""
        SELECT {LINK_LIST} FROM identity_links
        WHERE identity = coalesce(?, identity) AND (platform, user_id) > (?, ?)
        ORDER BY platform, user_id LIMIT ?""",
    "add_handoff": """
        INSERT INTO handoffs (session_id, from_key, to_key, replaced_session_id, at) VALUES (?, ?, ?, ?, ?)""",
    "handoffs": """
        SELECT from_key, to_key, replaced_session_id, at FROM handoffs WHERE session_id = ? ORDER BY id LIMIT ?""",
    "turn_of": f"SELECT {TURN_LIST} FROM turns WHERE session_key = ?",
    # A new turn: the key's first, or one whose token is past the stored one.
    "begin_turn": f"""
        INSERT INTO turns ({TURN_LIST}, announced) VALUES (?, ?, ?, ?, ?, ?, 1, 0)
        ON CONFLICT (session_key) DO UPDATE SET owner = excluded.owner, token = excluded.token,
            session_id = excluded.session_id, started_at = excluded.started_at, expires_at = excluded.expires_at,
            running = 1, announced = 0
        WHERE turns.token < excluded.token
        RETURNING token""",
    "update_turn": "UPDATE turns SET expires_at = ?, running = ?, announced = 0 WHERE session_key = ? AND token = ?",
    "lapsed_turns": f"""
        SELECT {TURN_LIST} FROM turns WHERE running = 1 AND expires_at <= ? AND (announced = 0 OR ?)
          AND {in_namespace("session_key", "?", "?")}
        ORDER BY expires_at, session_key LIMIT ?""",
    "announced_turn": "UPDATE turns SET announced = 1 WHERE session_key = ? AND token = ?",
    "waiter_seq": "SELECT seq FROM turn_waiters WHERE session_key = ? AND owner = ?",
    "next_waiter_seq": "SELECT coalesce(max(seq), 0) + 1 FROM turn_waiters WHERE session_key = ?",
    "put_waiter": """
        INSERT INTO turn_waiters (session_key, owner, seq, expires_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (session_key, owner) DO UPDATE SET expires_at = excluded.expires_at""",
    "waiters_before": "SELECT count(*) FROM turn_waiters WHERE session_key = ? AND expires_at > ? AND seq < ?",
    "first_waiter": "SELECT owner FROM turn_waiters WHERE session_key = ? AND expires_at > ? ORDER BY seq LIMIT 1",
    "drop_waiter": "DELETE FROM turn_waiters WHERE session_key = ? AND owner = ?",
    "lapsed_waiters": "DELETE FROM turn_waiters WHERE expires_at <= ?",
}


def _link(row: Any) -> IdentityLink:
    platform, user_id, identity, linked_at = row
    return IdentityLink(platform, user_id, identity, from_us(linked_at))


def _turn(row: Any) -> Turn:
    key, owner, token, session_id, started_at, expires_at, running = row
    return Turn(key, owner, int(token), session_id, from_us(started_at), from_us(expires_at), bool(running))


class CoordinationTable(TranscriptTable):
    """Part of a backend's transaction (``SessionsTable`` takes it as a base): links, handoffs, turns."""

    lock: str = ""  # PostgreSQL's writes: " FOR UPDATE"

    def _lost_race(self, what: str) -> None:
        """Another transaction wrote ``what`` meanwhile (PostgreSQL: run the unit of work again)."""
        raise NotImplementedError

    # -- identity links

    def identity_link(self, platform: str, user_id: str) -> IdentityLink | None:
        row = self._one(self.SQL["identity_link"] + self.lock, (platform, user_id))
        return None if row is None else _link(row)

    def link_identity(self, link: IdentityLink, previous: str | None) -> None:
        """Store ``link`` over the user id's link to ``previous`` (None: it had none)."""
        params = (link.platform, link.user_id, link.identity, to_us(link.linked_at), previous or "")
        if self._one(self.SQL["link"], params) is None:
            self._lost_race(f"link of {link.platform}:{link.user_id}")

    def unlink_identity(self, platform: str, user_id: str) -> str | None:
        row = self._one(self.SQL["unlink"], (platform, user_id))
        return None if row is None else str(row[0])

    def identity_links(self, identity: str | None, after: tuple[str, str], limit: int) -> list[IdentityLink]:
        return [_link(row) for row in self._execute(self.SQL["links"], (identity, *after, limit))]

    # -- handoffs

    def add_handoff(self, session_id: str, handoff: Handoff) -> None:
        at = to_us(handoff.at)
        params = (session_id, handoff.from_session_key, handoff.to_session_key, handoff.replaced_session_id, at)
        self._execute(self.SQL["add_handoff"], params)

    def handoffs(self, session_id: str, limit: int) -> list[Handoff]:
        rows = self._execute(self.SQL["handoffs"], (session_id, limit))
        return [Handoff(from_key, to_key, replaced, from_us(at)) for from_key, to_key, replaced, at in rows]

    # -- turns

    def turn_of(self, session_key: str) -> Turn | None:
        row = self._one(self.SQL["turn_of"] + self.lock, (session_key,))
        return None if row is None else _turn(row)

    def begin_turn(self, turn: Turn) -> None:
        """Store a new turn of its key, whose token must be past the stored one's."""
        at = (to_us(turn.started_at), to_us(turn.expires_at))
        if self._one(self.SQL["begin_turn"], (turn.session_key, turn.owner, turn.token, turn.session_id, *at)) is None:
            self._lost_race(f"turn of {turn.session_key}")

    def update_turn(self, turn: Turn) -> None:
        """A renewal or an end of the key's newest turn (found by its token)."""
        params = (to_us(turn.expires_at), int(turn.running), turn.session_key, turn.token)
        self._execute(self.SQL["update_turn"], params)

    def lapsed_turns(
        self, now: datetime, limit: int, unannounced_only: bool, namespace: str | None = None
    ) -> list[Turn]:
        params = (to_us(now), not unannounced_only, *namespace_positional(namespace), limit)
        return [_turn(row) for row in self._execute(self.SQL["lapsed_turns"], params)]

    def mark_turn_announced(self, turn: Turn) -> None:
        self._execute(self.SQL["announced_turn"], (turn.session_key, turn.token))

    def queue_position(self, session_key: str, owner: str, expires_at: datetime, now: datetime) -> int:
        """Put ``owner`` in line for the key (or keep its place, now living until ``expires_at``): its
        place among the live waiters, 1 for the next."""
        found = self._one(self.SQL["waiter_seq"], (session_key, owner))
        seq = found[0] if found is not None else self._one(self.SQL["next_waiter_seq"], (session_key,))[0]
        self._execute(self.SQL["put_waiter"], (session_key, owner, seq, to_us(expires_at)))
        return int(self._one(self.SQL["waiters_before"], (session_key, to_us(now), seq))[0]) + 1

    def first_waiter(self, session_key: str, now: datetime) -> str | None:
        row = self._one(self.SQL["first_waiter"], (session_key, to_us(now)))
        return None if row is None else str(row[0])

    def drop_waiter(self, session_key: str, owner: str) -> None:
        self._execute(self.SQL["drop_waiter"], (session_key, owner))

    def drop_lapsed_waiters(self, now: datetime) -> None:
        self._execute(self.SQL["lapsed_waiters"], (to_us(now),))
