"""Records that cross module boundaries. All frozen; change them with ``dataclasses.replace``.

Every datetime here is timezone-aware UTC. Collections are tuples so records stay hashable and
immutable. Nothing in this module does I/O or knows about any library but the standard one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")


def by_fields(cls: type[_T]) -> type[_T]:
    """Pickle a frozen, slotted dataclass as its constructor and field values.

    The records a worker process sends back (``Item`` and what holds it) are pickled once per
    item each way. The dataclass default for frozen slotted classes calls ``fields()`` and
    ``object.__setattr__`` per field in Python: ~110 us per file, pickling and unpickling
    together, against ~40 us this way (bench/run_bench.py corpus, 10,000 files).
    """
    get: Callable[[Any], Any] = attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]
    single = len(fields(cls)) == 1  # type: ignore[arg-type]

    def __reduce__(self: _T) -> tuple[type[_T], tuple[Any, ...]]:
        values = get(self)
        return cls, (values,) if single else values

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


@dataclass(frozen=True, slots=True)
class Source:
    """One configured input: an archive folder (or a single file) read through an adapter."""

    name: str  # config key, also the per-source feed's file name
    title: str
    path: Path
    adapter: str = "auto"  # registry key, or "auto" to detect per file
    include: tuple[str, ...] = ("*",)  # glob patterns on file names
    lang: str | None = None  # overrides the adapter's language
    author: str | None = None  # overrides the adapter's outlet name
    homepage: str | None = None  # overrides the adapter's outlet home page
    icon: str | None = None


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One output feed: which sources go in and how it presents itself."""

    name: str
    filename: str  # relative to the output folder
    title: str
    sources: tuple[str, ...]
    subtitle: str | None = None
    lang: str | None = None  # None: derived from the sources
    link: str | None = None  # rel="alternate"; None: the base URL
    icon: str | None = None
    max_entries: int = 100


@dataclass(frozen=True, slots=True)
class Retention:
    max_age_days: int = 0  # 0 keeps items of any age
    max_items_per_source: int = 0  # 0 keeps any number


@dataclass(frozen=True, slots=True)
class Config:
    base_url: str  # public URL of the output folder, ends with "/"
    output_dir: Path
    state_db: Path
    sources: tuple[Source, ...]
    feeds: tuple[FeedSpec, ...]
    retention: Retention = Retention()
    workers: int = 0  # processes for parsing and cleaning; 0 = one per CPU
    path: Path | None = None  # the file this came from, for messages


@by_fields
@dataclass(frozen=True, slots=True)
class FileStat:
    """What a directory scan learns about one file without reading it."""

    path: str  # a plain string: 100,000 Path objects cost a second on a no-change run
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Fetched:
    """Bytes as they arrived, with where they came from."""

    origin: str  # file path or URL, shown in every message about it
    source: str  # Source.name
    data: bytes


@by_fields
@dataclass(frozen=True, slots=True)
class Image:
    url: str
    caption: str = ""


@by_fields
@dataclass(frozen=True, slots=True)
class Item:
    """One article as an adapter read it, and (after ``clean``) as it will be published."""

    source: str  # Source.name
    outlet: str  # adapter key that understood it, e.g. "voa"
    origin: str  # file path or URL it came from
    key: str  # identity: the same article always has the same key
    title: str
    link: str | None  # canonical article URL; None when the source gives none
    published: datetime
    archived: datetime | None  # when the mirror captured this version, if it says
    author: str
    author_uri: str | None
    lang: str
    content: str  # HTML; raw from the adapter, sanitised after clean
    categories: tuple[str, ...] = ()
    image: Image | None = None
    text: str = ""  # plain text of the cleaned content (set by clean)
    summary: str = ""  # plain-text summary (set by clean)
    fired: tuple[tuple[str, int], ...] = ()  # cleaning rules that fired, with counts


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored article as the writer publishes it."""

    atom_id: str
    key: str
    source: str
    outlet: str
    title: str
    link: str | None
    published: datetime
    updated: datetime
    author: str
    author_uri: str | None
    lang: str
    summary: str
    content: str
    categories: tuple[str, ...] = ()
    image: Image | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """A file or item left out of the run, and why, in words a person can act on."""

    origin: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourceReport:
    name: str
    files_seen: int = 0
    files_read: int = 0  # files whose bytes were read this run
    new: int = 0
    updated: int = 0  # same article, text changed
    unchanged: int = 0  # same article, same text (a re-archive that changed nothing)
    duplicates: int = 0  # another article's exact copy under a different key
    skipped: tuple[Skip, ...] = ()
    rules: tuple[tuple[str, int], ...] = ()  # cleaning rule -> times fired
    error: str | None = None  # the whole source failed


@dataclass(frozen=True, slots=True)
class FeedResult:
    name: str
    path: Path
    entries: int
    written: bool  # False when the bytes on disk were already identical


@dataclass(frozen=True, slots=True)
class RunReport:
    sources: tuple[SourceReport, ...]
    feeds: tuple[FeedResult, ...]
    dry_run: bool = False
    retention_removed: int = 0
    seconds: float = 0.0
    errors: tuple[str, ...] = field(default=())

    @property
    def skipped(self) -> int:
        return sum(len(s.skipped) for s in self.sources)

    @property
    def produced(self) -> bool:
        """True when at least one feed exists after the run (written now or already current)."""
        return any(f.entries > 0 for f in self.feeds)
