"""Sources renamed or taken out of config.toml: no article leaves the feeds while a source in
config.toml still gives it, and a renamed source keeps its articles, their ids and what it had
read. The CLI as a subprocess on copies of the seeds, and a real HTTP server for a feed."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser

from tests import livefeeds
from tests.conftest import SEEDS, Workspace
from tests.feedserver import FeedServer, Route
from tests.test_daemon import Daemon, daemons  # noqa: F401 - the fixture
from tests.test_live_sources import NOW, RSS, Setup, by_name, url_source

HEAD = 'base_url = "https://news.example.org/feeds/"\noutput_dir = "out"\nstate_db = "s.sqlite3"\n'


def _write(root: Path, *sources: tuple[str, str, str]) -> None:
    blocks = [
        f'[[sources]]\nname = "{name}"\npath = "{path}"\nadapter = "{adapter}"\n'
        for name, path, adapter in sources
    ]
    (root / "config.toml").write_text(HEAD + "".join(blocks), encoding="utf-8")


def _entries(root: Path, feed: str) -> dict[str, str]:
    """Entry id -> title of out/<feed>.atom."""
    parsed = feedparser.parse((root / "out" / f"{feed}.atom").read_bytes())
    return {e.id: e.title for e in parsed.entries}


def _source(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in report["sources"] if s["name"] == name)


def test_a_renamed_archive_source_keeps_its_articles_ids_and_files_read(tmp_path: Path) -> None:
    shutil.copytree(SEEDS / "voa", tmp_path / "voa")
    shutil.copytree(SEEDS / "dw", tmp_path / "dw")
    _write(tmp_path, ("voa", "voa", "voa"), ("dw", "dw", "dw"))
    ws = Workspace(tmp_path)
    ws.run_json()
    before, merged = _entries(tmp_path, "voa"), _entries(tmp_path, "all")
    assert len(before) == 3 and len(merged) == 4

    _write(tmp_path, ("voa-chinese", "voa", "voa"), ("dw", "dw", "dw"))
    report = ws.run_json()
    assert _entries(tmp_path, "voa-chinese") == before
    assert _entries(tmp_path, "all") == merged
    assert not (tmp_path / "out" / "voa.atom").exists()  # the old name's feed is retired
    renamed = _source(report, "voa-chinese")
    assert (renamed["files_read"], renamed["new"], renamed["duplicates"]) == (0, 0, 0)
    assert (
        f"source 'voa' is now 'voa-chinese' in config.toml (same folder {tmp_path / 'voa'}): "
        "its 3 article(s) and what it had read go with it"
    ) in report["warnings"]
    # Said once: the next run has nothing to say and changes nothing.
    again = ws.run_json()
    assert not any("voa" in w for w in again["warnings"])
    assert all(f["written"] is False for f in again["feeds"])
    status = json.loads(ws.cli("status", "--json", check=True).stdout)
    assert {s["name"] for s in status["sources"]} == {"voa-chinese", "dw"}


def test_a_renamed_feed_keeps_the_entries_that_left_the_feed(
    tmp_path: Path, server: FeedServer
) -> None:
    """A feed shows only its latest entries: renamed, the source must not be read as new,
    or the entries its window no longer holds would leave the feeds for good."""
    articles = livefeeds.voa()
    url = server.route("/f", Route(body=livefeeds.rss2(articles), headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url)])
    assert by_name(setup.run())["live"].new == 3
    ids = {e.id for e in setup.feed("live").entries}

    server.route("/f", Route(body=livefeeds.rss2(articles[:1]), headers=RSS))
    renamed = Setup(tmp_path, [url_source("voa-live", url)])
    report = renamed.run(NOW + timedelta(hours=1))
    assert {e.id for e in renamed.feed("voa-live").entries} == ids
    assert {e.id for e in renamed.feed("all").entries} == ids
    assert any(w.startswith("source 'live' is now 'voa-live'") for w in report.warnings)
    live = by_name(report)["voa-live"]
    assert (live.new, live.updated) == (0, 0)


def _other_address(text: str, n: int) -> str:
    """The archive file ``text`` with its link moved to a mirror's address (another key)."""
    return re.sub(
        r"\]\(https://www\.voachinese\.com/[^)]*\)",
        f"](https://mirror.example.net/voa/{n})",
        text,
        count=1,
    )


