"""Cleaning rules: each one a named piece of data that edits an article's HTML tree.

Inputs: the body as an lxml tree (a ``<div>`` holding the fragment) and a ``Context`` (base URL,
the outlet's time zone). Output: the tree edited in place, and the number of times the rule fired,
which the run report shows per rule so that a rule that silently stops matching shows up.

Rules never drop text on a keyword alone: a notice must match at the start of a short block
among the last blocks of the body (``TRAILING_BLOCKS``), a promo must be nothing but its marker
and links, an ad block is found by its class or id, never by words like 广告 that real articles
contain. Each rule has a fixture in ``tests/data`` showing it firing. Outlet-specific rules are
instances made in the outlet's adapter module; the generic ones are ``BEFORE_OUTLET`` and
``AFTER_OUTLET`` below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import tzinfo
from functools import cached_property

from lxml import etree
from lxml.etree import _Element

from aggregator.clean import urls
from aggregator.dates import MAX_DATE_TEXT, parse_date

BLOCK_TAGS = frozenset(
    {"p", "div", "section", "article", "blockquote", "li", "h1", "h2", "h3", "h4", "h5", "h6",
     "figure", "figcaption", "table", "ul", "ol", "pre", "hr", "header", "footer", "aside"}
)  # fmt: skip
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
_NO_ZERO_WIDTH = dict.fromkeys(map(ord, _ZERO_WIDTH))
_BLANK = " \t\n\r\f\v\u00a0\u3000\u200b\u200c\u200d\u2060\ufeff"
_LEAF_TAGS = frozenset({"p", "div", "section", "article", "blockquote", "li", "footer", "aside",
                       "header", "h1", "h2", "h3", "h4", "h5", "h6", "td"})  # fmt: skip


# Boilerplate (a mirror's promo, copyright and reuse notices) is what outlets and mirrors append:
# it sits among the last blocks of a body. The rules that remove it look at this many of the last
# innermost blocks and no further, which keeps them from ever touching the body of an article
# and costs a walk of the article's end instead of the whole tree. The longest tail in the
# fixtures is 3 blocks: a notice split over two paragraphs, then the promo.
TRAILING_BLOCKS = 5
# How much of the raw body's end holds those blocks' markup, with room to spare: a notice or a
# promo is a few hundred characters of HTML, and what may follow it (another notice, share
# buttons, the promo) is short too. The longest fixture tail (notice, call to follow, promo)
# is about 1,000 characters.
TAIL_CHARS = 4000


@dataclass(slots=True)
class Context:
    base_url: str | None  # the article's URL; relative links resolve against it
    tz: tzinfo  # the outlet's zone, for date lines written without one
    raw: str = ""  # the body as received: rules test it for their marker before walking the tree
    _trailing: list[tuple[_Element, str]] | None = None
    _widened: bool = False  # a rule removed trailing blocks: see ``mentions_near_end``
    _near: str | None = None  # where ``mentions_near_end`` looks, chosen once an item

    def mentions(self, needles: tuple[str, ...]) -> bool:
        """True when the raw body contains one of ``needles``: a rule's cheap test of whether
        its target could be there at all (substring search, ~100x cheaper than a regex)."""
        raw = self.raw
        return any(n in raw for n in needles)

    def mentions_near_end(self, needles: tuple[str, ...]) -> bool:
        """``mentions`` for the rules that look at the last blocks only: the needles are
        looked for in the last ``TAIL_CHARS`` of the raw body, where those blocks are. (Each
        search costs ~1 ns a character of Chinese text; the trailing rules' two dozen needles
        over a whole 10,000-character body cost more than the rules themselves.)"""
        if self._near is None:
            tail = self.raw[-TAIL_CHARS:]
            # A script or style at the end takes room but holds no block: the whole body then.
            self._near = self.raw if "</script" in tail or "</style" in tail else tail
        # Once a rule removed the last blocks, the ones before them may lie further up.
        near = self.raw if self._widened else self._near
        return any(n in near for n in needles)

    def trailing_blocks(self, root: _Element) -> list[tuple[_Element, str]]:
        """The last TRAILING_BLOCKS innermost blocks (paragraphs, divs with no block inside)
        still in the tree, in document order, each with its normalised text. Found once per
        item by walking the tree backwards from its end; later calls leave out what an
        earlier rule removed."""
        if self._trailing is None:
            found: list[_Element] = []
            _last_leaves(root, found, TRAILING_BLOCKS)
            self._trailing = [(el, norm_text(el)) for el in reversed(found)]
        return [(el, text) for el, text in self._trailing if attached(el, root)]

    def forget_trailing(self) -> None:
        """Called by a rule that removed some of the last blocks: the next call to
        ``trailing_blocks`` looks again, and finds the blocks that came before them."""
        self._trailing = None
        self._widened = True


def _last_leaves(el: _Element, found: list[_Element], limit: int) -> None:
    """Append the innermost blocks inside ``el`` to ``found``, last first, until there are
    ``limit``. Only the subtrees that hold a block are entered. (The test walks descendants in
    Python: it stops at the first block, and iterdescendants(*tags) builds a tag matcher on
    every call, which cost more: 14 -> 9 us an item over 900 corpus bodies.)"""
    for child in reversed(el):
        if len(found) >= limit:
            return
        tag = child.tag
        if not isinstance(tag, str):
            continue
        if len(child) and any(d.tag in _LEAF_TAGS for d in child.iterdescendants()):
            _last_leaves(child, found, limit)
        elif tag in _LEAF_TAGS:
            found.append(child)


def text_of(el: _Element) -> str:
    """All the text inside ``el`` (not its tail). lxml yields str for trees parsed from str."""
    return "".join(el.itertext())  # type: ignore[arg-type]


def squash(text: str) -> str:
    """``text`` with zero-width characters removed and every run of space (no-break and
    ideographic ones too) one plain space, ends stripped. ``str.split`` does the work in C,
    several times faster than a regular expression over Chinese text."""
    if not text.isascii() and any(z in text for z in _ZERO_WIDTH):
        text = text.translate(_NO_ZERO_WIDTH)
    return " ".join(text.split())


def norm_text(el: _Element) -> str:
    """An element's text, squashed (see ``squash``)."""
    return squash(text_of(el))


