"""A grpcurl stand-in from grpcio, grpcio-reflection and protobuf only: no .proto files, no generated stubs.

All it knows comes from the server's reflection service, so it follows whichever sessiond it talks to:
    python client/examples/grpc_reflect.py unix:/run/sessiond/sessiond.sock list | describe SYMBOL | call METHOD JSON
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2, json_format
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def find(pool: DescriptorPool, symbol: str) -> tuple[Any, Any]:
    """The symbol's descriptor and proto class; a method is found via its service (reflection serves whole files)."""
    service, _, method = symbol.replace("/", ".").rpartition(".")
    with contextlib.suppress(KeyError):
        return pool.FindServiceByName(service).methods_by_name[method], descriptor_pb2.MethodDescriptorProto
    for lookup, proto_class in (
        (pool.FindServiceByName, descriptor_pb2.ServiceDescriptorProto),
        (pool.FindMessageTypeByName, descriptor_pb2.DescriptorProto),
        (pool.FindEnumTypeByName, descriptor_pb2.EnumDescriptorProto),
    ):
        with contextlib.suppress(KeyError):
            return lookup(symbol), proto_class
    raise LookupError(f"symbol not found: {symbol}")


def describe(pool: DescriptorPool, symbol: str) -> dict[str, Any]:
    """A service, method, message or enum as its descriptor proto: grpcurl's describe, as JSON."""
    found, proto_class = find(pool, symbol)
    proto = proto_class()
    found.CopyToProto(proto)
    return {"symbol": found.full_name, "definition": json_format.MessageToDict(proto, preserving_proto_field_name=True)}


def call(channel: grpc.Channel, pool: DescriptorPool, method: str, body: str) -> dict[str, Any]:
    """One unary call whose request and response types were learnt by reflection."""
    found, _ = find(pool, method)
    if not isinstance(found, descriptor.MethodDescriptor) or found.client_streaming or found.server_streaming:
        raise LookupError(f"not a unary method: {method}")
    request_class, response_class = GetMessageClass(found.input_type), GetMessageClass(found.output_type)
    stub = channel.unary_unary(
        f"/{found.containing_service.full_name}/{found.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    response = stub(json_format.Parse(body, request_class()), timeout=10)
    return json_format.MessageToDict(response, preserving_proto_field_name=True)


def main(argv: list[str] | None = None) -> None:
    """Run one command; any failure exits 1 with one line on stderr (a gRPC error as 'CODE: details')."""
    parser = argparse.ArgumentParser(description="Explore a gRPC server through its reflection service.")
    parser.add_argument("address", help="gRPC target: unix:/run/sessiond/sessiond.sock or host:port")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the services")
    commands.add_parser("describe", help="describe a service, method, message or enum").add_argument("symbol")
    call_parser = commands.add_parser("call", help="call a unary method, e.g. sessiond.v1.SessionStore/GetSession")
    call_parser.add_argument("method")
    call_parser.add_argument("body", nargs="?", default="{}", help="the request as JSON")
    args = parser.parse_args(argv)
    with grpc.insecure_channel(args.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = DescriptorPool(database)
        try:
            if args.command == "list":
                result: Any = sorted(database.get_services())
            elif args.command == "describe":
                result = describe(pool, args.symbol)
            else:
                result = call(channel, pool, args.method, args.body)
        except grpc.RpcError as error:
            sys.exit(f"error: {error.code().name}: {error.details()}")
        except (LookupError, json_format.ParseError) as error:
            sys.exit("error: " + " ".join(str(error).split()))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
