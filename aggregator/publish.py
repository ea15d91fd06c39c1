"""Feed bytes -> files in the output folder, atomically, and only when the bytes changed.

Input: a target path and the bytes it should hold. Output: True when the file was (re)written,
False when it already held exactly these bytes. The new content is written to a temporary file
in the same folder, flushed to disk, then renamed over the target (a rename is atomic on POSIX
and Windows), so a reader or web server never sees half a feed. ``Staging`` does this for all
the files of a run, with one sync for all of them. Errors are PublishError naming the file and
what to check.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from aggregator.errors import PublishError

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def unchanged(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


_counter = itertools.count()
_TOKEN = secrets.token_hex(4)


def _syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2) (Python has no ``os.syncfs``), else None."""
    from aggregator import linux

    return linux.syncfs()


# One flush for a whole batch of files: syncfs(2) of the filesystem that holds the output (it
# returns when the data is on disk), so a run does not wait on every other disk of the host
# as sync() would; sync() where there is no syncfs (sync() exists wherever syncfs does);
# where there is neither, each file is flushed on its own.
_SYNC_ALL = hasattr(os, "sync")


# syncfs errors that mean "cannot do it here" (no such call, a filesystem that refuses it):
# sync() instead. Any other (EIO, ENOSPC: data that did not reach the disk) fails the commit.
_NOT_SUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.EACCES})


def _flush(folders: Iterable[Path]) -> None:
    """Everything written on the filesystems that hold ``folders`` put on disk: one syncfs a
    filesystem, or sync() where there is no syncfs. OSError when the data did not get there."""
    syncfs = _syncfs()
    if syncfs is not None:
        from aggregator import linux

        done: set[int] = set()
        for folder in folders:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                device = os.fstat(fd).st_dev
                if device in done:
                    continue
                if syncfs(fd) != 0:
                    code = linux.last_errno()
                    if code in _NOT_SUPPORTED:
                        break
                    raise OSError(code, f"{os.strerror(code)} while flushing it to disk")
                done.add(device)
            finally:
                os.close(fd)
        else:
            return
    os.sync()


def _forget(tmp: Path) -> None:
    """Delete a temporary file if it is there; an error doing so hides nothing worth saying."""
    with contextlib.suppress(OSError):
        tmp.unlink()


def _error(path: Path, e: OSError) -> PublishError:
    return PublishError(
        f"{path}: cannot write the feed ({e.strerror or e}); check that the output folder "
        "(output_dir in config.toml) exists, is writable and has free space"
    )


def _write_temp(path: Path, data: bytes, sync: bool) -> Path:
    """``data`` in a new temporary file beside ``path`` (flushed to disk when ``sync``)."""
    # A name no other writer uses: this process's id, a token drawn once per process (a
    # leftover of a killed process with the same pid cannot collide) and a counter. tempfile's
    # random names cost more than the whole write of a small feed.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{_TOKEN}.{next(_counter)}.tmp")
    fd = None
    try:
        try:
            fd = os.open(tmp, _CREATE, 0o644)
        except FileNotFoundError:  # the folder is new
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, _CREATE, 0o644)
        os.fchmod(fd, 0o644)  # whatever the umask: feeds are meant to be served
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
        os.close(fd)
        fd = None
    except OSError as e:
        if fd is not None:
            os.close(fd)
        _forget(tmp)
        raise _error(path, e) from e
    return tmp


class Staging:
    """Many files replaced together: each written to a temporary file beside its target as it
    comes, then at ``commit`` flushed to disk with one ``syncfs`` of their filesystem (see
    ``_flush``) and renamed over its target.

    Every file is still replaced atomically (a reader sees the old bytes or the new, never
    half), and no rename happens before the new bytes are on disk, as with one ``fsync`` per
    file, which cost ~1 ms of wall time a file: 1.5 s for 500 feeds in three formats
    (bench/fetch_bench.py). Files are grouped (one group per feed) so that a failure is one
    feed's: ``discard(group)`` drops what a group staged, and ``commit`` reports each group
    whose renames failed. Use as a context manager: what is still staged on exit is deleted."""

    def __init__(self) -> None:
        self._groups: dict[str, list[tuple[Path, Path]]] = {}

    def write(self, group: str, path: Path, data: bytes) -> bool:
        """Stage ``data`` for ``path`` unless the file already holds exactly that."""
        if unchanged(path, data):
            return False
        tmp = _write_temp(path, data, sync=not _SYNC_ALL)
        self._groups.setdefault(group, []).append((tmp, path))
        return True

    def discard(self, group: str) -> None:
        for tmp, _ in self._groups.pop(group, ()):
            _forget(tmp)

    def commit(self) -> dict[str, tuple[PublishError, list[Path]]]:
        """Sync, rename every staged file over its target, group by group in the order staged,
        and sync again. A group whose rename fails stops there (its later files are dropped)
        and is returned with the error and the targets it did put in place; the others go on.
        When the disk reports that the data did not reach it, every group fails: before the
        renames none is put in place; after them, each is returned with all its targets."""
        failed: dict[str, tuple[PublishError, list[Path]]] = {}
        if not self._groups:
            return failed
        groups, self._groups = self._groups, {}
        folders = {path.parent for files in groups.values() for _, path in files}
        if _SYNC_ALL:
            try:
                _flush(folders)
            except OSError as e:
                for group, files in groups.items():
                    failed[group] = (_error(files[0][1], e), [])
                    for tmp, _ in files:
                        _forget(tmp)
                return failed
        for group, files in groups.items():
            for i, (tmp, path) in enumerate(files):
                try:
                    tmp.replace(path)
                except OSError as e:
                    failed[group] = (_error(path, e), [target for _, target in files[:i]])
                    for left, _ in files[i:]:
                        _forget(left)
                    break
        if _SYNC_ALL:
            # The renames on disk too, before the caller records what it published: after a
            # power cut the state must not say a file is current when the old one came back.
            try:
                _flush(folders)
            except OSError as e:
                for group, files in groups.items():
                    if group not in failed:
                        failed[group] = (_error(files[0][1], e), [path for _, path in files])
        return failed

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete whatever is still staged (nothing after a ``commit``)."""
        for group in list(self._groups):
            self.discard(group)


# ``_write_temp``'s names: .<target>.<pid>.<token>.<counter>.tmp
_TEMP_NAME = re.compile(r"\A\..+\.(\d+)\.[0-9a-f]{8}\.\d+\.tmp\Z")
# A temporary file this old is nobody's, whatever its process id says (ids are reused).
_TEMP_ORPHAN_SECONDS = 86400


def sweep(folder: Path) -> int:
    """Delete the temporary files that runs killed mid-write (SIGKILL, a power cut) left in
    ``folder`` and below: those of a process that is gone, or older than a day. Returns how
    many; a file that cannot be deleted is left for next time."""
    removed = 0
    now = time.time()
    for tmp in folder.rglob(".*.tmp"):
        m = _TEMP_NAME.match(tmp.name)
        if m is None or (_alive(int(m.group(1))) and not _stale(tmp, now)):
            continue
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or no pid one can ask about: left alone
    return True


def _stale(tmp: Path, now: float) -> bool:
    try:
        return now - tmp.lstat().st_mtime > _TEMP_ORPHAN_SECONDS
    except OSError:
        return False


def remove(path: Path) -> bool:
    """Delete ``path`` if it exists; True when it did."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise PublishError(
            f"{path}: cannot delete it ({e.strerror or e}); check the output folder's permissions"
        ) from e
    return True
