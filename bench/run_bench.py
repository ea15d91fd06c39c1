"""Throughput, memory and incremental-run benchmark of the real CLI on generated corpora.

For each size N (default 1,000, 10,000 and 100,000 items) it

1. generates a corpus of N archive items with ``bench/corpus.py`` into a fresh folder under
   ``bench/out/`` (gitignored; ``--workdir`` to put it elsewhere) and writes a config.toml there
   with three sources (voa, dw, aljazeera adapters), its own state database and feed folder;
2. **cold run**: ``python -m aggregator run --config ... --json`` on the empty state: wall
   seconds, items/s (items generated / wall seconds) and peak resident memory;
3. **no-change run**: the same command again: wall seconds, and a check that no feed file was
   rewritten (feed mtime_ns before/after, and every feed's ``written`` flag in the JSON report)
   and that no file was read;
4. **+100 files**: ``corpus.py --start N --items 100`` adds 100 files (about 90 new articles and
   10 re-archives of older ones), then the command runs again: wall seconds and the counts;

then prints one table of the figures with the targets beside them (the targets are for 100,000
items), and removes the corpus unless ``--keep``. The near-duplicate pass (aggregator/neardup.py)
is shown on its own rows, from the run report: the batch in the main process (wall seconds), the
sketches computed in the workers (CPU seconds summed; divided by the workers for its share of
the run's time), and how far the batch raised the main process's peak memory. Its share of the
cold run's time has a target of at most 20%.

How memory is measured: each run is a child started with ``Popen`` and reaped with
``os.wait4``, whose rusage ``ru_maxrss`` is the exact peak RSS of the largest single process in
that run: the CLI process or any of its pool workers (Linux reports the max of the process and
its reaped children, not a sum). A sampler thread reads ``/proc`` every 50 ms to tell which of
them it was, and to estimate the peak of the whole process tree added together. Worker processes
are forked, so a sum counts the copy-on-write pages they share with the parent more than once:
it is an upper bound, the per-process peak is what the target is checked against.

Notes: wall seconds include interpreter start-up and imports (about half a second); the report's
own ``seconds`` (time inside ``run_once``) is shown beside them. The corpus has just been
written, so the cold run reads it from the page cache, as a daemon re-reading its folders would.

Run (from the repository root)::

    /work/venv/bin/python bench/run_bench.py                       # 1k, 10k, 100k
    /work/venv/bin/python bench/run_bench.py --sizes 1000,10000 --keep
    /work/venv/bin/python bench/run_bench.py --sizes 100000 --workers 1 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from installed import compile_package

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CORPUS = BENCH / "corpus.py"
ADDED = 100  # files added for the incremental run

# The targets, for 100,000 items.
TARGET_SIZE = 100_000
TARGET_ITEMS_PER_S = 4_000
TARGET_PEAK_MB = 400
TARGET_NO_CHANGE_S = 2.0
TARGET_ADD_S = 3.0
TARGET_NEARDUP_SHARE = 0.20  # of the cold run's time (issue 5)


# --------------------------------------------------------------------------- measuring a child


@dataclass
class Measured:
    """One command run as a child process."""

    argv: list[str]
    returncode: int
    seconds: float  # wall clock, start to reaped
    maxrss_mb: float  # exact: max over the child and its reaped descendants (wait4)
    parent_hwm_mb: float  # sampled VmHWM of the child itself
    worker_hwm_mb: float  # sampled max VmHWM over its descendants (pool workers)
    tree_peak_mb: float  # sampled max of the summed VmRSS of the whole tree
    descendants: int  # how many descendant processes the sampler saw
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")

    @property
    def peak_is(self) -> str:
        """Which process the exact peak belongs to."""
        if self.descendants == 0 or self.maxrss_mb > self.worker_hwm_mb + 1:
            return "parent"
        return "worker" if self.worker_hwm_mb > self.parent_hwm_mb else "parent"


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of ``pid`` in KiB; (0, 0) when it is gone."""
    hwm = rss = 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return hwm, rss


