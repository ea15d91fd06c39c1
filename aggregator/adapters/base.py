"""What every adapter is: a ``Profile`` of one outlet, and the shared way a Post becomes an Item.

A profile holds an outlet's knowledge as data: its name and home page, the hosts its article URLs
use, its language and time zone, how its URLs carry an article id, and the boilerplate rules it
needs beyond the generic ones. ``Profile.to_item`` applies that knowledge to a ``Post`` from a
container parser. Pure: bytes and origin in, items or ``ParseError`` out; no network, no clock.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from aggregator import dates
from aggregator.adapters.containers import Post, read_post
from aggregator.clean import clean_title, xml_text
from aggregator.clean.rules import Rule
from aggregator.clean.urls import has_host
from aggregator.dedupe import canonical_url, identity_key
from aggregator.errors import ParseError
from aggregator.model import Fetched, Image, Item

# Where a date line hides at the top of a body: the first text inside a run of opening tags,
# e.g. <div><i>Fri, 21 Oct 2022 19:39:42 GMT</i></div> (seeds/voa/) or
# <div><i><br>2022-01-10T04:58:40.481Z</i></div> (seeds/dw/).
_LEADING_TEXT = re.compile(
    r"\A\s*(?:<(?:div|p|span|i|em|b|strong|small|time|header|section)\b[^>]*>\s*|<br\s*/?>\s*)+"
    r"([^<]{6,80}?)\s*<"
)
_LINK_KEYS = ("link", "url", "permalink", "source_url", "original_link")
_IMAGE_KEYS = ("headimg", "image", "cover", "thumbnail", "featured_image")
_TAG_KEYS = ("categories", "category", "tags")


def leading_date(body: str, tz: tzinfo) -> datetime | None:
    """The date written as the first text of ``body``, if the body starts with one."""
    m = _LEADING_TEXT.match(body)
    # The text is raw HTML: "&nbsp;" and friends are entities until decoded.
    return dates.parse_date(html.unescape(m.group(1)), tz) if m else None


def _text_value(meta: Mapping[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` holding a usable scalar; numbers become text, anything else is
    ignored (front-matter is hand-written and often wrongly typed)."""
    for key in keys:
        value = meta.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, str | int | float):
            text = xml_text(str(value)).strip()
            if text:
                return text
    return None


def _categories(meta: Mapping[str, Any], drop: set[str]) -> tuple[str, ...]:
    out: list[str] = []
    for key in _TAG_KEYS:
        value = meta.get(key)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str | int | float) and not isinstance(v, bool):
                text = " ".join(xml_text(str(v)).split())
                if text and text not in out and text not in drop:
                    out.append(text)
    return tuple(out)


def _http_url(value: str | None) -> str | None:
    """``value`` when it is an http(s) URL with a host and a port that can be, else None.
    Whitespace, control characters or lone surrogates inside make it no URL."""
    if not value:
        return None
    value = value.strip()
    if value.startswith("//"):
        value = "https:" + value
    if _NOT_IN_URL.search(value):
        return None
    if value.partition(":")[0].lower() not in ("http", "https"):
        return None
    return has_host(value)