def drop(el: _Element) -> None:
    """Remove ``el`` and its content but keep the text that follows it (its tail)."""
    parent = el.getparent()
    if parent is None:
        return
    tail = el.tail
    prev = el.getprevious()
    if tail:
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(el)


def attached(el: _Element, root: _Element) -> bool:
    """True while ``el`` is still inside ``root`` (not in a subtree an earlier step removed)."""
    node: _Element | None = el
    while node is not None:
        if node is root:
            return True
        node = node.getparent()
    return False


def _with_attributes(root: _Element) -> list[_Element]:
    """The elements under ``root`` that have an attribute. (Not XPath's ".//*[@*]", about as
    fast on an article: libxml2 sorts its results into document order, and elements the
    rules created have no order index, so that each comparison walked their siblings: 20,000
    players with captions took 51 s to clean.)"""
    return [el for el in root.iterdescendants(etree.Element) if el.attrib]


def _short_text(el: _Element, limit: int) -> str | None:
    """``el``'s normalised text, or None as soon as it is known to be longer than ``limit``."""
    parts, size = [], 0
    for part in el.itertext():
        parts.append(str(part))
        size += len(part)
        if size > 4 * limit:
            return None
    text = squash("".join(parts))
    return text if len(text) <= limit else None


def _tokens(el: _Element) -> Iterable[str]:
    yield from (el.get("class") or "").lower().split()
    ident = el.get("id")
    if ident:
        yield ident.lower()


