"""Which stored entries go into a configured feed: its include and exclude filters and its
maximum age.

Input: a ``FeedSpec`` and entries, newest first (from the store); ``now`` for the age limit.
Output: the entries of the feed, newest first, at most ``max_entries`` of them. Pure: it reads
no clock and no store. Keywords match the title or the text (the content without its markup)
case-insensitively and in either Chinese script (both sides are folded to Simplified, so
"烏克蘭" finds "乌克兰"); patterns are Python regular expressions searched in the title and
the text as written; categories match an entry's category terms, folded the same way.

An entry is in the feed when it matches ``include`` (every kind given there: any keyword, and
any pattern, and any category) and matches nothing in ``exclude`` (any keyword, pattern or
category there leaves it out). It does not convert scripts (script.py does, after selection).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from lxml import html as lxml_html

from aggregator import script
from aggregator.model import Entry, FeedSpec, Match


def filtered(spec: FeedSpec) -> bool:
    """Whether the feed is more than the newest entries of its sources."""
    return bool(spec.include or spec.exclude or spec.max_age)


@dataclass(frozen=True, slots=True)
class _Text:
    """One entry's searchable text, computed once and only as far as a filter needs it."""

    raw: str  # title and text as written
    folded: str  # the same, Simplified and case folded
    categories: frozenset[str]


def _text(entry: Entry) -> _Text:
    body = ""
    if entry.content.strip():
        body = lxml_html.fragment_fromstring(entry.content, create_parent="div").text_content()
    raw = f"{entry.title}\n{body}"
    return _Text(raw, script.fold(raw), frozenset(script.fold(c) for c in entry.categories))


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)  # config.py compiled it once already: errors are reported there


def _any(match: Match, text: _Text) -> dict[str, bool]:
    """For each kind ``match`` gives, whether any of its values matches."""
    found = {}
    if match.keywords:
        found["keywords"] = any(script.fold(k) in text.folded for k in match.keywords)
    if match.patterns:
        found["patterns"] = any(_pattern(p).search(text.raw) for p in match.patterns)
    if match.categories:
        found["categories"] = any(script.fold(c) in text.categories for c in match.categories)
    return found


def wanted(spec: FeedSpec, entry: Entry) -> bool:
    """Whether ``entry`` passes the feed's include and exclude filters (not the age)."""
    if not (spec.include or spec.exclude):
        return True
    text = _text(entry)
    if spec.include and not all(_any(spec.include, text).values()):
        return False
    return not (spec.exclude and any(_any(spec.exclude, text).values()))


def young(spec: FeedSpec, entry: Entry, now: datetime) -> bool:
    """Whether ``entry`` is within the feed's maximum age (by its publication date)."""
    return spec.max_age is None or entry.published >= now - timedelta(seconds=spec.max_age)


def select(spec: FeedSpec, entries: Iterable[Entry], now: datetime) -> list[Entry]:
    """The newest ``spec.max_entries`` of ``entries`` (newest first) that the feed wants."""
    out: list[Entry] = []
    for entry in entries:
        if not young(spec, entry, now):
            break  # newest first: every later entry is older still
        if wanted(spec, entry):
            out.append(entry)
            if len(out) >= spec.max_entries:
                break
    return out
