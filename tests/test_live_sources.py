"""URL sources end to end, against a real HTTP server on 127.0.0.1 (tests/feedserver.py).

Each test configures sources in a real config.toml, runs ``pipeline.run_once`` (or the CLI as
a subprocess) with a real SQLite file, and asserts three things: what was stored (entries in
the written feeds, the fetch state), what was reported (the source's outcome and reason), and
that the other sources went on. Time is passed in (``now``), so backoff and Retry-After are
tested without sleeping; only the deadline tests take real seconds (a few).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import sqlite3
import ssl
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import brotli
import feedparser
import pytest
import trustme

from aggregator import config as config_mod
from aggregator.dedupe import mint_atom_id
from aggregator.fetch import http
from aggregator.model import RunReport, SourceReport
from aggregator.pipeline import read_feed as _read_feed
from aggregator.pipeline import run_once
from aggregator.store import Store
from tests import livefeeds
from tests.feedserver import FeedServer, Route, gzip_bomb

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
RSS = {"content-type": "application/rss+xml; charset=utf-8"}
ATOM = {"content-type": "application/atom+xml"}
JSON = {"content-type": "application/feed+json"}


class Setup:
    """A workspace: config.toml with the given sources, a state database, an output folder."""

    def __init__(
        self, root: Path, sources: list[dict[str, Any]], fetch: str = "", top: str = ""
    ) -> None:
        self.root = root
        lines = [
            'base_url = "https://news.example.org/feeds/"',
            'output_dir = "out"',
            'state_db = "state.sqlite3"',
            top,
            "[fetch]",
            "timeout = 5",
            fetch,
        ]
        for s in sources:
            lines.append("[[sources]]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in s.items())
        (root / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.config = config_mod.load(root / "config.toml")

    def run(self, now: datetime = NOW, **kwargs: Any) -> RunReport:
        with Store(self.config.state_db) as store:
            return run_once(self.config, store, now, **kwargs)

    def feed(self, name: str) -> Any:
        return feedparser.parse((self.root / "out" / f"{name}.atom").read_bytes())


def url_source(name: str, url: str, adapter: str = "auto", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "adapter": adapter, "allow_private": True, **extra}


def by_name(report: RunReport) -> dict[str, SourceReport]:
    return {s.name: s for s in report.sources}


# -- every format, read and cleaned like the archives ----------------------------------------


FORMATS = [
    # (name, document builder, headers, articles)
    ("rss2", lambda: livefeeds.rss2(livefeeds.voa()), RSS, livefeeds.voa),
    ("rss091", lambda: livefeeds.rss091(livefeeds.voa()), {"content-type": "text/xml"}, livefeeds.voa),
    ("rss1", lambda: livefeeds.rss1(livefeeds.voa()), {"content-type": "application/rdf+xml"}, livefeeds.voa),
    ("atom1", lambda: livefeeds.atom1(livefeeds.dw()), ATOM, livefeeds.dw),
    ("atom03", lambda: livefeeds.atom03(livefeeds.dw()), ATOM, livefeeds.dw),
    ("jsonfeed11", lambda: livefeeds.json_feed(livefeeds.aljazeera()), JSON, livefeeds.aljazeera),
    ("jsonfeed10", lambda: livefeeds.json_feed(livefeeds.aljazeera(), "1.0"), {"content-type": "application/json"}, livefeeds.aljazeera),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "build", "headers", "articles"), FORMATS, ids=[f[0] for f in FORMATS]
)
def test_each_feed_format_becomes_clean_entries(
    tmp_path: Path,
    server: FeedServer,
    name: str,
    build: Any,
    headers: dict[str, str],
    articles: Any,
) -> None:
    url = server.route(f"/{name}", Route(body=build(), headers=headers))
    setup = Setup(tmp_path, [url_source("live", url)])
    report = by_name(setup.run())["live"]
    expected = articles()
    assert report.error is None, report.error
    assert report.fetch is not None and report.fetch.outcome == "fetched"
    assert report.new == len(expected), report
    feed = setup.feed("live")
    # Titles as a reader sees them: runs of spaces folded (DW's seed title has two).
    assert {e.title for e in feed.entries} == {" ".join(a.title.split()) for a in expected}
    assert {e.link for e in feed.entries} == {a.link for a in expected}
    for entry in feed.entries:
        body = entry.content[0].value
        # The outlet's knowledge applied to feed entries as to archive files: promo, date line,
        # image proxy and notices gone.
        for boilerplate in ("获取更多RSS", "feedx.net", "images.weserv.nl", "版权声明", "<script"):
            assert boilerplate not in body, (name, boilerplate)
        article = next(a for a in expected if a.link == entry.link)
        published = datetime(*entry.published_parsed[:6], tzinfo=UTC)
        assert published == datetime.fromisoformat(article.date.replace("Z", "+00:00")).replace(
            microsecond=0
        )


def test_archive_and_live_feed_of_one_article_make_one_entry(
    tmp_path: Path, server: FeedServer
) -> None:
    (tmp_path / "seeds").mkdir()
    for p in (livefeeds.SEEDS / "voa").iterdir():
        (tmp_path / "seeds" / p.name).write_bytes(p.read_bytes())
    url = server.route("/voa.rss", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    setup = Setup(tmp_path, [
        {"name": "archive", "path": "seeds", "adapter": "voa"},
        url_source("live", url, adapter="voa"),
    ])  # fmt: skip
    report = by_name(setup.run())
    # Whichever is read first makes the entry; the other is another version of it.
    assert report["archive"].new + report["live"].new == 3
    assert report["archive"].files_read == report["live"].files_read == 3
    merged = setup.feed("all")
    assert len(merged.entries) == 3
    assert len({e.id for e in merged.entries}) == 3


def test_a_live_teaser_never_replaces_the_archived_full_text(
    tmp_path: Path, server: FeedServer
) -> None:
    """A feed's one-sentence description of an article the archive holds in full, dated
    later: the entry keeps the full text, its link and its dates. The feed's own article
    gets the name from RSS's "email (name)" author, and DW's tracking parameter is dropped."""
    (tmp_path / "seeds").mkdir()
    seed = livefeeds.SEEDS / "dw" / "001_214997b71d6f798a.txt"
    (tmp_path / "seeds" / seed.name).write_bytes(seed.read_bytes())
    doc = """<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>DW</title>
    <link>https://www.dw.com/zh/</link>
    <item><title>美俄就乌克兰召开安全对话</title>
    <link>https://www.dw.com/zh/a-60376336?maca=chi-rss-chi-all-1127-rdf</link>
    <author>noreply@dw.com (DW 中文)</author><pubDate>Mon, 10 Jan 2022 09:00:00 GMT</pubDate>
    <description>美国和俄罗斯周一将於瑞士日内瓦就乌克兰议题进行安全会谈，然而美俄双方会前都释出强硬态度。</description>
    </item>
    <item><title>德国总理朔尔茨：北溪二号可能受到制裁</title>
    <link>https://www.dw.com/zh/a-60381234?maca=chi-rss-chi-all-1127-rdf</link>
    <author>noreply@dw.com (DW 中文)</author><pubDate>Mon, 10 Jan 2022 10:00:00 GMT</pubDate>
    <description>德国总理朔尔茨周二表示，如果俄罗斯入侵乌克兰，北溪二号天然气管道项目可能受到制裁。</description>
    </item></channel></rss>""".encode()
    url = server.route("/dw.rss", Route(body=doc, headers=RSS))
    archive = {"name": "archive", "path": "seeds", "adapter": "dw"}
    Setup(tmp_path, [archive]).run()
    full = Setup(tmp_path, [archive]).feed("archive").entries[0]
    setup = Setup(tmp_path, [archive, url_source("live", url, adapter="dw")])
    report = by_name(setup.run(NOW + timedelta(hours=1)))
    assert report["live"].new == 1 and not report["live"].updated
    entries = {e.id: e for e in setup.feed("all").entries}
    assert len(entries) == 2
    kept = entries[full.id]
    assert kept.content[0].value == full.content[0].value  # all 16 paragraphs, the figures
    assert kept.content[0].value.count("<p>") >= 15
    assert (kept.title, kept.link, kept.updated) == (full.title, full.link, full.updated)
    other = next(e for i, e in entries.items() if i != full.id)
    assert other.link == "https://www.dw.com/zh/a-60381234"
    assert other.author == "DW 中文"


@pytest.mark.parametrize("archive_first", [True, False])
def test_a_linkless_archived_post_gets_the_live_feeds_link(
    tmp_path: Path, server: FeedServer, archive_first: bool
) -> None:
    """RSSHub's Al Jazeera posts are archived without their page's address; the same post from
    the live route has it. Whichever is read first, the one entry links the page as its
    ``alternate`` (not as a ``related`` copy), and the copy is not a second entry."""
    (tmp_path / "seeds").mkdir()
    seed = next((livefeeds.SEEDS / "aljazeera").glob("*.txt"))
    (tmp_path / "seeds" / seed.name).write_bytes(seed.read_bytes())
    post = livefeeds.aljazeera()
    url = server.route("/aj.rss", Route(body=livefeeds.rss2(post, "半岛电视台"), headers=RSS))
    archive = {"name": "archive", "path": "seeds", "adapter": "aljazeera"}
    live = url_source("live", url, adapter="aljazeera")
    Setup(tmp_path, [archive] if archive_first else [live]).run()
    setup = Setup(tmp_path, [archive, live])
    setup.run(NOW + timedelta(hours=1))
    entries = setup.feed("all").entries
    assert len(entries) == 1
    links = {(link.rel, link.href) for link in entries[0].links}
    assert ("alternate", post[0].link) in links
    assert not any(rel in ("related", "via") for rel, _ in links)


# -- conditional GET --------------------------------------------------------------------------


def test_etag_304_costs_nothing_and_rewrites_nothing(tmp_path: Path, server: FeedServer) -> None:
    url = server.route("/f", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, etag='"v1"'))
    setup = Setup(tmp_path, [url_source("live", url)])
    first = by_name(setup.run())["live"]
    assert first.new == 3
    feed_file = tmp_path / "out" / "live.atom"
    mtime = feed_file.stat().st_mtime_ns
    second = setup.run(NOW + timedelta(hours=1))
    live = by_name(second)["live"]
    assert live.fetch is not None and live.fetch.outcome == "not-modified"
    assert (live.new, live.updated, live.files_read) == (0, 0, 0)
    assert server.hits("/f")[-1].headers.get("if-none-match") == '"v1"'
    assert not any(f.written for f in second.feeds)
    assert feed_file.stat().st_mtime_ns == mtime


def test_a_scripted_run_loads_neither_rich_nor_httpx_command_line(
    tmp_path: Path, server: FeedServer
) -> None:
    """``run --json`` (cron, scripts) draws nothing, so it must not pay for rich, and httpx's
    own command-line client (click, rich, pygments) is never needed: together about a tenth of
    a second of every run, a tenth of a pass where every feed answers 304."""
    url = server.route("/f", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, etag='"v1"'))
    setup = Setup(tmp_path, [url_source("live", url)])
    probe = (
        "import contextlib, io, json, sys\n"
        "from aggregator import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    code = cli.main(['run', '--json', '--config', {str(setup.root / 'config.toml')!r}])\n"
        "report = json.loads(out.getvalue())\n"
        "print(json.dumps([code, report['sources'][0]['new'],\n"
        "                  sorted(m for m in ('rich', 'click', 'pygments', 'httpx') if m in sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [0, 3, ["httpx"]]
    assert len(server.hits("/f")) == 1


def test_http_feeds_never_load_the_ca_store(tmp_path: Path, server: FeedServer) -> None:
    """Loading the system's CA store costs ~40 ms of CPU a run: feeds over plain http (a local
    RSSHub, say) never need it."""
    url = server.route("/f", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url)])
    http._system_tls.cache_clear()
    assert by_name(setup.run())["live"].new == 3
    assert http._system_tls.cache_info().currsize == 0


def test_answers_not_read_for_a_feed_leave_the_connection_open(
    tmp_path: Path, server: FeedServer
) -> None:
    """A 304 (or a short error page) is read to its end, so the next source on the same host
    goes over the same connection: over https a new one would be a TLS handshake a feed."""
    sources = [
        url_source(f"f{n}", server.route(f"/f{n}", Route(body=livefeeds.rss2(livefeeds.voa()),
                                                         headers=RSS, etag=f'"e{n}"')))
        for n in range(3)
    ]  # fmt: skip
    gone = server.route("/gone", Route(status=404, body=b"<html>no such feed</html>" * 40))
    sources.append(url_source("gone", gone))
    setup = Setup(tmp_path, sources, fetch="concurrency = 1\nper_host = 1")
    setup.run()
    first = len(server.requests)
    report = by_name(setup.run(NOW + timedelta(days=1)))
    second = server.requests[first:]
    assert [report[f"f{n}"].fetch.outcome for n in range(3)] == ["not-modified"] * 3  # type: ignore[union-attr]
    assert "HTTP 404" in (report["gone"].error or "")
    assert len(second) == 4
    assert len({r.peer for r in second}) == 1, [(r.path, r.peer) for r in second]


def test_https_feeds_are_verified_and_their_connection_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over https: the certificate is checked against the system's CA store (SSL_CERT_FILE
    names one here), a feed signed by an unknown CA is refused with a reason, and several feeds
    on one host share one TLS connection."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_tls)
    server = FeedServer(tls=server_tls)
    server.start()
    try:
        sources = [
            url_source(f"f{n}", server.route(f"/f{n}", Route(body=livefeeds.rss2(livefeeds.voa()),
                                                             headers=RSS, etag=f'"e{n}"')))
            for n in range(3)
        ]  # fmt: skip
        setup = Setup(tmp_path, sources, fetch="concurrency = 1\nper_host = 1")
        untrusted = by_name(setup.run())
        assert all(
            "certificate is not trusted" in (untrusted[f"f{n}"].error or "") for n in range(3)
        )
        assert not server.requests  # no request went out over an unverified connection

        with ca.cert_pem.tempfile() as bundle:
            monkeypatch.setenv("SSL_CERT_FILE", bundle)
            first = by_name(setup.run(NOW + timedelta(days=1)))
            assert sum(first[f"f{n}"].new for n in range(3)) == 3  # the same 3 articles thrice
            assert len({r.peer for r in server.requests}) == 1
            # The CA store is loaded once per SSL_CERT_FILE, not once a run: a daemon's next
            # cycle reuses it.
            loaded = http._system_tls.cache_info().currsize
            setup.run(NOW + timedelta(days=2))
            assert http._system_tls.cache_info().currsize == loaded
    finally:
        server.stop()


def test_a_server_slower_than_five_seconds_is_waited_for_up_to_the_timeout(
    tmp_path: Path, server: FeedServer
) -> None:
    """The source's timeout is the one deadline: no shorter per-read limit of the HTTP
    library's own (httpx's default is 5 s) cuts off a slow but honest server."""
    url = server.route("/slow", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, delay=5.5))
    setup = Setup(tmp_path, [url_source("slow", url, timeout=15)])
    report = by_name(setup.run())
    assert report["slow"].error is None, report["slow"].error
    assert report["slow"].new == 3


def test_last_modified_is_sent_back(tmp_path: Path, server: FeedServer) -> None:
    url = server.route(
        "/f", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, last_modified=1_700_000_000)
    )
    setup = Setup(tmp_path, [url_source("live", url)])
    setup.run()
    live = by_name(setup.run(NOW + timedelta(hours=1)))["live"]
    assert server.hits("/f")[-1].headers.get("if-modified-since") == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert live.fetch is not None and live.fetch.outcome == "not-modified"


def test_validators_no_request_could_carry_are_not_sent_back(
    tmp_path: Path, server: FeedServer
) -> None:
    """An ETag and a Last-Modified holding a byte outside ASCII were kept and sent back, and
    httpx refused every later request to the feed ("not a fetchable URL"), run after run."""
    body = livefeeds.rss2(livefeeds.voa())
    odd = {**RSS, "etag": '"caf\u00e9"', "last-modified": "Tue, 14 Nov 2023 22:13:20 GMT \u00e9"}
    url = server.route("/f", Route(body=body, headers=odd))
    setup = Setup(tmp_path, [url_source("live", url)])
    assert by_name(setup.run())["live"].new == 3
    for hours in (1, 2):
        live = by_name(setup.run(NOW + timedelta(hours=hours)))["live"]
        assert live.fetch is not None and live.fetch.outcome == "fetched", live.fetch
        sent = server.hits("/f")[-1].headers
        assert sent.get("if-none-match") is None and sent.get("if-modified-since") is None
        # As an earlier version left it: the odd validators stored.
        with sqlite3.connect(tmp_path / "state.sqlite3") as db:
            db.execute("UPDATE fetch_state SET etag = ?, last_modified = ?",
                       (odd["etag"], odd["last-modified"]))  # fmt: skip


def test_same_bytes_again_are_not_parsed_again(tmp_path: Path, server: FeedServer) -> None:
    url = server.route(
        "/f", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS)
    )  # no validators
    setup = Setup(tmp_path, [url_source("live", url)])
    setup.run()
    live = by_name(setup.run(NOW + timedelta(hours=1)))["live"]
    assert live.fetch is not None and "same bytes" in live.fetch.detail
    assert live.files_read == 0


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_compressed_bodies(tmp_path: Path, server: FeedServer, encoding: str) -> None:
    raw = livefeeds.rss2(livefeeds.voa())
    packed = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}[encoding](raw)
    url = server.route("/f", Route(body=packed, headers={**RSS, "content-encoding": encoding}))
    setup = Setup(tmp_path, [url_source("live", url)])
    assert by_name(setup.run())["live"].new == 3
    assert encoding in server.hits("/f")[0].headers["accept-encoding"]


# -- redirects --------------------------------------------------------------------------------


def test_permanent_redirect_chain_moves_the_source(tmp_path: Path, server: FeedServer) -> None:
    final = server.route("/new", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    server.route("/mid", Route(status=308, headers={"location": "/new"}))
    url = server.route("/old", Route(status=301, headers={"location": server.base + "/mid"}))
    setup = Setup(tmp_path, [url_source("live", url)])
    live = by_name(setup.run())["live"]
    assert live.new == 3
    assert live.fetch is not None and live.fetch.moved_to == final
    setup.run(NOW + timedelta(hours=1))
    assert len(server.hits("/old")) == 1  # the second run went straight to the new URL
    assert len(server.hits("/new")) == 2
    # Said by `status` until config.toml is updated, not only by the run that learnt it.
    status = subprocess.run(
        [sys.executable, "-m", "aggregator", "status", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    (live_status,) = json.loads(status.stdout)["sources"]
    assert (live_status["moved_from"], live_status["moved_to"]) == (url, final)
    text = subprocess.run(
        [sys.executable, "-m", "aggregator", "status"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert f"moved: source live answers from {final}" in " ".join(text.stdout.split())
    Setup(tmp_path, [url_source("live", final)])  # the operator updates config.toml
    status = subprocess.run(
        [sys.executable, "-m", "aggregator", "status", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert json.loads(status.stdout)["sources"][0]["moved_to"] is None


def test_temporary_redirect_is_followed_but_not_remembered(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/new", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    url = server.route("/old", Route(status=302, headers={"location": "/new"}))
    setup = Setup(tmp_path, [url_source("live", url)])
    live = by_name(setup.run())["live"]
    assert live.new == 3 and live.fetch is not None and live.fetch.moved_to is None
    setup.run(NOW + timedelta(hours=1))
    assert len(server.hits("/old")) == 2


@pytest.mark.parametrize(
    ("routes", "reason"),
    [
        ({"/a": "/b", "/b": "/a"}, "redirect loop"),
        ({"/a": "ftp://127.0.0.1/feed.xml"}, "not an http(s) URL"),
        ({"/a": "file:///etc/passwd"}, "not an http(s) URL"),
        (
            {f"/a{'x' * i}" if i else "/a": f"/a{'x' * (i + 1)}" for i in range(8)},
            "more than 5 redirects",
        ),
    ],
    ids=["loop", "ftp", "file", "too-many"],
)
def test_bad_redirects_fail_with_a_reason(
    tmp_path: Path, server: FeedServer, routes: dict[str, str], reason: str
) -> None:
    for path, target in routes.items():
        server.route(path, Route(status=301, headers={"location": target}))
    good = server.route("/good", Route(body=livefeeds.atom1(livefeeds.dw()), headers=ATOM))
    setup = Setup(tmp_path, [url_source("bad", server.base + "/a"), url_source("good", good)])
    report = by_name(setup.run())
    assert report["bad"].error is not None and reason in report["bad"].error
    assert report["good"].new == 1


# -- deadlines and limits ---------------------------------------------------------------------


@pytest.mark.parametrize("behaviour", ["drip", "hang"])
def test_slow_servers_are_cut_off_at_the_deadline(
    tmp_path: Path, server: FeedServer, behaviour: str
) -> None:
    url = server.route(
        "/slow", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, behaviour=behaviour)
    )
    good = server.route("/good", Route(body=livefeeds.atom1(livefeeds.dw()), headers=ATOM))
    setup = Setup(tmp_path, [url_source("slow", url, timeout=2), url_source("good", good)])
    started = time.monotonic()
    report = by_name(setup.run())
    elapsed = time.monotonic() - started
    assert elapsed < 4.5, elapsed  # the 2 s deadline, not the drip's hours
    assert report["slow"].error is not None and "within 2 s" in report["slow"].error
    assert report["good"].new == 1


def test_huge_body_stops_at_the_cap(tmp_path: Path, server: FeedServer) -> None:
    body = livefeeds.rss2(livefeeds.voa()) + b"<!--" + b"x" * (3 * 1024 * 1024) + b"-->"
    url = server.route("/huge", Route(body=body, headers=RSS))
    setup = Setup(tmp_path, [url_source("huge", url, max_bytes=1024 * 1024)])
    report = by_name(setup.run())["huge"]
    assert report.error is not None and "larger than 1 MiB" in report.error


def test_gzip_bomb_stops_at_the_cap(tmp_path: Path, server: FeedServer) -> None:
    bomb = gzip_bomb(128 * 1024 * 1024)  # 128 MiB of zeros in ~128 KiB
    url = server.route("/bomb", Route(body=bomb, headers={**RSS, "content-encoding": "gzip"}))
    setup = Setup(tmp_path, [url_source("bomb", url, max_bytes=2 * 1024 * 1024)])
    started = time.monotonic()
    report = by_name(setup.run())["bomb"]
    assert report.error is not None and "larger than 2 MiB" in report.error
    assert time.monotonic() - started < 5


# -- politeness: Retry-After and backoff ------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(
    tmp_path: Path, server: FeedServer, status: int, form: str
) -> None:
    value = (
        "120" if form == "seconds" else format_datetime(NOW + timedelta(seconds=120), usegmt=True)
    )
    url = server.route("/busy", Route(status=status, headers={"retry-after": value}))
    setup = Setup(tmp_path, [url_source("busy", url)])
    first = by_name(setup.run())["busy"]
    assert first.fetch is not None and first.fetch.retry_at == NOW + timedelta(seconds=120)
    assert f"HTTP {status}" in (first.error or "")
    early = by_name(setup.run(NOW + timedelta(seconds=119)))["busy"]
    assert early.fetch is not None and early.fetch.outcome == "waiting"
    assert len(server.hits("/busy")) == 1  # no request before the time the server asked for
    setup.run(NOW + timedelta(seconds=121))
    assert len(server.hits("/busy")) == 2


def test_a_permanent_redirect_to_a_page_that_is_not_a_feed_is_not_learnt(
    tmp_path: Path, server: FeedServer
) -> None:
    """A feed that redirects for good to a login page fails; the source keeps its address,
    so it heals when the feed comes back there."""
    login = server.route("/login", Route(body=b"<html><body>Log in</body></html>",
                                         headers={"content-type": "text/html"}))  # fmt: skip
    url = server.route("/feed", Route(status=301, headers={"location": login}))
    setup = Setup(tmp_path, [url_source("s", url)])
    first = by_name(setup.run())["s"]
    assert first.fetch is not None and (first.fetch.outcome, first.fetch.moved_to) == (
        "failed",
        None,
    )
    server.route("/feed", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    assert by_name(setup.run(NOW + timedelta(days=1)))["s"].new == 3
    assert len(server.hits("/feed")) == 2


def test_a_wait_ends_with_run_retry_now_or_a_new_url(tmp_path: Path, server: FeedServer) -> None:
    """A week's Retry-After (or a long backoff) is not the last word: ``run --retry-now``
    fetches at once, and a url changed in config.toml is a new feed, with no wait and none of
    the old address's validators."""
    url = server.route("/busy", Route(status=503, headers={"retry-after": "604800"}))
    Setup(tmp_path, [url_source("busy", url)])

    def cli(*args: str, expect: int = 0) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "aggregator", "run", "--json", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == expect, proc.stderr
        (busy,) = json.loads(proc.stdout)["sources"]
        return busy  # type: ignore[no-any-return]

    cli(expect=1)  # nothing could be produced yet
    server.route("/busy", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, etag='"a"'))
    assert cli(expect=1)["fetch"]["outcome"] == "waiting"
    assert len(server.hits("/busy")) == 1
    assert (cli("--retry-now")["new"], len(server.hits("/busy"))) == (3, 2)

    # Failing again, then moved by hand to another address: fetched there at once, afresh.
    server.route("/busy", Route(status=503, headers={"retry-after": "604800"}))
    assert cli()["fetch"]["outcome"] == "failed"
    moved = server.route("/moved", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    Setup(tmp_path, [url_source("busy", moved)])
    fetched = cli()["fetch"]
    assert fetched["outcome"] == "fetched"
    assert "same bytes" not in fetched["detail"]  # the same feed, read again at its new address
    (request,) = server.hits("/moved")
    assert "if-none-match" not in request.headers


def test_backoff_grows_with_failures_and_resets_on_success(
    tmp_path: Path, server: FeedServer
) -> None:
    server.route("/flaky", Route(status=500))
    setup = Setup(tmp_path, [url_source("flaky", server.base + "/flaky")])
    now, waits = NOW, []
    for _ in range(4):
        report = by_name(setup.run(now))["flaky"]
        assert report.fetch is not None and report.fetch.retry_at is not None
        assert "HTTP 500" in (report.error or "")
        waits.append((report.fetch.retry_at - now).total_seconds())
        # Before the backoff ends: no request.
        setup.run(now + timedelta(seconds=waits[-1] - 1))
        now = report.fetch.retry_at + timedelta(seconds=1)
    assert len(server.hits("/flaky")) == 4
    assert report.fetch.failures == 4
    for n, wait in enumerate(waits, start=1):  # 60 s * 2^(n-1), jittered into [0.5, 1.0]
        assert 30 * 2 ** (n - 1) <= wait <= 60 * 2 ** (n - 1), waits
    server.route("/flaky", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    healed = by_name(setup.run(now))["flaky"]
    assert healed.new == 3 and healed.fetch is not None
    assert (healed.fetch.failures, healed.fetch.retry_at) == (0, None)


# -- what is not a feed -----------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<rss version="2.0"><channel><title>&d;</title><item><title>&d;</title>
<link>https://www.voachinese.com/a/x/1234567.html</link></item></channel></rss>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><title>&secret;</title>
<link>https://www.voachinese.com/a/x/1234567.html</link><description>&secret;</description>
</item></channel></rss>"""

BAD = [
    ("entity-expansion", Route(body=BILLION_LAUGHS, headers=RSS), "declares XML entities"),
    ("external-entity", Route(body=EXTERNAL_ENTITY, headers=RSS), "declares XML entities"),
    ("entity-expansion-utf-16", Route(body=BILLION_LAUGHS.decode().encode("utf-16"), headers=RSS), "declares XML entities"),
    ("not-xml", Route(body=b"\x89PNG\r\n\x1a\n binary nonsense", headers=RSS), "not an RSS or Atom feed"),
    ("html-page", Route(body=b"<!DOCTYPE html><html><body>Log in</body></html>", headers={"content-type": "text/html"}), "HTML page"),
    ("empty", Route(body=b"", headers=RSS), "empty body"),
    ("brotli-cut-short", Route(body=brotli.compress(livefeeds.rss2(livefeeds.voa()))[:12], headers={**RSS, "content-encoding": "br"}), "12 bytes of br-compressed body that decompress to nothing"),
    ("not-found", Route(status=404, body=b"gone"), "HTTP 404"),
    ("server-error", Route(status=500), "HTTP 500"),
    ("reset", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, behaviour="reset"), "broke off mid-answer"),
    ("json-not-feed", Route(body=b'{"hello": 1}', headers=JSON), "not a JSON Feed"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "route", "reason"), BAD, ids=[b[0] for b in BAD])
def test_a_failing_source_keeps_its_items_and_stops_nothing(
    tmp_path: Path, server: FeedServer, name: str, route: Route, reason: str
) -> None:
    good = Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, etag='"good"')
    url = server.route("/src", good)
    other = server.route("/other", Route(body=livefeeds.atom1(livefeeds.dw()), headers=ATOM))
    setup = Setup(tmp_path, [url_source("src", url), url_source("other", other)])
    assert by_name(setup.run())["src"].new == 3
    server.route("/src", route)  # the source turns bad
    fresh = livefeeds.distinct(livefeeds.dw()[0], 1)  # a new article on the other source
    server.route("/other", Route(body=livefeeds.atom1(livefeeds.dw() + fresh), headers=ATOM))
    report = by_name(setup.run(NOW + timedelta(hours=1)))
    src = report["src"]
    assert src.error is not None and reason in src.error, src.error
    assert report["other"].new == 1  # the other source went on
    # The failed source's earlier entries stay in its feed and in the merged feed.
    assert len(setup.feed("src").entries) == 3
    assert len(setup.feed("all").entries) == 5
    # A body that is not a feed (an HTML login page, garbage) is a failure like a 5xx: backed
    # off, and failing again at the next try, never "the same bytes as last time" or a 304
    # to the bad body's ETag; the last good feed's validators and snapshot are kept.
    assert src.fetch is not None and (src.fetch.outcome, src.fetch.failures) == ("failed", 1)
    assert src.fetch.retry_at is not None
    route.etag = '"bad"'
    again = by_name(setup.run(src.fetch.retry_at + timedelta(seconds=1)))["src"]
    assert again.fetch is not None and (again.fetch.outcome, again.fetch.failures) == ("failed", 2)
    assert again.error is not None and reason in again.error, again.error
    assert server.hits("/src")[-1].headers.get("if-none-match") == '"good"'
    offline = by_name(setup.run(NOW + timedelta(hours=3), offline=True))["src"]
    assert (offline.error, offline.files_read) == (None, 3)
    server.route("/src", good)  # mended: the last good feed's ETag gets a 304
    mended = by_name(setup.run(NOW + timedelta(days=2)))["src"]
    assert mended.fetch is not None and (mended.fetch.outcome, mended.fetch.failures) == (
        "not-modified", 0,
    )  # fmt: skip


def test_malformed_but_readable_feed_is_read(tmp_path: Path, server: FeedServer) -> None:
    doc = livefeeds.rss2(livefeeds.voa()).replace(
        b"<description>mirror</description>", b"<description>AT&T </description>"
    )
    url = server.route("/f", Route(body=doc, headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url)])
    assert by_name(setup.run())["live"].new == 3


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "in-a-worker"])
def test_an_entry_a_bug_stops_is_skipped_and_its_traceback_logged_by_the_run(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, workers: int,
) -> None:  # fmt: skip
    """An unexpected exception reading one entry skips it with a reason to report, the feed's
    other entries go on, and the traceback reaches the run's log, also when a worker process
    read the feed (its own stderr would interleave with the run's, or go nowhere)."""
    from aggregator import pipeline
    from aggregator.adapters.base import Profile

    to_item = Profile.to_item

    def buggy(self: Profile, post: Any, fetched: Any) -> Any:
        if post.title == "Boom":
            raise KeyError("oops")
        return to_item(self, post, fetched)

    monkeypatch.setattr(Profile, "to_item", buggy)
    monkeypatch.setattr(pipeline, "PARALLEL_FEEDS", 1)  # one new feed is enough for the workers
    doc = _rss(_post("boom", "Boom", _BRIDGE, "1"), _post("ferry", "Ferry", _FERRY, "2"))
    url = server.route("/f", Route(body=doc, headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url, "generic")], top=f"workers = {workers}")
    submitted: list[str] = []
    submit = pipeline._Workers.submit
    monkeypatch.setattr(
        pipeline._Workers, "submit",
        lambda self, fn, *a: submitted.append(a[0].name) or submit(self, fn, *a),
    )  # fmt: skip
    with caplog.at_level(logging.ERROR, logger="aggregator"):
        report = by_name(setup.run())["live"]
    assert submitted == (["live"] if workers > 1 else [])
    assert report.new == 1
    assert [(s.origin, s.reason) for s in report.skipped] == [
        (f"{url} entry 1 (Boom)", "internal error (KeyError: 'oops'); please report it")
    ]
    assert f"bug while reading {url} entry 1; please report this traceback" in caplog.text
    assert "KeyError: 'oops'" in caplog.text
    assert [e.title for e in setup.feed("live").entries] == ["Ferry"]


def test_hostile_feed_values_skip_an_entry_or_fail_a_source_never_the_run(
    tmp_path: Path, server: FeedServer
) -> None:
    """Values no real feed should carry (wrongly typed JSON Feed members, a lone surrogate, a
    port out of range, a host that is no IPv4 address, a zone offset of +9999, JSON nested 100,000 deep, a body nested 300
    deep, a redirect to a malformed URL) cost at most their entry or their source, with a reason; the others go on."""
    item = {"id": "1", "url": "https://example.com/a/1.html", "title": "fine",
            "content_html": "<p>" + "正文。" * 40 + "</p>", "date_published": "2026-11-20T10:00:00Z"}  # fmt: skip
    odd = [
        {**item, "id": "2", "url": "https://example.com/a/2.html", "tags": 5, "authors": 7},
        {**item, "id": "3", "url": "https://example.com/a/3.html", "title": "bad \ud800 title"},
        {**item, "id": "4", "url": "https://example.com:99999/a/4.html"},
        {**item, "id": "6", "url": "https://999.999.999.999/a/6.html"},
        {**item, "id": "5", "url": "https://example.com/a/5.html"},
    ]
    for n, entry in enumerate(odd, start=2):  # texts of their own, or they are duplicates
        entry["content_html"] = f"<p>{f'第{n}篇。' * 40}</p>"
    odd[-1]["content_html"] = "<div>" * 300 + str(odd[-1]["content_html"]) + "</div>" * 300
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [item, *odd]}
    rss = re.sub(
        rb"<pubDate>[^<]*</pubDate>",
        b"<pubDate>Fri, 21 Oct 2022 19:39:42 +9999</pubDate>",
        livefeeds.rss2(livefeeds.voa()),
        count=1,
    )
    deep = (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )
    sources = [
        url_source("json", server.route("/j", Route(body=json.dumps(doc).encode(), headers=JSON))),
        url_source("rss", server.route("/r", Route(body=rss, headers=RSS))),
        url_source("deep", server.route("/d", Route(body=deep, headers=JSON))),
        url_source("moved", server.route("/m", Route(status=301, headers={"location": "http://[::1"}))),
    ]  # fmt: skip
    report = by_name(Setup(tmp_path, sources).run())
    assert report["json"].new == 3 and not report["json"].error
    assert [k.reason for k in report["json"].skipped] == [
        "the article link 'https://example.com:99999/a/4.html' is not an http(s) URL with a host and a valid port",
        "the article link 'https://999.999.999.999/a/6.html' is not an http(s) URL with a host and a valid port",
        "the body nests its elements more than 255 deep, where the HTML parser stops and the "
        "rest would be lost; no real article does: the body is broken or hostile",
    ]
    titles = {e.title for e in Setup(tmp_path, sources).feed("json").entries}
    assert "bad  title" not in titles and any(t.startswith("bad") for t in titles)
    assert report["rss"].new == 3  # the +9999 date is no date: the entry is dated when seen
    assert "nested too deeply" in (report["deep"].error or "")
    assert "not a fetchable URL" in (report["moved"].error or "")


def test_one_entrys_impossible_value_costs_that_entry_only(
    tmp_path: Path, server: FeedServer
) -> None:
    """Values that once failed a whole feed, or the run's report: a date of year 0, character
    references to no character (a lone surrogate, past U+10FFFF), a 5,000-digit JSON number, a
    malformed link under ``adapter = "auto"``, a lone surrogate in a skipped entry's title
    (its label could not be printed). The CLI, as cron runs it, with the report piped."""
    entry = (
        "<item><title>{title}</title><link>https://example.com/{n}.html</link>"
        "<pubDate>{date}</pubDate><description>{text}</description></item>"
    )
    good = "Fri, 21 Oct 2022 19:39:42 GMT"
    items = [
        entry.format(n=1, title="Year zero", date="0000-00-00", text="First story, undated."),
        entry.format(n=2, title="Ref &#xD800; here", date=good, text="Second &#x110000; story."),
        entry.format(n=3, title="Plain", date=good, text="Third story &#99999999999999; here."),
    ]
    rss = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>{"".join(items)}</channel></rss>'
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "j", "items": [
        {"id": "1", "url": "https://example.com/j1.html", "title": "fine",
         "content_text": "A story of its own.", "date_published": "2022-10-21T19:39:42Z"},
        {"id": "LONG", "url": "https://example.com/j2.html", "title": "long id",
         "content_text": "Another story entirely.", "date_published": "2022-10-21T19:39:42Z"},
        {"id": "3", "url": "http://[::1/3.html", "title": "broken", "content_text": "x"},
        {"id": "4", "url": "javascript:alert(1)", "title": "bad \ud800 title", "content_text": "y"},
    ]}  # fmt: skip

    def long_id(text: str) -> bytes:  # Python itself refuses to make a 5,000-digit int
        return text.replace('"LONG"', "9" * 5000).encode()

    Setup(tmp_path, [
        url_source("rss", server.route("/r", Route(body=rss.encode(), headers=RSS))),
        url_source("json", server.route("/j", Route(body=long_id(json.dumps(doc)), headers=JSON))),
    ])  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "aggregator", "run", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = {s["name"]: s for s in json.loads(proc.stdout)["sources"]}
    assert (report["rss"]["new"], report["rss"]["error"], report["rss"]["skipped"]) == (3, None, [])
    assert report["json"]["new"] == 2 and report["json"]["error"] is None
    assert [(k["origin"].rsplit("/", 1)[1], k["reason"]) for k in report["json"]["skipped"]] == [
        (
            "j entry 3 (broken)",
            "the article link 'http://[::1/3.html' is not an http(s) URL with a host and a valid port",
        ),
        (
            "j entry 4 (bad  title)",
            "the article link 'javascript:alert(1)' is not an http(s) URL with a host and a valid port",
        ),
    ]
    titles = {
        e.title for e in feedparser.parse((tmp_path / "out" / "all.atom").read_bytes()).entries
    }
    assert titles == {"Year zero", "Ref here", "Plain", "fine", "long id"}
    # The human summary too, piped (cron mails it).
    server.route("/j", Route(body=long_id(json.dumps(doc).replace('"4"', '"5"')), headers=JSON))
    text = subprocess.run(
        [sys.executable, "-m", "aggregator", "run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert text.returncode == 0, text.stdout + text.stderr
    assert "entry 4 (bad  title)" in text.stdout


@pytest.mark.parametrize(
    ("encoding", "content_type"),
    [
        ("gb18030", "text/xml"),  # no charset in the header: the XML declaration says
        ("gb18030", "application/xml; charset=utf-8"),  # the header lies
        ("big5", "application/rss+xml"),  # Traditional Chinese in Big5
        ("utf-8", "application/octet-stream"),  # wrong content type
        ("utf-8", "text/plain; charset=iso-8859-1"),  # wrong type and charset
    ],
)
def test_wrong_content_types_and_charsets_are_repaired(
    tmp_path: Path, server: FeedServer, encoding: str, content_type: str
) -> None:
    articles = livefeeds.voa()
    if encoding == "big5":  # Big5 cannot write Simplified characters: a Traditional title only
        articles = [
            livefeeds.Article(
                "美國之音：烏克蘭戰事",
                articles[0].link,
                "<p>烏克蘭東部的戰事持續。</p>",
                articles[0].date,
            )
        ]
    url = server.route(
        "/f",
        Route(
            body=livefeeds.rss2(articles, encoding=encoding), headers={"content-type": content_type}
        ),
    )
    setup = Setup(tmp_path, [url_source("live", url, adapter="voa")])
    assert by_name(setup.run())["live"].new == len(articles)
    assert {e.title for e in setup.feed("live").entries} == {a.title for a in articles}


def test_titles_are_unescaped_once(tmp_path: Path, server: FeedServer) -> None:
    """A plain-text title keeps what only looks like markup ("<S&P>", "&copy" without its
    ";"); an HTML title loses its markup and entities once. Whole entities and inline tags in
    any title are undone (JSON Feed titles are plain text by the spec, but producers escape
    them)."""
    doc = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
    <item><title>\xe6\xa0\x87\xe6\x99\xae &lt;S&amp;P&gt; index &amp;copy fell</title>
    <link>https://example.com/a</link><pubDate>Mon, 10 Jan 2022 04:58:40 GMT</pubDate>
    <description>First story text.</description></item>
    <item><title>&lt;b&gt;Bold&lt;/b&gt; news &amp;amp; more</title><link>https://example.com/b</link>
    <pubDate>Mon, 10 Jan 2022 05:58:40 GMT</pubDate><description>Second story text.</description>
    </item></channel></rss>"""
    feed = {
        "version": "https://jsonfeed.org/version/1.1", "title": "j",
        "items": [{"id": "1", "url": "https://example.com/c", "title": "A &amp; B <i>x</i>",
                   "content_text": "Third story text.", "date_published": "2022-01-10T06:00:00Z"}],
    }  # fmt: skip
    rss = server.route("/f", Route(body=doc, headers=RSS))
    jsonfeed = server.route(
        "/j",
        Route(body=json.dumps(feed).encode(), headers={"content-type": "application/feed+json"}),
    )
    setup = Setup(
        tmp_path,
        [
            url_source("rss", rss, adapter="generic"),
            url_source("json", jsonfeed, adapter="generic"),
        ],
    )
    setup.run()
    assert {e.title for e in setup.feed("rss").entries} == {
        "\u6807\u666e <S&P> index &copy fell",
        "Bold news & more",
    }
    assert [e.title for e in setup.feed("json").entries] == ["A & B x"]


def test_a_title_that_shows_nothing_is_taken_from_the_text(
    tmp_path: Path, server: FeedServer
) -> None:
    """An entry title of markup, a control character or invisible spaces only is no title: the
    entry is titled by the start of its text, as an untitled one is (it cleaned to "", and
    feedgen refused to write every feed holding it)."""
    titles = ["&lt;b&gt;&lt;/b&gt;", "&amp;#8;", "\u200b\u00a0", '&lt;img src="x"&gt;']
    items = "".join(
        f"<item><title>{t}</title><link>https://example.com/{n}</link>"
        f"<pubDate>Mon, 10 Jan 2022 0{n}:00:00 GMT</pubDate>"
        f"<description>Story {n} {'words of its own ' * n}here.</description></item>"
        for n, t in enumerate(titles, start=1)
    )
    doc = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'
    setup = Setup(
        tmp_path,
        [
            url_source(
                "rss", server.route("/f", Route(body=doc.encode(), headers=RSS)), adapter="generic"
            )
        ],
    )
    report = setup.run()
    assert by_name(report)["rss"].new == 4 and not report.errors, report.errors
    assert sorted(e.title for e in setup.feed("rss").entries) == [
        f"Story {n} {'words of its own ' * n}here."[:60].rstrip() + ("…" if n > 2 else "")
        for n in range(1, 5)
    ]


# -- identity of sparse entries ---------------------------------------------------------------


def test_reused_guid_never_gives_two_entries_one_id(tmp_path: Path, server: FeedServer) -> None:
    doc = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
    <item><title>One</title><guid isPermaLink="false">same</guid><link>https://example.com/a</link>
    <pubDate>Mon, 10 Jan 2022 04:58:40 GMT</pubDate><description>First story text.</description></item>
    <item><title>Two</title><guid isPermaLink="false">same</guid><link>https://example.com/b</link>
    <pubDate>Mon, 10 Jan 2022 05:58:40 GMT</pubDate><description>Second story text.</description></item>
    </channel></rss>"""
    url = server.route("/f", Route(body=doc, headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url, adapter="generic")])
    assert by_name(setup.run())["live"].new == 2
    ids = [e.id for e in setup.feed("live").entries]
    assert len(ids) == len(set(ids)) == 2


def test_entries_sharing_a_home_page_link_stay_apart(tmp_path: Path, server: FeedServer) -> None:
    """A feed that gives its home page as every entry's link: three stories of their own
    guids and titles were merged into one entry (two counted as its updates). They are three,
    stable over fetches; an entry listed twice is still one."""

    def item(n: int, title: str) -> str:
        return (
            f"<item><title>{title}</title><link>https://news.example.com/</link>"
            f'<guid isPermaLink="false">story-{n}</guid>'
            f"<pubDate>Fri, 21 Oct 2022 0{n}:00:00 GMT</pubDate>"
            f"<description>Story {n}: {'its own words ' * n}</description></item>"
        )

    stories = [item(1, "Floods in the north"), item(2, "Election results"), item(3, "New bridge")]
    doc = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>{"".join(stories)}</channel></rss>'
    twice = doc.replace(stories[0], stories[0] * 2)
    setup = Setup(tmp_path, [
        url_source("live", server.route("/f", Route(body=doc.encode(), headers=RSS))),
        url_source("twice", server.route("/t", Route(body=twice.encode(), headers=RSS))),
    ])  # fmt: skip
    report = by_name(setup.run())
    assert (report["live"].new, report["live"].updated) == (3, 0)
    first = {e.title: e.id for e in setup.feed("live").entries}
    assert first.keys() == {"Floods in the north", "Election results", "New bridge"}
    assert all(e.link == "https://news.example.com/" for e in setup.feed("live").entries)
    server.route(
        "/f", Route(body=doc.replace("<title>t</title>", "<title>t2</title>").encode(), headers=RSS)
    )
    again = by_name(setup.run(NOW + timedelta(hours=1)))["live"]
    assert (again.new, again.updated) == (0, 0)
    assert {e.title: e.id for e in setup.feed("live").entries} == first
    # The feed that lists one story twice: one entry.
    assert [e.title for e in setup.feed("twice").entries].count("Floods in the north") == 1
    # Whatever else the feed holds: one story left alone keeps its entry.
    server.route("/f", Route(body=doc.replace("".join(stories[:2]), "").encode(), headers=RSS))
    setup.run(NOW + timedelta(hours=2))
    assert {e.title: e.id for e in setup.feed("live").entries} == first


def test_home_page_links_without_guids_and_a_state_that_merged_them(
    tmp_path: Path, server: FeedServer
) -> None:
    """Entries whose guid is the home page too are known by title and date; a state where an
    earlier version stored several guids under one article (it merged them) does not pull
    the entries back into it."""

    def feed(guid: str) -> bytes:
        items = "".join(
            f"<item><title>{t}</title><link>https://news.example.com</link>"
            f"<guid>{guid.format(n=n)}</guid><pubDate>Fri, 21 Oct 2022 09:00:00 GMT</pubDate>"
            f"<description>{t}: {'its own words ' * n}</description></item>"
            for n, t in enumerate(("Floods", "Election", "Bridge"), start=1)
        )
        return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()

    home = Setup(
        tmp_path,
        [
            url_source(
                "home",
                server.route("/h", Route(body=feed("https://news.example.com/"), headers=RSS)),
            )
        ],
    )
    assert by_name(home.run())["home"].new == 3
    own = tmp_path / "own"
    own.mkdir()
    route = Route(body=feed("g{n}"), headers=RSS)
    setup = Setup(own, [url_source("live", server.route("/f", route))])
    assert by_name(setup.run())["live"].new == 3
    first = {e.title: e.id for e in setup.feed("live").entries}
    # As the earlier version left the state: one article under the home page's address,
    # every guid stored under it.
    merged = "url:https://news.example.com/"
    with contextlib.closing(sqlite3.connect(own / "state.sqlite3")) as db, db:
        (key,) = db.execute("SELECT key FROM items WHERE title = 'Floods'").fetchone()
        for table in ("items", "versions", "sketches", "signatures"):
            db.execute(f"UPDATE {table} SET key = ? WHERE key = ?", (merged, key))
        db.execute("UPDATE items SET atom_id = ? WHERE key = ?", (mint_atom_id(merged), merged))
        db.execute("UPDATE guids SET key = ?", (merged,))
    route.body = feed("g{n}").replace(b"<title>t</title>", b"<title>t2</title>")
    report = by_name(setup.run(NOW + timedelta(hours=1)))["live"]
    # Floods is an entry of its own again; the others are not pulled into the merged one.
    assert (report.new, report.updated) == (1, 0), report
    now = {e.title: e.id for e in setup.feed("live").entries}
    assert (now["Election"], now["Bridge"]) == (first["Election"], first["Bridge"])


def _post(slug: str, title: str, body: str, guid: str = "https://blog.example.com/?p=123",
          date: str = "Mon, 10 Jan 2022 04:58:40 GMT") -> str:  # fmt: skip
    """A WordPress-style RSS item: the guid is the post's number, the link its title's slug."""
    return f"""<item><title>{title}</title><link>https://blog.example.com/2022/01/{slug}/</link>
    <guid isPermaLink="false">{guid}</guid><pubDate>{date}</pubDate>
    <description>{body}</description></item>"""


def _rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f"{''.join(items)}</channel></rss>"
    ).encode()