class Rule:
    """Base of all rules: a name shown in the run report, and ``apply``."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        raise NotImplementedError  # pragma: no cover - every rule overrides it


@dataclass(frozen=True)
class DropElements(Rule):
    """Elements removed with everything inside them (scripts, embeds, forms, document-level tags)."""

    name: str
    tags: frozenset[str]

    def apply(self, root: _Element, ctx: Context) -> int:
        found = [el for el in root.iter(*self.tags)]
        for el in found:
            drop(el)
        return len(found)


@dataclass(frozen=True)
class AdBlocks(Rule):
    """Blocks marked as advertising by their class or id (``adsbygoogle``, ``ad-slot`` ...)."""

    name: str
    pattern: re.Pattern[str]
    precheck: re.Pattern[str]  # could the raw body hold such a class or id at all?

    def apply(self, root: _Element, ctx: Context) -> int:
        if not ctx.mentions(("class", "id=")) or not self.precheck.search(ctx.raw):
            return 0
        found = [
            el for el in _with_attributes(root) if any(self.pattern.match(t) for t in _tokens(el))
        ]
        count = 0
        for el in found:
            if attached(el, root):  # not inside one already removed
                drop(el)
                count += 1
        return count


@dataclass(frozen=True)
class TrackingPixels(Rule):
    """1x1 images and images served by known counters (feed stats, analytics beacons)."""

    name: str
    hosts: re.Pattern[str]  # searched case-insensitively; written in lower case

    def __post_init__(self) -> None:
        if self.hosts.pattern != self.hosts.pattern.lower():
            raise ValueError(f"{self.name}: write the hosts pattern in lower case")

    @cached_property
    def _hosts_lower(self) -> re.Pattern[str]:
        # For ASCII text, a lower-case pattern found case-insensitively is the same pattern
        # found case-sensitively in the lowered text (IGNORECASE's only other matches are four
        # non-ASCII letters). That search costs 3 us a URL instead of 12-18.
        return re.compile(self.hosts.pattern, self.hosts.flags & ~re.IGNORECASE)

    def _is_tracker(self, src: str) -> bool:
        if src.isascii():
            return self._hosts_lower.search(src.lower()) is not None
        return self.hosts.search(src) is not None

    def apply(self, root: _Element, ctx: Context) -> int:
        found = []
        for img in root.iter("img"):
            w, h = img.get("width", "").strip(), img.get("height", "").strip()
            tiny = w in ("0", "1", "1px", "0px") and h in ("0", "1", "1px", "0px")
            if tiny or self._is_tracker(img.get("src", "")):
                found.append(img)
        for img in found:
            drop(img)
        return len(found)


@dataclass(frozen=True)
class LeadingDateLine(Rule):
    """The publication date repeated as the body's first block (``<div><i>date</i></div>``),
    or as an inline element standing alone before the first block (``<span>date</span><p>``;
    one with text after it, ``<b>2022年10月21日</b>，俄罗斯…``, is the article's sentence)."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        if (root.text or "").strip():
            return 0
        for el in root:
            if not isinstance(el.tag, str):
                continue
            if el.tag == "br":
                continue
            text = _short_text(el, MAX_DATE_TEXT)
            is_date = text is not None and len(text) > 0 and parse_date(text, ctx.tz) is not None
            alone = el.tag in BLOCK_TAGS or not (el.tail or "").strip()
            if alone and is_date and el.find(".//img") is None:
                drop(el)
                return 1
            return 0
        return 0


def _link_only(el: _Element) -> bool:
    """True when ``el`` holds one or more links and no text outside them."""
    links = list(el.iter("a"))
    return bool(links) and norm_text(el).replace(" ", "") == "".join(
        norm_text(a) for a in links
    ).replace(" ", "")


@dataclass(frozen=True)
class RelatedLinks(Rule):
    """A list of links to other articles under a heading such as 相关新闻, 延伸阅读 or "Related",
    among the last blocks: the page's navigation, which changes from one capture to the next and
    is no part of the article. Every list item must be nothing but links; the heading may be any
    element (``<h3>``, ``<p>``, ``<strong>``) standing just before the list."""

    name: str
    heading: re.Pattern[str]

    def apply(self, root: _Element, ctx: Context) -> int:
        # Gated on the list's markup, not the headings' many words (each search costs).
        if not ctx.mentions_near_end(("<li", "<LI")):
            return 0
        count = 0
        for el, _ in ctx.trailing_blocks(root):
            lst = el.getparent() if el.tag == "li" else None
            if lst is None or lst.tag not in ("ul", "ol") or not attached(lst, root):
                continue
            title = lst.getprevious()
            heading = _short_text(title, 20) if title is not None else None
            if title is None or not heading or not self.heading.match(heading):
                continue
            if (title.tail or "").strip(_BLANK):
                continue
            items = [li for li in lst if isinstance(li.tag, str)]
            if not all(li.tag == "li" and _link_only(li) for li in items):
                continue
            drop(title)
            drop(lst)
            count += 1
        if count:  # the blocks before the list are now the last ones
            ctx.forget_trailing()
        return count


# A web address written out as text in a promo ("获取更多RSS：<br>https://feedx.net"), with the
# punctuation a writer may leave after it.
_BARE_URL = re.compile(r"(?:https?://|www\.)\S+?[,，。.;；]?", re.IGNORECASE)


@dataclass(frozen=True)
class PromoFooter(Rule):
    """A block of nothing but a marker and links: a mirror's promo ("获取更多RSS：" and its
    sites, linked or written out; seeds/dw/, seeds/voa/003) or share buttons ("分享到：Facebook
    Twitter Email"), with the ``<hr>`` and ``<br>`` before it. Without the marker, a block of
    nothing but links to ``targets`` (the mirror's own sites, share endpoints) is one too.
    Looked for among the last blocks only (``TRAILING_BLOCKS``)."""

    name: str
    marker: re.Pattern[str] | None  # says what the block is: its links may go anywhere
    # A marker an article may also write ("更多内容请访问：<a>报告全文</a>", "分享：<a>讲话全文</a>"):
    # every link and written address after it must go to ``targets``.
    guarded: re.Pattern[str] | None
    targets: re.Pattern[str]  # matched against each link's absolute URL
    needles: tuple[str, ...]  # one of these is in the raw body wherever such a block could be
    # Links a block needs to be taken without a marker: one for the mirror's own sites; two for
    # share endpoints, as a lone mailto: link is an article's contact address.
    unmarked_links: int = 1

    def _is_promo(self, el: _Element, text: str) -> bool:
        m = self.marker.match(text) if self.marker else None
        g = None if m or self.guarded is None else self.guarded.match(text)
        found = m or g
        rest = text[found.end() :] if found else text
        links = list(el.iter("a"))
        # What is left once every link's text is taken out: nothing, or addresses as text.
        for a in links:
            rest = rest.replace(norm_text(a), " ", 1)
        written = rest.split()
        if not all(_BARE_URL.fullmatch(word) for word in written):
            return False
        if m:
            return True
        if not g and len(links) < self.unmarked_links:
            return False
        hrefs = [urls.absolute(a.get("href", ""), None) or "" for a in links]
        return bool(hrefs or written) and all(self.targets.match(u) for u in hrefs + written)

    def apply(self, root: _Element, ctx: Context) -> int:
        if not ctx.mentions_near_end(self.needles):
            return 0
        count = 0
        for el, text in ctx.trailing_blocks(root):
            if not attached(el, root) or not self._is_promo(el, text):
                continue
            prev = el.getprevious()
            while prev is not None and prev.tag in ("hr", "br") and not (prev.tail or "").strip():
                doomed, prev = prev, prev.getprevious()
                drop(doomed)
            drop(el)
            count += 1
        return count


@dataclass(frozen=True)
class NoticeBlock(Rule):
    """A copyright or reuse notice: a short block among the last ones (``TRAILING_BLOCKS``) whose
    text *starts* with ``pattern``; the same words higher up are the article's.

    ``continuation`` also removes the next block when the notice is split over two blocks.
    ``max_chars`` keeps the rule from ever taking a paragraph of article text.
    """

    name: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...]  # one of these is in the raw body wherever the notice could be
    continuation: re.Pattern[str] | None = None
    max_chars: int = 300

    def apply(self, root: _Element, ctx: Context) -> int:
        if not ctx.mentions_near_end(self.needles):
            return 0
        count = 0
        for el, text in ctx.trailing_blocks(root):
            if not attached(el, root):
                continue
            if len(text) > self.max_chars or not self.pattern.match(text):
                continue
            # Take the outermost block that holds nothing but this notice (<p><em>notice</em></p>).
            target = el
            parent = target.getparent()
            while parent is not None and parent is not root and norm_text(parent) == text:
                target, parent = parent, parent.getparent()
            nxt = target.getnext()
            if (
                self.continuation is not None
                and nxt is not None
                and len(norm_text(nxt)) <= self.max_chars
                and self.continuation.match(norm_text(nxt))
            ):
                drop(nxt)
            drop(target)
            count += 1
        return count


@dataclass(frozen=True)
class TrailingNotice(Rule):
    """A generic copyright line among the last blocks of the body (© 2024 ..., 版权所有)."""

    name: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...]  # one of these must be in the raw body for the rule to look
    max_chars: int = 200
    last_blocks: int = 3

    def apply(self, root: _Element, ctx: Context) -> int:
        if not ctx.mentions_near_end(self.needles):
            return 0
        count = 0
        for el, text in ctx.trailing_blocks(root)[-self.last_blocks :]:
            if text and len(text) <= self.max_chars and self.pattern.search(text):
                drop(el)
                count += 1
        return count


