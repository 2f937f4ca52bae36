"""``sessiond`` command line: ``serve`` runs the daemon until SIGTERM or SIGINT; ``health`` probes it."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sessiond import logs
from sessiond.daemon import config as config_module
from sessiond.daemon.server import create_server
from sessiond.errors import ConfigError, StorageError
from sessiond.ops import admin
from sessiond_client.channel import TLS, open_channel

SIGNAL_CHECK_SECONDS = 0.5  # at most this late a signal another thread received is handled


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sessiond", description="Session store sidecar for chat-agent gateways.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", type=Path, help="TOML configuration file (default: $SESSIOND_CONFIG)")
    serve.add_argument("--socket", help="Unix socket path ('' disables it)")
    serve.add_argument("--tcp", help="TCP address to listen on, e.g. 127.0.0.1:50051 (off by default)")
    serve.add_argument("--db", help="database file (default: $XDG_STATE_HOME/sessiond/sessiond.db)")
    health = commands.add_parser("health", help="exit 0 when the daemon is SERVING (an exec probe)")
    health.add_argument("--address", help="unix:/path or host:port (default: the default socket)")
    health.add_argument("--service", default="", help="'' (the daemon), sessiond.v1.SessionStore or sessiond.writes")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds before giving up (default 3)")
    health.add_argument("--tls-ca", type=_read, help="CA certificate (PEM) of a TLS address")
    token_help = "file holding the bearer token, where health needs one (default: $SESSIOND_TOKEN)"
    health.add_argument("--token-file", type=_read, help=token_help)
    admin.add_parser(commands)
    return parser


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path} ({exc.strerror})") from None


def _load(args: argparse.Namespace) -> config_module.Config:
    config = config_module.load(args.config or config_module.path_from_environment())
    if args.socket is not None:
        config = dataclasses.replace(config, socket=Path(args.socket) if args.socket else None)
    if args.tcp is not None:
        config = dataclasses.replace(config, tcp=args.tcp)
    if args.db:
        config = dataclasses.replace(config, database=Path(args.db))
    return config


def serve(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
        logs.configure(config.log_level)
        daemon = create_server(config)
    except ConfigError as exc:
        sys.stderr.write(f"sessiond: configuration error: {exc}\n")
        return 2
    except StorageError as exc:
        sys.stderr.write(f"sessiond: database error: {exc}\n")
        return 3
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: daemon.stop_requested.set())
    daemon.start()
    # The kernel may hand SIGTERM to any thread (a gRPC poller), and Python runs the handler only
    # when the main thread next runs Python code: an untimed wait here would never return. So the
    # main thread wakes now and then.
    while not daemon.stop_requested.wait(SIGNAL_CHECK_SECONDS):
        pass
    daemon.stop(config.grace_seconds)
    if daemon.failure is not None:
        sys.stderr.write(f"sessiond: database error: {daemon.failure}\n")
        return 3
    return 0


def health(args: argparse.Namespace) -> int:
    """One line and exit 0 when SERVING; 1 with the reason otherwise."""
    address = args.address or f"unix:{config_module.default_socket_path()}"
    token = args.token_file.decode().strip() if args.token_file else os.environ.get("SESSIOND_TOKEN")
    tls = TLS(root_certificates=args.tls_ca) if args.tls_ca else None
    with open_channel(address, token=token, tls=tls) as channel:
        request = health_pb2.HealthCheckRequest(service=args.service)
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            status = stub.Check(request, timeout=args.timeout).status  # type: ignore[attr-defined]  # the stubs' HealthStub lacks its methods
        except grpc.RpcError as exc:
            sys.stdout.write(f"{address}: {exc.code().name}: {exc.details()}\n")
            return 1
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    sys.stdout.write(f"{address} {args.service or '(daemon)'}: {name}\n")
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return {"serve": serve, "health": health, "admin": admin.run}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
