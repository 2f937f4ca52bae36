"""The gRPC servicer: protobuf in, domain calls, protobuf out; errors mapped once, here.

RPCs not implemented here answer UNIMPLEMENTED (the generated base class does that).
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sessiond import convert, keys, prompt
from sessiond.config import Config
from sessiond.errors import (
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SessiondError,
    StorageError,
)
from sessiond.model import Entry, HomeChannel
from sessiond.storage import cursor_of
from sessiond.store import SessionStore
from sessiond.v1 import session_store_pb2 as pb
from sessiond.v1 import session_store_pb2_grpc

log = logging.getLogger("sessiond.rpc")

Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, grpc.ServicerContext], Response]

STATUS = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.ABORTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    StorageError: grpc.StatusCode.UNAVAILABLE,
}
LIST_PAGE = (100, 1000)  # default and maximum entries per page
TRANSCRIPT_PAGE = (1000, 10000)  # default and maximum messages per page
TRANSCRIPT_PAGE_BYTES = 3 * 1024 * 1024  # under the 4 MiB a gRPC client accepts by default


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == "x-request-id" and isinstance(value, str) and 0 < len(value) <= 64:
            return value
    return uuid.uuid4().hex[:16]


def _invalid_argument(exc: InvalidArgument) -> status_pb2.Status:
    violation = error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.reason)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(exc), details=[detail])


def rpc(handler: Handler[Request, Response]) -> Handler[Request, Response]:
    """Log one structured line per call and turn domain errors into statuses.

    Unexpected exceptions become INTERNAL with the request id, never a stack trace.
    """
    method = handler.__name__

    @functools.wraps(handler)
    def wrapper(self: Any, request: Request, context: grpc.ServicerContext) -> Response:
        request_id = _request_id(context)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return handler(self, request, context)
        except InvalidArgument as exc:
            code = grpc.StatusCode.INVALID_ARGUMENT
            context.abort_with_status(rpc_status.to_status(_invalid_argument(exc)))
        except SessiondError as exc:
            code = next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), grpc.StatusCode.INTERNAL)
            context.abort(code, str(exc))
        except Exception:
            if context.code() is not None:  # aborted by the handler itself
                code = context.code()
                raise
            code = grpc.StatusCode.INTERNAL
            log.exception("rpc failed", extra={"method": method, "request_id": request_id})
            context.abort(code, f"internal error (request {request_id})")
        finally:  # successes at debug level: a line per call costs more than the call at info
            log.log(
                logging.DEBUG if code == grpc.StatusCode.OK else logging.INFO,
                "rpc",
                extra={
                    "method": method,
                    "code": code.name,
                    "request_id": request_id,
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
        raise AssertionError("unreachable")  # pragma: no cover - abort always raises

    return wrapper


def _deadline(context: grpc.ServicerContext) -> float | None:
    """The caller's deadline on the ``time.monotonic()`` clock, if it set one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _entries_page(entries: list[Entry], size: int) -> tuple[list[Any], str]:
    """The page's entries and the token of the next page (empty on the last)."""
    page = entries[:size]
    more = len(entries) > size
    token = convert.page_token(list(cursor_of(page[-1]))) if more else ""
    return [convert.entry_to_proto(entry) for entry in page], token


