"""Configured feeds: [[feeds]] with sources and filters, script variants, RFC 5005 archives,
WebSub, and the checks that keep a feed's file inside the output folder. Real seed files and
synthetic archive items in a tmp folder, a real SQLite file, the CLI as a subprocess (the
pipeline in-process where a test needs to choose ``now``), a real hub stand-in on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import feedparser
import pytest
from atomcheck import check_feed
from conftest import SEEDS, Workspace, make_workspace
from feedcheck import check_file
from feedserver import FeedServer, Route
from lxml import etree

from aggregator import config as config_mod
from aggregator import pipeline, script, writer
from aggregator.store import Store

BASE = "https://news.example.org/feeds/"


def _ids(path: Path) -> list[str]:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return [e.id for e in parsed.entries]


def _titles(path: Path) -> list[str]:
    return [e.title for e in feedparser.parse(path.read_bytes()).entries]


def _with_feeds(ws: Workspace, extra: str) -> None:
    ws.config.write_text(ws.config.read_text(encoding="utf-8") + extra, encoding="utf-8")


# -- configured feeds and filters ------------------------------------------------------------

TOPIC = """
[[feeds]]
name = "us-russia"
title = "美俄 US-Russia"
subtitle = "Titles that start with 美俄"
icon = "https://news.example.org/icon.png"
file = "topics/us-russia.atom"
sources = ["voa", "dw"]
max_entries = 10
[feeds.include]
patterns = ["^美俄"]

[[feeds]]
name = "no-new-media"
title = "Everything but new media"
[feeds.exclude]
categories = ["新媒体"]

