"""The gRPC servicer: protobuf in, domain calls, protobuf out; errors mapped once, here.

RPCs not implemented here answer UNIMPLEMENTED (the generated base class does that).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sessiond import convert, keys, prompt, whatsapp
from sessiond.config import Config
from sessiond.errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    SessiondError,
    ShuttingDown,
    StorageError,
)
from sessiond.metrics import Metrics
from sessiond.model import Entry, HomeChannel, Source
from sessiond.platforms import Platforms
from sessiond.settings import Settings
from sessiond.storage import WriterBusy, cursor_of
from sessiond.store import SessionStore
from sessiond.watch import EventFeed
from sessiond_client.v1 import session_store_pb2 as pb
from sessiond_client.v1 import session_store_pb2_grpc

log = logging.getLogger("sessiond.rpc")

Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, float | None], Response]
AsyncHandler = Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Response]]
StreamHandler = Callable[[Any, Request, float | None], AsyncIterator[Response]]
AsyncStreamHandler = Callable[[Any, Request, grpc.aio.ServicerContext], AsyncIterator[Response]]

STATUS = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Conflict: grpc.StatusCode.ABORTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    StorageError: grpc.StatusCode.UNAVAILABLE,
    OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
}
LIST_PAGE = (100, 1000)  # default and maximum entries per page
TRANSCRIPT_PAGE = (1000, 10000)  # default and maximum messages per page
TRANSCRIPT_PAGE_BYTES = 3 * 1024 * 1024  # under the 4 MiB a gRPC client accepts by default


def _request_id(context: grpc.aio.ServicerContext) -> str:
    """The caller's ``x-request-id``, else a new one: asked for only when a line is logged."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and 0 < len(value) <= 64:
            return value
    return uuid.uuid4().hex[:16]


def _invalid_argument(exc: InvalidArgument) -> status_pb2.Status:
    violation = error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=exc.reason)
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
    return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(exc), details=[detail])


@dataclass(frozen=True)
class Unparsable:
    """Request bytes that are not the method's message; answered INVALID_ARGUMENT by ``rpc``.

    Parsing is ours, not grpcio's, so garbage gets the contract's status and a message naming
    the request, instead of grpcio's UNKNOWN and a logged traceback.
    """

    type_name: str


def _parser(message_class: type[Message]) -> Callable[[bytes], Message | Unparsable]:
    def parse(raw: bytes) -> Message | Unparsable:
        try:
            return message_class.FromString(raw)
        except DecodeError:
            return Unparsable(message_class.DESCRIPTOR.full_name)

    return parse


def _status_of(exc: SessiondError) -> grpc.StatusCode:
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), grpc.StatusCode.INTERNAL)


async def _abort_for(context: grpc.aio.ServicerContext, exc: SessiondError) -> NoReturn:
    """End the call with the error's status; INVALID_ARGUMENT carries the field as a BadRequest detail."""
    if isinstance(exc, InvalidArgument):
        status = rpc_status.to_status(_invalid_argument(exc))
        await context.abort(status.code, status.details, status.trailing_metadata)
    await context.abort(_status_of(exc), str(exc))
    raise AssertionError("unreachable")  # pragma: no cover - abort always raises


def _log_abandoned(method: str, request_id: str, work: asyncio.Future[Any]) -> None:
    """How store work ended after its caller went away (cancelled, or its deadline passed)."""
    error = work.exception()
    code = grpc.StatusCode.OK if error is None else grpc.StatusCode.INTERNAL
    if isinstance(error, SessiondError):
        code = _status_of(error)
    log.info("abandoned rpc finished", extra={"method": method, "code": code.name, "request_id": request_id})


@contextlib.asynccontextmanager
async def _handled(
    servicer: Any, method: str, request: object, context: grpc.aio.ServicerContext
) -> AsyncIterator[float | None]:
    """Around every call, unary or streaming: errors become statuses, the metrics, a log line.

    Yields the caller's deadline. Unexpected exceptions become INTERNAL with the request id, never
    a stack trace. Successes are logged at debug level only: a line per call costs more than the call.
    """
    deadline = _deadline(context)
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        if type(request) is Unparsable:
            raise InvalidArgument("request", f"not a valid {request.type_name} message")
        yield deadline
    except SessiondError as exc:
        code = _status_of(exc)
        await _abort_for(context, exc)
    except (asyncio.CancelledError, GeneratorExit):  # GeneratorExit: a stream closed while it waited to send
        late = deadline is not None and time.monotonic() >= deadline
        code = grpc.StatusCode.DEADLINE_EXCEEDED if late else grpc.StatusCode.CANCELLED
        raise
    except Exception:
        code = grpc.StatusCode.INTERNAL
        request_id = _request_id(context)
        log.exception("rpc failed", extra={"method": method, "request_id": request_id})
        await context.abort(code, f"internal error (request {request_id})")
    finally:
        seconds = time.perf_counter() - started
        servicer.metrics.observe(method, code.name, seconds)
        level = logging.DEBUG if code is grpc.StatusCode.OK else logging.INFO
        if log.isEnabledFor(level):
            milliseconds = round(seconds * 1000, 3)
            fields = {"method": method, "code": code.name, "request_id": _request_id(context), "ms": milliseconds}
            log.log(level, "rpc", extra=fields)


