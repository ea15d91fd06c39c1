"""Cleaning stage: an adapter's raw ``Item`` in, a publishable ``Item`` out.

Input: an Item whose ``content`` is the body HTML as the source gave it, plus the outlet's own
rules. Output: the same Item (``dataclasses.replace``) with sanitised HTML, plain text, a summary,
a tidy title, the lead image resolved, and the count of every rule that fired. Pure: no I/O, no
clock; the pipeline decides what to do with the result.

Order of work: parse once with lxml -> generic rules -> the outlet's rules -> layout rules ->
serialise -> nh3 allow-list (the guarantee) -> plain text from the same tree.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, tzinfo

from lxml import etree
from lxml.etree import _Element

from aggregator import script
from aggregator.clean import urls
from aggregator.clean.rules import (
    AFTER_OUTLET,
    BEFORE_OUTLET,
    BLOCK_TAGS,
    Context,
    Rule,
    drop,
    norm_text,
    squash,
)
from aggregator.clean.sanitize import sanitize
from aggregator.errors import ParseError
from aggregator.model import Image, Item

__all__ = [
    "AFTER_OUTLET",
    "BEFORE_OUTLET",
    "PUBLISHED_CHARS",
    "Rule",
    "clean",
    "clean_title",
    "shorten",
    "summarize",
    "untitled",
]

# The plain libxml2 HTML parser: lxml.html's element classes cost a Python call per element
# touched, a quarter of the cleaning time (bench/profile_run.py).
_PARSER = etree.HTMLParser(remove_comments=True, remove_pis=True, no_network=True)
_RESOURCE_LIMIT = etree.ErrorTypes.ERR_RESOURCE_LIMIT
# Markup a title may carry: the inline HTML elements by name (an archive's "通胀率<3%但失业率>5%"
# or a feed's "标普 <S&P> 指数" is text), and entities written out in full, with their ";"
# ("&copy 周五" is text too).
_TITLE_TAGS = re.compile(
    r"</?(?:a|abbr|b|bdi|bdo|big|br|cite|code|del|dfn|em|font|i|img|ins|kbd|mark|nobr|q|s|samp"
    r"|small|span|strike|strong|sub|sup|time|tt|u|var|wbr)(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Characters XML 1.0 forbids (section 2.2): C0 controls but tab, newline and return, lone
# surrogates, U+FFFE/U+FFFF. One in a title (a feed entry's "&#8;" decodes to one) made lxml
# refuse to write the whole feed; they carry nothing a reader could see.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML cannot hold."""
    return _NOT_XML.sub("", text)


_LINE = "\x00"  # a line end while _text squashes spaces: not a space, never in lxml text

# A summary is a lead, not the article: ~two Chinese sentences or a short English paragraph.
SUMMARY_CHARS = 200
_SENTENCE_ENDS = ("。", "！", "？", "!", "?", ". ")


def _last_sentence_end(head: str) -> int:
    """The index just after the last sentence end in ``head`` (0 when there is none)."""
    return max(head.rfind(mark) + 1 for mark in _SENTENCE_ENDS)


def clean_title(title: str) -> str:
    """A title as a reader should see it: entities decoded, tags and zero-width characters
    gone, every kind of space (no-break, ideographic, runs) one plain space."""
    if "<" in title or "&" in title:
        title = _ENTITY.sub(lambda m: html.unescape(m[0]), _TITLE_TAGS.sub("", title))
    return squash(xml_text(title))


UNTITLED_CHARS = 60  # a title made from the text of an item that has none (microblog posts)


def untitled(text: str) -> str:
    """A title for an item that has none a reader could see: the start of its text."""
    flat = squash(xml_text(text[: UNTITLED_CHARS * 4]))
    if len(flat) <= UNTITLED_CHARS:
        return flat
    return flat[:UNTITLED_CHARS].rstrip() + "…"


def summarize(text: str, limit: int = SUMMARY_CHARS) -> str:
    """The first ``limit`` characters of ``text``, cut after a sentence where one ends late
    enough, else at the limit with an ellipsis."""
    # Only the head can end up in the summary; folding spaces can only shorten it.
    flat = squash(text[: limit * 4])
    if len(flat) <= limit:
        return flat
    head = flat[:limit]
    end = _last_sentence_end(head)
    if end >= limit * 0.5:
        return head[:end].strip()
    return head.rstrip() + "…"