[[feeds]]
name = "news-in-traditional-keywords"
title = "烏克蘭 (keyword written in Traditional)"
max_entries = 2
[feeds.include]
keywords = ["烏克蘭", "UKRAINE"]
categories = ["新聞"]
"""


def test_configured_feeds_filter_and_limit(ws: Workspace) -> None:
    _with_feeds(ws, TOPIC)
    report = ws.run_json()
    counts = {f["name"]: f["entries"] for f in report["feeds"]}
    assert counts == {"all": 5, "voa": 3, "dw": 1, "aljazeera": 1, "us-russia": 3,
                      "no-new-media": 4, "news-in-traditional-keywords": 1}  # fmt: skip
    topic = ws.out / "topics" / "us-russia.atom"
    assert all(t.startswith("美俄") for t in _titles(topic))
    assert len(_titles(topic)) == 3
    parsed = feedparser.parse(topic.read_bytes())
    assert parsed.feed.title == "美俄 US-Russia"
    assert parsed.feed.subtitle == "Titles that start with 美俄"
    assert parsed.feed.icon == "https://news.example.org/icon.png"
    links = {(ln.rel, ln.type): ln.href for ln in parsed.feed.links}
    assert links[("self", "application/atom+xml")] == BASE + "topics/us-russia.atom"
    assert links[("alternate", "application/rss+xml")] == BASE + "topics/us-russia.rss"
    # The category keeps Al Jazeera's post out; a keyword in Traditional matches Simplified
    # text, but only together with the category (every kind given must match).
    assert "拜登和普京的通话如何未能赶走乌克兰的战争幽灵？" not in _titles(
        ws.out / "no-new-media.atom"
    )
    assert _titles(ws.out / "news-in-traditional-keywords.atom") == [
        "拜登和普京的通话如何未能赶走乌克兰的战争幽灵？"
    ]
    for path in ws.out.rglob("*"):
        if path.suffix in (".atom", ".rss", ".json"):
            assert check_file(path) == []
    # The OPML list names the configured feeds too.
    assert BASE + "topics/us-russia.atom" in (ws.out / "feeds.opml").read_text(encoding="utf-8")


def test_a_base_url_and_feed_file_in_chinese_are_published_as_uris(ws: Workspace) -> None:
    """Feeds' addresses are URIs (RFC 4287's self link, JSON Feed's feed_url): a base_url path
    or a feed file named in Chinese is percent-encoded, in every format and in the OPML list."""
    text = ws.config.read_text(encoding="utf-8").replace(BASE, "https://news.example.org/新闻/")
    text = text.replace("[output.merged]\n", '[output.merged]\nicon = "图标.png"\n')
    ws.config.write_text(
        text + '[[feeds]]\nname = "ukraine"\ntitle = "乌克兰"\nfile = "专题/乌克兰.atom"\n',
        encoding="utf-8",
    )
    ws.run_json()
    base = "https://news.example.org/%E6%96%B0%E9%97%BB/"
    topic = base + "%E4%B8%93%E9%A2%98/%E4%B9%8C%E5%85%8B%E5%85%B0"
    parsed = feedparser.parse((ws.out / "专题" / "乌克兰.atom").read_bytes())
    links = {(ln.rel, ln.type): ln.href for ln in parsed.feed.links}
    assert links[("self", "application/atom+xml")] == topic + ".atom"
    assert links[("alternate", "application/feed+json")] == topic + ".json"
    feed_json = json.loads((ws.out / "专题" / "乌克兰.json").read_text(encoding="utf-8"))
    assert feed_json["feed_url"] == topic + ".json"
    assert json.loads((ws.out / "voa.json").read_text(encoding="utf-8"))["feed_url"] == (
        base + "voa.json"
    )
    assert topic + ".atom" in (ws.out / "feeds.opml").read_text(encoding="utf-8")
    # An icon relative to base_url is published absolute (JSON Feed requires it).
    icon = base + "%E5%9B%BE%E6%A0%87.png"
    assert json.loads((ws.out / "all.json").read_text(encoding="utf-8"))["icon"] == icon
    assert feedparser.parse((ws.out / "all.atom").read_bytes()).feed.icon == icon
    for path in ws.out.rglob("*"):
        if path.suffix in (".atom", ".rss", ".json"):
            assert check_file(path) == [], path


def test_max_age_counts_from_now(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    _with_feeds(ws, '[[feeds]]\nname = "recent"\ntitle = "Last ten days"\nmax_age = "10d"\n')
    cfg = config_mod.load(ws.config)
    with Store(cfg.state_db) as store:
        report = pipeline.run_once(cfg, store, datetime(2022, 10, 22, tzinfo=UTC))
    assert {f.name: f.entries for f in report.feeds}["recent"] == 2
    with Store(cfg.state_db) as store:  # a month later the same inputs leave it empty
        report = pipeline.run_once(cfg, store, datetime(2022, 11, 22, tzinfo=UTC))
    assert {f.name: f.entries for f in report.feeds}["recent"] == 0
    assert _ids(ws.out / "recent.atom") == []


def test_an_empty_feed_is_dated_when_it_emptied_not_1970(tmp_path: Path) -> None:
    """RFC 4287 gives every feed an ``updated``: the instant it last changed. A feed that loses
    its last entry is dated by that run, and keeps that date (and its bytes) while it stays
    empty; a feed that never had an entry is dated when it was first written. An upgrade
    mends a feed an older version dated 1970-01-01."""
    ws = make_workspace(tmp_path)
    _with_feeds(
        ws,
        '[[feeds]]\nname = "recent"\ntitle = "Last ten days"\nmax_age = "10d"\n'
        '[[feeds]]\nname = "none"\ntitle = "Nothing matches"\n'
        '[feeds.include]\nkeywords = ["no article says this"]\n',
    )
    cfg = config_mod.load(ws.config)

    def run(now: datetime) -> None:
        with Store(cfg.state_db) as store:
            pipeline.run_once(cfg, store, now)

    def updated(name: str) -> tuple[str, str, int]:
        atom = etree.fromstring((ws.out / f"{name}.atom").read_bytes())
        rss = etree.fromstring((ws.out / f"{name}.rss").read_bytes())
        assert check_file(ws.out / f"{name}.atom") == []
        assert check_file(ws.out / f"{name}.rss") == []
        return (
            atom.findtext("{http://www.w3.org/2005/Atom}updated") or "",
            rss.findtext("channel/lastBuildDate") or "",
            len(json.loads((ws.out / f"{name}.json").read_bytes())["items"]),
        )

    first, emptied, later = (
        datetime(2022, 10, 22, tzinfo=UTC),
        datetime(2022, 11, 22, 8, 30, tzinfo=UTC),
        datetime(2022, 11, 25, tzinfo=UTC),
    )
    run(first)
    assert updated("none") == ("2022-10-22T00:00:00+00:00", format_datetime(first), 0)
    assert updated("recent")[0] != "2022-10-22T00:00:00+00:00"  # its newest entry's
    run(emptied)  # a month on, the same inputs leave "recent" empty
    assert _ids(ws.out / "recent.atom") == []
    assert updated("recent") == ("2022-11-22T08:30:00+00:00", format_datetime(emptied), 0)
    assert updated("none")[0] == "2022-10-22T00:00:00+00:00"
    files = {p: p.read_bytes() for p in ws.out.glob("*.*")}
    run(later)  # still empty: nothing moves
    assert {p: p.read_bytes() for p in ws.out.glob("*.*")} == files
    with sqlite3.connect(cfg.state_db) as db:
        dated = dict(db.execute("SELECT name, updated FROM feeds WHERE entries = 0"))
    assert dated == {"recent": "2022-11-22T08:30:00.000000Z", "none": "2022-10-22T00:00:00.000000Z"}

    # A state an older version wrote: its empty feeds recorded without a date, dated 1970.
    with sqlite3.connect(cfg.state_db) as db:
        db.execute("UPDATE feeds SET updated = NULL WHERE entries = 0")
    for name, when in (("recent", emptied), ("none", first)):
        for path in ws.out.glob(f"{name}.*"):
            old = path.read_bytes()
            old = old.replace(when.isoformat().encode(), b"1970-01-01T00:00:00+00:00")
            old = old.replace(format_datetime(when).encode(), b"Thu, 01 Jan 1970 00:00:00 +0000")
            path.write_bytes(old)
    assert updated("none")[0] == updated("recent")[0] == "1970-01-01T00:00:00+00:00"
    run(later)
    assert updated("recent")[0] == updated("none")[0] == "2022-11-25T00:00:00+00:00"


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        ('file = "../escape.atom"', "feeds[0].file: '../escape.atom' would leave output_dir"),
        ('file = "/etc/cron.d/x.atom"', "feeds[0].file: '/etc/cron.d/x.atom' is not relative"),
        ('file = "a/../../x.atom"', "feeds[0].file: 'a/../../x.atom' would leave output_dir"),
        ('file = "a\\\\x.atom"', "feeds[0].file: 'a\\\\x.atom' has a backslash"),
        ('file = "archive/x.atom"', "feeds[0].file: 'archive/x.atom' is reserved"),
        ('file = "x.xml"', "feeds[0].file: 'x.xml' must end in '.atom'"),
        ('file = "VOA.atom"', "feeds[0].file: 'VOA.atom' is already written by sources[0]"),
        ('sources = ["vao"]', "feeds[0].sources[0]: no source 'vao'; known: voa, dw, aljazeera"),
        ('include = { patterns = ["(unclosed"] }', "feeds[0].include.patterns: [0] '(unclosed'"),
        ('script = "zh-XX"', "feeds[0].script: unknown script 'zh-XX'; known: zh-Hans"),
        ('formats = ["rss"]', "feeds[0].formats: must include 'atom'"),
        ('max_age = "soon"', "feeds[0].max_age: must be seconds"),
        ('name = "dw"', "feeds[0].name: 'dw' is already used by sources[1]"),
    ],
)
def test_check_rejects_bad_feeds(ws: Workspace, feed: str, message: str) -> None:
    body = f'[[feeds]]\ntitle = "t"\n{feed}\n'
    if "name =" not in feed:
        body = body.replace("[[feeds]]\n", '[[feeds]]\nname = "topic"\n')
    _with_feeds(ws, body)
    proc = ws.cli("check")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr


def test_run_refuses_a_feed_file_outside_the_output_folder(ws: Workspace) -> None:
    _with_feeds(ws, '[[feeds]]\nname = "t"\ntitle = "t"\nfile = "../t.atom"\n')
    proc = ws.cli("run")
    assert proc.returncode == 2
    assert "feeds[0].file: '../t.atom' would leave output_dir" in proc.stderr
    assert not ws.out.exists() and not (ws.root / "t.atom").exists()


def test_check_finds_a_symlink_out_of_the_output_folder(ws: Workspace, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ws.out.mkdir()
    (ws.out / "topics").symlink_to(outside)
    _with_feeds(ws, '[[feeds]]\nname = "t"\ntitle = "t"\nfile = "topics/t.atom"\n')
    proc = ws.cli("check")
    assert proc.returncode == 2
    assert "feeds[0].file: 'topics/t.atom' leads to" in proc.stderr
    report = ws.run_json(expect=3)
    assert any("leads outside the output folder" in e for e in report["errors"])
    assert list(outside.iterdir()) == []


# -- script variants ---------------------------------------------------------------------------

VARIANTS = """
[[feeds]]
name = "all-tw"
title = "全部 (臺灣正體)"
script = "zh-TW"

