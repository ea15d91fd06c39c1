"""The wiring: the only module that calls more than one stage.

``run_once(config, store, now)`` takes every source through fetch -> adapter -> clean -> dedupe
-> store, runs the near-duplicate pass, applies retention, writes every output feed in each of
its formats with its archive pages (select -> script -> writer -> publish), records the run for
the health page and /metrics, commits, pings the WebSub hub, and returns a ``RunReport``. The
CLI, the daemon and the server call this module (``run_once``, ``status``, ``health``,
``exclusive``), never the stages.

A file is read only when its size or modification time differs from what the store recorded,
and parsed only when its bytes differ too; so a run with no change reads nothing and, since
the same entries give the same bytes, rewrites nothing. One bad file or item is recorded as
skipped with its reason and the run goes on; a whole source failing (its folder is missing)
is reported on that source and the others go on. An unexpected exception on one file is a bug:
it is logged with its traceback and reported, and the run goes on.

Reading, parsing and cleaning are pure per file, so they run in worker processes when there
are enough files to repay the start-up; the store is written from this process only. Each
article's near-duplicate sketch is computed there too (``neardup.sketch``, ~100 us).

Near duplicates (neardup.py) are decided once per run, after every source is in and before
the feeds are written: the articles new this run (their sketches are stored as "pending") are
compared with each other and with the stored articles published near them; each that joins
another story is hidden behind that story's entry, with the evidence recorded, and every story
that gained a member or whose member changed is presented again (fullest text, earliest date).
An interrupted run leaves its sketches pending and its changed stories marked stale, and the
next run compares and presents them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import signal
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache, partial
from pathlib import Path
from stat import S_ISDIR
from types import FrameType
from typing import TYPE_CHECKING

from aggregator import (
    __version__,
    adapters,
    archive,
    fetch,
    linux,
    opml,
    publish,
    script,
    select,
    stylesheet,
    writer,
)
from aggregator import clean as cleaning
from aggregator import config as config_mod
from aggregator.clean import clean, xml_text
from aggregator.clean.urls import as_uri
from aggregator.dedupe import (
    MIN_FINGERPRINT_CHARS,
    Outcome,
    Version,
    comparable_text,
    digest_text,
    outcome,
    resolve,
    version_time,
)
from aggregator.errors import AggregatorError, PublishError, SourceError, StoreError
from aggregator.model import (
    Config,
    Cycle,
    Entry,
    FeedResult,
    FeedSpec,
    FeedStatus,
    Fetched,
    FetchState,
    FetchStatus,
    FileStat,
    Item,
    RunReport,
    Shown,
    Sketch,
    Skip,
    Source,
    SourceReport,
    SourceStatus,
    Status,
    by_fields,
)
from aggregator.store import FeedRecord, FileState, Store, read_status
from aggregator.store.lock import StateLock, close_inherited

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    from aggregator.fetch.http import HttpResult

log = logging.getLogger("aggregator")

# Below this many files to read, worker processes cost more to start than they save.
PARALLEL_THRESHOLD = 256
# From this many URL sources never read before, a run's feeds are read (parsed and cleaned)
# by worker processes while this one stores them: ~10 ms of CPU a feed.
PARALLEL_FEEDS = 64
# Commit every this many files, so an interrupted cold run keeps what it did.
COMMIT_EVERY = 2000
# URL sources: commit at most this often while fetches complete.
COMMIT_SECONDS = 1.0

Progress = Callable[[str, int, int], None]  # (source name, files done, files to read)


@by_fields
@dataclass(frozen=True, slots=True)
class Ready:
    """A cleaned item with its text fingerprint, computed in the worker (it costs ~80 us)."""

    item: Item
    text_hash: str
    chars: int  # length of its comparable text (teasers: dedupe.resolve)
    sketch: Sketch | None = None  # for near duplicates; None when the text is too short
    sketch_ns: int = 0  # what computing it cost, for the run report

    @property
    def matchable(self) -> bool:
        """Long enough to be matched by fingerprint alone."""
        return self.chars >= MIN_FINGERPRINT_CHARS


@by_fields
@dataclass(frozen=True, slots=True)
class Prepared:
    """What a worker returns for one file."""

    stat: FileStat
    digest: str
    items: tuple[Ready, ...] = ()
    skip: str | None = None  # reason the file was left out
    same_bytes: bool = False  # the bytes match what was read before: nothing to do
    bug: str | None = None  # traceback of an unexpected exception


def prepare(stat: FileStat, source: Source, known_digest: str | None) -> Prepared:
    """Read, parse and clean one file. Pure apart from reading the file; runs in a worker."""
    try:
        fetched = fetch.read(stat, source.name)
        digest = _digest(fetched.data)
        if digest == known_digest:
            return Prepared(stat, digest, same_bytes=True)
        items = tuple(
            _ready(_clean(item, source)) for item in adapters.parse(fetched, source.adapter)
        )
        return Prepared(stat, digest, items)
    except SourceError as e:
        return Prepared(stat, "", skip=e.reason)
    except Exception as e:  # a bug: report it with its traceback, keep the run going
        reason = f"internal error ({type(e).__name__}: {e}); please report it"
        return Prepared(stat, "", skip=reason, bug=traceback.format_exc())


def _clean(item: Item, source: Source) -> Item:
    profile = adapters.ADAPTERS[item.outlet]
    author = source.author or item.author
    author_uri = source.homepage or item.author_uri
    # config.toml's sources usually repeat the outlet's own home page: no copy then (~8 us).
    if (author, author_uri) != (item.author, item.author_uri):
        item = replace(item, author=author, author_uri=author_uri)
    item = clean(item, profile.rules, profile.zone)
    # The source's lang, when config.toml gives one, over the script the cleaned text is in.
    return item if source.lang in (None, item.lang) else replace(item, lang=source.lang)


def _ready(item: Item) -> Ready:
    from aggregator import neardup  # numpy: only in runs that read something

    comparable = comparable_text(item.text)
    started = time.thread_time_ns()  # CPU: workers share the cores with the main process
    sketch = neardup.sketch(comparable, item.title)
    spent = time.thread_time_ns() - started
    return Ready(item, digest_text(comparable), len(comparable), sketch, spent)


_CLEANING_CODE = ("clean", "adapters", "dates.py", "script.py")


@cache
def _cleaning_code() -> str:
    """A digest of the code that turns a file into a cleaned item (read once a process)."""
    package = Path(__file__).parent
    h = hashlib.blake2b(digest_size=16)
    for name in _CLEANING_CODE:
        part = package / name
        for path in sorted(part.glob("*.py")) if part.is_dir() else [part]:
            h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


# Read when the module loads: a daemon whose package is upgraded on disk under it goes on
# cleaning by the rules it loaded, and must record those.
_cleaning_code()


def cleaning_signature() -> str:
    """What a stored article's cleaning was made with: the cleaning and adapter code, and the
    rules in force (by name). A source whose articles were made with another signature is
    re-cleaned (``_ingest``)."""
    names = [rule.name for rule in (*cleaning.BEFORE_OUTLET, *cleaning.AFTER_OUTLET)]
    for key in sorted(adapters.ADAPTERS):
        names += [f"{key}:{rule.name}" for rule in adapters.ADAPTERS[key].rules]
    return hashlib.blake2b(
        (_cleaning_code() + "\0" + "\0".join(names)).encode(), digest_size=16
    ).hexdigest()


def _prepare_star(args: tuple[FileStat, Source, str | None]) -> Prepared:
    return prepare(*args)


@dataclass
class _RunState:
    """What the whole run gathers across sources."""

    sketch_ns: int = 0  # spent computing sketches (in the workers, when there are workers)
    # The cleaning this version does (read once a run, not once a source: 500 URL sources
    # computed it 500 times).
    signature: str = field(default_factory=cleaning_signature)
    # Each archive source's folder (device, inode): one source does not read another's.
    folders: dict[tuple[int, int], str] = field(default_factory=dict)


@dataclass
class _Tally:
    """Counts for one source while it runs; frozen into a SourceReport at the end."""

    name: str
    files_seen: int = 0
    files_read: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    recleaned: int = 0
    reclean: bool = False  # the source's articles were cleaned by other rules: clean them again
    recorded: set[str] = field(default_factory=set)  # files read before, when re-cleaning
    skipped: list[Skip] = field(default_factory=list)
    rules: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    fetch: FetchStatus | None = None
    changed: bool = False  # an entry of this source was written: its feeds must be rebuilt
    run: _RunState = field(default_factory=_RunState)

    def report(self) -> SourceReport:
        return SourceReport(
            name=self.name, files_seen=self.files_seen, files_read=self.files_read,
            new=self.new, updated=self.updated, unchanged=self.unchanged,
            duplicates=self.duplicates, recleaned=self.recleaned, skipped=tuple(self.skipped),
            rules=tuple(sorted(self.rules.items())), error=self.error, fetch=self.fetch,
            changed=self.changed,
        )  # fmt: skip


class _Workers:
    """One process pool for the whole run: started before the fetches when there are many
    feeds (``start``), else the first time a source has enough files."""

    def __init__(self, config: Config) -> None:
        self.count = max(1, min(config.workers or (os.cpu_count() or 1), 8))
        self._pool: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    def start(self) -> None:
        """Start the workers now, if there are to be any (``count`` > 1). Every worker is
        forked before this returns: a run's workers before its fetch thread starts."""
        if self.count == 1 or self._pool is not None:
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor  # ~12 ms: only when used

        # numpy: loaded once here, not by every worker (~0.25 s each); this process compares
        # the sketches after.
        from aggregator import neardup  # noqa: F401

        linux.die_with_parent(None)  # looked up once here, not in every worker
        # fork, named: the workers inherit what this process loaded (Python 3.14 would
        # otherwise start them from a fork server, whose child _worker_init refuses).
        self._pool = ProcessPoolExecutor(
            max_workers=self.count, mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_init, initargs=(os.getpid(),),
        )  # fmt: skip
        try:
            self._pool.submit(os.getpid).result()  # with fork, every worker starts now
        except Exception as e:  # BrokenProcessPool, OSError (no processes left)
            log.warning("could not start worker processes (%s); reading in this one", e)
            self.discard()

    def discard(self) -> None:
        """The workers are broken (one was killed): none from now on in this run."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool, self.count = None, 1

    def submit(self, fn: Callable[[Source, Fetched], FeedRead], source: Source,
               fetched: Fetched) -> Future[FeedRead] | None:  # fmt: skip
        """The reading of one feed by a worker; None once the workers are gone (one died:
        the caller reads the feed itself, as every later one this run)."""
        if self._pool is None:
            return None
        try:
            return self._pool.submit(fn, source, fetched)
        except RuntimeError as e:  # BrokenProcessPool
            log.warning("the worker processes stopped (%s); reading the rest here", e)
            self.discard()
            return None

    def map(self, source: Source, todo: list[tuple[FileStat, str | None]]) -> Iterator[Prepared]:
        if self.count == 1 or len(todo) < PARALLEL_THRESHOLD:
            return (prepare(stat, source, digest) for stat, digest in todo)
        self.start()
        assert self._pool is not None
        args = ((stat, source, digest) for stat, digest in todo)
        return self._pool.map(_prepare_star, args, chunksize=64)

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=cancel)


def _outcome(future: Future[FeedRead], workers: _Workers) -> FeedRead | None:
    """A worker's reading of a feed; None when the worker could not give it (it died: the
    feed is read again here, and so is everything after it this run)."""
    try:
        return future.result()
    except Exception as e:  # BrokenProcessPool: a worker was killed (out of memory...)
        log.warning("a worker process failed (%s: %s); reading its feed here", type(e).__name__, e)
        workers.discard()
        return None


def _worker_init(parent: int) -> None:
    # Ctrl-C reaches every process of the terminal's group; the main process decides how to
    # stop (it stops taking results and cancels the rest), the workers must not die mid-item.
    # So do SIGTERM to the whole service (systemd's default) and SIGHUP to the terminal's
    # group. (The daemon's handlers came with the fork, but they would ask a batch in this
    # process to stop, where there is none.)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    # And a worker goes when the run or daemon that started it dies, even by SIGKILL, without
    # keeping the state lock held through its inherited descriptor.
    close_inherited()
    linux.die_with_parent(parent)


def _merge(ready: Ready, store: Store, now: datetime, tally: _Tally, again: bool = False) -> None:
    """Store one cleaned item: new article, new version of one, or exact duplicate. ``again``:
    the item comes from a file read before, being re-cleaned (``_recleaned``)."""
    item, text_hash = ready.item, ready.text_hash
    tally.run.sketch_ns += ready.sketch_ns
    if store.removed(item.key):  # retention deleted it: a later capture must not revive it
        tally.unchanged += 1
        return
    store.carry(item.key, item.source)  # another source may show it; see Store.rehome
    version = Version(
        version_time(item.published, item.archived), text_hash, item.published, ready.chars
    )
    known = store.versions(item.key)
    if again and _recleaned(ready, version, known, store, now, tally):
        return
    if not item.dated and known:
        # The source gives no date: the entry is what was first seen, and a version is new
        # only when its text is.
        if any(v.text_hash == text_hash for v in known):
            tally.unchanged += 1
            return
        version = Version(now, text_hash, min(v.published for v in known), ready.chars)
    elif item.live and known:
        # A feed's entry edited under the time it gave before (most CMSs keep an RSS item's
        # pubDate): the text this feed sent last is no news; another one (an edit, or an
        # edit taken back) is as new as this fetch.
        last = max(store.versions(item.key, item.origin), default=None)
        if last is not None and version.at <= last.at:
            if text_hash == last.text_hash:
                # Its title or link may still have changed: shown when this capture is.
                after = resolve(known)
                if after.kept == last and not store.shows(item, after):
                    store.save_item(item, after, now)
                    tally.changed = True
                    if (story := store.story_of(item.key)) is not None:
                        store.stale_story(story)
                tally.unchanged += 1
                return
            version = replace(version, at=max(now, last.at + timedelta(seconds=1)))
    if not known:
        if ready.matchable:
            other = store.same_text(text_hash, item.key)
            if other is not None:
                store.add_duplicate(item, other, "same text", now)
                tally.duplicates += 1
                return
        if store.duplicate_of(item.key) is not None:
            store.forget_duplicate(item.key)  # its text no longer matches: an article of its own
    if version in known:
        tally.unchanged += 1
        return
    before = resolve(known) if known else None
    store.add_version(item.key, version, item.origin)
    after = resolve([*known, version])
    result = outcome(before, after)
    if after.kept == version:
        store.save_item(item, after, now)
        if ready.sketch is not None and (before is None or before.kept != after.kept):
            store.save_sketch(item.key, ready.sketch, _day(after.published))
        tally.changed = True
    elif result is not Outcome.UNCHANGED:
        store.save_dates(item.key, after)
        tally.changed = True
    if result is not Outcome.UNCHANGED and (story := store.story_of(item.key)) is not None:
        store.stale_story(story)
    if result is Outcome.NEW:
        tally.new += 1
    elif result is Outcome.UPDATED:
        tally.updated += 1
    else:
        tally.unchanged += 1


def _recleaned(
    ready: Ready, version: Version, known: list[Version], store: Store, now: datetime,
    tally: _Tally,
) -> bool:  # fmt: skip
    """For an item of a file read before, in a source being re-cleaned (``_ingest``): True
    when the file's capture was stored, now saved as this version's rules clean it. The
    capture's stored version (found by its file) takes the new text and dates in place, and so
    do other captures that had its old text (files since deleted, a feed's copy), so the change
    counts as no edit: ``updated`` moves only where captures' texts now differ differently. When
    the text is the same, the stored title, links and pictures are still brought up to date. An
    exact duplicate stays one: its article may not be re-cleaned yet."""
    item = ready.item
    if store.duplicate_of(item.key) is not None:
        tally.unchanged += 1
        return True
    same = store.versions(item.key, item.origin)
    if not same:
        return False  # not stored from this file (its key changed): taken in as usual
    if len(same) > 1:
        # A feed's entry captured several times (or a file edited in place): the file or the
        # snapshot holds its latest capture.
        latest = max(v.at for v in same)
        same = [v for v in same if v.at == latest]
    if item.live or not item.dated:
        # The time of a feed's capture is when it was seen (_merge), not one read from it;
        # a date the source gives is read again.
        published = item.published if item.dated else same[0].published
        version = replace(version, at=same[0].at, published=published)
    moved = same != [version]  # the new rules clean this capture differently
    if moved:
        store.replace_version(
            item.key, item.origin, version, {v.text_hash for v in same}, same[0].at
        )
        known = store.versions(item.key)
    after = resolve(known)
    shown = after.kept.text_hash == version.text_hash  # the entry shows this capture's text
    if not moved and (not shown or store.shows(item, after)):
        tally.unchanged += 1  # cleaned as before
        return True
    if shown:
        store.save_item(item, after, now)
        if ready.sketch is not None:
            store.save_sketch(item.key, ready.sketch, _day(after.published))
    else:
        store.save_dates(item.key, after)
    if (story := store.story_of(item.key)) is not None:
        store.stale_story(story)  # its entry's text or dates may have moved
    tally.recleaned += 1
    tally.changed = True
    return True


def _day(when: datetime) -> int:
    """Days since 1970: the publication day near-duplicate candidates are windowed by."""
    return max(0, int(when.timestamp() // 86400))


def _ingest(
    workers: _Workers, source: Source, store: Store, now: datetime, dry_run: bool,
    progress: Progress | None, run: _RunState, stop: Callable[[], bool] | None = None,
) -> SourceReport:  # fmt: skip
    tally = _Tally(source.name, run=run)
    try:
        stats = list(
            fetch.scan(
                source,
                lambda path, why: tally.skipped.append(Skip(_shown(path), why)),
                run.folders,
            )
        )
    except SourceError as e:
        tally.error = str(e)  # with its path; reported once, by the summary or the daemon's log
        return tally.report()
    tally.files_seen = len(stats)
    stats = _named(stats, tally)
    # The listing (every path, size and mtime) as it was when all its files had been taken
    # in: the same listing means no file changed, without 100,000 file records compared; a
    # changed one is compared line by line with it, and only the files whose line is new are
    # looked up.
    lines = list(map("%s\0%d\0%d".__mod__, stats))
    text = "\n".join(lines)
    listing = hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()
    stored_listing = store.listing_digest(source.name)
    signature = run.signature
    # Articles made by other cleaning rules (an upgrade) are made again from their files, once:
    # until a run has taken in every file (a stopped one leaves it to the next). A source none
    # of whose files was recorded yet is made by these rules from its first file on, so a
    # first run stopped part way is no reason to read again what it took in.
    if not store.has_files(source.name):
        if not dry_run:
            store.set_cleaned_by(source.name, signature)
    else:
        tally.reclean = store.cleaned_by(source.name) != signature
    if tally.reclean:
        log.warning(
            "source %s: its articles were cleaned by an earlier version's rules; reading its "
            "%d file%s again to clean them with this version's (once; entry ids are kept)",
            source.name, len(stats), "" if len(stats) == 1 else "s",
        )  # fmt: skip
    elif stored_listing == listing:
        _skipped_again(store, source, stats, set(), tally)
        return tally.report()
    before = None if tally.reclean else store.listing_lines(source.name)
    if before is None:
        candidates = stats
        known = store.file_states(source.name)
        recorded = list(known)
        if tally.reclean:
            tally.recorded = set(known)
    else:
        seen = set(before)
        candidates = [stat for stat, line in zip(stats, lines, strict=True) if line not in seen]
        del seen
        known = store.file_states(source.name, [stat.path for stat in candidates])
        _skipped_again(store, source, stats, {stat.path for stat in candidates}, tally)
        # Lines of the old listing missing from this one: files changed or deleted. Only then
        # is the old listing's every path looked at (not in a run that only adds files).
        vanished = len(before) - (len(lines) - len(candidates))
        recorded = [line.partition("\0")[0] for line in before] if vanished else []
    # The records of deleted files go, so the state does not grow with every file an archive
    # ever held (their articles stay).
    if recorded and stats and not dry_run:
        store.forget_files(source.name, _deleted(recorded, stats))
    del before, lines, recorded
    todo: list[tuple[FileStat, str | None]] = []
    for stat in candidates:
        state = known.get(stat.path)
        if tally.reclean:
            todo.append((stat, None))  # read and cleaned whatever its bytes
            continue
        if state is not None and (state.size, state.mtime_ns) == (stat.size, stat.mtime_ns):
            if state.status == "skipped":
                tally.skipped.append(Skip(stat.path, f"{state.reason} (file unchanged)"))
            continue
        todo.append((stat, state.digest if state is not None else None))
    del known
    store.expect(len(todo))
    complete = True
    store.save_listing(source.name, None)  # until every file of this listing is taken in
    for done, prepared in enumerate(workers.map(source, todo), start=1):
        if stop is not None and stop():
            # Files not taken in stay unrecorded, so the next run reads them.
            log.info("source %s: stopped after %d of %d files", source.name, done - 1, len(todo))
            complete = False
            break
        _take(prepared, source, store, now, tally)
        if not dry_run and done % COMMIT_EVERY == 0:
            store.commit()
        if progress is not None:
            progress(source.name, done, len(todo))
    if complete and stats:  # (an empty listing is not kept: see _deleted)
        store.save_listing(source.name, listing, text)
    if complete and stats and not dry_run:  # (an empty folder may be a disk not mounted)
        store.set_cleaned_by(source.name, signature)
    return tally.report()


def _named(stats: list[FileStat], tally: _Tally) -> list[FileStat]:
    """``stats`` without the files whose names are not valid UTF-8 (the state database and the
    report hold text): each is skipped, with what to do, on every run until it is renamed."""
    good: list[FileStat] = []
    for stat in stats:
        if stat.path.isascii() or _utf8(stat.path):
            good.append(stat)
            continue
        tally.skipped.append(
            Skip(_shown(stat.path), "the file name is not valid UTF-8; rename the file (convmv converts a "
                 "whole folder's names from their old encoding)")
        )  # fmt: skip
    return good


def _shown(path: str) -> str:
    """``path`` as text that can be printed and stored: the bytes of a name that is not valid
    UTF-8 as backslash escapes."""
    if path.isascii() or _utf8(path):
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _folder(path: str) -> str:
    # os.path on str, not Path objects: this runs for every file of a listing (~10x cheaper).
    return os.path.dirname(path)  # noqa: PTH120


def _deleted(recorded: Iterable[str], stats: list[FileStat]) -> list[str]:
    """The recorded paths whose files are gone for good: not listed, and in a folder that still
    lists files, or in a folder deleted from one. A folder that is there but lists nothing (a
    disk not mounted, a folder that cannot be read) keeps its records, so its files coming
    back are not read again; so does a folder emptied of every file."""
    listed = {stat.path for stat in stats}
    live: set[str] = set()  # every folder that holds a listed file, and their parents
    for stat in stats:
        folder = _folder(stat.path)
        while folder not in live:
            live.add(folder)
            parent = _folder(folder)
            if parent == folder:
                break
            folder = parent
    verdict: dict[str, bool] = {}

    def gone_for_good(folder: str) -> bool:
        if folder not in verdict:
            probe = folder
            while probe not in live and not Path(probe).is_dir():  # deleted: ask its parent
                parent = _folder(probe)
                if parent == probe:
                    break
                probe = parent
            verdict[folder] = probe in live
        return verdict[folder]

    return [path for path in recorded if path not in listed and gone_for_good(_folder(path))]


def _skipped_again(
    store: Store, source: Source, stats: list[FileStat], fresh: set[str], tally: _Tally
) -> None:
    """Report again the files recorded as skipped that are still listed and unchanged (not in
    ``fresh``, the ones this run looks at). Only the listed ones count: the record of a deleted
    one can stay (see ``_deleted``)."""
    skipped = store.skipped_files(source.name)
    present = {stat.path for stat in stats} if skipped else set()
    for path, reason in skipped:
        if path in present and path not in fresh:
            tally.skipped.append(Skip(path, f"{reason} (file unchanged)"))


def _take(p: Prepared, source: Source, store: Store, now: datetime, tally: _Tally) -> None:
    origin = p.stat.path
    if not p.same_bytes:
        tally.files_read += 1
    if p.bug:
        log.error("bug while reading %s; please report this traceback:\n%s", origin, p.bug)
    if p.skip is not None:
        log.warning("skipped %s: %s", origin, p.skip)
        tally.skipped.append(Skip(origin, p.skip))
        # Remember the bad file so the next run does not read it again until it changes.
        state = FileState(p.stat.size, p.stat.mtime_ns, p.digest, "skipped", p.skip)
        store.record_file(source.name, origin, state, now)
        return
    again = tally.reclean and origin in tally.recorded  # a file read before, cleaned again
    for ready in p.items:
        _merge(ready, store, now, tally, again)
        tally.rules.update(dict(ready.item.fired))
    store.record_file(
        source.name, origin, FileState(p.stat.size, p.stat.mtime_ns, p.digest, "ok", None), now
    )


# -- URL sources ---------------------------------------------------------------------------


def _fetch_urls(
    config: Config,
    sources: list[Source],
    states: dict[str, FetchState],
    store: Store,
    now: datetime,
    offline: bool,
    stop: Callable[[], bool] | None = None,
) -> Iterator[tuple[Source, FetchState, HttpResult | Fetched | None]]:
    """Each URL source with its stored state and what this run got for it, in the order the
    fetches complete: a fetch result, or with ``offline`` the stored snapshot (None when there
    is none). Once ``stop`` says True no further fetch starts (those under way end)."""
    if offline:
        for s in sources:
            yield s, states[s.name], store.snapshot(s.name)
        return
    from aggregator.fetch import http  # httpx only when there is something to fetch

    by_name = {s.name: s for s in sources}
    targets = [replace(s, url=_current_url(s, states[s.name])) for s in sources]
    for result in http.fetch_all(
        targets, states, now, concurrency=config.concurrency, per_host=config.per_host,
        stop=stop,
    ):  # fmt: skip
        yield by_name[result.source], states[result.source], result


def _commit(config: Config, store: Store, changed: set[str]) -> None:
    """Commit what the run has taken in so far, with the feeds of the sources in ``changed``
    (emptied) marked outdated in the same transaction: a run stopped or killed before it
    writes them leaves them to the next, which would otherwise find no file changed and keep
    them as they were, without these articles."""
    if changed:
        store.outdate_feeds([f.name for f in config.feeds if changed.intersection(f.sources)])
        changed.clear()
    store.commit()


def _fetch_state(source: Source, store: Store, retry_now: bool) -> FetchState:
    """What the source's fetch starts from. A url changed in config.toml since the last
    fetch is a new feed: its failures, wait and validators are the old address's. With
    ``retry_now`` (``run --retry-now``) a waiting source is fetched at once; its failures
    still count."""
    state = store.fetch_state(source.name)
    if state.configured is not None and state.configured != source.url:
        state = replace(
            state, failures=0, retry_at=None, etag=None, last_modified=None, digest=None
        )
    return replace(state, retry_at=None) if retry_now else state


def _current_url(source: Source, state: FetchState) -> str | None:
    """Where the source lives now: its permanent-redirect target, unless config.toml's url
    has changed since that was learnt."""
    if state.url and state.configured == source.url:
        return state.url
    return source.url


def _to_read(
    source: Source, state: FetchState, got: HttpResult | Fetched | None, now: datetime
) -> Fetched | None:
    """The feed a fetch brought that must be read: new bytes (not a 304, a failure, or the
    bytes read last time). ``--offline`` snapshots are read in ``_ingest_url`` itself."""
    if isinstance(got, Fetched) or got is None or got.outcome != "fetched":
        return None
    if _digest(got.data) == state.digest:
        return None
    return Fetched(got.final_url, source.name, got.data, True, got.headers, now)


def _digest(body: bytes) -> str:
    """What tells a file's or a feed's bytes from those read last time."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def _ingest_url(
    source: Source,
    state: FetchState,
    got: HttpResult | Fetched | None,
    store: Store,
    now: datetime,
    run: _RunState,
    read: FeedRead | None = None,
) -> SourceReport:
    """Take in what the fetch of one URL source got: its fetch state, its snapshot, and the
    entries of new bytes, which ``read`` holds when they were read already (in a worker,
    from ``_to_read``); else they are read here."""
    tally = _Tally(source.name, run=run)
    if got is None:
        tally.error = "no snapshot stored yet; run once without --offline to fetch it"
        tally.fetch = FetchStatus("offline", tally.error)
        return tally.report()
    if isinstance(got, Fetched):  # --offline: the snapshot, always parsed again
        tally.fetch = FetchStatus("offline", f"snapshot of {got.at:%Y-%m-%d %H:%M:%S} UTC")
        _take_feed(
            source, got, store, now, tally, again=_cleaning_changed(source, store, run.signature)
        )
        return tally.report()
    _reclean_snapshot(source, store, now, tally)
    from aggregator.fetch import http

    fetched = None
    if got.outcome == "fetched":
        fetched = Fetched(got.final_url, source.name, got.data, True, got.headers, now)
        digest = _digest(got.data)
        if digest != state.digest:
            read = read if read is not None else read_feed(source, fetched)
            if read.error is not None:
                # Not a feed (a login wall, a captcha page, garbage): a failure like a 5xx,
                # backed off, with the last feed's validators, bytes and snapshot kept, and
                # its address (a permanent redirect to a login page is not the feed's).
                _log_bugs(read)
                got = replace(got, outcome="failed", reason=read.error, moved_to=None)
                fetched = None
    failures, retry_at = http.next_attempt(got, state, now)
    url = _current_url(source, state) or got.url
    new_state = replace(
        state, configured=source.url, url=got.moved_to or url, failures=failures,
        retry_at=retry_at,
    )  # fmt: skip
    detail = ""
    if got.outcome == "waiting":
        detail = got.reason or ""
    elif not got.ok:
        detail = got.reason or "failed"
        tally.error = f"{got.url}: {detail}"
        new_state = replace(new_state, last_attempt=now, last_error=detail)
    else:
        new_state = replace(new_state, last_attempt=now, last_success=now, last_error=None)
        detail = f"{got.status}, {len(got.data) // 1024} KiB in {got.seconds:.2f} s"
        if got.outcome == "not-modified":
            detail = f"304 in {got.seconds:.2f} s"  # the outcome says "not-modified"
    if got.moved_to:
        log.warning(
            "source %s moved permanently to %s; update its url in config.toml", source.name,
            got.moved_to,
        )  # fmt: skip
    if fetched is not None:
        new_state = replace(
            new_state, etag=got.validator("etag"), last_modified=got.validator("last-modified"),
            digest=digest,
        )  # fmt: skip
        store.save_snapshot(fetched)
        if read is not None and digest != state.digest:
            _store_feed(read, store, now, tally)
        else:
            detail += ", same bytes as last time"
    if retry_at is not None and got.outcome != "waiting":
        detail += f"; next try not before {retry_at:%Y-%m-%d %H:%M:%S} UTC"
    tally.fetch = FetchStatus(got.outcome, detail, failures, retry_at, got.moved_to)
    store.save_fetch_state(source.name, new_state)
    return tally.report()