def _parents() -> dict[int, int]:
    """pid -> parent pid for every process visible in /proc."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses; fields after its last ')'.
        rest = stat[stat.rfind(b")") + 2 :].split()
        out[int(name)] = int(rest[1])
    return out


class _Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.stop = threading.Event()
        self.parent_hwm = self.worker_hwm = self.tree_peak = 0
        self.seen: set[int] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)

    def sample(self) -> None:
        parents = _parents()
        tree, frontier = [], [self.pid]
        while frontier:
            pid = frontier.pop()
            kids = [p for p, pp in parents.items() if pp == pid]
            tree += kids
            frontier += kids
        hwm, rss = _status_kb(self.pid)
        self.parent_hwm = max(self.parent_hwm, hwm)
        total = rss
        for pid in tree:
            hwm, rss = _status_kb(pid)
            self.worker_hwm = max(self.worker_hwm, hwm)
            total += rss
        self.seen.update(tree)
        self.tree_peak = max(self.tree_peak, total)


def measure(argv: list[str], cwd: Path = REPO) -> Measured:
    """Run ``argv``, reap it with wait4, and return its time, exit code, output and memory."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)
        sampler = _Sampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return Measured(
        argv=argv,
        returncode=proc.returncode,
        seconds=seconds,
        maxrss_mb=usage.ru_maxrss / 1024,  # Linux: KiB
        parent_hwm_mb=sampler.parent_hwm / 1024,
        worker_hwm_mb=sampler.worker_hwm / 1024,
        tree_peak_mb=sampler.tree_peak / 1024,
        descendants=len(sampler.seen),
        stdout=stdout,
        stderr=stderr,
    )


# --------------------------------------------------------------------------- corpus and config


def make_corpus(
    folder: Path, items: int, seed: int, start: int = 0
) -> tuple[dict[str, Any], float]:
    """Run corpus.py; its JSON summary and the seconds it took."""
    argv = [sys.executable, str(CORPUS), str(folder), "--items", str(items), "--seed", str(seed)]
    argv += ["--start", str(start), "--json"]
    started = time.perf_counter()
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(done.stdout), time.perf_counter() - started


def write_config(root: Path, workers: int) -> Path:
    """A config.toml in ``root`` reading ``root/corpus/<outlet>`` into ``root/feeds``."""
    sources = "".join(
        f'\n[[sources]]\nname = "{name}"\npath = "corpus/{name}"\nadapter = "{name}"\n'
        for name in ("voa", "dw", "aljazeera")
    )
    path = root / "config.toml"
    path.write_text(
        "# Written by bench/run_bench.py; paths are relative to this file.\n"
        'base_url = "http://localhost:8080/"\n'
        'output_dir = "feeds"\n'
        'state_db = "state/aggregator.sqlite3"\n'
        f"workers = {workers}\n" + sources,
        encoding="utf-8",
    )
    return path


def run_cli(config: Path) -> tuple[Measured, dict[str, Any] | None]:
    m = measure([sys.executable, "-m", "aggregator", "run", "--config", str(config), "--json"])
    try:
        report = json.loads(m.stdout)
    except json.JSONDecodeError:
        report = None
    return m, report


def feed_mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.atom"))}


# --------------------------------------------------------------------------- one size


def _totals(report: dict[str, Any]) -> dict[str, int]:
    keys = ("files_seen", "files_read", "new", "updated", "unchanged", "duplicates",
            "near_duplicates")  # fmt: skip
    totals = {k: sum(s[k] for s in report["sources"]) for k in keys}
    totals["skipped"] = sum(len(s["skipped"]) for s in report["sources"])
    totals["source_errors"] = sum(1 for s in report["sources"] if s["error"])
    totals["written"] = sum(1 for f in report["feeds"] if f["written"])
    return totals


def _expected(summary: dict[str, Any]) -> dict[str, int]:
    kinds = summary["kinds"]
    return {
        kind: sum(n for k, n in kinds.items() if k.endswith("." + kind))
        for kind in ("original", "identical", "edited")
    }


def _phase(name: str, m: Measured, report: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"phase": name, **asdict(m)}
    del out["stdout"], out["stderr"]
    out["peak_is"] = m.peak_is
    if report is None:
        out["failed"] = True
        tail = m.stderr.strip().splitlines()[-30:]
        print(f"  !! {name} run exited {m.returncode} without a JSON report:", file=sys.stderr)
        print("\n".join("     " + line for line in tail), file=sys.stderr)
        return out
    out["failed"] = m.returncode != 0
    out["report_seconds"] = report["seconds"]
    # The near-duplicate pass: the batch in the main process (wall) plus the sketches, which
    # the worker processes compute in parallel: their summed CPU divided by the workers.
    workers = min(os.cpu_count() or 1, 8)  # config workers = 0: one per CPU, at most 8
    out["neardup_seconds"] = report.get("neardup_seconds", 0.0)
    out["sketch_seconds"] = report.get("sketch_seconds", 0.0)
    out["neardup_peak_mb"] = report.get("neardup_peak_mb", 0.0)
    share = out["neardup_seconds"] + out["sketch_seconds"] / workers
    out["neardup_share"] = share / report["seconds"] if report["seconds"] else 0.0
    out["totals"] = _totals(report)
    out["errors"] = report["errors"]
    if m.returncode != 0:
        print(f"  !! {name} run exited {m.returncode}: {m.stderr.strip()[-2000:]}", file=sys.stderr)
    if "bug while reading" in m.stderr or "Traceback" in m.stderr:
        print(f"  !! {name} run logged a bug:\n{m.stderr[-4000:]}", file=sys.stderr)
    return out