[[feeds]]
name = "all-hant"
title = "全部 (繁體)"
script = "zh-Hant"
"""


def test_script_variants_convert_text_only(ws: Workspace) -> None:
    _with_feeds(ws, VARIANTS)
    ws.run_json()
    plain = feedparser.parse((ws.out / "all.atom").read_bytes())
    tw = feedparser.parse((ws.out / "all-tw.atom").read_bytes())
    assert tw.feed.language == "zh-TW"
    assert feedparser.parse((ws.out / "all-hant.atom").read_bytes()).feed.language == "zh-Hant"
    assert json.loads((ws.out / "all-tw.json").read_bytes())["language"] == "zh-TW"
    assert "<language>zh-TW</language>" in (ws.out / "all-tw.rss").read_text(encoding="utf-8")
    assert [e.id for e in tw.entries] == [e.id for e in plain.entries]
    assert (
        tw.entries[0].title == "美俄防長在烏克蘭戰火繼續之際通電話，莫斯科放口風對談判抱持開放態度"
    )
    tag = re.compile(r"<[^>]*>")
    for before, after in zip(plain.entries, tw.entries, strict=True):
        assert after.link == before.link
        assert [ln.href for ln in after.get("links", [])] == [
            ln.href for ln in before.get("links", [])
        ]
        old, new = before.content[0].value, after.content[0].value
        assert tag.findall(new) == tag.findall(old)  # every tag and URL byte for byte
        assert new != old and "乌克兰" not in new and "烏克蘭" in new
    for path in ws.out.glob("all-*.*"):
        assert check_file(path) == []


def _voa_item(folder: Path, n: int, when: datetime, text: str, title: str | None = None) -> Path:
    """A VOA mirror archive file (the seeds' container) with a made-up article ``n``."""
    path = folder / f"{n:03d}.txt"
    path.write_text(
        f"<!--{int(when.timestamp() * 1000)}-->\n"
        f"[{title or f'第{n}篇 测试文章'}](https://www.voachinese.com/a/test-{n}/{7000000 + n}.html)\n"
        f"------\n\n<div><i>{format_datetime(when, usegmt=True)}</i></div>"
        f"<p>{text}</p><p>这是第{n}篇用来测试的文章，内容与其他文章都不一样。</p>\n",
        encoding="utf-8",
    )
    return path


def test_phrase_level_taiwan_vocabulary(tmp_path: Path) -> None:
    voa = tmp_path / "voa"
    voa.mkdir()
    _voa_item(voa, 1, datetime(2024, 5, 1, tzinfo=UTC),
              '他用<a href="https://example.org/软件">软件</a>和鼠标在网络上发布信息。'
              '<img src="https://example.org/a.jpg" alt="软件截图">')  # fmt: skip
    (tmp_path / "config.toml").write_text(
        f'base_url = "{BASE}"\noutput_dir = "out"\nstate_db = "s.sqlite3"\n'
        '[[sources]]\nname = "voa"\npath = "voa"\nadapter = "voa"\n'
        '[[feeds]]\nname = "tw"\ntitle = "tw"\nscript = "zh-TW"\n'
        '[[feeds]]\nname = "hk"\ntitle = "hk"\nscript = "zh-HK"\n',
        encoding="utf-8",
    )
    Workspace(tmp_path).run_json()
    tw = feedparser.parse((tmp_path / "out" / "tw.atom").read_bytes()).entries[0]
    link = '<a href="https://example.org/%E8%BD%AF%E4%BB%B6" rel="noopener noreferrer">'
    assert f"他用{link}軟體</a>和滑鼠在網路上釋出資訊。" in tw.content[0].value
    assert 'alt="软件截图"' in tw.content[0].value  # markup, attributes included, untouched
    hk = feedparser.parse((tmp_path / "out" / "hk.atom").read_bytes()).entries[0]
    assert f"{link}軟件</a>和鼠標在網絡上發佈信息" in hk.content[0].value


def _bbc_traditional(tmp_path: Path, config: str) -> None:
    """Run on the Traditional BBC fixture as source "bbc", with ``config`` after its table."""
    src = tmp_path / "bbc"
    src.mkdir()
    shutil.copy(Path(__file__).parent / "data/generic/generic-bbc-traditional.txt", src)
    (tmp_path / "config.toml").write_text(
        f'base_url = "{BASE}"\noutput_dir = "out"\nstate_db = "s.sqlite3"\n'
        '[[sources]]\nname = "bbc"\npath = "bbc"\nadapter = "generic"\n' + config,
        encoding="utf-8",
    )
    Workspace(tmp_path).run_json()


def test_traditional_entries_to_simplified(tmp_path: Path) -> None:
    _bbc_traditional(tmp_path, '[[feeds]]\nname = "hans"\ntitle = "hans"\nscript = "zh-Hans"\n')
    original = feedparser.parse((tmp_path / "out" / "bbc.atom").read_bytes())
    hans = feedparser.parse((tmp_path / "out" / "hans.atom").read_bytes())
    assert original.entries[0].get("language", original.feed.language) == "zh-Hant"
    assert hans.feed.language == "zh-Hans"
    assert original.entries[0].title == "英國首相特拉斯宣佈辭職 執政僅45天"
    assert hans.entries[0].title == "英国首相特拉斯宣布辞职 执政仅45天"
    assert hans.entries[0].link == original.entries[0].link


# -- RFC 5005 archives -------------------------------------------------------------------------


def _archive_setup(tmp_path: Path) -> tuple[Path, Path]:
    voa = tmp_path / "voa"
    voa.mkdir()
    (tmp_path / "config.toml").write_text(
        f'base_url = "{BASE}"\noutput_dir = "out"\nstate_db = "s.sqlite3"\n'
        "[output]\nmax_entries = 2\narchive = true\n"
        '[[sources]]\nname = "voa"\npath = "voa"\nadapter = "voa"\n',
        encoding="utf-8",
    )
    return tmp_path / "config.toml", voa


DAY1 = datetime(2024, 3, 1, 8, tzinfo=UTC)


def _walk(out: Path, name: str) -> list[str]:
    """Every entry id reachable from the feed, following prev-archive to the end."""
    path, ids, seen = out / f"{name}.atom", [], set()
    while True:
        parsed = feedparser.parse(path.read_bytes())
        ids += [e.id for e in parsed.entries]
        prev = [ln.href for ln in parsed.feed.links if ln.rel == "prev-archive"]
        if not prev:
            return ids
        assert prev[0] not in seen
        seen.add(prev[0])
        path = out / prev[0].removeprefix(BASE)


LANGUAGE_SAMPLES = [
    # (text, what detect says): Chinese in either script, whatever else is mixed in; other
    # scripts and English with typographic quotes are not Chinese; too little to tell is None.
    ("美国总统拜登星期六在白宫就经济问题发表讲话，强调通货膨胀正在放缓。", "zh-Hans"),
    ("這是一篇繁體中文的文章，討論臺灣的經濟發展與對外貿易關係。", "zh-Hant"),
    (
        "美国商务部周五公布的数据显示，2022年第三季度GDP增长2.6%，高于预期的2.4%。"
        "Commerce Department data: GDP grew 2.6% in Q3 2022.",
        "zh-Hans",
    ),
    (
        "We’ve been “clear,” she said. “I’m resigning as leader of the Conservative Party.” "
        "Tory MPs’ reaction was swift: “It’s over,” one said.",
        "",
    ),
    (
        "Забастовки на нефтеперерабатывающих заводах Франции вошли в третью неделю, "
        "очереди на заправках растут.",
        "",
    ),
    (
        "日本の首相は月曜日、東京で記者会見を開き、新しい経済対策を発表しました。"
        "これは物価高に対応するもので、家計への支援が中心となります。政府は来月にも補正予算案を"
        "国会に提出する方針です。",
        "",
    ),
    (
        "한국 정부는 월요일 새로운 경제 대책을 발표했습니다. 이는 물가 상승에 대응하기 위한 "
        "것으로 가계 지원이 중심입니다. 정부는 다음 달 추가 경정 예산안을 제출할 방침입니다.",
        "",
    ),
    ("短讯", None),
    ("Short note.", None),
]


@pytest.mark.parametrize(("text", "told"), LANGUAGE_SAMPLES, ids=range(len(LANGUAGE_SAMPLES)))
def test_chinese_is_told_from_other_languages(text: str, told: str | None) -> None:
    assert script.detect(text) == told


def test_a_source_lang_in_config_wins_over_the_detected_script(tmp_path: Path) -> None:
    """The script is told from the cleaned text unless config.toml names the source's lang."""
    _bbc_traditional(tmp_path, 'lang = "zh-HK"\n')
    feed = feedparser.parse((tmp_path / "out" / "bbc.atom").read_bytes())
    assert feed.entries[0].get("language", feed.feed.language) == "zh-HK"


def test_archives_keep_every_entry_reachable_and_never_change(tmp_path: Path) -> None:
    ws, out, voa = _three_days_published(tmp_path)
    assert len(_ids(out / "voa.atom")) == 3  # two in the window, one waiting for a page
    assert not (out / "archive").exists()
    for n in (4, 5):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    ws.run_json()
    page1 = out / "archive" / "voa" / "1.atom"
    assert _titles(page1) == ["第2篇 测试文章", "第1篇 测试文章"]
    assert _titles(out / "voa.atom") == ["第5篇 测试文章", "第4篇 测试文章", "第3篇 测试文章"]
    first = page1.read_bytes()
    for n in (6, 7, 8):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    _voa_item(voa, 1, DAY1 + timedelta(days=1), "第1天的新闻，已更正。")  # an archived entry edited
    ws.run_json()
    assert page1.read_bytes() == first  # archive pages never change once written
    assert sorted(p.name for p in (out / "archive" / "voa").iterdir()) == [
        "1.atom", "2.atom", "3.atom",
    ]  # fmt: skip
    assert _titles(out / "voa.atom") == ["第8篇 测试文章", "第7篇 测试文章"]
    walked = _walk(out, "voa")
    assert len(walked) == len(set(walked)) == 8  # every entry once, newest first
    everything = _ids(out / "all.atom") + [
        i for p in (out / "archive" / "all").iterdir() for i in _ids(p)
    ]
    assert sorted(everything) == sorted(walked)
    for page in (out / "archive" / "voa").iterdir():
        data = page.read_bytes()
        assert check_feed(data) == []
        root = feedparser.parse(data).feed
        assert [ln.href for ln in root.links if ln.rel == "current"] == [BASE + "voa.atom"]
        assert b"<fh:archive/>" in data
        assert b'xmlns:fh="http://purl.org/syndication/history/1.0"' in data
    assert b"<fh:archive/>" not in (out / "voa.atom").read_bytes()
    assert check_feed((out / "voa.atom").read_bytes()) == []


def test_retention_decides_how_far_back_archives_go(tmp_path: Path) -> None:
    config, voa = _archive_setup(tmp_path)
    ws, out = Workspace(tmp_path), tmp_path / "out"
    for n in range(1, 9):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    ws.run_json()
    pages = out / "archive" / "voa"
    assert sorted(p.name for p in pages.iterdir()) == ["1.atom", "2.atom", "3.atom"]
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            "[[sources]]", "[retention]\nmax_items_per_source = 4\n\n[[sources]]"
        ),
        encoding="utf-8",
    )
    report = ws.run_json()
    assert report["retention_removed"] == 4
    # Pages 1 and 2 held entries 1-4 only: gone. Page 3 (entries 5, 6) stays as it was.
    assert sorted(p.name for p in pages.iterdir()) == ["3.atom"]
    for n in (9, 10, 11, 12):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    ws.run_json()
    # Retention now keeps 9-12: page 3 empties and goes; the new page takes a new number, so a
    # page's URL never names two different documents.
    assert sorted(p.name for p in pages.iterdir()) == ["4.atom"]
    assert _titles(pages / "4.atom") == ["第10篇 测试文章", "第9篇 测试文章"]
    assert [_titles(out / "voa.atom"), len(_walk(out, "voa"))] == [
        ["第12篇 测试文章", "第11篇 测试文章"], 4,
    ]  # fmt: skip


