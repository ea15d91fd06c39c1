"""Identity and version resolution, table-driven: the pairs that must be one article and the
look-alikes that must stay apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest

from aggregator.adapters import ADAPTERS
from aggregator.dedupe import (
    Outcome,
    Version,
    canonical_url,
    fingerprint,
    identity_key,
    outcome,
    resolve,
)

T0 = datetime(2022, 10, 21, 19, 39, 42, tzinfo=UTC)
VOA, DW = ADAPTERS["voa"], ADAPTERS["dw"]


def key(profile_key: str, link: str | None, title: str = "t", published: datetime = T0) -> str:
    p = ADAPTERS[profile_key]
    return identity_key(p.key, link, p.article_id, title=title, published=published)


SAME = [
    # VOA re-slugged headline: the numeric id is the article.
    (("voa", "https://www.voachinese.com/a/old-slug-20221021/6800196.html"),
     ("voa", "https://www.voachinese.com/a/new-slug-20221022/6800196.html")),
    # Scheme and host case, tracking parameters and fragment do not matter.
    (("voa", "https://www.voachinese.com/a/x/6800196.html"),
     ("voa", "HTTP://WWW.VOACHINESE.COM/a/x/6800196.html?utm_source=feed#comments")),
    # DW's a-NNN id under another slug.
    (("dw", "https://www.dw.com/zh/%E7%BE%8E/a-60376336"), ("dw", "https://www.dw.com/zh/other/a-60376336")),
    # Generic: same URL up to parameter order, default port and tracking.
    (("generic", "https://www.rfi.fr/cn/x?b=2&a=1"), ("generic", "https://www.rfi.fr:443/cn/x?a=1&b=2&fbclid=z")),
    # No link: same outlet, title (up to width and punctuation) and day.
    (("aljazeera", None, "拜登和普京的通话？"), ("aljazeera", None, "拜登和普京的通话?")),
]  # fmt: skip
APART = [
    # Same VOA id digits in another outlet's URL.
    (("voa", "https://www.voachinese.com/a/x/6800196.html"), ("dw", "https://www.dw.com/zh/x/a-6800196")),
    # Different VOA ids under one slug.
    (("voa", "https://www.voachinese.com/a/slug/6800196.html"), ("voa", "https://www.voachinese.com/a/slug/6800197.html")),
    # A query parameter that is not tracking is part of the address.
    (("generic", "https://example.org/story?id=1"), ("generic", "https://example.org/story?id=2")),
    # Same title, no link, different day: a weekly series.
    (("aljazeera", None, "每周评论", T0), ("aljazeera", None, "每周评论", T0 + timedelta(days=7))),
]  # fmt: skip


def _k(spec: tuple) -> str:  # type: ignore[type-arg]
    return key(*spec)


@pytest.mark.parametrize(("a", "b"), SAME)
def test_one_article(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    assert _k(a) == _k(b)


@pytest.mark.parametrize(("a", "b"), APART)
def test_different_articles(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    assert _k(a) != _k(b)


def test_canonical_url() -> None:
    assert (
        canonical_url("HTTPS://Example.ORG:443/a?utm_medium=x&z=1#f") == "https://example.org/a?z=1"
    )
    assert canonical_url("http://example.org") == "http://example.org/"
    assert canonical_url("http://example.org:8080/a") == "http://example.org:8080/a"


def test_fingerprint_ignores_layout_not_words() -> None:
    assert fingerprint("美国 和\u00a0俄罗斯。") == fingerprint(
        "美国和俄罗斯"
    )  # spaces, punctuation
    assert fingerprint("ＡＢＣ１２３") == fingerprint("abc123")  # full-width forms, case
    assert fingerprint("美国和俄罗斯") != fingerprint("美国和乌克兰")


H1, H2 = "a" * 32, "b" * 32
P = T0


H3 = "c" * 32


def V(hours: int, h: str, published: datetime = P, chars: int | None = None) -> Version:
    return Version(P + timedelta(hours=hours), h, published, chars)


RESOLVE = [
    # (versions, kept, published, updated)
    # One capture: updated = published.
    ([V(1, H1)], V(1, H1), P, P),
    # Re-archive, same text: nothing moves.
    ([V(1, H1), V(5, H1)], V(5, H1), P, P),
    # Edited text at hour 5: updated moves to that capture.
    ([V(1, H1), V(5, H2)], V(5, H2), P, P + timedelta(hours=5)),
    # Edit then revert: the text changed again at hour 9.
    ([V(1, H1), V(5, H2), V(9, H1)], V(9, H1), P, P + timedelta(hours=9)),
    # A later capture claiming a later publication date keeps the earliest.
    ([V(1, H1), V(5, H1, P + timedelta(days=1))], V(5, H1, P + timedelta(days=1)), P, P),
    # A later teaser (under half the full text) is not published over the full text, and
    # moves nothing; nor does an earlier one, when the full text arrives.
    ([V(1, H1, chars=3000), V(5, H2, chars=120)], V(1, H1, chars=3000), P, P),
    ([V(1, H2, chars=120), V(5, H1, chars=3000)], V(5, H1, chars=3000), P, P),
    # ... but an edit among full texts still does, and a teaser's earlier date counts.
    (
        [
            V(1, H1, chars=3000),
            V(3, H2, chars=120, published=P - timedelta(hours=2)),
            V(5, H3, chars=2900),
        ],
        V(5, H3, chars=2900),
        P - timedelta(hours=2),
        P + timedelta(hours=5),
    ),
    # Half or more is an edit, not a teaser; versions stored before their length was kept
    # (None) are taken as they were.
    ([V(1, H1, chars=3000), V(5, H2, chars=1500)], V(5, H2, chars=1500), P, P + timedelta(hours=5)),
    ([V(1, H1), V(5, H2, chars=120)], V(5, H2, chars=120), P, P + timedelta(hours=5)),
]


@pytest.mark.parametrize(("versions", "kept", "published", "updated"), RESOLVE)
def test_resolve_in_every_order(versions: list[Version], kept: Version, published: datetime,
                                updated: datetime) -> None:  # fmt: skip
    for order in permutations(versions):
        r = resolve(list(order))
        assert (r.kept, r.published, r.updated) == (kept, published, updated)


def test_outcomes() -> None:
    first = resolve([V(1, H1)])
    assert outcome(None, first) is Outcome.NEW
    assert outcome(first, resolve([V(1, H1), V(5, H2)])) is Outcome.UPDATED
    assert outcome(first, resolve([V(1, H1), V(5, H1)])) is Outcome.REVISED
    assert outcome(first, first) is Outcome.UNCHANGED
    # An older capture with other text arriving late still moves `updated`, as in-order reading would.
    late = resolve([V(5, H1), V(1, H2)])
    assert outcome(resolve([V(5, H1)]), late) is Outcome.UPDATED
