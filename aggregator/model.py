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
from typing import Any, NamedTuple, TypeVar

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
class FetchPolicy:
    """How a URL source is fetched; per-source values fall back to config.toml's [fetch]."""

    interval: float = 1800.0  # seconds between fetches when run as a daemon
    timeout: float = 30.0  # seconds for the whole fetch: connect, redirects and body
    user_agent: str = "aggregator"
    headers: tuple[tuple[str, str], ...] = ()  # extra request headers
    max_items: int = 500  # entries taken from one fetch of a feed
    max_bytes: int = 16 * 1024 * 1024  # decompressed body cap
    max_redirects: int = 5
    allow_private: bool = False  # may fetch loopback/private/link-local addresses
    cron: str | None = None  # a crontab expression instead of the interval (daemon)


@dataclass(frozen=True, slots=True)
class Source:
    """One configured input: an archive folder (or a single file), or a feed URL, read
    through an adapter."""

    name: str  # config key, also the per-source feed's file name
    title: str
    path: Path | None  # an archive folder or file; None for a URL source
    url: str | None = None  # a feed URL; None for an archive source
    adapter: str = "auto"  # registry key, or "auto" to detect per file
    include: tuple[str, ...] = ("*",)  # glob patterns on file names
    lang: str | None = None  # overrides the adapter's language
    author: str | None = None  # overrides the adapter's outlet name
    homepage: str | None = None  # overrides the adapter's outlet home page
    icon: str | None = None
    policy: FetchPolicy = FetchPolicy()

    @property
    def where(self) -> str:
        """The path or URL, for messages."""
        return self.url if self.url is not None else str(self.path)


@dataclass(frozen=True, slots=True)
class Match:
    """One side of a feed's filter (``select.py`` applies it): to be included, an entry must
    match every kind given (any keyword, and any pattern, and any category); to be excluded,
    any one value of any kind. Empty: includes everything, excludes nothing."""

    keywords: tuple[str, ...] = ()  # substrings of title or text, case and script folded
    patterns: tuple[str, ...] = ()  # regular expressions (Python syntax) on title or text
    categories: tuple[str, ...] = ()  # category terms, case folded

    def __bool__(self) -> bool:
        return bool(self.keywords or self.patterns or self.categories)


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One output feed: which sources go in and how it presents itself."""

    name: str
    filename: str  # the Atom file, relative to the output folder; twins swap the suffix
    title: str
    sources: tuple[str, ...]
    subtitle: str | None = None
    lang: str | None = None  # None: derived from the sources (or ``script``)
    link: str | None = None  # rel="alternate"; None: the base URL
    icon: str | None = None
    max_entries: int = 100
    formats: tuple[str, ...] = ("atom", "rss", "json")  # "atom" always among them
    include: Match = Match()  # entries must match this (when it says anything)
    exclude: Match = Match()  # entries matching this are left out
    max_age: float | None = None  # seconds: older entries are left out (by publication)
    script: str | None = None  # "zh-Hans", "zh-Hant", "zh-TW", "zh-HK": converted text
    archive: bool = False  # RFC 5005 archive pages for entries that leave the feed


@dataclass(frozen=True, slots=True)
class Retention:
    max_age_days: int = 0  # 0 keeps items of any age
    max_items_per_source: int = 0  # 0 keeps any number


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Where ``aggregator serve`` listens (config.toml's [serve]; --host/--port override)."""

    host: str = "127.0.0.1"  # loopback: put a reverse proxy in front, or set "0.0.0.0"
    port: int = 8080  # matches the default base_url, http://localhost:8080/
    access_log: bool = False  # one line per request on stderr
    header_timeout: float = 10.0  # seconds a client has to send a request's head (slowloris)


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
    concurrency: int = 16  # URL sources fetched at once
    per_host: int = 4  # of which at most this many from one host
    hub: str | None = None  # WebSub hub the feeds advertise and that is pinged on change
    serve: ServeSettings = ServeSettings()
    # A digest of the file's bytes as loaded: a daemon whose config.toml was edited since (and
    # run by a newer process) must not undo what that process configured.
    digest: str | None = None


class FileStat(NamedTuple):
    """What a directory scan learns about one file without reading it. A named tuple, not a
    frozen dataclass: a no-change run makes one per archive file, and a frozen dataclass's
    ``__init__`` costs ~3 us more (0.3 s for 100,000 files, bench/run_bench.py)."""

    path: str  # a plain string: 100,000 Path objects cost a second on a no-change run
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class Fetched:
    """Bytes as they arrived, with where they came from."""

    origin: str  # file path or URL, shown in every message about it
    source: str  # Source.name
    data: bytes
    is_feed: bool = False  # a downloaded feed (RSS, Atom, JSON Feed), not an archive item
    headers: tuple[tuple[str, str], ...] = ()  # HTTP response headers, lower-case names
    at: datetime | None = None  # when it was downloaded (a feed entry without a date gets it)


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
    dated: bool = True  # False: the source gave no date; ``published`` is when it was first seen
    live: bool = False  # from a fetched feed: a capture is as new as the fetch that saw it
    guid: str | None = None  # a feed entry's own id (RSS guid, Atom id, JSON Feed id)
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
    via: str | None = None  # the merged copy whose title and text are published, if not its own
    related: tuple[str, ...] = ()  # the other copies of the story merged into this entry


@dataclass(frozen=True, slots=True)
class Skip:
    """A file or item left out of the run, and why, in words a person can act on."""

    origin: str
    reason: str


