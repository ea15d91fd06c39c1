"""The worker-process path: a corpus large enough to use the pool gives byte-identical feeds
and the same counts as reading it in one process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, Workspace

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