class SessionStoreService(session_store_pb2_grpc.SessionStoreServicer):
    """sessiond.v1.SessionStore: protobuf to domain calls and back."""

    def __init__(self, config: Config, store: SessionStore):
        self.config = config
        self.store = store
        self.max_bytes = config.limits.max_field_bytes
        self.mapped = store.mapped

    def _source(self, request: Any) -> Any:
        if not request.HasField("source"):
            raise InvalidArgument("source", "required")
        return convert.source(request.source, self.config.platforms, self.max_bytes)

    def _key(self, request: Any, name: str = "session_key") -> str:
        value: str = getattr(request, name)
        if not value:
            raise InvalidArgument(name, "required")
        convert.check_sizes(request, "", (name,), self.max_bytes)
        return value

    @staticmethod
    def _version(request: Any) -> int | None:
        return request.expected_version if request.HasField("expected_version") else None

    def _runtime_platforms(
        self, request: pb.BuildSessionContextRequest
    ) -> tuple[tuple[str, ...], dict[str, HomeChannel]]:
        """Connected platforms and home channels: the request's when it sends them."""
        if not request.HasField("platforms"):
            return self.config.connected_platforms, dict(self.config.home_channels)
        given, platforms = request.platforms, self.config.platforms
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
    def BuildSessionKey(
        self, request: pb.BuildSessionKeyRequest, context: grpc.ServicerContext
    ) -> pb.BuildSessionKeyResponse:
        source = self._source(request)
        options = self.config.key_options
        return pb.BuildSessionKeyResponse(
            session_key=keys.build_session_key(source, options, self.mapped),
            shared_multi_user_session=keys.is_shared_multi_user(source, options),
            description=prompt.describe(source),
        )

    @rpc
    def BuildSessionContext(
        self, request: pb.BuildSessionContextRequest, context: grpc.ServicerContext
    ) -> pb.BuildSessionContextResponse:
        source = self._source(request)
        entry = convert.entry_ref(request.entry, self.max_bytes) if request.HasField("entry") else None
        connected, homes = self._runtime_platforms(request)
        built = prompt.build_context(source, self.config.key_options, connected, homes, entry)
        text = prompt.build_prompt(built, self.config.platforms, self.config.prompt, request.redact_pii)
        return pb.BuildSessionContextResponse(context=convert.context_to_proto(built), prompt=text)

    # -- the store ----------------------------------------------------------------------

    def _entry_response(self, response: type[Response], entry: Entry, **fields: Any) -> Response:
        return response(entry=convert.entry_to_proto(entry), **fields)  # type: ignore[call-arg]

    @rpc
    def GetOrCreateSession(
        self, request: pb.GetOrCreateSessionRequest, context: grpc.ServicerContext
    ) -> pb.GetOrCreateSessionResponse:
        source = self._source(request)
        entry, created = self.store.get_or_create(source, request.force_new, _deadline(context))
        policy = self.store.policy_for(source.platform, source.chat_type)
        return self._entry_response(
            pb.GetOrCreateSessionResponse, entry, created=created, policy=convert.policy_to_proto(policy)
        )

    @rpc
    def GetSession(self, request: pb.GetSessionRequest, context: grpc.ServicerContext) -> pb.GetSessionResponse:
        return self._entry_response(pb.GetSessionResponse, self.store.get(self._key(request)))

    @rpc
    def UpdateSession(
        self, request: pb.UpdateSessionRequest, context: grpc.ServicerContext
    ) -> pb.UpdateSessionResponse:
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
            deadline=_deadline(context),
        )
        return self._entry_response(pb.UpdateSessionResponse, entry)

    @rpc
    def SuspendSession(
        self, request: pb.SuspendSessionRequest, context: grpc.ServicerContext
    ) -> pb.SuspendSessionResponse:
        entry = self.store.suspend(self._key(request), self._version(request), _deadline(context))
        return self._entry_response(pb.SuspendSessionResponse, entry)

    @rpc
    def MarkResumePending(
        self, request: pb.MarkResumePendingRequest, context: grpc.ServicerContext
    ) -> pb.MarkResumePendingResponse:
        convert.check_sizes(request, "", ("reason",), self.max_bytes)
        reason = request.reason if request.HasField("reason") else "restart_timeout"
        entry = self.store.mark_resume_pending(self._key(request), reason, self._version(request), _deadline(context))
        return self._entry_response(pb.MarkResumePendingResponse, entry)

    @rpc
    def ClearResumePending(
        self, request: pb.ClearResumePendingRequest, context: grpc.ServicerContext
    ) -> pb.ClearResumePendingResponse:
        cleared, entry = self.store.clear_resume_pending(self._key(request), self._version(request), _deadline(context))
        return self._entry_response(pb.ClearResumePendingResponse, entry, cleared=cleared)

    @rpc
    def SuspendRecentlyActive(
        self, request: pb.SuspendRecentlyActiveRequest, context: grpc.ServicerContext
    ) -> pb.SuspendRecentlyActiveResponse:
        seconds = request.max_age_seconds if request.HasField("max_age_seconds") else 120
        seconds = convert.non_negative(seconds, "max_age_seconds", convert.MAX_AGE_SECONDS)
        count = self.store.suspend_recently_active(seconds, _deadline(context))
        return pb.SuspendRecentlyActiveResponse(count=count)

    @rpc
    def ResetSession(self, request: pb.ResetSessionRequest, context: grpc.ServicerContext) -> pb.ResetSessionResponse:
        entry = self.store.reset(self._key(request), self._version(request), _deadline(context))
        return self._entry_response(pb.ResetSessionResponse, entry)

    @rpc
    def SwitchSession(
        self, request: pb.SwitchSessionRequest, context: grpc.ServicerContext
    ) -> pb.SwitchSessionResponse:
        target = self._key(request, "target_session_id")
        entry, switched = self.store.switch(self._key(request), target, self._version(request), _deadline(context))
        return self._entry_response(pb.SwitchSessionResponse, entry, switched=switched)

    @rpc
    def PruneOldEntries(
        self, request: pb.PruneOldEntriesRequest, context: grpc.ServicerContext
    ) -> pb.PruneOldEntriesResponse:
        days = request.max_age_days if request.HasField("max_age_days") else None
        if days is not None and days > convert.MAX_AGE_DAYS:  # <= 0 disables pruning, as the reference
            raise InvalidArgument("max_age_days", f"must be at most {convert.MAX_AGE_DAYS}")
        return pb.PruneOldEntriesResponse(count=self.store.prune(days, _deadline(context)))

    @rpc
    def ListSessions(self, request: pb.ListSessionsRequest, context: grpc.ServicerContext) -> pb.ListSessionsResponse:
        size = convert.page_size(request.page_size, *LIST_PAGE)
        minutes = None
        if request.HasField("active_minutes"):
            minutes = convert.non_negative(request.active_minutes, "active_minutes", convert.MAX_AGE_MINUTES)
        entries = self.store.list(minutes, size + 1, convert.entry_cursor(request.page_token))
        page, token = _entries_page(entries, size)
        return pb.ListSessionsResponse(entries=page, next_page_token=token)

    @rpc
    def HasAnySessions(
        self, request: pb.HasAnySessionsRequest, context: grpc.ServicerContext
    ) -> pb.HasAnySessionsResponse:
        return pb.HasAnySessionsResponse(has_any_sessions=self.store.has_any())

    @rpc
    def ListExpiredSessions(
        self, request: pb.ListExpiredSessionsRequest, context: grpc.ServicerContext
    ) -> pb.ListExpiredSessionsResponse:
        size = convert.page_size(request.page_size, *LIST_PAGE)
        entries = self.store.list_expired(size + 1, convert.entry_cursor(request.page_token))
        page, token = _entries_page(entries, size)
        return pb.ListExpiredSessionsResponse(entries=page, next_page_token=token)

    @rpc
    def MarkExpiryFinalized(
        self, request: pb.MarkExpiryFinalizedRequest, context: grpc.ServicerContext
    ) -> pb.MarkExpiryFinalizedResponse:
        entry = self.store.mark_expiry_finalized(
            self._key(request), self._key(request, "session_id"), _deadline(context)
        )
        return self._entry_response(pb.MarkExpiryFinalizedResponse, entry)

    @rpc
    def AcquireLease(self, request: pb.AcquireLeaseRequest, context: grpc.ServicerContext) -> pb.AcquireLeaseResponse:
        ttl = convert.duration(request.ttl, "ttl")
        lease = self.store.acquire_lease(self._key(request), self._key(request, "owner"), ttl, _deadline(context))
        return pb.AcquireLeaseResponse(lease=convert.lease_to_proto(lease))

    @rpc
    def ReleaseLease(self, request: pb.ReleaseLeaseRequest, context: grpc.ServicerContext) -> pb.ReleaseLeaseResponse:
        released = self.store.release_lease(self._key(request), self._key(request, "owner"), _deadline(context))
        return pb.ReleaseLeaseResponse(released=released)

    @rpc
    def AppendMessages(
        self, request: pb.AppendMessagesRequest, context: grpc.ServicerContext
    ) -> pb.AppendMessagesResponse:
        limits = self.config.limits
        messages = convert.messages(request.messages, limits.max_batch, limits.max_message_bytes)
        result = self.store.append(self._key(request, "session_id"), messages, _deadline(context))
        return pb.AppendMessagesResponse(
            appended=result.appended, duplicates=result.duplicates, message_count=result.message_count
        )

    @rpc
    def RewriteTranscript(
        self, request: pb.RewriteTranscriptRequest, context: grpc.ServicerContext
    ) -> pb.RewriteTranscriptResponse:
        limits = self.config.limits
        messages = convert.messages(request.messages, limits.max_transcript_messages, limits.max_message_bytes)
        count = self.store.rewrite(self._key(request, "session_id"), messages, _deadline(context))
        return pb.RewriteTranscriptResponse(message_count=count)

    @rpc
    def LoadTranscript(
        self, request: pb.LoadTranscriptRequest, context: grpc.ServicerContext
    ) -> pb.LoadTranscriptResponse:
        size = convert.page_size(request.page_size, *TRANSCRIPT_PAGE)
        after = convert.position_cursor(request.page_token)
        loaded = self.store.load(self._key(request, "session_id"), after, size + 1, request.raw)
        response, page_bytes = pb.LoadTranscriptResponse(), 0
        for message in loaded[:size]:
            wire = convert.message_to_proto(message)
            page_bytes += wire.ByteSize() + 8  # + the field's tag and length
            if response.messages and page_bytes > TRANSCRIPT_PAGE_BYTES:
                break
            response.messages.append(wire)
        if len(response.messages) < len(loaded):
            response.next_page_token = convert.page_token(response.messages[-1].position)
        return response
