"""What the libraries alone cost an item, against the CPU an item may have at the cold target.

The cold-run target (bench/run_bench.py) is 4,000 items/s on this machine's cores. With every
core busy all the time, that leaves each item ``cores / 4,000`` seconds of CPU (500 us on two
cores) for everything a run does to it. This script generates a corpus with ``bench/corpus.py``
and times, in one process and on every item, only the library calls that no implementation of
the issue can do without:

* reading the file (``open`` + ``read``);
* parsing the body with lxml's HTML parser, writing it back as HTML, and as plain text (what
  the issue's "lxml alone" figure does, plus the text a summary and a fingerprint need);
* nh3's allow-list clean of that HTML (the sanitising the issue asks for);
* one blake2b digest of the text (identity of the text, for exact duplicates);
* one INSERT of the item (key, HTML, text) into an SQLite file, committed every 2,000;
* one pickle round trip of the result (what a worker process must send back to the one
  process that writes the database).

None of the adapter, the cleaning rules, dates, keys, near-duplicate sketches, Simplified and
Traditional folding, or feed writing is in it: their cost comes on top. Each stage is timed
three times (CPU time, the fastest kept). Then the same files go through the real
``pipeline.prepare`` (what a worker does per file) for comparison.

Run (from the repository root)::

    python bench/floor.py [--items 3000] [--cores 2] [--target 4000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from run_bench import REPO, TARGET_ITEMS_PER_S, make_corpus

sys.path.insert(0, str(REPO))

from lxml import etree

from aggregator import pipeline
from aggregator.clean import _PARSER as parser  # the parser cleaning uses
from aggregator.clean.sanitize import sanitize  # nh3 with the project's allow-list
from aggregator.model import FileStat, Source

OUTLETS = ("voa", "dw", "aljazeera")


def _body(data: bytes) -> str:
    """The HTML body after the archive header or the front-matter (plain string cuts)."""
    text = data.decode("utf-8")
    if text.startswith("---"):
        return text.split("\n---", 2)[-1]
    return text.split("------", 1)[-1]


def _best(run: Callable[[], object], repeat: int = 3) -> float:
    """The fewest CPU seconds ``run`` took over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best


def measure(paths: list[Path], db_path: Path) -> list[tuple[str, float]]:
    """(stage, CPU seconds for all of ``paths``) for each library stage."""
    datas = [p.read_bytes() for p in paths]
    bodies = [_body(d) for d in datas]
    roots = [etree.fromstring(f"<html><body>{b}</body></html>", parser) for b in bodies]
    htmls = [etree.tostring(r, encoding="unicode", method="html") for r in roots]
    texts = [etree.tostring(r, encoding="unicode", method="text") for r in roots]

    def read() -> None:
        for p in paths:
            with open(p, "rb") as fh:
                fh.read()

    def insert() -> None:
        db_path.unlink(missing_ok=True)
        db = sqlite3.connect(db_path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE items (key TEXT PRIMARY KEY, html TEXT, text TEXT)")
        for i, (h, t) in enumerate(zip(htmls, texts, strict=True)):
            db.execute("INSERT INTO items VALUES (?, ?, ?)", (f"voa:{i}", h, t))
            if i % 2000 == 1999:
                db.commit()
        db.commit()
        db.close()

    stages: list[tuple[str, Callable[[], object]]] = [
        ("read the file", read),
        ("lxml: parse the body", lambda: [
            etree.fromstring(f"<html><body>{b}</body></html>", parser) for b in bodies
        ]),
        ("lxml: write it as HTML", lambda: [
            etree.tostring(r, encoding="unicode", method="html") for r in roots
        ]),
        ("lxml: its plain text", lambda: [
            etree.tostring(r, encoding="unicode", method="text") for r in roots
        ]),
        ("nh3: allow-list clean", lambda: [sanitize(h) for h in htmls]),
        ("blake2b of the text", lambda: [
            hashlib.blake2b(t.encode(), digest_size=16).hexdigest() for t in texts
        ]),
        ("sqlite: one INSERT", insert),
        ("pickle round trip", lambda: [
            pickle.loads(pickle.dumps((h, t, p.name))) for h, t, p in zip(htmls, texts, paths, strict=True)
        ]),
    ]  # fmt: skip
    return [(name, _best(run)) for name, run in stages]


def ours(paths: list[Path], corpus: Path) -> float:
    """CPU seconds the real ``pipeline.prepare`` took for ``paths`` (one run, after a warm-up)."""
    sources = {name: Source(name, name, corpus / name, adapter=name) for name in OUTLETS}
    todo = []
    for p in paths:
        st = p.stat()
        todo.append((FileStat(str(p), st.st_size, st.st_mtime_ns), sources[p.parent.name]))
    for stat, source in todo[:50]:  # imports and caches (numpy, OpenCC's table) first
        pipeline.prepare(stat, source, None)
    started = time.process_time()
    for stat, source in todo:
        pipeline.prepare(stat, source, None)
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=3000, help="corpus size (default 3000)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="cores to budget for")
    p.add_argument("--target", type=int, default=TARGET_ITEMS_PER_S, help="items/s to budget for")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        corpus = Path(tmp) / "corpus"
        make_corpus(corpus, args.items, seed=1)
        paths = sorted(p for name in OUTLETS for p in (corpus / name).iterdir())
        n = len(paths)
        stages = measure(paths, Path(tmp) / "floor.sqlite3")
        prepared = ours(paths, corpus)
    budget = args.cores / args.target * 1e6
    us = [(name, seconds / n * 1e6) for name, seconds in stages]
    floor = sum(u for _, u in us)
    print(f"{n} items; CPU per item, fastest of 3 runs\n")
    for name, u in us:
        print(f"  {name:32s} {u:7.1f} us")
    print(f"  {'libraries alone, in all':32s} {floor:7.1f} us")
    print(f"\n  budget at {args.target:,} items/s on {args.cores} cores: {budget:7.1f} us an item")
    print(f"  left for everything else:           {budget - floor:7.1f} us")
    print(f"  pipeline.prepare (a worker's share): {prepared / n * 1e6:7.1f} us")
    print(
        "\n  (prepare does the adapter, the cleaning rules, nh3, dates, keys, the text's"
        "\n  fingerprint and near-duplicate sketch; the process that stores the results adds"
        "\n  its own share: bench/profile_run.py)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
