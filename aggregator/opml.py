"""Output feeds -> an OPML 2.0 subscription list, for one-click import into feed readers.

Input: the configuration (its output feeds and public base URL). Output: the OPML document as
UTF-8 bytes. Pure and deterministic: no clock (OPML's dateCreated is optional and would make
every run's file differ), feeds in config order. The standard library writes it; OPML is a
small fixed vocabulary (http://opml.org/spec2.opml) that needs no dependency.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aggregator import writer
from aggregator.model import Config

# The file the pipeline publishes beside the feeds.
FILENAME = "feeds.opml"


def outputs(config: Config, title: str = "aggregator feeds") -> bytes:
    """One ``<outline type="rss">`` per output feed (OPML uses type="rss" for every feed
    format), with its absolute ``xmlUrl``."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for spec in config.feeds:
        attrs = {
            "type": "rss",
            "text": spec.title,
            "title": spec.title,
            "xmlUrl": writer.feed_url(config.base_url, spec),
        }
        if spec.link:
            attrs["htmlUrl"] = spec.link
        ET.SubElement(body, "outline", attrs)
    ET.indent(root, space="  ")
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
