"""The state database on a real SQLite file, and atomic publishing on a real folder."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Workspace

from aggregator.errors import PublishError, StoreError
from aggregator.model import Cycle
from aggregator.publish import Staging
from aggregator.store import KEPT_CYCLES, Store, read_status
from aggregator.store.schema import MIGRATIONS


def test_new_database_is_created_at_the_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.sqlite3"
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"files", "items", "versions", "duplicates"} <= tables


def test_reopening_migrates_nothing_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with Store(path) as store:
        store.forget_duplicate("nothing")  # a write inside the transaction
        store.commit()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO duplicates VALUES ('k', 'kept', 's', NULL, 'o', 'r', 't')")
    with Store(path) as store:
        assert store.duplicate_of("k") == "kept"


def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """By a run, by explain, and by status and the health check (which called it healthy)."""
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    for open_it in (Store, lambda p: Store(p, readonly=True), read_status):
        with pytest.raises(StoreError, match="newer version of aggregator"):
            open_it(path)


def test_another_applications_database_is_left_untouched(tmp_path: Path) -> None:
    """A state_db that points at some other SQLite file (schema 0, tables of its own) is
    refused as it is, by a run (which filled it with tables and switched it to WAL), by
    explain and by status (which said no run had completed yet)."""
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")
    before = path.read_bytes()
    for open_it in (Store, lambda p: Store(p, readonly=True), read_status):
        with pytest.raises(StoreError, match="not aggregator's"):
            open_it(path)
    assert path.read_bytes() == before
    assert not path.with_name("other.sqlite3-wal").exists()
    # Ours, restored from `sqlite3 .dump` (which drops the schema version): said so, with how
    # to set it, not called another application's.
    ours = tmp_path / "ours.sqlite3"
    Store(ours).close()
    with sqlite3.connect(ours) as db:
        db.execute("PRAGMA user_version = 0")
    with pytest.raises(StoreError, match=r"aggregator's tables without their schema version"):
        Store(ours)


def test_readonly_store_reads_and_never_writes(tmp_path: Path) -> None:
    """What ``explain`` opens: it reads beside a writer, any write is refused, a database of
    an older schema is left as it is (with what to do), and none is created."""
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO duplicates VALUES ('dup', 'kept', 's', NULL, 'o', 'r', 't')")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a run holding the write lock
    try:
        with Store(path, readonly=True) as store:
            assert store.duplicate_of("dup") == "kept"
            with pytest.raises(StoreError, match=str(path)):
                store.forget_duplicate("dup")
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    with pytest.raises(StoreError, match="run `aggregator run` once to migrate"):
        Store(path, readonly=True)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS) - 1,)
    with pytest.raises(StoreError, match="cannot open the state database to read it"):
        Store(tmp_path / "missing.sqlite3", readonly=True)
    assert not (tmp_path / "missing.sqlite3").exists()


def test_damaged_database_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        Store(path)


def test_a_truncated_database_is_called_damaged_with_what_to_do(ws: Workspace) -> None:
    """A state file cut short (a full disk, a bad copy) is said to be damaged, with what to
    do, by `status` and by `run`: not blamed on the folder's permissions."""
    ws.cli("run", check=True)
    data = ws.db.read_bytes()
    ws.db.write_bytes(data[: len(data) // 2])
    status = ws.cli("status")
    run = ws.cli("run")
    for proc in (status, run):
        said = proc.stdout + proc.stderr
        assert proc.returncode != 0, said
        assert f"{ws.db}: " in said and "the state database is damaged; restore it" in said, said
        assert "writable" not in said and "permission" not in said


def test_rollback_forgets_uncommitted_work(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with Store(path) as store:
        store._db.execute("INSERT INTO duplicates VALUES ('k', 'kept', 's', NULL, 'o', 'r', 't')")
        store.rollback()
        assert store.duplicate_of("k") is None


def _publish(target: Path, data: bytes) -> bool:
    """One file through ``Staging``, as a run publishes: True when it was (re)written. A file
    that could not be put in place raises its error."""
    with Staging() as staging:
        written = staging.write("feed", target, data)
        failed = staging.commit()
    if failed:
        raise failed["feed"][0]
    return written


def test_publish_writes_atomically_and_only_on_change(tmp_path: Path) -> None:
    target = tmp_path / "feeds" / "all.atom"
    assert _publish(target, b"<feed/>") is True
    mtime = target.stat().st_mtime_ns
    assert _publish(target, b"<feed/>") is False
    assert target.stat().st_mtime_ns == mtime
    assert _publish(target, b"<feed>2</feed>") is True
    assert target.read_bytes() == b"<feed>2</feed>"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in target.parent.iterdir()] == ["all.atom"]  # no temporary left behind


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs(2) is Linux's")
def test_publishing_flushes_the_output_filesystem_not_every_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run waits for its own files to reach the disk, not for every other writer on the
    host: Staging flushes with syncfs on the output's filesystem, never a global sync()."""
    from aggregator import publish

    def refuse() -> None:
        raise AssertionError("sync() of every filesystem")

    monkeypatch.setattr(publish.os, "sync", refuse)
    assert _publish(tmp_path / "a" / "all.atom", b"<feed/>") is True
    assert _publish(tmp_path / "b" / "all.atom", b"<feed/>") is True  # a second folder
    assert (tmp_path / "a" / "all.atom").read_bytes() == b"<feed/>"


def test_a_disk_that_loses_the_data_fails_the_feed_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs reporting a write error (EIO) means the new bytes may not be on disk: nothing is
    put in place and the feed fails (it is rebuilt next run). A filesystem that cannot syncfs
    (ENOSYS) is flushed with sync() instead."""
    import ctypes
    import errno

    from aggregator import publish

    target = tmp_path / "all.atom"
    target.write_bytes(b"<old/>")
    answer = {"errno": errno.EIO}

    def syncfs(fd: int) -> int:
        ctypes.set_errno(answer["errno"])
        return -1

    synced = []
    monkeypatch.setattr(publish, "_syncfs", lambda: syncfs)
    monkeypatch.setattr(publish.os, "sync", lambda: synced.append(1))
    with pytest.raises(PublishError, match=r"all\.atom: cannot write the feed \(Input/output"):
        _publish(target, b"<new/>")
    assert target.read_bytes() == b"<old/>"
    assert [p.name for p in tmp_path.iterdir()] == ["all.atom"]  # no temporary left
    answer["errno"] = errno.ENOSYS
    assert _publish(target, b"<new/>") is True
    assert target.read_bytes() == b"<new/>" and synced == [1, 1]  # before and after the rename


def test_publish_failure_names_the_file(tmp_path: Path) -> None:
    # The output "folder" is a file: nothing can be written under it, even as root.
    blocker = tmp_path / "feeds"
    blocker.write_bytes(b"not a folder")
    with pytest.raises(PublishError, match=r"all\.atom: cannot write the feed"):
        _publish(blocker / "all.atom", b"<feed/>")


def test_failed_rename_leaves_no_temporary(tmp_path: Path) -> None:
    # The target is a non-empty folder: the rename fails after the temporary was written.
    target = tmp_path / "all.atom"
    target.mkdir()
    (target / "keep").write_bytes(b"x")
    with pytest.raises(PublishError, match=r"all\.atom"):
        _publish(target, b"<feed/>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.atom"]
    assert (target / "keep").read_bytes() == b"x"


def test_a_discarded_or_abandoned_staging_leaves_nothing(tmp_path: Path) -> None:
    """What a group staged goes with ``discard``, and whatever is still staged when the
    Staging is left without a commit goes too: no temporary file, no target touched."""
    target = tmp_path / "all.atom"
    target.write_bytes(b"<old/>")
    with Staging() as staging:
        assert staging.write("a", target, b"<new/>") is True
        assert staging.write("b", tmp_path / "dw.atom", b"<dw/>") is True
        staging.discard("a")
        assert len(list(tmp_path.glob(".*.tmp"))) == 1  # b's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.atom"]
    assert target.read_bytes() == b"<old/>"


def test_a_run_deletes_the_temporaries_killed_runs_left(ws: Workspace) -> None:
    """A run killed mid-write (SIGKILL, a power cut) leaves its temporary files; the next run
    deletes those of processes that are gone, and those older than a day, in the output
    folder and its archive folders. A live writer's, and files of other names, stay."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(gone.stdout)
    ws.cli("run", check=True)
    pages = ws.out / "archive" / "all"
    pages.mkdir(parents=True, exist_ok=True)
    left = [ws.out / f".all.atom.{dead}.0123abcd.0.tmp", pages / f".3.atom.{dead}.0123abcd.7.tmp"]
    live = ws.out / f".voa.rss.{os.getpid()}.89abcdef.2.tmp"
    old = ws.out / f".dw.json.{os.getpid()}.89abcdef.3.tmp"
    other = [ws.out / ".notes.tmp", ws.out / f".all.atom.{dead}.tmp"]
    for path in [*left, live, old, *other]:
        path.write_bytes(b"<feed")
    day_and_more = time.time() - 86400 - 60
    os.utime(old, (day_and_more, day_and_more))
    ws.cli("run", check=True)
    assert [p.exists() for p in left] == [False, False]
    assert (live.exists(), old.exists()) == (True, False)
    assert all(p.exists() for p in other)


def test_rows_another_connection_commits_are_seen_after_the_next_commit(tmp_path: Path) -> None:
    # The store answers "not stored" from sets it reads once; a write by another process must
    # not be hidden by them once this connection starts a new transaction.
    path = tmp_path / "state.sqlite3"
    with Store(path) as store:
        assert store.versions("k") == []
        assert store.duplicate_of("k") is None
        store.commit()
        with sqlite3.connect(path) as db:
            db.execute("INSERT INTO duplicates VALUES ('k', 'kept', 's', NULL, 'o', 'r', 't')")
            db.execute(
                "INSERT INTO versions (key, at, text_hash, published, origin) VALUES"
                " ('k', '2022-01-01T00:00:00.000000Z', 'h', '2022-01-01T00:00:00.000000Z', 'o')"
            )
        store.commit()
        assert store.duplicate_of("k") == "kept"
        assert [v.text_hash for v in store.versions("k")] == ["h"]


def test_only_the_newest_cycles_are_kept_and_all_are_counted(tmp_path: Path) -> None:
    """A daemon records a cycle a minute: the rows stop at KEPT_CYCLES, the totals that
    /metrics reports as a Prometheus summary keep counting."""
    path = tmp_path / "state.sqlite3"
    start = datetime(2026, 11, 21, tzinfo=UTC)
    with Store(path) as store:
        for n in range(KEPT_CYCLES + 5):
            store.record_cycle(Cycle(start + timedelta(minutes=n), 0.5, 3, 0))
        store.commit()
    status = read_status(path, recent=3)
    assert status.cycles_total == KEPT_CYCLES + 5
    assert status.cycle_seconds_total == pytest.approx(0.5 * (KEPT_CYCLES + 5))
    assert [c.started for c in status.cycles] == [
        start + timedelta(minutes=KEPT_CYCLES + 4 - n) for n in range(3)
    ]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM cycles").fetchone() == (KEPT_CYCLES,)


def test_migration_8_keeps_cycle_totals_and_drops_what_retention_left(tmp_path: Path) -> None:
    """A database from before schema 8: its cycles become the totals, and rows that retention
    left behind for deleted articles (versions, sketch, signature, merges) go; a live
    article's stay."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as db:
        for migration in MIGRATIONS[:7]:
            for statement in migration.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute("PRAGMA user_version = 7")
        db.executemany(
            "INSERT INTO cycles (started, seconds, sources, failed) VALUES (?, ?, 1, 0)",
            [("2026-11-20T00:00:00+00:00", 2.0), ("2026-11-20T00:01:00+00:00", 3.0)],
        )
        db.execute(
            "INSERT INTO items (key, atom_id, source, outlet, title, author, lang, categories,"
            " summary, content, text_hash, published, updated, first_seen) VALUES ('live',"
            " 'urn:x', 's', 'o', 't', 'a', 'zh', '[]', 's', 'c', 'h', 'p', 'u', 'f')"
        )
        db.execute("INSERT INTO tombstones VALUES ('dead', 'urn:y', 'retention', 'now')")
        for key in ("live", "dead"):
            db.execute(
                "INSERT INTO versions (key, at, text_hash, published, origin) VALUES (?, 'at', 'h', 'p', 'o')",
                (key,),
            )
            db.execute("INSERT INTO signatures VALUES (?, x'00')", (key,))
            db.execute("INSERT INTO sketches VALUES (?, x'00', 1, 't', 1, '', 1, 0)", (key,))
        db.execute("INSERT INTO merges VALUES ('member', 'dead', 'r', 'm', 1, 1, 1, 0, 'at')")
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
    status = read_status(path)
    assert (status.cycles_total, status.cycle_seconds_total) == (2, 5.0)
    with sqlite3.connect(path) as db:
        for table in ("versions", "signatures", "sketches"):
            assert db.execute(f"SELECT key FROM {table}").fetchall() == [("live",)]
        assert db.execute("SELECT count(*) FROM merges").fetchone() == (0,)