def bench_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"bench-{n}-", dir=args.workdir))
    result: dict[str, Any] = {"items": n, "root": str(root)}
    try:
        print(f"[{n:,}] generating corpus in {root} ...", file=sys.stderr, flush=True)
        summary, gen_s = make_corpus(root / "corpus", n, args.seed)
        result.update(corpus_mb=summary["bytes"] / 1e6, corpus_s=gen_s, expected=_expected(summary))
        config = write_config(root, args.workers)

        print(f"[{n:,}] cold run ...", file=sys.stderr, flush=True)
        m, report = run_cli(config)
        cold = result["cold"] = _phase("cold", m, report)
        cold["items_per_s"] = n / m.seconds
        if report is None:
            return result

        print(f"[{n:,}] no-change run ...", file=sys.stderr, flush=True)
        before = feed_mtimes(root / "feeds")
        m, report = run_cli(config)
        warm = result["warm"] = _phase("no-change", m, report)
        after = feed_mtimes(root / "feeds")
        warm["feeds_touched"] = sorted(k for k in after if before.get(k) != after[k])
        warm["feeds_flagged"] = (
            [f["name"] for f in report["feeds"] if f["written"]] if report else []
        )

        print(f"[{n:,}] adding {ADDED} files and running ...", file=sys.stderr, flush=True)
        added, _ = make_corpus(root / "corpus", ADDED, args.seed, start=n)
        m, report = run_cli(config)
        add = result["add"] = _phase("+100", m, report)
        add["expected"] = _expected(added)
        return result
    finally:
        if args.keep:
            print(f"[{n:,}] kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- the table


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(results: list[dict[str, Any]]) -> str:
    """Rows of figures, one column per size, the target and its verdict at 100k last."""
    sizes = [r["items"] for r in results]
    rows: list[tuple[str, list[str], str, str]] = []

    def get(r: dict[str, Any], *path: str) -> Any:
        for p in path:
            if not isinstance(r, dict) or p not in r:
                return None
            r = r[p]
        return r

    def row(label: str, fmt: str, *path: str, target: str = "", check: Any = None) -> None:
        cells = []
        for r in results:
            v = get(r, *path)
            cells.append("-" if v is None else (fmt.format(v) if fmt else str(v)))
        verdict = ""
        big = next((r for r in results if r["items"] == TARGET_SIZE), None)
        if check is not None and big is not None:
            v = get(big, *path)
            verdict = "n/a" if v is None else _verdict(check(v, big))
        rows.append((label, cells, target, verdict))

    row("corpus size (MB)", "{:,.0f}", "corpus_mb")
    row("corpus generation (s)", "{:.1f}", "corpus_s")
    row("cold: wall (s)", "{:.2f}", "cold", "seconds")
    row("cold: inside run_once (s)", "{:.2f}", "cold", "report_seconds")
    row("cold: items/s (wall)", "{:,.0f}", "cold", "items_per_s", target=f">= {TARGET_ITEMS_PER_S:,}",
        check=lambda v, r: v >= TARGET_ITEMS_PER_S)  # fmt: skip
    row("cold: peak RSS, max(parent, workers) (MB)", "{:,.0f}", "cold", "maxrss_mb",
        target=f"<= {TARGET_PEAK_MB}", check=lambda v, r: v <= TARGET_PEAK_MB)  # fmt: skip
    row("cold: ... which process", "", "cold", "peak_is")
    row("cold: near-dup pass, main process (s)", "{:.2f}", "cold", "neardup_seconds")
    row("cold: near-dup sketches, CPU summed (s)", "{:.2f}", "cold", "sketch_seconds")
    row("cold: near-dup share of run time", "{:.1%}", "cold", "neardup_share",
        target=f"<= {TARGET_NEARDUP_SHARE:.0%}", check=lambda v, r: v <= TARGET_NEARDUP_SHARE)  # fmt: skip
    row("cold: near-dup pass raised peak RSS by (MB)", "{:,.0f}", "cold", "neardup_peak_mb")
    row("cold: parent peak, sampled (MB)", "{:,.0f}", "cold", "parent_hwm_mb")
    row("cold: worker peak, sampled (MB)", "{:,.0f}", "cold", "worker_hwm_mb")
    row("cold: whole tree summed, sampled (MB)", "{:,.0f}", "cold", "tree_peak_mb")
    row("cold: worker processes seen", "{}", "cold", "descendants")
    row("cold: files read", "{:,}", "cold", "totals", "files_read")
    row("cold: new / expected originals", "", "cold", "new_vs")
    row("cold: updated / unchanged / dup / near-dup", "", "cold", "others")
    row("cold: re-archives: edited / identical", "", "cold", "rearchives")
    row("cold: skipped files", "{:,}", "cold", "totals", "skipped")
    row("no-change: wall (s)", "{:.2f}", "warm", "seconds", target=f"<= {TARGET_NO_CHANGE_S:g}",
        check=lambda v, r: v <= TARGET_NO_CHANGE_S)  # fmt: skip
    row("no-change: inside run_once (s)", "{:.2f}", "warm", "report_seconds")
    row("no-change: files read", "{:,}", "warm", "totals", "files_read")
    row("no-change: feeds flagged written", "{}", "warm", "totals", "written", target="0",
        check=lambda v, r: v == 0)  # fmt: skip
    row("no-change: feed mtimes changed", "{}", "warm", "touched", target="0",
        check=lambda v, r: v == 0)  # fmt: skip
    row("no-change: peak RSS (MB)", "{:,.0f}", "warm", "maxrss_mb")
    row(f"+{ADDED} files: wall (s)", "{:.2f}", "add", "seconds", target=f"<= {TARGET_ADD_S:g}",
        check=lambda v, r: v <= TARGET_ADD_S)  # fmt: skip
    row(f"+{ADDED} files: inside run_once (s)", "{:.2f}", "add", "report_seconds")
    row(f"+{ADDED} files: files read", "{:,}", "add", "totals", "files_read", target=f"{ADDED}",
        check=lambda v, r: v == ADDED)  # fmt: skip
    row(f"+{ADDED} files: new / expected originals", "", "add", "new_vs")
    row(f"+{ADDED} files: updated / unchanged / dup / near-dup", "", "add", "others")
    row(f"+{ADDED} files: re-archives: edited / identical", "", "add", "rearchives")
    row(f"+{ADDED} files: near-dup pass (s)", "{:.2f}", "add", "neardup_seconds")
    row(f"+{ADDED} files: near-dup share of run time", "{:.1%}", "add", "neardup_share")
    row(f"+{ADDED} files: feeds written", "{}", "add", "totals", "written")

    header = ("figure", [f"{n:,} items" for n in sizes], "target @100k", "verdict")
    width0 = max(len(header[0]), *(len(r[0]) for r in rows))
    widths = [max(len(header[1][i]), *(len(r[1][i]) for r in rows)) for i in range(len(sizes))]
    width_t = max(len(header[2]), *(len(r[2]) for r in rows))

    def line(label: str, cells: list[str], target: str, verdict: str) -> str:
        body = "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        return f"{label.ljust(width0)}  {body}  {target.rjust(width_t)}  {verdict}".rstrip()

    sep = "-" * len(line(*header))
    return "\n".join([line(*header), sep, *(line(*r) for r in rows), sep])


def _derive(results: list[dict[str, Any]]) -> None:
    """Small display-only fields: counts paired with what the corpus said to expect."""
    for r in results:
        for phase, expected in (
            ("cold", r.get("expected")),
            ("add", r.get("add", {}).get("expected")),
        ):
            p = r.get(phase)
            if not p or "totals" not in p or not expected:
                continue
            t = p["totals"]
            p["new_vs"] = f"{t['new']:,} / {expected['original']:,}"
            p["others"] = (
                f"{t['updated']:,} / {t['unchanged']:,} / {t['duplicates']:,}"
                f" / {t.get('near_duplicates', 0):,}"
            )
            p["rearchives"] = f"{expected['edited']:,} / {expected['identical']:,}"
        warm = r.get("warm")
        if warm and "feeds_touched" in warm:
            warm["touched"] = len(warm["feeds_touched"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="comma-separated item counts")
    p.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    p.add_argument("--workers", type=int, default=0, help="config workers (default 0: per CPU)")
    p.add_argument("--workdir", type=Path, default=BENCH / "out", help="where corpora go")
    p.add_argument("--keep", action="store_true", help="keep each corpus, state and feeds")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    compile_package()  # as installed (bench/installed.py)

    version = subprocess.run(
        [sys.executable, "-c", "import aggregator; print(aggregator.__version__)"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    print(
        f"aggregator {version or '?'} | Python {platform.python_version()} ({sys.executable}) | "
        f"os.cpu_count() = {os.cpu_count()} | {platform.platform()} | config workers = "
        f"{args.workers or 'per CPU'}",
        flush=True,
    )
    results = [bench_size(n, args) for n in sizes]
    _derive(results)
    print(flush=True)
    print(table(results))
    print(
        "peak RSS: exact per-process maximum over the CLI process and its pool workers (wait4);"
        " 'which' and the per-process and summed figures come from /proc samples every 50 ms.\n"
        "wall seconds include interpreter start-up; the targets are for 100,000 items."
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    failed = any(r.get(ph, {}).get("failed") for r in results for ph in ("cold", "warm", "add"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