@by_fields
@dataclass(frozen=True, slots=True)
class FeedRead:
    """One downloaded feed parsed and its entries cleaned: pure, so it may run in a worker
    (``read_feed``); the main process logs what it says and stores the items
    (``_store_feed``)."""

    origin: str
    items: tuple[Ready, ...] = ()
    skipped: tuple[Skip, ...] = ()  # entries left out, with their reasons
    error: str | None = None  # why the whole feed could not be read
    bugs: tuple[tuple[str, str, str], ...] = ()  # unexpected exceptions: (doing, origin, trace)


def read_feed(source: Source, fetched: Fetched) -> FeedRead:
    """Parse and clean every entry of one downloaded feed. An entry that fails is skipped
    with its reason, the others go on; a feed that cannot be read at all gives ``error``."""
    try:
        items, skipped, traces = adapters.parse_feed(
            fetched, source.adapter, source.policy.max_items
        )
    except SourceError as e:
        return FeedRead(fetched.origin, error=e.reason)
    except Exception as e:  # a bug: this source fails with its reason, the others go on
        reason = f"internal error ({type(e).__name__}: {e}); please report it"
        bug = ("reading", fetched.origin, traceback.format_exc())
        return FeedRead(fetched.origin, error=reason, bugs=(bug,))
    ready: list[Ready] = []
    left = list(skipped)
    bugs = [("reading", entry, trace) for entry, trace in traces]
    for item in items:
        try:
            ready.append(_ready(_clean(item, source)))
        except SourceError as e:
            left.append(Skip(item.origin, e.reason))
        except Exception as e:  # a bug: report it with its traceback, keep the run going
            bugs.append(("cleaning", item.origin, traceback.format_exc()))
            left.append(Skip(item.origin, f"internal error ({type(e).__name__}: {e})"))
    return FeedRead(fetched.origin, tuple(ready), tuple(left), bugs=tuple(bugs))


