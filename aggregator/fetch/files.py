"""Local sources: list an archive folder and read its files.

Inputs: a ``Source`` (a folder or a single file, with include patterns). Outputs: ``FileStat``
records from a directory scan (no file is opened), then ``Fetched`` bytes for the files the
pipeline decides to read. Hidden files and folders (``.git``, editor swap files) are skipped.
Errors are ``FetchError`` naming the path and the reason.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from fnmatch import fnmatch
from pathlib import Path
from stat import S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, S_IFSOCK, S_ISDIR, S_ISREG

from aggregator.errors import FetchError
from aggregator.model import Fetched, FileStat, Source

# An archive item is a few KiB (seeds/: 5-8 KiB); 16 MiB is no article and would only cost memory.
MAX_FILE_BYTES = 16 * 1024 * 1024
log = logging.getLogger("aggregator")
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def scan(
    source: Source,
    left_out: Callable[[str, str], None] | None = None,
    others: Mapping[tuple[int, int], str] | None = None,
) -> Iterator[FileStat]:
    """Every matching file under the source's path, in a stable (sorted) order.

    What matches the include patterns but cannot be read as a file (a symbolic link to nothing,
    a FIFO, a socket, a subfolder that cannot be listed, a link back up to a folder holding the
    source) is passed to ``left_out(path, reason)``; without one, it is logged. So is another
    archive source's folder met inside this one (a link to it, or nested): ``others`` maps
    each archive source's folder (device, inode) to its name."""
    root = source.path
    if root is None:
        raise FetchError(source.where, "not a local source (it has a url, not a path)")
    try:
        if root.is_file():
            st = root.stat()
            yield FileStat(str(root), st.st_size, st.st_mtime_ns)
            return
        if not root.is_dir():
            raise FetchError(str(root), "no such file or folder; fix sources.path in config.toml")
        # The folders that hold the source: a link inside it to one of them (to '..', say)
        # would read other sources' files as this source's, and the whole tree again.
        above = {(st.st_dev, st.st_ino) for st in map(os.stat, root.resolve().parents)}
        st = root.stat()
    except OSError as e:
        raise FetchError(str(root), f"cannot look at it: {e.strerror or e}") from e
    own = (st.st_dev, st.st_ino)
    elsewhere = {k: name for k, name in (others or {}).items() if k != own}
    include = None if source.include == ("*",) else source.include
    yield from _walk(str(root), include, left_out or _log_left_out, set(), above, elsewhere)


def _log_left_out(path: str, reason: str) -> None:
    log.error("%s: %s", path, reason)


def _walk(
    folder: str,
    include: tuple[str, ...] | None,
    left_out: Callable[[str, str], None],
    seen: set[tuple[int, int]],
    above: set[tuple[int, int]],
    elsewhere: Mapping[tuple[int, int], str],
) -> Iterator[FileStat]:
    # The hot loop of a no-change run (one pass per file of every archive): plain strings, no
    # pattern matching for the default include, names listed and each stat'ed once relative to
    # its open folder (no DirEntry objects, no path lookup from the root; ~25% less time, see
    # bench/run_bench.py "no-change"). ``seen`` holds the folders entered (device, inode): a
    # symbolic link back up the tree is not followed round again.
    try:
        fd = os.open(folder, _DIRECTORY)
    except OSError as e:
        raise FetchError(folder, f"cannot list the folder: {e.strerror or e}") from e
    try:
        st = os.fstat(fd)
        here = (st.st_dev, st.st_ino)
        if here in above:
            left_out(
                folder,
                "a link to a folder that holds this source (a loop); not followed: remove the "
                "link, or point the source at a folder that does not contain it",
            )
            return
        if here in elsewhere:
            left_out(
                folder,
                f"the folder of source {elsewhere[here]!r} (a link to it, or inside this "
                "source's); not read here, so each file is its own source's: remove the link, "
                "or move that folder out",
            )
            return
        if here in seen:
            left_out(
                folder, "a link to a folder this source already reads (a loop?); not read twice"
            )
            return
        seen.add(here)
        try:
            names = sorted(n for n in os.listdir(fd) if n[0] != ".")  # noqa: PTH208 - a folder fd
        except OSError as e:
            raise FetchError(folder, f"cannot list the folder: {e.strerror or e}") from e
        prefix = folder + os.sep
        for name in names:
            try:
                st = os.stat(name, dir_fd=fd)
            except OSError as e:
                if include is None or _matches(name, include):
                    _unstatable(prefix + name, name, fd, e, left_out)
                continue
            if S_ISDIR(st.st_mode):
                try:
                    yield from _walk(prefix + name, include, left_out, seen, above, elsewhere)
                except FetchError as e:  # one unreadable subfolder: say so, read the rest
                    left_out(e.origin, f"{e.reason}; its files are left out of this run")
            elif include is None or _matches(name, include):  # (no call for the default)
                if S_ISREG(st.st_mode):
                    yield FileStat(prefix + name, st.st_size, st.st_mtime_ns)
                else:
                    left_out(
                        prefix + name,
                        f"not a regular file (a {_KINDS.get(S_IFMT(st.st_mode), 'special file')}); "
                        "left out: move it out of the archive folder",
                    )
    finally:
        os.close(fd)


def takes(folder: Path, include: Sequence[str], path: Path) -> bool:
    """Whether a scan of the source at ``folder`` (its folder, or its one file) with these
    include patterns would list the file ``path``: the file itself, or one inside the folder
    under no hidden name whose name the patterns take."""
    return path == folder or (
        path.is_relative_to(folder)
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and _matches(path.name, tuple(include))
    )


def _matches(name: str, include: tuple[str, ...]) -> bool:
    return any(fnmatch(name, p) for p in include)


_KINDS = {S_IFIFO: "FIFO", S_IFSOCK: "socket", S_IFCHR: "character device", S_IFBLK: "block device"}


def _unstatable(
    path: str, name: str, fd: int, error: OSError, left_out: Callable[[str, str], None]
) -> None:
    """Say why a listed name could not be looked at, unless it was simply deleted meanwhile."""
    try:
        link = os.readlink(name, dir_fd=fd)
    except OSError:
        link = None
    if link is not None and error.errno == errno.ENOENT:
        left_out(path, f"a symbolic link to {link}, which does not exist; fix or remove the link")
    elif link is not None and error.errno == errno.ELOOP:
        left_out(path, f"a symbolic link to {link} that loops back on itself; remove it")
    elif error.errno != errno.ENOENT:  # (ENOENT without a link: deleted since the listing)
        left_out(path, f"cannot look at it: {error.strerror or error}")


def read(stat: FileStat, source: str) -> Fetched:
    """The file's bytes; FetchError when it cannot be read or is implausibly large."""
    if stat.size > MAX_FILE_BYTES:
        raise FetchError(
            stat.path,
            f"{stat.size // (1024 * 1024)} MiB is too large for an archive item "
            f"(limit {MAX_FILE_BYTES // (1024 * 1024)} MiB); is it in the right folder?",
        )
    try:
        # open(), not Path.read_bytes(): 22 us a file instead of 37 (the Path object costs).
        with open(stat.path, "rb") as f:  # noqa: PTH123 - see above
            data = f.read()
    except OSError as e:
        raise FetchError(str(stat.path), f"cannot read it: {e.strerror or e}") from e
    return Fetched(origin=stat.path, source=source, data=data)