def test_pages_left_by_a_deleted_state_are_never_overwritten(tmp_path: Path) -> None:
    """The state database deleted, its archive pages still published: the next run numbers
    its pages after them (RFC 5005: an archive document never changes), says so once, and
    the chain it starts holds every entry."""
    ws, out, voa = _three_days_published(tmp_path)
    for n in (4, 5, 6, 7):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    ws.run_json()
    pages = out / "archive" / "voa"
    before = {p.name: p.read_bytes() for p in pages.iterdir()}
    assert sorted(before) == ["1.atom", "2.atom"]
    (tmp_path / "s.sqlite3").unlink()
    for n in (8, 9):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    merged, warning = ws.run_json()["warnings"]  # one for each feed: all.atom archives too
    assert merged.startswith(f"{out / 'archive' / 'all'}: holds archive pages up to 2.atom")
    assert warning.startswith(f"{pages}: holds archive pages up to 2.atom that the state")
    assert "new pages of feed 'voa' are numbered from 3" in warning
    for name, data in before.items():
        assert (pages / name).read_bytes() == data  # the old pages, untouched
    assert sorted(p.name for p in pages.iterdir()) == [
        "1.atom", "2.atom", "3.atom", "4.atom", "5.atom",
    ]  # fmt: skip
    walked = _walk(out, "voa")  # the feed -> 5 -> 4 -> 3: the new chain, and all of it
    assert len(walked) == len(set(walked)) == 9
    assert _titles(pages / "3.atom") == ["第2篇 测试文章", "第1篇 测试文章"]
    _voa_item(voa, 10, DAY1 + timedelta(days=10), "第10天的新闻。")
    _voa_item(voa, 11, DAY1 + timedelta(days=11), "第11天的新闻。")
    assert ws.run_json()["warnings"] == []  # said once: the state knows the new pages
    assert (pages / "6.atom").exists()


