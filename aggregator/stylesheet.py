"""The feeds' readable page: the XSL stylesheet, its processing instruction, its transform.

Input: a feed's file name (for the instruction), or an Atom document's bytes (for the
transform). Output: the ``<?xml-stylesheet?>`` line the writer puts in every feed, the
stylesheet's bytes that the pipeline publishes beside the feeds (``feed.xsl``), and the HTML
page that the server sends to browsers. One stylesheet serves both ways: a browser that still
runs XSLT applies the published file itself; ``aggregator serve`` applies it on the server,
because Chromium 156 (Debian's, checked) still transforms but covers the page with a red
"XSLT is being removed from this browser very soon" banner.

It must not read the network or the file system beyond the packaged stylesheet: the transform
runs with every XSLT read and write access denied, and the feed is parsed without entities.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib.resources import files

from lxml import etree

# The file the pipeline publishes into output_dir, beside the feeds that reference it.
FILENAME = "feed.xsl"


@cache
def data() -> bytes:
    """The stylesheet as packaged with aggregator."""
    return files("aggregator").joinpath(FILENAME).read_bytes()


def instruction(feed_filename: str) -> bytes:
    """The processing instruction for the feed at ``feed_filename`` (relative to output_dir),
    pointing at the stylesheet by a relative URL: a browser fetches it from wherever the feed
    was served, and a feed in a subfolder climbs back to the top."""
    href = "../" * feed_filename.count("/") + FILENAME
    return f'<?xml-stylesheet type="text/xsl" href="{href}"?>'.encode()


# One transform at a time: it is cached per file version, so this is rare, and lxml documents
# an XSLT object as safe to share between threads only with care.
_LOCK = threading.Lock()


@cache
def _transform() -> etree.XSLT:
    return etree.XSLT(etree.XML(data()), access_control=etree.XSLTAccessControl.DENY_ALL)  # type: ignore[attr-defined]


# Parser for the feed being shown: no entities, no network, no DTD (the writer emits none).
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


def to_html(feed: bytes) -> bytes:
    """The readable HTML page of an Atom document. Raises ``ValueError`` when the bytes are not
    well-formed XML (a feed file is only ever written whole, so that means a foreign file)."""
    try:
        doc = etree.fromstring(feed, _PARSER)
    except etree.XMLSyntaxError as e:
        raise ValueError(f"not well-formed XML: {e}") from e
    with _LOCK:
        return bytes(_transform()(doc))
