"""An empty gRPC server, the physical limit of one RPC on this machine: ``python -m bench.echo [--sync]``.

Two of them, because which gRPC server model is faster here depends on the load, and sessiond's
target is the faster one (``rpc_suite``):

* the default is built by sessiond's own ``sessiond.daemon.server.grpc_server``: the same grpc.aio
  server and options, so a scenario's ratio to it is what sessiond itself adds;
* ``--sync`` is grpcio's thread-per-call server, ``grpc.server`` on a thread pool of sessiond's
  default ``max_workers``, with the same options as far as that API takes them.

Their one method returns the request bytes unchanged (no protobuf, no store thread): on the event
loop, or on a pool thread. Like the daemon each logs one JSON line ``{"msg": "serving",
"addresses": [...]}`` on stderr once bound, serves ``grpc.health.v1`` (the harness waits for
SERVING), and exits 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sessiond.daemon import config as config_module
from sessiond.daemon.server import grpc_server

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def _echo_sync(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def _generic(handler: Callable[..., object]) -> grpc.GenericRpcHandler:
    echo = grpc.unary_unary_rpc_method_handler(handler)  # no (de)serializers: bytes in, bytes out
    return grpc.method_handlers_generic_handler(SERVICE, {"Echo": echo})


def _bind(server: grpc.Server | grpc.aio.Server, socket: str, tcp: str) -> list[str]:
    server.add_insecure_port(f"unix:{socket}")
    host, _, _ = tcp.rpartition(":")
    port = server.add_insecure_port(tcp)
    return [f"unix:{socket}", f"{host}:{port}"]


def _serving(addresses: list[str]) -> None:
    sys.stderr.write(json.dumps({"msg": "serving", "addresses": addresses}) + "\n")
    sys.stderr.flush()


async def build(socket: str, tcp: str) -> tuple[grpc.aio.Server, list[str]]:
    """A bound grpc.aio echo server with sessiond's default options (see the module doc)."""
    server = grpc_server(config_module.parse({}))
    server.add_generic_rpc_handlers((_generic(_echo),))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, _bind(server, socket, tcp)


def build_sync(socket: str, tcp: str) -> tuple[grpc.Server, list[str]]:
    """A bound grpcio sync echo server: a pool of sessiond's default ``max_workers`` threads, and the
    options ``sessiond.daemon.server.grpc_server`` gives its grpc.aio server."""
    config = config_module.parse({})
    options = [("grpc.max_receive_message_length", config.limits.max_request_bytes), ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.max_workers), options=options)
    server.add_generic_rpc_handlers((_generic(_echo_sync),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, _bind(server, socket, tcp)


async def serve(socket: str, tcp: str) -> None:
    server, addresses = await build(socket, tcp)
    stop = asyncio.Event()
    for signum in STOP_SIGNALS:
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await server.start()
    _serving(addresses)
    await stop.wait()
    await server.stop(0)


def serve_sync(socket: str, tcp: str) -> None:
    # The stop signals are blocked before gRPC starts a thread, so every thread inherits the mask and
    # the main thread takes them in sigwait, whichever thread the kernel would have handed them to.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    server, addresses = build_sync(socket, tcp)
    server.start()
    _serving(addresses)
    signal.sigwait(STOP_SIGNALS)
    server.stop(0).wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="Unix socket path")
    parser.add_argument("--tcp", default="127.0.0.1:0", help="TCP address (port 0: any free port)")
    parser.add_argument("--sync", action="store_true", help="grpcio's sync server on a thread pool, not grpc.aio")
    args = parser.parse_args(argv)
    if args.sync:
        serve_sync(args.socket, args.tcp)
    else:
        asyncio.run(serve(args.socket, args.tcp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
