"""State: the SQLite database. The only SQL in the project.

Inputs and outputs are model records and the small ``FileState`` / ``Version`` values; no caller
sees a cursor or a row. The database is created on first use at the configured path and brought
up to the current schema by the numbered migrations in ``schema.py``. It keeps which input files
were read (so a second run reads only what changed), every article with its minted Atom id,
every captured version of it (capture time and text fingerprint, for order-independent
updates), exact duplicates with what they duplicate, and near duplicates: each article's
sketch (``neardup.Sketch``), which articles were merged into which entry and why, what a story
of several articles publishes, and tombstones of articles merged or removed.

Writes happen inside a transaction the caller commits (``commit``) or abandons (``rollback``,
for ``--dry-run``). sqlite3 errors are wrapped as ``StoreError`` naming the database file.

A cold run asks, for every new item, whether the store holds a version of it, an article with
its text, or a duplicate record of it: three indexed SELECTs that all answer "no", ~45 us an
item (bench/run_bench.py, 10,000 items). So when the caller says many articles are coming
(``expect``), the keys and text hashes those tables hold are read once, on the first such
question, into sets (``_Known``) that answer "certainly not" for free; a hit still asks SQLite.
When few are coming, the indexed SELECTs answer: reading 100,000 keys would cost more than they
do. The sets only ever grow, so a rollback or a deletion leaves them a superset, which stays
correct; they are dropped when another connection has committed to the database since they
were read (``PRAGMA data_version``, checked at every transaction start).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from aggregator.clean import untitled
from aggregator.dedupe import Resolution, Version, mint_atom_id
from aggregator.errors import StateGone, StoreError
from aggregator.model import (
    Cycle,
    Entry,
    Evidence,
    FeedStatus,
    Fetched,
    FetchState,
    Image,
    Item,
    Member,
    Retention,
    Shown,
    Sketch,
    SourceReport,
    SourceStatus,
    Status,
)
from aggregator.store.schema import MIGRATIONS

# Cycles kept as rows (the status page and /metrics show the newest); all of them are counted
# in cycle_totals. A daemon running every minute records 525,600 a year.
KEPT_CYCLES = 1000

__all__ = ["FileState", "Store", "read_status"]


# Cached: a new article's six timestamps are three instants (run time, capture, publication),
# and equal aware datetimes are the same instant, so the same text.
@lru_cache(maxsize=256)
def _t(dt: datetime) -> str:
    # isoformat, not strftime("%Y-%m-%dT%H:%M:%S.%fZ"): the same text at a fifth of the cost
    # (~7 us a call, six calls an item). Years are four digits (dates.py keeps 1990-2100), and
    # in UTC the offset isoformat writes is always "+00:00".
    return dt.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _dt(text: str) -> datetime:
    # fromisoformat reads _t's text (trailing "Z" included, Python 3.11) as the same aware UTC
    # datetime strptime did, at 0.3 us instead of 15.
    return datetime.fromisoformat(text)


@dataclass(slots=True)
class _Known:
    """Supersets of what the tables hold: a key or hash not in them is certainly not stored."""

    versions: set[str]  # keys with at least one version
    texts: set[str]  # text hashes of articles
    duplicates: set[str]  # keys recorded as duplicates
    removed: set[str]  # keys tombstoned by retention
    data_version: int  # PRAGMA data_version when they were read


# From this many articles expected in a run on (Store.expect), membership is answered from
# in-memory sets of every stored key; below it, by indexed queries.
BULK_ITEMS = 2_000

_BANDS_BY_DAY = (
    "SELECT key, bands, day, title_key, pending FROM sketches"
    " WHERE day BETWEEN ? AND ? OR pending = 1"
)
_BANDS_SCANNED = (
    "SELECT key, bands, day, title_key, pending FROM sketches"
    " WHERE +day BETWEEN ? AND ? OR +pending = 1"
)


class FileState(NamedTuple):
    """What the store remembers of an archive file (a named tuple: 100,000 of them are read
    by every run over a large archive, ~3 us less each than a frozen dataclass)."""

    size: int
    mtime_ns: int
    digest: str
    status: str  # "ok" or "skipped"
    reason: str | None


class FeedRecord(NamedTuple):
    """How an output feed was last built (``Store.feed_written``)."""

    signature: str  # its settings (pipeline._signature)
    entries: int  # in its current document
    content: str | None  # digest of what its documents were rendered from
    updated: datetime | None  # its <updated> (an empty feed's: when it emptied)


# What SQLite says of a file that is not (or no longer) a whole database.
_DAMAGED = ("malformed", "not a database")


def _damaged(e: BaseException) -> bool:
    return isinstance(e, sqlite3.Error) and any(words in str(e) for words in _DAMAGED)


def _explained(e: BaseException) -> str:
    """An sqlite3 error, with what to do about a damaged file or a folder it cannot write."""
    text = str(e)
    if _damaged(e):
        return (
            f"{text}: the state database is damaged; restore it from a backup (moved aside, a "
            "new one is made and the sources are read again with the same entry ids, but "
            "what they no longer carry is lost: see README.md on a new empty database)"
        )
    if "readonly" in text or "unable to open" in text:
        return (
            f"{text}: check that this process may read the file and write in its folder "
            "(SQLite keeps a WAL index beside it)"
        )
    return text


class _Errors:
    """``with`` it around sqlite3 calls: their errors become ``StoreError`` naming the file.
    A class, not @contextmanager: entering a generator costs ~3 us, and a cold run makes three
    calls an item (bench/run_bench.py)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(e, sqlite3.Error):
            raise StoreError(f"{self.path}: {_explained(e)}") from e


def _not_ours(db: sqlite3.Connection, path: Path) -> str | None:
    """Why the database on ``db`` is not one this version may use, or None: a newer schema,
    or (schema 0 with tables in it) another application's database, which a run would
    otherwise fill with its tables and switch to WAL."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        return (
            f"{path}: written by a newer version of aggregator (schema {version}, this one "
            f"knows {len(MIGRATIONS)}); upgrade aggregator or use another state_db"
        )
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE name = 'items'").fetchone():
        return (
            f"{path}: aggregator's tables without their schema version (restored from an "
            "`sqlite3 .dump`, which drops it?); left untouched: set it with `sqlite3 FILE "
            f"'PRAGMA user_version = N'`, N the schema the dump was made with ({len(MIGRATIONS)} "
            "for this version), or point state_db at a new file"
        )
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
        return (
            f"{path}: a SQLite database that is not aggregator's (it holds tables, but no "
            "aggregator schema); left untouched: point state_db in config.toml at a new file"
        )
    return None


def _gone(path: Path, what: str) -> StateGone:
    return StateGone(
        f"{path}: the state database {what} while the daemon runs; this batch ran nothing, "
        "so the feeds stay as they were. Put the file back, or restart the daemon to start "
        "afresh with an empty database: it then knows nothing of what it fetched before, so "
        "articles your sources no longer list drop out of the feeds, merged copies may come "
        "back as entries of their own, and every feed is fetched in full again"
    )


# The tables whose rows belong to a source, by its name (Store.rename_source).
_SOURCE_TABLES = (
    "files", "items", "duplicates", "fetch_state", "snapshots", "source_status", "listings",
    "cleaned_by", "guids", "carries", "rehomed",
)  # fmt: skip


def _linked(e: Entry, same_text: list[str]) -> Entry:
    """``e`` with an address of its own: an article archived without one (RSSHub's Al Jazeera
    posts) links, as its ``alternate``, the page of the copy whose text it shows (``via``), else
    of an exact copy (``same_text``, sorted). Not a near-duplicate's page: that may be another
    outlet's. A reader then opens the article from the entry, not from a "related" link."""
    if e.link:
        return e
    link = e.via or (same_text[0] if same_text else None)
    if link is None:
        return e
    return replace(e, link=link, via=None, related=tuple(u for u in e.related if u != link))