@dataclass(frozen=True)
class CaptionedImages(Rule):
    """The mirror's caption layout ``<img><div><small>caption</small></div>`` becomes
    ``<figure><img><figcaption>caption</figcaption></figure>`` (seeds/voa/, seeds/dw/)."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        count = 0
        for img in list(root.iter("img")):
            parent = img.getparent()
            nxt = img.getnext()
            if parent is None or parent.tag == "figure" or nxt is None or (img.tail or "").strip():
                continue
            if nxt.tag not in ("div", "p") or len(nxt) != 1 or nxt[0].tag != "small":
                continue
            if (nxt.text or "").strip() or (nxt[0].tail or "").strip():
                continue
            caption = norm_text(nxt)
            figure = etree.Element("figure")
            img.addprevious(figure)
            figure.tail, img.tail = nxt.tail, None
            figure.append(img)
            if caption:
                etree.SubElement(figure, "figcaption").text = caption
            parent.remove(nxt)
            count += 1
        return count


@dataclass(frozen=True)
class FigureCaptions(Rule):
    """Loose caption text inside a ``<figure>`` (``<figure><img>(半岛电视台)</figure>``, seen
    in seeds/aljazeera/) moves into a ``<figcaption>``."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        count = 0
        for fig in root.iter("figure"):
            if fig.find("figcaption") is not None:
                continue
            loose = (fig.text or "") + "".join(child.tail or "" for child in fig)
            loose = squash(loose)
            if not loose:
                continue
            fig.text = None
            for child in fig:
                child.tail = None
            etree.SubElement(fig, "figcaption").text = loose
            count += 1
        return count


