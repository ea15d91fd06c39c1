"""Entries -> Atom 1.0 bytes (RFC 4287). The only feedgen import.

Input: a ``FeedSpec``, its entries (newest first), the public base URL and the configured
sources (for each entry's ``atom:source``). Output: the feed document as UTF-8 bytes. Pure and
deterministic: nothing here reads the clock, so the same entries give byte-identical output;
the feed's ``updated`` is the newest entry's ``updated``.

What each entry carries: a permanent id (``urn:uuid``), title, ``rel="alternate"`` link to the
original article, published, updated, the outlet as author, categories, a plain-text summary, the
full cleaned content as ``type="html"``, the lead image (Media RSS ``media:content`` with its
caption, and ``media:thumbnail``), ``xml:lang`` where it differs from the feed's,
``atom:source`` naming the per-source feed it belongs to (RFC 4287 section 4.2.11), and for a
story merged from several copies, ``rel="via"`` to the copy whose text is shown and
``rel="related"`` to each other copy (RFC 4287 section 4.2.7.2).
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from aggregator import __version__
from aggregator.model import Entry, FeedSpec, Source

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ATOM_TYPE = "application/atom+xml"
GENERATOR_URI = "https://pypi.org/project/aggregator/"
# Feed ids are name-based UUIDs (RFC 4122) of the feed's name: stable when base_url moves.
_FEED_NAMESPACE = uuid.UUID("0b5e7d3a-9a43-5d0c-8e52-2f1f6b1c0d77")
# An empty feed still needs an `updated` (RFC 4287 4.1.1); the epoch says "never".
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def feed_id(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_FEED_NAMESPACE, name)}"


def feed_url(base_url: str, spec: FeedSpec) -> str:
    return base_url + spec.filename


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


class _Ext(BaseExtension):  # type: ignore[misc]
    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS}


class _EntryExt(BaseEntryExtension):  # type: ignore[misc]
    """Adds what feedgen's entry cannot express: a full ``atom:source``, ``xml:lang`` on the
    entry, and the lead image as Media RSS with its caption."""

    def __init__(self) -> None:
        self.lang: str | None = None
        self.source: dict[str, str] | None = None
        self.image: tuple[str, str] | None = None
        self.links: list[tuple[str, str]] = []  # (rel, href) of the story's other copies

    def extend_atom(self, entry: Any) -> Any:
        if self.lang:
            entry.set(XML_LANG, self.lang)
        for rel, href in self.links:
            xml_elem("link", entry, rel=rel, type="text/html", href=href)
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
        return item


def atom(
    spec: FeedSpec,
    entries: Sequence[Entry],
    base_url: str,
    sources: Mapping[str, Source],
    source_feeds: Mapping[str, FeedSpec],
) -> bytes:
    """The Atom document for ``spec`` holding ``entries`` in the order given."""
    fg = FeedGenerator()
    fg.register_extension("agg", _Ext, _EntryExt, atom=True, rss=False)
    lang = feed_lang(spec, entries, sources)
    fg.id(feed_id(spec.name))
    fg.title(spec.title)
    if spec.subtitle:
        fg.subtitle(spec.subtitle)
    fg.link(href=feed_url(base_url, spec), rel="self", type=ATOM_TYPE)
    fg.link(href=spec.link or base_url, rel="alternate", type="text/html")
    fg.language(lang)
    fg.generator("aggregator", version=__version__, uri=GENERATOR_URI)
    if spec.icon:
        fg.icon(spec.icon)
    fg.updated(max((e.updated for e in entries), default=_NEVER))
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
                "alternate": src.homepage or "",
            }
    return bytes(fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True))
