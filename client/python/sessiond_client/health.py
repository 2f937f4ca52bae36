"""The standard ``grpc.health.v1.Health/Check`` call, without the daemon's grpcio-health-checking.

The client distribution depends on grpcio, protobuf and grpcio-status only. The two health
messages are declared here in a private descriptor pool: registering grpc's ``health.proto`` in
the default pool would clash in a process that also imports grpcio-health-checking (a test
that runs the daemon, a gateway that serves health itself).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVING = 1  # grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING
METHOD = "/grpc.health.v1.Health/Check"


def _messages() -> tuple[type[Any], type[Any]]:
    file = descriptor_pb2.FileDescriptorProto(name="sessiond_client/health.proto", package="grpc.health.v1")
    field = descriptor_pb2.FieldDescriptorProto
    request = file.message_type.add(name="HealthCheckRequest")
    request.field.add(name="service", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    response = file.message_type.add(name="HealthCheckResponse")
    response.field.add(
        name="status", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL
    )  # an enum on the wire
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")),
    )


HealthCheckRequest, HealthCheckResponse = _messages()


def is_serving(channel: grpc.Channel, service: str = "", timeout: float | None = None) -> bool:
    """Whether the daemon says SERVING for ``service`` ("" is the daemon as a whole)."""
    check = channel.unary_unary(
        METHOD,
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )
    return bool(check(HealthCheckRequest(service=service), timeout=timeout).status == SERVING)
