"""``pipeline.health``: what /healthz answers, decided from the recorded runs and schedule.
Table-driven with ``now`` passed in: no clock, no sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator import pipeline
from aggregator.model import Config, Cycle, FetchPolicy, Source, SourceStatus, Status

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def config(interval: float = 1800.0) -> Config:
    policy = FetchPolicy(interval=interval)
    sources = tuple(
        Source(name, name, None, f"https://example.org/{name}.xml", policy=policy)
        for name in ("voa", "dw")
    )
    return Config("https://example.org/", Path("out"), Path("state.db"), sources, ())


def cycle(ago: timedelta, error: str | None = None, failed: int = 0) -> Cycle:
    return Cycle(NOW - ago, 2.0, 2, failed, error)


def sources(*next_runs: datetime | None) -> tuple[SourceStatus, ...]:
    return tuple(
        SourceStatus(name, name, "", next_run=at)
        for name, at in zip(("voa", "dw"), next_runs, strict=True)
    )


CASES = [
    # (why, status, healthy, words in the reason)
    ("nothing has run yet", Status(sources(None, None), ()), False, "no run has completed"),
    ("the state database cannot be read",
     Status((), (), error="state.db: attempt to write a readonly database"), False,
     "cannot read the state database"),
    ("daemon on time", Status(sources(NOW + MIN, NOW + 5 * MIN), (), (cycle(MIN),)), True, "ok"),
    # One upstream down is the health page's business, not a reason to restart us.
    ("a source failed, the cycle completed",
     Status(sources(NOW + MIN, NOW + MIN), (), (cycle(MIN, failed=1),)), True, "ok"),
    ("dw's folder is gone: healthy, and the reason names it",
     Status((SourceStatus("voa", "voa", "", next_run=NOW + MIN),
             SourceStatus("dw", "dw", "", next_run=NOW + MIN, last_success=NOW - 40 * MIN,
                          last_error="no such file or folder", last_error_at=NOW - MIN)),
            (), (cycle(MIN, failed=1),)),
     True, "but failing: dw (see the last error of each)"),
    ("dw failed once and has run since", Status((SourceStatus(
        "dw", "dw", "", next_run=NOW + MIN, last_success=NOW - MIN, last_error="refused",
        last_error_at=NOW - 40 * MIN),), (), (cycle(MIN),)), True, "ok: last run"),
    ("the last cycle crashed",
     Status(sources(NOW + MIN, NOW + MIN), (), (cycle(MIN, "internal error (KeyError: 'x')"),)),
     False, "failed: internal error"),
    ("a feed could not be written",
     Status(sources(NOW + MIN, NOW + MIN), (), (cycle(MIN, "out/all.atom: cannot write"),)),
     False, "cannot write"),
    ("the daemon is stuck: dw's run is ten minutes late",
     Status(sources(NOW + MIN, NOW - 10 * MIN), (), (cycle(40 * MIN),)), False, "overdue: dw"),
    ("within the grace a run may be a little late",
     Status(sources(NOW - 30 * timedelta(seconds=1), NOW + MIN), (), (cycle(MIN),)), True, "ok"),
    ("cron-driven `run` (no daemon), recent",
     Status(sources(None, None), (), (cycle(40 * MIN),)), True, "ok"),
    ("cron-driven `run`, stopped two hours ago (interval 30 min)",
     Status(sources(None, None), (), (cycle(120 * MIN),)), False, "more than twice"),
]  # fmt: skip


@pytest.mark.parametrize(("why", "status", "healthy", "words"), CASES, ids=[c[0] for c in CASES])
def test_health(why: str, status: Status, healthy: bool, words: str) -> None:
    ok, reason = pipeline.health(config(), status, NOW)
    assert ok is healthy, reason
    assert words in reason
    assert ("failing" in reason) == ("failing" in words), reason
