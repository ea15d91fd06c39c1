"""feedgen's model of one feed: the only feedgen import (writer.py renders Atom and RSS from it).

``build`` makes the FeedGenerator of a feed's entries, with two feedgen extensions for what
feedgen cannot write itself: feed-level links (the other formats, the WebSub hub, RFC 5005
archive links) and per entry a full ``atom:source``, ``xml:lang``, the story's other copies
(``via``/``related``) and the lead image as Media RSS. Imported by writer.py the first time a
feed is rendered.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from aggregator import __version__
from aggregator.model import Entry, FeedSpec, Source
from aggregator.writer import (
    ATOM_NS,
    ATOM_TYPE,
    DC_NS,
    FH_NS,
    GENERATOR_URI,
    MEDIA_NS,
    NEVER,
    XML_LANG,
    Links,
    feed_id,
    feed_lang,
    feed_url,
    home_url,
)


class _Ext(BaseExtension):  # type: ignore[misc]
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


class _EntryExt(BaseEntryExtension):  # type: ignore[misc]
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
                    "link", src, rel="alternate", type="text/html", href=self.source["alternate"]
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


def build(
    spec: FeedSpec,
    entries: Sequence[Entry],
    base_url: str,
    sources: Mapping[str, Source],
    source_feeds: Mapping[str, FeedSpec],
) -> tuple[FeedGenerator, str]:
    """feedgen's model of the feed (without links) and its language."""
    fg = FeedGenerator()
    fg.register_extension("agg", _Ext, _EntryExt, atom=True, rss=True)
    lang = feed_lang(spec, entries, sources)
    fg.id(feed_id(spec.name))
    fg.title(spec.title)
    if spec.subtitle:
        fg.subtitle(spec.subtitle)
    fg.language(lang)
    fg.generator("aggregator", version=__version__, uri=GENERATOR_URI)
    if spec.icon:
        fg.icon(spec.icon)
    fg.updated(max((e.updated for e in entries), default=NEVER))
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
        ext: _EntryExt = fe.agg
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


def set_links(fg: FeedGenerator, spec: FeedSpec, base_url: str, ln: Links, kind: str) -> None:
    fg.link(href=ln.self_url, rel="self", type=kind, replace=True)
    fg.link(href=spec.link or base_url, rel="alternate", type="text/html")
    fg.agg.links = ln
