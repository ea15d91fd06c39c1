"""The wiring: the only module that calls more than one stage.

``run_once(config, store, now)`` takes every source through fetch -> adapter -> clean -> dedupe
-> store, applies retention, then writes every output feed (writer -> publish) and returns a
``RunReport``. The CLI (and later the daemon) call this, never the stages.

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
An interrupted run leaves its sketches pending, and the next run compares them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import resource
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator import __version__, adapters, fetch, opml, publish, writer
from aggregator.clean import clean
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
from aggregator.errors import AggregatorError, SourceError
from aggregator.model import (
    Config,
    FeedResult,
    FeedSpec,
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
    by_fields,
)
from aggregator.store import FileState, Store

if TYPE_CHECKING:
    from aggregator.fetch.http import HttpResult

log = logging.getLogger("aggregator")

# Below this many files to read, worker processes cost more to start than they save.
PARALLEL_THRESHOLD = 256
# Commit every this many files, so an interrupted cold run keeps what it did.
COMMIT_EVERY = 2000

Progress = Callable[[str, int, int], None]  # (source name, files done, files to read)


@by_fields
@dataclass(frozen=True, slots=True)
class Ready:
    """A cleaned item with its text fingerprint, computed in the worker (it costs ~80 us)."""

    item: Item
    text_hash: str
    matchable: bool  # long enough to be matched by fingerprint alone
    sketch: Sketch | None = None  # for near duplicates; None when the text is too short
    sketch_ns: int = 0  # what computing it cost, for the run report


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
        digest = hashlib.blake2b(fetched.data, digest_size=16).hexdigest()
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
    lang = source.lang or item.lang
    # config.toml's sources usually repeat the outlet's own home page: no copy then (~8 us).
    if (author, author_uri, lang) != (item.author, item.author_uri, item.lang):
        item = replace(item, author=author, author_uri=author_uri, lang=lang)
    return clean(item, profile.rules, profile.zone)


def _ready(item: Item) -> Ready:
    from aggregator import neardup  # numpy: only in runs that read something

    comparable = comparable_text(item.text)
    started = time.thread_time_ns()  # CPU: workers share the cores with the main process
    sketch = neardup.sketch(comparable, item.title)
    spent = time.thread_time_ns() - started
    return Ready(
        item, digest_text(comparable), len(comparable) >= MIN_FINGERPRINT_CHARS, sketch, spent
    )


def _prepare_star(args: tuple[FileStat, Source, str | None]) -> Prepared:
    return prepare(*args)


@dataclass
class _RunState:
    """What the whole run gathers across sources for the near-duplicate pass."""

    stories: set[str] = field(default_factory=set)  # stories one of whose members changed
    sketch_ns: int = 0  # spent computing sketches (in the workers, when there are workers)


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
            duplicates=self.duplicates, skipped=tuple(self.skipped),
            rules=tuple(sorted(self.rules.items())), error=self.error, fetch=self.fetch,
            changed=self.changed,
        )  # fmt: skip


class _Workers:
    """One process pool for the whole run, started the first time a source has enough files."""

    def __init__(self, config: Config) -> None:
        self.count = max(1, min(config.workers or (os.cpu_count() or 1), 8))
        self._pool: ProcessPoolExecutor | None = None

    def map(self, source: Source, todo: list[tuple[FileStat, str | None]]) -> Iterator[Prepared]:
        if self.count == 1 or len(todo) < PARALLEL_THRESHOLD:
            return (prepare(stat, source, digest) for stat, digest in todo)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.count)
        args = ((stat, source, digest) for stat, digest in todo)
        return self._pool.map(_prepare_star, args, chunksize=64)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _merge(ready: Ready, store: Store, now: datetime, tally: _Tally) -> None:
    """Store one cleaned item: new article, new version of one, or exact duplicate."""
    item, text_hash = ready.item, ready.text_hash
    tally.run.sketch_ns += ready.sketch_ns
    if store.removed(item.key):  # retention deleted it: a later capture must not revive it
        tally.unchanged += 1
        return
    version = Version(version_time(item.published, item.archived), text_hash, item.published)
    known = store.versions(item.key)
    if not item.dated and known:
        # The source gives no date: the entry is what was first seen, and a version is new
        # only when its text is.
        if any(v.text_hash == text_hash for v in known):
            tally.unchanged += 1
            return
        version = Version(now, text_hash, min(v.published for v in known))
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
        tally.run.stories.add(story)
    if result is Outcome.NEW:
        tally.new += 1
    elif result is Outcome.UPDATED:
        tally.updated += 1
    else:
        tally.unchanged += 1


def _day(when: datetime) -> int:
    """Days since 1970: the publication day near-duplicate candidates are windowed by."""
    return max(0, int(when.timestamp() // 86400))


def _ingest(
    workers: _Workers, source: Source, store: Store, now: datetime, dry_run: bool,
    progress: Progress | None, run: _RunState,
) -> SourceReport:  # fmt: skip
    tally = _Tally(source.name, run=run)
    try:
        stats = list(fetch.scan(source))
    except SourceError as e:
        tally.error = e.reason
        log.error("source %s: %s: %s", source.name, e.origin, e.reason)
        return tally.report()
    tally.files_seen = len(stats)
    known = store.file_states(source.name)
    todo: list[tuple[FileStat, str | None]] = []
    for stat in stats:
        state = known.get(stat.path)
        if state is not None and (state.size, state.mtime_ns) == (stat.size, stat.mtime_ns):
            if state.status == "skipped":
                tally.skipped.append(Skip(stat.path, f"{state.reason} (file unchanged)"))
            continue
        todo.append((stat, state.digest if state is not None else None))
    for done, prepared in enumerate(workers.map(source, todo), start=1):
        _take(prepared, source, store, now, tally)
        if not dry_run and done % COMMIT_EVERY == 0:
            store.commit()
        if progress is not None:
            progress(source.name, done, len(todo))
    return tally.report()


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
    for ready in p.items:
        _merge(ready, store, now, tally)
        tally.rules.update(dict(ready.item.fired))
    store.record_file(
        source.name, origin, FileState(p.stat.size, p.stat.mtime_ns, p.digest, "ok", None), now
    )


# -- URL sources ---------------------------------------------------------------------------


def _fetch_urls(
    config: Config, sources: list[Source], store: Store, now: datetime, offline: bool
) -> Iterator[tuple[Source, FetchState, HttpResult | Fetched | None]]:
    """Each URL source with its stored state and what this run got for it, in the order the
    fetches complete: a fetch result, or with ``offline`` the stored snapshot (None when there
    is none)."""
    states = {s.name: store.fetch_state(s.name) for s in sources}
    if offline:
        for s in sources:
            yield s, states[s.name], store.snapshot(s.name)
        return
    from aggregator.fetch import http  # httpx only when there is something to fetch

    by_name = {s.name: s for s in sources}
    targets = [replace(s, url=_current_url(s, states[s.name])) for s in sources]
    for result in http.fetch_all(
        targets, states, now, concurrency=config.concurrency, per_host=config.per_host
    ):
        yield by_name[result.source], states[result.source], result


def _current_url(source: Source, state: FetchState) -> str | None:
    """Where the source lives now: its permanent-redirect target, unless config.toml's url
    has changed since that was learnt."""
    if state.url and state.configured == source.url:
        return state.url
    return source.url


def _ingest_url(
    source: Source,
    state: FetchState,
    got: HttpResult | Fetched | None,
    store: Store,
    now: datetime,
    run: _RunState,
) -> SourceReport:
    tally = _Tally(source.name, run=run)
    if got is None:
        tally.error = "no snapshot stored yet; run once without --offline to fetch it"
        tally.fetch = FetchStatus("offline", tally.error)
        return tally.report()
    if isinstance(got, Fetched):  # --offline: the snapshot, always parsed again
        tally.fetch = FetchStatus("offline", f"snapshot of {got.at:%Y-%m-%d %H:%M:%S} UTC")
        _take_feed(source, got, store, now, tally)
        return tally.report()
    from aggregator.fetch import http

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
        log.error("source %s: %s: %s", source.name, got.url, detail)
        new_state = replace(new_state, last_attempt=now, last_error=detail)
    else:
        new_state = replace(new_state, last_attempt=now, last_success=now, last_error=None)
        detail = f"{got.status}, {len(got.data) // 1024} KiB in {got.seconds:.2f} s"
        if got.outcome == "not-modified":
            detail = f"304 not modified in {got.seconds:.2f} s"
    if got.moved_to:
        log.warning(
            "source %s moved permanently to %s; update its url in config.toml", source.name,
            got.moved_to,
        )  # fmt: skip
    if got.outcome == "fetched":
        digest = hashlib.blake2b(got.data, digest_size=16).hexdigest()
        new_state = replace(
            new_state, etag=got.header("etag"), last_modified=got.header("last-modified"),
            digest=digest,
        )  # fmt: skip
        fetched = Fetched(got.final_url, source.name, got.data, True, got.headers, now)
        store.save_snapshot(fetched)
        if digest != state.digest:
            _take_feed(source, fetched, store, now, tally)
        else:
            detail += ", same bytes as last time"
    if retry_at is not None and got.outcome != "waiting":
        detail += f"; next try not before {retry_at:%Y-%m-%d %H:%M:%S} UTC"
    tally.fetch = FetchStatus(got.outcome, detail, failures, retry_at, got.moved_to)
    store.save_fetch_state(source.name, new_state)
    return tally.report()


def _take_feed(
    source: Source, fetched: Fetched, store: Store, now: datetime, tally: _Tally
) -> None:
    """Parse, clean and store every entry of one downloaded feed."""
    try:
        items, skipped = adapters.parse_feed(fetched, source.adapter, source.policy.max_items)
    except SourceError as e:
        tally.error = f"{e.origin}: {e.reason}"
        log.error("source %s: %s", source.name, tally.error)
        return
    tally.files_seen = tally.files_read = len(items) + len(skipped)
    tally.skipped.extend(skipped)
    for skip in skipped:
        log.warning("skipped %s: %s", skip.origin, skip.reason)
    for item in items:
        try:
            ready = _ready(_clean(item, source))
        except Exception as e:  # a bug: report it with its traceback, keep the run going
            log.error("bug while cleaning %s:\n%s", item.origin, traceback.format_exc())
            tally.skipped.append(Skip(item.origin, f"internal error ({type(e).__name__}: {e})"))
            continue
        _merge(ready, store, now, tally)
        tally.rules.update(dict(ready.item.fired))


# -- near duplicates ------------------------------------------------------------------------


def _near_duplicates(store: Store, now: datetime, touched: set[str]) -> Counter[str]:
    """Compare the pending articles (module docstring), merge those that join another story,
    and present again every story in ``touched`` or that gained a member. Returns how many
    articles of each source were merged away; ``touched`` gains the stories that changed."""
    merged: Counter[str] = Counter()
    pending = store.pending_days()
    if pending is not None:
        import numpy as np  # only in runs that have something to compare

        from aggregator import neardup

        _, first, last = pending
        window = neardup.MAX_DAYS_APART
        index = neardup.Index(store.band_index(first - window, last + window))
        i, j = neardup.candidates(index)
        # Signatures of the articles in a candidate pair only, into one array; full sketches
        # only for the pairs whose figures some rule could accept.
        involved = np.unique(np.concatenate([i, j]))
        names = [index.keys[k] for k in involved.tolist()]
        del index
        position = {key: n for n, key in enumerate(names)}
        sigs = np.zeros((len(names), neardup.NUM_PERM), dtype=np.uint32)
        shingles = np.zeros(len(names), dtype=np.float64)
        for key, sig, count in store.signatures(names):
            sigs[position[key]] = np.frombuffer(sig, dtype=np.uint32)
            shingles[position[key]] = count
        pi, pj = np.searchsorted(involved, i), np.searchsorted(involved, j)
        keep, sims = neardup.worth_deciding(pi, pj, sigs, shingles)
        del sigs, shingles, position
        kept = [
            (names[x], names[y], sim)
            for x, y, sim in zip(
                pi[keep].tolist(), pj[keep].tolist(), sims[keep].tolist(), strict=True
            )
        ]
        wanted = sorted({key for x, y, _ in kept for key in (x, y)})
        rows = {
            key: neardup.Row(key, story, sketch, published, outlet, new, source)
            for key, story, sketch, published, outlet, new, source in store.sketched(wanted)
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
    return merged


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
    from aggregator.dedupe import canonical_url

    key = store.find(query)
    if key is None and "://" in query:
        key = store.find(canonical_url(query))
    return None if key is None else store.explain(key)


def _signature(spec: FeedSpec, config: Config, sources: dict[str, Source]) -> str:
    """Everything besides the stored entries that shapes a feed's bytes."""
    used = [sources[name] for name in spec.sources if name in sources]
    text = repr((__version__, config.base_url, spec, used, sorted(sources)))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _write_feeds(
    config: Config, store: Store, dry_run: bool, changed: set[str] | None = None
) -> tuple[list[FeedResult], list[str]]:
    """Write every output feed. With ``changed`` (the sources whose entries moved this run),
    a feed none of whose sources changed, whose settings are the same as when it was last
    written and whose file is still there is left alone without being rebuilt: the same
    inputs give the same bytes, and rebuilding 500 unchanged feeds would cost seconds."""
    sources = {s.name: s for s in config.sources}
    source_feeds = {spec.sources[0]: spec for spec in config.feeds if spec.sources == (spec.name,)}
    results, errors = [], []
    for spec in config.feeds:
        path = config.output_dir / spec.filename
        signature = _signature(spec, config, sources)
        if changed is not None and not changed.intersection(spec.sources) and path.exists():
            known = store.feed_written(spec.name)
            if known is not None and known[0] == signature:
                results.append(FeedResult(spec.name, path, known[1], False))
                continue
        entries = store.entries(spec.sources, spec.max_entries)
        data = writer.atom(spec, entries, config.base_url, sources, source_feeds)
        path = config.output_dir / spec.filename
        try:
            if dry_run:
                written = not publish.unchanged(path, data)
            else:
                written = publish.write_if_changed(path, data)
        except AggregatorError as e:
            log.error("%s", e)
            errors.append(str(e))
            continue
        results.append(FeedResult(spec.name, path, len(entries), written))
        store.record_feed(spec.name, signature, len(entries))
    if not dry_run:
        # The subscription list of every feed above, for readers' one-click import.
        try:
            publish.write_if_changed(config.output_dir / opml.FILENAME, opml.outputs(config))
        except AggregatorError as e:
            log.error("%s", e)
            errors.append(str(e))
    return results, errors