class Store:
    def __init__(self, path: Path, *, readonly: bool = False, create: bool = True) -> None:
        """Open (and create, and migrate) the database at ``path``. ``readonly``: open an
        existing database of this version to read it only (``aggregator explain``): nothing
        is created or migrated, it reads beside a running daemon, and any write raises
        StoreError. (SQLite still needs the folder writable, for the WAL index.)
        ``create=False`` (a daemon after its start): StateGone if the file is not there or
        empty, rather than a new empty database that forgets what the feeds hold."""
        self.path = path
        self._errors = _Errors(path)
        if readonly:
            self._open_readonly()
            return
        if not create and not path.is_file():
            raise _gone(path, "is gone (deleted or moved)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if create:
                self._db = sqlite3.connect(path, isolation_level=None)
            else:  # (mode=rw: not created if it vanished since the test above)
                self._db = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None
                )
                if (
                    self.schema_version == 0
                    and not self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
                ):
                    self._db.close()
                    raise _gone(path, "is empty (emptied or replaced)")
            problem = _not_ours(self._db, path)
            if problem:
                self._db.close()
                raise StoreError(problem)
            # 16 KiB pages for a new database (an existing one keeps its own: SQLite ignores
            # this then): an article's ~7 KB of content fits one page instead of a chain of
            # overflow pages; inserting 5,000 articles cost 41 us each against 54 with 4 KiB
            # pages (CPU, best of 4); _take over the 10,000-file bench corpus 176-205 us a file
            # against 200-223, interleaved.
            self._db.execute("PRAGMA page_size=16384")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # 64 MiB of page cache instead of 2: the indexes of 100,000 items stay in memory.
            # Inserting 100,000 articles cost 66 us each against 83-102 (CPU, two runs each);
            # at 10,000 the difference is lost in noise. Costs up to 64 MiB of the RSS budget.
            self._db.execute("PRAGMA cache_size=-65536")
            self._known: _Known | None = None
            self._storied: set[str] | None = None
            self._storied_version = 0
            self._bulk = False
            self._migrate()
            self._db.execute("BEGIN")
        except (sqlite3.Error, OSError) as e:
            if not create and not path.is_file():
                raise _gone(path, "is gone (deleted or moved)") from e
            if _damaged(e):
                raise StoreError(f"{path}: {_explained(e)}") from e
            raise StoreError(
                f"{path}: cannot open the state database ({e}); check the path and permissions "
                "(state_db in config.toml), or move a damaged file aside to start afresh"
            ) from e

    def _open_readonly(self) -> None:
        self._known = None
        self._storied = None
        self._storied_version = 0
        self._bulk = False
        try:
            self._db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
            version = self.schema_version
            problem = _not_ours(self._db, self.path)
        except sqlite3.Error as e:
            if _damaged(e):
                raise StoreError(f"{self.path}: {_explained(e)}") from e
            raise StoreError(
                f"{self.path}: cannot open the state database to read it ({e}); check the path "
                "(state_db in config.toml), that the file is readable and that its folder is "
                "writable (SQLite keeps a WAL index beside it)"
            ) from e
        if problem:
            self._db.close()
            raise StoreError(problem)
        if version != len(MIGRATIONS):
            self._db.close()
            newer = version > len(MIGRATIONS)
            raise StoreError(
                f"{self.path}: schema {version}, this version of aggregator reads "
                f"{len(MIGRATIONS)}; "
                + ("upgrade aggregator" if newer else "run `aggregator run` once to migrate it")
            )
        self._db.execute("BEGIN")  # one snapshot for everything read

    # -- lifecycle ---------------------------------------------------------------------------

    def _migrate(self) -> None:
        """Bring the schema up to this version's (a newer one was refused by ``_not_ours``)."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version + 1, len(MIGRATIONS) + 1):
            self._db.execute("BEGIN")
            try:
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def commit(self) -> None:
        with self._errors:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._check_known()

    def rollback(self) -> None:
        with self._errors:
            self._db.execute("ROLLBACK")
            self._db.execute("BEGIN")
            self._check_known()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """``with store.savepoint():`` - the writes inside are undone if it raises (and the
        run's transaction goes on): one feed failing to publish must not keep its bookkeeping.
        The in-memory key sets only ever grow, so they stay correct supersets."""
        with self._errors:
            self._db.execute("SAVEPOINT feed")
        try:
            yield
        except BaseException:
            with self._errors:
                self._db.execute("ROLLBACK TO feed")
                self._db.execute("RELEASE feed")
            raise
        with self._errors:
            self._db.execute("RELEASE feed")

    def close(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what is stored, as sets (see the module docstring) ------------------------------------

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _check_known(self) -> None:
        if self._known is None and self._storied is None:
            return
        version = self._data_version()
        if self._known is not None and self._known.data_version != version:
            self._known = None  # another connection wrote: read the sets again when asked
        if self._storied is not None and self._storied_version != version:
            self._storied = None

    def expect(self, items: int) -> None:
        """The caller is about to store about ``items`` articles (archive files to read: one
        article each). Many (a cold run over an archive):
        the sets of every stored key and text hash are read once, so each article is looked up
        in memory and most lookups end there. Few (+100 files on 100,000 stored): each is
        looked up with an indexed query instead, and the 100,000-key sets (~0.2 s to read) are
        not read at all."""
        self._bulk = items >= BULK_ITEMS

    def _storied_keys(self) -> set[str]:
        """Keys of stories with members, and of their members (few: read in any mode)."""
        if self._storied is None:
            db = self._db
            self._storied_version = self._data_version()
            self._storied = {r[0] for r in db.execute("SELECT key FROM merges")} | {
                r[0] for r in db.execute("SELECT story FROM merges")
            }
        return self._storied

    def _each(
        self, sql: str, keys: Sequence[str], before: tuple[object, ...] = ()
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql``, whose ``IN ({})`` takes ``keys``, asked 500 keys at a time
        (SQLite's limit on parameters); ``before`` are the parameters ahead of them."""
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            yield from self._db.execute(sql.format(marks), (*before, *chunk))

    def _sets(self) -> _Known:
        if self._known is None:
            db = self._db
            self._known = _Known(
                versions={r[0] for r in db.execute("SELECT DISTINCT key FROM versions")},
                texts={r[0] for r in db.execute("SELECT text_hash FROM items")},
                duplicates={r[0] for r in db.execute("SELECT key FROM duplicates")},
                removed={
                    r[0]
                    for r in db.execute("SELECT key FROM tombstones WHERE reason = 'retention'")
                },
                data_version=self._data_version(),
            )
        return self._known

    # -- files -------------------------------------------------------------------------------

    def file_states(self, source: str, paths: Sequence[str] | None = None) -> dict[str, FileState]:
        """What is recorded of each of the source's files (of only ``paths``, when given)."""
        make = FileState._make
        with self._errors:
            if paths is None:
                rows = self._db.execute(
                    "SELECT path, size, mtime_ns, digest, status, reason FROM files"
                    " WHERE source = ?",
                    (source,),
                )
                return {r[0]: make(r[1:]) for r in rows}
            sql = (
                "SELECT path, size, mtime_ns, digest, status, reason FROM files"
                " WHERE source = ? AND path IN ({})"
            )
            return {r[0]: make(r[1:]) for r in self._each(sql, paths, (source,))}

    def skipped_files(self, source: str) -> list[tuple[str, str]]:
        """(path, reason) of the source's files recorded as skipped."""
        with self._errors:
            rows = self._db.execute(
                "SELECT path, COALESCE(reason, '') FROM files WHERE source = ?"
                " AND status = 'skipped' ORDER BY path",
                (source,),
            )
            return [(r[0], r[1]) for r in rows]

    def listing_digest(self, source: str) -> str | None:
        """The digest of the source's folder listing when every file in it was last taken in."""
        with self._errors:
            row = self._db.execute(
                "SELECT digest FROM listings WHERE source = ?", (source,)
            ).fetchone()
        return None if row is None else str(row[0])

    def listing_lines(self, source: str) -> list[str] | None:
        """That listing's lines, when they are recorded."""
        with self._errors:
            row = self._db.execute(
                "SELECT lines FROM listings WHERE source = ?", (source,)
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return bytes(row[0]).decode("utf-8", "surrogateescape").split("\n")

    def save_listing(self, source: str, digest: str | None, lines: str = "") -> None:
        """Remember the source's folder listing (its digest and its lines, one file each),
        or with None, forget it."""
        with self._errors:
            if digest is None:
                self._db.execute("DELETE FROM listings WHERE source = ?", (source,))
            else:
                # Not compressed: zlib would take 0.1 s for 100,000 lines (7.5 MB), every run
                # whose listing changed.
                blob = lines.encode("utf-8", "surrogateescape")
                self._db.execute(
                    "INSERT OR REPLACE INTO listings (source, digest, lines) VALUES (?, ?, ?)",
                    (source, digest, blob),
                )

    def forget_files(self, source: str, paths: Sequence[str]) -> None:
        """Drop the records of the source's files at ``paths`` (deleted from its folder)."""
        if paths:
            with self._errors:
                self._db.executemany(
                    "DELETE FROM files WHERE source = ? AND path = ?", ((source, p) for p in paths)
                )

    def record_file(self, source: str, path: str, state: FileState, now: datetime) -> None:
        with self._errors:
            self._db.execute(
                "INSERT INTO files (source, path, size, mtime_ns, digest, status, reason, read_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (source, path) DO UPDATE SET size = excluded.size,"
                " mtime_ns = excluded.mtime_ns, digest = excluded.digest, status = excluded.status,"
                " reason = excluded.reason, read_at = excluded.read_at",
                (source, path, state.size, state.mtime_ns, state.digest, state.status,
                 state.reason, _t(now)),
            )  # fmt: skip

    # -- versions and items ------------------------------------------------------------------

    def versions(self, key: str, origin: str | None = None) -> list[Version]:
        """The captured versions of ``key``; with ``origin``, those captured from that file."""
        with self._errors:
            if self._bulk and key not in self._sets().versions:
                return []
            sql = "SELECT at, text_hash, published, chars FROM versions WHERE key = ?"
            rows = (
                self._db.execute(sql, (key,))
                if origin is None
                else self._db.execute(sql + " AND origin = ?", (key, origin))
            )
            return [Version(_dt(at), h, _dt(p), n) for at, h, p, n in rows]

    def add_version(self, key: str, version: Version, origin: str) -> None:
        with self._errors:
            if self._known is not None:
                self._known.versions.add(key)
            self._db.execute(
                "INSERT OR IGNORE INTO versions (key, at, text_hash, published, origin, chars)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    _t(version.at),
                    version.text_hash,
                    _t(version.published),
                    origin,
                    version.chars,
                ),
            )

    def replace_version(
        self, key: str, origin: str, new: Version, old_hashes: set[str], at: datetime
    ) -> None:
        """The capture from ``origin`` at ``at`` cleaned again by other rules becomes ``new``;
        so do the other versions of ``key`` that had its old text (``old_hashes``): files since
        deleted, a feed's copy. (OR REPLACE: captures the new rules clean alike become one
        version.)"""
        with self._errors:
            if self._known is not None:
                self._known.versions.add(key)
            self._db.execute(
                "UPDATE OR REPLACE versions SET at = ?, text_hash = ?, published = ?, chars = ?"
                " WHERE key = ? AND origin = ? AND at = ?",
                (_t(new.at), new.text_hash, _t(new.published), new.chars, key, origin, _t(at)),
            )
            for old in old_hashes - {new.text_hash}:
                self._db.execute(
                    "UPDATE OR REPLACE versions SET text_hash = ?, chars = ? WHERE key = ?"
                    " AND text_hash = ?",
                    (new.text_hash, new.chars, key, old),
                )

    def shows(self, item: Item, res: Resolution) -> bool:
        """True when the stored article already shows ``item`` with ``res``'s dates."""
        image = item.image
        with self._errors:
            row = self._db.execute(
                "SELECT title, link, author, author_uri, lang, categories, image_url,"
                " image_caption, summary, content, published, updated FROM items WHERE key = ?",
                (item.key,),
            ).fetchone()
        return row is not None and tuple(row) == (
            item.title, item.link, item.author, item.author_uri, item.lang,
            json.dumps(list(item.categories), ensure_ascii=False),
            image.url if image else None, image.caption if image else None,
            item.summary, item.content, _t(res.published), _t(res.updated),
        )  # fmt: skip

    def has_files(self, source: str) -> bool:
        """True when a file of ``source`` was ever recorded as read."""
        with self._errors:
            return (
                self._db.execute(
                    "SELECT 1 FROM files WHERE source = ? LIMIT 1", (source,)
                ).fetchone()
                is not None
            )

    def cleaned_by(self, source: str) -> str | None:
        """The cleaning (``clean.signature``) the source's stored articles were made with; None
        when not recorded (a source never read whole, or a state made before it was kept)."""
        with self._errors:
            row = self._db.execute(
                "SELECT signature FROM cleaned_by WHERE source = ?", (source,)
            ).fetchone()
            return str(row[0]) if row else None

    def set_cleaned_by(self, source: str, signature: str) -> None:
        with self._errors:
            self._db.execute(
                "INSERT INTO cleaned_by (source, signature) VALUES (?, ?)"
                " ON CONFLICT (source) DO UPDATE SET signature = excluded.signature",
                (source, signature),
            )

    # -- which sources give which articles ----------------------------------------------------

    def carry(self, key: str, source: str) -> None:
        """Record that ``source`` gives the article ``key`` (its own, or an exact duplicate's)."""
        with self._errors:
            self._db.execute(
                "INSERT OR IGNORE INTO carries (key, source) VALUES (?, ?)", (key, source)
            )

    def _distinct_sources(self, table: str) -> list[str]:
        """The sources ``table`` holds rows of, each found by one index seek (a table of
        100,000 articles from 500 sources costs 500 seeks, not a scan)."""
        found: list[str] = []
        sql = f"SELECT min(source) FROM {table} WHERE source > ?"  # noqa: S608 - our names
        source = self._db.execute(f"SELECT min(source) FROM {table}").fetchone()[0]  # noqa: S608
        while source is not None:
            found.append(source)
            source = self._db.execute(sql, (source,)).fetchone()[0]
        return found

    def stored_sources(self) -> set[str]:
        """Every source the state holds anything of: articles, files read, fetch state."""
        with self._errors:
            # (A daemon's schedule makes rows for sources never run yet: not theirs.)
            known = {
                r[0]
                for r in self._db.execute(
                    "SELECT source FROM source_status WHERE last_run IS NOT NULL"
                )
            }
            known.update(r[0] for r in self._db.execute("SELECT source FROM fetch_state"))
            known.update(self._distinct_sources("files"))
            known.update(self._distinct_sources("items"))
            return known

    def found_at(
        self, source: str, url: str | None, takes: Callable[[Path], bool] | None = None
    ) -> bool:
        """True when what the state holds of ``source`` came from the feed ``url``, or, for
        an archive, when ``takes`` (would another source's scan list this file) says so of
        every file it read (a folder two sources share, each its own files, names neither's)."""
        with self._errors:
            if url is not None:
                return (
                    self._db.execute(
                        "SELECT 1 FROM fetch_state WHERE source = ? AND ? IN (configured, url)",
                        (source, url),
                    ).fetchone()
                    is not None
                )
            if takes is None:
                return False
            paths = [Path(r[0]) for r in self._db.execute(
                "SELECT path FROM files WHERE source = ?", (source,)
            )]  # fmt: skip
            return bool(paths) and all(map(takes, paths))

    def rename_source(self, old: str, new: str) -> int:
        """Everything the state holds of source ``old`` becomes ``new``'s (a source renamed in
        config.toml); how many articles it showed. ``new`` must hold nothing yet."""
        with self._errors:
            shown = self._db.execute(
                "SELECT count(*) FROM items WHERE source = ? AND story IS NULL", (old,)
            ).fetchone()[0]
            # A daemon's schedule may have made the new name's row already, empty.
            self._db.execute(
                "DELETE FROM source_status WHERE source = ? AND last_run IS NULL", (new,)
            )
            for table in _SOURCE_TABLES:
                self._db.execute(
                    f"UPDATE {table} SET source = ? WHERE source = ?",  # noqa: S608 - our names
                    (new, old),
                )
            return int(shown)

    def rehome(self, sources: Sequence[str]) -> dict[tuple[str, str], int]:
        """Articles shown under a source not in ``sources`` (taken out of config.toml) move to
        the first source of ``sources`` that gives them too: the article itself, an exact
        duplicate of it, or an article merged into it (and such a copy's duplicates); and an
        article moved so before goes back to its source when that is in ``sources`` again.
        Returns how many articles moved, by (from, to). An article no listed source gives
        stays where it is (in no feed; the source put back brings it back)."""
        moved: dict[tuple[str, str], int] = {}
        with self._errors:
            listed = set(sources)
            back = [
                (key, was, now)
                for key, was, now in self._db.execute(
                    "SELECT r.key, r.source, i.source FROM rehomed r JOIN items i USING (key)"
                )
                if was in listed
            ]
            for key, was, now in back:
                self._db.execute("DELETE FROM rehomed WHERE key = ?", (key,))
                if now != was:  # (not when its own new capture took it back already)
                    self._db.execute("UPDATE items SET source = ? WHERE key = ?", (was, key))
                    moved[now, was] = moved.get((now, was), 0) + 1
            gone = [s for s in self._distinct_sources("items") if s not in listed]
            if not gone:
                return moved
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ranks (source TEXT PRIMARY KEY, rank INTEGER)"
            )
            self._db.execute("DELETE FROM temp.ranks")
            self._db.executemany(
                "INSERT INTO temp.ranks (source, rank) VALUES (?, ?)",
                [(s, n) for n, s in enumerate(dict.fromkeys(sources))],
            )
            for old in gone:
                rows = self._db.execute(
                    "SELECT o.key, (SELECT r.source FROM carries c JOIN temp.ranks r"
                    "  ON r.source = c.source WHERE c.key IN ("
                    "   SELECT o.key"
                    "   UNION ALL SELECT d.key FROM duplicates d WHERE d.kept_key = o.key"
                    "   UNION ALL SELECT m.key FROM items m WHERE m.story = o.key"
                    "   UNION ALL SELECT d.key FROM items m JOIN duplicates d"
                    "    ON d.kept_key = m.key WHERE m.story = o.key"
                    "  ) ORDER BY r.rank LIMIT 1)"
                    " FROM items o WHERE o.source = ?",
                    (old,),
                ).fetchall()
                for key, new in rows:
                    if new is None:
                        continue
                    self._db.execute("UPDATE items SET source = ? WHERE key = ?", (new, key))
                    self._db.execute(
                        "INSERT OR IGNORE INTO rehomed (key, source) VALUES (?, ?)", (key, old)
                    )
                    moved[old, new] = moved.get((old, new), 0) + 1
            self._db.execute("DELETE FROM temp.ranks")
            return moved

    def guid_key(self, source: str, guid: str) -> str | None:
        """The article a feed entry with this guid was last stored under, from ``source``."""
        with self._errors:
            row = self._db.execute(
                "SELECT key FROM guids WHERE source = ? AND guid = ?", (source, guid)
            ).fetchone()
            return str(row[0]) if row else None

    def save_guid(self, source: str, guid: str, key: str) -> None:
        with self._errors:
            self._db.execute(
                "INSERT INTO guids (source, guid, key) VALUES (?, ?, ?)"
                " ON CONFLICT (source, guid) DO UPDATE SET key = excluded.key",
                (source, guid, key),
            )

    def keep_guids(self, source: str, guids: Collection[str]) -> None:
        """Forget the guids of ``source`` other than ``guids`` (those its feed gives now)."""
        with self._errors:
            self._db.execute(
                "DELETE FROM guids WHERE source = ? AND guid NOT IN"
                " (SELECT value FROM json_each(?))",
                (source, json.dumps(sorted(guids))),
            )

    def save_item(self, item: Item, res: Resolution, now: datetime) -> None:
        """Insert the article, or update it with ``item`` (the kept version) and its dates."""
        image = item.image
        with self._errors:
            if self._known is not None:
                self._known.texts.add(res.kept.text_hash)
            self._db.execute(
                "INSERT INTO items (key, atom_id, source, outlet, title, link, author, author_uri,"
                " lang, categories, image_url, image_caption, summary, content, text_hash,"
                " published, updated, first_seen)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET source = excluded.source,"
                " outlet = excluded.outlet, title = excluded.title, link = excluded.link,"
                " author = excluded.author, author_uri = excluded.author_uri, lang = excluded.lang,"
                " categories = excluded.categories, image_url = excluded.image_url,"
                " image_caption = excluded.image_caption, summary = excluded.summary,"
                " content = excluded.content, text_hash = excluded.text_hash,"
                " published = excluded.published, updated = excluded.updated",
                (
                    item.key, mint_atom_id(item.key), item.source, item.outlet, item.title,
                    item.link, item.author, item.author_uri, item.lang,
                    json.dumps(list(item.categories), ensure_ascii=False),
                    image.url if image else None, image.caption if image else None,
                    item.summary, item.content, res.kept.text_hash,
                    _t(res.published), _t(res.updated), _t(now),
                ),
            )  # fmt: skip

    def save_dates(self, key: str, res: Resolution) -> None:
        """Only the dates move (an older capture arrived): title and text stay."""
        with self._errors:
            self._db.execute(
                "UPDATE items SET published = ?, updated = ? WHERE key = ?",
                (_t(res.published), _t(res.updated), key),
            )

    def same_text(self, text_hash: str, key: str) -> str | None:
        """The key of another stored article with exactly this text, if any."""
        with self._errors:
            if self._bulk and text_hash not in self._sets().texts:
                return None
            row = self._db.execute(
                "SELECT key FROM items WHERE text_hash = ? AND key != ? ORDER BY key LIMIT 1",
                (text_hash, key),
            ).fetchone()
            return str(row[0]) if row else None

    def add_duplicate(self, item: Item, kept_key: str, reason: str, now: datetime) -> None:
        with self._errors:
            if self._known is not None:
                self._known.duplicates.add(item.key)
            self._db.execute(
                "INSERT INTO duplicates (key, kept_key, source, link, origin, reason, seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " kept_key = excluded.kept_key, origin = excluded.origin, reason = excluded.reason",
                (item.key, kept_key, item.source, item.link, item.origin, reason, _t(now)),
            )

    def duplicate_of(self, key: str) -> str | None:
        with self._errors:
            if self._bulk and key not in self._sets().duplicates:
                return None
            row = self._db.execute(
                "SELECT kept_key FROM duplicates WHERE key = ?", (key,)
            ).fetchone()
            return str(row[0]) if row else None

    def forget_duplicate(self, key: str) -> None:
        with self._errors:
            self._db.execute("DELETE FROM duplicates WHERE key = ?", (key,))

    # -- output ------------------------------------------------------------------------------

    def entries(self, sources: Sequence[str], limit: int) -> list[Entry]:
        """The newest ``limit`` entries of ``sources``, newest first (ties by key)."""
        return list(self.iter_entries(sources, limit))

    def iter_entries(
        self, sources: Sequence[str], limit: int | None = None, skip: Collection[str] = ()
    ) -> Iterator[Entry]:
        """The entries of ``sources``, newest first (ties by key), read one at a time as the
        caller asks (a filtered feed reads until it has enough); none of the keys in ``skip``.
        An entry merged from several articles shows its story's chosen title and text, and
        links the other copies (``via``, ``related``)."""
        if not sources:
            return
        marks = ", ".join("?" for _ in sources)
        with self._errors:
            # Keys first, from the covering index; then the wide rows for those keys only.
            keys = [
                r[0]
                for r in self._db.execute(
                    f"SELECT key FROM items WHERE source IN ({marks})"  # noqa: S608 - marks only
                    " AND story IS NULL ORDER BY published DESC, key LIMIT ?",
                    (*sources, -1 if limit is None else limit),
                )
            ]
            storied = self._storied_keys()
        for key in keys:
            if key in skip:
                continue
            with self._errors:
                row = self._db.execute(
                    "SELECT atom_id, key, source, outlet, title, link, published, updated, author,"
                    " author_uri, lang, summary, content, categories, image_url, image_caption"
                    " FROM items WHERE key = ?",
                    (key,),
                ).fetchone()
                if row is None:
                    continue
                via: str | None = None
                related: tuple[str, ...] = ()
                if key in storied:
                    row, via, related = self._story_view(row)
                image = Image(row[14], row[15] or "") if row[14] else None
                # Earlier versions could store a title that cleaned to nothing; one
                # empty title made feedgen refuse the whole feed.
                title = row[4] or untitled(row[11]) or row[5] or row[1]
                entry = Entry(
                    atom_id=row[0], key=row[1], source=row[2], outlet=row[3], title=title,
                    link=row[5], published=_dt(row[6]), updated=_dt(row[7]), author=row[8],
                    author_uri=row[9], lang=row[10], summary=row[11], content=row[12],
                    categories=tuple(json.loads(row[13])), image=image, via=via,
                    related=related,
                )  # fmt: skip
                yield from self._with_duplicate_links([entry])

    def _story_view(
        self, row: tuple[Any, ...]
    ) -> tuple[tuple[Any, ...], str | None, tuple[str, ...]]:
        """An entry's row with its story's shown title and text, and the other copies' links."""
        key, link = row[1], row[5]
        story = self._db.execute("SELECT shown FROM stories WHERE key = ?", (key,)).fetchone()
        via = None
        if story is not None and story[0] != key:
            shown = self._db.execute(
                "SELECT title, link, lang, summary, content, categories, image_url, image_caption"
                " FROM items WHERE key = ?",
                (story[0],),
            ).fetchone()
            if shown is not None:
                title, via, lang, summary, content, categories, image_url, caption = shown
                row = (*row[:4], title, link, row[6], row[7], row[8], row[9], lang, summary,
                       content, categories, image_url, caption)  # fmt: skip
        links = {
            r[0]
            for r in self._db.execute(
                "SELECT link FROM items WHERE story = ? AND link IS NOT NULL", (key,)
            )
        }
        related = tuple(sorted(links - {link, via}))
        return row, via, related

    def _with_duplicate_links(self, entries: list[Entry]) -> list[Entry]:
        """Each entry with the links of the exact duplicates of its articles as ``related``."""
        out = []
        for e in entries:
            members = [e.key]
            if e.key in self._storied_keys():
                members += [
                    r[0]
                    for r in self._db.execute("SELECT key FROM items WHERE story = ?", (e.key,))
                ]
            marks = ", ".join("?" for _ in members)
            links = {
                r[0]
                for r in self._db.execute(
                    f"SELECT link FROM duplicates WHERE kept_key IN ({marks})"  # noqa: S608
                    " AND link IS NOT NULL",
                    members,
                )
            }
            extra = links - {e.link, e.via, *e.related}
            if extra:
                e = replace(e, related=tuple(sorted({*e.related, *extra})))
            out.append(_linked(e, sorted(links)))
        return out

    def apply_retention(self, retention: Retention, sources: Sequence[str], now: datetime) -> int:
        """Delete entries older than the age limit or beyond the per-source count, with the
        articles merged into them; how many entries. Each deleted article leaves a tombstone,
        so a later capture of it does not bring it back."""
        removed = 0
        with self._errors:
            doomed: list[str] = []
            if retention.max_age_days:
                cutoff = _t(now - timedelta(days=retention.max_age_days))
                doomed += [
                    r[0]
                    for r in self._db.execute(
                        "SELECT key FROM items WHERE published < ? AND story IS NULL", (cutoff,)
                    )
                ]
            if retention.max_items_per_source:
                for source in sources:
                    doomed += [
                        r[0]
                        for r in self._db.execute(
                            "SELECT key FROM items WHERE source = ? AND story IS NULL"
                            " ORDER BY published DESC, key LIMIT -1 OFFSET ?",
                            (source, retention.max_items_per_source),
                        )
                    ]
            at = _t(now)
            for key in dict.fromkeys(doomed):
                members = self._db.execute(
                    "SELECT key, atom_id FROM items WHERE key = ? OR story = ?", (key, key)
                ).fetchall()
                self._db.executemany(
                    "INSERT OR REPLACE INTO tombstones (key, atom_id, reason, at)"
                    " VALUES (?, ?, 'retention', ?)",
                    [(k, atom_id, at) for k, atom_id in members],
                )
                gone = [(k,) for k, _ in members]
                if self._known is not None:
                    self._known.removed.update(k for (k,) in gone)
                    self._known.versions.difference_update(k for (k,) in gone)
                # What only a live article needs goes with it: its text history, its sketch
                # and signature (every later near-duplicate pass would scan them), and why its
                # members were merged. The tombstone stays, and so do the exact-duplicate
                # records, which keep other addresses of it from coming back.
                for table in (
                    "versions", "sketches", "signatures", "merges", "carries", "rehomed"
                ):  # fmt: skip
                    self._db.executemany(f"DELETE FROM {table} WHERE key = ?", gone)  # noqa: S608
                self._db.execute("DELETE FROM merges WHERE story = ?", (key,))
                self._db.execute("DELETE FROM items WHERE story = ?", (key,))
                self._db.execute("DELETE FROM stories WHERE key = ?", (key,))
                removed += self._db.execute("DELETE FROM items WHERE key = ?", (key,)).rowcount
        return removed

    def removed(self, key: str) -> bool:
        """Whether retention deleted this article (it must not come back)."""
        with self._errors:
            if self._bulk:
                return key in self._sets().removed
            return (
                self._db.execute(
                    "SELECT 1 FROM tombstones WHERE key = ? AND reason = 'retention'", (key,)
                ).fetchone()
                is not None
            )

    # -- near duplicates ---------------------------------------------------------------------

    def save_sketch(self, key: str, sketch: Sketch, day: int) -> None:
        """Store an article's sketch; a new article's is pending until compared (the text of a
        known one is updated in place and not compared again)."""
        with self._errors:
            self._db.execute(
                "INSERT INTO sketches (key, bands, shingles, title, title_key, numbers, day,"
                " pending) VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (key) DO UPDATE SET"
                " bands = excluded.bands, shingles = excluded.shingles, title = excluded.title,"
                " title_key = excluded.title_key, numbers = excluded.numbers, day = excluded.day",
                (key, sketch.bands, sketch.shingles, sketch.title, sketch.title_key,
                 sketch.numbers, day),
            )  # fmt: skip
            self._db.execute(
                "INSERT OR REPLACE INTO signatures (key, sig) VALUES (?, ?)", (key, sketch.sig)
            )

    def signatures(self, keys: Sequence[str]) -> Iterator[tuple[str, bytes, int]]:
        """(key, signature, shingles) of each of ``keys`` that has a sketch."""
        sql = (
            "SELECT g.key, g.sig, s.shingles FROM signatures g JOIN sketches s"
            " ON s.key = g.key WHERE g.key IN ({})"
        )
        with self._errors:
            for key, sig, shingles in self._each(sql, keys):
                yield key, bytes(sig), shingles

    def pending_days(self) -> tuple[int, int, int] | None:
        """(count, first day, last day) of the sketches not compared yet, or None."""
        with self._errors:
            row = self._db.execute(
                "SELECT COUNT(*), MIN(day), MAX(day) FROM sketches WHERE pending = 1"
            ).fetchone()
        return (int(row[0]), int(row[1]), int(row[2])) if row[0] else None

    def band_index(
        self, first_day: int, last_day: int
    ) -> tuple[list[str], bytearray, list[int], list[int], list[int]]:
        """Of every article published from ``first_day`` to ``last_day`` (days since 1970) and
        of every pending one, as columns: keys, band hashes (one blob), days, title keys and
        pending flags (1 or 0)."""
        with self._errors:
            (within,) = self._db.execute(
                "SELECT COUNT(*) FROM sketches WHERE day BETWEEN ? AND ?", (first_day, last_day)
            ).fetchone()
            (total,) = self._db.execute("SELECT COUNT(*) FROM sketches").fetchone()
            # A window holding much of the table is read by scanning it: through the day index
            # each row costs a search of the table (0.6 s against 0.19 s for 90,000 rows).
            # The unary + keeps SQLite from the indexes (NOT INDEXED does not stop its
            # OR-by-union plan).
            sql = _BANDS_SCANNED if within * 4 > total else _BANDS_BY_DAY
            cursor = self._db.execute(sql, (first_day, last_day))
            keys: list[str] = []
            bands = bytearray()
            days: list[int] = []
            titles: list[int] = []
            pending: list[int] = []
            # In chunks, column by column: no per-row Python, and no 100,000 rows held at once.
            while chunk := cursor.fetchmany(10_000):
                k, b, d, t, p = zip(*chunk, strict=True)
                keys += k
                bands += b"".join(b)
                days += d
                titles += t
                pending += p
        return keys, bands, days, titles, pending

    def sketched(
        self, keys: Sequence[str]
    ) -> Iterator[tuple[str, str, Sketch, datetime, str, bool, str, datetime]]:
        """(key, story, sketch, published, outlet, pending, source, first seen) of each of
        ``keys``."""
        sql = (
            "SELECT s.key, COALESCE(i.story, s.key), g.sig, s.bands, s.shingles, s.title,"
            " s.title_key, s.numbers, i.published, i.outlet, s.pending, i.source, i.first_seen"
            " FROM sketches s JOIN items i ON i.key = s.key JOIN signatures g"
            " ON g.key = s.key WHERE s.key IN ({})"
        )
        with self._errors:
            rows = self._each(sql, keys)
            for key, story, sig, bands, shingles, title, tkey, numbers, pub, *rest in rows:
                outlet, pending, source, seen = rest
                sketch = Sketch(bytes(sig), bytes(bands), shingles, title, tkey, numbers)
                yield key, story, sketch, _dt(pub), outlet, bool(pending), source, _dt(seen)

    def compared(self) -> None:
        """Every pending sketch has been compared."""
        with self._errors:
            self._db.execute("UPDATE sketches SET pending = 0 WHERE pending = 1")

    def merge(self, key: str, story: str, evidence: Evidence, now: datetime) -> None:
        """Hide article ``key`` behind the entry of ``story``, recording why."""
        e = evidence
        with self._errors:
            self._storied_keys().update((key, story))
            self._db.execute("UPDATE items SET story = ? WHERE key = ?", (story, key))
            self._db.execute(
                "INSERT OR REPLACE INTO merges (key, story, rule, matched, similarity,"
                " containment, title_similarity, days_apart, merged_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, story, e.rule, e.matched, e.similarity, e.containment,
                 e.title_similarity, e.days_apart, _t(now)),
            )  # fmt: skip
            self._db.execute(
                "INSERT OR REPLACE INTO tombstones (key, atom_id, reason, at)"
                " SELECT key, atom_id, 'merged', ? FROM items WHERE key = ?",
                (_t(now), key),
            )

    def merge_story(self, old: str, story: str, evidence: Evidence, now: datetime) -> None:
        """Move every article of stored story ``old`` behind the entry of ``story`` (a new
        article matched both); ``old``'s entry is merged away and leaves a tombstone."""
        with self._errors:
            self._storied_keys().update((old, story))
            self._db.execute("UPDATE items SET story = ? WHERE story = ?", (story, old))
            self._db.execute("UPDATE merges SET story = ? WHERE story = ?", (story, old))
            self._db.execute("DELETE FROM stories WHERE key = ?", (old,))
        self.merge(old, story, evidence, now)

    def first_seen(self, key: str) -> datetime | None:
        with self._errors:
            row = self._db.execute("SELECT first_seen FROM items WHERE key = ?", (key,)).fetchone()
        return _dt(row[0]) if row else None

    def story_of(self, key: str) -> str | None:
        """The entry an article belongs to when it is part of a story of several, else None."""
        with self._errors:
            if key not in self._storied_keys():
                return None
            row = self._db.execute(
                "SELECT COALESCE(story, key) FROM items WHERE key = ?", (key,)
            ).fetchone()
            return str(row[0]) if row else None

    def members(self, story: str) -> list[Member]:
        """Every article of a story, the representative first, with its own text's fullness
        and dates (the representative's dates are the story's: the pipeline knows its own)."""
        with self._errors:
            rows = self._db.execute(
                "SELECT i.key, COALESCE(s.shingles, 0), i.text_hash, i.published, i.updated,"
                " i.outlet FROM items i LEFT JOIN sketches s ON s.key = i.key"
                " WHERE i.key = ? OR i.story = ? ORDER BY i.key != ?, i.key",
                (story, story, story),
            ).fetchall()
        return [Member(k, n, h, _dt(p), _dt(u), o) for k, n, h, p, u, o in rows]

    def shown(self, story: str) -> Shown | None:
        """What a story's entry published when last written, or None."""
        with self._errors:
            row = self._db.execute(
                "SELECT shown, text_hash, published, updated FROM stories WHERE key = ?",
                (story,),
            ).fetchone()
        return Shown(row[0], row[1], _dt(row[2]), _dt(row[3])) if row else None

    def stale_story(self, story: str) -> None:
        """One of ``story``'s members changed: its entry is to be presented again."""
        with self._errors:
            self._db.execute("INSERT OR IGNORE INTO stale_stories (story) VALUES (?)", (story,))

    def stale_stories(self) -> set[str]:
        """The stories to present again (``stale_story``), this run's and any a stopped run
        left."""
        with self._errors:
            return {r[0] for r in self._db.execute("SELECT story FROM stale_stories")}

    def presented(self) -> None:
        """Every stale story has been presented again."""
        with self._errors:
            self._db.execute("DELETE FROM stale_stories")

    def save_shown(self, story: str, shown: Shown) -> None:
        with self._errors:
            self._db.execute(
                "INSERT OR REPLACE INTO stories (key, shown, text_hash, published, updated)"
                " VALUES (?, ?, ?, ?, ?)",
                (story, shown.key, shown.text_hash, _t(shown.published), _t(shown.updated)),
            )
            self._db.execute(
                "UPDATE items SET published = ?, updated = ? WHERE key = ?",
                (_t(shown.published), _t(shown.updated), story),
            )

    def find(self, query: str) -> str | None:
        """The article an Atom id, identity key or article URL names, or None."""
        with self._errors:
            for sql in (
                "SELECT key FROM items WHERE atom_id = ?",
                "SELECT key FROM items WHERE key = ?",
                "SELECT key FROM items WHERE link = ? ORDER BY key LIMIT 1",
                "SELECT key FROM tombstones WHERE atom_id = ?",
                "SELECT key FROM duplicates WHERE key = ? OR link = ? ORDER BY key LIMIT 1",
            ):
                args = (query, query) if sql.count("?") == 2 else (query,)
                row = self._db.execute(sql, args).fetchone()
                if row:
                    return str(row[0])
        return None

    def explain(self, key: str) -> dict[str, Any]:
        """Everything recorded about an article's story: the entry, its members with why each
        was merged, exact duplicates, and tombstones. Plain data for the CLI to format."""
        with self._errors:
            db = self._db
            dup = db.execute("SELECT kept_key FROM duplicates WHERE key = ?", (key,)).fetchone()
            asked = key
            if dup is not None:
                key = dup[0]
            row = db.execute("SELECT COALESCE(story, key) FROM items WHERE key = ?", (key,))
            found = row.fetchone()
            story = found[0] if found else key
            members = _records(
                db, "key, atom_id, source, title, link, published, updated, story, text_hash",
                "FROM items WHERE key = ? OR story = ? ORDER BY key != ?, key",
                (story, story, story),
            )  # fmt: skip
            merges = {
                m["key"]: m
                for m in _records(
                    db,
                    "key, story, rule, matched, similarity, containment, title_similarity,"
                    " days_apart, merged_at",
                    "FROM merges WHERE story = ?",
                    (story,),
                )
            }
            keys = [m["key"] for m in members] or [story]
            marks = ", ".join("?" for _ in keys)
            duplicates = _records(
                db, "key, kept_key, source, link, origin, reason, seen_at",
                f"FROM duplicates WHERE kept_key IN ({marks}) ORDER BY key", keys,
            )  # fmt: skip
            tombstone = db.execute(
                "SELECT reason, at FROM tombstones WHERE key = ?", (asked,)
            ).fetchone()
            sketches = {
                r[0]: {"shingles": r[1], "title": r[2]}
                for r in db.execute(
                    f"SELECT key, shingles, title FROM sketches WHERE key IN ({marks})",  # noqa: S608
                    keys,
                )
            }
        shown = self.shown(story)
        return {
            "asked": asked,
            "story": story,
            "members": members,
            "merges": merges,
            "duplicates": duplicates,
            "sketches": sketches,
            "shown": shown.key if shown else story,
            "tombstone": {"reason": tombstone[0], "at": tombstone[1]} if tombstone else None,
        }

    # -- URL sources -------------------------------------------------------------------------

    def fetch_state(self, source: str) -> FetchState:
        """What the last fetches of ``source`` left (an empty state for a new source)."""
        with self._errors:
            row = self._db.execute(
                "SELECT configured, url, etag, last_modified, failures, retry_at, last_attempt,"
                " last_success, last_error, digest FROM fetch_state WHERE source = ?",
                (source,),
            ).fetchone()
        if row is None:
            return FetchState()
        retry_at, attempt, success = (_dt(v) if v else None for v in (row[5], row[6], row[7]))
        return FetchState(
            configured=row[0], url=row[1], etag=row[2], last_modified=row[3], failures=row[4],
            retry_at=retry_at, last_attempt=attempt, last_success=success, last_error=row[8],
            digest=row[9],
        )  # fmt: skip

    def save_fetch_state(self, source: str, state: FetchState) -> None:
        def t(dt: datetime | None) -> str | None:
            return _t(dt) if dt is not None else None

        with self._errors:
            self._db.execute(
                "INSERT OR REPLACE INTO fetch_state (source, configured, url, etag, last_modified,"
                " failures, retry_at, last_attempt, last_success, last_error, digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (source, state.configured, state.url, state.etag, state.last_modified, state.failures,
                 t(state.retry_at), t(state.last_attempt), t(state.last_success),
                 state.last_error, state.digest),
            )  # fmt: skip

    def save_snapshot(self, fetched: Fetched) -> None:
        """Keep ``fetched`` as its source's last body (one per source, replaced each time).
        ``fetched.at`` says when it was downloaded; the store reads no clock."""
        if fetched.at is None:
            raise ValueError(f"{fetched.origin}: a snapshot needs the time it was fetched")
        with self._errors:
            self._db.execute(
                "INSERT OR REPLACE INTO snapshots (source, url, fetched_at, headers, body)"
                " VALUES (?, ?, ?, ?, ?)",
                (fetched.source, fetched.origin, _t(fetched.at),
                 json.dumps(fetched.headers, ensure_ascii=False), fetched.data),
            )  # fmt: skip

    def snapshot(self, source: str) -> Fetched | None:
        """The last body fetched for ``source``, as it arrived, or None."""
        with self._errors:
            row = self._db.execute(
                "SELECT url, fetched_at, headers, body FROM snapshots WHERE source = ?", (source,)
            ).fetchone()
        if row is None:
            return None
        headers = tuple((str(k), str(v)) for k, v in json.loads(row[2]))
        return Fetched(row[0], source, bytes(row[3]), True, headers, _dt(row[1]))

    # -- output feeds ------------------------------------------------------------------------

    def feed_written(self, name: str) -> FeedRecord | None:
        """How the feed was last built, or None."""
        with self._errors:
            row = self._db.execute(
                "SELECT signature, entries, content, updated FROM feeds WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            return None
        return FeedRecord(str(row[0]), int(row[1]), row[2], _dt(row[3]) if row[3] else None)

    def record_feed(
        self,
        name: str,
        signature: str,
        entries: int,
        updated: datetime | None,
        content: str | None = None,
        files: Sequence[str] | None = None,
    ) -> None:
        """Record how a feed was built; ``files``: its documents, relative to the output
        folder (None keeps those recorded)."""
        with self._errors:
            self._db.execute(
                "INSERT INTO feeds (name, signature, entries, updated, content, files)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " signature = excluded.signature, entries = excluded.entries,"
                " updated = excluded.updated, content = excluded.content,"
                " files = COALESCE(excluded.files, feeds.files)",
                (name, signature, entries, _t(updated) if updated else None, content,
                 None if files is None else json.dumps(list(files))),
            )  # fmt: skip

    def feed_files(self) -> dict[str, list[str] | None]:
        """Every feed recorded, with the files it was last written to (None: not recorded,
        by an older version)."""
        with self._errors:
            rows = self._db.execute("SELECT name, files FROM feeds").fetchall()
        return {name: None if files is None else json.loads(files) for name, files in rows}

    def set_feed_files(self, name: str, files: Sequence[str]) -> None:
        with self._errors:
            self._db.execute(
                "UPDATE feeds SET files = ? WHERE name = ?", (json.dumps(list(files)), name)
            )

    def all_archive_pages(self, feed: str) -> list[int]:
        """Numbers of every archive page the feed has had (removed ones included)."""
        with self._errors:
            rows = self._db.execute("SELECT page FROM archive_pages WHERE feed = ?", (feed,))
            return sorted(int(r[0]) for r in rows)

    def forget_feed(self, name: str) -> None:
        """Drop all the state holds of a feed no longer configured (its files are gone)."""
        with self._errors:
            self._db.execute("DELETE FROM archive_entries WHERE feed = ?", (name,))
            self._db.execute("DELETE FROM archive_pages WHERE feed = ?", (name,))
            self._db.execute("DELETE FROM feeds WHERE name = ?", (name,))

    def outdate_feeds(self, names: Sequence[str]) -> None:
        """Mark feeds as not built from what the state now holds: their settings signature
        no longer matches, so the next run looks at them whatever it finds changed, and
        renders those whose entries (the content digest, kept) did change."""
        with self._errors:
            self._db.executemany(
                "UPDATE feeds SET signature = 'outdated' WHERE name = ?",
                [(name,) for name in names],
            )

    # -- runs, for the health page and /metrics ----------------------------------------------

    def record_source_run(self, report: SourceReport, at: datetime) -> None:
        """Count one run of a source (read or fetched) that finished at ``at``."""
        error = report.error or (
            report.fetch.detail if report.fetch and report.fetch.outcome == "failed" else None
        )
        failed = error is not None
        with self._errors:
            self._db.execute(
                "INSERT INTO source_status (source, last_run, last_success, last_error,"
                " last_error_at, new, updated, duplicates, unchanged, skipped, runs, errors,"
                " new_total, updated_total, duplicates_total)"
                " VALUES (:source, :at, :success, :error, :error_at, :new, :updated, :dups,"
                " :unchanged, :skipped, 1, :failed, :new, :updated, :dups)"
                " ON CONFLICT (source) DO UPDATE SET last_run = :at,"
                " last_success = coalesce(:success, last_success),"
                " last_error = coalesce(:error, last_error),"
                " last_error_at = coalesce(:error_at, last_error_at),"
                " new = :new, updated = :updated, duplicates = :dups, unchanged = :unchanged,"
                " skipped = :skipped, runs = runs + 1, errors = errors + :failed,"
                " new_total = new_total + :new, updated_total = updated_total + :updated,"
                " duplicates_total = duplicates_total + :dups",
                {"source": report.name, "at": _t(at), "success": None if failed else _t(at),
                 "error": error, "error_at": _t(at) if failed else None, "new": report.new,
                 "updated": report.updated, "dups": report.duplicates,
                 "unchanged": report.unchanged, "skipped": len(report.skipped),
                 "failed": int(failed)},
            )  # fmt: skip

    def record_cycle(self, cycle: Cycle) -> None:
        """Record a run or daemon cycle: its row among the newest KEPT_CYCLES, and the totals."""
        with self._errors:
            self._db.execute(
                "INSERT INTO cycles (started, seconds, sources, failed, error)"
                " VALUES (?, ?, ?, ?, ?)",
                (_t(cycle.started), cycle.seconds, cycle.sources, cycle.failed, cycle.error),
            )
            self._db.execute(
                "UPDATE cycle_totals SET cycles = cycles + 1, seconds = seconds + ?",
                (cycle.seconds,),
            )
            self._db.execute(
                "DELETE FROM cycles WHERE id <= (SELECT id FROM cycles ORDER BY id DESC"
                " LIMIT 1 OFFSET ?)",
                (KEPT_CYCLES,),
            )

    def set_next_runs(self, next_runs: Mapping[str, datetime | None]) -> None:
        """When the daemon runs each source next (None: not scheduled)."""
        with self._errors:
            self._db.executemany(
                "INSERT INTO source_status (source, next_run) VALUES (?, ?)"
                " ON CONFLICT (source) DO UPDATE SET next_run = excluded.next_run",
                [(name, _t(at) if at else None) for name, at in sorted(next_runs.items())],
            )

    # -- RFC 5005 archive pages ----------------------------------------------------------------

    def archived(self, feed: str) -> set[str]:
        """Keys of the entries on the feed's archive pages."""
        with self._errors:
            rows = self._db.execute("SELECT key FROM archive_entries WHERE feed = ?", (feed,))
            return {r[0] for r in rows}

    def archive_pages(self, feed: str) -> list[int]:
        """Numbers of the feed's archive pages still published, oldest first."""
        with self._errors:
            rows = self._db.execute(
                "SELECT page FROM archive_pages WHERE feed = ? AND removed = 0 ORDER BY page",
                (feed,),
            )
            return [int(r[0]) for r in rows]

    def last_archive_page(self, feed: str) -> int:
        """The highest page number the feed has used (removed pages included); 0: none."""
        with self._errors:
            row = self._db.execute(
                "SELECT COALESCE(MAX(page), 0) FROM archive_pages WHERE feed = ?", (feed,)
            ).fetchone()
        return int(row[0])

    def add_archive_page(self, feed: str, keys: Sequence[str], after: int = 0) -> int:
        """Record a new page holding ``keys``; its number: never one used before, and above
        ``after`` (the highest page number already in the output folder)."""
        with self._errors:
            page = max(self.last_archive_page(feed), after) + 1
            self._db.execute(
                "INSERT INTO archive_pages (feed, page, entries) VALUES (?, ?, ?)",
                (feed, page, len(keys)),
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO archive_entries (feed, key, page) VALUES (?, ?, ?)",
                [(feed, key, page) for key in keys],
            )
        return page

    def forget_archive_pages(self, feed: str, pages: Sequence[int]) -> None:
        """Take back pages recorded this run whose files could not be published: their
        entries return to the feed's current document."""
        with self._errors:
            for page in pages:
                self._db.execute(
                    "DELETE FROM archive_entries WHERE feed = ? AND page = ?", (feed, page)
                )
                self._db.execute(
                    "DELETE FROM archive_pages WHERE feed = ? AND page = ?", (feed, page)
                )

    def remove_emptied_archive_pages(self, feed: str) -> list[int]:
        """Pages none of whose entries retention has kept: marked removed (their numbers are
        not used again); their numbers, for the caller to delete the files."""
        with self._errors:
            pages = [
                int(r[0])
                for r in self._db.execute(
                    "SELECT p.page FROM archive_pages p WHERE p.feed = ? AND p.removed = 0"
                    " AND NOT EXISTS (SELECT 1 FROM archive_entries a JOIN items i"
                    " ON i.key = a.key WHERE a.feed = p.feed AND a.page = p.page)",
                    (feed,),
                )
            ]
            for page in pages:
                self._db.execute(
                    "UPDATE archive_pages SET removed = 1 WHERE feed = ? AND page = ?",
                    (feed, page),
                )
                self._db.execute(
                    "DELETE FROM archive_entries WHERE feed = ? AND page = ?", (feed, page)
                )
        return pages


def _records(
    db: sqlite3.Connection, columns: str, rest: str, params: Sequence[object]
) -> list[dict[str, Any]]:
    """``SELECT columns rest`` as one dict a row, keyed by the column names (for explain's
    plain data). ``columns`` and ``rest`` are our own SQL, never input; values are bound."""
    names = [c.strip() for c in columns.split(",")]
    rows = db.execute(f"SELECT {columns} {rest}", params)
    return [dict(zip(names, row, strict=True)) for row in rows]


def read_status(path: Path, recent: int = 20) -> Status:
    """What the database at ``path`` says about sources, feeds and the last ``recent`` cycles,
    read on a connection of its own, read-only, so that a server can ask while a run writes
    (WAL lets readers and one writer go on together). Sources and feeds carry only their
    names; the pipeline adds what config.toml says of them. A database not made yet reads as
    empty."""
    if not path.exists():
        return Status((), ())
    errors = _Errors(path)
    with errors:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        with errors:
            problem = _not_ours(db, path)
        if problem:
            raise StoreError(problem)
        with errors:
            if not db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'source_status'"
            ).fetchone():
                return Status((), ())  # not yet migrated by a run of this version
            fetch: dict[str, tuple[int, datetime | None]] = {}
            moves: dict[str, tuple[str, str]] = {}  # permanent redirects learnt for a url
            for source, failures, retry_at, configured, url in db.execute(
                "SELECT source, failures, retry_at, configured, url FROM fetch_state"
            ):
                fetch[source] = (failures, _dt(retry_at) if retry_at else None)
                if url and configured and url != configured:
                    moves[source] = (configured, url)
            sources = []
            for row in db.execute(
                "SELECT source, last_run, last_success, last_error, last_error_at, next_run,"
                " new, updated, duplicates, unchanged, skipped, runs, errors, new_total,"
                " updated_total, duplicates_total FROM source_status ORDER BY source"
            ):
                last_run, success, _, error_at, next_run = (
                    _dt(v) if v else None for v in (row[1], row[2], None, row[4], row[5])
                )
                failures, retry_at = fetch.get(row[0], (0, None))
                moved_from, moved_to = moves.get(row[0]) or (None, None)
                status = SourceStatus(
                    row[0], "", "", last_run, success, row[3], error_at, next_run, failures,
                    retry_at, *row[6:],
                )  # fmt: skip
                sources.append(replace(status, moved_from=moved_from, moved_to=moved_to))
            feeds = tuple(
                FeedStatus(row[0], "", "", "", row[1], _dt(row[2]) if row[2] else None)
                for row in db.execute("SELECT name, entries, updated FROM feeds ORDER BY name")
            )
            cycles = tuple(
                Cycle(_dt(row[0]), row[1], row[2], row[3], row[4])
                for row in db.execute(
                    "SELECT started, seconds, sources, failed, error FROM cycles"
                    " ORDER BY id DESC LIMIT ?",
                    (recent,),
                )
            )
            totals = db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'cycle_totals'"
            ).fetchone()
            total, seconds = db.execute(
                "SELECT cycles, seconds FROM cycle_totals"
                if totals  # else a database not yet migrated by a run of this version
                else "SELECT count(*), total(seconds) FROM cycles"
            ).fetchone()
    finally:
        db.close()
    return Status(tuple(sources), feeds, cycles, total, seconds)
