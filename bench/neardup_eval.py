"""Precision and recall of near-duplicate detection on the labelled set in tests/data/neardup/.

Builds the evaluation workspace (tests/neardupset.py: the five seeds, ten realistic variants of
each, and look-alikes that must stay apart), runs the real pipeline over it in one run, and
again in two runs (every file of the first half of a shuffled order, then the rest) and in the
reverse split, and prints pairwise precision and recall for each: a pair of files is "one
story" when the pipeline put both articles behind the same entry. Targets: precision >= 0.99,
recall >= 0.95. With ``--pairs`` it also prints the similarity figures of every labelled pair
(for tuning the thresholds in aggregator/neardup.py).

Run (from the repository root)::

    .venv/bin/python bench/neardup_eval.py [--pairs] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import neardupset  # noqa: E402

from aggregator import config as config_mod  # noqa: E402
from aggregator import pipeline  # noqa: E402
from aggregator.store import Store  # noqa: E402

TARGET_PRECISION = 0.99
TARGET_RECALL = 0.95
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def evaluate(root: Path, order: list[list[str]] | None = None) -> dict[str, object]:
    """Build the set under ``root`` and run the pipeline once, or once per group of files in
    ``order`` (the others hidden meanwhile); the pairwise scores."""
    labels = neardupset.build(root)
    files = sorted(labels)
    cfg = config_mod.load(root / "config.toml")
    groups = order or [files]
    held = root / "held"  # outside every source folder while waiting for its run
    hidden = {f: held / Path(f).relative_to(root) for f in files}
    for f in files:
        hidden[f].parent.mkdir(parents=True, exist_ok=True)
        Path(f).rename(hidden[f])
    with Store(cfg.state_db) as store:
        for group in groups:
            for f in group:
                hidden[f].rename(f)
            pipeline.run_once(cfg, store, NOW)
    return neardupset.pair_scores(labels, neardupset.predicted(cfg.state_db, files))


def runs(root: Path) -> dict[str, dict[str, object]]:
    """One run; two runs in a shuffled split; two runs in the reverse split."""
    out = {"one run": evaluate(root / "one")}
    labels = neardupset.build(root / "probe")
    names = sorted(Path(f).relative_to(root / "probe") for f in labels)
    random.Random(5).shuffle(names)
    half = len(names) // 2
    for name, first, second in (
        ("two runs", names[:half], names[half:]),
        ("two runs, reversed", names[half:], names[:half]),
    ):
        base = root / name.replace(" ", "-").replace(",", "")
        order = [[str(base / n) for n in first], [str(base / n) for n in second]]
        out[name] = evaluate(base, order)
    return out


def pairs_table(root: Path) -> None:
    """Every labelled pair's figures, for tuning (what neardup.decide reads)."""
    from aggregator import adapters, neardup
    from aggregator.model import FileStat

    labels = neardupset.build(root / "pairs")
    cfg = config_mod.load(root / "pairs" / "config.toml")
    rows = []
    for f, label in sorted(labels.items()):
        source = next(s for s in cfg.sources if Path(f).is_relative_to(s.path))
        p = Path(f)
        st = p.stat()
        prepared = pipeline.prepare(FileStat(f, st.st_size, st.st_mtime_ns), source, None)
        for r in prepared.items:
            if r.sketch is not None:
                rows.append((label, p.name, neardup.Row(r.item.key, r.item.key, r.sketch,
                             r.item.published, r.item.outlet, True, source.name)))  # fmt: skip
    del adapters
    for (la, na, a), (lb, nb, b) in ((x, y) for i, x in enumerate(rows) for y in rows[i + 1 :]):
        j = neardup.similarity(a.sketch.sig, b.sketch.sig)
        c = neardup.containment(j, a.sketch.shingles, b.sketch.shingles)
        t = neardup.title_similarity(a.sketch.title, b.sketch.title)
        ev = neardup.decide(a, b, j)
        if la == lb or j >= 0.3 or (c >= 0.5 and t >= 0.3):
            print(f"{'SAME' if la == lb else 'apart'} {'merge:' + ev.rule if ev else '-':22}"
                  f" J={j:.2f} C={c:.2f} T={t:.2f} {a.sketch.shingles:5} {b.sketch.shingles:5}"
                  f"  {na} ~ {nb}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", action="store_true", help="print every labelled pair's figures")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the scores as JSON")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="neardup-eval-"))
    try:
        if args.pairs:
            pairs_table(root)
        results = runs(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ok = True
    for name, r in results.items():
        good = r["precision"] >= TARGET_PRECISION and r["recall"] >= TARGET_RECALL  # type: ignore[operator]
        ok &= good
        print(
            f"{name:20} files {r['files']}, stories {r['stories']}, pairs one-story"
            f" {r['pairs_same']}, apart {r['pairs_apart']}: precision {r['precision']:.4f}"
            f" (>= {TARGET_PRECISION}), recall {r['recall']:.4f} (>= {TARGET_RECALL})"
            f"  {'PASS' if good else 'FAIL'}"
        )
        for kind, a, b in r["wrong"]:  # type: ignore[attr-defined]
            print(f"    {kind}: {Path(a).name} ~ {Path(b).name}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
