"""Checks of generated Atom documents, used by the output tests.

First the normative grammar: RFC 4287 Appendix B, RELAX NG (``schemas/atom.rng``, converted from
``schemas/atom.rnc``; see ``schemas/README.md``) validated by libxml2 through lxml, plus the
Schematron rules the grammar carries as annotations (an author on every entry, an alternate
link or content on every entry), run with lxml's ISO Schematron. Then the project's own
promises, which no grammar can say: ``xml:lang`` on the feed, absolute http(s) URLs, a
``urn:uuid`` id used once per entry, sanitised content, RFC 4287 4.1.1's rule that two
alternate links never share a type and hreflang.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from lxml import etree, isoschematron
from lxml import html as lxml_html

SCHEMAS = Path(__file__).parent / "schemas"
A = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# The grammar's annotations use the pre-ISO Schematron namespace (RFC 4287 predates ISO
# Schematron); the rule/assert vocabulary is the same, so they are run under the ISO one.
OLD_SCHEMATRON = "http://www.ascc.net/xml/schematron"
ISO_SCHEMATRON = "http://purl.oclc.org/dsdl/schematron"
FORBIDDEN_TAGS = {"script", "style", "iframe", "object", "embed", "form", "svg", "math", "base",
                  "meta", "link", "frame", "frameset", "applet", "input", "button", "textarea"}  # fmt: skip


@cache
def relaxng() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMAS / "atom.rng")))


@cache
def schematron() -> isoschematron.Schematron:
    """The Schematron rules embedded in RFC 4287's grammar, as one ISO Schematron schema."""
    grammar = etree.parse(str(SCHEMAS / "atom.rng"))
    schema = etree.Element(f"{{{ISO_SCHEMATRON}}}schema", nsmap={"sch": ISO_SCHEMATRON})
    etree.SubElement(schema, f"{{{ISO_SCHEMATRON}}}ns", prefix="atom", uri=A.strip("{}"))
    pattern = etree.SubElement(schema, f"{{{ISO_SCHEMATRON}}}pattern")
    for rule in grammar.iter(f"{{{OLD_SCHEMATRON}}}rule"):
        new = etree.SubElement(pattern, f"{{{ISO_SCHEMATRON}}}rule", context=rule.get("context"))
        for test in rule.iter(f"{{{OLD_SCHEMATRON}}}assert"):
            etree.SubElement(
                new, f"{{{ISO_SCHEMATRON}}}assert", test=test.get("test")
            ).text = test.text
    if len(pattern) != 3:  # RFC 4287 Appendix B has three rules; a lost one would pass silently
        raise AssertionError(f"expected 3 Schematron rules in atom.rng, found {len(pattern)}")
    # A rule context matched by an earlier rule in the same pattern is skipped (Schematron
    # semantics): one pattern per rule, so both atom:entry rules run.
    rules = list(pattern)
    schema.remove(pattern)
    for rule in rules:
        etree.SubElement(schema, f"{{{ISO_SCHEMATRON}}}pattern").append(rule)
    return isoschematron.Schematron(schema, store_report=True)


def schema_problems(data: bytes) -> list[str]:
    """What RFC 4287's grammar and its Schematron rules say is wrong with ``data``."""
    doc = etree.fromstring(data)
    problems = []
    grammar = relaxng()
    if not grammar.validate(doc):
        problems += [f"RELAX NG line {e.line}: {e.message}" for e in grammar.error_log]
    rules = schematron()
    if not rules.validate(doc):
        svrl = "{http://purl.oclc.org/dsdl/svrl}"
        for failed in rules.validation_report.iter(f"{svrl}failed-assert"):
            text = failed.findtext(f"{svrl}text") or failed.get("test")
            problems.append(f"Schematron at {failed.get('location')}: {text}")
    return problems


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
            if name in ("href", "src", "poster") and not (
                absolute_http(value) or value.startswith("mailto:")
            ):
                problems.append(f"{where}: {name}={value!r} is not an absolute http(s) URL")
    return problems


def check_feed(data: bytes) -> list[str]:
    """Problems with an Atom document; empty when it keeps every rule checked here."""
    problems = schema_problems(data)
    root = etree.fromstring(data)
    if root.tag != f"{A}feed":
        return [*problems, f"root element is {root.tag}, not atom:feed"]
    if not root.get(XML_LANG):
        problems.append("feed has no xml:lang")
    links = root.findall(f"{A}link")
    selfs = [ln for ln in links if ln.get("rel") == "self"]
    if len(selfs) != 1:
        problems.append("feed needs one rel=self link (RFC 4287 4.1.1 SHOULD; ours always)")
    for ln in links:
        if not absolute_http(ln.get("href")):
            problems.append(f"feed link {ln.get('href')!r} is not an absolute http(s) URL")
    problems += _alternates(links, "feed")
    ids = set()
    for i, entry in enumerate(root.findall(f"{A}entry")):
        where = f"entry {i}"
        eid = entry.findtext(f"{A}id") or ""
        if eid in ids:
            problems.append(f"{where}: id {eid} used twice")
        ids.add(eid)
        if not re.match(r"^urn:uuid:[0-9a-f-]{36}$", eid):
            problems.append(f"{where}: id {eid!r} is not a urn:uuid")
        if entry.find(f"{A}published") is None:
            problems.append(f"{where}: no published date")
        e_links = entry.findall(f"{A}link")
        problems += _alternates(e_links, where)
        for ln in entry.iter(f"{A}link"):
            if not absolute_http(ln.get("href")):
                problems.append(f"{where}: link href {ln.get('href')!r} is not absolute")
        content = entry.find(f"{A}content")
        if content is not None:
            if content.get("type") != "html":
                problems.append(f"{where}: content type {content.get('type')!r}, expected html")
            problems += check_content_html(content.text or "", where)
    return problems


def _alternates(links: list[etree._Element], where: str) -> list[str]:
    """RFC 4287 4.1.1: no two rel=alternate links with the same type and hreflang."""
    alts = [ln for ln in links if ln.get("rel", "alternate") == "alternate"]
    if len({(ln.get("type"), ln.get("hreflang")) for ln in alts}) != len(alts):
        return [f"{where}: two alternate links with one type and hreflang (4.1.1)"]
    return []