def _parse(body: str, origin: str = "") -> _Element:
    """The body as a tree under one ``<div>`` (the document's ``<body>``, renamed).
    ParseError when libxml2 gave up part way (elements nested more than 255 deep): what
    followed would be lost without a word."""
    doc = etree.fromstring(f"<html><body>{body}</body></html>", _PARSER)
    last = _PARSER.error_log.last_error
    if last is not None and last.type == _RESOURCE_LIMIT:
        raise ParseError(
            origin,
            "the body nests its elements more than 255 deep, where the HTML parser stops and "
            "the rest would be lost; no real article does: the body is broken or hostile",
        )
    root = doc.find("body") if doc is not None else None
    if root is None:  # nothing parseable at all
        root = etree.Element("div")
    root.tag = "div"
    return root


def _serialise(root: _Element) -> str:
    out = etree.tostring(root, encoding="unicode", method="html")
    # Strip the wrapper <div> that _parse added.
    return out[out.index(">") + 1 : out.rindex("<")]


# An entry's content as a feed publishes it, at most: libxml2, under most feed readers, refuses
# a text node over 10,000,000 bytes (XML_MAX_TEXT_LENGTH), so one 11 MB article made its whole
# feed unreadable. No news article comes near (seeds/: 5-8 KB); the stored article keeps all.
PUBLISHED_CHARS = 500_000
MORE = "[…]"  # the link to the rest of a shortened article


