"""``aggregator daemon`` as a user runs it: a subprocess with short intervals, fetching from a
real HTTP server on 127.0.0.1 (tests/feedserver.py), stopped with real signals.

These tests take real seconds (the daemon's schedule is wall-clock time): each waits for what
it expects with a deadline, never for a fixed sleep, except where the point is that something
must *not* happen during a stretch of time.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest

from aggregator.daemon import CONFIG_CHECK, cron_trigger
from tests import livefeeds
from tests.atomcheck import check_feed
from tests.feedserver import FeedServer, Route

RSS = {"content-type": "application/rss+xml; charset=utf-8"}
CHECKS = 2 * CONFIG_CHECK  # long enough for the daemon to take in a change of config.toml


def write_config(root: Path, sources: list[dict[str, Any]], interval: str = "1s") -> Path:
    lines = [
        'base_url = "https://news.example.org/feeds/"',
        'output_dir = "out"',
        'state_db = "state/state.sqlite3"',
        "[fetch]",
        f'interval = "{interval}"',
        "timeout = 10",
    ]
    for s in sources:
        lines.append("[[sources]]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in s.items())
    path = root / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def url_source(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "adapter": "auto", "allow_private": True, **extra}


class Daemon:
    """``python -m aggregator daemon`` in ``root``, its log in a file."""

    def __init__(self, root: Path, *args: str, ignore_hangup: bool = False) -> None:
        self.root = root
        self.log_path = root / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "daemon", *args],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            # As nohup starts it: SIGHUP ignored, which the child inherits.
            preexec_fn=(lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
            if ignore_hangup
            else None,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, what: Callable[[], bool], timeout: float = 20.0, why: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if what():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {why or what}:\n{self.log}")

    def wait_log(self, text: str, count: int = 1, timeout: float = 20.0) -> None:
        self.wait_for(lambda: self.log.count(text) >= count, timeout, repr(text))

    def send(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.send(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:  # never leave a daemon behind, whatever the test did
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        d._log.close()


def squash(title: str) -> str:
    return " ".join(title.split())  # cleaning folds runs of spaces in titles


def titles(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [e.title for e in feedparser.parse(path.read_bytes()).entries]


def cli(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", *args],
        cwd=root, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _daemon_with_one_article(
    root: Path, server: FeedServer, daemons: list[Daemon]
) -> tuple[Daemon, livefeeds.Article, livefeeds.Article, Path]:
    """A daemon on one feed at /voa.xml, once the feed's one article is in all.atom; and
    the article the feed publishes next."""
    first, later = livefeeds.distinct(livefeeds.voa()[0], 2)
    url = server.route("/voa.xml", Route(body=livefeeds.rss2([first]), headers=RSS))
    write_config(root, [url_source("voa", url)])
    d = Daemon(root)
    daemons.append(d)
    all_atom = root / "out" / "all.atom"
    d.wait_for(lambda: titles(all_atom) == [first.title], why="the first article")
    return d, first, later, all_atom


def test_new_items_reach_the_feed_and_sigterm_exits_0(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    d, first, later, all_atom = _daemon_with_one_article(tmp_path, server, daemons)
    # The source publishes a new article: the next scheduled run brings it in.
    server.route("/voa.xml", Route(body=livefeeds.rss2([later, first]), headers=RSS))
    d.wait_for(lambda: later.title in titles(all_atom), why="the new article")
    assert sorted(titles(all_atom)) == sorted([first.title, later.title])
    assert d.stop() == 0
    log = d.log
    assert "daemon started: 1 source(s)" in log
    assert "voa: 1 new, 0 updated, 0 duplicate(s), fetched: 200" in log
    assert "next run 20" in log  # each source's next run, as a UTC time
    assert "feeds rewritten: all.atom (2), voa.atom (2)" in log
    assert "received SIGTERM" in log and log.rstrip().endswith("daemon stopped")


def test_a_hang_up_stops_the_daemon_cleanly(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    """SIGHUP (the terminal the daemon ran in closed) stops it as SIGTERM does: exit 0, its
    lock released, not killed mid-batch by the signal's default action."""
    url = server.route("/voa.xml", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    write_config(tmp_path, [url_source("voa", url)])
    d = Daemon(tmp_path)
    daemons.append(d)
    d.wait_for(lambda: len(titles(tmp_path / "out" / "all.atom")) == 3, why="the articles")
    assert d.stop(signal.SIGHUP) == 0
    assert "received SIGHUP" in d.log and d.log.rstrip().endswith("daemon stopped")
    assert cli(tmp_path, "run", "--json").returncode == 0  # the state is free
    # Started under nohup (SIGHUP ignored), a hang-up leaves it running.
    nohup = Daemon(tmp_path, ignore_hangup=True)
    daemons.append(nohup)
    nohup.wait_log("daemon started")
    nohup.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    assert nohup.proc.poll() is None and "received SIGHUP" not in nohup.log
    assert nohup.stop() == 0


def test_a_state_database_deleted_under_the_daemon_is_not_started_afresh(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    """Moving the state database away while the daemon runs must not start an empty one, which
    would forget what the feeds hold. Each batch says so and runs nothing, the feed keeps its
    entries, and once the file is back the daemon goes on with it, ids unchanged."""
    d, first, later, all_atom = _daemon_with_one_article(tmp_path, server, daemons)
    before = feedparser.parse(all_atom.read_bytes()).entries[0].id
    db = tmp_path / "state" / "state.sqlite3"
    d.wait_log("batch done")
    aside = tmp_path / "aside"
    aside.mkdir()
    for part in ("", "-wal", "-shm"):  # as `mv state/state.sqlite3* aside/` would
        if Path(f"{db}{part}").exists():
            Path(f"{db}{part}").rename(aside / f"state.sqlite3{part}")
    server.route("/voa.xml", Route(body=livefeeds.rss2([later, first]), headers=RSS))
    d.wait_log("the state database is gone", count=2)
    assert not db.exists()
    assert titles(all_atom) == [first.title]
    assert feedparser.parse(all_atom.read_bytes()).entries[0].id == before
    assert "restart the daemon to start afresh" in d.log and "Traceback" not in d.log
    health = cli(tmp_path, "status", "--json")  # what /healthz answers
    assert health.returncode == 1 and not json.loads(health.stdout)["healthy"]
    assert f"{db} does not exist" in json.loads(health.stdout)["reason"]
    assert not db.exists()  # (status read it without making one)
    for part in aside.iterdir():
        part.rename(db.parent / part.name)
    d.wait_for(lambda: later.title in titles(all_atom), why="the new article, state back")
    ids = {e.title: e.id for e in feedparser.parse(all_atom.read_bytes()).entries}
    assert ids[first.title] == before
    # Replaced by an empty file: the same, not a new database made in it. (A new file renamed
    # over it: a batch under way meanwhile writes to the old one.)
    empty = tmp_path / "state" / "empty.tmp"
    empty.write_bytes(b"")
    for part in ("-wal", "-shm"):
        Path(f"{db}{part}").unlink(missing_ok=True)
    empty.replace(db)
    d.wait_log("the state database is empty")
    assert db.stat().st_size == 0 and len(titles(all_atom)) == 2
    assert d.stop() == 0


def test_a_daemon_that_cannot_open_its_state_database_does_not_start(tmp_path: Path) -> None:
    """A state database that is not aggregator's (or cannot be made) stops the daemon at its
    start, exit 3, instead of a daemon whose every batch fails."""
    write_config(tmp_path, [url_source("voa", "http://127.0.0.1:9/voa.xml")])
    (tmp_path / "state").mkdir()
    with sqlite3.connect(tmp_path / "state" / "state.sqlite3") as other:
        other.execute("CREATE TABLE notes (text TEXT)")
    proc = cli(tmp_path, "daemon", timeout=30)
    assert proc.returncode == 3, proc.stderr
    assert "a SQLite database that is not aggregator's" in proc.stderr
    assert "daemon started" not in proc.stderr and "Traceback" not in proc.stderr


def test_sigterm_mid_cycle_finishes_cleanly_and_loses_nothing(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    """SIGTERM while a slow fetch is under way: the fetch is taken in, the archive source not
    yet started is left for later, the feeds are valid, the database is sound, and the next run
    reads what the stopped one did not."""
    slow = livefeeds.distinct(livefeeds.dw()[0], 3)
    url = server.route("/dw.xml", Route(body=livefeeds.rss2(slow), headers=RSS, delay=2.5))
    (tmp_path / "seeds").mkdir()
    archive = tmp_path / "seeds" / "voa"
    archive.mkdir()
    for f in (livefeeds.SEEDS / "voa").iterdir():
        (archive / f.name).write_bytes(f.read_bytes())
    write_config(
        tmp_path,
        [url_source("dw", url), {"name": "voa", "path": "seeds/voa", "adapter": "voa"}],
        interval="1h",
    )
    d = Daemon(tmp_path)
    daemons.append(d)
    d.wait_for(lambda: len(server.hits("/dw.xml")) == 1, why="the slow fetch to start")
    time.sleep(0.5)
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 15  # within the fetch's own timeout (10 s), not hung
    out = tmp_path / "out"
    for feed in ("all.atom", "dw.atom", "voa.atom"):
        data = (out / feed).read_bytes()
        assert check_feed(data) == [], feed
    assert sorted(titles(out / "all.atom")) == sorted(squash(a.title) for a in slow)
    assert not list(out.glob(".*.tmp"))  # no half-written file left behind
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {row[0] for row in db.execute("SELECT title FROM items")}
    assert stored == {squash(a.title) for a in slow}
    assert db.execute("SELECT count(*) FROM files").fetchone() == (0,)  # voa never started
    db.close()
    # The next run (the daemon is gone, so its lock is free) reads the archive it skipped.
    run = cli(tmp_path, "run", "--json")
    assert run.returncode == 0, run.stderr
    assert len(titles(out / "all.atom")) == len(slow) + 3


def test_a_second_daemon_is_refused_and_a_run_waits_for_the_batch(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    url = server.route(
        "/voa.xml", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, delay=3.0)
    )
    write_config(tmp_path, [url_source("voa", url)], interval="1h")
    d = Daemon(tmp_path)
    daemons.append(d)
    d.wait_for(lambda: len(server.hits("/voa.xml")) == 1, why="the first batch to start")
    second = cli(tmp_path, "daemon")
    assert second.returncode == 3
    assert f"aggregator daemon (pid {d.proc.pid}) is already running" in second.stderr
    assert "stop the other one first" in second.stderr
    # A one-shot run during the batch is refused at once, naming who holds the state...
    busy = cli(tmp_path, "run")
    assert busy.returncode == 3
    assert f"in use by aggregator daemon (pid {d.proc.pid})" in busy.stderr
    assert "run --wait SECONDS" in busy.stderr
    # ... or waits for the batch to end, then runs.
    waited = cli(tmp_path, "run", "--wait", "20", "--json")
    assert waited.returncode == 0, waited.stderr
    assert "batch done" in d.log  # it ran after the daemon's batch, not during it
    assert d.stop() == 0


def test_a_run_missed_while_stopped_runs_once(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    """SIGSTOP stands in for a laptop's sleep: five scheduled runs pass while the process is
    frozen; after SIGCONT the source is fetched once, not five times."""
    url = server.route("/voa.xml", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    write_config(tmp_path, [url_source("voa", url)], interval="2s")
    d = Daemon(tmp_path)
    daemons.append(d)
    d.wait_log("batch done", 2)
    d.send(signal.SIGSTOP)
    frozen = len(server.hits("/voa.xml"))
    time.sleep(10.5)  # five intervals
    d.send(signal.SIGCONT)
    time.sleep(1.5)  # the missed run (coalesced) happens at once; the next is 2 s away
    assert len(server.hits("/voa.xml")) - frozen == 1
    assert d.stop() == 0


def test_sources_due_together_run_in_one_batch(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    """At start every source is due: one batch runs them all and writes each feed once."""
    urls = [
        server.route(f"/{name}.xml", Route(body=livefeeds.rss2(articles()), headers=RSS))
        for name, articles in (("voa", livefeeds.voa), ("dw", livefeeds.dw))
    ]
    write_config(tmp_path, [url_source("voa", urls[0]), url_source("dw", urls[1])], interval="1h")
    d = Daemon(tmp_path)
    daemons.append(d)
    d.wait_log("batch done")
    db = sqlite3.connect(tmp_path / "state" / "state.sqlite3")
    # The schedule is in the state database for the health page: each next run an hour on.
    rows = db.execute("SELECT source, next_run, last_run FROM source_status").fetchall()
    assert {r[0] for r in rows} == {"voa", "dw"}
    for _, next_run, last_run in rows:
        assert next_run > last_run
    assert d.stop() == 0
    assert "running dw, voa" in d.log
    assert d.log.count("batch done") == 1
    assert db.execute("SELECT sources, failed, error FROM cycles").fetchall() == [(2, 0, None)]
    db.close()


@pytest.mark.parametrize("schedule", [{}, {"cron": "0 0 1 1 *"}], ids=["interval", "cron"])
def test_restart_does_not_poll_again_before_its_time(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon], schedule: dict[str, str]
) -> None:
    url = server.route("/voa.xml", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    write_config(tmp_path, [url_source("voa", url, **schedule)], interval="1h")
    d = Daemon(tmp_path)
    daemons.append(d)
    d.wait_log("batch done")
    assert d.stop() == 0
    again = Daemon(tmp_path)
    daemons.append(again)
    again.wait_log("daemon started")
    time.sleep(1.0)
    assert again.stop() == 0
    # It ran a moment ago: its next time is an hour on (or next New Year, by its cron line).
    assert len(server.hits("/voa.xml")) == 1


def test_bad_cron_is_a_config_error(tmp_path: Path) -> None:
    write_config(tmp_path, [url_source("voa", "http://127.0.0.1:9/feed", cron="61 * * * *")])
    proc = cli(tmp_path, "check")
    assert proc.returncode == 2
    assert "sources[0].cron" in proc.stdout + proc.stderr
    assert "crontab line" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("line", "first_four"),
    [
        ("0 0 * * 0", ["Sun 22", "Sun 29", "Sun 06", "Sun 13"]),  # 0 is Sunday, as is 7
        ("0 0 * * 7", ["Sun 22", "Sun 29", "Sun 06", "Sun 13"]),
        ("0 0 * * 1-5", ["Mon 23", "Tue 24", "Wed 25", "Thu 26"]),
        ("0 0 * * */2", ["Sat 21", "Sun 22", "Tue 24", "Thu 26"]),  # Sun, Tue, Thu, Sat
        ("0 0 * * mon-fri", ["Mon 23", "Tue 24", "Wed 25", "Thu 26"]),
        ("0 0 1 * 1", ["Mon 23", "Mon 30", "Tue 01", "Mon 07"]),  # the 1st, or a Monday
        ("0 0 1 * *", ["Tue 01", "Fri 01", "Mon 01", "Mon 01"]),
        # A weekday field starting with "*" is unrestricted to crontab: the 1st, if its day.
        ("0 0 1 * */2", ["Tue 01", "Thu 01", "Sat 01", "Tue 01"]),
    ],
)
def test_a_cron_line_means_what_crontab_means(line: str, first_four: list[str]) -> None:
    """Weekday 0 and 7 are Sunday, and a restricted day of the month and weekday are either
    one, as in crontab(5); APScheduler alone reads 0 as Monday and requires both."""
    trigger = cron_trigger(line)
    when, previous, days = datetime(2026, 11, 21, tzinfo=UTC), None, []  # a Saturday
    for _ in range(4):
        fire = trigger.get_next_fire_time(previous, when)
        assert fire is not None
        days.append(fire.strftime("%a %d"))
        previous, when = fire, fire + timedelta(seconds=1)
    assert days == first_four


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"cron": "0 0 31 2 *"}, "never comes"),
        ({"cron": "0 0 * * 8"}, "weekday '8' is out of range"),
        ({"cron": "0 0 * * *", "interval": "1h"}, "give either interval or cron, not both"),
        ({"interval": "99999999d"}, "must be at most 366 days"),
    ],
)
def test_schedules_a_daemon_could_not_keep_are_config_errors(
    tmp_path: Path, settings: dict[str, str], problem: str
) -> None:
    write_config(tmp_path, [url_source("voa", "http://127.0.0.1:9/feed", **settings)])
    proc = cli(tmp_path, "check")
    assert proc.returncode == 2
    assert "sources[0]" in proc.stderr and problem in proc.stderr, proc.stderr


def test_status_shows_each_source_last_error_and_health(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    good = server.route("/voa.xml", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    bad = server.route("/dw.xml", Route(status=500, body=b"upstream broke"))
    write_config(tmp_path, [url_source("voa", good), url_source("dw", bad)], interval="1h")
    d = Daemon(tmp_path)
    daemons.append(d)
    d.wait_log("batch done")
    # While the daemon runs, each source has its next run, an hour on.
    running = json.loads(cli(tmp_path, "status", "--json").stdout)
    assert running["healthy"] is True  # one upstream failing is not the service failing
    assert all(s["next_run"] is not None for s in running["sources"])
    assert d.stop() == 0
    proc = cli(tmp_path, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    sources = {s["name"]: s for s in doc["sources"]}
    assert sources["voa"]["new"] == 3 and sources["voa"]["errors"] == 0
    assert sources["voa"]["last_success"] is not None
    assert sources["dw"]["errors"] == 1 and sources["dw"]["last_success"] is None
    assert "HTTP 500" in sources["dw"]["last_error"]
    # A daemon that stopped cleanly leaves no schedule for the health check to wait on.
    assert all(s["next_run"] is None for s in doc["sources"])
    assert {f["name"]: f["entries"] for f in doc["feeds"]} == {"all": 3, "voa": 3, "dw": 0}
    assert doc["cycles_total"] == 1 and doc["cycles"][0]["failed"] == 1
    table = cli(tmp_path, "status").stdout
    assert "HTTP 500" in table and "healthy" in table


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_daemon_serve_new_items_reach_the_served_feed(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    """`daemon --serve`: one process refreshes on schedule and serves; a reader polling the
    served feed sees the new article, and SIGTERM stops both with exit 0."""
    import httpx

    first, later = livefeeds.distinct(livefeeds.voa()[0], 2)
    url = server.route("/voa.xml", Route(body=livefeeds.rss2([first]), headers=RSS))
    write_config(tmp_path, [url_source("voa", url)])
    port = _free_port()
    d = Daemon(tmp_path, "--serve", "--port", str(port))
    daemons.append(d)
    feed_url = f"http://127.0.0.1:{port}/feeds/all.atom"  # served under base_url's path

    def served_titles() -> list[str]:
        try:
            response = httpx.get(feed_url, timeout=2)
        except httpx.TransportError:
            return []
        if response.status_code != 200:
            return []
        assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
        return [e.title for e in feedparser.parse(response.content).entries]

    d.wait_for(lambda: served_titles() == [first.title], why="the first article, served")
    server.route("/voa.xml", Route(body=livefeeds.rss2([later, first]), headers=RSS))
    d.wait_for(lambda: later.title in served_titles(), why="the new article, served")
    health = httpx.get(f"http://127.0.0.1:{port}/feeds/healthz", timeout=2)
    assert health.status_code == 200, health.text
    assert d.stop() == 0
    assert "daemon stopped" in d.log
    assert "HTTP Request" not in d.log  # httpx's line per request only with --verbose


def test_config_edits_are_taken_in_while_running(
    tmp_path: Path, server: FeedServer, daemons: list[Daemon]
) -> None:
    """config.toml edited under a running `daemon --serve`: a source added runs at once and
    reaches the feeds, a feed retitled is rewritten, the status page knows the new source; a
    text that cannot be used is said once with its problem and changes nothing; a source
    taken out stops and its feed is retired; a setting held for the process's life
    (state_db) is said to wait for a restart. Before, the daemon never read config.toml
    again and went on writing the feeds of its first configuration."""
    import httpx

    voa, dw = livefeeds.voa()[0], livefeeds.dw()[0]
    voa_url = server.route("/voa.xml", Route(body=livefeeds.rss2([voa]), headers=RSS))
    dw_url = server.route("/dw.xml", Route(body=livefeeds.rss2([dw]), headers=RSS))
    hourly = {"interval": "1h"}  # no source runs again by its schedule during the test
    out = tmp_path / "out"

    def edit(sources: list[dict[str, Any]], title: str = "Everything", db: str = "state") -> None:
        """config.toml replaced whole, as an editor saves it."""
        draft = tmp_path / "draft"
        draft.mkdir(exist_ok=True)
        text = write_config(draft, sources).read_text(encoding="utf-8")
        text = text.replace("state/state.sqlite3", f"{db}/state.sqlite3")
        text += f'[output.merged]\nname = "all"\ntitle = "{title}"\n'
        (draft / "config.toml").write_text(text, encoding="utf-8")
        os.replace(draft / "config.toml", tmp_path / "config.toml")

    edit([url_source("voa", voa_url, **hourly)])
    port = _free_port()
    d = Daemon(tmp_path, "--serve", "--port", str(port))
    daemons.append(d)
    d.wait_for(lambda: titles(out / "all.atom") == [squash(voa.title)], why="the first run")
    requests = len(server.requests)

    edit([url_source("voa", voa_url, **hourly), url_source("dw", dw_url, **hourly)], "Edited")
    both = sorted([squash(voa.title), squash(dw.title)])
    d.wait_for(lambda: sorted(titles(out / "all.atom")) == both, why="the added source's article")
    assert titles(out / "dw.atom") == [squash(dw.title)]
    assert feedparser.parse((out / "all.atom").read_bytes()).feed.title == "Edited"
    assert "was changed: taken in (sources added: dw)" in d.log
    assert [r.path for r in server.requests[requests:]] == ["/dw.xml"]  # voa waits its hour
    page = httpx.get(f"http://127.0.0.1:{port}/feeds/status", timeout=5)
    assert page.status_code == 200 and "dw" in page.text

    before = (out / "all.atom").read_bytes()
    bad = [url_source("voa", voa_url, **hourly), {**url_source("dw", dw_url), "adapter": "vao"}]
    edit(bad, "Edited")
    d.wait_log("cannot be used")
    edit(bad, "Edited")  # saved again as it was: said once, not on every save or look
    time.sleep(2 * CHECKS)
    assert d.log.count("cannot be used") == 1 and "sources[1].adapter" in d.log
    assert (out / "all.atom").read_bytes() == before and d.proc.poll() is None

    edit([url_source("dw", dw_url, **hourly)], "Edited")
    d.wait_for(lambda: not (out / "voa.atom").exists(), why="the removed source's feed retired")
    assert titles(out / "all.atom") == [squash(dw.title)]
    assert "taken out: voa" in d.log

    edit([url_source("dw", dw_url, **hourly)], "Edited", db="elsewhere")
    d.wait_log("changes state_db, which the daemon takes only when it starts")
    assert not (tmp_path / "elsewhere").exists()
    assert d.stop() == 0
