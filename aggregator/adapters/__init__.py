"""Adapters: one module per source profile, registered here and nowhere else.

Input: ``Fetched`` bytes with their origin. Output: ``Item`` records (content still raw; the
clean stage sanitises it). Adding an outlet is one module, one line in ``ADAPTERS`` and fixture
files in ``tests/data/<key>/``; the key is the same in config.toml, here, in the fixture folder
and in ``aggregator adapters``. ``"auto"`` reads the container and picks the outlet whose hosts
the article link belongs to, else ``generic``.
"""

from __future__ import annotations

from aggregator.adapters import aljazeera, dw, generic, voa
from aggregator.adapters.base import Profile
from aggregator.adapters.containers import read_post
from aggregator.model import Fetched, Item

ADAPTERS: dict[str, Profile] = {
    p.key: p for p in (voa.PROFILE, dw.PROFILE, aljazeera.PROFILE, generic.PROFILE)
}
AUTO = "auto"
# Front-matter keys whose URLs tell the outlet when a post has no archive link line.
_URL_KEYS = ("link", "url", "permalink", "headimg", "image", "thumbnail", "cover")

__all__ = ["ADAPTERS", "AUTO", "Profile", "detect", "parse"]


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
