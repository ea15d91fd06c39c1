"""RFC 5005 archived feeds: which entries leave a feed's current document for an archive page.

Input: a feed's window (the entries it shows: its newest, filtered, at most ``max_entries``)
and the entries it has that are neither in the window nor archived yet (older ones, or ones
that aged out), both newest first; the page size. Output: the current document's entries and
the new archive pages to write, oldest page first. Pure: no store, no files, no clock.

An archive page is written once and never changes (RFC 5005 section 4: archive documents are
stable); each links to the one before it with ``prev-archive`` and to the feed with
``current``, and the feed links to the newest page. Entries wait in the current document until
a full page of them has left the window, so the feed shows its window plus fewer than a page
of older entries, and every entry stays reachable: a reader that was away walks back through
``prev-archive`` until it meets entries it has seen.

Files: ``archive/<feed name>/<n>.atom``, n = 1, 2, ... in the order the pages were written.
"""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.model import Entry

DIR = "archive"


def filename(feed: str, page: int) -> str:
    """The page's file, relative to the output folder."""
    return f"{DIR}/{feed}/{page}.atom"


def plan(
    window: Sequence[Entry], waiting: Sequence[Entry], page_size: int
) -> tuple[list[Entry], list[list[Entry]]]:
    """(entries of the current document, new pages each newest first, oldest page first).

    Full pages are cut from the oldest waiting entries; the rest stay in the current document,
    after its window."""
    rest = list(waiting)
    pages: list[list[Entry]] = []
    while len(rest) >= page_size:
        pages.append(rest[-page_size:])
        rest = rest[:-page_size]
    return [*window, *rest], pages
