"""The RPC framework every servicer's methods run in: errors mapped to statuses once, here;
deadlines; where a call runs (on the event loop, or a store thread); metrics and the log line.

A servicer built on it holds a ``Runtime`` as ``runtime`` and decorates its methods with ``rpc``,
``blocking_rpc`` or ``stream``: they get the request and the caller's deadline, never the gRPC
context, so everything gRPC stays in this module and the servicers only convert.
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

from sessiond.errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    SessiondError,
    ShuttingDown,
    StorageError,
)
from sessiond.rpc.metrics import Metrics
from sessiond.storage.interface import Storage, WriterBusy

log = logging.getLogger("sessiond.rpc")

Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, float | None], Response]
AsyncHandler = Callable[[Any, Request, grpc.aio.ServicerContext[Request, Response]], Awaitable[Response]]
StreamHandler = Callable[[Any, Request, float | None], AsyncIterator[Response]]
AsyncStreamHandler = Callable[[Any, Request, grpc.aio.ServicerContext[Request, Response]], AsyncIterator[Response]]


@dataclass(frozen=True)
class Runtime:
    """What the call wrappers need of the daemon, shared by its servicers (built once, in
    ``sessiond.daemon.server``): the storage (whether a call may run on the event loop), the store
    threads (blocking work, and calls the loop cannot take), the metrics every call is counted in."""

    storage: Storage
    threads: futures.Executor
    metrics: Metrics
    # Checks a call against its caller's scope (``auth.Authorizer``); None: every caller has full access.
    authorize: Callable[[str, object, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]] | None = None


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
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}


def _request_id(context: grpc.aio.ServicerContext[Request, Response]) -> str:
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


async def _abort_for(context: grpc.aio.ServicerContext[Request, Response], exc: SessiondError) -> NoReturn:
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
    servicer: Any, method: str, request: object, context: grpc.aio.ServicerContext[Request, Response]
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
        if servicer.runtime.authorize is not None:
            await servicer.runtime.authorize(f"{servicer.SERVICE}/{method}", request, context)
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
        servicer.runtime.metrics.observe(method, code.name, seconds)
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
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext[Request, Response]) -> Response:
        async with _handled(self, method, request, context) as deadline:
            storage: Storage = self.runtime.storage
            try:
                ran = storage.run_on_loop(lambda: handler(self, request, deadline))
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
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext[Request, Response]) -> Response:
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
    context: grpc.aio.ServicerContext[Request, Response],
) -> Response:
    """Run the handler on a store thread; shielded: a cancelled call's store work goes on (writing
    nothing past the deadline), and its outcome is logged."""
    work = asyncio.get_running_loop().run_in_executor(servicer.runtime.threads, handler, servicer, request, deadline)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        work.add_done_callback(functools.partial(_log_abandoned, method, _request_id(context)))
        raise


async def _committed(
    method: str, commit: Awaitable[None], context: grpc.aio.ServicerContext[Request, Response]
) -> None:
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
        self: Any, request: Request, context: grpc.aio.ServicerContext[Request, Response]
    ) -> AsyncIterator[Response]:
        async with _handled(self, method, request, context) as deadline:
            async for response in handler(self, request, deadline):
                yield response

    return wrapper


def _deadline(context: grpc.aio.ServicerContext[Request, Response]) -> float | None:
    """The caller's deadline on the ``time.monotonic()`` clock, if it set one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


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
