"""Entries -> feed documents: Atom 1.0 (RFC 4287), RSS 2.0 and JSON Feed 1.1. The only
feedgen import (made the first time a feed is rendered; see ``_feedgen``).

Input: a ``FeedSpec``, its entries (newest first), the public base URL, the configured sources
(for each entry's ``atom:source``) and a ``Links`` saying where the document sits (its twins in
the other formats, the WebSub hub, RFC 5005 archive links). Output: the document as UTF-8
bytes. Pure and deterministic: nothing here reads the clock, so the same entries give
byte-identical output; the feed's ``updated`` is the newest entry's ``updated``. The three
formats carry the same entries with the same ids (RSS ``guid``, JSON Feed ``id`` = the Atom id).
Atom documents open with an ``<?xml-stylesheet?>`` instruction naming the readable page for
browsers (stylesheet.py).

What each entry carries: a permanent id (``urn:uuid``), title, ``rel="alternate"`` link to the
original article, published, updated, the outlet as author, categories, a plain-text summary, the
full cleaned content as ``type="html"``, the lead image (Media RSS ``media:content`` with its
caption, and ``media:thumbnail``), ``xml:lang`` where it differs from the feed's,
``atom:source`` naming the per-source feed it belongs to (RFC 4287 section 4.2.11), and for a
story merged from several copies, ``rel="via"`` to the copy whose text is shown and
``rel="related"`` to each other copy (RFC 4287 section 4.2.7.2).
"""

from __future__ import annotations

import html
import json
import mimetypes
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

from aggregator import __version__, stylesheet
from aggregator.model import Entry, FeedSpec, Source

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
FH_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005 feed history
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ATOM_TYPE = "application/atom+xml"
RSS_TYPE = "application/rss+xml"
JSON_TYPE = "application/feed+json"  # JSON Feed 1.1, "MIME type"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
# Format -> (file suffix, media type). Every feed is written as Atom; RSS and JSON are twins.
FORMATS: dict[str, tuple[str, str]] = {
    "atom": (".atom", ATOM_TYPE),
    "rss": (".rss", RSS_TYPE),
    "json": (".json", JSON_TYPE),
}
GENERATOR_URI = "https://pypi.org/project/aggregator/"
# Feed ids are name-based UUIDs (RFC 4122) of the feed's name: stable when base_url moves.
_FEED_NAMESPACE = uuid.UUID("0b5e7d3a-9a43-5d0c-8e52-2f1f6b1c0d77")
# An empty feed still needs an `updated` (RFC 4287 4.1.1): when it last changed (became empty,
# or was first written), which the run passes in ``Links.updated``; the epoch only when a caller
# gives none (a document rendered outside a run).
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@cache
def feed_id(name: str) -> str:
    # Cached: every entry names its home feed's id (a uuid5 is ~20 us; 1,500 entries a run).
    return f"urn:uuid:{uuid.uuid5(_FEED_NAMESPACE, name)}"


def filename(spec: FeedSpec, fmt: str = "atom") -> str:
    """The file of ``spec`` in ``fmt``, relative to the output folder: ``all.atom``,
    ``all.rss``, ``all.json``."""
    return spec.filename.removesuffix(".atom") + FORMATS[fmt][0]


def feed_url(base_url: str, spec: FeedSpec, fmt: str = "atom") -> str:
    """Where the feed's file is published: a URI, its name percent-encoded where it must be
    (``file = "新闻/ukraine.atom"``; a '%', '?' or '#' in it is part of the name)."""
    return base_url + quote(filename(spec, fmt), safe="/!$&'()*+,;=:@~")


@dataclass(frozen=True, slots=True)
class Links:
    """Where one document sits: the URL it is served at, the same feed in the other formats,
    the WebSub hub, and RFC 5005's links between a feed and its archive pages; and, for a
    document with no entry, when it last changed (its ``updated``)."""

    self_url: str
    twins: tuple[tuple[str, str], ...] = ()  # (media type, URL) of the other formats
    hub: str | None = None
    prev_archive: str | None = None  # the next older archive page
    current: str | None = None  # set on archive pages: the feed they belong to
    updated: datetime | None = None  # with no entry: when the feed last changed