def run_once(
    config: Config,
    store: Store,
    now: datetime,
    *,
    only: Iterable[str] | None = None,
    dry_run: bool = False,
    offline: bool = False,
    progress: Progress | None = None,
) -> RunReport:
    """One regeneration: every (or each named) source in, every output feed out. URL sources
    are fetched first, all at once; with ``offline`` they are read from their snapshots."""
    started = time.perf_counter()
    wanted = set(only) if only is not None else None
    chosen = [s for s in config.sources if wanted is None or s.name in wanted]
    urls = [s for s in chosen if s.url is not None]
    done: dict[str, SourceReport] = {}
    run = _RunState()
    # URL sources first, each taken in as its fetch completes while the rest download.
    for source, state, got in _fetch_urls(config, urls, store, now, offline) if urls else ():
        done[source.name] = _ingest_url(source, state, got, store, now, run)
        if not dry_run:
            store.commit()
    workers = _Workers(config)
    try:
        for source in chosen:
            if source.url is None:
                done[source.name] = _ingest(workers, source, store, now, dry_run, progress, run)
                if not dry_run:
                    store.commit()
    finally:
        workers.close()
    reports = [done[s.name] for s in chosen]
    started_nd = time.perf_counter()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    touched = run.stories
    merged = _near_duplicates(store, now, touched)
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
    changed = None if removed or restory else {r.name for r in reports if r.changed}
    feeds, errors = _write_feeds(config, store, dry_run, changed)
    if dry_run:
        store.rollback()
    else:
        store.commit()
    return RunReport(
        sources=tuple(reports),
        feeds=tuple(feeds),
        dry_run=dry_run,
        retention_removed=removed,
        seconds=time.perf_counter() - started,
        errors=tuple(errors),
        neardup_seconds=neardup_seconds,
        neardup_peak_mb=neardup_peak / 1024,
        sketch_seconds=run.sketch_ns / 1e9,
    )
