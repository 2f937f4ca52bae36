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
from sessiond.errors import InvalidArgument, SessiondError
from sessiond.lid_mapping import MappingDirectory
from sessiond.model import HomeChannel
from sessiond.v1 import session_store_pb2 as pb
from sessiond.v1 import session_store_pb2_grpc
from sessiond.whatsapp import MappedValues, no_mapping

log = logging.getLogger("sessiond.rpc")

Request = TypeVar("Request")
Response = TypeVar("Response")
Handler = Callable[[Any, Request, grpc.ServicerContext], Response]


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
        except SessiondError as exc:  # pragma: no cover - every subclass is mapped above
            code = grpc.StatusCode.INTERNAL
            context.abort(code, f"{exc} (request {request_id})")
        except Exception:
            if context.code() is not None:  # aborted by the handler itself
                code = context.code()
                raise
            code = grpc.StatusCode.INTERNAL
            log.exception("rpc failed", extra={"method": method, "request_id": request_id})
            context.abort(code, f"internal error (request {request_id})")
        finally:
            log.info(
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


class SessionStoreService(session_store_pb2_grpc.SessionStoreServicer):
    """sessiond.v1.SessionStore over the pure rules (and, later, the store)."""

    def __init__(self, config: Config):
        self.config = config
        self.max_bytes = config.limits.max_field_bytes
        self.mapped: MappedValues = (
            MappingDirectory(config.whatsapp_mapping_dir) if config.whatsapp_mapping_dir else no_mapping
        )

    def _source(self, request: Any) -> Any:
        if not request.HasField("source"):
            raise InvalidArgument("source", "required")
        return convert.source(request.source, self.config.platforms, self.max_bytes)

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
