"""Every feed in three formats: each valid in its own format (RFC 4287's RELAX NG grammar and
Schematron rules, the RSS 2.0 rules, the JSON Feed 1.1 schema), each advertising the others,
and all three carrying the same entries: feedparser reads each back and the ids, titles, links
and dates agree."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import feedparser
import rnc2rng
from atomcheck import SCHEMAS, check_feed
from conftest import Workspace
from feedcheck import check_file, check_json, check_rss

FEEDS = ("all", "voa", "dw", "aljazeera")
TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml",
         "json": "application/feed+json"}  # fmt: skip


def test_rng_is_the_conversion_of_the_rnc() -> None:
    """atom.rng is what rnc2rng makes of atom.rnc (less the one line XML forbids)."""
    converted = rnc2rng.dumps(rnc2rng.load(str(SCHEMAS / "atom.rnc")))
    lines = [ln for ln in converted.splitlines() if 'xmlns:local=""' not in ln]
    assert (SCHEMAS / "atom.rng").read_text(encoding="utf-8").splitlines() == lines


def test_every_file_is_valid_in_its_format(ws: Workspace) -> None:
    ws.run_json()
    files = sorted(p for p in ws.out.rglob("*") if p.suffix in (".atom", ".rss", ".json"))
    assert [p.name for p in files] == sorted(f"{n}.{f}" for n in FEEDS for f in TYPES)
    for path in files:
        assert check_file(path) == []


def _parse(path: Path) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, (path, parsed.get("bozo_exception"))
    return parsed


def _alternate(entry: feedparser.FeedParserDict) -> str | None:
    """The entry's rel=alternate link (feedparser's ``link`` falls back to the id)."""
    return next((ln.href for ln in entry.get("links", []) if ln.rel == "alternate"), None)


def _json_rows(path: Path) -> tuple[dict[str, str], list[tuple[object, ...]]]:
    """The JSON Feed read as plain JSON: feedparser's releases (6.0.x) do not read JSON Feed."""
    doc = json.loads(path.read_bytes())
    rows = [
        (
            item["id"], item["title"], item.get("url"),
            datetime.fromisoformat(item["date_published"]).utctimetuple(),
            datetime.fromisoformat(item["date_modified"]).utctimetuple(),
            item["authors"][0]["name"], item.get("tags", []),
        )
        for item in doc["items"]
    ]  # fmt: skip
    return doc, rows


def test_formats_carry_the_same_entries(ws: Workspace) -> None:
    ws.run_json()
    for name in FEEDS:
        atom, rss = (_parse(ws.out / f"{name}.{fmt}") for fmt in ("atom", "rss"))
        assert (atom.version, rss.version) == ("atom10", "rss20")
        doc, json_rows = _json_rows(ws.out / f"{name}.json")
        assert atom.feed.title == rss.feed.title == doc["title"]
        assert atom.feed.language == rss.feed.language == doc["language"]
        atom_rows = [
            (e.id, e.title, _alternate(e), e.published_parsed, e.updated_parsed, e.author,
             [t.term for t in e.get("tags", [])])
            for e in atom.entries
        ]  # fmt: skip
        assert atom_rows == json_rows
        assert len(atom_rows) >= 1 and all(r[0].startswith("urn:uuid:") for r in atom_rows)
        # RSS 2.0 has no "updated": everything else must agree.
        rss_rows = [
            (e.id, e.title, _alternate(e), e.published_parsed, e.author,
             [t.term for t in e.get("tags", [])])
            for e in rss.entries
        ]  # fmt: skip
        assert rss_rows == [r[:4] + r[5:] for r in atom_rows]