_BRIDGE = "The city closed the old bridge on Monday for repairs that will take two months."
_FERRY = "Two more ferries a day from March on, the port said."


@pytest.mark.parametrize("edited", [False, True], ids=["same-text", "edited-text"])
def test_a_reslugged_entry_stays_one_entry_under_its_guid(
    tmp_path: Path, server: FeedServer, edited: bool
) -> None:
    """A headline edit gives the post a new slug (a new link) under the same guid: it is the
    same entry, with its Atom id and publication date, showing the new title and link."""
    route = Route(body=_rss(_post("bridge-closed", "Bridge closed", _BRIDGE)), headers=RSS)
    url = server.route("/f", route)
    setup = Setup(tmp_path, [url_source("live", url, adapter="generic")])
    assert by_name(setup.run())["live"].new == 1
    (before,) = setup.feed("live").entries
    moved = _post(
        "bridge-closed-until-may", "Bridge closed until May",
        _BRIDGE.replace("two months", "until May") if edited else _BRIDGE,
    )  # fmt: skip
    route.body = _rss(moved)
    report = by_name(setup.run(NOW + timedelta(hours=1)))["live"]
    assert (report.new, report.updated) == (0, 1 if edited else 0)
    (after,) = setup.feed("live").entries
    assert (after.id, after.published) == (before.id, before.published)
    assert after.title == "Bridge closed until May"
    assert after.link == "https://blog.example.com/2022/01/bridge-closed-until-may/"
    assert after.updated == ((NOW + timedelta(hours=1)).isoformat() if edited else before.updated)
    # Fetched again with another post beside it: still one entry for the bridge, nothing moves.
    route.body = _rss(moved, _post("ferry", "Ferry", _FERRY, guid="https://blog.example.com/?p=9"))
    again = by_name(setup.run(NOW + timedelta(hours=2)))["live"]
    assert (again.new, again.updated) == (1, 0)
    bridge = [e for e in setup.feed("live").entries if "bridge" in e.link]
    assert [(e.id, e.updated) for e in bridge] == [(after.id, after.updated)]
    # A guid that has left the feed is forgotten: a row for every entry ever seen grew the
    # state for ever. The entry stays published.
    ferry = _post("ferry", "Ferry", _FERRY, guid="https://blog.example.com/?p=9")
    guids = "SELECT guid FROM guids ORDER BY guid"
    with contextlib.closing(sqlite3.connect(tmp_path / "state.sqlite3")) as db:
        assert [g for (g,) in db.execute(guids)] == [
            "https://blog.example.com/?p=123", "https://blog.example.com/?p=9",
        ]  # fmt: skip
        route.body = _rss(ferry)
        setup.run(NOW + timedelta(hours=3))
        assert [g for (g,) in db.execute(guids)] == ["https://blog.example.com/?p=9"]
    assert len(setup.feed("live").entries) == 2


