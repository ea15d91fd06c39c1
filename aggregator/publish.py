"""Feed bytes -> files in the output folder, atomically, and only when the bytes changed.

Input: a target path and the bytes it should hold. Output: True when the file was (re)written,
False when it already held exactly these bytes. The new content is written to a temporary file
in the same folder, flushed to disk, then renamed over the target (``os.replace`` is atomic on
POSIX and Windows), so a reader or web server never sees half a feed. Errors are PublishError
naming the file and what to check.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from aggregator.errors import PublishError


def unchanged(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def write_if_changed(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` unless it already holds exactly that."""
    if unchanged(path, data):
        return False
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp_name).chmod(0o644)  # mkstemp makes 0600; feeds are meant to be served
        Path(tmp_name).replace(path)  # atomic rename over the old feed
        tmp_name = None
    except OSError as e:
        raise PublishError(
            f"{path}: cannot write the feed ({e.strerror or e}); check that the output folder "
            "(output_dir in config.toml) exists, is writable and has free space"
        ) from e
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
    return True


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