def test_each_format_advertises_the_others(ws: Workspace) -> None:
    ws.run_json()
    base = "https://news.example.org/feeds/"
    for name in FEEDS:
        for fmt, kind in TYPES.items():
            path = ws.out / f"{name}.{fmt}"
            if fmt == "json":
                doc = json.loads(path.read_bytes())
                assert doc["feed_url"] == f"{base}{name}.json"
                alternates = {a["type"]: a["url"] for a in doc["_aggregator"]["alternates"]}
            else:
                links = _parse(path).feed.links
                assert [ln.href for ln in links if ln.rel == "self"] == [f"{base}{name}.{fmt}"]
                alternates = {ln.type: ln.href for ln in links if ln.rel == "alternate"}
                alternates.pop("text/html")
            others = {TYPES[f]: f"{base}{name}.{f}" for f in TYPES if f != fmt}
            assert alternates == others, (name, fmt)
            assert kind not in alternates


# -- the validators themselves catch what they are there to catch --------------------------


def test_atom_validation_rejects_what_rfc_4287_forbids(ws: Workspace) -> None:
    ws.run_json()
    good = (ws.out / "dw.atom").read_text(encoding="utf-8")
    assert check_feed(good.encode()) == []
    no_id = good.replace("<id>urn:uuid:02a2fd80-5214-55f4-9ee4-9d8664f86a10</id>", "", 1)
    assert any("RELAX NG" in p for p in check_feed(no_id.encode()))
    bad_date = good.replace("<updated>2022-01-10T04:58:40.481000+00:00</updated>",
                            "<updated>10 Jan 2022</updated>", 1)  # fmt: skip
    assert any("dateTime" in p for p in check_feed(bad_date.encode()))
    start = good.index("<author>")
    no_author = good[:start] + good[good.index("</author>") + len("</author>") :]
    assert any("must have an atom:author" in p for p in check_feed(no_author.encode()))


def test_rss_and_json_validation_reject_broken_documents(ws: Workspace) -> None:
    ws.run_json()
    rss = (ws.out / "dw.rss").read_text(encoding="utf-8")
    assert check_rss(rss.encode()) == []
    start, end = rss.index("<description>"), rss.index("</description>")
    no_description = rss[:start] + rss[end + len("</description>") :]
    assert "channel: required <description> missing or empty" in check_rss(no_description.encode())
    bad_date = rss.replace("Mon, 10 Jan 2022 04:58:40 +0000", "2022-01-10", 1)
    assert any("RFC 822" in p for p in check_rss(bad_date.encode()))
    doc = json.loads((ws.out / "dw.json").read_bytes())
    assert check_json(json.dumps(doc).encode()) == []
    del doc["items"][0]["id"]
    doc["items"][0]["date_published"] = "yesterday"
    problems = check_json(json.dumps(doc).encode())
    assert any("'id' is a required property" in p for p in problems)
    assert any("is not a 'date-time'" in p for p in problems)


def test_committed_feeds_are_valid() -> None:
    """The feeds/ folder in the repository, as a reader fetches it: every file of every feed."""
    root = Path(__file__).resolve().parent.parent / "feeds"
    files = [p for p in root.rglob("*") if p.suffix in (".atom", ".rss", ".json")]
    assert {p.relative_to(root).as_posix() for p in files} >= {
        f"{n}.{f}" for n in ("all", "all-hant", "topics/ukraine", *FEEDS) for f in TYPES
    }
    for path in files:
        assert check_file(path) == []


