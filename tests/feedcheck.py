"""Checks of the RSS 2.0 and JSON Feed 1.1 twins, and one entry point for any generated file.

RSS 2.0 has no normative schema: ``check_rss`` applies the rules of the RSS 2.0 specification
(RSS Advisory Board, version 2.0.11, "RSS 2.0 Specification"): the required channel elements,
elements that may appear once, an item with a title or a description, RFC 822 dates, a
``guid`` that is a URL when it says it is a permalink, ``enclosure`` and ``source`` with their
required attributes, no un-namespaced elements the specification does not define. JSON Feed
files are validated against ``schemas/jsonfeed-1.1.schema.json`` with jsonschema (formats
checked: uri, date-time).
"""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime
from functools import cache
from pathlib import Path

import jsonschema
from atomcheck import SCHEMAS, absolute_http, check_content_html, check_feed
from lxml import etree

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"
# RSS 2.0 specification: "Required channel elements" and "Optional channel elements".
CHANNEL_REQUIRED = ("title", "link", "description")
CHANNEL_ONCE = ("language", "copyright", "managingEditor", "webMaster", "pubDate",
                "lastBuildDate", "generator", "docs", "cloud", "ttl", "image", "rating",
                "textInput", "skipHours", "skipDays")  # fmt: skip
CHANNEL_MANY = ("category", "item")
# "Elements of <item>": all optional, category repeatable.
ITEM_ONCE = ("title", "link", "description", "author", "comments", "enclosure", "guid",
             "pubDate", "source")  # fmt: skip
# RFC 822 date-time as RSS 2.0 uses it (four-digit years allowed, as the spec recommends).
RFC822 = re.compile(
    r"^(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
    r"|Nov|Dec) \d{2,4} \d\d:\d\d(:\d\d)? ([+-]\d{4}|GMT|UT|[ECMP][SD]T|[A-IK-Z])$"
)
LANGUAGE = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")


def _date(text: str | None, where: str) -> list[str]:
    if text is None:
        return []
    if not RFC822.match(text):
        return [f"{where}: {text!r} is not an RFC 822 date"]
    try:
        parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return [f"{where}: {text!r} is not a real date"]
    return []


def _counts(el: etree._Element, once: tuple[str, ...], many: tuple[str, ...],
            where: str) -> list[str]:  # fmt: skip
    problems = []
    for child in el:
        if not isinstance(child.tag, str) or child.tag.startswith("{"):
            continue  # comments; namespaced extension elements are allowed anywhere
        if child.tag not in once + many:
            problems.append(f"{where}: <{child.tag}> is not an RSS 2.0 element")
    for name in once:
        if len(el.findall(name)) > 1:
            problems.append(f"{where}: <{name}> appears more than once")
    return problems


def check_rss(data: bytes) -> list[str]:
    """Problems with an RSS 2.0 document; empty when it keeps every rule checked here."""
    root = etree.fromstring(data)
    if root.tag != "rss" or root.get("version") != "2.0":
        return [f"root is <{root.tag} version={root.get('version')!r}>, not <rss version='2.0'>"]
    channels = root.findall("channel")
    if len(channels) != 1:
        return [f"{len(channels)} <channel> elements, RSS 2.0 wants exactly one"]
    channel = channels[0]
    problems = _counts(channel, CHANNEL_REQUIRED + CHANNEL_ONCE, CHANNEL_MANY, "channel")
    for name in CHANNEL_REQUIRED:
        if not (channel.findtext(name) or "").strip():
            problems.append(f"channel: required <{name}> missing or empty")
    if not absolute_http(channel.findtext("link")):
        problems.append("channel: <link> is not an absolute http(s) URL")
    for name in ("pubDate", "lastBuildDate"):
        problems += _date(channel.findtext(name), f"channel <{name}>")
    language = channel.findtext("language")
    if language is not None and not LANGUAGE.match(language):
        problems.append(f"channel: language {language!r} is not a language tag")
    selfs = [ln for ln in channel.findall(f"{ATOM}link") if ln.get("rel") == "self"]
    if len(selfs) != 1 or not absolute_http(selfs[0].get("href")):
        problems.append("channel: needs one atom:link rel=self with an absolute URL")
    guids = set()
    for i, item in enumerate(channel.findall("item")):
        where = f"item {i}"
        problems += _counts(item, ITEM_ONCE, ("category",), where)
        if item.find("title") is None and item.find("description") is None:
            problems.append(f"{where}: needs a <title> or a <description>")
        guid = item.find("guid")
        if guid is None:
            problems.append(f"{where}: no <guid> (ours always have one)")
        else:
            permalink = guid.get("isPermaLink", "true")
            if permalink not in ("true", "false"):
                problems.append(f"{where}: isPermaLink={permalink!r}")
            if permalink == "true" and not absolute_http(guid.text):
                problems.append(f"{where}: permalink guid {guid.text!r} is not a URL")
            if guid.text in guids:
                problems.append(f"{where}: guid {guid.text} used twice")
            guids.add(guid.text)
        link = item.findtext("link")
        if link is not None and not absolute_http(link):
            problems.append(f"{where}: <link> {link!r} is not an absolute http(s) URL")
        problems += _date(item.findtext("pubDate"), f"{where} <pubDate>")
        enclosure = item.find("enclosure")
        if enclosure is not None and not all(enclosure.get(a) for a in ("url", "length", "type")):
            problems.append(f"{where}: <enclosure> needs url, length and type")
        source = item.find("source")
        if source is not None and not absolute_http(source.get("url")):
            problems.append(f"{where}: <source> needs an absolute url attribute")
        author = item.findtext("author")
        if author is not None and "@" not in author:
            problems.append(f"{where}: <author> {author!r} is not an e-mail address")
        content = item.findtext(CONTENT)
        if content is not None:
            problems += check_content_html(content, where)
    return problems


@cache
def _json_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "jsonfeed-1.1.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


def check_json(data: bytes) -> list[str]:
    """Problems with a JSON Feed 1.1 document: the schema, unique ids, sanitised content."""
    doc = json.loads(data)
    problems = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in _json_validator().iter_errors(doc)
    ]
    ids = [item.get("id") for item in doc.get("items", [])]
    if len(set(ids)) != len(ids):
        problems.append("items: an id is used twice")
    for i, item in enumerate(doc.get("items", [])):
        problems += check_content_html(item.get("content_html", ""), f"item {i}")
    return problems


def check_file(path: Path) -> list[str]:
    """Every problem with one generated feed file, by its format."""
    data = path.read_bytes()
    check = {".atom": check_feed, ".rss": check_rss, ".json": check_json}[path.suffix]
    return [f"{path.name}: {p}" for p in check(data)]
