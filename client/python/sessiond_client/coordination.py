"""``SessionStoreClient``'s calls for many agents, many platforms and one turn at a time: identity
links, handoffs and turns (the daemon's LinkIdentity ... EndTurn). A part of the client class,
kept apart so that each concept reads in one place; conversions to and from the wire live here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Literal

from google.protobuf.duration_pb2 import Duration

from sessiond_client import types
from sessiond_client.v1 import session_pb2, source_pb2
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1.session_store_pb2_grpc import SessionStoreStub

OnConflict = Literal["reject", "queue", "interrupt"]
ON_CONFLICT = {
    "reject": pb.TURN_CONFLICT_REJECT,
    "queue": pb.TURN_CONFLICT_QUEUE,
    "interrupt": pb.TURN_CONFLICT_INTERRUPT,
}


def fence_to_proto(turn: types.Turn | None) -> pb.TurnFence | None:
    """The fence a write of ``turn`` carries (None: an unfenced write)."""
    return None if turn is None else pb.TurnFence(session_key=turn.session_key, fencing_token=turn.fencing_token)


def ttl_to_proto(seconds: float) -> Duration:
    ttl = Duration()
    ttl.FromTimedelta(timedelta(seconds=seconds))
    return ttl


Times = Callable[[Any, str], Any]  # a message's set timestamp field as a datetime


def turn_from_proto(message: pb.Turn, time: Times) -> types.Turn:
    return types.Turn(
        session_key=message.session_key,
        owner=message.owner,
        fencing_token=message.fencing_token,
        session_id=message.session_id if message.HasField("session_id") else None,
        started_at=time(message, "started_at"),
        expires_at=time(message, "expires_at"),
    )


def turn_begun_from_proto(response: pb.BeginTurnResponse, time: Times) -> types.TurnBegun:
    return types.TurnBegun(
        started=response.started,
        turn=turn_from_proto(response.turn, time) if response.HasField("turn") else None,
        queue_position=response.queue_position,
        interrupted=turn_from_proto(response.interrupted, time) if response.HasField("interrupted") else None,
    )


def begin_turn_request(
    session_key: str, owner: str, ttl_seconds: float, on_conflict: OnConflict
) -> pb.BeginTurnRequest:
    return pb.BeginTurnRequest(
        session_key=session_key, owner=owner, ttl=ttl_to_proto(ttl_seconds), on_conflict=ON_CONFLICT[on_conflict]
    )


class CoordinationCalls:
    """Part of ``SessionStoreClient``: needs its ``_call``, stubs, ``_config`` and conversions."""

    namespace: str | None
    _stub: SessionStoreStub
    _single_attempt_stub: SessionStoreStub
    _call: Callable[..., Any]
    _pages: Callable[..., Iterator[Any]]
    _config: Callable[[], pb.GatewayConfig | None]
    _entry: Callable[[session_pb2.SessionEntry], types.SessionEntry]
    _time: Times
    _source: Callable[[object], source_pb2.SessionSource]

    # -- identity links (the operator's: they need full access)

    def link_identity(self, platform: str, user_id: str, identity: str) -> tuple[types.IdentityLink, str | None]:
        """Links a platform user id to ``identity``: with links on, its DMs share the identity's key
        (``agent:<namespace>:identity:dm:<identity>``) with every id linked to it. (the link, the
        identity it had before, if another)."""
        request = pb.LinkIdentityRequest(platform=platform, user_id=user_id, identity=identity)
        response = self._call(self._stub.LinkIdentity, request)
        previous = response.previous_identity if response.HasField("previous_identity") else None
        return self._identity_link(response.link), previous

    def unlink_identity(self, platform: str, user_id: str) -> str | None:
        """Removes the user id's link (its next DM goes to its platform's key; history stays); the
        identity it had, or None when it had no link."""
        response = self._call(self._stub.UnlinkIdentity, pb.UnlinkIdentityRequest(platform=platform, user_id=user_id))
        return response.identity if response.HasField("identity") else None

    def list_identity_links(self, identity: str | None = None) -> list[types.IdentityLink]:
        """Every link (only ``identity``'s when given), by platform, then user id."""
        listing = self._pages(self._stub.ListIdentityLinks, pb.ListIdentityLinksRequest(identity=identity))
        return [self._identity_link(link) for page in listing for link in page.links]

    def _identity_link(self, message: pb.IdentityLink) -> types.IdentityLink:
        return types.IdentityLink(message.platform, message.user_id, message.identity, self._time(message, "linked_at"))

    # -- handoff

    def handoff_session(
        self,
        session_key: str,
        *,
        target_session_key: str | None = None,
        target_source: object = None,
        release_source: bool = False,
        expected_version: int | None = None,
    ) -> tuple[types.SessionEntry, str | None]:
        """Continues the key's current session in another chat: ``target_source`` (a source, keyed
        as its messages would be) or ``target_session_key``. The destination's former session ends
        ("handoff"); ``release_source`` also takes the session from the source key. (the
        destination's entry, its former session id). FailedPreconditionError across namespaces."""
        if (target_session_key is None) == (target_source is None):
            raise TypeError("handoff_session needs exactly one of target_session_key and target_source")
        request = pb.HandoffSessionRequest(
            session_key=session_key,
            config=self._config(),
            release_source=release_source,
            expected_version=expected_version,
        )
        if target_session_key is not None:
            request.target_session_key = target_session_key
        else:
            request.target_source.CopyFrom(self._source(target_source))
        response = self._call(self._single_attempt_stub.HandoffSession, request)
        replaced = response.replaced_session_id if response.HasField("replaced_session_id") else None
        return self._entry(response.entry), replaced

    # -- turns

    def begin_turn(
        self, session_key: str, owner: str, ttl_seconds: float, *, on_conflict: OnConflict = "reject"
    ) -> types.TurnBegun:
        """Begins the agent's turn on the key. While another owner's turn runs: "reject" (not
        started), "queue" (not started; ``queue_position`` says where; call again when the turn
        ends) or "interrupt" (its writes are refused from now on). Pass the turn as ``fence=`` to
        the turn's writes: once a newer turn began they raise ConflictError and write nothing."""
        request = begin_turn_request(session_key, owner, ttl_seconds, on_conflict)
        return turn_begun_from_proto(self._call(self._single_attempt_stub.BeginTurn, request), self._time)

    def renew_turn(self, turn: types.Turn, ttl_seconds: float) -> types.Turn:
        """The turn, living ``ttl_seconds`` from now; ConflictError when it ended or a newer one began."""
        request = pb.RenewTurnRequest(fence=fence_to_proto(turn), ttl=ttl_to_proto(ttl_seconds))
        return self._turn(self._call(self._stub.RenewTurn, request).turn)

    def end_turn(self, turn: types.Turn) -> bool:
        """Ends the turn; False when it had ended already or a newer one began."""
        return bool(self._call(self._stub.EndTurn, pb.EndTurnRequest(fence=fence_to_proto(turn))).ended)

    def list_abandoned_turns(self) -> list[types.Turn]:
        """Turns whose owner let their time to live pass without ending them (it died): resume each
        with ``begin_turn``. In this client's namespace when it has one."""
        request = pb.ListExpiredSessionsRequest(page_size=1000, namespace=self.namespace)
        return [self._turn(turn) for turn in self._call(self._stub.ListExpiredSessions, request).abandoned_turns]

    def _turn(self, message: pb.Turn) -> types.Turn:
        return turn_from_proto(message, self._time)

    def _handoff(self, message: pb.Handoff) -> types.Handoff:
        replaced = message.replaced_session_id if message.HasField("replaced_session_id") else None
        return types.Handoff(message.from_session_key, message.to_session_key, replaced, self._time(message, "time"))
