"""``sessiond`` command line: ``sessiond serve`` runs the daemon until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path

from sessiond import config as config_module
from sessiond import logs
from sessiond.errors import ConfigError, StorageError
from sessiond.server import create_server

log = logging.getLogger("sessiond")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sessiond", description="Session store sidecar for chat-agent gateways.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", type=Path, help="TOML configuration file (default: $SESSIOND_CONFIG)")
    serve.add_argument("--socket", help="Unix socket path ('' disables it)")
    serve.add_argument("--tcp", help="TCP address to listen on, e.g. 127.0.0.1:50051 (off by default)")
    serve.add_argument("--db", help="database file (default: $XDG_STATE_HOME/sessiond/sessiond.db)")
    return parser


def _load(args: argparse.Namespace) -> config_module.Config:
    path = args.config or (Path(os.environ["SESSIOND_CONFIG"]) if os.environ.get("SESSIOND_CONFIG") else None)
    config = config_module.load(path)
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
    daemon.stop_requested.wait()
    daemon.stop(config.grace_seconds)
    if daemon.failure is not None:
        sys.stderr.write(f"sessiond: database error: {daemon.failure}\n")
        return 3
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