# -- WebSub ------------------------------------------------------------------------------------


@pytest.fixture
def hub() -> Iterator[FeedServer]:
    server = FeedServer()
    server.start()
    server.route("/hub", Route(status=204))
    yield server
    server.stop()


def test_websub_advertises_the_hub_and_pings_it_on_change(ws: Workspace, hub: FeedServer) -> None:
    _with_feeds(ws, "")
    text = ws.config.read_text(encoding="utf-8").replace(
        "[output]\n", f'[output]\nhub = "{hub.base}/hub"\n'
    )
    ws.config.write_text(text, encoding="utf-8")
    ws.run_json()
    pings = [parse_qs(r.body.decode()) for r in hub.hits("/hub")]
    assert all(p["hub.mode"] == ["publish"] for p in pings)
    pinged = sorted(p["hub.url"][0] for p in pings)
    assert pinged == sorted(
        f"{BASE}{n}.{f}" for n in ("all", "voa", "dw", "aljazeera") for f in ("atom", "rss", "json")
    )
    atom = feedparser.parse((ws.out / "all.atom").read_bytes())
    assert [ln.href for ln in atom.feed.links if ln.rel == "hub"] == [f"{hub.base}/hub"]
    rss = feedparser.parse((ws.out / "all.rss").read_bytes())
    assert [ln.href for ln in rss.feed.links if ln.rel == "hub"] == [f"{hub.base}/hub"]
    assert json.loads((ws.out / "all.json").read_bytes())["hubs"] == [
        {"type": "WebSub", "url": f"{hub.base}/hub"}
    ]
    ws.run_json()  # nothing changed: no ping
    assert len(hub.hits("/hub")) == len(pings)
    # One new article changes all, voa and their twins: exactly those are pinged.
    _voa_item(ws.root / "seeds" / "voa", 99, datetime(2023, 1, 1, tzinfo=UTC), "新的文章。")
    ws.run_json()
    new = sorted(parse_qs(r.body.decode())["hub.url"][0] for r in hub.hits("/hub")[len(pings) :])
    assert new == sorted(f"{BASE}{n}.{f}" for n in ("all", "voa") for f in ("atom", "rss", "json"))