def shorten(content: str, link: str | None, limit: int = PUBLISHED_CHARS) -> str:
    """``content`` (cleaned HTML) when it is at most ``limit`` characters long; else as much of
    it from the start as fits in ``limit`` (whole elements where they fit, the text of the one
    that does not cut, every element closed), then a paragraph linking to the whole article."""
    if len(content) <= limit:
        return content
    budget = limit - 200  # room for the link
    while True:
        try:
            root = _parse(content)
        except ParseError:  # cannot happen to sanitised HTML; nothing of it, then, but the link
            root = etree.Element("div")
        sizes: dict[_Element, int] = {}
        _measure(root, sizes)
        _fit(root, budget, sizes)
        more = etree.SubElement(root, "p")
        if link:
            more = etree.SubElement(more, "a", href=link)
        more.text = MORE
        out = sanitize(_serialise(root))
        if len(out) <= limit or budget <= 0:
            return out
        # Written longer than measured (entities, attributes the sanitiser adds): again, with
        # the budget cut by the overshoot.
        budget = min(budget - 1, budget * (limit - 200) // len(out))


def _written(text: str | None) -> int:
    """About how many characters ``text`` takes in HTML (``&``, ``<``, ``>`` and no-break
    spaces are written as entities)."""
    if not text:
        return 0
    return (
        len(text)
        + 4 * (text.count("&") + text.count("\xa0"))
        + 3 * (text.count("<") + text.count(">"))
    )


def _tags(el: _Element) -> int:
    """The length of ``el``'s start and end tags: <tag name="value" ...></tag>."""
    attributes = sum(len(str(k)) + _written(str(v)) + 4 for k, v in el.items())
    return 2 * len(str(el.tag)) + 5 + attributes


def _measure(el: _Element, sizes: dict[_Element, int]) -> int:
    """Record the written length of ``el`` and of every element inside it (tails not
    included) in ``sizes``, in one pass; returns ``el``'s with its tail."""
    size = _tags(el) + _written(el.text) + sum(_measure(child, sizes) for child in el)
    sizes[el] = size
    return size + _written(el.tail)


def _fit(el: _Element, budget: int, sizes: dict[_Element, int]) -> int:
    """Cut ``el``'s content (not its tail) to about ``budget`` characters of HTML; returns the
    characters kept. The first element that does not fit is left out whole when it holds no
    block and what came before it is a fair share of the budget (a paragraph is not cut in
    the middle); otherwise what fits of it is kept (a wrapper's leading blocks, the start of
    a paragraph too long alone)."""
    budget = max(budget, 0)
    text = el.text or ""
    if _written(text) >= budget:
        el.text = text[:budget]
        for child in list(el):
            el.remove(child)
        return budget
    used = _written(text)
    for child in el:
        own, tail = sizes[child], _written(child.tail)
        if used + own + tail <= budget:
            used += own + tail
            continue
        later = list(child.itersiblings())
        if used + own <= budget:  # the element fits, the text after it does not: its start
            child.tail = (child.tail or "")[: budget - used - own]
            used += own + len(child.tail)
        elif used >= budget // 2 and next(child.iterdescendants(*BLOCK_TAGS), None) is None:
            later.append(child)
        else:
            child.tail = None
            tags = _tags(child)
            used += tags + _fit(child, budget - used - tags, sizes)
        for gone in later:
            el.remove(gone)
        break
    return used


def _text(root: _Element) -> str:
    """The article's words, one block (or table row) a line, figures, captions and players
    (their link for readers that do not play them) left out. Edits the tree, so it runs after
    the HTML has been serialised."""
    for fig in list(root.iter("figure", "figcaption", "video", "audio")):
        drop(fig)
    for el in root.iter(*BLOCK_TAGS, "br", "tr"):
        el.tail = "\n" + (el.tail or "")
    for el in root.iter("td", "th"):  # a table row is a line, its cells apart ("出口 10%")
        el.tail = " " + (el.tail or "")
    text = etree.tostring(root, method="text", encoding="unicode")
    if _LINE in text:  # cannot happen (libxml2 turns NUL into U+FFFD); the plain way, then
        return "\n".join(line for line in map(squash, text.split("\n")) if line)
    # Every line squashed (see ``squash``), empty lines left out. Done on the whole text at once:
    # line ends become NUL, which ``str.split`` keeps, so one split/join squashes every line,
    # and the spaces it leaves beside a line end go with two replaces. 60 us an article less
    # than squashing line by line (perf-tools/stages.py "text": 126 -> ~60 us).
    flat = squash(text.replace("\n", _LINE))
    flat = flat.replace(" " + _LINE, _LINE).replace(_LINE + " ", _LINE)
    return "\n".join(filter(None, flat.split(_LINE)))


def _lead_image(root: _Element, given: Image | None, ctx: Context) -> Image | None:
    """The item's picture: the one its source names (front-matter), else the body's first image,
    with the caption of the figure that shows it."""
    url = None
    if given is not None:
        url = urls.unwrap_proxy(given.url) or urls.absolute(given.url, ctx.base_url)
    for img in root.iter("img"):
        src = img.get("src")
        if not src:
            continue
        if url is not None and src.split("?")[0] != url.split("?")[0]:
            continue
        figure = img.getparent()
        caption = ""
        if figure is not None and figure.tag == "figure":
            cap = figure.find("figcaption")
            if cap is not None:
                caption = norm_text(cap)
        return Image(url or src, caption or (given.caption if given else ""))
    return Image(url, given.caption) if url and given is not None else None


def clean(item: Item, outlet_rules: tuple[Rule, ...] = (), tz: tzinfo | None = None) -> Item:
    """``item`` with its body cleaned and sanitised; see the module docstring."""
    ctx = Context(base_url=item.link, tz=tz or UTC, raw=item.content)
    root = _parse(item.content, item.origin)
    fired: list[tuple[str, int]] = []
    for rule in (*BEFORE_OUTLET, *outlet_rules, *AFTER_OUTLET):
        n = rule.apply(root, ctx)
        if n:
            fired.append((rule.name, n))
    image = _lead_image(root, item.image, ctx)
    content = sanitize(_serialise(root))
    text = _text(root)
    # The adapters refuse an item without a title, and a feed entry's title falls back to
    # its text; this is the last guard: one empty title made feedgen refuse the whole feed.
    title = clean_title(item.title) or untitled(text) or item.link or item.key
    # Simplified or Traditional, told again from what is left: a Traditional notice under a
    # short Simplified article (tests/data/dw/dw-simplified-article-traditional-notice.txt)
    # made the raw body look Traditional.
    # Chinese text is told Simplified or Traditional whatever its input declared (a Chinese
    # blog's feed left at WordPress's default en-US); an article in another language from a
    # Chinese outlet is "und" (undetermined), never labelled Chinese. A source's lang in
    # config.toml still says what it is (pipeline).
    told = script.detect(title + text)
    lang = told or ("und" if told == "" and item.lang.startswith("zh") else item.lang)
    return replace(
        item,
        title=title,
        lang=lang,
        categories=tuple(c for c in (squash(xml_text(c)) for c in item.categories) if c),
        author=squash(xml_text(item.author)) or item.outlet,
        content=content,
        text=text,
        summary=summarize(text),
        image=replace(image, caption=xml_text(image.caption)) if image else None,
        fired=tuple(fired),
    )