def links(spec: FeedSpec, base_url: str, fmt: str, hub: str | None = None,
          prev_archive: str | None = None, updated: datetime | None = None) -> Links:  # fmt: skip
    """The links of ``spec``'s current document in ``fmt`` (``updated``: see Links)."""
    twins = tuple(
        (FORMATS[other][1], feed_url(base_url, spec, other))
        for other in spec.formats
        if other != fmt
    )
    return Links(feed_url(base_url, spec, fmt), twins, hub, prev_archive, updated=updated)


def feed_lang(spec: FeedSpec, entries: Sequence[Entry], sources: Mapping[str, Source]) -> str:
    """The feed's ``xml:lang``: configured, else what all its entries share, else the shared
    primary language ("zh" for a mix of zh-Hans and zh-Hant), else "und" (undetermined)."""
    if spec.lang:
        return spec.lang
    langs = {e.lang for e in entries} or {
        s.lang for name in spec.sources if (s := sources.get(name)) and s.lang
    }
    if len(langs) == 1:
        return langs.pop()
    primaries = {lang.split("-")[0] for lang in langs}
    return primaries.pop() if len(primaries) == 1 else "und"


def home_url(base_url: str, home: FeedSpec, fmt: str) -> str:
    """The home feed in ``fmt`` when it is published in it, else its Atom document (always
    published): a source link must never name a file that does not exist."""
    return feed_url(base_url, home, fmt if fmt in home.formats else "atom")


@cache
def _feedgen() -> tuple[Any, Any, Any]:
    """(FeedGenerator, the feed extension, the entry extension). feedgen is imported the first
    time a feed is rendered: it and the dateutil it loads cost ~45 ms of every run that renders
    nothing (a no-change run, a 304 pass). The extensions write what feedgen cannot: feed-level
    links (the other formats, the WebSub hub, RFC 5005 archive links) and per entry a full
    ``atom:source``, ``xml:lang``, the story's other copies (``via``/``related``) and the lead
    image as Media RSS."""
    from feedgen.ext.base import BaseEntryExtension, BaseExtension
    from feedgen.feed import FeedGenerator
    from feedgen.util import xml_elem

    class Ext(BaseExtension):  # type: ignore[misc]
        """Feed-level links feedgen cannot write: twins, hub and RFC 5005 archive links."""

        def __init__(self) -> None:
            self.links: Links | None = None

        def extend_ns(self) -> dict[str, str]:
            ns = {"media": MEDIA_NS, "dc": DC_NS}
            if self.links is not None and (self.links.current or self.links.prev_archive):
                ns["fh"] = FH_NS
            return ns

        def _add(self, parent: Any, tag: str) -> None:
            ln = self.links
            if ln is None:
                return
            for kind, url in ln.twins:
                xml_elem(tag, parent, rel="alternate", type=kind, href=url)
            if ln.hub:
                xml_elem(tag, parent, rel="hub", href=ln.hub)
            if ln.current:  # an archive page (RFC 5005 section 4)
                xml_elem(tag, parent, rel="current", type=ATOM_TYPE, href=ln.current)
            if ln.prev_archive:
                xml_elem(tag, parent, rel="prev-archive", type=ATOM_TYPE, href=ln.prev_archive)
            if ln.current:
                xml_elem(f"{{{FH_NS}}}archive", parent)

        def extend_atom(self, feed: Any) -> Any:
            self._add(feed, "link")
            return feed

        def extend_rss(self, feed: Any) -> Any:
            self._add(feed[0], f"{{{ATOM_NS}}}link")  # into <channel>
            return feed

    class EntryExt(BaseEntryExtension):  # type: ignore[misc]
        """Adds what feedgen's entry cannot express: a full ``atom:source``, ``xml:lang`` on the
        entry, and the lead image as Media RSS with its caption."""

        def __init__(self) -> None:
            self.lang: str | None = None
            self.source: dict[str, str] | None = None
            self.image: tuple[str, str] | None = None
            self.author = ""
            self.links: list[tuple[str, str]] = []  # (rel, href) of the story's other copies

        def _media(self, entry: Any) -> None:
            if self.image:
                url, caption = self.image
                mime = mimetypes.guess_type(urlsplit(url).path)[0] or ""
                attrs = {"url": url, "medium": "image"}
                if mime.startswith("image/"):
                    attrs["type"] = mime
                content = xml_elem(f"{{{MEDIA_NS}}}content", entry, **attrs)
                if caption:
                    desc = xml_elem(f"{{{MEDIA_NS}}}description", content, type="plain")
                    desc.text = caption
                xml_elem(f"{{{MEDIA_NS}}}thumbnail", entry, url=url)

        def extend_atom(self, entry: Any) -> Any:
            if self.lang:
                entry.set(XML_LANG, self.lang)
            for rel, href in self.links:
                xml_elem("link", entry, rel=rel, type="text/html", href=href)
            self._media(entry)
            if self.source:
                src = xml_elem("source", entry)
                xml_elem("id", src).text = self.source["id"]
                xml_elem("title", src).text = self.source["title"]
                if self.source.get("alternate"):
                    xml_elem(
                        "link",
                        src,
                        rel="alternate",
                        type="text/html",
                        href=self.source["alternate"],
                    )
                xml_elem("link", src, rel="self", type=ATOM_TYPE, href=self.source["self"])
            return entry

        def extend_rss(self, item: Any) -> Any:
            # RSS 2.0's <author> must be an e-mail address; the outlet's name goes in dc:creator.
            xml_elem(f"{{{DC_NS}}}creator", item).text = self.author
            self._media(item)
            if self.source:
                src = xml_elem("source", item, url=self.source["self_rss"])
                src.text = self.source["title"]
            return item

    return FeedGenerator, Ext, EntryExt


