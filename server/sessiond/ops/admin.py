"""``sessiond admin``: operators' commands.

Most talk to the running daemon over its socket (list, show, reset, suspend, prune, export,
backup, verify), so they are safe while gateways are served. The ones that replace or fill the
database file (restore, import-hermes, and verify with ``--db``) work on the file itself and
take the daemon's lock, so they refuse to run while a daemon has it open.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Never, TypeVar

import grpc
from google.protobuf import json_format
from tqdm import tqdm

from sessiond.daemon import config as config_module
from sessiond.errors import SessiondError
from sessiond.ops.hermes_import import import_hermes
from sessiond.storage.sqlite import SqliteStorage, restore
from sessiond_client.channel import TLS, open_channel
from sessiond_client.store_client import message_from_proto
from sessiond_client.v1 import admin_pb2, admin_pb2_grpc, session_pb2, session_store_pb2_grpc
from sessiond_client.v1 import session_store_pb2 as pb

LIST_COLUMNS = ("session_key", "session_id", "platform", "updated_at", "flags")
PAGE = 1000
Request = TypeVar("Request")
Response = TypeVar("Response")


class Daemon:
    """Stubs on one channel to the running daemon (TLS and the bearer token when given)."""

    def __init__(self, args: argparse.Namespace):
        address = args.address or f"unix:{config_module.default_socket_path()}"
        token = args.token_file.read_text(encoding="utf-8").strip() if args.token_file else None
        tls = TLS(root_certificates=args.tls_ca.read_bytes()) if args.tls_ca else None
        self.timeout = args.timeout
        self.channel = open_channel(address, token=token or os.environ.get("SESSIOND_TOKEN"), tls=tls)
        self.store = session_store_pb2_grpc.SessionStoreStub(self.channel)
        self.admin = admin_pb2_grpc.AdminStub(self.channel)

    def call(self, method: grpc.UnaryUnaryMultiCallable[Request, Response], request: Request) -> Response:
        return method(request, timeout=self.timeout)


# ----------------------------------------------------------------------------- output


def _entry_dict(entry: session_pb2.SessionEntry) -> dict[str, Any]:
    return json_format.MessageToDict(entry, preserving_proto_field_name=True)


def _flags(entry: session_pb2.SessionEntry) -> str:
    names = ("suspended", "resume_pending", "was_auto_reset", "expiry_finalized")
    return ",".join(name for name in names if getattr(entry, name)) or "-"


def _row(entry: session_pb2.SessionEntry) -> tuple[str, ...]:
    updated = entry.updated_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
    return entry.session_key, entry.session_id, entry.platform or "-", updated, _flags(entry)


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)]
    lines = [columns, *rows]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines)


def _emit(args: argparse.Namespace, value: Any, human: str) -> None:
    sys.stdout.write((json.dumps(value, indent=2) if args.json else human) + "\n")


def _progress(description: str, unit: str) -> tqdm[Never]:
    """A progress bar on stderr, shown only on a terminal (scripts and logs get none)."""
    return tqdm(desc=description, unit=unit, file=sys.stderr, disable=None, leave=False)


# ----------------------------------------------------------------------------- online commands


def _entries(daemon: Daemon, active_minutes: int | None) -> Iterator[session_pb2.SessionEntry]:
    request = pb.ListSessionsRequest(page_size=PAGE)
    if active_minutes is not None:
        request.active_minutes = active_minutes
    while True:
        page = daemon.call(daemon.store.ListSessions, request)
        yield from page.entries
        if not page.next_page_token:
            return
        request.page_token = page.next_page_token


def cmd_list(args: argparse.Namespace, daemon: Daemon) -> int:
    def wanted(entry: session_pb2.SessionEntry) -> bool:
        return (
            (args.platform is None or entry.platform == args.platform)
            and (not args.suspended or entry.suspended)
            and (not args.pending or entry.resume_pending)
        )

    found = [entry for entry in _entries(daemon, args.active_minutes) if wanted(entry)][: args.limit]
    _emit(args, [_entry_dict(entry) for entry in found], _table(LIST_COLUMNS, [_row(entry) for entry in found]))
    return 0


def _find(daemon: Daemon, key_or_id: str) -> session_pb2.SessionEntry:
    """The entry of a session key, else the entry whose current session is that id."""
    try:
        return daemon.call(daemon.store.GetSession, pb.GetSessionRequest(session_key=key_or_id)).entry
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
    request = admin_pb2.FindSessionRequest(session_id=key_or_id)
    return daemon.call(daemon.admin.FindSession, request).entry


def _messages(daemon: Daemon, session_id: str) -> Iterator[dict[str, Any]]:
    request = pb.LoadTranscriptRequest(session_id=session_id, raw=True)
    while True:
        page = daemon.call(daemon.store.LoadTranscript, request)
        yield from (message_from_proto(message) for message in page.messages)
        if not page.next_page_token:
            return
        request.page_token = page.next_page_token


def cmd_show(args: argparse.Namespace, daemon: Daemon) -> int:
    entry = _find(daemon, args.key_or_id)
    last = list(deque(_messages(daemon, entry.session_id), maxlen=args.messages)) if args.messages else []
    fields = _entry_dict(entry)
    lines = [f"{name}: {json.dumps(value) if isinstance(value, dict) else value}" for name, value in fields.items()]
    lines += [f"[{message['role']}] {message.get('content')}" for message in last]
    _emit(args, {"entry": fields, "messages": last}, "\n".join(lines))
    return 0


def _change(method: str, request_type: type) -> Callable[[argparse.Namespace, Daemon], int]:
    """A command that changes one entry by key and shows the result."""

    def command(args: argparse.Namespace, daemon: Daemon) -> int:
        entry = daemon.call(getattr(daemon.store, method), request_type(session_key=args.key)).entry
        _emit(args, _entry_dict(entry), _table(LIST_COLUMNS, [_row(entry)]))
        return 0

    return command


def cmd_prune(args: argparse.Namespace, daemon: Daemon) -> int:
    count = daemon.call(daemon.store.PruneOldEntries, pb.PruneOldEntriesRequest(max_age_days=args.days)).count
    _emit(args, {"pruned": count}, f"pruned {count} entries idle for more than {args.days} days")
    return 0


def cmd_export(args: argparse.Namespace, daemon: Daemon) -> int:
    """The transcript as JSONL, one message (in the reference's dict form) per line."""
    output = open(args.output, "x", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    count = 0
    try:
        with _progress("export", "msg") as bar:
            for message in _messages(daemon, args.session_id):
                output.write(json.dumps(message, ensure_ascii=False) + "\n")
                count += 1
                bar.update()
    finally:
        if args.output:
            output.close()
    sys.stderr.write(f"exported {count} messages\n")
    return 0


def cmd_backup(args: argparse.Namespace, daemon: Daemon) -> int:
    """A consistent copy: streamed here and written on this side (never over an existing file),
    or, with ``--on-daemon``, a new file in the daemon's ``storage.backup_dir``."""
    if args.on_daemon:
        request = admin_pb2.BackupRequest(name=args.path)
        with _progress("backup", "page") as bar:
            for update in daemon.admin.Backup(request, timeout=args.timeout):
                if update.done:
                    _emit(args, {"name": args.path, "bytes": update.bytes}, f"{args.path}: {update.bytes} bytes")
                    return 0
                bar.total = update.pages_total
                bar.update(update.pages_done - bar.n)
        return 1  # pragma: no cover - the daemon always ends with done or an error
    target = Path(args.path).absolute()
    size = _write_new(target, _snapshot(daemon, args.timeout))
    _emit(args, {"path": str(target), "bytes": size}, f"{target}: {size} bytes")
    return 0


def _snapshot(daemon: Daemon, timeout: float) -> Iterator[bytes]:
    """The bytes of a snapshot, with a progress bar for the copy and then for the transfer."""
    with _progress("snapshot", "page") as copying, _progress("transfer", "B") as sending:
        for part in daemon.admin.Snapshot(admin_pb2.SnapshotRequest(), timeout=timeout):
            if part.data:
                sending.total = part.bytes_total
                sending.update(len(part.data))
                yield part.data
            elif part.pages_total:
                copying.total = part.pages_total
                copying.update(part.pages_done - copying.n)


def _write_new(target: Path, chunks: Iterator[bytes]) -> int:
    """Write a new file whole or not at all: beside it first, synced, then linked into place."""
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    partial = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(partial, target)
        except FileExistsError:
            raise SessiondError(f"{target} exists; a backup never overwrites a file") from None
        return target.stat().st_size
    finally:
        partial.unlink(missing_ok=True)


def cmd_rebuild_search_index(args: argparse.Namespace, daemon: Daemon) -> int:
    """Empty the daemon's full-text index and build it again, with a progress bar (it serves meanwhile)."""
    indexed = None
    with _progress("search index", "message") as bar:
        for update in daemon.admin.RebuildSearchIndex(admin_pb2.RebuildSearchIndexRequest(), timeout=args.timeout):
            bar.total = update.messages_total
            bar.update(update.messages_done - bar.n)
            indexed = update.messages_done if update.done else None
    if indexed is None:
        return 1  # pragma: no cover - the daemon always ends with done or an error
    _emit(args, {"messages": indexed}, f"search index rebuilt: {indexed} messages")
    return 0


def cmd_search(args: argparse.Namespace, daemon: Daemon) -> int:
    """Transcript messages matching the words, best first: session, position, role, snippet."""
    request = pb.SearchMessagesRequest(query=args.query, page_size=args.limit, window=0, roles=args.role or [])
    for name in ("platform", "session_key"):
        if getattr(args, name):
            setattr(request, name, getattr(args, name))
    hits = daemon.call(daemon.store.SearchMessages, request).hits
    rows = [(hit.session.session_id, str(hit.position), hit.role, hit.snippet) for hit in hits]
    found = [
        {"session_id": hit.session.session_id, "position": hit.position, "role": hit.role, "snippet": hit.snippet}
        for hit in hits
    ]
    _emit(args, found, _table(("SESSION", "POS", "ROLE", "SNIPPET"), rows) if rows else "no messages found")
    return 0


def cmd_verify(args: argparse.Namespace, daemon: Daemon) -> int:
    result = json_format.MessageToDict(
        daemon.call(daemon.admin.Verify, admin_pb2.VerifyRequest()),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return _verdict(args, result)


def _verdict(args: argparse.Namespace, result: dict[str, Any]) -> int:
    human = "\n".join(f"{name}: {value}" for name, value in result.items())
    _emit(args, result, human)
    return 0 if result["ok"] else 1


# ----------------------------------------------------------------------------- offline commands


def _database(args: argparse.Namespace) -> tuple[config_module.Config, Path]:
    """The configuration (as ``serve`` reads it) and the database file an offline task works on."""
    config = config_module.load(args.config or config_module.path_from_environment())
    return config, Path(args.db) if args.db else config.database


def cmd_verify_file(args: argparse.Namespace) -> int:
    _, database = _database(args)
    storage = SqliteStorage(database)
    try:
        problems, stats = storage.integrity_problems(), storage.stats()
    finally:
        storage.close()
    return _verdict(args, {"ok": not problems, "problems": problems, **dataclasses.asdict(stats)})


def cmd_restore(args: argparse.Namespace) -> int:
    _, database = _database(args)
    kept = restore(Path(args.backup), database)
    result = {"database": str(database), "previous": str(kept) if kept else None}
    _emit(args, result, f"{database}: restored from {args.backup}" + (f"; the previous file is {kept}" if kept else ""))
    return 0


def cmd_import_hermes(args: argparse.Namespace) -> int:
    config, database = _database(args)
    storage = SqliteStorage(database, durable=config.durable)
    try:
        with _progress("import", "session") as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            summary = import_hermes(Path(args.hermes_home), storage, config, dry_run=args.dry_run, progress=progress)
    finally:
        storage.close()
    counts = summary.as_dict()
    human = "\n".join(f"{name}: {value}" for name, value in counts.items())
    _emit(args, counts, ("dry run, nothing written\n" if args.dry_run else "") + human)
    return 0


# ----------------------------------------------------------------------------- the parser


ONLINE: dict[str, Callable[[argparse.Namespace, Daemon], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "reset": _change("ResetSession", pb.ResetSessionRequest),
    "suspend": _change("SuspendSession", pb.SuspendSessionRequest),
    "prune": cmd_prune,
    "export": cmd_export,
    "backup": cmd_backup,
    "verify": cmd_verify,
    "rebuild-search-index": cmd_rebuild_search_index,
    "search": cmd_search,
}
OFFLINE: dict[str, Callable[[argparse.Namespace], int]] = {
    "restore": cmd_restore,
    "import-hermes": cmd_import_hermes,
    "verify": cmd_verify_file,
}


def add_parser(commands: Any) -> None:
    """``sessiond admin …``: one subcommand per operator task."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    online = argparse.ArgumentParser(add_help=False)
    online.add_argument("--address", help="unix:/path or host:port (default: the default socket)")
    online.add_argument("--token-file", type=Path, help="bearer token for TCP (default: $SESSIOND_TOKEN)")
    online.add_argument("--tls-ca", type=Path, help="CA certificate (PEM) of a TLS address")
    online.add_argument("--timeout", type=float, default=600.0, help="seconds per call (default 600)")
    offline = argparse.ArgumentParser(add_help=False)
    offline.add_argument("--config", type=Path, help="TOML configuration (default: $SESSIOND_CONFIG)")
    offline.add_argument("--db", help="database file (default: the configuration's storage.path)")

    admin = commands.add_parser("admin", help="operators' commands (see `sessiond admin -h`)")
    tasks = admin.add_subparsers(dest="task", required=True)
    listing = tasks.add_parser("list", parents=[common, online], help="entries, most recently active first")
    listing.add_argument("--platform", help="only this platform")
    listing.add_argument("--active-minutes", type=int, help="only entries active within this many minutes")
    listing.add_argument("--suspended", action="store_true", help="only suspended entries")
    listing.add_argument("--pending", action="store_true", help="only entries pending a resume")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    show = tasks.add_parser(
        "show", parents=[common, online], help="an entry (by key or session id) and its last messages"
    )
    show.add_argument("key_or_id")
    show.add_argument("--messages", type=int, default=10, help="how many of the last messages (default 10)")
    for name, verb in (("reset", "start a new session for"), ("suspend", "suspend")):
        tasks.add_parser(name, parents=[common, online], help=f"{verb} a session key").add_argument("key")
    prune = tasks.add_parser("prune", parents=[common, online], help="forget entries idle for more than N days")
    prune.add_argument("--days", type=int, required=True)
    export = tasks.add_parser("export", parents=[common, online], help="a transcript as JSONL (stdout or --output)")
    export.add_argument("session_id")
    export.add_argument("--output", help="a new file to write (never overwritten)")
    backup = tasks.add_parser("backup", parents=[common, online], help="an online, consistent copy of the database")
    backup.add_argument(
        "path", help="a new file here (or, with --on-daemon, a name in the daemon's storage.backup_dir)"
    )
    backup.add_argument("--on-daemon", action="store_true", help="write it on the daemon's host, in storage.backup_dir")
    tasks.add_parser(
        "rebuild-search-index", parents=[common, online], help="build the full-text index again (while serving)"
    )
    searching = tasks.add_parser("search", parents=[common, online], help="transcript messages with these words")
    searching.add_argument("query", help='words (all must occur), "quoted phrases", word* prefixes')
    searching.add_argument("--platform", help="only sessions of this platform")
    searching.add_argument("--key", dest="session_key", help="only the sessions of this session key")
    searching.add_argument("--role", action="append", help="only this role (repeatable)")
    searching.add_argument("--limit", type=int, default=20, help="at most this many hits (default 20, max 100)")
    verify = tasks.add_parser("verify", parents=[common, online, offline], help="integrity check and counts")
    verify.add_argument("--offline", action="store_true", help="check the file itself (the daemon must be stopped)")
    restore_parser = tasks.add_parser("restore", parents=[common, offline], help="replace the database with a backup")
    restore_parser.add_argument("backup")
    hermes = tasks.add_parser("import-hermes", parents=[common, offline], help="import a Hermes gateway's sessions")
    hermes.add_argument("hermes_home")
    hermes.add_argument("--dry-run", action="store_true", help="report what would be imported; write nothing")


def run(args: argparse.Namespace) -> int:
    """Run one admin task; errors are one line on stderr and a non-zero status."""
    try:
        if args.task in OFFLINE and (args.task != "verify" or args.offline):
            return OFFLINE[args.task](args)
        daemon = Daemon(args)
        with daemon.channel:
            return ONLINE[args.task](args, daemon)
    except grpc.RpcError as error:
        sys.stderr.write(f"sessiond admin {args.task}: {error.code().name}: {error.details()}\n")
    except (SessiondError, OSError) as exc:
        sys.stderr.write(f"sessiond admin {args.task}: {exc}\n")
    return 1
