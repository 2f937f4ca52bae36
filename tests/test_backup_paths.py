"""No caller writes where the operator did not allow: ``Admin.Backup`` creates plain file names inside
``storage.backup_dir`` only (off when unset), and ``Admin.Snapshot`` streams the copy to the caller.

Each refused request is checked for its status and message, and for having created nothing,
anywhere under the test's directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import apsw
import grpc
import pytest

from helpers.daemons import Running
from sessiond_client.v1 import admin_pb2, admin_pb2_grpc

pytestmark = pytest.mark.sqlite_only  # backups of the postgres backend are pg_dump's


def tree(root: Path) -> set[str]:
    """Every path under ``root``, links included (not followed)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def backup(running: Running, **fields: str) -> list[admin_pb2.BackupResponse]:
    return list(admin_pb2_grpc.AdminStub(running.channel).Backup(admin_pb2.BackupRequest(**fields), timeout=30))


def refused(running: Running, **fields: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        backup(running, **fields)
    return raised.value.code(), raised.value.details() or ""


@pytest.fixture
def area(tmp_path: Path) -> Path:
    """A private backup directory with an outside world around it."""
    (tmp_path / "backups").mkdir(mode=0o700)
    (tmp_path / "outside").mkdir()
    return tmp_path


def with_backups(start_daemon: Callable[..., Running], directory: Path) -> Running:
    return start_daemon({"storage": {"backup_dir": str(directory)}})


def test_without_a_backup_dir_the_daemon_writes_no_file_a_caller_names(daemon: Running, tmp_path: Path) -> None:
    before = tree(tmp_path)
    code, details = refused(daemon, name="b.db")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and details.startswith("name: ")
    assert "storage.backup_dir" in details and "Snapshot" in details
    code, details = refused(daemon, path=str(tmp_path / "b.db"))  # the old absolute path
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("path: ")
    assert tree(tmp_path) == before


@pytest.mark.parametrize(
    "name",
    [
        "../evil.db",
        "../outside/evil.db",
        "sub/../../evil.db",
        "sub/b.db",
        "/tmp/evil.db",
        "..",
        ".",
        ".hidden.db",
        "nul\0byte.db",
        "x" * 256,
        "",
    ],
)
def test_names_that_leave_the_directory_are_invalid(
    start_daemon: Callable[..., Running], area: Path, name: str
) -> None:
    running = with_backups(start_daemon, area / "backups")
    before = tree(area)
    code, details = refused(running, name=name)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("name: ")
    assert tree(area) == before


def test_links_in_the_directory_are_never_followed(start_daemon: Callable[..., Running], area: Path) -> None:
    running = with_backups(start_daemon, area / "backups")
    (area / "outside" / "kept.db").write_bytes(b"keep me")
    (area / "backups" / "to-a-file.db").symlink_to(area / "outside" / "kept.db")
    (area / "backups" / "dangling.db").symlink_to(area / "outside" / "created.db")
    (area / "backups" / "sub").symlink_to(area / "outside", target_is_directory=True)
    before = tree(area)
    for name in ("to-a-file.db", "dangling.db"):
        code, details = refused(running, name=name)
        assert code == grpc.StatusCode.ALREADY_EXISTS and "never overwrites" in details
    assert refused(running, name="sub/x.db")[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert tree(area) == before and (area / "outside" / "kept.db").read_bytes() == b"keep me"


def test_a_missing_or_shared_directory_is_a_failed_precondition(
    start_daemon: Callable[..., Running], area: Path
) -> None:
    missing = with_backups(start_daemon, area / "not-there")
    before = tree(area)
    code, details = refused(missing, name="b.db")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "does not exist" in details
    assert tree(area) == before  # not even the directory
    (area / "shared").mkdir()
    os.chmod(area / "shared", 0o777)
    shared = with_backups(start_daemon, area / "shared")
    code, details = refused(shared, name="b.db")
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "writable by other users" in details
    assert tree(area) == before | {"shared"}


def test_a_backup_is_a_new_sound_file_in_the_directory(start_daemon: Callable[..., Running], area: Path) -> None:
    running = with_backups(start_daemon, area / "backups")
    responses = backup(running, name="nightly.db")
    assert responses[-1].done and responses[-1].bytes == (area / "backups" / "nightly.db").stat().st_size
    assert sorted(os.listdir(area / "backups")) == ["nightly.db"]  # no partial file left
    assert refused(running, name="nightly.db")[0] == grpc.StatusCode.ALREADY_EXISTS
    flags = apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI
    copy = apsw.Connection(f"file:{area / 'backups' / 'nightly.db'}?immutable=1", flags=flags)
    assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    copy.close()


def test_a_snapshot_streams_the_copy_and_leaves_nothing_on_the_daemons_side(daemon: Running) -> None:
    database = Path(daemon.daemon.storage.path)  # type: ignore[attr-defined]
    before = set(os.listdir(database.parent))
    parts = list(admin_pb2_grpc.AdminStub(daemon.channel).Snapshot(admin_pb2.SnapshotRequest(), timeout=30))
    data = b"".join(part.data for part in parts)
    assert parts[-1].done and len(data) == parts[-1].bytes_total > 0
    assert data.startswith(b"SQLite format 3\0")
    assert set(os.listdir(database.parent)) == before
