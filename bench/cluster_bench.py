"""One story captured many times: the cost of a crowded near-duplicate cluster.

A mirror or a scraper can archive the same article thousands of times, each capture under its
own URL and with a small edit (here: one sentence of seed VOA 002 changed per capture). Every
capture shares the original's LSH band buckets, so a candidate search that paired every
member of a bucket with every other cost pairs by the square (before the NEIGHBOURS and
EARLIEST limits in aggregator/neardup.py: 2,000 captures took 70 s and 2.3 GB).

For each N (default 1,000, 2,000 and 10,000) it writes the N captures into a fresh folder under
``bench/out/`` with a config.toml, runs ``python -m aggregator run --json`` once on an empty
state (a child process, reaped with wait4 as bench/run_bench.py does), and prints: wall
seconds, the near-duplicate pass's seconds, peak RSS, and how many entries the source's feed
got (1: every capture merged into the story) and how many captures were merged.

Run (from the repository root)::

    /work/venv/bin/python bench/cluster_bench.py [--sizes 1000,2000,10000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from installed import compile_package
from run_bench import BENCH, REPO, measure

SEED = REPO / "seeds" / "voa" / "002_d518659d5939b7c1.txt"
URL = "https://www.voachinese.com/a/biden-urges-putin-to-de-escalate-ukraine-tensions-20211230/6376677.html"


def write_captures(root: Path, n: int) -> Path:
    """``n`` captures of the seed in ``root/voa``, and a config.toml reading them."""
    text = SEED.read_text(encoding="utf-8")
    if URL not in text:
        raise SystemExit(f"{SEED}: the seed no longer holds {URL}; update this script")
    folder = root / "voa"
    folder.mkdir(parents=True)
    for k in range(n):
        capture = text.replace(URL, f"https://mirror.example.org/a/{k}.html").replace(
            "</p>", f"（第{k}次抓取，编号{k * 7919 % 100003}）</p>", 1
        )
        (folder / f"{k:06d}.txt").write_text(capture, encoding="utf-8")
    config = root / "config.toml"
    config.write_text(
        "# Written by bench/cluster_bench.py.\n"
        'base_url = "http://localhost:8080/"\noutput_dir = "feeds"\n'
        'state_db = "state/aggregator.sqlite3"\n'
        '[[sources]]\nname = "voa"\npath = "voa"\nadapter = "voa"\n',
        encoding="utf-8",
    )
    return config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,2000,10000", help="captures per run, comma-separated")
    ap.add_argument("--keep", action="store_true", help="keep the folders under bench/out/")
    args = ap.parse_args(argv)
    compile_package()
    (BENCH / "out").mkdir(exist_ok=True)
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        root = Path(tempfile.mkdtemp(prefix=f"cluster-{n}-", dir=BENCH / "out"))
        try:
            config = write_captures(root, n)
            print(f"[{n:,}] running ...", file=sys.stderr)
            m = measure(
                [sys.executable, "-m", "aggregator", "run", "--config", str(config), "--json"]
            )
            if m.returncode != 0:
                print(m.stderr, file=sys.stderr)
                return 1
            report = json.loads(m.stdout)
            source = report["sources"][0]
            feed = next(f for f in report["feeds"] if f["name"] == "voa")
            rows.append((n, m.seconds, report["neardup_seconds"], m.maxrss_mb, feed["entries"],
                         source["near_duplicates"]))  # fmt: skip
        finally:
            if not args.keep:
                shutil.rmtree(root)
    print(f"{'captures':>9} {'wall s':>8} {'near-dup s':>11} {'peak RSS MB':>12} "
          f"{'entries':>8} {'merged':>7}")  # fmt: skip
    for n, wall, neardup_s, rss, entries, merged in rows:
        print(f"{n:>9,} {wall:>8.2f} {neardup_s:>11.2f} {rss:>12.0f} {entries:>8} {merged:>7,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