def _take_feed(
    source: Source, fetched: Fetched, store: Store, now: datetime, tally: _Tally,
    again: bool = False,
) -> None:  # fmt: skip
    """Parse, clean and store every entry of one downloaded feed. ``again``: the feed was
    taken in before, by other cleaning rules (``_reclean_snapshot``)."""
    _store_feed(read_feed(source, fetched), store, now, tally, again)


def _store_feed(
    read: FeedRead, store: Store, now: datetime, tally: _Tally, again: bool = False
) -> None:
    """Store what ``read_feed`` gave, and say what it left out."""
    _log_bugs(read)
    if read.error is not None:
        tally.error = f"{read.origin}: {read.error}"
        return
    tally.files_seen = tally.files_read = len(read.items) + len(read.skipped)
    tally.skipped.extend(read.skipped)
    for skip in read.skipped:
        log.warning("skipped %s: %s", skip.origin, skip.reason)
    for ready in _reslugged(read.items, store):
        _merge(ready, store, now, tally, again)
        tally.rules.update(dict(ready.item.fired))


def _log_bugs(read: FeedRead) -> None:
    for doing, origin, trace in read.bugs:
        log.error("bug while %s %s; please report this traceback:\n%s", doing, origin, trace)


def _reslugged(items: tuple[Ready, ...], store: Store) -> list[Ready]:
    """A feed's entries, each under the article its guid was stored under when its link
    changed since (a headline edit gives a post a new slug: WordPress, most news CMSs). That
    takes the same guid, a link never stored, the old link gone from the feed, and the
    article's publication date or text. A guid the feed gives twice identifies nothing, and
    one handed on to another article (feeds that number their items by position) is recorded
    as that article's from now on."""
    count = Counter(ready.item.guid for ready in items)
    keys = {ready.item.key for ready in items}
    befores = {
        ready.item.guid: store.guid_key(ready.item.source, ready.item.guid)
        for ready in items
        if ready.item.guid is not None and count[ready.item.guid] == 1
    }
    # An article several of the feed's guids were stored under is no one entry's (a version
    # that took a home-page link for every entry's address merged them all into it).
    claimed = Counter(befores.values())
    out: list[Ready] = []
    for ready in items:
        item = ready.item
        if item.guid is not None and count[item.guid] == 1:
            before = befores[item.guid]
            if before is not None and before != item.key and before not in keys and (
                claimed[before] == 1
            ) and not store.versions(item.key) and any(
                v.published == item.published or v.text_hash == ready.text_hash
                for v in store.versions(before)
            ):  # fmt: skip
                log.info(
                    "%s: entry %s moved to %s; kept as the same article", item.origin, item.guid,
                    item.link,
                )  # fmt: skip
                ready = replace(ready, item=replace(item, key=before))
            elif before != item.key:
                store.save_guid(item.source, item.guid, item.key)
        out.append(ready)
    if items:  # (an empty answer forgets nothing: the entries may come back)
        # A guid that left the feed identifies nothing any more: one row per entry ever seen
        # would grow the state for ever.
        store.keep_guids(items[0].item.source, {g for g in count if g is not None})
    return out


