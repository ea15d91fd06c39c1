"""Where a cold run spends its time: cProfile of the real CLI on a generated corpus.

It generates N items (default 10,000) with ``bench/corpus.py`` under ``bench/out/``, writes a
config.toml with ``workers = 1`` (so every file is parsed and cleaned in the profiled process;
with worker processes cProfile would only see the parent waiting), runs

    python -m cProfile -o PROFILE -m aggregator run --config CONFIG --json

as a child process, and prints two tables from the profile:

* the aggregator's own functions by cumulative time (seconds and % of the whole run), which says
  which stage costs what;
* every function (libraries included: lxml, nh3, OpenCC, sqlite3, yaml ...) by its own time,
  which says where the CPU actually goes.

cProfile adds overhead to every Python call, so its total is longer than an unprofiled run and
shares are what to read, not seconds.

Run (from the repository root)::

    /work/venv/bin/python bench/profile_run.py [--items 10000] [--top 15] [--keep]

The .prof file is kept next to the corpus with ``--keep`` (open it with ``python -m pstats`` or
snakeviz).
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_bench import BENCH, REPO, make_corpus, write_config

AGGREGATOR = str(REPO / "aggregator")


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename.startswith(AGGREGATOR):
        return f"aggregator/{Path(filename).relative_to(AGGREGATOR)}:{line}({name})"
    if filename == "~":
        return name  # a C function, e.g. <method 'sub' of 're.Pattern' objects>
    parts = Path(filename).parts
    if "site-packages" in parts:  # lxml/html/__init__.py, not just html/__init__.py
        parts = parts[parts.index("site-packages") + 1 :]
    else:
        parts = ("stdlib", *parts[-2:])
    return f"{'/'.join(parts)}:{line}({name})"


def report(prof: Path, top: int) -> str:
    stats = pstats.Stats(str(prof), stream=io.StringIO())
    raw = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]
    lines = [f"profiled run: {total:.2f} s in total (cProfile overhead included)", ""]

    own = [
        (ct, tt, nc, func)
        for func, (_, nc, tt, ct, _) in raw.items()
        if func[0].startswith(AGGREGATOR)
    ]
    own.sort(reverse=True)
    lines.append(f"aggregator functions by cumulative time (top {top}):")
    lines.append(f"{'cum s':>8} {'% run':>6} {'own s':>8} {'calls':>9}  function")
    for ct, tt, nc, func in own[:top]:
        lines.append(f"{ct:8.2f} {100 * ct / total:5.1f}% {tt:8.2f} {nc:9,}  {_where(func)}")

    every = sorted(((tt, ct, nc, func) for func, (_, nc, tt, ct, _) in raw.items()), reverse=True)
    lines += ["", f"all functions by own time (top {top}):"]
    lines.append(f"{'own s':>8} {'% run':>6} {'cum s':>8} {'calls':>9}  function")
    for tt, ct, nc, func in every[:top]:
        lines.append(f"{tt:8.2f} {100 * tt / total:5.1f}% {ct:8.2f} {nc:9,}  {_where(func)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=10_000, help="corpus size (default 10,000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    p.add_argument("--workdir", type=Path, default=BENCH / "out")
    p.add_argument("--keep", action="store_true", help="keep the corpus, state and profile")
    args = p.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"profile-{args.items}-", dir=args.workdir))
    try:
        make_corpus(root / "corpus", args.items, args.seed)
        config = write_config(root, workers=1)
        prof = root / "cold.prof"
        argv_ = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "aggregator", "run"]
        argv_ += ["--config", str(config), "--json"]
        started = time.perf_counter()
        done = subprocess.run(argv_, cwd=REPO, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            print(f"the profiled run exited {done.returncode}:\n{done.stderr}", file=sys.stderr)
        if not prof.exists():
            return 1
        seconds = json.loads(done.stdout)["seconds"] if done.stdout.strip() else float("nan")
        print(
            f"cold run of {args.items:,} items, workers = 1, under cProfile: {wall:.1f} s wall, "
            f"{seconds:.1f} s inside run_once"
        )
        print(report(prof, args.top))
        return 0
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