def _two_sources_of_three_articles(tmp_path: Path) -> Workspace:
    """Source b gives the same three VOA articles as a: the same file (the same key), one
    under a mirror's address (an exact duplicate of a's), one edited (merged into a's as a near
    duplicate). Each is shown once, under a."""
    shutil.copytree(SEEDS / "voa", tmp_path / "a")
    (tmp_path / "b").mkdir()
    files = sorted((tmp_path / "a").iterdir())
    shutil.copy(files[0], tmp_path / "b" / files[0].name)
    copy = _other_address(files[1].read_text(encoding="utf-8"), 1)
    (tmp_path / "b" / files[1].name).write_text(copy, encoding="utf-8")
    edited = _other_address(files[2].read_text(encoding="utf-8"), 2)
    edited = edited.replace("。", "，据报道。", 3)  # a few sentences edited
    (tmp_path / "b" / files[2].name).write_text(edited, encoding="utf-8")
    _write(tmp_path, ("a", "a", "voa"), ("b", "b", "voa"))
    ws = Workspace(tmp_path)
    first = ws.run_json()
    merged = _entries(tmp_path, "all")
    assert len(merged) == 3 and _entries(tmp_path, "a") == merged
    assert _entries(tmp_path, "b") == {}
    b = _source(first, "b")
    assert (b["new"], b["duplicates"], b["near_duplicates"]) == (0, 1, 1)
    return ws


def test_a_source_taken_out_leaves_its_articles_to_one_that_gives_them_too(
    tmp_path: Path,
) -> None:
    """Taken out of config.toml, a leaves the articles b gives too to b: the same entries, ids
    and titles, in b's feed and in the merged one."""
    ws = _two_sources_of_three_articles(tmp_path)
    merged = _entries(tmp_path, "all")
    _write(tmp_path, ("b", "b", "voa"))
    report = ws.run_json()
    assert _entries(tmp_path, "b") == merged
    assert _entries(tmp_path, "all") == merged
    assert (
        "3 article(s) of source 'a', no longer in config.toml, are now shown under 'b', "
        "which gives them too"
    ) in report["warnings"]
    assert _source(report, "b")["files_read"] == 0  # nothing read again
    assert not any("'a'" in w for w in ws.run_json()["warnings"])  # said once
    # Put back, a shows them again, not b.
    _write(tmp_path, ("a", "a", "voa"), ("b", "b", "voa"))
    back = ws.run_json()
    assert (
        "3 article(s) shown under 'b' while 'a' was out of config.toml are shown under 'a' again"
    ) in back["warnings"]
    assert _entries(tmp_path, "a") == merged and _entries(tmp_path, "b") == {}
    assert _entries(tmp_path, "all") == merged


def test_a_source_taken_out_takes_the_articles_no_other_source_gives(tmp_path: Path) -> None:
    """What only the removed source gave leaves the feeds (the user took it out); put back,
    the source shows it again under the same ids without reading a file."""
    shutil.copytree(SEEDS / "voa", tmp_path / "voa")
    shutil.copytree(SEEDS / "dw", tmp_path / "dw")
    _write(tmp_path, ("voa", "voa", "voa"), ("dw", "dw", "dw"))
    ws = Workspace(tmp_path)
    ws.run_json()
    merged = _entries(tmp_path, "all")
    _write(tmp_path, ("dw", "dw", "dw"))
    report = ws.run_json()
    assert _entries(tmp_path, "all") == _entries(tmp_path, "dw")
    assert len(_entries(tmp_path, "dw")) == 1
    assert not any("shown under" in w for w in report["warnings"])
    _write(tmp_path, ("voa", "voa", "voa"), ("dw", "dw", "dw"))
    back = ws.run_json()
    assert _entries(tmp_path, "all") == merged
    assert _source(back, "voa")["files_read"] == 0


