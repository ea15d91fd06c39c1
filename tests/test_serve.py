"""`aggregator serve` end to end: the real CLI as a server subprocess on 127.0.0.1, answering
http.client (which sends and returns bytes as they are) and raw sockets (for request targets no
client library would send), a headless Chromium, and Debian's newsboat feed reader.

The feeds come from `aggregator run` on the seeds. The main server is shared by the module
(starting it and making its feeds takes ~2 s); tests that change files use files of their own.
"""

from __future__ import annotations

import calendar
import contextlib
import gzip
import http.client
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import brotli
import feedparser
import pytest
from conftest import Workspace, make_workspace
from lxml import etree, html
from prometheus_client.parser import text_string_to_metric_families

from tests.feedserver import FeedServer, Route

ATOM = "application/atom+xml; charset=utf-8"
# What Chromium sends when it navigates to a URL.
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
# The merged feed's title holds markup characters: every page must show them as text.
MERGED_TITLE = 'All <b>test</b> & "sources"'
# Seconds to wait for a started server to answer; it answers in ~1 s on the CI machine.
START_TIMEOUT = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.fail(
            f"{program} is not installed; this test needs it: apt-get install -y {package} "
            "(.ci/run installs it)"
        )
    return path


@dataclass
class Served:
    ws: Workspace
    proc: subprocess.Popen[str]
    port: int
    prefix: str  # the path of base_url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def request(
        self, path: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body as sent: not decompressed)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, self.prefix + path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def raw(self, target: bytes) -> tuple[int, bytes]:
        """Send ``GET <target>`` exactly as given; (status, whole response)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(
                b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return int(data.split(b" ", 2)[1]), data

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the server did not stop within 15 s of the signal") from None
        assert self.proc.stderr is not None
        return self.proc.returncode, self.proc.stderr.read()


def start(ws: Workspace, port: int, prefix: str, *, flag: bool = True) -> Served:
    """``aggregator serve``, on ``port`` by --port (``flag``) or by config.toml's [serve]."""
    args = ["--port", str(port)] if flag else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator", "serve", *args],
        cwd=ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(ws, proc, port, prefix)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {served.stop()[1]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return served
        except OSError:
            time.sleep(0.05)
    served.stop(signal.SIGKILL)
    raise AssertionError(f"the server did not answer within {START_TIMEOUT} s")


def configure(ws: Workspace, base_url: str, extra: str = "") -> None:
    text = ws.config.read_text(encoding="utf-8")
    text = text.replace('base_url = "https://news.example.org/feeds/"', f'base_url = "{base_url}"')
    text = text.replace('title = "All test sources"', f"title = '{MERGED_TITLE}'")
    ws.config.write_text(text + extra, encoding="utf-8")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Feeds made from the seeds, served under /feeds/ (base_url has that path)."""
    ws = make_workspace(tmp_path_factory.mktemp("serve"))
    port = _free_port()
    configure(ws, f"http://127.0.0.1:{port}/feeds/")
    ws.cli("run", check=True)
    server = start(ws, port, "/feeds/")
    yield server
    code, err = server.stop(signal.SIGTERM)
    assert code == 0, f"SIGTERM should stop the server cleanly (exit 0): {err}"
    assert "stopped" in err
    assert "warning" not in err  # base_url names the port served


def _feed_names(s: Served) -> list[str]:
    return sorted(p.name for p in s.ws.out.glob("*.atom"))


# --- files, types, HEAD ---


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("all.atom", ATOM),
        ("voa.atom", ATOM),
        ("feeds.opml", "text/x-opml; charset=utf-8"),
        ("feed.xsl", "text/xsl; charset=utf-8"),
    ],
)
def test_published_files_with_their_types(served: Served, name: str, content_type: str) -> None:
    status, headers, body = served.request(name)
    assert status == 200
    assert headers["content-type"] == content_type
    assert body == (served.ws.out / name).read_bytes()
    assert headers["content-length"] == str(len(body))
    assert headers["cache-control"] == "public, max-age=300"
    assert headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in headers
    # HEAD: the same headers, no body.
    h_status, h_headers, h_body = served.request(name, "HEAD")
    assert (h_status, h_body) == (200, b"")
    for key in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
        assert h_headers[key] == headers[key], key


def test_files_other_branches_publish_need_no_code_change(served: Served) -> None:
    """RSS and JSON Feed twins and archive documents in subfolders are served by extension;
    files of other kinds, hidden files (publish.py's temporaries) and folders are not."""
    out = served.ws.out
    (out / "archive" / "2022").mkdir(parents=True)
    files = {
        "all.rss": ("application/rss+xml; charset=utf-8", b"<rss version='2.0'/>"),
        "all.json": ("application/feed+json; charset=utf-8", b'{"version": "x"}'),
        "archive/2022/all.atom": (ATOM, b"<feed xmlns='http://www.w3.org/2005/Atom'/>"),
        "archive/index.html": ("text/html; charset=utf-8", b"<p>archive</p>"),
        "archive/style.css": ("text/css; charset=utf-8", b"p {}"),
        "archive/list.xml": ("application/xml; charset=utf-8", b"<list/>"),
    }
    for rel, (_, data) in files.items():
        (out / rel).write_bytes(data)
    for rel, (content_type, data) in files.items():
        status, headers, body = served.request(rel)
        assert (status, headers["content-type"], body) == (200, content_type, data), rel
    hidden = {".all.atom.k2j3.tmp": b"<feed/>", "notes.txt": b"x", "state.sqlite3": b"x"}
    for name, data in hidden.items():
        (out / name).write_bytes(data)
    for rel in [*hidden, "archive", "archive/", "archive/2022", "missing.atom", "ALL.ATOM"]:
        assert served.request(rel)[0] == 404, rel


def test_other_methods_are_refused(served: Served) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = served.request("all.atom", method)
        assert status == 405, method
        assert headers["allow"] == "GET, HEAD"


def test_paths_outside_the_base_url_path(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request("GET", "/feeds")
    resp = conn.getresponse()
    resp.read()
    assert (resp.status, resp.getheader("location")) == (308, "/feeds/")
    conn.request("GET", "/all.atom")  # the file exists, but not at this path
    assert conn.getresponse().status == 404
    conn.close()


# --- conditional GET ---


def test_conditional_get(served: Served) -> None:
    status, headers, body = served.request("all.atom")
    etag, modified = headers["etag"], headers["last-modified"]
    assert etag.startswith('"') and not etag.startswith("W/")  # strong
    mtime = int((served.ws.out / "all.atom").stat().st_mtime)
    assert parsedate_to_datetime(modified).timestamp() == mtime
    not_modified = [
        {"If-None-Match": etag},
        {"If-None-Match": "W/" + etag},  # weak comparison for If-None-Match
        {"If-None-Match": f'"other", {etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
        {"If-Modified-Since": formatdate(mtime + 3600, usegmt=True)},
    ]
    for headers_sent in not_modified:
        status, got, body = served.request("all.atom", headers=headers_sent)
        assert (status, body) == (304, b""), headers_sent
        assert got["etag"] == etag
        assert got["cache-control"] == "public, max-age=300"
        assert got["vary"] == "accept, accept-encoding"
    modified_since = [
        {"If-None-Match": '"other"'},
        {"If-None-Match": etag[:-2] + '"'},
        {"If-Modified-Since": formatdate(mtime - 1, usegmt=True)},
        {"If-Modified-Since": "yesterday"},  # not an HTTP-date: ignored
        {"If-Modified-Since": "Sat, 01 Jan 9999999999 00:00:00 GMT"},  # no datetime can hold it
        {"If-Modified-Since": "Sat, 01 Jan 2022 99999999999:00:00 GMT"},
        # If-None-Match decides when both are sent (RFC 9110 13.2.2).
        {"If-None-Match": '"other"', "If-Modified-Since": modified},
    ]
    for headers_sent in modified_since:
        status, _, body = served.request("all.atom", headers=headers_sent)
        assert status == 200, headers_sent
        assert body == (served.ws.out / "all.atom").read_bytes()


def test_a_replaced_file_is_served_new_at_once(served: Served) -> None:
    """publish.py replaces a feed by rename; the next request sees the new bytes and tag."""
    path = served.ws.out / "replaced.xml"
    path.write_bytes(b"<v>1</v>")
    _, first, _ = served.request("replaced.xml")
    tmp = served.ws.out / ".replaced.xml.tmp"
    tmp.write_bytes(b"<v>2</v>")
    tmp.replace(path)
    status, second, body = served.request("replaced.xml", headers={"If-None-Match": first["etag"]})
    assert (status, body) == (200, b"<v>2</v>")
    assert second["etag"] != first["etag"]
    path.unlink()
    assert served.request("replaced.xml")[0] == 404


# --- compression ---


@pytest.mark.parametrize(
    ("accept_encoding", "coding"),
    [
        ("gzip, deflate, br", "br"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),
        ("br;q=0.5, gzip", "gzip"),
        ("*", "br"),
        ("gzip;q=0, br;q=0", None),
        ("identity", None),
        ("gzip;q=0.5, identity", None),
        ("deflate", None),
    ],
)
def test_compressed_responses(served: Served, accept_encoding: str, coding: str | None) -> None:
    plain = (served.ws.out / "all.atom").read_bytes()
    status, headers, body = served.request("all.atom", headers={"Accept-Encoding": accept_encoding})
    assert status == 200
    assert headers.get("content-encoding") == coding
    assert headers["content-type"] == ATOM
    assert headers["content-length"] == str(len(body))
    decoded = {"br": brotli.decompress, "gzip": gzip.decompress, None: bytes}[coding](body)
    assert decoded == plain
    if coding:
        assert len(body) < len(plain) / 2
    # Each coding is its own representation with its own strong tag, and revalidates.
    _, identity, _ = served.request("all.atom")
    assert (headers["etag"] == identity["etag"]) == (coding is None)
    again = served.request(
        "all.atom", headers={"Accept-Encoding": accept_encoding, "If-None-Match": headers["etag"]}
    )
    assert again[0] == 304


# --- traversal and malformed paths ---

TRAVERSALS = [
    b"/feeds/../config.toml",
    b"/feeds/%2e%2e/config.toml",
    b"/feeds/%2E%2E/config.toml",
    b"/feeds/.%2e/config.toml",
    b"/feeds/..%2fconfig.toml",
    b"/feeds/..%2Fconfig.toml",
    b"/feeds/%2e%2e%2fconfig.toml",
    b"/feeds/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    b"/feeds/..%5cconfig.toml",
    b"/feeds/..\\config.toml",
    b"/feeds/%2fetc%2fpasswd",
    b"/feeds//etc/passwd",
    b"/feeds/%2F%2Fetc/passwd",
    b"/etc/passwd",
    b"/feeds/etc/passwd",
    b"/feeds/all.atom%00.html",
    b"/feeds/%00",
    b"/feeds/%00/../config.toml",
    b"/feeds/state/test.sqlite3",
    b"/feeds/%2e%2e/state/test.sqlite3",
    b"/feeds/.%2e/.%2e/.%2e/.%2e/etc/passwd",
    b"/feeds/%c0%ae%c0%ae/config.toml",  # overlong UTF-8 dots
    b"/feeds/leak.xml",  # a symlink to a file outside output_dir
    b"/feeds/./all.atom",
    b"../config.toml",
    b"http://127.0.0.1/feeds/../config.toml",
    b"file:///etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode() for t in TRAVERSALS])
def test_traversal_attempts_are_answered_4xx(served: Served, target: bytes) -> None:
    leak = served.ws.out / "leak.xml"
    if not leak.is_symlink():
        leak.symlink_to(served.ws.config)
    status, response = served.raw(target)
    assert 400 <= status < 500, response[:200]
    assert b"base_url" not in response  # config.toml's text
    assert b"root:" not in response  # /etc/passwd's
    assert b"SQLite format" not in response


# --- pages for people ---


def _page(served: Served, path: str) -> etree._Element:
    status, headers, body = served.request(path)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["content-security-policy"]
    return html.fromstring(body)


def test_home_page_lists_every_feed(served: Served) -> None:
    doc = _page(served, "")
    links = doc.xpath('//head/link[@rel="alternate"][@type="application/atom+xml"]')
    expected = {f"{served.url}{name}" for name in _feed_names(served)}
    assert {link.get("href") for link in links} == expected
    rows = {row.get("data-feed"): row for row in doc.xpath('//tr[@class="feed"]')}
    assert sorted(f"{name}.atom" for name in rows) == _feed_names(served)
    for name, row in rows.items():
        feed = feedparser.parse((served.ws.out / f"{name}.atom").read_bytes())
        cells = row.xpath("./td")
        assert cells[0].text_content() == feed.feed.title  # escaped markup reads back as text
        assert cells[0].xpath(".//a/@href") == [f"{name}.atom"]
        assert int(cells[1].text_content()) == len(feed.entries)
        assert cells[2].xpath(".//time/@datetime") == [feed.feed.updated]
        assert cells[3].xpath(".//a/@href") == [f"{served.url}{name}.atom"]
    assert rows["all"].xpath("./td")[0].text_content() == MERGED_TITLE
    assert not doc.xpath("//td//b")  # the title's <b> stayed text
    assert doc.xpath('//a[@href="feeds.opml"]') and doc.xpath('//a[@href="status"]')


def test_opml_lists_every_feed_at_its_served_url(served: Served) -> None:
    status, _, body = served.request("feeds.opml")
    assert status == 200
    outlines = etree.fromstring(body).findall(".//outline")
    assert sorted(o.get("xmlUrl") for o in outlines) == sorted(
        f"{served.url}{name}" for name in _feed_names(served)
    )
    for o in outlines:  # each one is there to subscribe to
        assert served.request(o.get("xmlUrl").removeprefix(served.url))[0] == 200


def test_status_page_shows_each_source(served: Served) -> None:
    doc = _page(served, "status")
    rows = {row.get("data-source"): row for row in doc.xpath('//tr[@class="source"]')}
    assert set(rows) == {"voa", "dw", "aljazeera"}
    entries = {
        name: len(feedparser.parse((served.ws.out / f"{name}.atom").read_bytes()).entries)
        for name in rows
    }
    for name, row in rows.items():
        assert "ok" in row.xpath("./td")[1].text_content()
        assert row.xpath("./td")[2].xpath(".//time")  # last success
        assert int(row.xpath('./td[contains(@class, "new")]')[0].text_content()) == entries[name]
    assert "Healthy" in doc.xpath('//*[@id="health"]')[0].text_content()
    assert len(doc.xpath('//table[@id="cycles"]/tbody/tr')) == 1


def test_a_feed_opened_in_a_browser_is_a_page_and_readers_get_atom(served: Served) -> None:
    plain = (served.ws.out / "all.atom").read_bytes()
    assert b'<?xml-stylesheet type="text/xsl" href="feed.xsl"?>' in plain.split(b"\n")[1]
    status, headers, body = served.request("all.atom", headers={"Accept": BROWSER_ACCEPT})
    assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
    page = html.fromstring(body)
    feed = feedparser.parse(plain)
    assert [h.text_content() for h in page.xpath("//article/h2")] == [e.title for e in feed.entries]
    assert [a.get("href") for a in page.xpath("//article/h2/a")] == [
        _link(e) for e in feed.entries if _link(e)
    ]
    assert page.xpath("//h1")[0].text_content() == MERGED_TITLE
    # The page revalidates by its own tag.
    again = served.request(
        "all.atom", headers={"Accept": BROWSER_ACCEPT, "If-None-Match": headers["etag"]}
    )
    assert again[0] == 304
    readers = [
        {},
        {"Accept": "*/*"},
        {"Accept": "application/atom+xml"},
        {"Accept": "application/atom+xml, application/rss+xml, text/html;q=0.5"},
        {"Accept": "text/html, application/xml"},  # a tie goes to the feed
        {"Accept": "application/xml, text/xml, */*;q=0.1"},
    ]
    for sent in readers:
        status, headers, body = served.request("all.atom", headers=sent)
        assert (status, headers["content-type"], body) == (200, ATOM, plain), sent


# --- operations ---


def _metrics(served: Served) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, body = served.request("metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_healthz_and_metrics_after_a_run(served: Served) -> None:
    status, headers, body = served.request("healthz")
    assert status == 200, body
    assert body.startswith(b"ok: last run at ")
    assert headers["cache-control"] == "no-store"
    m = _metrics(served)
    report = served.ws.run_json("--dry-run")  # what a run would find now: nothing new
    assert all(s["new"] == 0 for s in report["sources"])
    for source in ("voa", "dw", "aljazeera"):
        entries = len(feedparser.parse((served.ws.out / f"{source}.atom").read_bytes()).entries)
        label = (("source", source),)
        assert m[("aggregator_source_runs_total", label)] == 1
        assert m[("aggregator_source_errors_total", label)] == 0
        assert m[("aggregator_source_items_total", (("kind", "new"), *label))] == entries
        assert m[("aggregator_source_last_success_timestamp_seconds", label)] > 0
    assert m[("aggregator_cycle_duration_seconds_count", ())] == 1
    assert m[("aggregator_cycle_duration_seconds_sum", ())] > 0
    assert m[("aggregator_feed_entries", (("feed", "all"),))] == 5
    assert m[("aggregator_healthy", ())] == 1


def test_health_follows_the_runs(tmp_path: Path) -> None:
    """Before any run /healthz is 503; after a run in which one URL source fails it is 200
    (an upstream being down is not our ill health), and the failure is on /status and in
    /metrics. Served at the root path, on the port config.toml's [serve] names; stopped by
    SIGINT (Ctrl+C)."""
    upstream = FeedServer()
    upstream.start()
    upstream.route("/broken.xml", Route(status=500, body=b"upstream trouble"))
    ws = make_workspace(tmp_path)
    port = _free_port()
    configure(
        ws,
        f"http://127.0.0.1:{port}/",
        f'\n[[sources]]\nname = "broken"\nurl = "{upstream.base}/broken.xml"\n'
        'adapter = "generic"\nallow_private = true\n'
        f'\n[serve]\nhost = "127.0.0.1"\nport = {port}\naccess_log = true\n',
    )
    server = start(ws, port, "/", flag=False)  # where [serve] says
    try:
        status, _, body = server.request("healthz")
        assert status == 503
        assert body == f"no run has completed yet: {ws.db} does not exist\n".encode()
        assert _metrics(server)[("aggregator_healthy", ())] == 0
        assert server.request("all.atom")[0] == 404  # nothing published yet
        assert ws.cli("run").returncode == 0
        status, _, body = server.request("healthz")
        assert status == 200, body
        assert server.request("all.atom")[0] == 200
        row = _page(server, "status").xpath('//tr[@data-source="broken"]')[0]
        assert "failing" in row.xpath("./td")[1].text_content()
        assert "500" in row.xpath('./td[@class="error"]')[0].text_content()
        m = _metrics(server)
        assert m[("aggregator_source_errors_total", (("source", "broken"),))] == 1
        assert m[("aggregator_source_errors_total", (("source", "voa"),))] == 0
    finally:
        code, err = server.stop(signal.SIGINT)
        upstream.stop()
    assert code == 0, err
    assert '"GET /healthz HTTP/1.1" 503' in err  # [serve].access_log = true


def test_a_busy_port_is_reported(served: Served) -> None:
    proc = served.ws.cli("serve", "--port", str(served.port))
    assert proc.returncode == 3
    assert f"cannot listen on 127.0.0.1:{served.port}" in proc.stderr
    assert "choose another --port" in proc.stderr


def test_a_percent_encoded_base_url_path_is_served(tmp_path: Path) -> None:
    """base_url's path is a URI's (/my%20feeds/, /新闻/ written as UTF-8 escapes): requests
    for it and the files under it are answered, as the address serve prints says."""
    ws = make_workspace(tmp_path)
    port = _free_port()
    configure(
        ws, f"http://127.0.0.1:{port}/my feeds/新闻/".replace(" ", "%20"),
        '[[feeds]]\nname = "ukraine"\ntitle = "t"\nfile = "专题/乌克兰.atom"\n',
    )  # fmt: skip
    ws.cli("run", check=True)
    prefix = "/my%20feeds/%E6%96%B0%E9%97%BB/"
    server = start(ws, port, prefix)
    try:
        status, _, body = server.request("all.atom")
        assert status == 200 and body == (ws.out / "all.atom").read_bytes()
        status, _, body = server.request("%E4%B8%93%E9%A2%98/%E4%B9%8C%E5%85%8B%E5%85%B0.atom")
        assert status == 200 and body == (ws.out / "专题" / "乌克兰.atom").read_bytes()
        assert server.request("")[0] == 200  # the index page
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", prefix.rstrip("/"))
        resp = conn.getresponse()
        resp.read()
        assert (resp.status, resp.getheader("location")) == (308, prefix)
        conn.request("GET", "/all.atom")
        assert conn.getresponse().status == 404
        conn.close()
    finally:
        code, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert f"at http://127.0.0.1:{port}{prefix} " in err and "warning" not in err


def test_a_local_base_url_on_another_port_is_a_warning(tmp_path: Path) -> None:
    """Served on a port its local base_url does not name: the links lead elsewhere; said at
    start, with both ways out. A public base_url (behind a reverse proxy) is no warning."""
    for base, warned in (("http://localhost:1/", True), ("https://news.example.org/", False)):
        ws = make_workspace(tmp_path / str(warned))
        configure(ws, base)
        port = _free_port()
        server = start(ws, port, "/")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")  # answered: it serves (and handles SIGTERM), not only bound
        conn.getresponse().read()
        conn.close()
        code, err = server.stop(signal.SIGTERM)
        assert code == 0, err
        said = f"warning: base_url is {base}, but this server listens on port {port}"
        assert (said in err) is warned, err
        if warned:
            assert f"Set base_url to http://127.0.0.1:{port}/ in config.toml" in err
            assert "or serve on port 1" in err


def _answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (or 10 s pass)."""
    sock.settimeout(10)
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def test_slow_idle_and_huge_request_heads_are_cut_off(tmp_path: Path) -> None:
    """Clients that open a connection and send nothing, send their head a byte at a time, or
    send a head of megabytes get 408 or 431 and a closed connection, by ``header_timeout``;
    meanwhile others are served. (Before, such connections were held for ever, until the
    open-file limit stopped the server answering anyone.) A request asking to upgrade to a
    WebSocket is answered as plain HTTP, without two warnings in the log for each."""
    ws = make_workspace(tmp_path)
    port = _free_port()
    configure(ws, f"http://127.0.0.1:{port}/", '\n[serve]\nheader_timeout = "1s"\n')
    ws.cli("run", check=True)
    server = start(ws, port, "/")
    try:
        idle = socket.create_connection(("127.0.0.1", port))
        drip = socket.create_connection(("127.0.0.1", port))
        started = time.monotonic()
        for ch in b"GET /all.atom HTTP/1.1\r\nHost: x\r\n":  # a byte every 50 ms ...
            if time.monotonic() - started > 0.8:  # ... until just before the deadline
                break
            drip.sendall(bytes([ch]))
            time.sleep(0.05)
            assert server.request("healthz")[0] == 200  # others are answered meanwhile
        for sock in (idle, drip):
            with sock:
                assert _answer(sock).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert time.monotonic() - started < 5
        with socket.create_connection(("127.0.0.1", port)) as huge:
            with contextlib.suppress(OSError):  # the server may close before all is sent
                huge.sendall(b"GET /all.atom HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n")
            assert _answer(huge).startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
        # A body dripped after the head (nothing here takes one) is held no longer either.
        with socket.create_connection(("127.0.0.1", port)) as body:
            body.sendall(b"GET /all.atom HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx")
            started = time.monotonic()
            assert _answer(body).startswith(b"HTTP/1.1 200")  # answered, then closed
            assert time.monotonic() - started < 5
        assert server.request("all.atom")[0] == 200
        # Asking to upgrade (WebSocket) is answered as plain HTTP, and not logged.
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
        for _ in range(3):
            assert server.request("all.atom", headers=upgrade)[0] == 200
    finally:
        code, err = server.stop(signal.SIGTERM)
    assert code == 0, err
    assert "upgrade" not in err.lower() and "websocket" not in err.lower(), err


def test_serve_settings_are_checked(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    ws.config.write_text(
        ws.config.read_text(encoding="utf-8") + '\n[serve]\nhost = "not a host!"\nport = 70000\n'
    )
    proc = ws.cli("check")
    assert proc.returncode == 2
    assert "serve.host: 'not a host!' is not an IP address or host name" in proc.stderr
    assert "serve.port: Input should be less than or equal to 65535" in proc.stderr
    bad_flag = ws.cli("serve", "--port", "http")
    assert bad_flag.returncode == 2
    assert "'http' is not a port number" in bad_flag.stderr


# --- a real browser and a real feed reader ---


def _chromium_dom(url: str) -> str:
    binary = _need("chromium", "chromium")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--dump-dom", url,
            ],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_chromium_shows_the_feed_list_and_a_readable_feed(served: Served) -> None:
    dom = html.fromstring(_chromium_dom(served.url))
    titles = {
        row.get("data-feed"): row.xpath("./td")[0].text_content()
        for row in dom.xpath('//table[@id="feeds"]//tr[@class="feed"]')
    }
    assert sorted(f"{name}.atom" for name in titles) == _feed_names(served)
    assert titles["all"] == MERGED_TITLE
    page = _chromium_dom(served.url + "voa.atom")
    feed = feedparser.parse((served.ws.out / "voa.atom").read_bytes())
    shown = html.fromstring(page)
    assert [h.text_content() for h in shown.xpath("//article/h2")] == [
        e.title for e in feed.entries
    ]
    # Transformed on the server: no client-side XSLT, so no deprecation banner.
    assert "xslt-warning-banner" not in page


def _link(entry: feedparser.FeedParserDict) -> str:
    return next((ln["href"] for ln in entry.get("links", ()) if ln.get("rel") == "alternate"), "")


def test_newsboat_subscribes_and_stores_every_entry(served: Served, tmp_path: Path) -> None:
    """Each feed in a cache of its own: newsboat keys stored items by guid across all its
    feeds, so a merged feed would take over the entries it shares with a per-source feed."""
    binary = _need("newsboat", "newsboat")
    for name in _feed_names(served):
        home = tmp_path / name
        home.mkdir()
        url = served.url + name
        (home / "urls").write_text(url + "\n", encoding="utf-8")
        (home / "conf").write_text("", encoding="utf-8")
        proc = subprocess.run(
            [binary, "-x", "reload", "-u", "urls", "-c", "cache.db", "-C", "conf"],
            cwd=home, env={**os.environ, "HOME": str(home)}, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        with sqlite3.connect(home / "cache.db") as db:
            stored = {
                guid: (title, link, date)
                for guid, title, link, date in db.execute(
                    "SELECT guid, title, url, pubDate FROM rss_item WHERE feedurl = ?", (url,)
                )
            }
            (feed_title,) = db.execute(
                "SELECT title FROM rss_feed WHERE rssurl = ?", (url,)
            ).fetchone()
        feed = feedparser.parse(served.request(name)[2])
        expected = {
            e.id: (e.title, _link(e), calendar.timegm(e.published_parsed)) for e in feed.entries
        }
        assert len(expected) > 0
        assert stored == expected, url
        assert feed_title == feed.feed.title


def test_server_object_runs_in_the_main_thread_and_stops_from_another(tmp_path: Path) -> None:
    """How the daemon runs it (`daemon --serve`): ``Server.run()`` blocks the main thread while
    other work goes on in a thread, which can stop it; the process's own signal handlers are
    back in place afterwards."""
    from aggregator import config, serve

    ws = make_workspace(tmp_path)
    server = serve.Server(config.load(ws.config), "127.0.0.1", 0)
    port = int(server.bind().rsplit(":", 1)[1].split("/")[0])
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    answers: list[int] = []

    def other_work() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(200):  # until uvicorn has started answering on the bound socket
            try:
                conn.request("GET", "/feeds/healthz")
                answers.append(conn.getresponse().status)
                break
            except OSError:
                conn.close()
                time.sleep(0.05)
        server.stop()

    worker = threading.Thread(target=other_work)
    worker.start()
    started = time.monotonic()
    server.run()
    worker.join(timeout=10)
    assert answers == [503]  # no run yet
    assert time.monotonic() - started < 15
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
