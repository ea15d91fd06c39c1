"""The worker-process path: a corpus large enough to use the pool gives byte-identical feeds
and the same counts as reading it in one process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from conftest import ROOT, Workspace

from aggregator import config as config_mod
from aggregator import pipeline
from aggregator import store as store_module
from aggregator.store import Store

ITEMS = 700  # VOA gets ~45%: above pipeline.PARALLEL_THRESHOLD (256) for its folder


def _workspace(root: Path, corpus: Path, workers: int) -> Workspace:
    root.mkdir()
    (root / "config.toml").write_text(
        f'base_url = "http://localhost/"\nworkers = {workers}\noutput_dir = "out"\n'
        'state_db = "state/test.sqlite3"\n'
        + "".join(
            f'[[sources]]\nname = "{n}"\npath = "{corpus / n}"\nadapter = "{n}"\n'
            for n in ("voa", "dw", "aljazeera")
        ),
        encoding="utf-8",
    )
    return Workspace(root)


def test_workers_give_the_same_feeds_as_one_process(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "corpus.py"), str(corpus), "--items", str(ITEMS),
         "--jobs", "1"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert len(list((corpus / "voa").iterdir())) >= 256
    one = _workspace(tmp_path / "one", corpus, workers=1)
    two = _workspace(tmp_path / "two", corpus, workers=2)
    r1, r2 = one.run_json(), two.run_json()
    counts = [
        {k: s[k] for k in ("new", "updated", "unchanged", "duplicates")} for s in r1["sources"]
    ]
    assert counts == [
        {k: s[k] for k in ("new", "updated", "unchanged", "duplicates")} for s in r2["sources"]
    ]
    assert sum(c["new"] for c in counts) > ITEMS * 0.8
    assert one.feed_bytes() == two.feed_bytes()
    assert len(one.feed_bytes()) == 4


def test_few_and_many_articles_store_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run expecting many articles answers "is it stored?" from in-memory sets of every key,
    one expecting few by indexed queries (store.BULK_ITEMS decides). Over a corpus with
    re-archives, edits and identical copies, taken in cold and then with more files on top,
    both ways store the same rows and write the same feeds."""
    corpus = tmp_path / "corpus"

    def grow(start: int, items: int) -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "corpus.py"), str(corpus), "--items",
             str(items), "--start", str(start), "--jobs", "1"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    grow(0, 300)
    for n, original in enumerate(sorted((corpus / "voa").iterdir())[:5]):
        # The same text under another article id: an exact duplicate.
        text = original.read_text(encoding="utf-8")
        link = text.split("](", 1)[1].split(")", 1)[0]
        copy = link.rsplit("/", 1)[0] + f"/{9_000_000 + n}.html"
        (corpus / "voa" / f"copy{n}.txt").write_text(text.replace(link, copy), encoding="utf-8")
    ws = {mode: _workspace(tmp_path / mode, corpus, workers=1) for mode in ("sets", "queries")}
    now = datetime(2025, 1, 1, tzinfo=UTC)

    def run(mode: str) -> None:
        monkeypatch.setattr(store_module, "BULK_ITEMS", 0 if mode == "sets" else 10**9)
        cfg = config_mod.load(ws[mode].config)
        with Store(cfg.state_db) as store:
            pipeline.run_once(cfg, store, now)
            store.commit()

    def rows(mode: str) -> list[list[tuple[object, ...]]]:
        with sqlite3.connect(ws[mode].root / "state" / "test.sqlite3") as db:
            return [
                db.execute(sql).fetchall()
                for sql in (
                    "SELECT key, atom_id, title, text_hash, published, updated FROM items"
                    " ORDER BY key",
                    "SELECT key, at, text_hash FROM versions ORDER BY key, at, text_hash",
                    "SELECT key, kept_key FROM duplicates ORDER BY key",
                )
            ]

    for mode in ws:
        run(mode)
    assert rows("sets") == rows("queries")
    assert len(rows("sets")[2]) >= 3  # copies recorded as duplicates (not of a superseded text)
    assert ws["sets"].feed_bytes() == ws["queries"].feed_bytes()
    grow(300, 60)  # new articles and re-archives of stored ones
    for mode in ws:
        run(mode)
    assert rows("sets") == rows("queries")
    assert len(rows("sets")[1]) > len(rows("sets")[0])  # some articles have several versions
    assert ws["sets"].feed_bytes() == ws["queries"].feed_bytes()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4,000-item corpus: long enough a run to be stopped while its workers read."""
    corpus = tmp_path_factory.mktemp("big") / "corpus"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "corpus.py"), str(corpus), "--items", "4000",
         "--jobs", "1"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return corpus


def _reading(ws: Workspace) -> tuple[subprocess.Popen[str], list[int]]:
    """``run --json`` started on ``ws``, once both its worker processes are there."""
    # As a terminal starts it: Ctrl-C not ignored. (A test run started in the background
    # of a shell without job control inherits SIGINT ignored, and a run started ignoring a
    # stop signal keeps ignoring it, as nohup means: it would run to its end.)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "run", "--json"], cwd=ws.root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        workers = _children(proc.pid)
        time.sleep(0.005)
    if len(workers) != 2:
        proc.kill()
        proc.communicate()
        pytest.fail("the run ended before its workers could be seen")
    return proc, workers


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have used so far (from /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def _interrupted(proc: subprocess.Popen[str], times: int) -> tuple[str, str]:
    """Ctrl-C ``times`` times once the run has been taking in files for a while: its main
    process has spent a fifth of a second of CPU since its workers appeared, storing what
    they cleaned (not after a fixed time: on a loaded machine, or while the workers still
    start, nothing may have been taken in yet); the run's (stdout, stderr) once it has exited
    130 without a traceback."""
    start = _cpu_seconds([proc.pid])
    deadline = time.monotonic() + 60
    while (
        _cpu_seconds([proc.pid]) - start < 0.2
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    for _ in range(times):
        os.kill(proc.pid, signal.SIGINT)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    return out, err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_ctrl_c_stops_a_run_after_the_files_under_way(tmp_path: Path, big: Path) -> None:
    """Ctrl-C (SIGINT) mid-read: no traceback; the run stops reading, saves and publishes what
    it read, says so, and exits 130; the next run reads exactly the files it did not."""
    ws = _workspace(tmp_path / "ws", big, workers=2)
    files = sum(len(list((big / n).iterdir())) for n in ("voa", "dw", "aljazeera"))
    proc, _ = _reading(ws)
    out, err = _interrupted(proc, times=1)
    assert "SIGINT: stopping after the files and fetches under way" in err
    assert "interrupted (SIGINT): what was read before it is saved" in err
    first = json.loads(out)
    assert first["interrupted"] == "SIGINT"
    read = sum(s["files_read"] for s in first["sources"])
    assert 0 < read < files
    entries = {f["name"]: f["entries"] for f in first["feeds"]}["all"]
    assert entries > 0
    assert len(feedparser.parse((ws.out / "all.atom").read_bytes()).entries) == entries
    second = ws.run_json()
    assert "interrupted" not in second
    assert read + sum(s["files_read"] for s in second["sources"]) == files


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_second_ctrl_c_stops_at_once_and_loses_nothing_saved(tmp_path: Path, big: Path) -> None:
    ws = _workspace(tmp_path / "ws", big, workers=2)
    proc, workers = _reading(ws)
    _, err = _interrupted(proc, times=2)
    assert "stopped at once: what was read up to the last save is kept" in err
    assert not (ws.out / "all.atom").exists()  # no feed was written
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_alive, workers)), "a worker outlived the run"
    with sqlite3.connect(ws.root / "state" / "test.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    files = sum(len(list((big / n).iterdir())) for n in ("voa", "dw", "aljazeera"))
    again = ws.run_json()
    assert sum(s["files_read"] for s in again["sources"]) <= files
    assert {f["name"]: f["entries"] for f in again["feeds"]}["all"] > 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_killed_run_leaves_no_worker_holding_the_state_lock(tmp_path: Path, big: Path) -> None:
    """A run killed outright (SIGKILL, the OOM killer) while its worker processes read files:
    the workers go too, so the next run is not refused as "in use" by a process that is gone."""
    ws = _workspace(tmp_path / "ws", big, workers=2)
    proc, workers = _reading(ws)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(map(_alive, workers)), "a worker outlived the run"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    again = ws.cli("run", "--json")
    assert again.returncode == 0, again.stderr