def rpc(handler: Handler[Request, Response]) -> AsyncHandler[Request, Response]:
    """Run a handler inside ``_handled``: on the event loop when the storage can (its writes are
    committed with the rest of the loop's turn before the call answers), else on a store thread.

    The handler gets the request and the caller's deadline, never the gRPC context: everything
    gRPC stays here.
    """
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Response:
        async with _handled(self, method, request, context) as deadline:
            try:
                ran = self.storage.run_on_loop(lambda: handler(self, request, deadline))
            except WriterBusy:
                ran = None
            if ran is None:
                return await _on_thread(self, method, handler, request, deadline, context)
            response, loop_call = ran
            if loop_call.committed is not None:
                await _committed(method, loop_call.committed, context)
            return response
        raise AssertionError("unreachable")  # pragma: no cover - abort always raises

    return wrapper


def blocking_rpc(handler: Handler[Request, Response]) -> AsyncHandler[Request, Response]:
    """``rpc`` for work that takes O(database) (integrity checks, prunes of any size): always on a
    store thread, so the event loop goes on serving meanwhile."""
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Response:
        async with _handled(self, method, request, context) as deadline:
            return await _on_thread(self, method, handler, request, deadline, context)
        raise AssertionError("unreachable")  # pragma: no cover - abort always raises

    return wrapper


async def _on_thread(
    servicer: Any,
    method: str,
    handler: Handler[Request, Response],
    request: Request,
    deadline: float | None,
    context: grpc.aio.ServicerContext,
) -> Response:
    """Run the handler on a store thread; shielded: a cancelled call's store work goes on (writing
    nothing past the deadline), and its outcome is logged."""
    work = asyncio.get_running_loop().run_in_executor(servicer.threads, handler, servicer, request, deadline)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        work.add_done_callback(functools.partial(_log_abandoned, method, _request_id(context)))
        raise


async def _committed(method: str, commit: Awaitable[None], context: grpc.aio.ServicerContext) -> None:
    """Wait for the commit of a call's writes; shielded, as ``_on_thread``: a caller going away
    does not undo writes that others of the same turn commit with."""
    done = asyncio.ensure_future(commit)
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        done.add_done_callback(functools.partial(_log_abandoned, method, _request_id(context)))
        raise


