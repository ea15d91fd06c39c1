"""OPML 2.0 subscription lists: the output feeds (published beside them), an export of the
sources and outputs, and reading a feed reader's export to add its feeds as sources.

``outputs(config)``: the OPML of the output feeds, which the pipeline publishes as
``feeds/feeds.opml``. ``export(config)``: sources (the URL ones: an archive folder has no URL a
reader could use) and outputs, in two groups. ``read(data, origin)``: the feeds an OPML file
lists (nested folders included). ``plan(config, found)``: which of them to add as sources,
under which names, and which to skip and why. Pure and deterministic: no clock (OPML's
dateCreated is optional and would make every run's file differ), no network, no files; the
standard library writes OPML (a small fixed vocabulary, http://opml.org/spec2.opml) and lxml
reads it, with the network and DTDs off; a file declaring entities is refused, so a hostile
one cannot expand or pull anything in.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from lxml import etree

from aggregator import writer
from aggregator.adapters.feeds import declares_entities
from aggregator.config import feed_url_problem, web_url_problem
from aggregator.errors import ConfigError
from aggregator.model import Config

# The file the pipeline publishes beside the feeds.
FILENAME = "feeds.opml"
# Longest source name config.toml accepts (sources[].name).
MAX_NAME = 64


def _feed_outlines(parent: ET.Element, config: Config) -> None:
    for spec in config.feeds:
        attrs = {
            "type": "rss",
            "text": spec.title,
            "title": spec.title,
            "xmlUrl": writer.feed_url(config.base_url, spec),
        }
        if spec.link:
            attrs["htmlUrl"] = spec.link
        ET.SubElement(parent, "outline", attrs)


def _document(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _opml(title: str) -> tuple[ET.Element, ET.Element]:
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    return root, ET.SubElement(root, "body")


def outputs(config: Config, title: str = "aggregator feeds") -> bytes:
    """One ``<outline type="rss">`` per output feed (OPML uses type="rss" for every feed
    format), with its absolute ``xmlUrl``."""
    root, body = _opml(title)
    _feed_outlines(body, config)
    return _document(root)


def export(config: Config, title: str = "aggregator sources and feeds") -> bytes:
    """Two groups: "Sources" (every URL source, with its home page; no group when there is
    none, as with archive folders only) and "Feeds" (the outputs)."""
    root, body = _opml(title)
    urls = [(s, s.url) for s in config.sources if s.url is not None]
    group = ET.SubElement(body, "outline", text="Sources", title="Sources") if urls else body
    for s, url in urls:
        attrs = {"type": "rss", "text": s.title, "title": s.title, "xmlUrl": url}
        if s.homepage:
            attrs["htmlUrl"] = s.homepage
        ET.SubElement(group, "outline", attrs)
    group = ET.SubElement(body, "outline", text="Feeds", title="Feeds")
    _feed_outlines(group, config)
    return _document(root)


@dataclass(frozen=True, slots=True)
class Found:
    """One outline of an OPML file that names (or should name) a feed."""

    title: str
    url: str | None  # xmlUrl
    homepage: str | None = None  # htmlUrl


@dataclass(frozen=True, slots=True)
class Plan:
    added: tuple[tuple[str, Found], ...]  # (new source name, outline)
    skipped: tuple[tuple[Found, str], ...]  # (outline, why)


def read(data: bytes, origin: str) -> list[Found]:
    """Every ``<outline>`` with an ``xmlUrl`` or a ``type`` of rss/atom, in document order,
    through nested folders. ConfigError naming ``origin`` when it is not OPML."""
    if declares_entities(data):
        # libxml2 expands internal entities in attribute values whatever the parser options:
        # a file declaring them is refused, as feeds are (adapters/feeds.py).
        raise ConfigError(
            f"{origin}: declares XML entities (<!ENTITY ...>), which can expand without bound; "
            "refused. A reader's OPML export does not need them"
        )
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise ConfigError(f"{origin}: not an OPML file (not well-formed XML: {e})") from e
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError(f"{origin}: not an OPML file (no <opml> with a <body>)")
    found = []
    for el in body.iter("outline"):
        url = (el.get("xmlUrl") or el.get("xmlurl") or "").strip() or None
        kind = (el.get("type") or "").lower()
        if url is None and kind not in ("rss", "atom"):
            continue  # a folder: its children are visited by iter()
        title = (el.get("title") or el.get("text") or url or "").strip()
        homepage = (el.get("htmlUrl") or el.get("htmlurl") or "").strip() or None
        found.append(Found(title, url, homepage))
    return found


def _slug(found: Found) -> str:
    """A source name from the title's ASCII words, else the feed's host."""
    words = re.findall(r"[a-z0-9]+", found.title.lower())
    if not words and found.url:
        host = (urlsplit(found.url).hostname or "").removeprefix("www.")
        words = re.findall(r"[a-z0-9]+", host)
    return "-".join(words)[: MAX_NAME - 4].strip("-") or "feed"


def plan(config: Config, found: list[Found]) -> Plan:
    """Which outlines become sources (with unique names) and which are skipped, and why: not
    an http(s) URL, already configured, or listed twice in the file."""
    taken = {s.name for s in config.sources} | {f.name for f in config.feeds}
    known = {s.url: s.name for s in config.sources if s.url}
    listed: dict[str, str] = {}
    added: list[tuple[str, Found]] = []
    skipped: list[tuple[Found, str]] = []
    counters: dict[str, int] = {}  # the next number to try after each base name
    for f in found:
        if f.url is None:
            skipped.append((f, "no xmlUrl: the outline names no feed address"))
        elif problem := feed_url_problem(f.url):
            skipped.append((f, f"{f.url!r} is not an http(s) feed URL ({problem})"))
        elif f.url in known:
            skipped.append((f, f"already configured as source {known[f.url]!r}"))
        elif f.url in listed:
            skipped.append((f, f"listed twice in the file (added once, as {listed[f.url]!r})"))
        else:
            name = base = _slug(f)
            n = counters.get(base, 2)  # (counting on from the last: 20,000 alike stay linear)
            while name in taken:
                suffix = f"-{n}"
                name, n = base[: MAX_NAME - len(suffix)].rstrip("-") + suffix, n + 1
            counters[base] = n
            taken.add(name)
            listed[f.url] = name
            if f.homepage is not None and web_url_problem(f.homepage):
                f = replace(f, homepage=None)  # a page readers could not open: left out
            added.append((name, f))
    return Plan(tuple(added), tuple(skipped))