def _reclean_snapshot(source: Source, store: Store, now: datetime, tally: _Tally) -> None:
    """A URL source's entries stored by other cleaning rules (an upgrade): its last fetched
    body (the snapshot) is read again, once, and the captures it holds are cleaned by this
    version's rules in place, as an archive's files are (``_recleaned``): ids and dates kept,
    no edit counted. Entries older than the snapshot keep their cleaning. Done before this
    run's fetch is taken in, so what the server sends now compares with captures cleaned
    alike. What the snapshot's reading reports besides (entries skipped) was said when it was
    fetched; a failure is logged, and the source's fetch goes on."""
    if not _cleaning_changed(source, store, tally.run.signature):
        return
    old = store.snapshot(source.name)
    if old is not None:
        replay = _Tally(source.name, run=tally.run)
        _take_feed(source, old, store, now, replay, again=True)
        if replay.error is not None:
            log.warning("source %s: could not clean its stored entries again: %s",
                        source.name, replay.error)  # fmt: skip
        else:
            log.warning(
                "source %s: its entries were cleaned by an earlier version's rules; cleaned "
                "%d of them again from the last feed fetched (once; entry ids are kept)",
                source.name, replay.recleaned,
            )  # fmt: skip
        tally.recleaned += replay.recleaned
        tally.new += replay.new
        tally.updated += replay.updated
        tally.duplicates += replay.duplicates
        tally.changed = tally.changed or replay.changed


def _cleaning_changed(source: Source, store: Store, signature: str) -> bool:
    """True when a URL source's stored entries were cleaned by other rules than this
    version's (``signature``), which are recorded as its cleaning from now on: the caller
    cleans them again in the same transaction."""
    if store.cleaned_by(source.name) == signature:
        return False
    store.set_cleaned_by(source.name, signature)
    return True