def stream(handler: StreamHandler[Request, Response]) -> AsyncStreamHandler[Request, Response]:
    """``rpc`` for a server-streaming method: the handler is an async generator of the request and
    the deadline, running on the event loop (it hands blocking work to the store threads itself)."""
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(
        self: SessionStoreService, request: Request, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Response]:
        async with _handled(self, method, request, context) as deadline:
            async for response in handler(self, request, deadline):
                yield response

    return wrapper


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
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

    def __init__(self, config: Config, store: SessionStore, metrics: Metrics):
        self.config = config
        self.store = store
        self.storage = store.storage  # for ``rpc``: whether a call may run on the event loop
        self.metrics = metrics
        self.max_bytes = config.limits.max_field_bytes
        # Handlers block on the database, so they run here; the event loop only moves bytes.
        self.threads = futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="rpc")
        self.events = EventFeed(store, self.threads)

    def close(self) -> None:
        """Wait for handlers still running (their calls may have been cancelled) to finish."""
        self.threads.shutdown(wait=True)

    def _settings(self, request: Any) -> Settings:
        """The daemon's rule settings, with the parts the calling gateway sent in ``config``."""
        if not request.HasField("config"):
            return self.store.settings
        return self.store.settings.with_sent(convert.gateway_config(request.config, self.max_bytes))

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

    @staticmethod
    def _version(request: Any) -> int | None:
        return request.expected_version if request.HasField("expected_version") else None

    def _runtime_platforms(
        self, request: pb.BuildSessionContextRequest, platforms: Platforms
    ) -> tuple[tuple[str, ...], dict[str, HomeChannel]]:
        """Connected platforms and home channels: the request's when it sends them."""
        if not request.HasField("platforms"):
            return self.config.connected_platforms, dict(self.config.home_channels)
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
            session_key=keys.build_session_key(source, options, settings.mapped),
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
        entry, created = self.store.get_or_create(source, request.force_new, deadline, settings, request.active_process)
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
        count = self.store.suspend_recently_active(seconds, deadline)
        return pb.SuspendRecentlyActiveResponse(count=count)

    @rpc
    def ResetSession(self, request: pb.ResetSessionRequest, deadline: float | None) -> pb.ResetSessionResponse:
        entry = self.store.reset(self._key(request), self._version(request), deadline)
        return self._entry_response(pb.ResetSessionResponse, entry)

    @rpc
    def SwitchSession(self, request: pb.SwitchSessionRequest, deadline: float | None) -> pb.SwitchSessionResponse:
        target = self._key(request, "target_session_id")
        entry, switched = self.store.switch(
            self._key(request), target, self._version(request), deadline, request.create_session
        )
        return self._entry_response(pb.SwitchSessionResponse, entry, switched=switched)

    @blocking_rpc
    def PruneOldEntries(self, request: pb.PruneOldEntriesRequest, deadline: float | None) -> pb.PruneOldEntriesResponse:
        days = convert.bounded_days(request.max_age_days, "max_age_days") if request.HasField("max_age_days") else None
        for index, key in enumerate(request.keep_session_keys):
            convert.check_size(key, f"keep_session_keys[{index}]", self.max_bytes)
        pruned = self.store.prune(days, deadline, keep=request.keep_session_keys, dry_run=request.dry_run)
        return pb.PruneOldEntriesResponse(count=len(pruned), session_keys=pruned)

    @rpc
    def ListSessions(self, request: pb.ListSessionsRequest, deadline: float | None) -> pb.ListSessionsResponse:
        size = convert.page_size(request.page_size, *LIST_PAGE)
        minutes = None
        if request.HasField("active_minutes"):
            minutes = convert.non_negative(request.active_minutes, "active_minutes", convert.MAX_AGE_MINUTES)
        entries = self.store.list(minutes, size + 1, convert.entry_cursor(request.page_token))
        page, token = _entries_page(entries, size)
        return pb.ListSessionsResponse(entries=page, next_page_token=token)

    @rpc
    def HasAnySessions(self, request: pb.HasAnySessionsRequest, deadline: float | None) -> pb.HasAnySessionsResponse:
        return pb.HasAnySessionsResponse(has_any_sessions=self.store.has_any())

    @rpc
    def ListExpiredSessions(
        self, request: pb.ListExpiredSessionsRequest, deadline: float | None
    ) -> pb.ListExpiredSessionsResponse:
        size = convert.page_size(request.page_size, *LIST_PAGE)
        entries = self.store.list_expired(size + 1, convert.entry_cursor(request.page_token))
        page, token = _entries_page(entries, size)
        return pb.ListExpiredSessionsResponse(entries=page, next_page_token=token)

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
        limits = self.config.limits
        messages = convert.messages(request.messages, limits.max_batch, limits.max_message_bytes)
        result = self.store.append(self._key(request, "session_id"), messages, deadline, request.create_session)
        return pb.AppendMessagesResponse(
            appended=result.appended, duplicates=result.duplicates, message_count=result.message_count
        )

    @rpc
    def RewriteTranscript(
        self, request: pb.RewriteTranscriptRequest, deadline: float | None
    ) -> pb.RewriteTranscriptResponse:
        limits = self.config.limits
        messages = convert.messages(request.messages, limits.max_transcript_messages, limits.max_message_bytes)
        count = self.store.rewrite(self._key(request, "session_id"), messages, deadline, request.create_session)
        return pb.RewriteTranscriptResponse(message_count=count)

    @rpc
    def LoadTranscript(self, request: pb.LoadTranscriptRequest, deadline: float | None) -> pb.LoadTranscriptResponse:
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

    @stream
    async def WatchSessionEvents(
        self, request: pb.WatchSessionEventsRequest, deadline: float | None
    ) -> AsyncIterator[pb.WatchSessionEventsResponse]:
        after = convert.non_negative(request.after_sequence, "after_sequence")
        if request.from_now and after:
            raise InvalidArgument("from_now", "cannot be combined with an after_sequence")
        kinds = convert.event_kinds(request.kinds)
        async for page in self.events.follow(after, kinds, request.from_now):
            events = [convert.event_to_proto(event) for event in page.events]
            yield pb.WatchSessionEventsResponse(events=events, cursor=page.cursor)


def add_to_server(servicer: Any, module: ModuleType, server: grpc.aio.Server) -> str:
    """Register every method of the servicer's contract (its ``_pb2`` module), parsing requests
    with ``_parser``; unary and server-streaming methods. The service's full name."""
    (descriptor,) = module.DESCRIPTOR.services_by_name.values()
    handlers = {}
    for method in descriptor.methods:
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=_parser(getattr(module, method.input_type.name)),
            response_serializer=getattr(module, method.output_type.name).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(descriptor.full_name, handlers),))
    return str(descriptor.full_name)
