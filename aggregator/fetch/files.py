"""Local sources: list an archive folder and read its files.

Inputs: a ``Source`` (a folder or a single file, with include patterns). Outputs: ``FileStat``
records from a directory scan (no file is opened), then ``Fetched`` bytes for the files the
pipeline decides to read. Hidden files and folders (``.git``, editor swap files) are skipped.
Errors are ``FetchError`` naming the path and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fnmatch import fnmatch
from operator import attrgetter

from aggregator.errors import FetchError
from aggregator.model import Fetched, FileStat, Source

# An archive item is a few KiB (seeds/: 5-8 KiB); 16 MiB is no article and would only cost memory.
MAX_FILE_BYTES = 16 * 1024 * 1024


def scan(source: Source) -> Iterator[FileStat]:
    """Every matching file under the source's path, in a stable (sorted) order."""
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
    except OSError as e:
        raise FetchError(str(root), f"cannot look at it: {e.strerror or e}") from e
    include = None if source.include == ("*",) else source.include
    yield from _walk(str(root), include)


def _walk(folder: str, include: tuple[str, ...] | None) -> Iterator[FileStat]:
    # The hot loop of a no-change run (one pass per file of every archive): plain strings, and
    # no pattern matching for the default include; see bench/run_bench.py "no-change".
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=attrgetter("name"))
    except OSError as e:
        raise FetchError(folder, f"cannot list the folder: {e.strerror or e}") from e
    for entry in entries:
        name = entry.name
        if name[0] == ".":
            continue
        try:
            if entry.is_file():
                if include is None or any(fnmatch(name, p) for p in include):
                    st = entry.stat()
                    yield FileStat(entry.path, st.st_size, st.st_mtime_ns)
            elif entry.is_dir():
                yield from _walk(entry.path, include)
        except OSError:
            continue  # vanished or unreadable between listing and stat; the next run sees it


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