def test_a_state_from_before_knows_the_copies_it_recorded(tmp_path: Path) -> None:
    """A state made before sources were recorded per article (schema 14): the upgrade learns
    them from what it kept, each article's source and each copy's (the exact duplicate, the
    near duplicate), so b takes those two over. The article b gave under a's own key left no
    trace then, and stays with a until b reads its file again."""
    ws = _two_sources_of_three_articles(tmp_path)
    merged = _entries(tmp_path, "all")
    with sqlite3.connect(tmp_path / "s.sqlite3") as db:
        db.execute("DROP TABLE carries")
        db.execute("DROP TABLE rehomed")
        db.execute("PRAGMA user_version = 14")
    _write(tmp_path, ("b", "b", "voa"))
    report = ws.run_json()
    assert (
        "2 article(s) of source 'a', no longer in config.toml, are now shown under 'b', "
        "which gives them too"
    ) in report["warnings"]
    shown = _entries(tmp_path, "b")
    assert len(shown) == 2 and shown.items() <= merged.items()
    same_key = next(
        p
        for p in (tmp_path / "b").iterdir()
        if "mirror.example" not in p.read_text(encoding="utf-8")
    )
    same_key.write_text(same_key.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    ws.run_json()
    assert _entries(tmp_path, "b") == merged


def test_a_new_source_reading_another_part_of_a_shared_folder_is_no_rename(
    tmp_path: Path,
) -> None:
    """One folder, two outlets' files told apart by include patterns: the VOA source taken
    out and a DW one added does not inherit VOA's articles as a rename."""
    (tmp_path / "arch").mkdir()
    for outlet in ("voa", "dw"):
        for f in (SEEDS / outlet).iterdir():
            shutil.copy(f, tmp_path / "arch" / f"{outlet}-{f.name}")
    config = (
        HEAD + '[[sources]]\nname = "{0}"\npath = "arch"\nadapter = "{0}"\ninclude = ["{0}-*"]\n'
    )
    (tmp_path / "config.toml").write_text(config.format("voa"), encoding="utf-8")
    ws = Workspace(tmp_path)
    ws.run_json()
    (tmp_path / "config.toml").write_text(config.format("dw"), encoding="utf-8")
    report = ws.run_json()
    assert not any("is now 'dw'" in w for w in report["warnings"]), report["warnings"]
    assert _source(report, "dw")["new"] == 1
    (title,) = _entries(tmp_path, "dw").values()
    assert title.startswith("美俄就乌克兰召开安全对话")


def test_a_daemon_started_on_a_renamed_feed_keeps_its_entries(
    tmp_path: Path,
    server: FeedServer,
    daemons: list[Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    """The daemon publishes its schedule (a status row per source) before its first batch:
    the new name must still be taken as a rename."""
    articles = livefeeds.voa()
    url = server.route("/f", Route(body=livefeeds.rss2(articles), headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url)])
    setup.run()
    ids = {e.id for e in setup.feed("live").entries}
    server.route("/f", Route(body=livefeeds.rss2(articles[:1]), headers=RSS))
    renamed = Setup(tmp_path, [url_source("voa-live", url)])
    d = Daemon(tmp_path)
    daemons.append(d)
    feed = tmp_path / "out" / "voa-live.atom"
    d.wait_for(feed.exists, why="the renamed source's feed")
    assert {e.id for e in renamed.feed("voa-live").entries} == ids
    assert d.stop() == 0
    assert "source 'live' is now 'voa-live'" in d.log
