"""Container parsers shared by the outlet adapters: bytes -> text -> ``Post``.

Two containers reach us as files:

* the mirror archive (feedx style, seeds/voa/, seeds/dw/)::

      <!--1666382342000-->              capture time, epoch milliseconds (optional)
      [title](https://article/url)      a markdown link
      ------                            a rule
      <div><i>date</i></div><p>...      one HTML body

* the post with YAML front-matter (RSSHub Al Jazeera route, seeds/aljazeera/)::

      ---
      title: '...'  date: ...  categories: [...]  headimg: ...  author: ...
      ---
      <div><p>...</p></div>

Pure functions; errors are ``ParseError`` naming the file and what to do about it. YAML is read
with the safe loader only (no object construction), aliases bounded, and the front-matter size
capped, so a hostile file costs nothing.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from aggregator.dates import from_epoch_ms
from aggregator.errors import ParseError

MAX_FRONT_MATTER = 64 * 1024  # bytes; real front-matter is under 1 KiB (seeds/aljazeera/)
MAX_ALIASES = 32  # YAML aliases per document; real front-matter uses none

_STAMP = re.compile(r"<!--\s*(\d{9,16})\s*-->")
_RULE_LINE = re.compile(r"^\s*(?:-{3,}|={3,}|\*{3,})\s*$")
# [title](url) or [title](url "tooltip"); the title may itself hold brackets and parentheses,
# so the title is greedy and the URL is the last well-formed "(...)" on the line.
_LINK_LINE = re.compile(
    r"^\[(?P<title>.*)\]\(\s*<?(?P<url>[^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*)>?"
    r"(?:\s+\"[^\"]*\")?\s*\)$"
)
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~\"'])")
_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
# An anchor (&a) or alias (*a) where YAML would read one: after a space, a flow bracket, ':' or '-'.
_MAYBE_ALIAS = re.compile(r"(?:^|[\s\[{,:-])[&*][^\s,\]}]", re.M)


@dataclass(frozen=True, slots=True)
class Post:
    container: str  # "archive" or "front-matter"
    title: str | None
    link: str | None
    archived: datetime | None
    body: str
    meta: Mapping[str, Any] = field(default_factory=dict)


def decode(data: bytes, origin: str) -> str:
    """The file's text. UTF-8 (with or without BOM) is the norm; anything else (GB18030 as
    Windows tools save Chinese, Big5 from Taiwan and Hong Kong, UTF-16, Windows-1252) goes to
    charset-normalizer, which tells them apart by the text each reading gives: every Big5
    byte pair is also valid GB18030, so trying the codecs in turn reads Big5 as nonsense."""
    if not data.strip():
        raise ParseError(origin, "the file is empty; delete it or re-download it from the mirror")
    if b"\x00" in data[:4096] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ParseError(
            origin, "this is a binary file, not an archive item; move it out of the folder"
        )
    bom = 3 if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        damaged = _damaged_utf8(data[bom:], bom + e.start)
    if damaged:
        raise ParseError(origin, damaged)
    from charset_normalizer import from_bytes  # rare path: only for files that are not UTF-8

    readings = from_bytes(data[bom:])
    best = readings.best()
    if best is None:
        raise ParseError(origin, "cannot tell the text encoding; save the file as UTF-8")
    # Readings that score alike (a short Western text fits Windows-1250 as well as 1252: é
    # or è is the only difference) go to the encoding news archives are saved in.
    tied = {
        r.encoding: r for r in readings if (r.chaos, r.coherence) == (best.chaos, best.coherence)
    }
    best = next((tied[e] for e in _LIKELY_ENCODINGS if e in tied), best)
    return str(best).removeprefix("\ufeff")


# Which of equally good readings of a non-UTF-8 file to take (charset-normalizer's names).
_LIKELY_ENCODINGS = ("gb18030", "big5", "cp1252")


# A file is damaged UTF-8, not another encoding, when its valid non-ASCII characters outnumber
# its invalid bytes this many times. GB18030 and Big5 text read as UTF-8 is mostly invalid
# (their trail bytes are rarely UTF-8 continuation bytes): about one valid character to four
# invalid bytes; Latin-1 or Windows-1252 text has no valid non-ASCII character at all.
UTF8_MAJORITY = 3
_INVALID = re.compile("[\udc80-\udcff]")  # the bytes surrogateescape could not decode


def _damaged_utf8(data: bytes, first: int) -> str | None:
    """Why a file that is UTF-8 but for a few bad bytes (cut or corrupted on the way) cannot
    be read, or None when it is not UTF-8 at all. Such a file must not go to the encoding
    guess: read as GB18030 it "decodes" into a page of wrong characters, which would be
    published, titles and all, and replace the article's good capture. ``first``: the offset
    of the first bad byte in the file."""
    text = data.decode("utf-8", errors="surrogateescape")  # one pass, however many bad bytes
    bad = len(_INVALID.findall(text))
    valid = sum(1 for c in text if c > "\x7f") - bad
    if valid < UTF8_MAJORITY * bad:
        return None
    return (
        f"not valid UTF-8 at byte {first} ({bad} bad byte(s) in all; the rest of the file is "
        "UTF-8), so it was cut or corrupted on the way; re-download it from the mirror (or "
        "fix those bytes) and the next run reads it"
    )


def _unescape_md(text: str) -> str:
    return _MD_ESCAPE.sub(r"\1", text)


def read_archive(text: str, origin: str) -> Post | None:
    """The mirror-archive container, or None when ``text`` is not one."""
    head, _, _ = text.partition("------")
    if "](" not in head:
        return None
    lines = text.splitlines(keepends=True)
    i, archived = 0, None
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines):
        m = _STAMP.fullmatch(lines[i].strip())
        if m:
            archived = from_epoch_ms(int(m.group(1)))
            if archived is None:
                raise ParseError(origin, f"archive timestamp {m.group(1)} is not a valid date")
            i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        return None
    link_line = lines[i].strip()
    m = _LINK_LINE.match(link_line)
    if not m:
        return None
    i += 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or not _RULE_LINE.match(lines[i]):
        return None
    body = "".join(lines[i + 1 :]).strip()
    title = _unescape_md(m.group("title")).strip()
    return Post("archive", title or None, m.group("url") or None, archived, body)


@cache
def _loaders() -> tuple[type[Any], type[Any]]:
    """(the bounded safe loader, the fastest safe loader). PyYAML is imported the first time a
    front-matter post is read (~25 ms a run that reads none saves)."""
    import yaml

    class BoundedSafeLoader(yaml.SafeLoader):
        """The safe loader, refusing documents with more than MAX_ALIASES aliases (billion
        laughs)."""

        aliases = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases")
            return super().compose_node(parent, index)

    return BoundedSafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(source: str, origin: str) -> Mapping[str, Any]:
    # The C loader is used only when the text cannot hold an alias; the bounded loader otherwise.
    import yaml

    bounded, fast = _loaders()
    loader = bounded if _MAYBE_ALIAS.search(source) else fast
    try:
        data = yaml.load(source, Loader=loader)  # noqa: S506 - both loaders are safe loaders
    except (ValueError, OverflowError) as e:  # a timestamp YAML cannot build (2022-13-45)
        raise ParseError(origin, f"front-matter holds an impossible date or number ({e})") from e
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (front-matter line {where.line + 1})" if where is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ParseError(origin, f"front-matter is not valid YAML{at}: {problem}") from e
    except RecursionError as e:
        raise ParseError(origin, "front-matter is nested too deeply to be real") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParseError(origin, "front-matter must be a mapping of keys (title:, date: ...)")
    return {str(k): v for k, v in data.items()}


def read_front_matter(text: str, origin: str) -> Post | None:
    """The YAML front-matter container, or None when ``text`` is not one."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return None
    source = m.group(1)
    if len(source.encode()) > MAX_FRONT_MATTER:
        raise ParseError(
            origin, f"front-matter is larger than {MAX_FRONT_MATTER // 1024} KiB; not a real post"
        )
    meta = _load_yaml(source, origin)
    return Post("front-matter", None, None, None, text[m.end() :].strip(), meta)


