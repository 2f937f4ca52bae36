"""``sessiond admin``: operators' commands.

Most talk to the running daemon over its socket (list, show, reset, suspend, prune, export,
backup, verify, search, delete, archive, retention, vacuum, link, unlink, links), so they are safe
while gateways are served. The ones that replace or fill the
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


# ----------------------------------------------------------------------------- retention


def _selector(args: argparse.Namespace) -> pb.SessionSelector:
    """The selector the command line's flags describe (``--meta key`` or ``key=text``)."""
    selector = pb.SessionSelector(session_ids=args.id or [], end_reasons=args.end_reason or [])
    for name in ("inactive_days", "platform", "chat_type", "title_prefix", "min_messages", "max_messages"):
        if getattr(args, name) is not None:
            setattr(selector, name, getattr(args, name))
    for name in ("titled", "ended", "archived"):
        if getattr(args, name) is not None:
            setattr(selector, name, getattr(args, name))
    for spec in args.meta or []:
        key, has_value, text = spec.partition("=")
        wanted = selector.metadata.add(key=key)
        if has_value:
            wanted.equals.text = text
    return selector


def _bulk(args: argparse.Namespace, daemon: Daemon, verb: str, call: Callable[[bool, int], Any]) -> int:
    """A bulk change batch by batch (one transaction each) with a progress bar; a dry run counts."""
    first = call(True, args.show)
    if args.dry_run:
        shown_ids = list(first.session_ids)
        human = f"would {verb} {first.remaining} sessions ({first.remaining_messages} messages)"
        if shown_ids:
            human += ", first: " + ", ".join(shown_ids)
        _emit(args, {"sessions": first.remaining, "messages": first.remaining_messages, "first": shown_ids}, human)
        return 0
    done, messages = 0, 0
    with _progress(verb, "session") as bar:
        bar.total = first.remaining
        while True:
            step = call(False, args.batch)
            done, messages = done + len(step.session_ids), messages + step.messages
            bar.update(len(step.session_ids))
            if not step.remaining or not step.session_ids:
                break
    past = {"delete": "deleted", "archive": "archived", "unarchive": "unarchived"}[verb]
    _emit(args, {past: done, "messages": messages}, f"{past} {done} sessions ({messages} messages)")
    return 0


def cmd_delete(args: argparse.Namespace, daemon: Daemon) -> int:
    def call(dry_run: bool, limit: int) -> pb.DeleteSessionsResponse:
        request = pb.DeleteSessionsRequest(selector=_selector(args), dry_run=dry_run, limit=limit)
        return daemon.call(daemon.store.DeleteSessions, request)

    return _bulk(args, daemon, "delete", call)


def cmd_archive(args: argparse.Namespace, daemon: Daemon) -> int:
    def call(dry_run: bool, limit: int) -> pb.ArchiveSessionsResponse:
        request = pb.ArchiveSessionsRequest(
            selector=_selector(args), dry_run=dry_run, limit=limit, unarchive=args.unarchive
        )
        return daemon.call(daemon.store.ArchiveSessions, request)

    return _bulk(args, daemon, "unarchive" if args.unarchive else "archive", call)


def cmd_retention(args: argparse.Namespace, daemon: Daemon) -> int:
    """Apply the daemon's [retention] policy now, with a progress bar (or, dry, count what is due)."""
    last = admin_pb2.ApplyRetentionResponse()
    with _progress("retention", "session") as bar:
        for last in daemon.admin.ApplyRetention(
            admin_pb2.ApplyRetentionRequest(dry_run=args.dry_run), timeout=args.timeout
        ):
            changed = last.archived + last.deleted
            bar.total = changed + last.remaining
            bar.update(changed - bar.n)
    facts = {"archived": last.archived, "deleted": last.deleted, "deleted_messages": last.deleted_messages}
    human = ("due: " if args.dry_run else "") + f"{last.archived} archived, {last.deleted} deleted sessions"
    _emit(args, facts, f"{human} ({last.deleted_messages} messages deleted)")
    return 0


def cmd_vacuum(args: argparse.Namespace, daemon: Daemon) -> int:
    """Give the database's free pages back to the file system, with a progress bar."""
    last = admin_pb2.VacuumResponse()
    with _progress("vacuum", "page") as bar:
        for last in daemon.admin.Vacuum(admin_pb2.VacuumRequest(), timeout=args.timeout):
            bar.total = last.free_pages_before
            bar.update(last.pages_freed - bar.n)
    facts = {"pages_freed": last.pages_freed, "converted": last.converted, "file_bytes": last.file_bytes}
    converted = " (converted to incremental auto-vacuum)" if last.converted else ""
    _emit(args, facts, f"freed {last.pages_freed} pages; the file is {last.file_bytes} bytes{converted}")
    return 0


LINK_COLUMNS = ("platform", "user_id", "identity", "linked_at")


def _link_row(link: pb.IdentityLink) -> tuple[str, ...]:
    linked = link.linked_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
    return link.platform, link.user_id, link.identity, linked


