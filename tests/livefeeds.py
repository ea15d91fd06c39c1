"""Live-feed documents built from the seed files, in every format a source may serve.

The seeds are read with plain string handling here (not with the aggregator's parsers), so a
bug in an adapter cannot hide itself by building its own test input. Each ``Article`` carries
what a reader must see: title, link, the body as the mirror wrote it, and the date line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from email.utils import format_datetime
from html import escape
from pathlib import Path

from dateutil import parser as dateparser

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


@dataclass(frozen=True)
class Article:
    title: str
    link: str
    body: str  # HTML as archived
    date: str  # RFC 3339

    @property
    def rfc822(self) -> str:
        return format_datetime(dateparser.isoparse(self.date))


def _archive(path: Path) -> Article:
    text = path.read_text(encoding="utf-8")
    m = re.search(r"^\[(.*)\]\((\S+)\)\s*$", text, re.M)
    assert m, path
    body = text.split("------", 1)[1].strip()
    line = re.search(r"<i>(?:<br>)?([^<]+)</i>", body)
    assert line, path
    when = dateparser.parse(line.group(1)).isoformat().replace("+00:00", "Z")
    return Article(m.group(1).replace("\\", ""), m.group(2), body, when)


def _front_matter(path: Path) -> Article:
    text = path.read_text(encoding="utf-8")
    head, body = text.split("---", 2)[1:]
    title = re.search(r"^title: '(.*)'$", head, re.M)
    date = re.search(r"^date: (.*)$", head, re.M)
    assert title and date, path
    when = dateparser.parse(date.group(1)).isoformat().replace("+00:00", "Z")
    # The Al Jazeera seed has no link line; its route gives each post's page.
    link = "https://chinese.aljazeera.net/news/2022/2/13/biden-putin-call"
    return Article(title.group(1), link, body.strip(), when)


def voa() -> list[Article]:
    return [_archive(p) for p in sorted((SEEDS / "voa").glob("*.txt"))]


def dw() -> list[Article]:
    return [_archive(p) for p in sorted((SEEDS / "dw").glob("*.txt"))]


def aljazeera() -> list[Article]:
    return [_front_matter(p) for p in sorted((SEEDS / "aljazeera").glob("*.txt"))]


def rss2(articles: list[Article], title: str = "VOA Chinese", encoding: str = "utf-8") -> bytes:
    items = "".join(
        f"<item><title>{escape(a.title)}</title><link>{escape(a.link)}</link>"
        f'<guid isPermaLink="true">{escape(a.link)}</guid><pubDate>{a.rfc822}</pubDate>'
        f"<description><![CDATA[{a.body}]]></description></item>"
        for a in articles
    )
    doc = (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://www.voachinese.com/</link>"
        f"<description>mirror</description>{items}</channel></rss>"
    )
    return doc.encode(encoding)


def rss091(articles: list[Article]) -> bytes:
    items = "".join(
        f"<item><title>{escape(a.title)}</title><link>{escape(a.link)}</link>"
        f"<description>{escape(a.body)}</description></item>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        '"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        '<rss version="0.91"><channel><title>old</title><link>https://www.voachinese.com/</link>'
        f"<description>d</description><language>zh-cn</language>{items}</channel></rss>"
    ).encode()


def rss1(articles: list[Article]) -> bytes:
    lis = "".join(f'<rdf:li rdf:resource="{escape(a.link)}"/>' for a in articles)
    items = "".join(
        f'<item rdf:about="{escape(a.link)}"><title>{escape(a.title)}</title>'
        f"<link>{escape(a.link)}</link><dc:date>{a.date}</dc:date>"
        f"<content:encoded><![CDATA[{a.body}]]></content:encoded></item>"
        for a in articles
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        '<channel rdf:about="https://www.voachinese.com/"><title>t</title>'
        "<link>https://www.voachinese.com/</link><description>d</description>"
        f"<items><rdf:Seq>{lis}</rdf:Seq></items></channel>{items}</rdf:RDF>"
    ).encode()


def atom1(articles: list[Article], base: str | None = None, relative: bool = False) -> bytes:
    def link(a: Article) -> str:
        if relative:  # the path only: resolved against xml:base or the feed's URL
            return escape(re.sub(r"^https?://[^/]+", "", a.link))
        return escape(a.link)

    entries = "".join(
        f'<entry><title>{escape(a.title)}</title><link rel="alternate" href="{link(a)}"/>'
        f"<id>tag:dw.com,2022:{i}</id><updated>{a.date}</updated><published>{a.date}</published>"
        f'<author><name>DW</name></author><content type="html">{escape(a.body)}</content></entry>'
        for i, a in enumerate(articles)
    )
    xml_base = f' xml:base="{escape(base)}"' if base else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<feed xmlns="http://www.w3.org/2005/Atom"{xml_base}><title>DW</title>'
        "<id>tag:dw.com,2022:feed</id><updated>2022-01-10T05:00:00Z</updated>"
        f"{entries}</feed>"
    ).encode()


def atom03(articles: list[Article]) -> bytes:
    entries = "".join(
        f"<entry><title>{escape(a.title)}</title>"
        f'<link rel="alternate" type="text/html" href="{escape(a.link)}"/>'
        f"<id>tag:dw.com,2022:{i}</id><issued>{a.date}</issued><modified>{a.date}</modified>"
        f'<content type="text/html" mode="escaped">{escape(a.body)}</content></entry>'
        for i, a in enumerate(articles)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>DW</title>'
        '<link rel="alternate" type="text/html" href="https://www.dw.com/zh/"/>'
        f"<modified>2022-01-10T05:00:00Z</modified>{entries}</feed>"
    ).encode()


def json_feed(articles: list[Article], version: str = "1.1") -> bytes:
    items = []
    for a in articles:
        item = {"id": a.link, "url": a.link, "title": a.title, "content_html": a.body,
                "date_published": a.date, "tags": ["新闻"]}  # fmt: skip
        if version == "1.1":
            item["authors"] = [{"name": "Aljazeera 半岛网"}]
        else:
            item["author"] = {"name": "Aljazeera 半岛网"}
        items.append(item)
    doc = {"version": f"https://jsonfeed.org/version/{version}", "title": "Al Jazeera",
           "home_page_url": "https://chinese.aljazeera.net/", "items": items}  # fmt: skip
    return json.dumps(doc, ensure_ascii=False).encode()


def _sentences() -> list[str]:
    text = "".join(re.sub(r"<[^>]+>", "", a.body) for a in voa() + dw() + aljazeera())
    return [s.strip() + "。" for s in text.split("。") if len(s.strip()) > 20]


def distinct(template: Article, count: int) -> list[Article]:
    """``count`` articles shaped like ``template`` (same date and link pattern) whose texts
    share no sentence, so neither exact nor near-duplicate detection can merge them."""
    sentences = _sentences()
    assert len(sentences) >= 3 * count, len(sentences)
    out = []
    for i in range(count):
        body = "".join(f"<p>{s}</p>" for s in sentences[3 * i : 3 * i + 3])
        link = re.sub(r"\d{5,}(?=(\.html)?$)", str(9_000_000 + i), template.link)
        out.append(Article(f"第{i + 1}条：{template.title}", link, body, template.date))
    return out