@dataclass(frozen=True, slots=True)
class Site:
    """What every feed of a run is rendered against: the public URL the feeds are published
    under, the sources by name, and each source's own feed by source name (what an entry's
    ``atom:source`` names)."""

    base_url: str
    sources: Mapping[str, Source]
    source_feeds: Mapping[str, FeedSpec]


def _build(
    spec: FeedSpec, entries: Sequence[Entry], site: Site, empty: datetime | None = None
) -> tuple[Any, str]:
    """feedgen's model of the feed (without links) and its language; ``empty``: its
    ``updated`` when it has no entry."""
    base_url, sources, source_feeds = site.base_url, site.sources, site.source_feeds
    feed_generator, ext_class, entry_ext_class = _feedgen()
    fg = feed_generator()
    fg.register_extension("agg", ext_class, entry_ext_class, atom=True, rss=True)
    lang = feed_lang(spec, entries, sources)
    fg.id(feed_id(spec.name))
    fg.title(spec.title)
    if spec.subtitle:
        fg.subtitle(spec.subtitle)
    fg.language(lang)
    fg.generator("aggregator", version=__version__, uri=GENERATOR_URI)
    if spec.icon:
        fg.icon(spec.icon)
    fg.updated(max((e.updated for e in entries), default=empty or NEVER))
    for e in entries:
        fe = fg.add_entry(order="append")
        fe.id(e.atom_id)
        fe.title(e.title)
        if e.link:
            fe.link(href=e.link, rel="alternate", type="text/html")
        fe.published(e.published)
        fe.updated(e.updated)
        author = {"name": e.author}
        if e.author_uri:
            author["uri"] = e.author_uri
        fe.author(author)
        for term in e.categories:
            fe.category(term=term)
        if e.summary:
            fe.summary(e.summary)
        fe.content(e.content, type="html")
        ext = fe.agg
        ext.lang = e.lang if e.lang != lang else None
        ext.author = e.author
        # Written by the extension: feedgen drops the rel of every entry link (its loop
        # rebinds ``link``), which would make each copy a second rel="alternate".
        ext.links = ([("via", e.via)] if e.via else []) + [("related", u) for u in e.related]
        if e.image:
            ext.image = (e.image.url, e.image.caption)
        home = source_feeds.get(e.source)
        src = sources.get(e.source)
        if home is not None and src is not None:
            ext.source = {
                "id": feed_id(home.name),
                "title": home.title,
                "self": feed_url(base_url, home),
                "self_rss": home_url(base_url, home, "rss"),
                "alternate": src.homepage or "",
            }
    return fg, lang


def _set_links(fg: Any, spec: FeedSpec, base_url: str, ln: Links, kind: str) -> None:
    fg.link(href=ln.self_url, rel="self", type=kind, replace=True)
    fg.link(href=spec.link or base_url, rel="alternate", type="text/html")
    fg.agg.links = ln