def test_a_guid_handed_on_to_another_article_is_not_taken_for_a_reslug(
    tmp_path: Path, server: FeedServer
) -> None:
    """Feeds that number their items by position hand a guid on to the next article: a new
    link under a known guid, with another date and text, is a new entry; so is one under the
    same date while the article that had its guid is still in the feed."""
    route = Route(body=_rss(_post("bridge-closed", "Bridge closed", _BRIDGE, "1")), headers=RSS)
    url = server.route("/f", route)
    setup = Setup(tmp_path, [url_source("live", url, adapter="generic")])
    setup.run()
    route.body = _rss(_post("ferry", "Ferry", _FERRY, "1", "Tue, 11 Jan 2022 04:58:40 GMT"))
    assert by_name(setup.run(NOW + timedelta(hours=1)))["live"].new == 1
    assert sorted(e.title for e in setup.feed("live").entries) == ["Bridge closed", "Ferry"]
    tuesday = "Tue, 11 Jan 2022 04:58:40 GMT"
    route.body = _rss(
        _post("tunnel", "Tunnel", "The tunnel opens on Friday after years of work.", "1", tuesday),
        _post("ferry", "Ferry", _FERRY, "2", tuesday),
    )
    assert by_name(setup.run(NOW + timedelta(hours=2)))["live"].new == 1
    titles = sorted(e.title for e in setup.feed("live").entries)
    assert titles == ["Bridge closed", "Ferry", "Tunnel"]