def test_an_article_too_long_for_feed_readers_is_shortened_in_feeds_only(ws: Workspace) -> None:
    """An 11 MB article (under the 16 MiB file limit) was published whole: one text node over
    libxml2's 10,000,000 bytes, so lxml, and every reader built on libxml2, refused the whole
    feed. Its feeds carry its first paragraphs, each whole, then a link to the rest; the
    stored article keeps every paragraph."""
    import random
    import sqlite3

    from lxml import html

    rng = random.Random(5)
    han = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    paragraphs = ["".join(rng.choices(han, k=200)) for _ in range(18_000)]
    link = "https://www.voachinese.com/a/long-read/7000001.html"
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    (ws.root / "seeds" / "voa" / "long.txt").write_text(
        f"<!--1666382342000-->\n[A very long read]({link})\n------\n\n{body}\n", encoding="utf-8"
    )
    assert (ws.root / "seeds" / "voa" / "long.txt").stat().st_size > 10_000_000
    report = ws.run_json()
    assert report["sources"][0]["skipped"] == []
    for path in sorted(ws.out.iterdir()):
        if path.suffix in (".atom", ".rss", ".json"):
            assert check_file(path) == [], path.name
    parsed = _parse(ws.out / "voa.atom")
    (long_entry,) = [e for e in parsed.entries if e.title == "A very long read"]
    published = long_entry.content[0].value
    assert 100_000 < len(published) <= 500_000
    tree = html.fragment_fromstring(published, create_parent="div")
    *kept, more = tree.findall("p")
    assert [p.text for p in kept] == paragraphs[: len(kept)]  # from the start, each whole
    assert more.find("a").get("href") == link and more.text_content() == "[…]"
    items = json.loads((ws.out / "all.json").read_text(encoding="utf-8"))["items"]
    (as_json,) = [i for i in items if i["title"] == "A very long read"]
    assert as_json["content_html"] == published
    with sqlite3.connect(ws.db) as db:
        (stored,) = db.execute("SELECT content FROM items WHERE link = ?", (link,)).fetchone()
    assert stored.count("<p>") == len(paragraphs)
    before = ws.feed_bytes()
    ws.run_json()
    assert ws.feed_bytes() == before


def test_shortened_content_keeps_whole_blocks_from_the_start() -> None:
    """How ``shorten`` cuts each shape of article: whole paragraphs inside a wrapper, the start
    of a single paragraph that alone is too long, into a quote that straddles the limit; never
    past the limit, every element closed, the link last."""
    from lxml import html

    from aggregator.clean import shorten

    def p(i: int) -> str:
        return f"<p>第{i:02}段" + "字" * 94 + "</p>"  # 98 characters of text

    link = "https://example.org/a/1"
    short = "".join(map(p, range(3)))
    assert shorten(short, link, limit=1000) == short

    def cut(content: str) -> html.HtmlElement:
        out = shorten(content, link, limit=1000)
        assert len(out) <= 1000
        tree = html.fragment_fromstring(out, create_parent="div")
        more = tree[-1]
        assert more.tag == "p" and more[0].get("href") == link and more.text_content() == "[…]"
        del tree[-1]
        return tree

    (wrapper,) = cut("<div>" + "".join(map(p, range(20))) + "</div>")
    assert [x.text_content() for x in wrapper] == [
        html.fragment_fromstring(p(i)).text_content() for i in range(len(wrapper))
    ]
    assert len(wrapper) >= 5  # whole paragraphs, as many as fit
    (one,) = cut("<p>" + "字" * 5000 + "</p>")
    assert 700 < len(one.text_content()) < 800  # a paragraph alone too long: its start
    first, quote = cut(p(0) + "<blockquote>" + "".join(map(p, range(1, 20))) + "</blockquote>")
    assert first.text_content().startswith("第00段") and quote.tag == "blockquote"
    assert [x.text_content()[:4] for x in quote] == [
        f"第{i:02}段" for i in range(1, len(quote) + 1)
    ]
    assert all(len(x.text_content()) == 98 for x in quote)
    assert shorten("字" * 2000, None, limit=1000).endswith("<p>[…]</p>")
    # A short lead before one huge paragraph, text after an image, escaped characters: the
    # text is cut, never dropped, and entities count towards the limit.
    for lead in ("<h2>标题</h2>", '<figure><img src="https://example.org/a.jpg"></figure>'):
        _lead, body = cut(f"{lead}<p>{'字' * 5000}</p>")
        assert 500 < len(body.text_content()) < 800
    (image,) = cut('<p><img src="https://example.org/a.jpg">' + "字" * 5000 + "</p>")
    assert image[0].tag == "img" and 500 < len(image.text_content()) < 800
    (amps,) = cut("<p>" + "&amp;" * 3000 + "</p>")
    assert set(amps.text_content()) == {"&"}
