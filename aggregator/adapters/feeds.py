"""The feed container: a downloaded RSS, Atom or JSON Feed document -> one ``Post`` per entry.

RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 are read by feedparser (the only feedparser import), always
given the bytes and the response headers, never a URL, so it never touches the network.
feedparser repairs wrong or missing encoding declarations from the headers and the bytes,
resolves relative links against ``xml:base`` and the feed's own URL, and tolerates the
malformed XML real feeds serve. Its HTML sanitiser is off: the clean stage sanitises every
body with one allow-list, feeds and archives alike, and needs the markup the outlet wrote
(classes, captions) to find its boilerplate.

JSON Feed 1.0/1.1 is plain JSON with a short, fixed vocabulary; feedparser's releases (6.0.x)
do not read it, so it is mapped here from ``json.loads``.

A document that declares XML entities (``<!ENTITY``) is rejected before any parser sees it:
entity expansion (the "billion laughs") and external entities (a local file or URL pulled into
the feed) have no place in a news feed. Pure: bytes in, posts or ``ParseError`` out.
"""

from __future__ import annotations

import html
import json
import mimetypes
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urljoin

from aggregator import dates
from aggregator.adapters.containers import Post
from aggregator.clean import clean_title, untitled
from aggregator.errors import ParseError

# Where a DOCTYPE's internal subset would be: entity declarations come before the root element.
_PROLOG_BYTES = 64 * 1024
# "<!ENTITY" as an XML parser would read it: in an ASCII-compatible encoding (UTF-8, GB18030,
# Latin-1 ...) or in UTF-16 or UTF-32 of either byte order, which parsers recognise from the
# first bytes; in any letter case. (A UTF-16 document got past a check of the UTF-8 bytes.)
_ENTITY = re.compile(
    b"|".join(
        re.escape("<!ENTITY".encode(c))
        for c in ("ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
    ),
    re.IGNORECASE,
)


def declares_entities(data: bytes) -> bool:
    """Whether an XML document's bytes declare an entity. The whole document is searched
    (a few ms for a large one): a long comment can push the DOCTYPE past any prefix."""
    return _ENTITY.search(data) is not None


_HTML_PAGE = re.compile(rb"\A\s*(?:<!--.*?-->\s*)*<!doctype\s+html|\A\s*<html[\s>]", re.I | re.S)
_JSON_FEED = "https://jsonfeed.org/version/1"


# A Post, made when called: one entry's odd value (a date of year 0, a malformed URL) must
# cost that entry, not the feed, so the caller turns each into a Post inside its own try.
EntryPost = Callable[[], Post]


def read_feed(data: bytes, headers: Mapping[str, str], url: str) -> tuple[EntryPost, ...]:
    """Every entry of the feed in ``data`` (served from ``url`` with ``headers``), in feed
    order, each a call that makes its Post. ParseError, naming ``url``, when ``data`` is not a
    feed we will read."""
    if not data.strip():
        raise ParseError(url, "the body is empty; the server sent no feed")
    head = data[:_PROLOG_BYTES]
    if declares_entities(data):
        raise ParseError(
            url,
            "the document declares XML entities (<!ENTITY ...>), which can expand without bound "
            "or pull in local files; refused. A real feed does not need them",
        )
    ctype = headers.get("content-type", "").lower()
    if "json" in ctype or data.lstrip()[:1] == b"{":
        return _json_feed(data, url)
    if _HTML_PAGE.match(head):
        raise ParseError(
            url,
            "the server sent an HTML page, not a feed; check the URL (a login, error or "
            "'site moved' page?)",
        )
    import feedparser  # ~90 ms to import: only in runs that read a downloaded feed

    if b"&#" in data:
        data = _CHAR_REF.sub(_writable_ref, data)
    parsed = feedparser.parse(
        data,
        response_headers={"content-type": headers.get("content-type", "application/xml"),
                          "content-location": url},
        sanitize_html=False,
        resolve_relative_uris=True,
    )  # fmt: skip
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        detail = f" ({problem})" if problem else ""
        raise ParseError(url, f"not an RSS or Atom feed{detail}")
    language = parsed.feed.get("language")  # RSS's <language>, the feed's xml:lang
    return tuple(partial(_entry_post, entry, language) for entry in parsed.entries)


_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")


def _writable_ref(ref: re.Match[bytes]) -> bytes:
    """A character reference, or nothing when it names no character (a lone surrogate such as
    "&#xD800;", a number past U+10FFFF): feedparser's forgiving parser raised on one, and the
    whole feed failed."""
    hexa, decimal = ref.groups()
    digits = (hexa or decimal).lstrip(b"0")
    if len(digits) > 7:
        return b""
    code = int(digits or b"0", 16 if hexa else 10)
    return b"" if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else ref[0]


def _when(entry: dict[str, Any], key: str) -> Any:
    """The entry's ``key`` date: its own text where our date dialects read it (so a date
    without a zone gets the outlet's zone in the adapter), else feedparser's reading (UTC)."""
    # dict.get, not FeedParserDict's: its fallbacks (updated -> published) warn and would
    # read one date twice.
    raw = dict.get(entry, key)
    if isinstance(raw, str) and dates.parse_date(raw, UTC) is not None:
        return raw
    parsed = dict.get(entry, f"{key}_parsed")
    if isinstance(parsed, time.struct_time) and 1 <= parsed.tm_year <= 9999:
        return datetime(*parsed[:6], tzinfo=UTC)
    return None  # none, or one no calendar has ("0000-00-00" reads as year -1)


def _body(entry: Mapping[str, Any]) -> str:
    """The fullest body the entry has: content (HTML preferred) over summary."""
    contents = entry.get("content") or []
    for want in ("text/html", "application/xhtml+xml", None):
        for c in contents:
            if want is None or c.get("type") == want:
                value = c.get("value") or ""
                if value.strip():
                    return value if "html" in (c.get("type") or "html") else _text_html(value)
    summary = entry.get("summary") or ""
    detail = entry.get("summary_detail") or {}
    if summary and "html" not in (detail.get("type") or "text/html"):
        return _text_html(summary)
    return str(summary)


def _text_html(text: str) -> str:
    """Plain text as HTML: escaped, one paragraph a blank-line-separated block, its single line
    ends kept as ``<br>`` (a note's lines, a list written with dashes)."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line.strip()) for line in b.splitlines()) + "</p>"
        for b in blocks
    )


def _image(entry: Mapping[str, Any]) -> str | None:
    for media in entry.get("media_content") or []:
        if media.get("url") and (
            media.get("medium") == "image" or "image" in media.get("type", "")
        ):
            return str(media["url"])
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and link.get("type", "").startswith("image/"):
            return str(link.get("href"))
    for thumb in entry.get("media_thumbnail") or []:
        if thumb.get("url"):
            return str(thumb["url"])
    return None


def _media(entry: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(URL, type) of each audio or video file the entry carries beside its text: RSS
    enclosures (a podcast's episode), Atom's rel="enclosure", Media RSS's video and audio."""
    found: list[tuple[str, str]] = []
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and isinstance(link.get("href"), str):
            found.append((link["href"], str(link.get("type") or "")))
    for media in entry.get("media_content") or []:
        kind = str(media.get("type") or "")
        medium = str(media.get("medium") or kind.partition("/")[0])
        if isinstance(media.get("url"), str) and medium in ("audio", "video"):
            found.append((media["url"], kind or medium))
    return _players(found)


def _players(files: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(URL, "audio" or "video", media type or "") of the audio and video among ``files``
    (URL, type as the feed gives it: a media type, "audio"/"video", or nothing), each URL
    once. A missing type is guessed from the file's name; one that cannot be is left out of
    the player, which then asks the file itself."""
    seen: set[str] = set()
    out = []
    for url, given in files:
        kind = given if "/" in given else mimetypes.guess_type(url.split("?")[0])[0] or ""
        medium = kind.partition("/")[0] if "/" in kind else given
        if medium in ("audio", "video") and url not in seen:
            seen.add(url)
            out.append((url, medium, kind if kind.startswith(medium + "/") else ""))
    return out


def _with_players(body: str, files: list[tuple[str, str, str]]) -> str:
    """``body`` with a player for each file it does not already play or link: the cleaning
    rule ``media_embeds`` then gives each its link for readers that do not play them."""
    for url, medium, kind in files:
        if html.escape(url) in body or url in body:
            continue
        typed = f' type="{html.escape(kind)}"' if kind else ""
        body += f'<p><{medium} controls><source src="{html.escape(url)}"{typed}></{medium}></p>'
    return body


_TAG = re.compile(r"<[^>]*>")


def _title(title: Any, body: str, kind: str | None = None) -> str | None:
    """The entry's title, else the start of its text (JSON Feed and RSS allow untitled items,
    and a title that is only markup or invisible characters shows nothing).
    ``kind``: the title's type as feedparser found it; only an HTML title has markup to undo
    ("标普 <S&P> 指数 &copy 周五下跌" as text/plain is already what a reader should see)."""
    if isinstance(title, str) and title.strip():
        if kind != "text/plain":
            title = html.unescape(_TAG.sub("", title))
        if clean_title(title):
            return str(title).strip()
    return untitled(" ".join(html.unescape(_TAG.sub(" ", body)).split())) or None


def _language(entry: Mapping[str, Any]) -> Any:
    """The xml:lang in force on the entry's title, content or summary (feedparser reads it
    there; RSS has none per item)."""
    for detail in (entry.get("title_detail"), *(entry.get("content") or []),
                   entry.get("summary_detail")):  # fmt: skip
        if isinstance(detail, Mapping) and detail.get("language"):
            return detail["language"]
    return None


def _entry_post(entry: dict[str, Any], language: Any = None) -> Post:
    meta: dict[str, Any] = {
        "lang": _language(entry) or language,
        "date": _when(entry, "published") or _when(entry, "updated") or _when(entry, "created"),
        "categories": [t.get("term") for t in entry.get("tags") or [] if t.get("term")],
        # RSS's <author> is "email (name)": the name, which feedparser takes apart.
        "author": (entry.get("author_detail") or {}).get("name") or entry.get("author"),
        "guid": entry.get("id"),
        "headimg": _image(entry),
    }
    link = entry.get("link")
    body = _with_players(_body(entry), _media(entry))
    return Post(
        container="feed",
        title=_title(entry.get("title"), body, (entry.get("title_detail") or {}).get("type")),
        link=link if isinstance(link, str) and link.strip() else None,
        archived=dates.coerce(_when(entry, "updated")),
        body=body,
        meta={k: v for k, v in meta.items() if v},
    )


def _json_feed(data: bytes, url: str) -> tuple[EntryPost, ...]:
    try:
        doc = json.loads(data.decode("utf-8-sig"), parse_int=_json_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParseError(url, f"not valid JSON ({e}); JSON Feeds are UTF-8 JSON") from e
    except RecursionError as e:
        raise ParseError(url, "JSON nested too deeply to be a feed") from e
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(_JSON_FEED):
        raise ParseError(
            url, 'JSON but not a JSON Feed (no "version": "https://jsonfeed.org/version/1.1")'
        )
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError(url, 'a JSON Feed without an "items" list')
    # Relative URLs resolve against where the document was fetched (RFC 3986 section 5.1.3).
    language = doc.get("language")
    return tuple(
        partial(_json_item, item, url, language) for item in items if isinstance(item, dict)
    )


def _json_int(digits: str) -> int | str:
    """A JSON integer, or its digits when Python will not convert that many (over 4,300: one
    such number made the whole feed fail)."""
    return int(digits) if len(digits) <= 100 else digits


def _str(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _join(base: str, url: str | None) -> str | None:
    """``url`` resolved against ``base``; a malformed one ("http://[::1") is returned as it
    is, for the adapter to refuse with its reason."""
    if not url:
        return None
    try:
        return urljoin(base, url)
    except ValueError:
        return url


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_item(item: Mapping[str, Any], base: str, language: Any = None) -> Post:
    link = _str(item.get("url")) or _str(item.get("external_url"))
    body = _str(item.get("content_html")) or ""
    if not body:
        text = _str(item.get("content_text")) or _str(item.get("summary")) or ""
        body = _text_html(text)
    files = [
        (_join(base, a["url"]) or "", str(a.get("mime_type") or ""))
        for a in _list(item.get("attachments"))
        if isinstance(a, dict) and isinstance(a.get("url"), str)
    ]
    body = _with_players(body, _players(files))
    # Wrongly typed members (a number where a list belongs) are ignored, as front-matter's are.
    authors = _list(item.get("authors")) or (
        [item["author"]] if isinstance(item.get("author"), dict) else []
    )
    names = [a["name"] for a in authors if isinstance(a, dict) and isinstance(a.get("name"), str)]
    author = ", ".join(n.strip() for n in names if n.strip()) or None
    tags = [t for t in _list(item.get("tags")) if isinstance(t, str)]
    image = _str(item.get("image")) or _str(item.get("banner_image"))
    meta: dict[str, Any] = {
        "lang": _str(item.get("language")) or _str(language),
        "date": _str(item.get("date_published")) or _str(item.get("date_modified")),
        "categories": tags,
        "author": author,
        "guid": str(item["id"]) if isinstance(item.get("id"), str | int) else None,
        "headimg": _join(base, image),
    }
    return Post(
        container="feed",
        title=_title(item.get("title"), body, "text/plain"),  # JSON Feed: plain text
        link=_join(base, link),
        archived=dates.coerce(_str(item.get("date_modified"))),
        body=body,
        meta={k: v for k, v in meta.items() if v},
    )
