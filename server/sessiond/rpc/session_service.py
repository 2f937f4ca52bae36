"""The SessionStore servicer: protobuf in, domain calls, protobuf out (``rpc.framework`` maps
the errors and decides where each call runs).

RPCs not implemented here answer UNIMPLEMENTED (the generated base class does that).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sessiond.errors import InvalidArgument
from sessiond.model import Entry, Fence, HomeChannel, Limits, Source, cursor_of
from sessiond.rpc import convert
from sessiond.rpc.framework import Response, Runtime, blocking_rpc, rpc, stream
from sessiond.rules import identities, keys, prompt, whatsapp
from sessiond.rules.platforms import Platforms
from sessiond.rules.settings import Settings
from sessiond.store.bulk import BulkResult
from sessiond.store.session_store import SessionStore
from sessiond.store.watch import EventFeed
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import session_store_pb2_grpc

LIST_PAGE = (100, 1000)  # default and maximum entries per page
TRANSCRIPT_PAGE = (1000, 10000)  # default and maximum messages per page
TRANSCRIPT_PAGE_BYTES = 3 * 1024 * 1024  # under the 4 MiB a gRPC client accepts by default
Item = TypeVar("Item")
SEARCH_PAGE = (20, 100)  # default and maximum sessions or hits per page
MAX_REWIND_TURNS = 1000


def _entries_page(entries: list[Entry], size: int) -> tuple[list[Any], str]:
    """The page's entries and the token of the next page (empty on the last)."""
    page = entries[:size]
    more = len(entries) > size
    token = convert.page_token(list(cursor_of(page[-1]))) if more else ""
    return [convert.entry_to_proto(entry) for entry in page], token


def _bulk_fields(done: BulkResult) -> dict[str, Any]:
    return {
        "session_ids": done.session_ids,
        "messages": done.messages,
        "remaining": done.remaining,
        "remaining_messages": done.remaining_messages,
        "session_keys": done.session_keys,
    }


def _fill_page(page: Any, items: list[Item], to_proto: Callable[[Item], Any]) -> None:
    """Append ``items`` to the repeated field ``page`` as protobuf, in order, until the next would take
    the page past ``TRANSCRIPT_PAGE_BYTES`` (the first always goes in)."""
    page_bytes = 0
    for item in items:
        wire = to_proto(item)
        page_bytes += wire.ByteSize() + 8  # + the field's tag and length
        if page and page_bytes > TRANSCRIPT_PAGE_BYTES:
            return
        page.append(wire)


@dataclass(frozen=True)
class Connected:
    """The platforms the daemon's gateway is connected to and their home channels: what
    BuildSessionContext tells the agent when the request does not say."""

    platforms: tuple[str, ...] = ()
    home_channels: Mapping[str, HomeChannel] = field(default_factory=dict)


