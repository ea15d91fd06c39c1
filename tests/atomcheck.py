"""Checks of RFC 4287's requirements on a generated feed, used by the output tests.

Each check names the section of RFC 4287 it comes from. (Issue 6 adds validation against the
normative RELAX NG grammar; these are the MUSTs plus the project's own promises: absolute URLs,
an author on every entry, ``xml:lang``, sanitised content.)
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from lxml import etree
from lxml import html as lxml_html

A = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
FORBIDDEN_TAGS = {"script", "style", "iframe", "object", "embed", "form", "svg", "math", "base",
                  "meta", "link", "frame", "frameset", "applet", "input", "button", "textarea"}  # fmt: skip


def absolute_http(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_content_html(html: str, where: str) -> list[str]:
    """Sanitised-content promises: no active content, every URL absolute http(s)."""
    problems = []
    root = lxml_html.fragment_fromstring(html or "<p></p>", create_parent="div")
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if el.tag in FORBIDDEN_TAGS:
            problems.append(f"{where}: <{el.tag}> in content")
        for name, value in el.attrib.items():
            if name.startswith("on") or name == "style":
                problems.append(f"{where}: attribute {name} on <{el.tag}>")
            if name in ("href", "src") and not (
                absolute_http(value) or value.startswith("mailto:")
            ):
                problems.append(f"{where}: {name}={value!r} is not an absolute http(s) URL")
    return problems


def check_feed(data: bytes) -> list[str]:
    """Problems with an Atom document; empty when it keeps every rule checked here."""
    problems: list[str] = []
    root = etree.fromstring(data)
    if root.tag != f"{A}feed":
        return [f"root element is {root.tag}, not atom:feed"]
    if not root.get(XML_LANG):
        problems.append("feed has no xml:lang")

    def one(parent: etree._Element, name: str, where: str) -> etree._Element | None:
        found = parent.findall(f"{A}{name}")
        if len(found) != 1:
            problems.append(
                f"{where}: {len(found)} atom:{name} elements, RFC 4287 wants exactly one"
            )
            return None
        return found[0]

    for name in ("id", "title", "updated"):  # 4.1.1
        one(root, name, "feed")
    updated = root.find(f"{A}updated")
    if updated is not None and not RFC3339.match(updated.text or ""):
        problems.append(f"feed updated {updated.text!r} is not RFC 3339 (3.3)")
    links = root.findall(f"{A}link")
    selfs = [ln for ln in links if ln.get("rel") == "self"]
    alts = [ln for ln in links if ln.get("rel", "alternate") == "alternate"]
    if len(selfs) != 1 or not absolute_http(selfs[0].get("href")):
        problems.append("feed needs one rel=self link with an absolute URL (4.1.1)")
    if not alts or not all(absolute_http(ln.get("href")) for ln in alts):
        problems.append("feed needs an absolute rel=alternate link")
    ids = set()
    for i, entry in enumerate(root.findall(f"{A}entry")):
        where = f"entry {i}"
        for name in ("id", "title", "updated"):  # 4.1.2
            one(entry, name, where)
        eid = entry.findtext(f"{A}id") or ""
        if eid in ids:
            problems.append(f"{where}: id {eid} used twice")
        ids.add(eid)
        if not re.match(r"^urn:uuid:[0-9a-f-]{36}$", eid):
            problems.append(f"{where}: id {eid!r} is not a urn:uuid")
        for name in ("updated", "published"):
            value = entry.findtext(f"{A}{name}")
            if value is None or not RFC3339.match(value):
                problems.append(f"{where}: {name} {value!r} missing or not RFC 3339")
        authors = entry.findall(f"{A}author")
        if not authors or not all(a.findtext(f"{A}name") for a in authors):  # 4.1.2, 4.2.1
            problems.append(f"{where}: no author with a name")
        e_alts = [
            ln for ln in entry.findall(f"{A}link") if ln.get("rel", "alternate") == "alternate"
        ]
        if len({(ln.get("type"), ln.get("hreflang")) for ln in e_alts}) != len(e_alts):
            problems.append(f"{where}: two alternate links with one type and hreflang (4.1.1)")
        for ln in entry.iter(f"{A}link"):
            if not absolute_http(ln.get("href")):
                problems.append(f"{where}: link href {ln.get('href')!r} is not absolute")
        content = entry.find(f"{A}content")
        if content is None and not e_alts:
            problems.append(f"{where}: neither content nor an alternate link (4.1.2)")
        if content is not None:
            if content.get("type") != "html":
                problems.append(f"{where}: content type {content.get('type')!r}, expected html")
            problems += check_content_html(content.text or "", where)
        source = entry.find(f"{A}source")
        if source is not None and not source.findtext(f"{A}id"):
            problems.append(f"{where}: atom:source without an id")
    return problems