# -- near duplicates ------------------------------------------------------------------------


def _near_duplicates(store: Store, now: datetime) -> tuple[Counter[str], set[str]]:
    """Compare the pending articles (module docstring), merge those that join another story,
    and present again every story one of whose members changed (``Store.stale_story``, this
    run or a stopped one) or that gained a member. Returns how many articles of each source
    were merged away, and the stories presented."""
    merged: Counter[str] = Counter()
    stale = store.stale_stories()
    touched = set(stale)
    pending = store.pending_days()
    if pending is not None:
        from aggregator import neardup  # numpy: only in runs that have something to compare

        _, first, last = pending
        window = neardup.MAX_DAYS_APART
        found = neardup.candidate_pairs(
            neardup.Index(store.band_index(first - window, last + window))
        )
        # Signatures of the articles in a candidate pair only; full sketches only for the
        # pairs whose figures some rule could accept.
        kept = neardup.pairs_to_decide(found, store.signatures(found.keys))
        del found
        wanted = sorted({key for x, y, _ in kept for key in (x, y)})
        rows = {
            key: neardup.Row(key, story, sketch, published, outlet, new, source, seen != now)
            for key, story, sketch, published, outlet, new, source, seen in store.sketched(wanted)
        }
        pairs = [(x, y, sim) for x, y, sim in kept if x in rows and y in rows]
        for a in neardup.match(pairs, rows):
            touched.add(a.story)
            if a.whole_story:  # an entry published before, bridged to an older one
                store.merge_story(a.key, a.story, a.evidence, now)
                touched.discard(a.key)
            else:
                store.merge(a.key, a.story, a.evidence, now)
                merged[a.source] += 1
        store.compared()
    for story in sorted(touched):
        _present(store, story, now)
    if stale:
        store.presented()  # (a run with nothing stale writes nothing here)
    return merged, touched


def _present(store: Store, story: str, now: datetime) -> None:
    """Decide and save what a story's entry publishes (neardup.present)."""
    from aggregator import neardup

    members = store.members(story)
    if not members or members[0].key != story:
        return  # deleted (retention) or not a story
    known = store.versions(story)
    if known:  # the representative's own dates; its row holds the story's
        own = resolve(known)
        members[0] = replace(members[0], published=own.published, updated=own.updated)
    before = store.shown(story)
    if before is None and store.first_seen(story) != now:  # already published on its own
        rep = members[0]
        before = Shown(story, rep.text_hash, rep.published, rep.updated)
    store.save_shown(story, neardup.present(members, before, now))


def explain(store: Store, query: str) -> dict[str, object] | None:
    """What ``aggregator explain`` shows: the story an Atom id, key or URL belongs to, its
    members and why each was merged; None when nothing stored matches."""
    from urllib.parse import unquote

    from aggregator.dedupe import canonical_url

    key = store.find(query)
    try:
        if key is None and "://" in query:
            key = store.find(canonical_url(query))
        if key is None and "%" in query:  # as published (_uris); stored as the feed gave it
            key = store.find(canonical_url(unquote(query)))
    except ValueError:  # no URL ("http://[::1", a port past 65535): nothing stored has it
        return None
    return None if key is None else store.explain(key)


# The signature recorded for a feed that failed to publish: it matches no settings, so the next
# run rebuilds the feed even when none of its sources changed.
_FAILED = "failed"


def _signature(spec: FeedSpec, basis: _FeedBasis) -> str:
    """Everything besides the stored entries that shapes a feed's bytes: its settings, its
    sources, the per-source feeds its entries name (``atom:source``), and what every feed
    shares (``basis.common``). The text is the repr of ``(common, spec, [sources], [their
    feeds])``, joined from reprs made once a run (``_FeedBasis``): the merged feed of 500
    sources would otherwise repr all 500 again, and 500 per-source feeds their specs twice."""
    used = ", ".join(basis.source_reprs[n] for n in spec.sources if n in basis.source_reprs)
    home = ", ".join(basis.own_reprs[n] for n in spec.sources if n in basis.own_reprs)
    spec_repr = basis.spec_reprs.get(spec.name) or repr(spec)
    text = f"({basis.common!r}, {spec_repr}, [{used}], [{home}])"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class _FeedBasis:
    """What every feed of a run is built against (``_feed_basis``)."""

    site: writer.Site  # the base URL, the sources and their own feeds, by source name
    common: str  # what shapes every feed's bytes alike (``_signature``)
    root: Path  # the output folder, resolved: no feed file may lead outside it
    source_reprs: dict[str, str]  # repr of each source, by name (``_signature``)
    own_reprs: dict[str, str]  # repr of each source's own feed, by source name
    spec_reprs: dict[str, str]  # repr of each feed, by feed name


def _feed_basis(config: Config) -> _FeedBasis:
    """The sources and per-source feeds by name, the output folder, and what shapes every
    feed's bytes alike: the version, the public base URL, the hub, the configured sources'
    names, the stylesheet; and the folder the files are in (a feed is not rendered again while
    its files there are what it was rendered from, so another folder must not inherit that
    trust). Made once a run: with 500 sources, once per feed cost 0.1 s (bench/fetch_bench.py)."""
    common = repr((
        __version__, config.base_url, config.hub, sorted(s.name for s in config.sources),
        stylesheet.FILENAME, str(config.output_dir),
    ))  # fmt: skip
    sources = {s.name: s for s in config.sources}
    own = {spec.sources[0]: spec for spec in config.feeds if spec.sources == (spec.name,)}
    spec_reprs = {spec.name: repr(spec) for spec in config.feeds}
    return _FeedBasis(
        site=writer.Site(config.base_url, sources, own),
        common=common,
        root=config.output_dir.resolve(),
        source_reprs={name: repr(s) for name, s in sources.items()},
        own_reprs={name: spec_reprs[spec.name] for name, spec in own.items()},
        spec_reprs=spec_reprs,
    )


class _Early:
    """Per-source feeds published while the other URL sources still download: as soon as a
    source is taken in, its own feed is rendered and staged by the main thread while the
    network waits, instead of all 500 after the last fetch (the rendering and file writing
    were 1.5-2 s of a cold 500-feed run's 9, bench/fetch_bench.py). ``_write_feeds`` keeps
    what was staged when the feed's entries are still the same at the end of the run (no
    near-duplicate merge or retention touched them), else renders the feed again. Feeds with
    archive pages wait for the end: their pages are recorded in the state."""

    def __init__(self, config: Config, staging: publish.Staging) -> None:
        self.config, self.staging = config, staging
        self.basis = _feed_basis(config)
        self.published: dict[str, _Published] = {}

    def publish(self, source: str, store: Store, now: datetime) -> None:
        b = self.basis
        spec = b.site.source_feeds.get(source)
        if spec is None or spec.archive:
            return
        if not (self.config.output_dir / spec.filename).resolve().is_relative_to(b.root):
            return  # _write_feeds reports it
        signature = _signature(spec, b)
        try:
            self.published[spec.name] = _publish_feed(
                spec, self.config, store, now, self.staging, b.site, signature
            )
        except (AggregatorError, ValueError):
            self.staging.discard(spec.name)  # _write_feeds renders it again and reports


def _write_feeds(
    config: Config,
    store: Store,
    now: datetime,
    staging: publish.Staging | None,
    changed: set[str] | None = None,
    early: Mapping[str, _Published] | None = None,
) -> tuple[list[FeedResult], list[str], list[str], list[str]]:
    """Write every output feed in each of its formats, with its new archive pages, through
    ``staging`` (None: a dry run, nothing is written), and put them in place; return the
    results, the errors, the warnings and the URLs of the files that changed (for the WebSub
    hub). ``early`` holds the feeds already staged while URL sources downloaded (``_Early``):
    each is kept when its entries are still the same.

    With ``changed`` (the sources whose entries moved this run), a feed none of whose sources
    changed, whose settings are the same as when it was last written and whose file is still
    there is left alone without being rebuilt: the same inputs give the same bytes, and
    rebuilding 500 unchanged feeds would cost seconds. A feed with a maximum age is always
    rebuilt: time alone moves entries out of it."""
    basis = _feed_basis(config)
    root = basis.root
    results: dict[str, FeedResult] = {}
    errors: list[str] = []
    warnings: list[str] = []
    urls: dict[str, list[str]] = {}
    pages: dict[str, list[int]] = {}  # archive pages recorded this run, by feed
    recorded = store.feed_files() if staging is not None else {}
    for spec in config.feeds:
        path = config.output_dir / spec.filename
        signature = _signature(spec, basis)
        if (
            changed is not None
            and spec.max_age is None
            and not changed.intersection(spec.sources)
            and _files_there(config, spec)
        ):
            known = store.feed_written(spec.name)
            # (An empty feed recorded without a date, by an older version, said 1970: built
            # again, it is dated.)
            if (
                known is not None
                and known.signature == signature
                and (known.entries or known.updated)
            ):
                results[spec.name] = FeedResult(spec.name, path, known.entries, False)
                continue
        try:
            if not path.resolve().is_relative_to(root):
                raise PublishError(
                    f"{path}: leads outside the output folder {root} (a symbolic link?); "
                    f"not written. Change feeds.file for {spec.name!r} in config.toml"
                )
            # Its archive pages are recorded before their files are written: a write
            # that fails must take the records back, or those entries would leave the
            # feed for pages that do not exist.
            with store.savepoint():
                published = _publish_feed(
                    spec, config, store, now, staging, basis.site, signature,
                    (early or {}).get(spec.name),
                )  # fmt: skip
        except (AggregatorError, ValueError) as e:
            if staging is not None:
                staging.discard(spec.name)
            errors.append(_feed_failed(store, spec, path, e))
            continue
        urls[spec.name], pages[spec.name] = published.urls, published.pages
        warnings += published.notes
        results[spec.name] = FeedResult(spec.name, path, published.count, published.written)
        store.record_feed(
            spec.name, signature, published.count, published.newest, published.content,
            [writer.filename(spec, fmt) for fmt in spec.formats],
        )  # fmt: skip
    if staging is None:  # a dry run
        return list(results.values()), errors, warnings, []
    # The subscription list of every feed above, for readers' one-click import, and the
    # stylesheet the feeds name for the page a browser shows.
    extras = ((opml.FILENAME, opml.outputs(config)), (stylesheet.FILENAME, stylesheet.data()))
    for filename, data in extras:
        try:
            staging.write(_EXTRAS, config.output_dir / filename, data)
        except AggregatorError as e:
            errors.append(str(e))
    for name, (error, placed) in staging.commit().items():
        if name == _EXTRAS:
            errors.append(str(error))
            continue
        spec = next(f for f in config.feeds if f.name == name)
        errors.append(_feed_failed(store, spec, results[name].path, error))
        # Pages put in place stay (readers may have them; their numbers are spent); the
        # others are taken back, their entries to the feed's current document.
        store.forget_archive_pages(
            name,
            [n for n in pages[name] if config.output_dir / archive.filename(name, n) not in placed],
        )
        results[name] = replace(results[name], written=False)
        urls[name] = []
    warnings += _retire_files(config, store, recorded)
    return list(results.values()), errors, warnings, [u for name in urls for u in urls[name]]