def atom(spec: FeedSpec, entries: Sequence[Entry], site: Site, ln: Links | None = None) -> bytes:
    """The Atom document for ``spec`` holding ``entries`` in the order given."""
    base_url = site.base_url
    ln = ln or links(spec, base_url, "atom")
    fg, _ = _build(spec, entries, site, ln.updated)
    _set_links(fg, spec, base_url, ln, ATOM_TYPE)
    doc = bytes(fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True))
    # The readable page for browsers: the stylesheet instruction right after the declaration,
    # relative to where this document sits (an archive page is two folders down).
    where = (
        ln.self_url.removeprefix(base_url) if ln.self_url.startswith(base_url) else spec.filename
    )
    declaration, _, rest = doc.partition(b"\n")
    return b"\n".join((declaration, stylesheet.instruction(where), rest))


def rss(spec: FeedSpec, entries: Sequence[Entry], site: Site, ln: Links | None = None) -> bytes:
    """The RSS 2.0 twin: the same entries, ``guid`` = the Atom id (not a permalink),
    ``description`` the plain-text summary as HTML, ``content:encoded`` the full text."""
    base_url = site.base_url
    ln = ln or links(spec, base_url, "rss")
    fg, _ = _build(spec, entries, site, ln.updated)
    # RSS 2.0 requires a channel description; the title stands in when there is no subtitle.
    fg.description(spec.subtitle or spec.title)
    for fe, e in zip(fg.entry(), entries, strict=True):
        if e.summary:
            # RSS description is HTML: the plain-text summary is escaped once for it.
            fe.description(html.escape(e.summary, quote=False), isSummary=True)
    _set_links(fg, spec, base_url, ln, RSS_TYPE)
    return bytes(fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True))


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def json_feed(
    spec: FeedSpec, entries: Sequence[Entry], site: Site, ln: Links | None = None
) -> bytes:
    """The JSON Feed 1.1 twin. What JSON Feed has no field for (the other formats, an
    entry's home feed) goes in an ``_aggregator`` extension object, as the spec provides."""
    base_url, source_feeds = site.base_url, site.source_feeds
    ln = ln or links(spec, base_url, "json")
    lang = feed_lang(spec, entries, site.sources)
    doc: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": spec.title,
        "home_page_url": spec.link or base_url,
        "feed_url": ln.self_url,
    }
    if spec.subtitle:
        doc["description"] = spec.subtitle
    if spec.icon:
        doc["icon"] = spec.icon
    doc["language"] = lang
    if ln.hub:
        doc["hubs"] = [{"type": "WebSub", "url": ln.hub}]
    doc["_aggregator"] = {
        "about": GENERATOR_URI,
        "id": feed_id(spec.name),
        "alternates": [{"type": kind, "url": url} for kind, url in ln.twins],
    }
    items = []
    for e in entries:
        item: dict[str, Any] = {"id": e.atom_id}
        if e.link:
            item["url"] = e.link
        item["title"] = e.title
        item["content_html"] = e.content
        if e.summary:
            item["summary"] = e.summary
        if e.image:
            item["image"] = e.image.url
        item["date_published"] = _rfc3339(e.published)
        item["date_modified"] = _rfc3339(e.updated)
        author: dict[str, str] = {"name": e.author}
        if e.author_uri:
            author["url"] = e.author_uri
        item["authors"] = [author]
        if e.categories:
            item["tags"] = list(e.categories)
        if e.lang != lang:
            item["language"] = e.lang
        home = source_feeds.get(e.source)
        if home is not None:
            item["_aggregator"] = {
                "source": {"title": home.title, "feed_url": home_url(base_url, home, "json")}
            }
        items.append(item)
    doc["items"] = items
    # Compact: with ``indent`` the json module falls back to its pure-Python encoder, five
    # times slower (a third of the time spent writing 500 small feeds, bench/fetch_bench.py).
    return (json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


# A feed format's renderer: (spec, entries in order, site, links) -> the document's bytes.
Render = Callable[[FeedSpec, Sequence[Entry], Site, Links | None], bytes]
RENDER: dict[str, Render] = {"atom": atom, "rss": rss, "json": json_feed}
