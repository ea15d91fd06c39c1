"""Shared test helpers: a workspace holding a copy of the seeds and a config, and the real CLI
run as a subprocess against it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"

CONFIG = """\
base_url = "https://news.example.org/feeds/"
output_dir = "out"
state_db = "state/test.sqlite3"

[output]
max_entries = {max_entries}

[output.merged]
name = "all"
title = "All test sources"

[[sources]]
name = "voa"
title = "VOA"
path = "seeds/voa"
adapter = "voa"

[[sources]]
name = "dw"
title = "DW"
path = "seeds/dw"
adapter = "dw"

[[sources]]
name = "aljazeera"
title = "Al Jazeera"
path = "seeds/aljazeera"
adapter = "aljazeera"
"""


@dataclass
class Workspace:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def db(self) -> Path:
        return self.root / "state" / "test.sqlite3"

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``python -m aggregator`` in the workspace, as a user would."""
        proc = subprocess.run(
            [sys.executable, "-m", "aggregator", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def run_json(self, *args: str, expect: int = 0) -> dict[str, Any]:
        proc = self.cli("run", "--json", *args)
        assert proc.returncode == expect, proc.stdout + proc.stderr
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def feed_bytes(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.out.glob("*.atom"))}

    def run_stopped_before_near_duplicates(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A run, in this process, stopped (a second Ctrl-C, SIGKILL, a power cut) after it
        saved every source but before its near-duplicate pass and its feeds."""
        from datetime import UTC, datetime

        from aggregator import config, pipeline
        from aggregator.store import Store

        def stopped(*args: object) -> None:
            raise KeyboardInterrupt

        with monkeypatch.context() as patch:
            patch.setattr(pipeline, "_near_duplicates", stopped)
            cfg = config.load(self.config)
            with pytest.raises(KeyboardInterrupt), Store(cfg.state_db) as store:
                pipeline.run_once(cfg, store, datetime.now(UTC))


def make_workspace(root: Path, max_entries: int = 100) -> Workspace:
    shutil.copytree(SEEDS, root / "seeds")
    (root / "config.toml").write_text(CONFIG.format(max_entries=max_entries), encoding="utf-8")
    return Workspace(root)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    """A real HTTP server on 127.0.0.1 for URL sources (tests/feedserver.py)."""
    s = FeedServer()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)