def test_a_failing_hub_is_a_warning_not_a_failure(ws: Workspace, hub: FeedServer) -> None:
    hub.route("/hub", Route(status=500))
    text = ws.config.read_text(encoding="utf-8").replace(
        "[output]\n", f'[output]\nhub = "{hub.base}/hub"\n'
    )
    ws.config.write_text(text, encoding="utf-8")
    report = ws.run_json()  # exit 0: the feeds were written
    assert report["warnings"] and all("answered HTTP 500" in w for w in report["warnings"])
    assert (ws.out / "all.atom").exists()


def _three_days_published(tmp_path: Path) -> tuple[Workspace, Path, Path]:
    """The archive setup with three days of VOA news taken in: (workspace, output, folder)."""
    _, voa = _archive_setup(tmp_path)
    ws = Workspace(tmp_path)
    for n in (1, 2, 3):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    ws.run_json()
    return ws, tmp_path / "out", voa


def test_files_of_feeds_and_formats_taken_out_of_config_are_deleted(tmp_path: Path) -> None:
    """A source taken out of config.toml takes its feed's files and archive pages with it, and
    a format taken out of a feed its file: a feed that stopped is not served as if it were
    current. Only files the tool recorded writing go; one recorded by an older version (no
    list of files) is taken to have the default names."""
    config, voa = _archive_setup(tmp_path)
    shutil.copytree(SEEDS / "dw", tmp_path / "dw")
    shutil.copytree(SEEDS / "aljazeera", tmp_path / "aj")
    head, _, voa_source = config.read_text(encoding="utf-8").partition("[[sources]]")
    others = (
        '[[sources]]\nname = "dw"\npath = "dw"\nadapter = "dw"\n'
        '[[sources]]\nname = "aj"\npath = "aj"\nadapter = "aljazeera"\n'
    )
    config.write_text(f"{head}[[sources]]{voa_source}{others}", encoding="utf-8")
    ws, out = Workspace(tmp_path), tmp_path / "out"
    for n in (1, 2, 3, 4, 5):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    ws.run_json()
    assert (out / "archive" / "voa" / "1.atom").exists()
    (out / "notes.txt").write_text("mine", encoding="utf-8")

    config.write_text(head + others, encoding="utf-8")  # voa taken out
    report = ws.run_json()
    assert not any((out / f"voa.{fmt}").exists() for fmt in ("atom", "rss", "json"))
    assert not (out / "archive" / "voa").exists()
    assert [w for w in report["warnings"] if "voa" in w] == [
        f"feed 'voa' is no longer in config.toml: deleted voa.atom, voa.rss, voa.json, "
        f"archive/voa/1.atom from {out}"
    ]
    status = json.loads(ws.cli("status", "--json", check=True).stdout)
    assert "voa" not in {f["name"] for f in status["feeds"]}
    assert (out / "notes.txt").exists() and (out / "all.json").exists()

    config.write_text(head.replace("[output]\n", '[output]\nformats = ["atom"]\n') + others,
                      encoding="utf-8")  # fmt: skip
    ws.run_json()
    assert sorted(p.name for p in out.glob("*.*")) == [
        "aj.atom", "all.atom", "dw.atom", "feed.xsl", "feeds.opml", "notes.txt",
    ]  # fmt: skip

    # A [[feeds]] entry renamed with its file kept: the file is the new feed's, and stays.
    tech = '[[feeds]]\nname = "{}"\ntitle = "t"\nfile = "tech.atom"\n'
    atom_only = head.replace("[output]\n", '[output]\nformats = ["atom"]\n')
    config.write_text(atom_only + others + tech.format("tech"), encoding="utf-8")
    ws.run_json()
    config.write_text(atom_only + others + tech.format("technology"), encoding="utf-8")
    ws.run_json()
    assert (out / "tech.atom").exists()
    # A file that cannot be deleted is said, and tried again by the next run.
    config.write_text(atom_only + others, encoding="utf-8")
    (out / "tech.atom").unlink()
    (out / "tech.atom").mkdir()
    (out / "tech.atom" / "x").write_text("x", encoding="utf-8")
    assert any("tech.atom: cannot delete it" in w for w in ws.run_json()["warnings"])
    shutil.rmtree(out / "tech.atom")
    (out / "tech.atom").write_text("old", encoding="utf-8")
    assert (
        f"feed 'technology' is no longer in config.toml: deleted tech.atom from {out}"
        in (ws.run_json()["warnings"])
    )

    with sqlite3.connect(tmp_path / "s.sqlite3") as db:  # as an older version recorded it
        db.execute("UPDATE feeds SET files = NULL WHERE name = 'aj'")
    dw_only = others.partition('[[sources]]\nname = "aj"')[0]
    config.write_text(head.replace("[output]\n", '[output]\nformats = ["atom"]\n') + dw_only,
                      encoding="utf-8")  # fmt: skip
    report = ws.run_json()
    assert not (out / "aj.atom").exists() and (out / "dw.atom").exists()
    assert (
        f"feed 'aj' is no longer in config.toml: deleted aj.atom from {out}" in report["warnings"]
    )