def test_a_live_entrys_new_title_is_shown_without_moving_updated(
    tmp_path: Path, server: FeedServer
) -> None:
    """A feed that changes an entry's title and not its text: the entry shows the new title;
    ``updated`` moves only with the text."""
    route = Route(body=_rss(_post("bridge", "Bridge closed", _BRIDGE)), headers=RSS)
    url = server.route("/f", route)
    setup = Setup(tmp_path, [url_source("live", url, adapter="generic")])
    setup.run()
    (before,) = setup.feed("live").entries
    route.body = _rss(_post("bridge", "Old bridge closed for two months", _BRIDGE))
    report = by_name(setup.run(NOW + timedelta(hours=1)))["live"]
    assert (report.new, report.updated) == (0, 0)
    (after,) = setup.feed("live").entries
    assert after.title == "Old bridge closed for two months"
    assert (after.id, after.published) == (before.id, before.published)
    assert after.updated == before.updated


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_an_edit_under_the_same_date_is_shown_and_dated_when_seen(
    tmp_path: Path, server: FeedServer, order: str
) -> None:
    """Most CMSs edit an RSS item without touching its pubDate. The edit is shown (whichever
    text's hash sorts first: both orders), its entry's ``updated`` is when the edit was seen,
    and the edited text fetched again, with other entries changing around it, adds no capture
    and moves nothing; the edit taken back is shown again."""
    import sqlite3

    texts = {
        "a": ("Bridge closed for repairs", "The city closed the old bridge on Monday for repairs."),
        "b": ("CORRECTION: Bridge closed until May", "The city closed the old bridge on Monday; "
              "repairs will last until May, not March as first reported."),
    }  # fmt: skip

    def doc(text: str, extra: str = "") -> bytes:
        title, body = texts[text]
        return f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
        <item><title>{title}</title><link>https://news.example.com/bridge</link>
        <pubDate>Mon, 10 Jan 2022 04:58:40 GMT</pubDate><description>{body}</description></item>
        {extra}</channel></rss>""".encode()

    first, second = order
    route = Route(body=doc(first), headers=RSS)
    url = server.route("/f", route)
    setup = Setup(tmp_path, [url_source("live", url, adapter="generic")])
    assert by_name(setup.run())["live"].new == 1
    published = setup.feed("live").entries[0].published
    route.body = doc(second)
    edited = by_name(setup.run(NOW + timedelta(hours=1)))["live"]
    assert (edited.new, edited.updated) == (0, 1)
    entry = setup.feed("live").entries[0]
    assert entry.title == texts[second][0]
    assert texts[second][1] in entry.content[0].value
    assert entry.published == published
    assert entry.updated == (NOW + timedelta(hours=1)).isoformat()
    other = "<item><title>Ferry runs more often</title><link>https://news.example.com/ferry</link>"
    route.body = doc(second, other + "<description>Two more ferries a day.</description></item>")
    again = by_name(setup.run(NOW + timedelta(hours=2)))["live"]
    assert (again.new, again.updated) == (1, 0)
    entry = next(e for e in setup.feed("live").entries if e.link.endswith("/bridge"))
    assert entry.updated == (NOW + timedelta(hours=1)).isoformat()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 3  # a, b, ferry
    # The edit taken back: the first text again, shown and dated when seen.
    route.body = doc(first, other + "<description>Two more ferries a day.</description></item>")
    back = by_name(setup.run(NOW + timedelta(hours=3)))["live"]
    assert (back.new, back.updated) == (0, 1)
    entry = next(e for e in setup.feed("live").entries if e.link.endswith("/bridge"))
    assert entry.title == texts[first][0]
    assert entry.updated == (NOW + timedelta(hours=3)).isoformat()


def test_the_language_a_feed_declares_labels_its_entries(
    tmp_path: Path, server: FeedServer
) -> None:
    """Entries are labelled with the language their feed declares (Atom xml:lang, per entry
    or for the feed; RSS's <language>; JSON Feed's language), not the generic adapter's
    Chinese; a merged feed of several languages says "und" and labels each entry."""
    from lxml import etree

    text = (
        "Refinery strikes entered their third week on Friday, with long queues at petrol stations."
    )
    atom = f"""<?xml version="1.0" encoding="utf-8"?>
    <feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en"><title>t</title><id>urn:x:f</id>
    <updated>2022-10-21T18:00:00Z</updated>
    <entry><title>Fuel strike</title><id>urn:x:1</id><link href="https://en.example.com/1"/>
    <updated>2022-10-21T18:00:00Z</updated><content type="html">&lt;p&gt;{text}&lt;/p&gt;</content></entry>
    <entry xml:lang="fr"><title>Grève</title><id>urn:x:2</id><link href="https://fr.example.com/2"/>
    <updated>2022-10-21T19:00:00Z</updated><content type="html">&lt;p&gt;Les grèves continuent dans les raffineries, avec de longues files aux stations.&lt;/p&gt;</content></entry>
    </feed>""".encode()
    rss = f"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
    <language>en-gb</language><item><title>Queues in Paris</title><link>https://uk.example.com/3</link>
    <pubDate>Fri, 21 Oct 2022 20:00:00 GMT</pubDate><description>{text} Paris too.</description>
    </item></channel></rss>""".encode()
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "language": "pt-br",
           "items": [{"id": "4", "url": "https://br.example.com/4", "title": "Greve",
                      "content_text": "A greve nas refinarias francesas entrou na terceira semana.",
                      "date_published": "2022-10-21T21:00:00Z"}]}  # fmt: skip
    setup = Setup(tmp_path, [
        url_source("atom", server.route("/a", Route(body=atom, headers=ATOM)), adapter="generic"),
        url_source("rss", server.route("/r", Route(body=rss, headers=RSS)), adapter="generic"),
        url_source("json", server.route("/j", Route(body=json.dumps(doc).encode(), headers=JSON)),
                   adapter="generic"),
    ])  # fmt: skip
    setup.run()

    def langs(name: str) -> tuple[str | None, dict[str, str | None]]:
        root = etree.parse(str(tmp_path / "out" / f"{name}.atom")).getroot()
        xml_lang = "{http://www.w3.org/XML/1998/namespace}lang"
        ns = {"a": "http://www.w3.org/2005/Atom"}
        return root.get(xml_lang), {
            e.findtext("a:title", namespaces=ns): e.get(xml_lang)
            for e in root.iterfind("a:entry", ns)
        }

    assert langs("atom") == ("und", {"Fuel strike": "en", "Grève": "fr"})
    assert langs("rss") == ("en-GB", {"Queues in Paris": None})
    assert langs("json") == ("pt-BR", {"Greve": None})
    assert langs("all") == ("und", {
        "Fuel strike": "en", "Grève": "fr", "Queues in Paris": "en-GB", "Greve": "pt-BR",
    })  # fmt: skip


