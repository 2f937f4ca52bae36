"""An empty gRPC server, the physical limit of one RPC on this machine: ``python -m bench.echo``.

It is built by sessiond's own ``sessiond.server.grpc_server``: the same grpc.aio server and
options, so a scenario's ratio to it is what sessiond itself adds. Its one method returns the
request bytes unchanged on the event loop (no protobuf, no store thread).

Like the daemon it logs one JSON line ``{"msg": "serving", "addresses": [...]}`` on stderr once
bound, serves ``grpc.health.v1`` (the harness waits for SERVING), and exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sessiond import config as config_module
from sessiond.server import grpc_server

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def build(socket: str, tcp: str) -> tuple[grpc.aio.Server, list[str]]:
    """A bound echo server with sessiond's default options and pool size (see the module doc)."""
    server = grpc_server(config_module.parse({}))
    echo = grpc.unary_unary_rpc_method_handler(_echo)  # no (de)serializers: bytes in, bytes out
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Echo": echo}),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"unix:{socket}")
    host, _, _ = tcp.rpartition(":")
    port = server.add_insecure_port(tcp)
    return server, [f"unix:{socket}", f"{host}:{port}"]


async def serve(socket: str, tcp: str) -> None:
    server, addresses = await build(socket, tcp)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await server.start()
    sys.stderr.write(json.dumps({"msg": "serving", "addresses": addresses}) + "\n")
    sys.stderr.flush()
    await stop.wait()
    await server.stop(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="Unix socket path")
    parser.add_argument("--tcp", default="127.0.0.1:0", help="TCP address (port 0: any free port)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.socket, args.tcp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