class SessionStoreService(session_store_pb2_grpc.SessionStoreServicer):
    """sessiond.v1.SessionStore: protobuf to domain calls and back."""

    SERVICE = "sessiond.v1.SessionStore"

    def __init__(self, store: SessionStore, runtime: Runtime, limits: Limits, connected: Connected):
        self.store, self.runtime, self.limits, self.connected = store, runtime, limits, connected
        self.max_bytes = limits.max_field_bytes
        self.events = EventFeed(store, runtime.threads)

    def _settings(self, request: Any) -> Settings:
        """The daemon's rule settings, with its namespace's and the parts the gateway sent in ``config``."""
        sent = convert.gateway_config(request.config, self.max_bytes) if request.HasField("config") else None
        return self.store.settings.with_sent(sent)

    def _source(self, request: Any, settings: Settings) -> Source:
        if not request.HasField("source"):
            raise InvalidArgument("source", "required")
        return convert.source(request.source, settings.platforms, self.max_bytes)

    def _key(self, request: Any, name: str = "session_key") -> str:
        value: str = getattr(request, name)
        if not value:
            raise InvalidArgument(name, "required")
        convert.check_sizes(request, "", (name,), self.max_bytes)
        return value

    def _title(self, request: Any, name: str = "title") -> str | None:
        """A title the request carries (``None`` when an optional one is unset), bounded in size."""
        if request.DESCRIPTOR.fields_by_name[name].has_presence and not request.HasField(name):
            return None
        convert.check_sizes(request, "", (name,), self.max_bytes)
        value: str = getattr(request, name)
        return value

    @staticmethod
    def _version(request: Any) -> int | None:
        return request.expected_version if request.HasField("expected_version") else None

    def _fence(self, request: Any) -> Fence | None:
        return convert.fence(request.fence, self.max_bytes) if request.HasField("fence") else None

    def _runtime_platforms(
        self, request: pb.BuildSessionContextRequest, platforms: Platforms
    ) -> tuple[tuple[str, ...], dict[str, HomeChannel]]:
        """Connected platforms and home channels: the request's when it sends them."""
        if not request.HasField("platforms"):
            return self.connected.platforms, dict(self.connected.home_channels)
        given = request.platforms
        connected = tuple(
            platforms.resolve(name, f"platforms.connected_platforms[{i}]")
            for i, name in enumerate(given.connected_platforms)
        )
        homes = (
            convert.home_channel(home, platforms, self.max_bytes, f"platforms.home_channels[{i}]")
            for i, home in enumerate(given.home_channels)
        )
        return connected, {home.platform: home for home in homes}

    @rpc
    def BuildSessionKey(self, request: pb.BuildSessionKeyRequest, deadline: float | None) -> pb.BuildSessionKeyResponse:
        settings = self._settings(request)
        source = self._source(request, settings)
        options = settings.key_options
        return pb.BuildSessionKeyResponse(
            session_key=self.store.session_key(source, settings),
            shared_multi_user_session=keys.is_shared_multi_user(source, options),
            description=prompt.describe(source),
        )

    @rpc
    def BuildSessionContext(
        self, request: pb.BuildSessionContextRequest, deadline: float | None
    ) -> pb.BuildSessionContextResponse:
        settings = self._settings(request)
        if request.HasField("context"):
            for name in ("source", "entry", "platforms"):
                if request.HasField(name):
                    raise InvalidArgument(name, "must be unset when a context is given")
            built = convert.context(request.context, settings.platforms, self.max_bytes)
        else:
            source = self._source(request, settings)
            entry = convert.entry_ref(request.entry, self.max_bytes) if request.HasField("entry") else None
            connected, homes = self._runtime_platforms(request, settings.platforms)
            built = prompt.build_context(source, settings.key_options, connected, homes, entry)
        text = prompt.build_prompt(built, settings.platforms, settings.prompt, request.redact_pii)
        return pb.BuildSessionContextResponse(context=convert.context_to_proto(built), prompt=text)

    @rpc
    def CheckReset(self, request: pb.CheckResetRequest, deadline: float | None) -> pb.CheckResetResponse:
        settings = self._settings(request)
        if not request.HasField("updated_at"):
            raise InvalidArgument("updated_at", "required")
        convert.check_sizes(request, "", ("platform", "chat_type"), self.max_bytes)
        platform = settings.platforms.resolve(request.platform, "platform") if request.HasField("platform") else None
        chat_type = request.chat_type if request.HasField("chat_type") else None
        updated_at = convert.timestamp(request.updated_at, "updated_at")
        if not 1 < updated_at.year < 9999:  # the policy's arithmetic must stay within datetime's range
            raise InvalidArgument("updated_at", "must be between the years 2 and 9998")
        reason = self.store.check_reset(updated_at, platform, chat_type, settings)
        return pb.CheckResetResponse(reason=reason)

    @rpc
    def ResolveWhatsAppIdentifier(
        self, request: pb.ResolveWhatsAppIdentifierRequest, deadline: float | None
    ) -> pb.ResolveWhatsAppIdentifierResponse:
        settings = self._settings(request)
        convert.check_sizes(request, "", ("identifier",), self.max_bytes)
        normalized = whatsapp.normalize(request.identifier)
        if request.normalize_only:
            return pb.ResolveWhatsAppIdentifierResponse(normalized=normalized)
        try:
            canonical = whatsapp.canonical(request.identifier, settings.mapped)
        except whatsapp.UnsafeIdentifier as exc:
            raise InvalidArgument("identifier", str(exc)) from None
        return pb.ResolveWhatsAppIdentifierResponse(normalized=normalized, canonical=canonical)

    # -- the store ----------------------------------------------------------------------

    def _entry_response(self, response: type[Response], entry: Entry, **fields: Any) -> Response:
        return response(entry=convert.entry_to_proto(entry), **fields)  # type: ignore[call-arg]

    @rpc
    def GetOrCreateSession(
        self, request: pb.GetOrCreateSessionRequest, deadline: float | None
    ) -> pb.GetOrCreateSessionResponse:
        settings = self._settings(request)
        source = self._source(request, settings)
        entry, created = self.store.get_or_create(
            source, request.force_new, deadline, settings, request.active_process, self._title(request)
        )
        policy = settings.policy_for(source.platform, source.chat_type, entry.reset_policy)
        return self._entry_response(
            pb.GetOrCreateSessionResponse, entry, created=created, policy=convert.policy_to_proto(policy)
        )

    @rpc
    def GetSession(self, request: pb.GetSessionRequest, deadline: float | None) -> pb.GetSessionResponse:
        return self._entry_response(pb.GetSessionResponse, self.store.get(self._key(request)))

    @rpc
    def UpdateSession(self, request: pb.UpdateSessionRequest, deadline: float | None) -> pb.UpdateSessionResponse:
        last_prompt = None
        if request.HasField("last_prompt_tokens"):
            last_prompt = convert.non_negative(request.last_prompt_tokens, "last_prompt_tokens")
        convert.check_sizes(request, "", ("cost_status",), self.max_bytes)
        entry = self.store.update(
            self._key(request),
            last_prompt_tokens=last_prompt,
            usage=convert.usage(request.usage),
            cost_status=request.cost_status if request.HasField("cost_status") else None,
            expected_version=self._version(request),
            deadline=deadline,
            is_fresh_reset=request.is_fresh_reset if request.HasField("is_fresh_reset") else None,
            clear_auto_reset=request.clear_auto_reset,
            keep_updated_at=request.keep_updated_at,
            fence=self._fence(request),
        )
        return self._entry_response(pb.UpdateSessionResponse, entry)

    @rpc
    def SuspendSession(self, request: pb.SuspendSessionRequest, deadline: float | None) -> pb.SuspendSessionResponse:
        entry = self.store.suspend(self._key(request), self._version(request), deadline)
        return self._entry_response(pb.SuspendSessionResponse, entry)

    @rpc
    def MarkResumePending(
        self, request: pb.MarkResumePendingRequest, deadline: float | None
    ) -> pb.MarkResumePendingResponse:
        convert.check_sizes(request, "", ("reason",), self.max_bytes)
        reason = request.reason if request.HasField("reason") else "restart_timeout"
        entry = self.store.mark_resume_pending(self._key(request), reason, self._version(request), deadline)
        return self._entry_response(pb.MarkResumePendingResponse, entry)

    @rpc
    def ClearResumePending(
        self, request: pb.ClearResumePendingRequest, deadline: float | None
    ) -> pb.ClearResumePendingResponse:
        cleared, entry = self.store.clear_resume_pending(self._key(request), self._version(request), deadline)
        return self._entry_response(pb.ClearResumePendingResponse, entry, cleared=cleared)

    @blocking_rpc
    def SuspendRecentlyActive(
        self, request: pb.SuspendRecentlyActiveRequest, deadline: float | None
    ) -> pb.SuspendRecentlyActiveResponse:
        seconds = request.max_age_seconds if request.HasField("max_age_seconds") else 120
        seconds = convert.non_negative(seconds, "max_age_seconds", convert.MAX_AGE_SECONDS)
        count = self.store.suspend_recently_active(seconds, deadline, convert.namespace(request))
        return pb.SuspendRecentlyActiveResponse(count=count)

    @rpc
    def ResetSession(self, request: pb.ResetSessionRequest, deadline: float | None) -> pb.ResetSessionResponse:
        entry = self.store.reset(self._key(request), self._version(request), deadline, self._title(request))
        return self._entry_response(pb.ResetSessionResponse, entry)

    @rpc
    def SwitchSession(self, request: pb.SwitchSessionRequest, deadline: float | None) -> pb.SwitchSessionResponse:
        by_title = self._title(request, "target_title")
        if by_title and request.target_session_id:
            raise InvalidArgument("target_title", "set either target_session_id or target_title, not both")
        target = "" if by_title else self._key(request, "target_session_id")
        entry, switched = self.store.switch(
            self._key(request), target, self._version(request), deadline, request.create_session, by_title
        )
        return self._entry_response(pb.SwitchSessionResponse, entry, switched=switched)

    @blocking_rpc
    def PruneOldEntries(self, request: pb.PruneOldEntriesRequest, deadline: float | None) -> pb.PruneOldEntriesResponse:
        days = convert.bounded_days(request.max_age_days, "max_age_days") if request.HasField("max_age_days") else None
        for index, key in enumerate(request.keep_session_keys):
            convert.check_size(key, f"keep_session_keys[{index}]", self.max_bytes)
        pruned = self.store.prune(
            days,
            deadline,
            keep=request.keep_session_keys,
            dry_run=request.dry_run,
            namespace=convert.namespace(request),
        )
        return pb.PruneOldEntriesResponse(count=len(pruned), session_keys=pruned)

    @rpc
    def ListSessions(self, request: pb.ListSessionsRequest, deadline: float | None) -> pb.ListSessionsResponse:
        size = convert.page_size(request.page_size, *LIST_PAGE)
        minutes = None
        if request.HasField("active_minutes"):
            minutes = convert.non_negative(request.active_minutes, "active_minutes", convert.MAX_AGE_MINUTES)
        where = convert.metadata_filters(request.metadata)
        cursor = convert.entry_cursor(request.page_token)
        entries = self.store.list(minutes, size + 1, cursor, where, convert.namespace(request))
        page, token = _entries_page(entries, size)
        return pb.ListSessionsResponse(entries=page, next_page_token=token)

    @rpc
    def HasAnySessions(self, request: pb.HasAnySessionsRequest, deadline: float | None) -> pb.HasAnySessionsResponse:
        return pb.HasAnySessionsResponse(has_any_sessions=self.store.has_any(convert.namespace(request)))

    @rpc
    def ListExpiredSessions(
        self, request: pb.ListExpiredSessionsRequest, deadline: float | None
    ) -> pb.ListExpiredSessionsResponse:
        size = convert.page_size(request.page_size, *LIST_PAGE)
        entries = self.store.list_expired(
            size + 1, convert.entry_cursor(request.page_token), convert.namespace(request)
        )
        page, token = _entries_page(entries, size)
        response = pb.ListExpiredSessionsResponse(entries=page, next_page_token=token)
        if not request.page_token:
            abandoned = self.store.abandoned_turns(size, convert.namespace(request))
            response.abandoned_turns.extend(convert.turn_to_proto(turn) for turn in abandoned)
        return response

    @rpc
    def MarkExpiryFinalized(
        self, request: pb.MarkExpiryFinalizedRequest, deadline: float | None
    ) -> pb.MarkExpiryFinalizedResponse:
        entry = self.store.mark_expiry_finalized(self._key(request), self._key(request, "session_id"), deadline)
        return self._entry_response(pb.MarkExpiryFinalizedResponse, entry)

    @rpc
    def AcquireLease(self, request: pb.AcquireLeaseRequest, deadline: float | None) -> pb.AcquireLeaseResponse:
        ttl = convert.duration(request.ttl, "ttl")
        lease = self.store.acquire_lease(self._key(request), self._key(request, "owner"), ttl, deadline)
        return pb.AcquireLeaseResponse(lease=convert.lease_to_proto(lease))

    @rpc
    def ReleaseLease(self, request: pb.ReleaseLeaseRequest, deadline: float | None) -> pb.ReleaseLeaseResponse:
        released = self.store.release_lease(self._key(request), self._key(request, "owner"), deadline)
        return pb.ReleaseLeaseResponse(released=released)

    @rpc
    def AppendMessages(self, request: pb.AppendMessagesRequest, deadline: float | None) -> pb.AppendMessagesResponse:
        limits = self.limits
        messages = convert.messages(request.messages, limits.max_batch, limits.max_message_bytes)
        result = self.store.append(
            self._key(request, "session_id"), messages, deadline, request.create_session, self._fence(request)
        )
        return pb.AppendMessagesResponse(
            appended=result.appended, duplicates=result.duplicates, message_count=result.message_count
        )

    @rpc
    def RewriteTranscript(
        self, request: pb.RewriteTranscriptRequest, deadline: float | None
    ) -> pb.RewriteTranscriptResponse:
        limits = self.limits
        messages = convert.messages(request.messages, limits.max_transcript_messages, limits.max_message_bytes)
        count = self.store.rewrite(
            self._key(request, "session_id"), messages, deadline, request.create_session, self._fence(request)
        )
        return pb.RewriteTranscriptResponse(message_count=count)

    @rpc
    def LoadTranscript(self, request: pb.LoadTranscriptRequest, deadline: float | None) -> pb.LoadTranscriptResponse:
        size = convert.page_size(request.page_size, *TRANSCRIPT_PAGE)
        hidden = request.include_hidden  # every stored message: pages by offset, not by position
        after = convert.offset_cursor(request.page_token) if hidden else convert.position_cursor(request.page_token)
        loaded = self.store.load(self._key(request, "session_id"), after, size + 1, request.raw, hidden)
        response = pb.LoadTranscriptResponse()
        _fill_page(response.messages, loaded[:size], convert.message_to_proto)
        if len(response.messages) < len(loaded):
            last = after + len(response.messages) if hidden else response.messages[-1].position
            response.next_page_token = convert.page_token(last)
        return response

    # Each of these logs an event under the key pointing at the session: a scan of the entries.

    @blocking_rpc
    def RewindTranscript(
        self, request: pb.RewindTranscriptRequest, deadline: float | None
    ) -> pb.RewindTranscriptResponse:
        turns = convert.bounded(request.turns, "turns", 1, MAX_REWIND_TURNS)
        append = convert.messages(request.append, self.limits.max_batch, self.limits.max_message_bytes, "append")
        done = self.store.rewind(self._key(request, "session_id"), turns, append, deadline, self._fence(request))
        return pb.RewindTranscriptResponse(
            rewind=done.rewind,
            rewound_messages=done.messages,
            visible_messages=done.visible_messages,
            appended=done.appended,
        )

    @blocking_rpc
    def RestoreTranscript(
        self, request: pb.RestoreTranscriptRequest, deadline: float | None
    ) -> pb.RestoreTranscriptResponse:
        rewind = convert.bounded(request.rewind, "rewind", 1) if request.HasField("rewind") else None
        done = self.store.restore(self._key(request, "session_id"), rewind, deadline)
        return pb.RestoreTranscriptResponse(
            rewind=done.rewind, restored_messages=done.messages, visible_messages=done.visible_messages
        )

    @blocking_rpc
    def CompactTranscript(
        self, request: pb.CompactTranscriptRequest, deadline: float | None
    ) -> pb.CompactTranscriptResponse:
        if not request.HasField("summary"):
            raise InvalidArgument("summary", "required")
        first = convert.bounded(request.first_position, "first_position", 0)
        last = convert.bounded(request.last_position, "last_position", 0)
        summary = convert.message(request.summary, self.limits.max_message_bytes, "summary")
        done = self.store.compact(
            self._key(request, "session_id"), first, last, summary, deadline, self._fence(request)
        )
        return pb.CompactTranscriptResponse(
            compaction=done.compaction,
            archived_messages=done.archived_messages,
            summary_position=done.summary_position,
            visible_messages=done.visible_messages,
        )

    @blocking_rpc
    def BranchSession(self, request: pb.BranchSessionRequest, deadline: float | None) -> pb.BranchSessionResponse:
        through = None
        if request.HasField("through_position"):
            through = convert.bounded(request.through_position, "through_position", 0)
        key = self._key(request, "session_key") if request.HasField("session_key") else None
        branch, copied, entry = self.store.branch(
            self._key(request, "session_id"), through, key, self._title(request), deadline
        )
        response = pb.BranchSessionResponse(session_id=branch, copied_messages=copied)
        if entry is not None:
            response.entry.CopyFrom(convert.entry_to_proto(entry))
        return response

    @blocking_rpc  # its event names the key pointing at the session: a scan of the entries (no index on session_id)
    def SetSessionTitle(self, request: pb.SetSessionTitleRequest, deadline: float | None) -> pb.SetSessionTitleResponse:
        title = self.store.set_title(self._key(request, "session_id"), self._title(request) or "", deadline)
        return pb.SetSessionTitleResponse(title=title)

    @rpc
    def GetSessionTitle(self, request: pb.GetSessionTitleRequest, deadline: float | None) -> pb.GetSessionTitleResponse:
        return pb.GetSessionTitleResponse(title=self.store.title(self._key(request, "session_id")))

    @rpc
    def FindSessionByTitle(
        self, request: pb.FindSessionByTitleRequest, deadline: float | None
    ) -> pb.FindSessionByTitleResponse:
        found = self.store.find_by_title(self._key(request, "title"), request.latest_in_lineage)
        return pb.FindSessionByTitleResponse(session_id=found)

    @rpc
    def NextTitleInLineage(
        self, request: pb.NextTitleInLineageRequest, deadline: float | None
    ) -> pb.NextTitleInLineageResponse:
        return pb.NextTitleInLineageResponse(title=self.store.next_title(self._key(request, "title")))

    @rpc
    def GetSessionLineage(
        self, request: pb.GetSessionLineageRequest, deadline: float | None
    ) -> pb.GetSessionLineageResponse:
        lineage = self.store.lineage(self._key(request, "session_id"))
        return pb.GetSessionLineageResponse(
            session=convert.lineage_link_to_proto(lineage.session),
            ancestors=[convert.lineage_link_to_proto(a) for a in lineage.ancestors],
            children=[convert.lineage_link_to_proto(c) for c in lineage.children],
            handoffs=[convert.handoff_to_proto(h) for h in lineage.handoffs],
        )

    @rpc
    def GetLineageTip(self, request: pb.GetLineageTipRequest, deadline: float | None) -> pb.GetLineageTipResponse:
        return pb.GetLineageTipResponse(session_id=self.store.lineage_tip(self._key(request, "session_id")))

    @blocking_rpc  # a short prefix or a metadata filter reads many sessions: never on the event loop
    def SearchSessions(self, request: pb.SearchSessionsRequest, deadline: float | None) -> pb.SearchSessionsResponse:
        size = convert.page_size(request.page_size, *SEARCH_PAGE)
        offset = convert.offset_cursor(request.page_token)
        convert.check_sizes(request, "", ("query", "platform"), self.max_bytes)
        platform = request.platform if request.HasField("platform") else None
        where = convert.metadata_filters(request.metadata)
        found = self.store.search_sessions(
            request.query, platform, offset, size + 1, where, request.include_archived, convert.namespace(request)
        )
        token = convert.page_token(offset + size) if len(found) > size else ""
        return pb.SearchSessionsResponse(
            sessions=[convert.summary_to_proto(s) for s in found[:size]], next_page_token=token
        )

    @blocking_rpc  # ranking a common word's matches is O(matches): never on the event loop
    def SearchMessages(self, request: pb.SearchMessagesRequest, deadline: float | None) -> pb.SearchMessagesResponse:
        size = convert.page_size(request.page_size, *SEARCH_PAGE)
        offset = convert.offset_cursor(request.page_token)
        convert.check_sizes(request, "", ("query",), self.max_bytes)
        where = convert.message_filter(request, self.max_bytes)
        hits, building = self.store.search_messages(
            request.query, where, convert.search_window(request), offset, size + 1, deadline
        )
        response = pb.SearchMessagesResponse(index_building=building)
        _fill_page(response.hits, hits[:size], convert.hit_to_proto)
        if len(response.hits) < len(hits):
            response.next_page_token = convert.page_token(offset + len(response.hits))
        return response

    @rpc
    def UpdateSessionMetadata(
        self, request: pb.UpdateSessionMetadataRequest, deadline: float | None
    ) -> pb.UpdateSessionMetadataResponse:
        entry, changed = self.store.update_metadata(
            self._key(request, "session_key"),
            convert.metadata_changes(request.set, "set"),
            request.remove,
            request.replace,
            self._version(request),
            deadline,
            self._fence(request),
        )
        return pb.UpdateSessionMetadataResponse(entry=convert.entry_to_proto(entry), changed=changed)

    @rpc
    def GetSessionMetadata(
        self, request: pb.GetSessionMetadataRequest, deadline: float | None
    ) -> pb.GetSessionMetadataResponse:
        response = pb.GetSessionMetadataResponse()
        convert.metadata_to_proto(response.metadata, self.store.metadata_of(self._key(request, "session_id")))
        return response

    @blocking_rpc  # a selector may scan the sessions: never on the event loop
    def DeleteSessions(self, request: pb.DeleteSessionsRequest, deadline: float | None) -> pb.DeleteSessionsResponse:
        done = self.store.delete_sessions(
            convert.selector(request.selector, self.max_bytes),
            request.dry_run,
            convert.page_size(request.limit, *LIST_PAGE, path="limit"),
            deadline=deadline,
        )
        return pb.DeleteSessionsResponse(**_bulk_fields(done))

    @blocking_rpc
    def ArchiveSessions(self, request: pb.ArchiveSessionsRequest, deadline: float | None) -> pb.ArchiveSessionsResponse:
        done = self.store.archive_sessions(
            convert.selector(request.selector, self.max_bytes),
            request.dry_run,
            convert.page_size(request.limit, *LIST_PAGE, path="limit"),
            request.unarchive,
            deadline=deadline,
        )
        return pb.ArchiveSessionsResponse(**_bulk_fields(done))

    # -- identity links, handoffs, turns --------------------------------------------------

    def _linked_user(self, request: pb.LinkIdentityRequest | pb.UnlinkIdentityRequest) -> tuple[str, str]:
        if not request.platform:
            raise InvalidArgument("platform", "required")
        convert.check_sizes(request, "", ("platform",), self.max_bytes)
        platform = self.store.settings.platforms.resolve(request.platform, "platform")
        return platform, self._key(request, "user_id")

    @rpc
    def LinkIdentity(self, request: pb.LinkIdentityRequest, deadline: float | None) -> pb.LinkIdentityResponse:
        platform, user_id = self._linked_user(request)
        identity = identities.checked_identity(request.identity, "identity")
        link, previous, changed = self.store.link_identity(platform, user_id, identity, deadline)
        link_proto = convert.identity_link_to_proto(link)
        return pb.LinkIdentityResponse(link=link_proto, previous_identity=previous, changed=changed)

    @rpc
    def UnlinkIdentity(self, request: pb.UnlinkIdentityRequest, deadline: float | None) -> pb.UnlinkIdentityResponse:
        platform, user_id = self._linked_user(request)
        return pb.UnlinkIdentityResponse(identity=self.store.unlink_identity(platform, user_id, deadline))

    @rpc
    def ListIdentityLinks(
        self, request: pb.ListIdentityLinksRequest, deadline: float | None
    ) -> pb.ListIdentityLinksResponse:
        size = convert.page_size(request.page_size, *LIST_PAGE)
        identity = identities.checked_identity(request.identity, "identity") if request.HasField("identity") else None
        links = self.store.identity_links(identity, convert.link_cursor(request.page_token), size + 1)
        response = pb.ListIdentityLinksResponse(links=[convert.identity_link_to_proto(link) for link in links[:size]])
        if len(links) > size:
            response.next_page_token = convert.page_token([links[size - 1].platform, links[size - 1].user_id])
        return response

    @rpc
    def HandoffSession(self, request: pb.HandoffSessionRequest, deadline: float | None) -> pb.HandoffSessionResponse:
        settings = self._settings(request)
        key = self._key(request)
        destination = request.WhichOneof("destination")
        if destination is None:
            raise InvalidArgument("target_session_key", "required (or target_source)")
        target: str | Source = (
            self._key(request, "target_session_key")
            if destination == "target_session_key"
            else convert.source(request.target_source, settings.platforms, self.max_bytes, "target_source")
        )
        entry, replaced = self.store.handoff(
            key, target, settings, request.release_source, self._version(request), deadline
        )
        return self._entry_response(pb.HandoffSessionResponse, entry, replaced_session_id=replaced)

    @rpc
    def BeginTurn(self, request: pb.BeginTurnRequest, deadline: float | None) -> pb.BeginTurnResponse:
        key, owner = self._key(request), self._key(request, "owner")
        ttl = convert.turn_ttl(request.ttl)
        begun = self.store.begin_turn(key, owner, ttl, convert.on_conflict(request.on_conflict), deadline)
        response = pb.BeginTurnResponse(started=begun.started, queue_position=begun.queue_position)
        if begun.turn is not None:
            response.turn.CopyFrom(convert.turn_to_proto(begun.turn))
        if begun.interrupted is not None:
            response.interrupted.CopyFrom(convert.turn_to_proto(begun.interrupted))
        return response

    @rpc
    def RenewTurn(self, request: pb.RenewTurnRequest, deadline: float | None) -> pb.RenewTurnResponse:
        turn = self.store.renew_turn(self._required_fence(request), convert.turn_ttl(request.ttl), deadline)
        return pb.RenewTurnResponse(turn=convert.turn_to_proto(turn))

    @rpc
    def EndTurn(self, request: pb.EndTurnRequest, deadline: float | None) -> pb.EndTurnResponse:
        return pb.EndTurnResponse(ended=self.store.end_turn(self._required_fence(request), deadline))

    def _required_fence(self, request: pb.RenewTurnRequest | pb.EndTurnRequest) -> Fence:
        fence = self._fence(request)
        if fence is None:
            raise InvalidArgument("fence", "required")
        return fence

    @stream
    async def WatchSessionEvents(
        self, request: pb.WatchSessionEventsRequest, deadline: float | None
    ) -> AsyncIterator[pb.WatchSessionEventsResponse]:
        after = convert.non_negative(request.after_sequence, "after_sequence")
        if request.from_now and after:
            raise InvalidArgument("from_now", "cannot be combined with an after_sequence")
        kinds = convert.event_kinds(request.kinds)
        async for page in self.events.follow(after, kinds, request.from_now, convert.namespace(request)):
            events = [convert.event_to_proto(event) for event in page.events]
            yield pb.WatchSessionEventsResponse(events=events, cursor=page.cursor)