def read_post(data: bytes, origin: str) -> Post:
    """Whichever container ``data`` is in; ParseError when it is in none."""
    text = decode(data, origin)
    post = read_front_matter(text, origin) or read_archive(text, origin)
    if post is None:
        raise ParseError(origin, _why_not(text))
    return post


_COMMENT_LINE = re.compile(r"<!--(.*?)-->")


def _why_not(text: str) -> str:
    """Why ``text`` is in neither container, as precisely as its first lines allow."""
    lines = [line.strip() for line in text.splitlines()]
    filled = [line for line in lines if line]
    first = filled[0] if filled else ""
    if first == "---" and "---" not in filled[1:] and "..." not in filled[1:]:
        return (
            "its front-matter opens with '---' but is never closed; "
            "add a '---' line after its last key"
        )
    comment = _COMMENT_LINE.fullmatch(first)
    if comment and not _STAMP.fullmatch(first):
        return (
            f"its first line {_clip(first)} is not an archive timestamp "
            "(epoch milliseconds, 9 to 16 digits, like <!--1666382342000-->); fix or delete it"
        )
    link = next((line for line in filled if line.startswith("[") and "](" in line), None)
    if link is not None and not _LINK_LINE.match(link):
        url = link.rpartition("](")[2].rstrip(")").strip()
        why = (
            "its URL holds a space (write it as %20)"
            if re.search(r"\s", url.split(' "')[0])
            else "is a ')' missing, or a character a URL cannot hold there?"
        )
        return f"its link line {_clip(link)} is not '[title](url)': {why}"
    if link is not None:
        return "it has no '------' rule line between its '[title](url)' line and its body"
    return (
        "not an archive item: expected a '[title](url)' line and a '------' rule, "
        "or YAML front-matter between '---' lines"
    )


def _clip(line: str, width: int = 80) -> str:
    return repr(line if len(line) <= width else line[: width - 3] + "...")
