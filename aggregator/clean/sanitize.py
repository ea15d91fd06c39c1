"""The allow-list sanitiser: the last step of cleaning, and the only nh3 import.

Input: HTML the cleaning rules produced. Output: HTML in which only the tags and attributes below
survive: no script, style, event handler, ``javascript:`` or ``data:`` URL, iframe, object, embed,
form, svg or math, whatever the input tried (see tests/test_hostile_html.py). Ammonia parses with
html5ever, the same algorithm browsers use, so markup that re-parses differently in a browser
(mutation XSS) is normalised before it is judged.
"""

from __future__ import annotations

import nh3

# Everything that is the article: text structure, emphasis, links, images, figures, tables,
# video and audio.
TAGS = frozenset(
    {
        "p", "br", "hr", "div", "span", "h1", "h2", "h3", "h4", "h5", "h6",
        "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "q", "cite", "pre", "code",
        "em", "i", "strong", "b", "u", "s", "del", "ins", "mark", "small", "sub", "sup", "abbr",
        "a", "img", "figure", "figcaption", "picture", "video", "audio", "source",
        "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption",
    }
)  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    # Players stay playable: their files and poster (URL attributes, held to the schemes
    # below like every src and href), controls shown, nothing loaded before a click.
    "video": {"src", "poster", "controls", "preload"},
    "audio": {"src", "controls", "preload"},
    "source": {"src", "type"},
    "abbr": {"title"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
# Removed together with their content: their text is code, fallback or chrome, never the article.
CONTENT_TAGS = frozenset(
    {
        "script", "style", "noscript", "template", "iframe", "frame", "frameset", "noframes",
        "object", "embed", "applet", "svg", "math", "form", "textarea", "select", "button",
        "title", "head",
    }
)  # fmt: skip
URL_SCHEMES = frozenset({"http", "https", "mailto"})

_CLEANER = nh3.Cleaner(
    tags=set(TAGS),
    attributes={k: set(v) for k, v in ATTRIBUTES.items()},
    clean_content_tags=set(CONTENT_TAGS),
    url_schemes=set(URL_SCHEMES),
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def sanitize(html: str) -> str:
    """``html`` with everything outside the allow-list removed."""
    return str(_CLEANER.clean(html))