@dataclass(frozen=True, slots=True)
class FetchState:
    """What the store keeps about a URL source between fetches."""

    configured: str | None = None  # the url in config.toml this state was learnt for
    url: str | None = None  # where to fetch it now (after permanent redirects)
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0  # consecutive failed fetches
    retry_at: datetime | None = None  # make no request before this
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    digest: str | None = None  # of the last body read, so an unchanged 200 is not parsed again


@dataclass(frozen=True, slots=True)
class FetchStatus:
    """What fetching a URL source did this run, for the summary and the health page."""

    outcome: str  # "fetched", "not-modified", "failed", "waiting" (backoff/Retry-After), "offline"
    detail: str = ""  # "200, 48 KiB in 0.31 s", "HTTP 503; retrying after 2026-11-21 10:00 UTC"
    failures: int = 0  # consecutive failures so far
    retry_at: datetime | None = None  # no request before this
    moved_to: str | None = None  # a permanent redirect's target (update config.toml)


@dataclass(frozen=True, slots=True)
class SourceReport:
    name: str
    files_seen: int = 0
    files_read: int = 0  # files whose bytes were read this run
    new: int = 0
    updated: int = 0  # same article, text changed
    unchanged: int = 0  # same article, same text (a re-archive that changed nothing)
    duplicates: int = 0  # another article's exact copy under a different key
    near_duplicates: int = 0  # merged into another story's entry (neardup.py)
    recleaned: int = 0  # stored captures cleaned again by a new version's rules, dates kept
    skipped: tuple[Skip, ...] = ()
    rules: tuple[tuple[str, int], ...] = ()  # cleaning rule -> times fired
    error: str | None = None  # the whole source failed
    fetch: FetchStatus | None = None  # URL sources: what the fetch did
    changed: bool = False  # an entry of this source was added or changed: its feeds rebuilt


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
    warnings: tuple[str, ...] = field(default=())  # e.g. the WebSub hub could not be pinged
    neardup_seconds: float = 0.0  # the near-duplicate pass, in this process (wall)
    sketch_seconds: float = 0.0  # computing sketches, summed over the processes that did
    neardup_peak_mb: float = 0.0  # how much the pass raised this process's peak memory

    @property
    def skipped(self) -> int:
        return sum(len(s.skipped) for s in self.sources)

    @property
    def produced(self) -> bool:
        """True when at least one feed exists after the run (written now or already current)."""
        return any(f.entries > 0 for f in self.feeds)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source as the health page and /metrics show it: its last run and its totals."""

    name: str
    title: str
    where: str  # its URL or path
    last_run: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_run: datetime | None = None  # set by the daemon
    failures: int = 0  # consecutive failed fetches (URL sources)
    retry_at: datetime | None = None  # no request before this (backoff, Retry-After)
    new: int = 0  # in the last run
    updated: int = 0
    duplicates: int = 0
    unchanged: int = 0
    skipped: int = 0
    runs: int = 0  # totals since the state database was made
    errors: int = 0
    new_total: int = 0
    updated_total: int = 0
    duplicates_total: int = 0
    # A permanent redirect learnt for the url in config.toml (moved_from): fetched from
    # moved_to until the operator updates config.toml.
    moved_from: str | None = None
    moved_to: str | None = None

    @property
    def failing(self) -> bool:
        """Its last run failed (an error since its last success, or an error and no success)."""
        return bool(self.last_error) and (
            self.last_success is None
            or self.last_error_at is None
            or self.last_error_at >= self.last_success
        )


@dataclass(frozen=True, slots=True)
class Cycle:
    """One run of the pipeline: a one-shot ``aggregator run`` or one daemon batch."""

    started: datetime
    seconds: float
    sources: int
    failed: int  # sources that failed in it
    error: str | None = None  # None: it completed and published its feeds


@dataclass(frozen=True, slots=True)
class FeedStatus:
    name: str
    title: str
    filename: str
    url: str
    entries: int = 0
    updated: datetime | None = None  # the feed's <updated>: its newest entry's (none: when emptied)


@dataclass(frozen=True, slots=True)
class Status:
    """What the state database knows about the sources, the feeds and the recent cycles."""

    sources: tuple[SourceStatus, ...]
    feeds: tuple[FeedStatus, ...]
    cycles: tuple[Cycle, ...] = ()  # the most recent first
    cycles_total: int = 0
    cycle_seconds_total: float = 0.0
    error: str | None = None  # the state database could not be read: why


# -- near duplicates (neardup.py decides; the store keeps them) ------------------------------


@by_fields
@dataclass(frozen=True, slots=True)
class Sketch:
    """What near-duplicate detection keeps of an article (stored with it)."""

    sig: bytes  # NUM_PERM little-endian uint32 values
    bands: bytes  # BANDS little-endian uint64 LSH band hashes (low bits left for the day)
    shingles: int  # distinct shingles in the text
    title: str  # folded title
    title_key: int  # title_key(title)
    numbers: str  # digest of a short text's digit runs, in order ("" for a long text)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why an article joined a story: the rule and the figures it read."""

    rule: str  # "same text", "edited", "grown"
    matched: str  # key of the article it was compared with
    similarity: float  # estimated Jaccard similarity of the texts
    containment: float  # estimated share of the shorter text inside the longer
    title_similarity: float
    days_apart: float


@dataclass(frozen=True, slots=True)
class Member:
    """One article of a story, with its own kept text and dates."""

    key: str
    shingles: int  # how full its text is
    text_hash: str
    published: datetime
    updated: datetime
    outlet: str = ""


@dataclass(frozen=True, slots=True)
class Shown:
    """What a story's entry publishes: whose title and text, and its dates."""

    key: str  # the member whose title and text are published
    text_hash: str
    published: datetime
    updated: datetime
