"""Linux system calls Python's ``os`` module does not offer, from the C library (ctypes).

* ``syncfs(fd)``: flush one filesystem (publish.py), instead of ``sync()`` of every disk;
* ``die_with_parent(parent)``: a worker process is killed when the process that started it
  dies (``prctl(PR_SET_PDEATHSIG)``), so a killed run leaves no orphan holding its locks.

Each is looked up when first needed (ctypes costs ~10 ms to import, which a run that writes
nothing should not pay) and is None, or does nothing, on other systems.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from functools import cache

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@cache
def _libc(name: str, *argtypes: str) -> Callable[..., int] | None:
    """The C library's ``name`` with the ctypes argument types named, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = [getattr(ctypes, t) for t in argtypes]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def syncfs() -> Callable[[int], int] | None:
    """syncfs(2), or None where there is none."""
    return _libc("syncfs", "c_int")


def last_errno() -> int:
    """The errno the last C call of this thread left (ctypes keeps a copy per thread)."""
    import ctypes

    return ctypes.get_errno()


def die_with_parent(parent: int | None) -> None:
    """Have the kernel kill this process (SIGKILL) when its parent ends: precisely, when the
    parent's thread that forked it ends, so a pool must be started by a thread that outlives
    it. ``parent`` is the parent's pid: if it has already gone, end now. None only looks the
    call up (before forking, so that each worker need not). Nothing where prctl(2) is not."""
    prctl = _libc("prctl", "c_int", "c_ulong", "c_ulong", "c_ulong", "c_ulong")
    if prctl is None or parent is None:
        return
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