@dataclass(frozen=True)
class ImageProxies(Rule):
    """Images routed through a proxy point back at the original image, over https."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        count = 0
        for el in root.iter("img", "a", "source"):
            attr = "href" if el.tag == "a" else "src"
            value = el.get(attr)
            original = urls.unwrap_proxy(value) if value else None
            if original:
                el.set(attr, original)
                count += 1
        return count


# Where lazy-loading scripts keep the picture until it scrolls into view (lazysizes, jQuery
# lazyload, WordPress plugins, Zhihu), in the order they are tried.
_LAZY_ATTRS = (
    "data-src",
    "data-original",
    "data-lazy-src",
    "data-actualsrc",
    "data-echo",
    "data-url",
)


@dataclass(frozen=True)
class LazyImages(Rule):
    """An image whose ``src`` is a placeholder (a ``data:`` URI, a blank, or missing) gets its
    picture back: from ``data-src`` or the like (lazy loading), else the widest candidate of its
    ``srcset`` (or of its ``<picture>``'s first ``<source>``, JPEG or PNG before other types).
    Those attributes are removed later with the other presentational ones, which left a blank
    or no image at all, and the caption under it. A ``<picture>`` is then left as its
    ``<img>`` alone."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        if not ctx.mentions(("data-", "srcset")):
            return 0
        count = 0
        for img in root.iter("img"):
            src = (img.get("src") or "").strip()
            if src and not src.lower().startswith("data:"):
                continue
            real = next((v for v in map(img.get, _LAZY_ATTRS) if v and v.strip()), None)
            if real is None:
                real = _widest(img.get("srcset") or "") or _widest(img.get("data-srcset") or "")
            # (libxml2 does not know <source> is empty: it nests what follows inside it.)
            picture = next((up for up in img.iterancestors("picture")), None)
            if real is None and picture is not None:
                sources = sorted(picture.iter("source"), key=_source_rank)
                real = next(filter(None, (_widest(s.get("srcset") or "") for s in sources)), None)
            if real is not None and not real.strip().lower().startswith("data:"):
                img.set("src", real.strip())
                count += 1
        # A <picture> is its <img> from here on: its sources only offer srcsets, which the
        # sanitiser removes, leaving empty <source type="image/webp"> tags in the feed. (Not
        # one that swallowed a player, unclosed: the player's own sources are its files.)
        for picture in list(root.iter("picture")):
            parent = picture.getparent()
            if parent is not None and next(picture.iter("video", "audio"), None) is None:
                etree.strip_tags(picture, "source")
                picture.tag = "unwrap-this"  # lxml strips by tag: this one alone, text kept
                etree.strip_tags(parent, "unwrap-this")
        return count


def _widest(srcset: str) -> str | None:
    """The URL of a ``srcset``'s largest candidate (a candidate without descriptor is 1x),
    parsed as HTML does: a URL runs to the next space (it may hold commas: a CDN's
    ``w_400,h_300``), a comma at its end closes the candidate, else its descriptors run to
    the next comma; ``data:`` placeholders are passed over."""
    best: tuple[float, str] | None = None
    pos, end = 0, len(srcset)
    while pos < end:
        while pos < end and (srcset[pos].isspace() or srcset[pos] == ","):
            pos += 1
        start = pos
        while pos < end and not srcset[pos].isspace():
            pos += 1
        url, descriptor = srcset[start:pos], ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = pos
            while pos < end and srcset[pos] != ",":
                pos += 1
            descriptor = srcset[start:pos].strip()
        if not url or url.lower().startswith("data:"):
            continue
        size = _DESCRIPTOR.fullmatch(descriptor)
        value = float(size.group(1)) if size else 1.0
        if best is None or value > best[0]:
            best = (value, url)
    return best[1] if best else None


_DESCRIPTOR = re.compile(r"(\d+(?:\.\d+)?)[wx]")


def _source_rank(source: _Element) -> int:
    """A ``<picture>``'s sources, those every reader shows (JPEG, PNG, GIF, no type) first."""
    kind = (source.get("type") or "").lower()
    return 0 if kind in ("", "image/jpeg", "image/png", "image/gif") else 1


# Players embedded by address, with the page where each plays (a link to a bare player page
# shows nothing but the player): YouTube (and its no-cookie domain), Vimeo, Dailymotion.
_PLAYER_PAGES = (
    (re.compile(r"^https://(?:www\.)?youtube(?:-nocookie)?\.com/embed/(?!videoseries)([\w-]{6,})"),
     "https://www.youtube.com/watch?v={}"),
    (re.compile(r"^https://player\.vimeo\.com/video/(\d+)"), "https://vimeo.com/{}"),
    (re.compile(r"^https://(?:www\.)?dailymotion\.com/embed/video/(\w+)"),
     "https://www.dailymotion.com/video/{}"),
)  # fmt: skip
# What a player's title says when it names nothing ("YouTube video player").
_GENERIC_TITLE = re.compile(
    r"^(?:youtube|vimeo|dailymotion)?\s*(?:video\s*)?(?:player|embed(?:ded)?(?:\s*content)?"
    r"|iframe)?$|^(?:视频|視頻|影片)?播放器$",
    re.IGNORECASE,
)
# A caption's class token: "caption", "video-caption", "caption-text", "credit" ...
_CAPTION_CLASS = re.compile(r"(?:^|\s)(?:[\w-]*-)?(?:caption|credits?)(?:-text)?(?:\s|$)", re.I)
_PLAYER_WORDS = re.compile(r"player|video|audio|/embed|podcast", re.IGNORECASE)
# Frames that show nothing a reader wants: ad servers, tag managers, "recommended for you"
# and comment widgets, like/share/follow buttons. (A Facebook post or video embedded is a
# player: it becomes a link.)
_AD_FRAMES = re.compile(
    r"doubleclick\.net|googlesyndication\.com|googletagmanager\.com|adservice\.|/ads?/"
    r"|outbrain\.com|taboola\.com|amazon-adsystem\.com|adnxs\.com|criteo\.(?:com|net)"
    r"|disqus\.com|addthis\.com|sharethis\.com"
    r"|facebook\.com/plugins/(?:like|share_button|page|follow|comments|likebox)\.php"
    r"|platform\.twitter\.com/widgets/(?:follow|tweet|hashtag|mention)_button",
    re.IGNORECASE,
)
_INLINE_PARENTS = frozenset({"p", "span", "em", "i", "strong", "b", "small", "li", "td", "th",
                             "h1", "h2", "h3", "h4", "h5", "h6", "figcaption", "blockquote"})  # fmt: skip


def _shown_url(url: str, limit: int = 60) -> str:
    """A URL as link text: no scheme, no ``www.``, cut to ``limit`` characters."""
    short = url.split("://", 1)[-1].removeprefix("www.").rstrip("/")
    return short if len(short) <= limit else short[: limit - 1] + "…"


def _lazy(el: _Element, name: str) -> str:
    """An attribute, or its lazy-loading stand-in (``data-src``) when the page's script was
    to set it: the first that is not a ``data:`` placeholder."""
    for value in (el.get(name), el.get(f"data-{name}")):
        if value and value.strip() and not value.strip().lower().startswith("data:"):
            return value.strip()
    return ""


def _hidden(el: _Element) -> bool:
    w, h = (el.get("width") or "").strip(), (el.get("height") or "").strip()
    style = (el.get("style") or "").replace(" ", "").lower()
    return (
        w in ("0", "1", "0px", "1px")
        or h in ("0", "1", "0px", "1px")
        or "display:none" in style
        or "visibility:hidden" in style
    )


@dataclass(frozen=True)
class MediaEmbeds(Rule):
    """Embedded video and audio, which a feed cannot play as the page did, left as something a
    reader can use instead of nothing or a stranded caption:

    * an ``<iframe>`` player becomes a link to what it plays ("▶ " and its title, else its
      address): YouTube's, Vimeo's and Dailymotion's players link their watch page; hidden
      frames, ad frames and widgets (like buttons, comments, "recommended") are left to the
      ``embeds`` rule, which removes every frame;
    * ``<video>`` and ``<audio>`` stay playable (controls, no preload, the poster and their
      sources, absolute, ``data-src`` ones included) and hold a link to the file for readers
      that do not play them, in place of the page's fallback sentence ("您的浏览器不支持视频
      播放。"); one with no source at all is removed with that sentence. A caption right
      after it (``class="caption"``) makes a figure with it, out of the summary."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        count = 0
        for el in list(root.iter("iframe", "video", "audio")):  # (lxml lower-cases tag names)
            if el.tag == "iframe":
                count += self._frame(el, ctx)
            else:
                count += self._player(el, ctx)
        return count

    def _frame(self, frame: _Element, ctx: Context) -> int:
        src = urls.absolute(frame.get("src") or "", ctx.base_url)
        parent = frame.getparent()
        if src is None or parent is None or _hidden(frame) or _AD_FRAMES.search(src):
            return 0
        if any(up.tag == "a" for up in frame.iterancestors()):
            return 0  # a link cannot hold a link
        page, known = src, False
        for pattern, template in _PLAYER_PAGES:
            if m := pattern.match(src):
                page, known = template.format(m.group(1)), True
                break
        title = squash(frame.get("title") or "")
        label = title if title and not _GENERIC_TITLE.match(title) else _shown_url(page)
        link = etree.Element("a", href=page)
        link.text = ("▶ " if known or _PLAYER_WORDS.search(src) else "") + label
        if parent.tag in _INLINE_PARENTS or any(up.tag == "figure" for up in frame.iterancestors()):
            new = link
        else:  # a block of its own: a figure, which the summary and text leave out
            new = etree.Element("figure")
            new.append(link)
        new.tail = frame.tail
        parent.replace(frame, new)
        return 1

    def _player(self, player: _Element, ctx: Context) -> int:
        own = urls.absolute(_lazy(player, "src"), ctx.base_url)
        sources = [
            (u, s.get("type"))
            for s in player.iter("source")
            if (u := urls.absolute(_lazy(s, "src"), ctx.base_url))
        ]
        files = [own] if own else []
        files += [u for u, _ in sources]
        if not files or _hidden(player):
            drop(player)
            return 1
        poster = urls.absolute(_lazy(player, "poster"), ctx.base_url)
        tail = player.tail
        player.clear()  # attributes, the fallback sentence, tracks and anything else inside
        player.tail = tail
        if own:
            player.set("src", own)
        if poster and player.tag == "video":
            player.set("poster", urls.unwrap_proxy(poster) or poster)
        player.set("controls", "controls")
        player.set("preload", "none")
        for url, kind in sources:
            source = etree.SubElement(player, "source", src=url)
            if kind:
                source.set("type", kind)
        link = etree.SubElement(player, "a", href=files[0])
        link.text = "▶ " + _shown_url(files[0])
        _caption_player(player)
        return 1


_NOT_IN_CAPTION = ("p", "div", "img", "figure", "video", "audio", "iframe", "table", "ul", "ol")


def _caption_player(player: _Element) -> None:
    """A player followed by its caption (``<p class="caption">``) outside any figure: the two
    become a figure, which the summary and the text leave out, as they do an image's."""
    after, parent = player.getnext(), player.getparent()
    if after is None or parent is None or (player.tail or "").strip():
        return
    if not _CAPTION_CLASS.search(after.get("class") or "") or after.tag not in ("p", "div"):
        return
    inside = next(after.iterdescendants(*_NOT_IN_CAPTION), None)
    if inside is not None or sum(map(len, after.itertext())) > 300:
        return  # a block of the article (paragraphs, pictures) under a caption-like class
    if any(up.tag == "figure" for up in player.iterancestors()):
        return
    figure = etree.Element("figure")
    tail, player.tail = player.tail, None
    parent.replace(player, figure)
    figure.append(player)
    rest, after.tail = after.tail, None
    after.tag = "figcaption"
    figure.append(after)  # (moved from the parent)
    figure.tail = (tail or "") + (rest or "")


@dataclass(frozen=True)
class LinkTracking(Rule):
    """Click-tracking parameters (``utm_*``, ``fbclid`` ...) removed from the body's links; the
    rest of each URL stays as written."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        count = 0
        for a in root.iter("a"):
            href = a.get("href")
            if href and "?" in href:
                clean = urls.strip_tracking(href)
                if clean != href:
                    a.set("href", clean)
                    count += 1
        return count


@dataclass(frozen=True)
class AbsoluteUrls(Rule):
    """Links and image sources made absolute against the article URL. A link that cannot be made
    an http(s) URL is unwrapped (its text stays); such an image is removed."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        count = 0
        for el in list(root.iter("a", "img")):
            attr = "href" if el.tag == "a" else "src"
            value = el.get(attr)
            if value is None:
                if el.tag == "img":
                    drop(el)
                continue
            fixed = urls.absolute(value, ctx.base_url)
            if fixed == value:
                continue
            count += 1
            if fixed is not None:
                el.set(attr, fixed)
            elif el.tag == "img":
                drop(el)
            else:
                del el.attrib[attr]
        return count


@dataclass(frozen=True)
class RepeatedImages(Rule):
    """A picture shown again further down (the mirror's copy of the lead image at the top,
    then the article's own figure of it) is shown once: the later ``<img>`` goes, with its
    figure when that held nothing else. Compared once proxies are unwrapped and URLs made
    absolute."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        seen: dict[str, _Element] = {}
        again: list[_Element] = []
        for img in root.iter("img"):
            src = img.get("src")
            if not src or _icon(img):
                continue
            first = seen.get(src)
            if first is None:
                seen[src] = img
            elif _captioned(img) and not _captioned(first):
                again.append(first)  # the later copy has the caption: it stays
                seen[src] = img
            else:
                again.append(img)
        for img in again:
            figure = img.getparent()
            if (
                figure is not None
                and figure.tag == "figure"
                and not any(
                    el is not img and el.tag in ("img", "video", "audio", "a")
                    for el in figure.iter()
                    if el is not figure
                )
            ):
                drop(figure)
            else:
                drop(img)
        return len(again)


def _captioned(img: _Element) -> bool:
    parent = img.getparent()
    return parent is not None and parent.tag == "figure" and parent.find("figcaption") is not None


def _icon(img: _Element) -> bool:
    """A small inline picture (an emoji or icon, repeated on purpose): 64 px or less."""
    sizes = (img.get(name, "").strip().removesuffix("px") for name in ("width", "height"))
    return any(v.isdigit() and int(v) <= 64 for v in sizes)


_PRESENTATIONAL = (
    "style", "width", "height", "align", "valign", "color", "bgcolor", "border", "face", "size",
    "class", "id", "target", "loading", "referrerpolicy", "srcset", "sizes", "decoding",
)  # fmt: skip


@dataclass(frozen=True)
class PresentationAttributes(Rule):
    """Inline styles and presentational attributes removed (a reader applies its own style)."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        count = 0
        for el in _with_attributes(root):
            attrib = el.attrib
            names = [str(k) for k in attrib]
            for key in [
                k for k in names if k in _PRESENTATIONAL or k.startswith(("data-", "aria-"))
            ]:
                del attrib[key]
                count += 1
        return count


def _is_br(el: _Element | None) -> bool:
    return el is not None and el.tag == "br"


# What may stand between the <br>s of a paragraph break: nothing, or a lone full stop the
# outlet's editor left on its own line (seeds/voa/003, VOA 6786297: "...无人机。<br />.<br />瓦瑟...").
_FILLERS = frozenset({"", ".", "。"})


def _filler(tail: str | None) -> bool:
    return not tail or tail.strip(_BLANK) in _FILLERS


@dataclass(frozen=True)
class BreakRuns(Rule):
    """``<br><br>`` used as a paragraph break splits the paragraph in two; a ``<br>`` at the
    start or end of a block, or between blocks, is removed (seeds/voa/000 writes whole articles
    as one ``<p>`` with ``<br /><br />`` between paragraphs)."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        brs = list(root.iter("br"))
        if not brs:
            return 0
        count = 0
        for block in {br.getparent() for br in brs if _is_br(br.getnext())}:
            if block is not None and block is not root and block.tag in ("p", "div"):
                count += self._split(block)
        parents = {br.getparent() for br in root.iter("br")}
        for block in parents:
            if block is not None and (block is root or block.tag in BLOCK_TAGS):
                count += self._trim(block)
        return count

    def _split(self, block: _Element) -> int:
        """Split ``block`` at every run of two or more ``<br>``, in one pass over its children."""
        if next(block.iterchildren(*BLOCK_TAGS), None) is not None:  # the tag test runs in C
            return 0
        children = list(block)
        br = [child.tag == "br" for child in children]  # each .tag is a new str: read once
        last = len(children) - 1
        segments: list[tuple[str | None, list[_Element]]] = [(block.text, [])]
        i, runs = 0, 0
        while i <= last:
            child = children[i]
            j = i
            while j < last and br[j] and br[j + 1] and _filler(children[j].tail):
                j += 1
            if j > i:  # children[i..j] is a run of <br>; its last one's tail starts the next part
                segments.append((children[j].tail, []))
                runs += 1
                i = j + 1
                continue
            segments[-1][1].append(child)
            i += 1
        if not runs:
            return 0
        tail = block.tail
        block.tail = None
        # What no segment holds is the <br> of a run. (A set: testing each child against every
        # segment's list cost a third of the rule, perf-tools/rule.py br_runs.)
        kept = {node for _, nodes in segments for node in nodes}
        for child in children:
            if child not in kept:
                block.remove(child)
        block.text = segments[0][0]
        anchor = block
        tag = "p" if block.tag == "div" else block.tag
        for text, nodes in segments[1:]:
            new = etree.Element(tag)
            new.text = text
            for node in nodes:
                new.append(node)
            anchor.addnext(new)
            anchor = new
        anchor.tail = tail
        return runs

    def _trim(self, block: _Element) -> int:
        count = 0
        # Leading <br>s: nothing but whitespace before them.
        while len(block) and _is_br(block[0]) and not (block.text or "").strip():
            block.text = (block.text or "") + (block[0].tail or "")
            block.remove(block[0])
            count += 1
        # Trailing <br>s: nothing but whitespace after them.
        while len(block) and _is_br(block[-1]) and not (block[-1].tail or "").strip():
            block.remove(block[-1])
            count += 1
        # <br> standing between two blocks.
        for br in [c for c in block if c.tag == "br" and not (c.tail or "").strip()]:
            prev, nxt = br.getprevious(), br.getnext()
            prev_block = prev is None or (isinstance(prev.tag, str) and prev.tag in BLOCK_TAGS)
            next_block = nxt is None or (isinstance(nxt.tag, str) and nxt.tag in BLOCK_TAGS)
            if prev_block and next_block and br.getparent() is not None:
                drop(br)
                count += 1
        return count


_KEEP_EMPTY = frozenset({"img", "br", "hr", "td", "th", "tr", "figure"})


@dataclass(frozen=True)
class EmptyBlocks(Rule):
    """Paragraphs and wrappers left with no text and no image (``<p><br /></p>``, ``<div> </div>``)."""

    name: str

    def apply(self, root: _Element, ctx: Context) -> int:
        count = 0
        # Children come before their parents in reverse document order, so by the time a
        # parent is looked at its empty children are gone and "no children" means empty.
        # (Starting from XPath's leaves, .//*[not(*)], was slower: libxml2 evaluates the
        # predicate per element at ~1 us, the Python walk costs 0.3-0.5 us per element.)
        for el in reversed(list(root.iter())):
            # Children and text first: they rule out most elements, and each .tag read makes a
            # new str (the tests are pure, so their order does not change what is dropped).
            if len(el) or (el.text or "").strip(_BLANK):
                continue
            if el is root or not isinstance(el.tag, str) or el.tag in _KEEP_EMPTY:
                continue
            if el.tag == "source" and getattr(el.getparent(), "tag", "") in ("video", "audio"):
                continue  # a player's file
            drop(el)
            count += 1
        return count


# --- The generic rules every item goes through, in order. --------------------------------------

_AD_TOKENS = re.compile(
    r"^(?:ads?|advert\w*|adsbygoogle|ad[-_]\w+|ads[-_]\w+|sponsor(?:ed)?|google[-_]?ads?\w*"
    r"|dfp[-_]\w+|banner[-_]ad\w*|promo[-_]ad\w*|outbrain|taboola)$"
)
# Could the raw body hold such a class or id at all? (Most bodies have no class attributes.)
_AD_PRECHECK = re.compile(
    r"""(?:class|id)\s*=\s*["']?[^"'>]*?(?<![\w])(?:ads?\b|ad[-_]|advert|adsbygoogle|sponsor|google|dfp|banner|promo|outbrain|taboola)"""
)
# Counters and beacons that serve 1x1 images: FeedBurner, Feedsportal, WordPress stats,
# Google Analytics, Quantcast, comScore, Chartbeat.
_TRACKER_HOSTS = re.compile(
    r"(?:feeds\.feedburner\.com/~r/|feedsportal\.com|pixel\.wp\.com|stats\.wordpress\.com"
    r"|google-analytics\.com|pixel\.quantserve\.com|scorecardresearch\.com|chartbeat\.net"
    r"|/(?:pixel|beacon|tracking?)(?:\.gif|\.png|/|\?)"
    # Hit counters: the mirror's (feedx.net/counter.php?id=voa) and any counter script.
    r"|/(?:counter|count|hits?|stats?|tracker)\.(?:php|aspx?|cgi|jsp)(?:\?|$))",
    re.IGNORECASE,
)
# A mirror's promo: "获取更多RSS：", "订阅更多RSS：" (Simplified or Traditional); and "更多内容请访问：",
# which an article may write too, so only with the mirror's sites after it.
_PROMO_MARKER = re.compile(r"^(?:获取|獲取|订阅|訂閱)更多\s*RSS\s*[:：]?\s*", re.IGNORECASE)
_VISIT_MARKER = re.compile(
    r"^更多(?:内容|內容|资讯|資訊)?\s*(?:请|請)(?:访问|訪問)\s*[:：]?\s*", re.IGNORECASE
)
# The mirror's sites (feedx.net, .top, .fun, .site in the seeds and fixtures) and its pages.
_MIRROR_HOSTS = re.compile(
    r"^(?:https?://)?(?:www\.)?feedx\.[a-z]{2,6}(?:[/?#]\S*)?$", re.IGNORECASE
)
# The heading of a list of links to other articles: 相关新闻, 相關報導, 延伸阅读, Related stories.
_RELATED_HEADING = re.compile(
    r"^(?:相关|相關|延伸|更多)(?:新闻|新聞|报道|報導|報道|阅读|閱讀|文章|链接|鏈接|連結|内容|內容)"
    r"|^(?:related|see also|more on this|read more)\b",
    re.IGNORECASE,
)
# Share buttons: "分享到：", "分享至", "Share this:" ...
_SHARE_MARKER = re.compile(
    r"^(?:分享(?:到|至)?|Share(?: this(?: article| story)?| on)?)\s*[:：]\s*|^(?:分享到|分享至)\s*",
    re.IGNORECASE,
)
# Where share buttons point: the networks' share endpoints, and mailto.
_SHARE_TARGETS = re.compile(
    r"^(?:mailto:|https?://(?:[a-z0-9-]+\.)*(?:facebook\.com/shar|twitter\.com/(?:intent|share)"
    r"|x\.com/intent|weibo\.com/share|linkedin\.com/(?:shareArticle|sharing)"
    r"|(?:t|telegram)\.me/share|whatsapp\.com/send|wa\.me/|reddit\.com/submit|line\.me/R/msg"
    r"|social-plugins\.line\.me|plus\.google\.com/share|pinterest\.com/pin/create))",
    re.IGNORECASE,
)
# A notice, not a sentence that names copyright: "© 2022 ...", "(c) 2022", "Copyright 2022",
# "... 版权所有。", "版权所有，未经许可不得转载", "本文版權歸美國之音所有", "版权归原作者所有",
# "未经授权，不得转载". Kept: "这幅画作的版权所有者已提起诉讼", "(C) 部分为援引路透社的报道"
# (tests/data/voa/voa-copyright-words-in-article-text.txt).
_COPYRIGHT_LINE = re.compile(
    r"^(?:©|\(c\)\s*(?:\d{4}|[a-z]{2,})|copyright\s*(?:©|\(c\)|\d{4}|by\b))"
    r"|all rights reserved"
    r"|^版[权權]所有|版[权權]所有\s*[。.!！]?$"
    r"|版[权權]所有\s*[,，、;；]\s*(?:未[经經]|[转轉]载|翻印|侵[权權]|违者|違者)"
    r"|(?:本文|本站|本网|本網).{0,30}版[权權]|版[权權][归歸](?:原作者|作者|原文作者)所有"
    r"|未[经經].{0,12}(?:授[权權]|许可|許可|同意).{0,12}不得(?:[转轉]载|复制|複製|使用)",
    re.IGNORECASE,
)

# Before the outlet's own rules: what no article ever needs, and the mirror's wrapping.
BEFORE_OUTLET: tuple[Rule, ...] = (
    DropElements(
        "scripts",
        frozenset({"script", "noscript", "style", "template", "link", "meta", "base", "title"}),
    ),
    MediaEmbeds("media_embeds"),
    DropElements(
        "embeds",
        frozenset({"iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math"}),
    ),
    DropElements("forms", frozenset({"form", "input", "button", "select", "textarea"})),
    LazyImages("lazy_images"),
    AdBlocks("ad_blocks", _AD_TOKENS, _AD_PRECHECK),
    TrackingPixels("tracking_pixels", _TRACKER_HOSTS),
    LeadingDateLine("date_line"),
    RelatedLinks("related_links", _RELATED_HEADING),
    PromoFooter(
        "mirror_promo",
        _PROMO_MARKER,
        _VISIT_MARKER,
        _MIRROR_HOSTS,
        ("更多RSS", "更多 RSS", "更多rss", "请访问", "請訪問", "feedx.", "FEEDX.", "Feedx."),
    ),
    PromoFooter(
        "share_links",
        None,
        _SHARE_MARKER,
        _SHARE_TARGETS,
        ("分享", "hare", "HARE", "mailto:"),
        unmarked_links=2,
    ),
)
# After the outlet's rules: generic notices, then layout repairs on what is left.
AFTER_OUTLET: tuple[Rule, ...] = (
    TrailingNotice(
        "copyright_line",
        _COPYRIGHT_LINE,
        (
            "©",
            "(c)",
            "(C)",
            "opyright",
            "OPYRIGHT",
            "版权",
            "版權",
            "不得转载",
            "不得轉載",
            "ights reserved",
            "IGHTS RESERVED",
        ),
    ),
    CaptionedImages("image_captions"),
    FigureCaptions("figure_captions"),
    ImageProxies("image_proxy"),
    AbsoluteUrls("absolute_urls"),
    RepeatedImages("repeated_images"),
    LinkTracking("link_tracking"),
    PresentationAttributes("inline_styles"),
    BreakRuns("br_runs"),
    EmptyBlocks("empty_blocks"),
)
