"""Identity and exact duplicates: which stored article an incoming item is, and what to keep.

Inputs: an item's link, title, dates and cleaned text, and the versions of the same article the
store already holds. Outputs: its identity key, its Atom id, its text fingerprint, and a
``Resolution`` saying which version to publish with which dates, plus the ``Outcome`` to count
(new, updated, revised, unchanged). Pure: no SQL, no clock, no I/O; the pipeline reads and writes
the store around these decisions.

Identity is decided here and nowhere else:

* the canonical URL: scheme and host case-folded, default port, fragment and tracking
  parameters dropped, remaining query parameters sorted;
* an outlet's own article id where its URLs carry one (VOA ``/6800196.html``, DW ``/a-60376336``),
  so the same article under a re-slugged URL is still the same article;
* for a feed entry with no link, its outlet and the entry's own id (guid) within its source;
* for an item with no link (and no id), its outlet, normalised title and publication day; with
  no date either (a sparse feed entry), its outlet and a digest of its title and text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from itertools import pairwise
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aggregator.clean.urls import is_tracking_param

_DEFAULT_PORTS = {"http": 80, "https": 443}

# Atom ids are minted from the identity key in this namespace (RFC 4122 name-based UUID), so the
# same article gets the same id even in a fresh state database; once minted it is stored and kept.
_ID_NAMESPACE = uuid.UUID("6f1c1c8e-3f43-5b6e-9a57-3c1b0e1a6b21")

# Texts shorter than this (after normalising) are never matched by fingerprint alone: two empty
# or one-line bodies are not evidence of one article. 80 characters is about two Chinese
# sentences; every seed body is over 1,000.
MIN_FINGERPRINT_CHARS = 80

# A capture whose comparable text is under this share of the fullest capture's is a teaser
# (tests/test_live_sources.py: a feed's one-sentence description of an archived article).
# An edit that cuts an article by half is rarer than a truncated capture.
TEASER_SHARE = 0.5
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def canonical_url(url: str) -> str:
    """The URL a person would agree is "the same page": see the module docstring."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if "[" in parts.netloc:  # an IP literal keeps its brackets ("http://[2001:db8::1]/a")
        host = f"[{host}]"
    port = parts.port if parts.port and parts.port != _DEFAULT_PORTS.get(scheme) else None
    netloc = f"{host}:{port}" if port else host
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_param(k)
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def identity_key(
    outlet: str,
    link: str | None,
    article_id: re.Pattern[str] | None,
    *,
    title: str,
    published: datetime,
    guid: str | None = None,
    scope: str = "",
    dated: bool = True,
    body: str = "",
) -> str:
    """The one key under which an article is stored. See the module docstring for the rules."""
    if link:
        canonical = canonical_url(link)
        if article_id is not None:
            m = article_id.search(urlsplit(canonical).path)
            if m:
                return f"{outlet}:{m.group(1)}"
        return f"url:{canonical}"
    if guid:  # a feed entry's own id, meaningful only within the feed that gave it
        return f"{outlet}:guid:{scope}:{guid.strip()}"
    folded = _NOT_WORD.sub("", unicodedata.normalize("NFKC", title).casefold())
    if not dated:  # no link, no id, no date: only the words say which entry this is
        return f"{outlet}:text:{digest_text(folded + chr(0) + comparable_text(body))}"
    return f"{outlet}:title:{published.date().isoformat()}:{folded}"


def mint_atom_id(key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_ID_NAMESPACE, key)}"


def comparable_text(text: str) -> str:
    """Text folded for comparison only: NFKC (full-width forms), case, no spaces or punctuation.

    Punctuation goes first and NFKC runs only when what is left needs it: on Chinese text NFKC
    costs ~280 us an article, the quick check ~4 us (bench/profile_run.py)."""
    folded = _NOT_WORD.sub("", text)
    if not unicodedata.is_normalized("NFKC", folded):
        folded = _NOT_WORD.sub("", unicodedata.normalize("NFKC", folded))
    return folded.casefold()


def digest_text(comparable: str) -> str:
    return hashlib.blake2b(comparable.encode(), digest_size=16).hexdigest()


def fingerprint(text: str) -> str:
    """A digest of the article text that ignores whitespace, punctuation and width."""
    return digest_text(comparable_text(text))


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """One capture of an article: when it was captured and what its text was."""

    at: datetime  # capture time (archive timestamp, else the publication date)
    text_hash: str
    published: datetime
    chars: int | None = None  # length of its comparable text (None: stored before schema 10)


def version_time(published: datetime, archived: datetime | None) -> datetime:
    return archived or published


@dataclass(frozen=True, slots=True)
class Resolution:
    kept: Version  # the version whose title and text are published
    published: datetime  # the earliest publication date any version gives
    updated: datetime  # when the kept text first appeared after a different one


def resolve(versions: list[Version]) -> Resolution:
    """What to publish for an article seen in ``versions`` (at least one).

    The newest capture's title and text win, unless it is a teaser: a text less than
    TEASER_SHARE of the fullest capture's (a live feed's one-line description of an article
    the archive holds in full) is never published over a fuller one, and moves nothing but
    the publication date. The publication date is the earliest any version gives; ``updated``
    is the capture time at which the kept text replaced a different text, or the publication
    date when the text never changed. Versions are ordered by (capture time, text hash), so
    the result depends only on the set of versions, never on the order files are read.
    """
    ordered = sorted(versions)
    published = min(v.published for v in ordered)
    fullest = max((v.chars for v in ordered if v.chars is not None), default=0)
    ordered = [v for v in ordered if v.chars is None or v.chars >= fullest * TEASER_SHARE]
    kept = ordered[-1]
    updated = published
    for before, after in pairwise(ordered):
        if after.text_hash != before.text_hash:
            updated = after.at
    return Resolution(kept, published, max(updated, published))


class Outcome(Enum):
    NEW = "new"
    UPDATED = "updated"  # the published text changed; `updated` moved
    REVISED = "revised"  # a newer capture with the same text (its title or fields may differ)
    UNCHANGED = "unchanged"  # a capture already known, or older than the kept one: nothing moves


def outcome(before: Resolution | None, after: Resolution) -> Outcome:
    if before is None:
        return Outcome.NEW
    if after.kept.text_hash != before.kept.text_hash or after.updated != before.updated:
        return Outcome.UPDATED
    if after != before:
        return Outcome.REVISED
    return Outcome.UNCHANGED