def _retire_files(
    config: Config, store: Store, recorded: Mapping[str, list[str] | None]
) -> list[str]:
    """Delete the files of each feed taken out of config.toml (its documents in every
    format and its archive pages, with what the state holds of it) and those of a format a
    feed no longer has: a feed that stopped must not go on being served as if it were
    current. Only files this tool recorded writing, inside the output folder, and never one
    a configured feed writes now (a feed renamed with its ``file`` kept); a feed recorded by
    an older version is taken to have had the default names. What could not be deleted is
    said, and tried again next run. Nothing is retired while config.toml differs from what
    this process loaded (a daemon started before an edit a newer run already applied)."""
    if config.path is not None and config.digest is not None:
        try:
            current = config_mod.text_digest(config.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return []
        if current != config.digest:
            return []
    notes = []
    specs = {spec.name: spec for spec in config.feeds}
    written = {writer.filename(spec, fmt) for spec in config.feeds for fmt in spec.formats}
    root = config.output_dir.resolve()
    for name, files in sorted(recorded.items()):
        spec = specs.get(name)
        if spec is None:
            files = [f"{name}{suffix}" for suffix, _ in writer.FORMATS.values()] if (
                files is None
            ) else files  # fmt: skip
            stale = files + [archive.filename(name, n) for n in store.all_archive_pages(name)]
            why = f"feed {name!r} is no longer in config.toml"
        elif files is not None:
            stale = [f for f in files if f not in written]
            why = f"feed {name!r} is no longer published in those formats (formats)"
        else:
            continue
        deleted, left = [], []
        for file in dict.fromkeys(stale):
            path = config.output_dir / file
            if file in written or not path.resolve().is_relative_to(root):
                continue
            try:
                if publish.remove(path):
                    deleted.append(file)
            except PublishError as e:
                notes.append(str(e))
                left.append(file)
        if spec is None and not left:
            store.forget_feed(name)
            with suppress(OSError):
                (config.output_dir / archive.DIR / name).rmdir()  # when emptied
        elif left or stale:
            # Kept for the next run: what could not be deleted, with the files it writes now.
            now = [writer.filename(spec, fmt) for fmt in spec.formats] if spec else []
            store.set_feed_files(name, [*now, *left])
        if deleted:
            notes.append(f"{why}: deleted {', '.join(deleted)} from {config.output_dir}")
    return notes


_EXTRAS = ""  # the staging group of feeds.opml and feed.xsl (no feed has an empty name)


def _feed_failed(store: Store, spec: FeedSpec, path: Path, e: Exception) -> str:
    """The error of one feed that could not be published (for the report, which the summary
    or the daemon's log shows once); it is rebuilt on the next run."""
    if isinstance(e, AggregatorError):
        error = str(e)
    else:  # feedgen/lxml refused a value: a bug, but one feed's only
        error = f"{path}: cannot write the feed ({e}); the others go on; please report this"
        log.error("the traceback of %s:\n%s", path, traceback.format_exc())
    store.record_feed(spec.name, _FAILED, 0, None)  # rebuilt next run, whatever changes
    return error


@dataclass(frozen=True, slots=True)
class _Published:
    count: int  # entries in the current document
    newest: datetime | None  # its ``updated``: the newest entry's; with none, when it emptied
    written: bool  # a file changed (or, in a dry run, would)
    urls: list[str]  # the URLs of the files that changed
    pages: list[int]  # archive pages recorded for it this run
    content: str  # digest of what its documents were rendered from
    notes: tuple[str, ...] = ()  # warnings for the run's report


def _publish_feed(
    spec: FeedSpec, config: Config, store: Store, now: datetime, staging: publish.Staging | None,
    site: writer.Site, signature: str,
    early: _Published | None = None,
) -> _Published:  # fmt: skip
    """Select the feed's entries (filters, age, archives), convert their script, render every
    format and stage its files (``staging`` None: a dry run, nothing is written). A feed whose
    settings (``signature``) and entries are what its files were last rendered from, and whose
    files are all there, is not rendered again: the same inputs give the same bytes."""
    base = config.base_url
    urls: list[str] = []
    prev_archive: int | None = None
    numbers: list[int] = []
    notes: tuple[str, ...] = ()
    if spec.archive:
        current, pages, prev_archive, notice = _archive(spec, config, store, now, staging is None)
        notes = (notice,) if notice else ()
        for number, entries in pages:
            ln = writer.Links(
                base + archive.filename(spec.name, number),
                prev_archive=base + archive.filename(spec.name, prev_archive)
                if prev_archive
                else None,
                current=writer.feed_url(base, spec),
            )
            data = _render(writer.atom, spec, _script(spec, entries), site, ln)
            if staging is not None:  # a new page: its number was never used, its file never written
                staging.write(
                    spec.name, config.output_dir / archive.filename(spec.name, number), data
                )
            numbers.append(number)
            prev_archive = number
    elif select.filtered(spec):
        current = select.select(spec, store.iter_entries(spec.sources), now)
    else:
        current = store.entries(spec.sources, spec.max_entries)
    entries = _script(spec, current)
    known = store.feed_written(spec.name)
    updated = max((e.updated for e in entries), default=None)
    # A feed with no entry is dated when it last changed: when it was first written empty or
    # lost its last entry, or its entries went to a new archive page (the date recorded
    # then is kept while it stays empty).
    empty = None if entries else now if numbers else _emptied(known, now)
    content = hashlib.blake2b(
        repr((signature, prev_archive, entries, *([empty] if empty else []))).encode(
            "utf-8", "surrogatepass"
        ),
        digest_size=16,
    ).hexdigest()
    if early is not None:  # staged while URL sources downloaded (_Early)
        if early.content == content:
            return early
        if staging is not None:
            staging.discard(spec.name)
    if (
        not numbers
        and known is not None
        and known.content == content
        and _files_there(config, spec)
    ):
        return _Published(len(entries), updated or empty, False, [], [], content, notes)
    written = False
    for fmt in spec.formats:
        newest = base + archive.filename(spec.name, prev_archive) if prev_archive else None
        ln = writer.links(
            spec, base, fmt, config.hub, newest if fmt == "atom" else None, updated=empty
        )
        data = _render(writer.RENDER[fmt], spec, entries, site, ln)
        target = config.output_dir / writer.filename(spec, fmt)
        if staging is None:
            written |= not publish.unchanged(target, data)
        elif staging.write(spec.name, target, data):
            written = True
            urls.append(ln.self_url)
    return _Published(len(entries), updated or empty, written, urls, numbers, content, notes)


def _emptied(known: FeedRecord | None, now: datetime) -> datetime:
    """When a feed that has no entry now last changed: the date recorded for it when it was
    last built empty, else ``now`` (it is being built for the first time, or has just lost its
    last entry)."""
    if known is not None and known.entries == 0 and known.updated is not None:
        return known.updated
    return now


def _files_there(config: Config, spec: FeedSpec) -> bool:
    """Whether a file of every format of ``spec`` is in the output folder. (os.path on
    strings: with a Path per file, these checks were a fifth of ``_write_feeds`` when
    nothing changed, 500 feeds in three formats, bench/fetch_bench.py.)"""
    folder = str(config.output_dir)
    return all(
        os.path.exists(os.path.join(folder, writer.filename(spec, f)))  # noqa: PTH110, PTH118
        for f in spec.formats
    )


def _render(
    render: writer.Render, spec: FeedSpec, entries: list[Entry], site: writer.Site,
    ln: writer.Links,
) -> bytes:  # fmt: skip
    """``render(spec, entries, site, ln)``; when lxml refuses a character XML cannot hold (in an
    entry stored by an earlier version, which let control characters through), the entries
    again without such characters, so that one entry does not stop its feeds for good."""
    try:
        return render(spec, entries, site, ln)
    except ValueError:
        return render(spec, [_xml_safe(e) for e in entries], site, ln)


def _xml_safe(e: Entry) -> Entry:
    image = e.image
    if image is not None:
        image = replace(image, url=xml_text(image.url), caption=xml_text(image.caption))
    return replace(
        e, title=xml_text(e.title), link=e.link and xml_text(e.link),
        author=xml_text(e.author), summary=xml_text(e.summary), content=xml_text(e.content),
        categories=tuple(map(xml_text, e.categories)), image=image,
    )  # fmt: skip


def _script(spec: FeedSpec, entries: list[Entry]) -> list[Entry]:
    """The entries as ``spec`` publishes them: their URLs as URIs, in its script."""
    entries = [_within_limit(_uris(e)) for e in entries]
    if spec.script is None:
        return entries
    return [script.convert_entry(e, spec.script) for e in entries]


def _within_limit(e: Entry) -> Entry:
    """``e`` with its content shortened when it is longer than a feed reader takes (the
    stored article keeps all of it)."""
    if len(e.content) <= cleaning.PUBLISHED_CHARS:
        return e
    return replace(e, content=cleaning.shorten(e.content, e.link))


def _uris(e: Entry) -> Entry:
    """``e`` with every URL a reader follows written as a URI: a link holding '"', a stray
    "%", a bidi control or other characters outside ASCII (a feed's raw IRI) failed strict
    consumers (JSON Feed validators; RSS readers)."""
    link = e.link and as_uri(e.link)
    via = e.via and as_uri(e.via)
    related = tuple(map(as_uri, e.related))
    image = e.image and replace(e.image, url=as_uri(e.image.url))
    if (link, via, related, image) == (e.link, e.via, e.related, e.image):
        return e
    return replace(e, link=link, via=via, related=related, image=image)


def _archive(
    spec: FeedSpec, config: Config, store: Store, now: datetime, dry_run: bool
) -> tuple[list[Entry], list[tuple[int, list[Entry]]], int | None, str | None]:
    """The current document's entries; the new archive pages to write, (number, entries)
    oldest first; the newest page published before them (None: none is); a warning for the
    run's report (pages in the folder the state does not know), or None."""
    for number in store.remove_emptied_archive_pages(spec.name):
        if not dry_run:
            publish.remove(config.output_dir / archive.filename(spec.name, number))
    published = store.archive_pages(spec.name)
    window: list[Entry] = []
    waiting: list[Entry] = []
    for entry in store.iter_entries(spec.sources, skip=store.archived(spec.name)):
        if not select.wanted(spec, entry):
            continue
        if len(window) < spec.max_entries and select.young(spec, entry, now):
            window.append(entry)
        else:
            waiting.append(entry)
    current, cut = archive.plan(window, waiting, spec.max_entries)
    after, notice = _pages_on_disk(config, spec, store) if cut else (0, None)
    pages = [
        (store.add_archive_page(spec.name, [e.key for e in page], after), page) for page in cut
    ]
    return current, pages, published[-1] if published else None, notice


def _pages_on_disk(config: Config, spec: FeedSpec, store: Store) -> tuple[int, str | None]:
    """The highest page number of the feed's archive folder when it is above every number
    the state records (the state was deleted or replaced, the pages were not), and a warning
    that says so: new pages are numbered after it, so that no published page is ever
    overwritten with other entries (RFC 5005: an archive document never changes). Those
    pages stay as they are. (0, None) when the state knows them all."""
    folder = config.output_dir / archive.DIR / spec.name
    try:
        numbers = [
            int(page.stem)
            for page in folder.iterdir()
            if page.suffix == ".atom"
            and page.stem.isascii()
            and page.stem.isdigit()
            and page.is_file()
        ]
    except OSError:
        return 0, None  # no folder yet (or none readable: the page's write will say why)
    highest, known = max(numbers, default=0), store.last_archive_page(spec.name)
    if highest <= known:
        return 0, None
    return highest, (
        f"{folder}: holds archive pages up to {highest}.atom that the state database "
        f"{config.state_db} does not record (was it deleted or replaced, or a run stopped "
        "while putting them in place?). They are left as they are; new pages of feed "
        f"{spec.name!r} are numbered from {highest + 1}, so no published page changes. "
        "Delete the old pages yourself once readers no longer need them."
    )


# What stops a run or the daemon cleanly: systemd's stop, Ctrl-C, and the terminal it ran in
# closing (SIGHUP's default would end it at once, mid-batch, leaving its workers behind).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def stop_signals() -> tuple[signal.Signals, ...]:
    """The stop signals to handle: all but one this process was started ignoring (nohup's
    SIGHUP: logging out must not stop it)."""
    return tuple(s for s in STOP_SIGNALS if signal.getsignal(s) != signal.SIG_IGN)


@contextmanager
def on_stop_signals(handler: Callable[[int, FrameType | None], object]) -> Iterator[None]:
    """``handler`` for the stop signals (``stop_signals``) while the block runs; the handlers
    found before come back after it, however it ends."""
    previous = {sig: signal.signal(sig, handler) for sig in stop_signals()}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_once(
    config: Config,
    store: Store,
    now: datetime,
    *,
    only: Iterable[str] | None = None,
    dry_run: bool = False,
    offline: bool = False,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
    retry_now: bool = False,
) -> RunReport:
    """One regeneration: every (or each named) source in, every output feed out. URL sources
    are fetched first, all at once; with ``offline`` they are read from their snapshots.
    With ``retry_now``, sources waiting (backoff, a server's Retry-After) are fetched too.

    ``stop`` (the daemon's shutdown) is asked between files and sources: once it says True,
    the fetches under way are still taken in (each ends by its timeout), no further archive
    file is read, and the run finishes as usual: what was done is committed and its feeds
    are written."""
    wanted = set(only) if only is not None else None
    chosen = [s for s in config.sources if wanted is None or s.name in wanted]
    urls = [s for s in chosen if s.url is not None]
    # URL sources first, stored in config.toml order while the rest download (``_run``). A
    # commit at most every COMMIT_SECONDS, not one per source: 500 commits cost ~0.3 s of
    # CPU, and a crash can only lose fetches that the next run repeats.
    staging = None if dry_run else publish.Staging()
    if staging is not None and (left := publish.sweep(config.output_dir)):
        log.info("deleted %d temporary files a killed run left in %s", left, config.output_dir)
    try:
        return _run(
            config, store, now, chosen, urls, staging, dry_run, offline, progress, stop,
            retry_now,
        )  # fmt: skip
    finally:
        if staging is not None:
            staging.close()


def _run(
    config: Config, store: Store, now: datetime, chosen: list[Source], urls: list[Source],
    staging: publish.Staging | None, dry_run: bool, offline: bool, progress: Progress | None,
    stop: Callable[[], bool] | None, retry_now: bool = False,
) -> RunReport:  # fmt: skip
    started = time.perf_counter()
    done: dict[str, SourceReport] = {}
    run = _RunState(folders=_archive_folders(config))
    early = _Early(config, staging) if staging is not None and urls else None
    committed = time.monotonic()
    outdated: set[str] = set()  # sources whose entries changed since the last commit
    workers = _Workers(config)
    # Many feeds to read: their parsing and cleaning go to the workers, started before the
    # fetch thread (a fork copies only the thread that calls it), while this process stores
    # and publishes. What each source got is taken in config.toml's order, whichever answered
    # first: which source shows an article two sources give (and which copy is the exact
    # duplicate) must not depend on which server was quicker, or two runs on the same
    # inputs would publish different feeds. A source's answer waits, in memory, for those
    # listed before it, parsed and cleaned meanwhile (by a worker, or here on arrival), so
    # the CPU work still overlaps the slower servers' waits.
    order = deque(s.name for s in urls)
    arrived: dict[str, tuple[Source, FetchState, HttpResult | Fetched | None,
                             Future[FeedRead] | FeedRead | None]] = {}  # fmt: skip

    def take(source: Source, state: FetchState, got: HttpResult | Fetched | None,
             read: FeedRead | None = None) -> None:  # fmt: skip
        done[source.name] = taken = _ingest_url(source, state, got, store, now, run, read)
        if taken.changed:
            outdated.add(source.name)
            if early is not None:
                early.publish(source.name, store, now)

    def settle(wait: bool) -> None:
        """Take what arrived, in order, up to the first source not arrived (or, unless
        ``wait``, still being read by a worker)."""
        while order and order[0] in arrived:
            source, state, got, read = arrived[order[0]]
            if read is not None and not isinstance(read, FeedRead):  # a worker's
                if not (wait or read.done()):
                    return
                read = _outcome(read, workers)
            del arrived[order.popleft()]
            take(source, state, got, read)

    notes = _renamed(config, store)
    states = {s.name: _fetch_state(s, store, retry_now) for s in urls}
    try:
        # Workers when many feeds due now are new to the store, so have bytes to read: a
        # first run, a daemon's first cycle. Later, most answer 304 or the same bytes, and the few
        # that changed are read here rather than paying for the workers.
        due = (st for st in states.values() if st.retry_at is None or st.retry_at <= now)
        if not offline and sum(st.digest is None for st in due) >= PARALLEL_FEEDS:
            workers.start()
        for source, state, got in (
            _fetch_urls(config, urls, states, store, now, offline, stop) if urls else ()
        ):
            fetched = _to_read(source, state, got, now)
            read: Future[FeedRead] | FeedRead | None = None
            if fetched is not None:
                read = workers.submit(read_feed, source, fetched) if workers.started else None
                if read is None:  # no workers (or none left): here, while others download
                    read = read_feed(source, fetched)
            arrived[source.name] = (source, state, got, read)
            settle(wait=False)
            if not dry_run and time.monotonic() - committed >= COMMIT_SECONDS:
                _commit(config, store, outdated)
                committed = time.monotonic()
        # Sources a stop left unfetched never arrive: the others are taken, still in order.
        for name in [name for name in order if name not in arrived]:
            order.remove(name)
        settle(wait=True)
        if urls and not dry_run:
            _commit(config, store, outdated)
        for source in chosen:
            if source.url is None and not (stop is not None and stop()):
                done[source.name] = taken = _ingest(
                    workers, source, store, now, dry_run, progress, run, stop
                )
                if not dry_run:
                    if taken.changed:
                        outdated.add(source.name)
                    _commit(config, store, outdated)
    finally:
        workers.close(cancel=stop is not None and stop())
    reports = [done[s.name] for s in chosen if s.name in done]
    configured = [s.name for s in config.sources]
    rehomed = store.rehome(configured)
    notes += [
        f"{n} article(s) shown under {old!r} while {new!r} was out of config.toml are shown "
        f"under {new!r} again"
        if old in configured
        else f"{n} article(s) of source {old!r}, no longer in config.toml, are now shown "
        f"under {new!r}, which gives them too"
        for (old, new), n in sorted(rehomed.items())
    ]
    started_nd = time.perf_counter()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    merged, touched = _near_duplicates(store, now)
    neardup_seconds = time.perf_counter() - started_nd
    # How far the pass raised this process's peak memory (Linux: KiB).
    neardup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    reports = [
        replace(r, new=max(0, r.new - merged[r.name]), near_duplicates=merged[r.name])
        if merged[r.name] else r
        for r in reports
    ]  # fmt: skip
    removed = store.apply_retention(config.retention, [s.name for s in config.sources], now)
    restory = bool(touched) or bool(merged)  # an entry of any feed may have changed
    changed = (
        None if removed or restory
        else {r.name for r in reports if r.changed} | {s for pair in rehomed for s in pair}
    )  # fmt: skip
    feeds, errors, warnings, changed_urls = _write_feeds(
        config, store, now, staging, changed, early.published if early else None
    )
    report = RunReport(
        sources=tuple(reports),
        feeds=tuple(feeds),
        dry_run=dry_run,
        retention_removed=removed,
        seconds=time.perf_counter() - started,
        errors=tuple(errors),
        neardup_seconds=neardup_seconds,
        neardup_peak_mb=neardup_peak / 1024,
        sketch_seconds=run.sketch_ns / 1e9,
        warnings=(*notes, *warnings),
    )
    if dry_run:
        store.rollback()
        return report
    _record(store, report, now)
    store.commit()
    if config.hub and changed_urls:
        # After the commit: the hub's answers (each up to its timeout) must not hold the
        # database's write lock, and a hub failing cannot undo a run whose feeds are out.
        from aggregator.fetch import http  # httpx only when there is a hub to tell

        pinged = http.ping_hub(config.hub, changed_urls, f"aggregator/{__version__}")
        report = replace(report, warnings=(*report.warnings, *pinged))
    return report


def _archive_folders(config: Config) -> dict[tuple[int, int], str]:
    """Each archive source's folder, by (device, inode), to the first source reading it."""
    found: dict[tuple[int, int], str] = {}
    for s in config.sources:
        if s.path is not None:
            try:
                st = s.path.stat()
            except OSError:
                continue  # said when the source is read
            if S_ISDIR(st.st_mode):
                found.setdefault((st.st_dev, st.st_ino), s.name)
    return found


def _renamed(config: Config, store: Store) -> list[str]:
    """A source renamed in config.toml (a name the state has never seen, reading the folder or
    feed an old name no longer in config.toml read) keeps what the state holds under the old
    name: its articles and their ids, the files read, the fetch state. Otherwise it would read
    everything again as another source's copies, and its articles would leave every feed.
    Returns the notes for the run's report."""
    stored = store.stored_sources()
    gone = sorted(stored - {s.name for s in config.sources})
    notes = []
    for source in config.sources:
        if source.name in stored or not gone:
            continue
        where = f"feed {source.url}" if source.url is not None else f"folder {source.path}"
        takes = None if source.path is None else partial(fetch.takes, source.path, source.include)
        matches = [old for old in gone if store.found_at(old, source.url, takes)]
        if len(matches) == 1:
            gone.remove(old := matches[0])
            shown = store.rename_source(old, source.name)
            notes.append(
                f"source {old!r} is now {source.name!r} in config.toml (same {where}): its "
                f"{shown} article(s) and what it had read go with it"
            )
        elif matches:
            notes.append(
                f"source {source.name!r} is new in config.toml, and several sources no longer "
                f"in it read the same {where} ({', '.join(matches)}): none is taken as its old "
                f"name, so it reads everything as new; the articles they showed move to it as "
                f"it gives them"
            )
    return notes


def _ran(report: SourceReport) -> bool:
    """False for a URL source that was not asked this time (backoff or Retry-After)."""
    return report.fetch is None or report.fetch.outcome != "waiting"


def _failed(report: SourceReport) -> bool:
    return report.error is not None or (
        report.fetch is not None and report.fetch.outcome == "failed"
    )


def _record(store: Store, report: RunReport, now: datetime) -> None:
    """Count the run for the health page and /metrics."""
    ran = [r for r in report.sources if _ran(r)]
    for r in ran:
        store.record_source_run(r, now)
    error = "; ".join(report.errors) or None
    store.record_cycle(Cycle(now, report.seconds, len(ran), sum(map(_failed, ran)), error))


def record_crash(config: Config, now: datetime, seconds: float, error: str) -> None:
    """Count a daemon's cycle that ended in an unexpected exception (a bug), so /healthz says
    so. StateGone when the state database is not there: the daemon made it at its start."""
    with Store(config.state_db, create=False) as store:
        store.record_cycle(Cycle(now, seconds, 0, 0, error))
        store.commit()


def set_next_runs(config: Config, next_runs: Mapping[str, datetime | None]) -> None:
    """The daemon's schedule, for the health page (StateGone as for ``record_crash``)."""
    with Store(config.state_db, create=False) as store:
        store.set_next_runs(next_runs)
        store.commit()


def exclusive(config: Config, wait: float = 0.0, purpose: str = "run") -> StateLock:
    """``with exclusive(config):`` - this process alone runs on config's state database."""
    return StateLock(config.state_db, wait, purpose)


def status(config: Config, recent: int = 20) -> Status:
    """Every configured source and feed with what the state database says of it."""
    try:
        known = read_status(config.state_db, recent)
    except StoreError as e:  # a read-only folder (WAL readers create -shm there), a damaged file
        known = Status((), (), error=str(e))
    by_source = {s.name: s for s in known.sources}
    by_feed = {f.name: f for f in known.feeds}
    sources = tuple(
        replace(by_source.get(s.name) or SourceStatus(s.name, "", ""), title=s.title, where=s.where)
        for s in config.sources
    )
    # A move learnt for a url since changed in config.toml is forgotten by the next fetch.
    sources = tuple(
        s if s.moved_from in (None, s.where) else replace(s, moved_from=None, moved_to=None)
        for s in sources
    )
    feeds = tuple(
        replace(
            by_feed.get(spec.name) or FeedStatus(spec.name, "", "", ""),
            title=spec.title,
            filename=spec.filename,
            url=writer.feed_url(config.base_url, spec),
        )
        for spec in config.feeds
    )
    return replace(known, sources=sources, feeds=feeds)


# A source may be this late for its next run before the service counts as unhealthy: a batch
# of 500 URL sources takes ~10 s (bench/fetch_bench.py); a minute covers a slow disk too.
OVERDUE_GRACE = timedelta(seconds=60)


def health(config: Config, state: Status, now: datetime) -> tuple[bool, str]:
    """(healthy, why) for /healthz: the last cycle completed, and no source is overdue.

    One source failing is not ill health: its upstream is down, and restarting us would not
    help; the health page and /metrics show it. Overdue means the daemon's recorded next run
    of a source is well in the past (the daemon is stuck or gone). Without a daemon (feeds
    made by ``aggregator run`` from cron), the last cycle must be no older than twice the
    shortest source interval."""
    if state.error:
        return False, f"cannot read the state database: {state.error}"
    if not state.cycles:
        if not config.state_db.exists():  # never made, or deleted under a daemon (its log says)
            return False, f"no run has completed yet: {config.state_db} does not exist"
        return False, "no run has completed yet"
    last = state.cycles[0]
    if last.error:
        return False, f"the last run at {last.started:%Y-%m-%d %H:%M:%S} UTC failed: {last.error}"
    grace = OVERDUE_GRACE + timedelta(seconds=last.seconds)
    overdue = sorted(
        s.name for s in state.sources if s.next_run is not None and s.next_run + grace < now
    )
    if overdue:
        return False, f"overdue: {', '.join(overdue)} should have run by now"
    if not any(s.next_run for s in state.sources) and config.sources:
        every = min(s.policy.interval for s in config.sources)
        if last.started + timedelta(seconds=2 * every) + grace < now:
            return False, (
                f"the last run was at {last.started:%Y-%m-%d %H:%M:%S} UTC, more than twice "
                f"the shortest interval ({every:g} s) ago"
            )
    failing = [s.name for s in state.sources if s.failing]
    if failing:  # healthy all the same (see above), but a person reading it must see them
        return True, (
            f"ok: last run at {last.started:%Y-%m-%d %H:%M:%S} UTC, but failing: "
            f"{', '.join(failing)} (see the last error of each)"
        )
    return True, f"ok: last run at {last.started:%Y-%m-%d %H:%M:%S} UTC"
