"""Chinese script: detection (Simplified or Traditional?) and conversion between them.

The only OpenCC import. Detection gives each item its right ``xml:lang`` (``zh-Hans`` or
``zh-Hant``) in the adapters. Conversion publishes a feed in one script (``SCRIPTS``): OpenCC's
phrase-level configurations, with Taiwan's and Hong Kong's regional variants and vocabulary
(软件 -> 軟體 for zh-TW). It touches text only: in HTML, the text between tags is converted and
every tag, attribute and URL is left byte for byte as it was. Near-duplicate detection folds
text to Simplified (``to_simplified``) to compare a Traditional edition with its original. Pure
and deterministic.

OpenCC itself decides which characters are Traditional: the Han blocks are converted once,
Traditional to Simplified, and every character the conversion changes goes into one regular
expression class. Detecting is then a count of matches in C (about 15 us an article); asking
OpenCC to convert each article's sample cost ten times that (bench/profile_run.py).
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache

import opencc

from aggregator.model import Entry, Image

# Enough text to decide (a title and the first paragraphs); more adds cost, not accuracy.
SAMPLE_CHARS = 2400
# Fewer Chinese characters than this and the text cannot be told either way.
MIN_HAN = 8
# A text this long with few Han characters (under a twentieth: a Chinese table of figures or
# a lesson with English passages still has more) is in another language.
MIN_FOREIGN = 80
# Share of Han characters that t2s changes above which a text is Traditional. Simplified text
# scores near 0 (DW writes a few Traditional forms, 於 and 後, in Simplified articles:
# seeds/dw/ scores under 0.01); Traditional text scores 0.2-0.4 (tests/data/*/ *traditional*).
TRADITIONAL_SHARE = 0.08
# UTF-8 lead bytes of U+4000..U+9FFF, and the first two bytes of hiragana and katakana.
_HAN_LEADS = tuple(bytes([b]) for b in range(0xE4, 0xEA))
_KANA = (b"\xe3\x81", b"\xe3\x82", b"\xe3\x83")
# CJK Unified Ideographs and Extension A: the characters news text is written in.
_HAN_BLOCKS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF))


@cache
def _t2s() -> dict[int, str]:
    """Every Han character OpenCC's t2s conversion changes (~3,700), to what it becomes."""
    han = "".join(chr(c) for lo, hi in _HAN_BLOCKS for c in range(lo, hi + 1))
    simplified = opencc.OpenCC("t2s").convert(han)
    if len(simplified) != len(han):  # t2s maps characters one to one; guard a future change
        raise RuntimeError("OpenCC t2s changed the length of a character list")
    return {ord(t): s for t, s in zip(han, simplified, strict=True) if t != s}


@cache
def _traditional() -> re.Pattern[str]:
    """A class of every Han character OpenCC's t2s conversion changes."""
    return re.compile("[" + "".join(map(chr, _t2s())) + "]")


def t2s_table() -> dict[int, str]:
    """OpenCC's t2s conversion as a character table: code point -> Simplified character."""
    return _t2s()


def to_simplified(text: str) -> str:
    """``text`` with every Traditional character folded to its Simplified form, for comparison
    only (never for display).

    Character by character, with OpenCC's own t2s table: OpenCC's phrase-level conversion
    would also rewrite a few Simplified texts' characters in context, so the same text could
    fold two ways; one fixed table folds every text alike, Simplified ones included, which is
    what a comparison needs. A text with no Traditional character is returned as it is.
    ``str.translate`` costs ~0.2 us a character: for whole articles, fold code-point arrays
    with ``t2s_table`` instead (neardup.py does, ~5 us an article).
    """
    if _traditional().search(text) is None:
        return text
    return text.translate(_t2s())


def detect(text: str) -> str | None:
    """``"zh-Hans"``, ``"zh-Hant"``; ``""`` when the text is not Chinese (at least
    MIN_FOREIGN characters with few Han among them, or Japanese: kana beside the kanji); None
    when there is too little text to tell.

    ``text`` is plain text; only the first SAMPLE_CHARS characters are looked at. Han
    characters are counted in its UTF-8 bytes: U+4000 to U+9FFF (the unified ideographs and
    most of Extension A) are the three-byte sequences led by E4 to E9, which no other script
    uses (Cyrillic, Greek and Arabic take two bytes; kana E3, Hangul EA to ED, Thai E0). Six
    byte counts in C cost a tenth of a regular expression's count.
    """
    sample = text[:SAMPLE_CHARS]
    data = sample.encode()
    han = sum(map(data.count, _HAN_LEADS))
    kana = sum(map(data.count, _KANA))
    if han < MIN_HAN or han * 20 < len(sample) or kana * 4 > han:
        return "" if len(sample) >= MIN_FOREIGN else None
    changed = len(_traditional().findall(sample))
    return "zh-Hant" if changed / han >= TRADITIONAL_SHARE else "zh-Hans"


# Target script (the feed's xml:lang) -> OpenCC configuration for entries written in
# Simplified, and for entries written in Traditional (None: already right). OpenCC 1.1 offers
# these; s2twp converts Taiwan's vocabulary as well as its characters.
SCRIPTS: dict[str, tuple[str, str | None]] = {
    "zh-Hans": ("t2s", "t2s"),  # t2s also mends the stray Traditional forms of Simplified text
    "zh-Hant": ("s2t", None),
    "zh-TW": ("s2twp", "t2tw"),
    "zh-HK": ("s2hk", "t2hk"),
}
# A tag, with quoted attribute values that may hold ">" (nh3 escapes "<" and "&" in
# attribute values but not ">"); everything between two tags is text.
_TAG = re.compile(r"""<(?:[^>"']|"[^"]*"|'[^']*')*>""")


@cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def convert(text: str, config: str) -> str:
    """``text`` through one OpenCC configuration (e.g. ``"s2twp"``)."""
    return str(_converter(config).convert(text)) if text else text


def convert_html(markup: str, config: str) -> str:
    """The text of ``markup`` converted; tags, attributes and URLs left exactly as they are.
    Entity references (``&amp;``) are ASCII, which OpenCC never changes."""
    out, pos = [], 0
    for tag in _TAG.finditer(markup):
        out.append(convert(markup[pos : tag.start()], config))
        out.append(tag.group())
        pos = tag.end()
    out.append(convert(markup[pos:], config))
    return "".join(out)


def convert_entry(entry: Entry, target: str) -> Entry:
    """``entry`` written in ``target`` (a key of SCRIPTS): title, summary, content text,
    categories, author name and image caption; ids, links and markup unchanged. Entries in
    other languages pass through."""
    if not entry.lang.startswith("zh"):
        return entry
    from_simplified, from_traditional = SCRIPTS[target]
    config = from_traditional if entry.lang.startswith("zh-Hant") else from_simplified
    if config is None:
        return replace(entry, lang=target)
    image = entry.image
    if image is not None and image.caption:
        image = Image(image.url, convert(image.caption, config))
    return replace(
        entry,
        title=convert(entry.title, config),
        summary=convert(entry.summary, config),
        content=convert_html(entry.content, config),
        categories=tuple(convert(c, config) for c in entry.categories),
        author=convert(entry.author, config),
        image=image,
        lang=target,
    )


def fold(text: str) -> str:
    """``text`` for matching: Simplified characters, case folded, so a keyword matches in
    either script and any case."""
    return convert(text, "t2s").casefold()