def test_a_json_feed_notes_lines_authors_and_site(tmp_path: Path, server: FeedServer) -> None:
    """A JSON Feed note written as plain text keeps its lines; an item by two authors names
    both; an outlet known only by its address (generic adapter) keeps that address's scheme
    and port as the author's URI."""
    url = server.route("/j", Route(headers=JSON))
    site = server.base  # http://127.0.0.1:PORT
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "Notes", "items": [
        {"id": "n1", "url": f"{site}/notes/1", "title": "Two lines and a list",
         "content_text": "First line of the note.\nSecond line right after it.\n\n"
                         "- item one\n- item two",
         "authors": [{"name": "Ana Lima"}, {"name": "Bruno Souza"}, {"url": "https://x.example"}],
         "date_published": "2022-10-21T18:00:00Z"}]}  # fmt: skip
    server.routes["/j"].body = json.dumps(doc).encode()
    setup = Setup(tmp_path, [url_source("notes", url, adapter="generic")])
    assert by_name(setup.run())["notes"].new == 1
    entry = setup.feed("notes").entries[0]
    assert entry.content[0].value.replace("<br />", "<br>") == (  # feedparser writes <br />
        "<p>First line of the note.<br>Second line right after it.</p>"
        "<p>- item one<br>- item two</p>"
    )
    assert entry.author_detail.name == "Ana Lima, Bruno Souza"
    assert entry.author_detail.href == site + "/"