def cmd_link(args: argparse.Namespace, daemon: Daemon) -> int:
    request = pb.LinkIdentityRequest(platform=args.platform, user_id=args.user_id, identity=args.identity)
    response = daemon.call(daemon.store.LinkIdentity, request)
    was = f" (was {response.previous_identity})" if response.HasField("previous_identity") else ""
    human = f"{args.platform}:{args.user_id} -> {response.link.identity}{was}" + (
        "" if response.changed else " (unchanged)"
    )
    _emit(args, json_format.MessageToDict(response, preserving_proto_field_name=True), human)
    return 0


def cmd_unlink(args: argparse.Namespace, daemon: Daemon) -> int:
    request = pb.UnlinkIdentityRequest(platform=args.platform, user_id=args.user_id)
    response = daemon.call(daemon.store.UnlinkIdentity, request)
    identity = response.identity if response.HasField("identity") else None
    human = f"{args.platform}:{args.user_id} unlinked from {identity}" if identity else "no link: nothing changed"
    _emit(args, {"identity": identity}, human)
    return 0


def cmd_links(args: argparse.Namespace, daemon: Daemon) -> int:
    request = pb.ListIdentityLinksRequest(identity=args.identity, page_size=PAGE)
    links: list[pb.IdentityLink] = []
    while True:
        page = daemon.call(daemon.store.ListIdentityLinks, request)
        links += page.links
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    as_dicts = [json_format.MessageToDict(link, preserving_proto_field_name=True) for link in links]
    _emit(args, as_dicts, _table(LINK_COLUMNS, [_link_row(link) for link in links]))
    return 0


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
    "delete": cmd_delete,
    "archive": cmd_archive,
    "retention": cmd_retention,
    "vacuum": cmd_vacuum,
    "link": cmd_link,
    "unlink": cmd_unlink,
    "links": cmd_links,
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
    selecting = _selector_parser()
    for name, help_text in (
        ("delete", "delete stored sessions and their transcripts"),
        ("archive", "archive stored sessions"),
    ):
        bulk = tasks.add_parser(name, parents=[common, online, selecting], help=help_text)
        bulk.add_argument("--dry-run", action="store_true", help="count what would change; write nothing")
        bulk.add_argument("--batch", type=int, default=100, help="sessions per transaction (default 100, max 1000)")
        bulk.add_argument("--show", type=int, default=20, help="with --dry-run, list the first N (default 20)")
        if name == "archive":
            bulk.add_argument("--unarchive", action="store_true", help="bring archived sessions back instead")
    retention = tasks.add_parser("retention", parents=[common, online], help="apply the [retention] policy now")
    retention.add_argument("--dry-run", action="store_true", help="count what is due; write nothing")
    tasks.add_parser("vacuum", parents=[common, online], help="give free pages of the database file back")
    linking = tasks.add_parser("link", parents=[common, online], help="link a platform user id to an identity")
    unlinking = tasks.add_parser("unlink", parents=[common, online], help="remove a platform user id's link")
    for parser in (linking, unlinking):
        parser.add_argument("platform", help="e.g. telegram")
        parser.add_argument("user_id", help="the user id on that platform, as the gateway sends it")
    linking.add_argument("identity", help="the person's identity, e.g. alice")
    links = tasks.add_parser("links", parents=[common, online], help="the identity links")
    links.add_argument("--identity", help="only this identity's")
    verify = tasks.add_parser("verify", parents=[common, online, offline], help="integrity check and counts")
    verify.add_argument("--offline", action="store_true", help="check the file itself (the daemon must be stopped)")
    restore_parser = tasks.add_parser("restore", parents=[common, offline], help="replace the database with a backup")
    restore_parser.add_argument("backup")
    hermes = tasks.add_parser("import-hermes", parents=[common, offline], help="import a Hermes gateway's sessions")
    hermes.add_argument("hermes_home")
    hermes.add_argument("--dry-run", action="store_true", help="report what would be imported; write nothing")


def _selector_parser() -> argparse.ArgumentParser:
    """The flags of a session selector (all given must hold; at least one)."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("which sessions (all given must hold)")
    group.add_argument("--id", action="append", help="this session id (repeatable)")
    group.add_argument("--inactive-days", type=int, help="last active more than N days ago")
    group.add_argument("--platform", help="started on this platform")
    group.add_argument("--chat-type", help="started in this kind of chat (dm, group, channel, thread)")
    for flag, name, what in (
        ("titled", "titled", "titled"),
        ("ended", "ended", "ended"),
        ("archived", "archived", "archived"),
    ):
        group.add_argument(f"--{flag}", dest=name, action="store_true", default=None, help=f"only {what} sessions")
        group.add_argument(f"--not-{flag}", dest=name, action="store_false", help=f"only sessions not {what}")
    group.add_argument("--title-prefix", help="title starting so (case and punctuation ignored)")
    group.add_argument("--end-reason", action="append", help="ended for this reason, e.g. session_reset (repeatable)")
    group.add_argument("--min-messages", type=int, help="at least N stored messages")
    group.add_argument("--max-messages", type=int, help="at most N stored messages")
    group.add_argument("--meta", action="append", metavar="KEY[=TEXT]", help="metadata key present (with this text)")
    return parser


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