def _home_page(url: str) -> bool:
    """Whether ``url`` is a site's front page (no path, no query): no article's address."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.path in ("", "/") and not parts.query


# Character references to what XML cannot hold ("&#1;", "&#x1b"): the HTML parser decodes them
# into the tree, where lxml then refuses them. (libxml2 itself turns &#0; and surrogates into
# U+FFFD.) Decimal 0-8, 11, 12, 14-31, 65534, 65535; hex 0-8, b, c, e-1f, fffe, ffff; the ";"
# is optional in HTML.
_CONTROL_REF = re.compile(
    r"&#(?:[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F]|[fF]{3}[eEfF])(?![0-9a-fA-F])"
    r"|0*(?:[0-8]|1[124-9]|2[0-9]|3[01]|6553[45])(?![0-9]));?"
)
_NOT_IN_URL = re.compile("[\x00-\x20\x7f\ud800-\udfff\ufffe\uffff]")


# A BCP 47 language tag as feeds write them: "en", "en-gb", "zh_CN", "pt-BR", "zh-Hant-TW".
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def language_tag(value: str | None) -> str | None:
    """``value`` as a BCP 47 tag in its usual case ("en-gb" -> "en-GB", "zh_hant" ->
    "zh-Hant"), or None when it is not one."""
    if value is None or not _LANGUAGE_TAG.fullmatch(value := value.strip()):
        return None
    first, *rest = value.replace("_", "-").split("-")
    parts = [first.lower()]
    for part in rest:
        if len(part) == 2 and part.isalpha():
            parts.append(part.upper())  # region
        elif len(part) == 4 and part.isalpha():
            parts.append(part.title())  # script
        else:
            parts.append(part.lower())
    return "-".join(parts)


@dataclass(frozen=True)
class Profile:
    key: str  # registry key: config.toml, tests/data/<key>/, `aggregator adapters`
    outlet: str  # the outlet's name: every entry's author
    homepage: str  # the outlet's site: author URI and rel="alternate" of its feed
    description: str  # one line for `aggregator adapters`
    hosts: tuple[str, ...] = ()  # article URL hosts that identify the outlet (auto-detection)
    # BCP 47; a Chinese item's script (Simplified or Traditional) is told once it is cleaned.
    lang: str = "zh-Hans"
    tz: str = "UTC"  # IANA zone for dates written without one
    article_id: re.Pattern[str] | None = None  # group 1: the outlet's article id in a URL path
    rules: tuple[Rule, ...] = ()  # boilerplate rules beyond the generic ones

    @cached_property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.tz)

    def owns(self, link: str | None) -> bool:
        """True when ``link`` is an article URL of this outlet."""
        try:
            host = (urlsplit(link).hostname or "") if link else ""
        except ValueError:  # malformed ("http://[::1/x"): no outlet's; to_item says why
            return False
        return any(host == h or host.endswith("." + h) for h in self.hosts)

    def parse(self, fetched: Fetched) -> tuple[Item, ...]:
        """The archive item in ``fetched`` (a file: one post, one item)."""
        return (self.to_item(read_post(fetched.data, fetched.origin), fetched),)

    def author_for(self, link: str | None) -> tuple[str, str]:
        """(name, URI) of the outlet an item is credited to."""
        return self.outlet, self.homepage

    def to_item(self, post: Post, fetched: Fetched) -> Item:
        origin = fetched.origin
        meta = post.meta
        # What XML cannot hold (control characters, lone surrogates a JSON feed can encode)
        # goes here, at the way in: downstream, lxml refuses to write a feed holding one, and
        # SQLite cannot store a surrogate.
        body = xml_text(post.body)
        if "&#" in body:
            body = _CONTROL_REF.sub("", body)
        if body != post.body:
            post = replace(post, body=body)
        title = post.title or _text_value(meta, "title")
        title = xml_text(title) if title else title
        if not title:
            raise ParseError(
                origin, "the item has no title; add one (the '[title](url)' line or title:)"
            )
        if not clean_title(title):
            raise ParseError(
                origin,
                f"the title {title[:80]!r} shows no text (only markup or invisible characters);"
                " give it words (the '[title](url)' line or title:)",
            )
        given = post.link or _text_value(meta, *_LINK_KEYS)
        link = _http_url(given)
        if given and link is None:
            raise ParseError(
                origin,
                f"the article link {given!r} is not an http(s) URL with a host and a valid port",
            )
        if link is not None:
            link = canonical_url(link)  # tracking parameters and fragment dropped
        published = (
            leading_date(post.body, self.zone)
            or dates.coerce(
                meta.get("date") or meta.get("published") or meta.get("pubDate"), self.zone
            )
            or post.archived
        )
        dated = published is not None
        if published is None and fetched.at is not None:
            published = fetched.at  # a feed entry without a date: first seen now
        if published is None:
            raise ParseError(
                origin,
                "cannot tell when this was published: no date line at the top of the body, "
                "no date: in the front-matter and no <!--epoch-ms--> archive timestamp",
            )
        author, author_uri = self.author_for(link)
        named = _text_value(meta, "author")
        guid = _text_value(meta, "guid") if post.container == "feed" else None
        # A site's home page given as the link (some feeds give it for every entry) names no
        # article: the entry is known by its guid, else by its title and date (all of them
        # were one article, each counted as the other's update).
        home = link is not None and _home_page(link)
        if home and guid and _home_page(guid):
            guid = None
        image_url = _http_url(_text_value(meta, *_IMAGE_KEYS))
        return Item(
            source=fetched.source,
            outlet=self.key,
            origin=origin,
            key=identity_key(
                self.key,
                None if home else link,
                self.article_id,
                title=title,
                published=published,
                guid=guid,
                scope=fetched.source,
                dated=dated,
                body=post.body,
            ),
            title=title,
            link=link,
            published=published,
            archived=post.archived,
            author=named or author,
            author_uri=author_uri,
            # The language the item declares (a feed's xml:lang or <language>, front-matter's
            # lang:), else the outlet's; Chinese script is told from the cleaned text (clean).
            lang=language_tag(_text_value(meta, "lang", "language")) or self.lang,
            content=post.body,
            categories=_categories(meta, {named or "", author}),
            image=Image(image_url) if image_url else None,
            dated=dated,
            live=post.container == "feed",
            guid=guid,
        )