def test_podcast_and_video_enclosures_are_playable_in_the_entry(
    tmp_path: Path, server: FeedServer
) -> None:
    """A podcast episode's audio enclosure, a Media RSS video and a JSON Feed attachment
    become players in the entry's content, each with a link to its file; a file the text
    already links is not added twice; a Media RSS image is still the lead image."""
    rss = b"""<?xml version="1.0" encoding="utf-8"?>
    <rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>
    <item><title>Episode 12: the fuel strike</title><link>https://pod.example.com/12</link>
    <pubDate>Fri, 21 Oct 2022 18:00:00 GMT</pubDate><description>This week: the strike.</description>
    <enclosure url="https://cdn.example.com/ep12.mp3" type="audio/mpeg" length="1234"/></item>
    <item><title>Queues filmed</title><link>https://pod.example.com/13</link>
    <pubDate>Fri, 21 Oct 2022 19:00:00 GMT</pubDate>
    <description>&lt;p&gt;Watch it &lt;a href="https://cdn.example.com/q.mp4"&gt;here&lt;/a&gt;.&lt;/p&gt;</description>
    <media:content url="https://cdn.example.com/q.mp4" medium="video" type="video/mp4"/>
    <media:content url="https://cdn.example.com/still.webm" medium="video"/>
    <media:content url="https://cdn.example.com/q.jpg" medium="image"/></item>
    </channel></rss>"""
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [
        {"id": "1", "url": "https://pod.example.com/14", "title": "Episode 14",
         "content_text": "The refinery workers speak.", "date_published": "2022-10-22T18:00:00Z",
         "attachments": [{"url": "/ep14.m4a", "mime_type": "audio/mp4"},
                         {"url": "/ep14.pdf", "mime_type": "application/pdf"}]}]}  # fmt: skip
    json_url = server.route("/j.json", Route(body=json.dumps(doc).encode(), headers=JSON))
    setup = Setup(tmp_path, [
        url_source("rss", server.route("/r", Route(body=rss, headers=RSS)), adapter="generic"),
        url_source("json", json_url, adapter="generic"),
    ])  # fmt: skip
    setup.run()
    entries = {e.title: e for e in setup.feed("all").entries}
    # (feedparser writes empty elements as "<source />")
    episode = entries["Episode 12: the fuel strike"].content[0].value.replace(" />", ">")
    assert (
        '<audio controls="controls" preload="none"><source src="https://cdn.example.com/ep12.mp3" type="audio/mpeg">'
        in episode
    )
    assert (
        '<a href="https://cdn.example.com/ep12.mp3"' in episode
        and "▶ cdn.example.com/ep12.mp3" in episode
    )
    video = entries["Queues filmed"]
    body = video.content[0].value.replace(" />", ">")
    assert body.count("<video") == 1 and body.count("q.mp4") == 1
    # A Media RSS video without a type: guessed from its name, so a browser will play it.
    assert '<source src="https://cdn.example.com/still.webm" type="video/webm">' in body
    assert video.media_content[0]["url"] == "https://cdn.example.com/q.jpg"
    attached = entries["Episode 14"].content[0].value.replace(" />", ">")
    assert f'<source src="{server.base}/ep14.m4a" type="audio/mp4">' in attached
    assert "ep14.pdf" not in attached


