"""Adapters: one module per source profile, registered here and nowhere else.

Input: ``Fetched`` bytes with their origin. Output: ``Item`` records (content still raw; the
clean stage sanitises it). Adding an outlet is one module, one line in ``ADAPTERS`` and fixture
files in ``tests/data/<key>/``; the key is the same in config.toml, here, in the fixture folder
and in ``aggregator adapters``. ``"auto"`` reads the container and picks the outlet whose hosts
the article link belongs to, else ``generic``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from traceback import format_exc
from typing import TypeVar

from aggregator.adapters import aljazeera, dw, generic, voa
from aggregator.adapters.base import Profile
from aggregator.adapters.containers import Post, read_post
from aggregator.adapters.feeds import read_feed
from aggregator.clean import xml_text
from aggregator.errors import ParseError
from aggregator.model import Fetched, Item, Skip

ADAPTERS: dict[str, Profile] = {
    p.key: p for p in (voa.PROFILE, dw.PROFILE, aljazeera.PROFILE, generic.PROFILE)
}
AUTO = "auto"
# Front-matter keys whose URLs tell the outlet when a post has no archive link line.
_URL_KEYS = ("link", "url", "permalink", "headimg", "image", "thumbnail", "cover")

T = TypeVar("T")

__all__ = ["ADAPTERS", "AUTO", "Profile", "detect", "parse", "parse_feed"]


def detect(*urls: str | None) -> Profile:
    """The outlet profile the first claimed URL belongs to (the article link, else the lead
    image); ``generic`` when no outlet claims any."""
    for url in urls:
        for profile in ADAPTERS.values():
            if profile.hosts and profile.owns(url):
                return profile
    return ADAPTERS["generic"]


def parse(fetched: Fetched, adapter: str) -> tuple[Item, ...]:
    """The items in ``fetched``, read by the named adapter (or detected with ``"auto"``)."""
    if adapter != AUTO:
        return ADAPTERS[adapter].parse(fetched)
    post = read_post(fetched.data, fetched.origin)
    meta_urls = (v for k, v in post.meta.items() if k in _URL_KEYS and isinstance(v, str))
    return (detect(post.link, *meta_urls).to_item(post, fetched),)


def _item(post: Post, fetched: Fetched, adapter: str) -> Item:
    """``post`` as an item, read by the named adapter or the outlet its link belongs to."""
    meta_urls = (v for k, v in post.meta.items() if k in _URL_KEYS and isinstance(v, str))
    profile = ADAPTERS[adapter] if adapter != AUTO else detect(post.link, *meta_urls)
    return profile.to_item(post, fetched)


def parse_feed(
    fetched: Fetched, adapter: str, max_items: int
) -> tuple[tuple[Item, ...], tuple[Skip, ...], tuple[tuple[str, str], ...]]:
    """The entries of a downloaded feed as items, read by the named adapter's outlet knowledge
    (dates, id scheme; its cleaning rules apply later), or with ``"auto"`` each entry by the
    outlet its link belongs to. An entry that cannot be used is skipped with its reason; the
    feed's other entries go on. Past ``max_items`` entries the rest are skipped, with one
    reason. Third, each entry an unexpected exception (a bug) skipped, with its traceback: this
    may run in a worker process, so the caller logs them. ParseError when the document is not
    a feed at all."""
    headers = dict(fetched.headers)
    posts = read_feed(fetched.data, headers, fetched.origin)
    items: list[Item] = []
    skipped: list[Skip] = []
    bugs: list[tuple[str, str]] = []

    def attempt(n: int, entry: str, step: Callable[[], T]) -> T | None:
        """``step()``; None, with the entry skipped and its reason, when it fails."""
        try:
            return step()
        except ParseError as e:
            skipped.append(Skip(entry, e.reason))
        except Exception as e:  # a bug: this entry is skipped with its reason, the rest go on
            bugs.append((f"{fetched.origin} entry {n}", format_exc()))
            skipped.append(
                Skip(entry, f"internal error ({type(e).__name__}: {e}); please report it")
            )
        return None

    for n, make in enumerate(posts[:max_items], start=1):
        post = attempt(n, f"{fetched.origin} entry {n}", make)
        if post is None:
            continue
        entry = f"{fetched.origin} entry {n} ({xml_text(post.title or post.link or 'untitled')})"
        item = attempt(n, entry, partial(_item, post, fetched, adapter))
        if item is not None:
            items.append(item)
    if len(posts) > max_items:
        skipped.append(
            Skip(
                fetched.origin,
                f"the feed has {len(posts)} entries; took the first {max_items} (max_items) "
                "and left the rest",
            )
        )
    return tuple(items), tuple(skipped), tuple(bugs)
