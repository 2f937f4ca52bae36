"""A throwaway PostgreSQL server for the tests and the benchmark: initdb, pg_ctl, torn down after.

The server lives in a temp directory (data, log and Unix socket), listens on a free loopback
port, and trusts local connections as the superuser ``postgres``. initdb refuses to run as root,
so as root every server command runs as the ``postgres`` system user (``runuser``), which the
Debian package creates; the temp directory is handed to that user.

Each database a test asks for is a fresh schema of one database: the DSN carries
``options=-c search_path=<schema>``, so the daemon creates its tables there. A schema costs a few
milliseconds, where a new database copies a template; nothing is dropped until the whole
directory goes at the end.

Shared by ``tests/conftest.py`` and ``bench`` (imported as ``tests.helpers.postgres``, as ``bench``
imports ``tests.helpers.reference``), so there is one way to start PostgreSQL.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

DATABASE = "sessiond"
SUPERUSER = "postgres"
INSTALL_HINT = "apt-get install -y --no-install-recommends postgresql (Debian), or put initdb on PATH"
# Throwaway data: nothing survives the run, so the tests skip the fsyncs (the bench keeps them).
NOT_DURABLE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
START_SECONDS = 60


class Unavailable(Exception):
    """PostgreSQL cannot be run here; the message says why and what to install."""


def binaries() -> Path:
    """The directory of initdb and pg_ctl: on PATH, else the newest Debian install."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not installed:
        raise Unavailable(f"PostgreSQL is not installed (no initdb): {INSTALL_HINT}")
    return Path(installed[-1]).parent


def _runner() -> list[str]:
    """The prefix that runs a server command as an unprivileged user (``postgres`` when we are root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise Unavailable(f"running as root and there is no '{SUPERUSER}' user for initdb: {INSTALL_HINT}") from None
    return ["runuser", "-u", SUPERUSER, "--"]


def free_port() -> int:
    """A loopback port nobody listens on now (bound, then closed for the server to take)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One running cluster in a temp directory; ``close`` stops it and removes everything."""

    def __init__(self, durable: bool = False):
        self.bin = binaries()
        self.runner = _runner()
        self.root = Path(tempfile.mkdtemp(prefix="sessiond-pg-"))
        self.data, self.socket_dir, self.log = self.root / "data", self.root / "run", self.root / "server.log"
        self.port = 0
        self.settings = () if durable else NOT_DURABLE
        self._schemas = itertools.count(1)
        try:
            self.socket_dir.mkdir()
            if self.runner:
                shutil.chown(self.root, SUPERUSER)
                shutil.chown(self.socket_dir, SUPERUSER)
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale")
            self.start()
            with self.connect("postgres") as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        except BaseException:
            self.close()
            raise

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.runner, str(self.bin / program), *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise Unavailable(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{log}")

    def start(self) -> None:
        """Start the server on a free port, or restart it on its port; waits until it accepts connections."""
        self.port = self.port or free_port()
        options = [f"-p {self.port}", f"-k {self.socket_dir}", "-c listen_addresses=127.0.0.1"]
        options += ["-c max_connections=400", *(f"-c {setting}" for setting in self.settings)]
        self._run(
            "pg_ctl", "start", "-w", "-t", str(START_SECONDS), "-D", str(self.data), "-l", str(self.log),
            "-o", " ".join(options),
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>``: fast disconnects every client; the data stays for ``start``."""
        self._run("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.data))

    def close(self) -> None:
        with contextlib.suppress(Unavailable):
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, schema: str | None = None, dbname: str = DATABASE, tcp: bool = False) -> str:
        """A connection string; with ``schema``, sessiond's tables go there (``search_path``)."""
        host = "127.0.0.1" if tcp else str(self.socket_dir)
        options = {"options": f"-c search_path={schema}"} if schema else {}
        return make_conninfo(host=host, port=self.port, dbname=dbname, user=SUPERUSER, **options)

    def connect(self, dbname: str = DATABASE) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn(dbname=dbname), autocommit=True)

    def fresh_dsn(self, tcp: bool = False) -> str:
        """The DSN of a new, empty schema: a database of its own for one daemon (or several sharing it)."""
        schema = f"t{next(self._schemas)}"
        with self.connect() as admin:
            admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        return self.dsn(schema, tcp=tcp)

    def version(self) -> str:
        with self.connect() as admin:
            return str(admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


@contextlib.contextmanager
def running(durable: bool = False) -> Iterator[PostgresServer]:
    server = PostgresServer(durable)
    try:
        yield server
    finally:
        server.close()
