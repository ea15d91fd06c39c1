"""One writer per state database, across processes: an advisory lock on a file beside it.

A daemon holds the lock for as long as it runs; a one-shot ``aggregator run`` holds it for the
run. A second one waits up to the time it is given, then gives up with ``StateBusy`` naming the
process that holds the lock, instead of writing the same SQLite file and the same feed files at
the same time. ``flock`` locks belong to the open file, so the kernel releases them when the
holder exits for any reason, SIGKILL included: a crashed daemon never leaves a stale lock.
(POSIX only: fcntl. The lock file stays; it is empty of meaning but the holder's pid.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType

from aggregator.errors import StateBusy, StoreError

# How often a waiting process tries the lock again.
POLL_SECONDS = 0.2

# The descriptors of the locks this process holds. A forked worker inherits them, and with
# them the lock (a flock belongs to the open file, shared by every copy of the descriptor):
# ``close_inherited`` lets go of the worker's copies, so that the lock goes with the process
# that took it and never outlives it in an orphaned worker.
_HELD: set[int] = set()


def close_inherited() -> None:
    """Close this (forked) process's copies of the lock descriptors its parent held. The
    parent's own stay open: its locks are unchanged."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


def lock_path(state_db: Path, kind: str = "") -> Path:
    return state_db.with_name(f"{state_db.name}{'.' + kind if kind else ''}.lock")


class StateLock:
    """``with StateLock(state_db, wait=...):`` - exclusive use of the state database.

    ``kind`` names a separate lock: the daemon holds ``kind="daemon"`` for as long as it runs
    (one daemon per state database) and the plain lock only while a batch runs, so a one-shot
    ``aggregator run`` can go between two batches. ``cancel``, when set, ends a wait early."""

    def __init__(
        self,
        state_db: Path,
        wait: float = 0.0,
        purpose: str = "run",
        *,
        kind: str = "",
        cancel: threading.Event | None = None,
    ) -> None:
        self.path = lock_path(state_db, kind)
        self.state_db = state_db
        self.kind = kind
        self.wait = wait
        self.purpose = purpose  # written into the lock file for the refusal message
        self.cancel = cancel
        self._fd: int | None = None

    def __enter__(self) -> StateLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(
                f"{self.path}: cannot create the lock file ({e.strerror or e}); check that the "
                "state_db folder in config.toml is writable"
            ) from e
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                cancelled = self.cancel is not None and self.cancel.is_set()
                if cancelled or time.monotonic() >= deadline:
                    holder = _holder(fd)
                    os.close(fd)
                    raise StateBusy(self._refusal(holder)) from None
                if self.cancel is not None:
                    self.cancel.wait(POLL_SECONDS)
                else:
                    time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.purpose}\n".encode(), 0)
        self._fd = fd
        _HELD.add(fd)
        return self

    def _refusal(self, holder: str) -> str:
        waited = f" after waiting {self.wait:g} s" if self.wait else ""
        if self.kind == "daemon":
            return (
                f"{self.state_db}: {holder} is already running on this state database{waited}. "
                "One daemon per state database: stop the other one first (or give this one "
                "another state_db in its config)"
            )
        return (
            f"{self.state_db}: the state database is in use by {holder}{waited}. Only one "
            "aggregator may write it at a time: wait for the other to finish (run --wait "
            "SECONDS), stop it, or give this one another state_db"
        )

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the lock
            self._fd = None


def _holder(fd: int) -> str:
    """ "aggregator daemon (pid 1234)" from the lock file, or a vaguer phrase."""
    try:
        pid, _, purpose = os.pread(fd, 200, 0).decode().strip().partition(" ")
    except (OSError, UnicodeDecodeError):
        pid, purpose = "", ""
    if pid.isdigit():
        return f"aggregator {purpose or 'run'} (pid {pid})"
    return "another aggregator process"
