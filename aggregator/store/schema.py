"""The state database's schema, as numbered migrations. The schema version is SQLite's
``user_version``: migration N brings a database from version N-1 to N. Append, never edit.
Statements are split on ";", so comments inside them must not hold one.

Times are stored as fixed-width RFC 3339 UTC text with microseconds
(``2022-10-21T19:39:42.000000Z``) so that text order is time order.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: files read, articles, every captured version, exact duplicates.
    """
    CREATE TABLE files (
        source    TEXT NOT NULL,
        path      TEXT NOT NULL,
        size      INTEGER NOT NULL,
        mtime_ns  INTEGER NOT NULL,
        digest    TEXT NOT NULL,
        status    TEXT NOT NULL CHECK (status IN ('ok', 'skipped')),
        reason    TEXT,
        read_at   TEXT NOT NULL,
        PRIMARY KEY (source, path)
    ) WITHOUT ROWID;

    CREATE TABLE items (
        key           TEXT PRIMARY KEY,
        atom_id       TEXT NOT NULL UNIQUE,
        source        TEXT NOT NULL,
        outlet        TEXT NOT NULL,
        title         TEXT NOT NULL,
        link          TEXT,
        author        TEXT NOT NULL,
        author_uri    TEXT,
        lang          TEXT NOT NULL,
        categories    TEXT NOT NULL,  -- JSON array
        image_url     TEXT,
        image_caption TEXT,
        summary       TEXT NOT NULL,
        content       TEXT NOT NULL,
        text_hash     TEXT NOT NULL,
        published     TEXT NOT NULL,
        updated       TEXT NOT NULL,
        first_seen    TEXT NOT NULL
    );
    CREATE INDEX items_by_source_date ON items (source, published DESC, key);
    CREATE INDEX items_by_text ON items (text_hash);

    CREATE TABLE versions (
        key        TEXT NOT NULL,
        at         TEXT NOT NULL,
        text_hash  TEXT NOT NULL,
        published  TEXT NOT NULL,
        origin     TEXT NOT NULL,
        PRIMARY KEY (key, at, text_hash)
    ) WITHOUT ROWID;

    CREATE TABLE duplicates (
        key       TEXT PRIMARY KEY,
        kept_key  TEXT NOT NULL,
        source    TEXT NOT NULL,
        link      TEXT,
        origin    TEXT NOT NULL,
        reason    TEXT NOT NULL,
        seen_at   TEXT NOT NULL
    );
    """,
    # 2: URL sources: validators, failures and backoff per source; the last body (bounded by
    # the source's max_bytes) for `aggregator run --offline`.
    """
    CREATE TABLE fetch_state (
        source         TEXT PRIMARY KEY,
        configured     TEXT,  -- the url in config.toml these rows were learnt for
        url            TEXT,  -- where to fetch it now (after permanent redirects)
        etag           TEXT,
        last_modified  TEXT,
        failures       INTEGER NOT NULL DEFAULT 0,
        retry_at       TEXT,
        last_attempt   TEXT,
        last_success   TEXT,
        last_error     TEXT,
        digest         TEXT
    );

    CREATE TABLE snapshots (
        source      TEXT PRIMARY KEY,
        url         TEXT NOT NULL,
        fetched_at  TEXT NOT NULL,
        headers     TEXT NOT NULL,  -- JSON array of [name, value]
        body        BLOB NOT NULL
    );
    """,
    # 3: what each output feed was last built from, so an untouched feed is not rebuilt.
    """
    CREATE TABLE feeds (
        name       TEXT PRIMARY KEY,
        signature  TEXT NOT NULL,  -- digest of the feed's settings (pipeline._signature)
        entries    INTEGER NOT NULL
    );
    """,
    # 4: what each source's last run did and running totals (the health page and /metrics), each
    # run's duration and outcome, when the daemon runs each source next, and when each output
    # feed's newest entry changed.
    """
    CREATE TABLE source_status (
        source            TEXT PRIMARY KEY,
        last_run          TEXT,     -- when it was last read or fetched
        last_success      TEXT,
        last_error        TEXT,     -- the reason, as the run summary showed it
        last_error_at     TEXT,
        next_run          TEXT,     -- the daemon's next run of it (NULL outside the daemon)
        new               INTEGER NOT NULL DEFAULT 0,  -- items in its last run
        updated           INTEGER NOT NULL DEFAULT 0,
        duplicates        INTEGER NOT NULL DEFAULT 0,
        unchanged         INTEGER NOT NULL DEFAULT 0,
        skipped           INTEGER NOT NULL DEFAULT 0,
        runs              INTEGER NOT NULL DEFAULT 0,  -- totals since the database was made
        errors            INTEGER NOT NULL DEFAULT 0,
        new_total         INTEGER NOT NULL DEFAULT 0,
        updated_total     INTEGER NOT NULL DEFAULT 0,
        duplicates_total  INTEGER NOT NULL DEFAULT 0
    );

    CREATE TABLE cycles (
        id        INTEGER PRIMARY KEY,
        started   TEXT NOT NULL,
        seconds   REAL NOT NULL,
        sources   INTEGER NOT NULL,  -- sources it ran
        failed    INTEGER NOT NULL,  -- of which failed
        error     TEXT               -- NULL when the cycle completed and published its feeds
    );

    ALTER TABLE feeds ADD COLUMN updated TEXT;
    """,
    # 5: RFC 5005 archive pages of output feeds: every page ever written (numbers are never
    # reused, so a page's URL always means the same document) and the entries on each.
    """
    CREATE TABLE archive_pages (
        feed     TEXT NOT NULL,
        page     INTEGER NOT NULL,
        entries  INTEGER NOT NULL,
        removed  INTEGER NOT NULL DEFAULT 0,  -- 1: retention emptied it and its file is gone
        PRIMARY KEY (feed, page)
    ) WITHOUT ROWID;

    CREATE TABLE archive_entries (
        feed  TEXT NOT NULL,
        key   TEXT NOT NULL,
        page  INTEGER NOT NULL,
        PRIMARY KEY (feed, key)
    ) WITHOUT ROWID;
    CREATE INDEX archive_entries_by_page ON archive_entries (feed, page);
    """,
    # 6: near duplicates (neardup.py): every article's sketch, stories of several articles,
    # why each member joined, and tombstones of entries removed or merged away.
    """
    CREATE TABLE signatures (
        key        TEXT PRIMARY KEY,
        sig        BLOB NOT NULL      -- neardup.NUM_PERM little-endian uint32
    ) WITHOUT ROWID;

    CREATE TABLE sketches (            -- small rows: every run that compares scans them
        key        TEXT PRIMARY KEY,
        bands      BLOB NOT NULL,     -- neardup.BANDS little-endian uint64
        shingles   INTEGER NOT NULL,
        title      TEXT NOT NULL,     -- folded title
        title_key  INTEGER NOT NULL,
        numbers    TEXT NOT NULL,
        day        INTEGER NOT NULL,  -- publication day, days since 1970
        pending    INTEGER NOT NULL   -- 1 until compared with the other articles
    ) WITHOUT ROWID;
    CREATE INDEX sketches_by_day ON sketches (day);
    CREATE INDEX sketches_pending ON sketches (pending) WHERE pending = 1;

    ALTER TABLE items ADD COLUMN story TEXT;  -- NULL for an entry, or the entry it was merged into
    CREATE INDEX items_by_story ON items (story) WHERE story IS NOT NULL;

    CREATE TABLE stories (
        key        TEXT PRIMARY KEY,  -- the representative: the entry's own article
        shown      TEXT NOT NULL,     -- the member whose title and text are published
        text_hash  TEXT NOT NULL,
        published  TEXT NOT NULL,
        updated    TEXT NOT NULL
    );

    CREATE TABLE merges (
        key              TEXT PRIMARY KEY,  -- the article merged away
        story            TEXT NOT NULL,
        rule             TEXT NOT NULL,
        matched          TEXT NOT NULL,     -- the article it was compared with
        similarity       REAL NOT NULL,
        containment      REAL NOT NULL,
        title_similarity REAL NOT NULL,
        days_apart       REAL NOT NULL,
        merged_at        TEXT NOT NULL
    );

    CREATE INDEX duplicates_by_kept ON duplicates (kept_key);

    CREATE TABLE tombstones (
        key      TEXT PRIMARY KEY,
        atom_id  TEXT NOT NULL,
        reason   TEXT NOT NULL,  -- "retention" or "merged"
        at       TEXT NOT NULL
    );
    """,
    # 7: each archive source's folder listing as it was when every file in it had been taken in:
    # its digest (a run that finds the same listing knows no file changed, without comparing
    # 100,000 file records one by one) and its lines ("path NUL size NUL mtime", UTF-8: a run
    # whose listing changed looks up only the files whose line is new). And each feed's
    # rendered-from digest (its settings and the entries it showed), so a feed whose sources
    # changed but whose entries did not is not rendered again.
    """
    CREATE TABLE listings (
        source  TEXT PRIMARY KEY,
        digest  TEXT NOT NULL,
        lines   BLOB
    ) WITHOUT ROWID;

    ALTER TABLE feeds ADD COLUMN content TEXT;
    """,
    # 8: a daemon records a cycle a minute, so only the newest cycles are kept as rows
    # (store.KEPT_CYCLES) and all of them as totals (the Prometheus summary's count and sum
    # must never go down). And what retention deleted before it also took the rows only a live
    # article needs (its versions, sketch, signature and merge records) goes now.
    """
    CREATE TABLE cycle_totals (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        cycles   INTEGER NOT NULL,
        seconds  REAL NOT NULL
    );
    INSERT INTO cycle_totals (id, cycles, seconds) SELECT 1, count(*), total(seconds) FROM cycles;

    CREATE TEMP TABLE gone AS SELECT key FROM tombstones
        WHERE reason = 'retention' AND key NOT IN (SELECT key FROM items);
    DELETE FROM versions WHERE key IN (SELECT key FROM gone);
    DELETE FROM sketches WHERE key IN (SELECT key FROM gone);
    DELETE FROM signatures WHERE key IN (SELECT key FROM gone);
    DELETE FROM merges WHERE key IN (SELECT key FROM gone) OR story IN (SELECT key FROM gone);
    DROP TABLE gone
    """,
    # 9: stories one of whose members changed since their entry was last presented (the
    # fullest text, the earliest date, ``updated``): kept in the same transaction as the
    # change, so a run stopped before its near-duplicate pass leaves them to the next, which
    # would otherwise go on showing the story's old choice of text and dates.
    """
    CREATE TABLE stale_stories (story TEXT PRIMARY KEY) WITHOUT ROWID;
    """,
    # 10: each version's text length (of its comparable text), so a teaser (a feed's one-line
    # description of an article held in full) is never published over the full text
    # (dedupe.resolve). Versions stored before have none and are taken as they were.
    """
    ALTER TABLE versions ADD COLUMN chars INTEGER;
    """,
    # 11: the cleaning each source's stored articles were made with (clean.signature): when a
    # new version cleans differently, the source's files are read again once and its articles
    # re-cleaned in place (pipeline._merge), so upgrading cleans what was already published.
    """
    CREATE TABLE cleaned_by (source TEXT PRIMARY KEY, signature TEXT NOT NULL) WITHOUT ROWID;
    """,
    # 12: the article each feed entry's own id (guid) was last stored under, per source, so a
    # post whose link changes (a headline edit re-slugs it) stays the same article
    # (pipeline._reslugged).
    """
    CREATE TABLE guids (
        source  TEXT NOT NULL,
        guid    TEXT NOT NULL,
        key     TEXT NOT NULL,
        PRIMARY KEY (source, guid)
    ) WITHOUT ROWID;
    """,
    # 13: the files each output feed was last written to (a JSON list of paths relative to the
    # output folder), so those of a feed taken out of config.toml, or of a format it no longer
    # has, are deleted instead of being served for ever (pipeline._retire_files). NULL: a
    # feed recorded before.
    """
    ALTER TABLE feeds ADD COLUMN files TEXT;
    """,
    # 14: versions before 13 kept the validators and digest of a body that was not a feed (a
    # login page) as a success, so such a source answered 304 or "same bytes" for ever: every
    # URL source is fetched in full once, which heals them.
    """
    UPDATE fetch_state SET etag = NULL, last_modified = NULL, digest = NULL;
    """,
    # 15: every source that gives each article (its own key, or an exact duplicate's): an
    # article is shown under one source (items.source), so when that source leaves
    # config.toml another that carries it takes it over (Store.rehome) instead of the article
    # leaving every feed. Filled from what the state knows: each article's source, each exact
    # duplicate's, and the feed entries' guids. (A source that gave an article under the same
    # key as the source showing it left no trace before; it is learnt when it reads it again.)
    """
    CREATE TABLE carries (
        key     TEXT NOT NULL,
        source  TEXT NOT NULL,
        PRIMARY KEY (key, source)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO carries (key, source) SELECT key, source FROM items;
    INSERT OR IGNORE INTO carries (key, source) SELECT key, source FROM duplicates;
    INSERT OR IGNORE INTO carries (key, source) SELECT key, source FROM guids;
    """,
    # 16: the source each article moved away from (Store.rehome) was shown under, so that
    # source put back in config.toml shows it again.
    """
    CREATE TABLE rehomed (key TEXT PRIMARY KEY, source TEXT NOT NULL) WITHOUT ROWID;
    """,
)