def test_entries_without_id_link_or_date_keep_a_stable_identity(
    tmp_path: Path, server: FeedServer
) -> None:
    doc = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>
    <item><title>Bulletin</title><description>Only words here, nothing else to go by.</description></item>
    <item><description>An untitled note with no link, no id and no date.</description></item>
    </channel></rss>"""
    url = server.route("/f", Route(body=doc, headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url, adapter="generic")])
    assert by_name(setup.run())["live"].new == 2
    first = {e.id: e for e in setup.feed("live").entries}
    # The same document served again a day later (changed bytes elsewhere): same two entries.
    server.route(
        "/f", Route(body=doc.replace(b"<title>t</title>", b"<title>t2</title>"), headers=RSS)
    )
    again = by_name(setup.run(NOW + timedelta(days=1)))["live"]
    assert (again.new, again.updated) == (0, 0)
    second = {e.id: e for e in setup.feed("live").entries}
    assert first.keys() == second.keys()
    assert {e.published for e in second.values()} == {e.published for e in first.values()}
    # The untitled entry is titled from the start of its text.
    assert sorted(e.title for e in second.values()) == [
        "An untitled note with no link, no id and no date.", "Bulletin",
    ]  # fmt: skip


def test_relative_links_resolve_against_xml_base_and_feed_url(
    tmp_path: Path, server: FeedServer
) -> None:
    articles = livefeeds.dw()
    with_base = livefeeds.atom1(articles, base="https://www.dw.com/", relative=True)
    url1 = server.route("/based", Route(body=with_base, headers=ATOM))
    url2 = server.route("/bare", Route(body=livefeeds.atom1(articles, relative=True), headers=ATOM))
    # Two workspaces: the same article from two sources would be one entry and a duplicate.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    based = Setup(tmp_path / "a", [url_source("based", url1, adapter="generic")])
    bare = Setup(tmp_path / "b", [url_source("bare", url2, adapter="generic")])
    based.run()
    bare.run()
    assert [e.link for e in based.feed("based").entries] == [articles[0].link]
    assert [e.link for e in bare.feed("bare").entries] == [
        server.base + articles[0].link.removeprefix("https://www.dw.com")
    ]


def test_too_many_entries_takes_the_cap_and_says_so(tmp_path: Path, server: FeedServer) -> None:
    many = livefeeds.distinct(livefeeds.voa()[0], 30)
    url = server.route("/f", Route(body=livefeeds.rss2(many), headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url, max_items=10)])
    live = by_name(setup.run())["live"]
    assert live.new == 10
    assert any("30 entries" in s.reason and "max_items" in s.reason for s in live.skipped)


# -- the address policy -----------------------------------------------------------------------


def test_loopback_is_refused_unless_the_source_allows_it(
    tmp_path: Path, server: FeedServer
) -> None:
    url = server.route("/f", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    redirect = server.route("/r", Route(status=302, headers={"location": url}))
    setup = Setup(tmp_path, [
        {"name": "direct", "url": url, "adapter": "voa"},
        {"name": "localhost", "url": url.replace("127.0.0.1", "localhost"), "adapter": "voa"},
        url_source("allowed", redirect, adapter="voa"),
    ])  # fmt: skip
    report = by_name(setup.run())
    for name in ("direct", "localhost"):
        assert report[name].error is not None
        assert "loopback address" in report[name].error and "allow_private" in report[name].error
    assert report["allowed"].new == 3
    assert len(server.hits("/f")) == 1  # only the allowed source's request reached the server


# -- snapshots and --offline ------------------------------------------------------------------


def test_offline_rebuilds_from_snapshots_without_the_network(
    tmp_path: Path, server: FeedServer
) -> None:
    url = server.route("/f", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    setup = Setup(tmp_path, [url_source("live", url)])
    setup.run()
    server.stop()  # no network from here on
    out = tmp_path / "out"
    for f in out.iterdir():
        f.unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "aggregator", "run", "--offline", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    live = report["sources"][0]
    assert live["fetch"]["outcome"] == "offline" and live["files_read"] == 3
    assert live["unchanged"] == 3
    assert len(setup.feed("live").entries) == 3


@pytest.mark.parametrize("then", ["304", "changed", "offline"])
def test_an_upgrade_cleans_a_live_sources_stored_entries_again(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    """Entries stored from a live feed by an earlier version, whose rules left the mirror's
    promo in and the pictures behind their proxy. This version's first run cleans them again
    from the source's snapshot, whatever the server answers (304, a feed with one more entry)
    or with --offline: ids and dates kept, not counted (or dated) as edits, and the next run
    does nothing."""
    from aggregator import clean

    route = Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS, etag='"v1"')
    url = server.route("/f", route)
    setup = Setup(tmp_path, [url_source("live", url, adapter="voa")])
    with monkeypatch.context() as patch:
        patch.setattr(clean, "BEFORE_OUTLET", tuple(r for r in clean.BEFORE_OUTLET if r.name != "mirror_promo"))  # fmt: skip
        patch.setattr(clean, "AFTER_OUTLET", tuple(r for r in clean.AFTER_OUTLET if r.name != "image_proxy"))  # fmt: skip
        assert by_name(setup.run())["live"].new == 3
    before = {e.id: e for e in setup.feed("live").entries}
    assert sum("获取更多RSS" in e.content[0].value for e in before.values()) == 1
    assert sum("weserv" in e.content[0].value for e in before.values()) == 3
    if then == "changed":  # one more article: the server answers 200 with new bytes
        extra = livefeeds.Article(
            "港口工人罢工进入第三天", "https://www.voachinese.com/a/strike/7700009.html",
            "<p>港口工人罢工进入第三天，货轮在锚地排起长队。</p>", "2022-01-11T08:00:00Z",
        )  # fmt: skip
        route.body, route.etag = livefeeds.rss2([*livefeeds.voa(), extra]), '"v2"'
    report = by_name(setup.run(NOW + timedelta(hours=1), offline=then == "offline"))["live"]
    outcome = {"304": "not-modified", "changed": "fetched", "offline": "offline"}[then]
    assert report.fetch is not None and report.fetch.outcome == outcome
    assert (report.recleaned, report.updated) == (3, 0)
    assert report.new == (1 if then == "changed" else 0)
    after = {e.id: e for e in setup.feed("live").entries}
    assert before.keys() <= after.keys()
    for atom_id, e in before.items():
        body = after[atom_id].content[0].value
        for left in ("获取更多RSS", "feedx", "weserv"):
            assert left not in body, (atom_id, left)
        assert (after[atom_id].published, after[atom_id].updated) == (e.published, e.updated)
    feeds = (tmp_path / "out" / "all.atom").read_bytes()
    again = by_name(setup.run(NOW + timedelta(hours=2), offline=then == "offline"))["live"]
    assert (again.recleaned, again.updated, again.new) == (0, 0, 0)
    assert (tmp_path / "out" / "all.atom").read_bytes() == feeds


def test_offline_without_a_snapshot_says_what_to_do(tmp_path: Path, server: FeedServer) -> None:
    setup = Setup(tmp_path, [url_source("live", server.base + "/f")])
    live = by_name(setup.run(offline=True))["live"]
    assert live.error is not None and "without --offline" in live.error
    assert server.hits("/f") == []


def test_a_stopped_run_starts_no_further_fetch(tmp_path: Path, server: FeedServer) -> None:
    """Asked to stop (Ctrl-C, the daemon's SIGTERM) while its fetches queue: the two under way
    end and are taken in; the other four are not started, and their state is as it was."""
    body = livefeeds.rss2(livefeeds.voa())
    routes = [
        server.route(f"/f{n}.xml", Route(body=body, headers=RSS, delay=0.5)) for n in range(6)
    ]
    setup = Setup(tmp_path, [url_source(f"f{n}", u) for n, u in enumerate(routes)],
                  fetch="concurrency = 2")  # fmt: skip
    # Stop as soon as the server has the first two requests (recorded on arrival, answered
    # half a second later): the other four wait for a free slot meanwhile.
    report = setup.run(stop=lambda: len(server.requests) >= 2)
    assert sorted(by_name(report)) == ["f0", "f1"]
    assert all(r.fetch is not None and r.fetch.outcome == "fetched" for r in report.sources)
    assert sum(len(server.hits(f"/f{n}.xml")) for n in range(6)) == 2
    with Store(setup.config.state_db) as store:
        assert store.fetch_state("f5").last_attempt is None  # never asked
    # The feeds are written. f0 and f1 serve the same entries: f0, listed first, shows them.
    assert len(setup.feed("f0").entries) == len(setup.feed("all").entries) > 0
    assert setup.feed("f1").entries == []


def test_a_source_a_stop_left_unfetched_between_others_holds_up_nothing(
    tmp_path: Path, server: FeedServer
) -> None:
    """Answers are stored in config.toml order. A stop can leave a source in the middle of
    that order unfetched (waiting for its host while a later source on another host was
    under way): the sources after it are still taken in, not dropped."""
    body = livefeeds.rss2(livefeeds.voa())
    a, b = (server.route(f"/{n}.xml", Route(body=body, headers=RSS, delay=0.5)) for n in "ab")
    c = server.route("/c.xml", Route(body=body, headers=RSS, delay=0.5))
    c = c.replace("127.0.0.1", "localhost")  # another host: not held up by per_host
    setup = Setup(tmp_path, [url_source("a", a), url_source("b", b), url_source("c", c)],
                  fetch="concurrency = 3\nper_host = 1")  # fmt: skip
    report = setup.run(stop=lambda: len(server.requests) >= 2)
    assert sorted(by_name(report)) == ["a", "c"]
    assert [r.new for r in report.sources] == [len(livefeeds.voa()), 0]
    assert server.hits("/b.xml") == []
    assert len(setup.feed("a").entries) == len(livefeeds.voa())


def test_cli_summary_names_the_failed_source_and_reason(tmp_path: Path, server: FeedServer) -> None:
    good = server.route("/good", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS))
    server.route("/bad", Route(status=503, headers={"retry-after": "600"}))
    Setup(tmp_path, [url_source("good", good), url_source("bad", server.base + "/bad")])
    proc = subprocess.run(
        [sys.executable, "-m", "aggregator", "run"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # The failure on stderr, once (what cron mails); the summary on stdout.
    assert "source bad failed:" in proc.stderr and "HTTP 503" in proc.stderr
    assert proc.stderr.count("source bad failed:") == 1
    assert "the server asks us to wait" in proc.stderr
    assert "Run summary" in proc.stdout and "│ bad " in proc.stdout
    assert mint_atom_id("voa:6800196") in (tmp_path / "out" / "all.atom").read_text(
        encoding="utf-8"
    )


def test_check_names_url_source_problems_by_key_path(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'base_url = "http://localhost:8080/"\n'
        '[fetch]\ntimeout = "30s"\ninterval = "bogus"\n'
        '[[sources]]\nname = "a"\npath = "x"\nurl = "https://example.org/f"\n'
        '[[sources]]\nname = "b"\nurl = "ftp://example.org/f"\n'
        '[[sources]]\nname = "c"\nurl = "https://example.org/f"\ntimeout = -3\n'
        'headers = { "Bad Header" = "x" }\n'
        '[[sources]]\nname = "d"\nurl = "https://example.org/a feed"\n'
        '[[sources]]\nname = "e"\nurl = "https://example.org:99999/f"\n',
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "aggregator", "check"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    for problem in (
        "fetch.interval: must be seconds",
        "sources[0]: give either path (an archive folder) or url (a feed), not both",
        "sources[1].url: must be an absolute http(s) URL",
        "sources[2].timeout: Input should be greater than 0",
        "sources[2].headers: 'Bad Header' is not a valid HTTP header",
        "sources[3].url: must be an absolute http(s) URL of a feed; it holds a space",
        "sources[4].url: must be an absolute http(s) URL of a feed; it is malformed",
    ):
        assert problem in proc.stderr, proc.stderr


def test_control_characters_in_titles_and_categories_never_stop_a_feed(
    tmp_path: Path, server: FeedServer
) -> None:
    """XML 1.0 cannot hold most C0 controls; a feed that sends one (here as a character
    reference, as real feeds do) loses the character, not the feed."""
    article = livefeeds.voa()[0]
    body = (
        livefeeds.rss2([article])
        .replace(article.title.encode(), b"Title&#8; with a backspace")
        .replace(b"<item>", b"<item><category>World&#1;</category>", 1)
    )
    url = server.route("/voa.xml", Route(body=body, headers=RSS))
    setup = Setup(tmp_path, [url_source("voa", url, adapter="voa")])
    report = setup.run()
    assert report.errors == ()
    entry = setup.feed("all").entries[0]
    assert entry.title == "Title with a backspace"
    assert [t.term for t in entry.tags] == ["World"]


def test_feeds_staged_while_others_download_are_what_the_end_writes(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each URL source's own feed is rendered and staged as soon as the source is taken in,
    while the others download. When the near-duplicate pass then merges one source's articles
    into another's stories, the staged feed is replaced: the published files are exactly
    those of a run that renders everything at the end."""
    import dataclasses
    import re

    from aggregator import pipeline

    articles = livefeeds.voa()
    copies = [  # the same articles under other ids, each with a sentence more
        dataclasses.replace(
            a,
            link=re.sub(r"\d{6,}(?=\.html$)", str(8_000_000 + n), a.link),
            body=a.body + "<p>编者按：本文发表后有所更新，补充了各方的最新表态。</p>",
        )
        for n, a in enumerate(articles)
    ]
    original = server.route("/voa.rss", Route(body=livefeeds.rss2(articles), headers=RSS))
    mirror = server.route("/mirror.rss", Route(body=livefeeds.rss2(copies), headers=RSS))
    sources = [url_source("voa", original, "voa"), url_source("mirror", mirror, "voa")]

    staged: list[str] = []
    publish_early = pipeline._Early.publish

    def counting(self: Any, source: str, store: Store, now: datetime) -> None:
        staged.append(source)
        publish_early(self, source, store, now)

    monkeypatch.setattr(pipeline._Early, "publish", counting)
    (tmp_path / "early").mkdir()
    early = Setup(tmp_path / "early", sources)
    report = early.run()
    assert sorted(staged) == ["mirror", "voa"]
    assert sum(s.near_duplicates for s in report.sources) == len(articles)

    monkeypatch.setattr(pipeline._Early, "publish", lambda *args: None)
    (tmp_path / "late").mkdir()
    late = Setup(tmp_path / "late", sources)
    late.run()

    def files(root: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((root / "out").iterdir()) if p.is_file()}

    assert files(tmp_path / "early") == files(tmp_path / "late")
    assert len(files(tmp_path / "early")) >= 9  # all, voa, mirror in three formats


def test_many_feeds_are_read_by_worker_processes_as_by_one(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """From PARALLEL_FEEDS URL sources on, the feeds fetched are parsed and cleaned by worker
    processes while the run stores them. What is stored, reported and published is exactly
    what one process makes: entries, skips with their reasons, a source that fails. A worker
    that dies costs nothing: its feeds are read by the run itself."""
    from aggregator import pipeline

    monkeypatch.setattr(pipeline, "PARALLEL_FEEDS", 4)
    monkeypatch.setattr(pipeline, "PARALLEL_THRESHOLD", 2)  # the archive's files too
    bad = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [
        {"id": "1", "url": "https://example.com/a/1.html", "title": "fine",
         "content_html": "<p>" + "正文。" * 40 + "</p>", "date_published": "2026-11-20T10:00:00Z"},
        {"id": "2", "url": "https://example.com:99999/a/2.html", "title": "bad port"},
    ]}  # fmt: skip
    sources = [
        url_source("voa", server.route("/voa", Route(body=livefeeds.rss2(livefeeds.voa()), headers=RSS)), "voa"),
        url_source("dw", server.route("/dw", Route(body=livefeeds.atom1(livefeeds.dw()), headers=ATOM)), "dw"),
        url_source("aj", server.route("/aj", Route(body=livefeeds.json_feed(livefeeds.aljazeera()), headers=JSON)), "aljazeera"),
        url_source("json", server.route("/j", Route(body=json.dumps(bad).encode(), headers=JSON))),
        url_source("html", server.route("/h", Route(body=b"<html><body>no feed</body></html>", headers={"content-type": "text/html"}))),
        {"name": "seeds", "path": str(Path(__file__).parent.parent / "seeds"), "adapter": "auto"},
    ]  # fmt: skip
    submitted: list[str] = []
    submit = pipeline._Workers.submit

    def counting(self: Any, fn: Any, source: Any, fetched: Any) -> Any:
        future = submit(self, fn, source, fetched)
        if future is not None:
            submitted.append(source.name)
        return future

    monkeypatch.setattr(pipeline._Workers, "submit", counting)

    def outcome(setup: Setup) -> tuple[Any, dict[str, bytes]]:
        report = setup.run()
        seen = sorted(
            (s.name, s.new, s.files_read, tuple(s.skipped), s.error, dict(s.rules))
            for s in report.sources
        )
        out = setup.root / "out"
        return seen, {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}

    runs = {}
    for workers in (1, 2):
        (tmp_path / str(workers)).mkdir()
        runs[workers] = outcome(Setup(tmp_path / str(workers), sources, top=f"workers = {workers}"))
    assert sorted(submitted) == ["aj", "dw", "html", "json", "voa"]  # all read by workers
    assert runs[2] == runs[1]
    reports = {name: (new, skipped, error) for name, new, _, skipped, error, _ in runs[2][0]}
    assert reports["voa"][0] == len(livefeeds.voa()) and reports["aj"][0] >= 1
    assert [s.reason for s in reports["json"][1]] == [
        "the article link 'https://example.com:99999/a/2.html' is not an http(s) URL with a host and a valid port"
    ]
    assert "not a feed" in (reports["html"][2] or "")
    read = {name: files_read for name, _, files_read, *_ in runs[2][0]}
    assert read["seeds"] == 5  # (its articles are the live feeds': one entry each)
    assert len(runs[2][1]) >= 21  # all and each source, in three formats

    # The next run, every feed read before: the few that change are read by the run itself.
    Setup(tmp_path / "2", sources, top="workers = 2").run()
    assert len(submitted) == 5

    # A worker killed mid-run (the out-of-memory killer): every feed is still read, and the
    # archive after them.
    monkeypatch.setattr(pipeline, "read_feed", _dies_in_a_worker)
    (tmp_path / "killed").mkdir()
    with caplog.at_level(logging.WARNING, logger="aggregator"):
        assert outcome(Setup(tmp_path / "killed", sources, top="workers = 2")) == runs[1]
    assert "a worker process failed (BrokenProcessPool" in caplog.text


_TEST_PROCESS = os.getpid()


def _dies_in_a_worker(source: Any, fetched: Any) -> Any:
    """``pipeline.read_feed`` that kills the worker process calling it, after a while: every
    feed is handed over before the workers are found broken."""
    if os.getpid() != _TEST_PROCESS:
        time.sleep(0.5)
        os._exit(9)
    return _read_feed(source, fetched)


@pytest.mark.parametrize("workers", [1, 2])
def test_which_source_shows_a_shared_article_is_config_order_not_answer_order(
    tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Two URL sources give the same articles: one feed under two addresses, and a mirror of
    it whose copies live under other links (exact duplicates). The source listed first in
    config.toml shows them, and its links are the entries' own, whichever server answers
    first: two runs on the same inputs publish the same bytes. (Fuzzing found the quicker
    server's source showing them.) With workers the feeds are parsed in worker processes."""
    import dataclasses

    from aggregator import pipeline

    monkeypatch.setattr(pipeline, "PARALLEL_FEEDS", 1)  # the workers path, with workers = 2
    articles = livefeeds.voa()
    mirrored = [
        dataclasses.replace(a, link=a.link.replace("www.voachinese.com", "voa.mirror.example"))
        for a in articles
    ]
    bodies = {
        "/a.rss": livefeeds.rss2(articles),
        "/b.rss": livefeeds.rss2(articles),
        "/c.rss": livefeeds.rss2(mirrored),
    }
    sources = [
        url_source("first", server.base + "/a.rss", "voa"),
        url_source("second", server.base + "/b.rss", "voa"),
        url_source("third", server.base + "/c.rss", "generic"),
    ]
    published = []
    for slow in ("/a.rss", "/b.rss", "/c.rss"):
        for path, body in bodies.items():
            server.route(path, Route(body=body, headers=RSS, delay=1.0 if path == slow else 0))
        root = tmp_path / slow.strip("/")
        root.mkdir()
        setup = Setup(root, sources, top=f"workers = {workers}")
        report = by_name(setup.run())
        assert report["first"].new == len(articles), slow
        assert (report["second"].new, report["third"].new) == (0, 0), slow
        assert report["third"].duplicates == len(articles), slow
        assert sorted(e.link for e in setup.feed("first").entries) == sorted(
            a.link for a in articles
        )
        assert setup.feed("second").entries == [] and setup.feed("third").entries == []
        published.append(
            {p.name: p.read_bytes() for p in sorted((root / "out").iterdir()) if p.is_file()}
        )
    assert published[0] == published[1] == published[2]