def test_a_daemon_started_before_an_edit_does_not_retire_the_new_feeds(ws: Workspace) -> None:
    """A daemon keeps the config.toml it started with; a one-shot run with the edited file
    added a feed. The daemon's next batch must not delete that feed's files."""
    started_with = config_mod.load(ws.config)
    text = ws.config.read_text(encoding="utf-8")
    ws.config.write_text(text + '[[feeds]]\nname = "extra"\ntitle = "x"\n', encoding="utf-8")
    ws.cli("run", check=True)
    assert (ws.out / "extra.atom").exists()
    with Store(started_with.state_db) as store:
        pipeline.run_once(started_with, store, datetime.now(UTC))
    assert (ws.out / "extra.atom").exists()
    ws.config.write_text(text, encoding="utf-8")  # taken out again: a run with it retires it
    ws.cli("run", check=True)
    assert not (ws.out / "extra.atom").exists()


def test_an_archive_page_that_cannot_be_written_loses_no_entry(tmp_path: Path) -> None:
    """The page's records go back with the failed write: its entries stay in the current
    feed, and the next run (the obstacle gone) archives them on a page that exists."""
    ws, out, voa = _three_days_published(tmp_path)
    (out / "archive").mkdir()
    (out / "archive" / "voa").write_text("not a folder", encoding="utf-8")  # blocks the page
    for n in (4, 5):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    report = ws.run_json(expect=3)
    assert any("archive/voa" in e for e in report["errors"])
    assert len(set(_walk(out, "all"))) == 5  # the other feeds were written as usual
    (out / "archive" / "voa").unlink()
    ws.run_json()
    walked = _walk(out, "voa")
    assert len(walked) == len(set(walked)) == 5  # every entry reachable, none lost


def test_a_feed_that_cannot_be_put_in_place_loses_no_entry(tmp_path: Path) -> None:
    """Files are staged and renamed into place together at the end of the run. A feed whose
    rename fails (here the name of its new archive page is taken by a folder) is reported,
    the page's records are taken back, the other feeds are published, and the next run (the
    obstacle gone) archives those entries on a page that exists."""
    ws, out, voa = _three_days_published(tmp_path)
    blocker = out / "archive" / "voa" / "1.atom"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_text("a folder in the way", encoding="utf-8")
    for n in (4, 5):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    report = ws.run_json(expect=3)
    assert [e for e in report["errors"] if "archive/voa/1.atom" in e], report["errors"]
    assert len(set(_walk(out, "all"))) == 5  # the other feeds were written as usual
    assert not list(out.rglob("*.tmp"))  # no temporary file left behind
    shutil.rmtree(blocker)
    ws.run_json()
    walked = _walk(out, "voa")
    assert len(walked) == len(set(walked)) == 5  # every entry reachable, none lost


def test_an_archive_page_put_in_place_stays_when_its_feed_fails(tmp_path: Path) -> None:
    """The page is renamed into place, then the feed's current document cannot be (a folder
    has its name): the page stays published (readers may have fetched it; it is never
    rewritten), the feed is reported, and the next run publishes the current document with
    every entry reachable through the page."""
    ws, out, voa = _three_days_published(tmp_path)
    (out / "voa.atom").unlink()
    (out / "voa.atom").mkdir()
    (out / "voa.atom" / "keep").write_text("a folder in the way", encoding="utf-8")
    for n in (4, 5):
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    report = ws.run_json(expect=3)
    assert [e for e in report["errors"] if "voa.atom" in e], report["errors"]
    page = out / "archive" / "voa" / "1.atom"
    published = page.read_bytes()
    with Store(tmp_path / "s.sqlite3") as store:  # still recorded: its number is spent
        assert store.archive_pages("voa") == [1]
    shutil.rmtree(out / "voa.atom")
    for n in (6, 7):  # more to archive: a page cut again would hold other entries
        _voa_item(voa, n, DAY1 + timedelta(days=n), f"第{n}天的新闻。")
    ws.run_json()
    assert page.read_bytes() == published  # the page was not rewritten
    walked = _walk(out, "voa")
    assert len(walked) == len(set(walked)) == 7  # every entry reachable, none lost


def test_source_links_name_only_files_that_exist(ws: Workspace) -> None:
    """Per-source feeds in Atom only, a configured feed in all three formats: its RSS and
    JSON entries name their home feed by the Atom file, the one that is published."""
    text = ws.config.read_text(encoding="utf-8")
    ws.config.write_text(text.replace("[output]\n", '[output]\nformats = ["atom"]\n', 1))
    _with_feeds(ws, '[[feeds]]\nname = "mix"\ntitle = "Mix"\nformats = ["atom", "rss", "json"]\n')
    ws.run_json()
    assert not (ws.out / "voa.rss").exists() and not (ws.out / "voa.json").exists()
    rss = etree.fromstring((ws.out / "mix.rss").read_bytes())
    urls = {s.get("url") for s in rss.iter("source")}
    doc = json.loads((ws.out / "mix.json").read_bytes())
    urls |= {i["_aggregator"]["source"]["feed_url"] for i in doc["items"]}
    assert urls == {f"https://news.example.org/feeds/{n}.atom" for n in ("voa", "dw", "aljazeera")}


def test_a_feed_whose_entries_did_not_change_is_not_rendered_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An article too old for a feed's window changes its source but not what the feed shows:
    the feed is not rendered again (the same inputs would give the same bytes). A newer
    article changes the entries: rendered and written."""
    voa = tmp_path / "voa"
    voa.mkdir()
    for n in (1, 2, 3):
        _voa_item(voa, n, DAY1 + timedelta(days=10 + n), f"第{n}天的新闻。")
    (tmp_path / "config.toml").write_text(
        f'base_url = "{BASE}"\noutput_dir = "out"\nstate_db = "s.sqlite3"\n'
        '[output]\nmax_entries = 2\n[[sources]]\nname = "voa"\npath = "voa"\nadapter = "voa"\n',
        encoding="utf-8",
    )
    cfg = config_mod.load(tmp_path / "config.toml")
    rendered: list[str] = []
    for fmt, render in list(writer.RENDER.items()):

        def counting(*args: Any, _fmt: str = fmt, _render: Any = render, **kw: Any) -> bytes:
            rendered.append(f"{args[0].name}.{_fmt}")
            return _render(*args, **kw)  # type: ignore[no-any-return]

        monkeypatch.setitem(writer.RENDER, fmt, counting)

    def run() -> dict[str, bool]:
        rendered.clear()
        with pipeline.exclusive(cfg), Store(cfg.state_db) as store:
            report = pipeline.run_once(cfg, store, datetime.now(UTC))
            store.commit()
        return {f.name: f.written for f in report.feeds}

    assert run() == {"all": True, "voa": True}
    before = (tmp_path / "out" / "voa.atom").read_bytes()
    _voa_item(voa, 4, DAY1, "很久以前的新闻。")  # older than both entries shown
    assert run() == {"all": False, "voa": False}
    assert rendered == []
    assert (tmp_path / "out" / "voa.atom").read_bytes() == before
    _voa_item(voa, 5, DAY1 + timedelta(days=30), "最新的新闻。")
    assert run() == {"all": True, "voa": True}
    assert sorted(rendered) == [
        "all.atom",
        "all.json",
        "all.rss",
        "voa.atom",
        "voa.json",
        "voa.rss",
    ]
    assert "最新的新闻" in (tmp_path / "out" / "voa.atom").read_text(encoding="utf-8")
