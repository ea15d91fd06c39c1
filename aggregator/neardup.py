"""Near duplicates: the same story under another identity key (stage: dedupe, after identity).

Inputs: an article's comparable text and title (``sketch``, run in the worker processes); the
band hashes of the articles published near the new ones (``Index``, ``candidates``); the
signatures of the candidates (``worth_deciding``) and the full sketches of the pairs worth
deciding (``match``). Outputs: a
``Sketch`` per article, and for each new article either nothing (a story of its own) or an
``Assignment`` to an existing or new story with the ``Evidence`` that decided it; and, for a
story with several members, what to publish (``present``). Pure: no SQL, no clock, no I/O;
the pipeline reads and writes the store around these decisions. Never Python's salted
``hash()``: every hash here is the same in every process and every run.

**Comparing.** Text is folded for comparison only: Traditional characters to Simplified
(``script.to_simplified``, OpenCC's table), full-width forms, case, punctuation and whitespace
(``dedupe.comparable_text``). The code points are folded through one numpy table, and the character
5-grams (shingles) hashed with a 32-bit polynomial rolling hash mixed by MurmurHash3's
finaliser.

**Sketch.** A MinHash signature of NUM_PERM 32-bit values by one-permutation hashing (Li, Owen
and Zhang, NIPS 2012): the shingle hashes are split into NUM_PERM bins by their top bits and
each bin keeps its minimum, with empty bins (short texts only) filled by rotation from the next
non-empty bin (Shrivastava and Li, ICML 2014). The share of equal positions in two signatures
estimates the Jaccard similarity of the shingle sets, as with datasketch's ``MinHash``
(tests/test_neardup.py checks the estimates against exact Jaccard and against datasketch).
One sort per article instead of NUM_PERM hash passes: 130-200 us an article on the 2-core bench
VM (bench/run_bench.py, "near-dup sketches, CPU summed"), against ~200 us more for 128 affine
permutations in numpy and ~2 ms for datasketch's per-shingle Python hashing (measured on 1,000
bench-corpus articles while choosing). With the signature go its LSH band hashes, the number of
distinct shingles (to estimate
containment: a live blog's earlier capture inside its later one), the folded title, a 63-bit
key of it, and a digest of the text's numbers (short bulletins that differ only in a figure).

**Candidates.** Locality-sensitive hashing: BANDS bands of ROWS values each; two articles whose
values agree in a whole band are candidates (LSH_THRESHOLD is where that becomes likely). Each
band key carries the publication day in its low bits, so one sort of all band keys and two
binary searches per new article find the candidates published within MAX_DAYS_APART: the cost
grows as n log n, never pairwise (in a crowded bucket an article meets its NEIGHBOURS nearest
in time and the bucket's EARLIEST). Articles with the same folded title published within
GROWN_DAYS are candidates too (the way a live blog's captures meet). Only pairs with a new
article are looked at.

**Deciding.** A candidate pair merges by the first rule that holds (``decide``): ``same text``
(nearly the whole text shared: re-archives, retitled copies, Traditional editions, mirror
copies), ``edited`` (most of the text and the title shared, same outlet: a few sentences
changed), ``grown`` (the shorter text inside the longer, same title: a live blog). A short text
needs more: nearly identical, the same numbers, the same title and publication within
SHORT_DAYS. Every threshold below names the fixture or measurement that set it.

**Assigning.** The accepted pairs join stories and new articles into components (union-find,
so input order cannot matter). A component keeps its stored story published first, so an entry
once published keeps its id (an article in a feed before this run counts as stored when it is
first compared later, its first text too short to sketch); a new article joins it, and so does
another stored story that a new article bridged to it (its entry is merged away and leaves a
tombstone). A component of new articles only is kept under the one published first (an
outlet's own article before a mirror's copy, an article-id key before a bare URL, then by key).
Each merged article or story records its strongest accepted match as the evidence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import numpy as np
import numpy.typing as npt

from aggregator import script
from aggregator.dedupe import comparable_text
from aggregator.model import Evidence, Member, Shown, Sketch

U64 = npt.NDArray[np.uint64]
U32 = npt.NDArray[np.uint32]

# Characters per shingle. 5 Chinese characters are about a phrase: long enough that two
# different articles share few (tests/data/neardup/: look-alikes on the same event score
# J <= 0.25), short enough that one edited sentence disturbs few. On the bench corpus (random
# paragraph mixes of the same 5 seeds) 4-grams put 4% of random pairs at J >= 0.4, 5-grams 3%.
SHINGLE = 5
# Signature length: the Jaccard estimate's standard error is sqrt(J(1-J)/NUM_PERM), 0.03 at
# J = 0.85: enough to keep SAME_TEXT and EDITED apart from the look-alikes' <= 0.3.
NUM_PERM = 128
_BIN_BITS = 7  # 2**7 == NUM_PERM bins
# LSH: 16 bands of 8 rows. A pair at J = 0.85 shares a band with probability 0.994, at 0.5
# with 0.06, at 0.3 with 0.001 (1 - (1 - J**8)**16): every "same text" pair of
# tests/data/neardup/ is found, and the bench corpus's random paragraph mixes (3% of random
# pairs at J >= 0.4) cost few comparisons. The S-curve's midpoint, (1/16)**(1/8):
BANDS, ROWS = 16, 8
LSH_THRESHOLD = 0.71

# Texts shorter than this (comparable characters) are never matched as near duplicates: there
# is too little text to tell a copy from a template (exact copies are still caught by
# dedupe.fingerprint). 60 characters is the shortest bulletin in tests/data/neardup/.
MIN_CHARS = 60
# Below this many shingles a text is short and needs stronger evidence (the SHORT_* rules):
# the bulletins in tests/data/neardup/ are 60-250 characters, their shared boilerplate ~40.
SHORT_SHINGLES = 400

# -- the rules (tests/data/neardup/, measured by bench/neardup_eval.py) --------------------
# "same text": retitled copies and Traditional editions score >= 0.97, mirror copies with a
# footer the cleaner does not know >= 0.93, re-archives with one or two sentences changed
# >= 0.91; the highest look-alike pair scores 0.25 and the bench corpus's random paragraph mixes
# reach 0.85 only once in 20,000 pairs (bench/neardup_eval.py --corpus).
SAME_TEXT = 0.88
# "edited": same outlet and a similar title, most of the text shared: re-archives with three
# to five sentences changed score 0.72-0.88.
EDITED = 0.68
# Title similarity (character-bigram Jaccard of the folded titles) that counts as "the same
# title": a retitled prefix or suffix ("【更新】", "（第2轮）") keeps 0.6-0.9; different stories on
# the same event share at most 0.3 in tests/data/neardup/.
TITLE_SIMILAR = 0.5
# "grown": the shorter text's estimated containment in the longer. A live blog's earlier
# captures are wholly inside the later ones (estimated 0.93-1.0 in tests/data/neardup/);
# a weekly series reusing its title shares its intro and outro, ~0.2.
GROWN = 0.85
# Publication days apart beyond which nothing merges. Copies, mirrors and re-archives carry the
# original's date line (0 days apart in tests/data/neardup/); 14 days leaves room for a copy
# dated by its capture time, and keeps the window the candidate search sorts small.
MAX_DAYS_APART = 14
# Within one band bucket (or one title) a new article is paired with at most this many of the
# bucket's members on either side of it (in order of publication day, then of the store's
# rows), and with the EARLIEST members in its window, not with all of them. A story captured
# thousands of times under different URLs otherwise costs pairs by the square (2,000 captures:
# 2 million pairs, 70 s and 2.3 GB; now 5.0 s and 214 MB, bench/cluster_bench.py), while its
# captures chain into one story through their neighbours. A bucket this full holds
# near-identical texts only (sharing 8 signature values by chance is rare below J = 0.7); the
# earliest members are there for the original among its copies, which a re-archive matching
# the original alone (edited, or grown) must still meet however many copies came between
# (tests/test_neardup.py). The labelled set and the bench corpus decide exactly as without
# the limit.
NEIGHBOURS = 16
EARLIEST = 16
# A live blog grows within a day or two; a weekly series repeats its title after 7 days.
GROWN_DAYS = 3
# Short texts: nearly identical (one changed figure in a 100-character bulletin already drops
# J to ~0.9), the same numbers, the same title, published within two days.
SHORT_SAME = 0.95
SHORT_DAYS = 2

# The outlet of articles no outlet adapter claimed (adapters/generic.py): a mirror's copy.
# A story is published under an outlet's own article, and shows a mirror's text only when no
# outlet's own copy exists (a mirror's promo footer would otherwise make it the "fullest").
MIRROR_OUTLET = "generic"

# Rolling-hash multiplier (the 32-bit FNV prime) and the rotation offset for empty bins.
_PRIME32 = np.uint32(0x01000193)
_DENSIFY = np.uint32(0x9E3779B1)
# A signature value is the top _BIN_BITS of a shingle hash (its bin) and the 25 bits below.
_SHIFT = np.uint32(32 - _BIN_BITS)
_VALUE_MASK = np.uint32((1 << (32 - _BIN_BITS)) - 1)
_BIN_STARTS = np.arange(NUM_PERM, dtype=np.uint32) << _SHIFT
_BINS = np.arange(NUM_PERM, dtype=np.uint32)
_PRIME = np.uint64(0x100000001B3)  # for band keys (64-bit)
# Band keys keep the publication day in their low bits (days since 1970; dates.py keeps
# 1990-2100, under 2**20).
_DAY_BITS = 20
_DAY_MASK = np.uint64((1 << _DAY_BITS) - 1)
_NUMBERS = re.compile(r"\d+")
# Folding happens on code points below this (the Basic Multilingual Plane, where OpenCC's t2s
# table lives); a text with a character above it is folded with str.translate instead.
_BMP = 0x10000


@cache
def _fold_table() -> npt.NDArray[np.uint32]:
    """Code point -> code point after Traditional-to-Simplified folding, for the whole BMP."""
    table = np.arange(_BMP, dtype=np.uint32)
    for code, simplified in script.t2s_table().items():
        table[code] = ord(simplified)
    return table


def _fmix64(h: U64) -> U64:
    """MurmurHash3's 64-bit finaliser: every input bit moves every output bit."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def _fmix32(h: U32) -> U32:
    """MurmurHash3's 32-bit finaliser (in place)."""
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def fold(text: str) -> str:
    """``text`` as near-duplicate detection compares it: one script, no punctuation."""
    return script.to_simplified(comparable_text(text))


def title_key(folded_title: str) -> int:
    """A 63-bit key of a folded title (0 for titles too short to mean anything)."""
    if len(folded_title) < 4:
        return 0
    digest = hashlib.blake2b(folded_title.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def codes(comparable: str) -> U32:
    """The code points of a comparable text, Traditional characters folded to Simplified."""
    points = np.frombuffer(comparable.encode("utf-32-le"), dtype=np.uint32)
    if len(points) and int(points.max()) >= _BMP:
        return np.frombuffer(
            script.to_simplified(comparable).encode("utf-32-le"), dtype=np.uint32
        ).copy()
    return _fold_table()[points]


def shingle_hashes(points: U32) -> U32:
    """Sorted 32-bit hashes of the SHINGLE-character shingles of folded code points."""
    n = len(points) - SHINGLE + 1
    h = points[:n] * _PRIME32
    for j in range(1, SHINGLE):
        h += points[j : j + n]
        if j < SHINGLE - 1:
            h *= _PRIME32
    h = _fmix32(h)
    h.sort()
    return h


def signature(hashes: U32) -> U32:
    """One-permutation MinHash of sorted shingle hashes (see the module docstring)."""
    n = len(hashes)
    idx = np.searchsorted(hashes, _BIN_STARTS)
    at = np.minimum(idx, n - 1)
    found = hashes[at]
    present = (idx < n) & ((found >> _SHIFT) == _BINS)
    values = found & _VALUE_MASK
    if not present.all():  # fewer shingles than bins can fill: borrow from the next bin
        full = np.flatnonzero(present)
        pos = np.searchsorted(full, np.arange(NUM_PERM)) % len(full)
        donor = full[pos]
        steps = ((donor - np.arange(NUM_PERM)) % NUM_PERM).astype(np.uint32)
        values = values[donor] + steps * _DENSIFY
    return values


def sketch(comparable: str, title: str) -> Sketch | None:
    """The sketch of an article from its ``dedupe.comparable_text``; None when too short."""
    if len(comparable) < MIN_CHARS:
        return None
    points = codes(comparable)
    hashes = shingle_hashes(points)
    distinct = 1 + int(np.count_nonzero(hashes[1:] != hashes[:-1]))
    numbers = ""
    if distinct < SHORT_SHINGLES:  # only short texts are told apart by their figures
        found = ",".join(_NUMBERS.findall(comparable))
        numbers = hashlib.blake2b(found.encode(), digest_size=8).hexdigest()
    folded_title = fold(title)
    sig = signature(hashes)
    return Sketch(
        sig=sig.tobytes(),
        bands=band_hashes(sig[None, :]).tobytes(),
        shingles=distinct,
        title=folded_title,
        title_key=title_key(folded_title),
        numbers=numbers,
    )


def similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures."""
    x = np.frombuffer(a, dtype=np.uint32)
    y = np.frombuffer(b, dtype=np.uint32)
    return float(np.count_nonzero(x == y)) / NUM_PERM


def containment(j: float, shingles_a: int, shingles_b: int) -> float:
    """Estimated share of the smaller set inside the larger, from their Jaccard estimate:
    |A n B| = J (|A| + |B|) / (1 + J)."""
    smaller = min(shingles_a, shingles_b)
    if smaller <= 0:
        return 0.0
    return min(1.0, j * (shingles_a + shingles_b) / ((1.0 + j) * smaller))


def title_similarity(a: str, b: str) -> float:
    """Jaccard similarity of the character bigrams of two folded titles."""
    if a == b:
        return 1.0
    x = {a[i : i + 2] for i in range(len(a) - 1)}
    y = {b[i : i + 2] for i in range(len(b) - 1)}
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


# -- the decision ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One sketched article as the decision sees it."""

    key: str
    story: str  # the story it belongs to (its own key when it is a story's representative)
    sketch: Sketch
    published: datetime
    outlet: str
    new: bool  # not compared before: this run's articles
    source: str = ""
    # In a feed before this run, though compared for the first time (its earlier text was
    # too short to sketch): readers hold its entry, so its story outranks a new one.
    shown: bool = False


def decide(a: Row, b: Row, j: float | None = None) -> Evidence | None:
    """Whether ``a`` and ``b`` are one story, and by which rule (module docstring)."""
    sa, sb = a.sketch, b.sketch
    if j is None:
        j = similarity(sa.sig, sb.sig)
    days = abs((a.published - b.published).total_seconds()) / 86400
    if days > MAX_DAYS_APART:
        return None
    c = containment(j, sa.shingles, sb.shingles)
    t = title_similarity(sa.title, sb.title)

    def evidence(rule: str) -> Evidence:
        return Evidence(rule, b.key, round(j, 4), round(c, 4), round(t, 4), round(days, 3))

    if min(sa.shingles, sb.shingles) < SHORT_SHINGLES:
        same = j >= SHORT_SAME and sa.numbers == sb.numbers and t >= TITLE_SIMILAR
        return evidence("same text (short)") if same and days <= SHORT_DAYS else None
    if j >= SAME_TEXT:
        return evidence("same text")
    if j >= EDITED and t >= TITLE_SIMILAR and a.outlet == b.outlet:
        return evidence("edited")
    if c >= GROWN and t >= TITLE_SIMILAR and days <= GROWN_DAYS:
        return evidence("grown")
    return None


# -- candidates ---------------------------------------------------------------------------------


def band_hashes(sigs: U32) -> U64:
    """(n, BANDS) hashes of each signature's bands, their low _DAY_BITS left zero for the
    publication day (``Index`` puts it in)."""
    n = len(sigs)
    bands = sigs.reshape(n, BANDS, ROWS).astype(np.uint64)
    h = np.zeros((n, BANDS), dtype=np.uint64)
    for r in range(ROWS):
        h = (h ^ bands[:, :, r]) * _PRIME
    return _fmix64(h ^ np.arange(1, BANDS + 1, dtype=np.uint64)) & ~_DAY_MASK


class Index:
    """What the candidate search needs of every article in the window, as arrays: its band
    hashes and title key (with the publication day in their low bits) and whether it is new.
    16 x 8 bytes an article, read without the signatures: an incremental run over 100,000
    stored articles reads 13 MB, not 64."""

    def __init__(
        self, columns: tuple[list[str], bytearray, list[int], list[int], list[int]]
    ) -> None:
        keys, bands, days, titles, pending = columns  # as Store.band_index gives them
        self.keys = keys
        self.size = len(keys)
        self.days = np.maximum(np.array(days, dtype=np.int64), 0).astype(np.uint64)
        # The day goes into the low bits of every band hash, in place: the bytearray is the
        # only copy.
        self.bands = np.frombuffer(bands, dtype=np.uint64).reshape(self.size, BANDS)
        self.bands |= self.days[:, None]
        self.title_keys = np.array(titles, dtype=np.uint64)
        self.new = np.array(pending, dtype=bool)


def _near(keys: U64, owners: npt.NDArray[np.intp], new: npt.NDArray[np.bool_], window: int) -> U64:
    """Pairs (as i * 2**32 + j, i < j) of owners whose keys agree above the day bits and whose
    days are at most ``window`` apart, at least one of them new, and either at most NEIGHBOURS
    places apart in the order of (key, position) or one of them among the EARLIEST of the new
    one's window. ``owners[k]`` is the article key ``k`` belongs to."""
    queried = new[owners]
    if not queried.any():
        return np.empty(0, dtype=np.uint64)
    if np.count_nonzero(queried) * 4 < len(keys):
        # A few new articles among many: only keys sharing a hash (the bits above the day) with
        # one of theirs can pair, so the rest need not be sorted (+100 files on 100,000 stored:
        # 1.45M keys sorted -> a few thousand). A first sieve on the top 20 bits of each hash
        # (one table lookup a key), then the exact test on what passes it (1.45M searchsorted
        # calls would cost 0.1 s).
        asked = np.unique(keys[queried] & ~_DAY_MASK)
        table = np.zeros(1 << 20, dtype=bool)
        table[asked >> np.uint64(44)] = True
        maybe = np.flatnonzero(table[keys >> np.uint64(44)])
        high = keys[maybe] & ~_DAY_MASK
        at = np.minimum(np.searchsorted(asked, high), len(asked) - 1)
        hit = maybe[asked[at] == high]
        keys, owners = keys[hit], owners[hit]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    sorted_owners = owners[order].astype(np.uint32)
    place = np.empty(len(keys), dtype=np.intp)  # where each key went in the sort
    place[order] = np.arange(len(keys))
    del order
    out: list[U64] = []
    step = 50_000  # query keys at a time: at most 50,000 x (2 NEIGHBOURS + EARLIEST) pairs
    for start in range(0, len(keys), step):
        q = np.arange(start, min(start + step, len(keys)))
        q = q[new[owners[q]]]
        if not len(q):
            continue
        high = keys[q] & ~_DAY_MASK
        day = keys[q] & _DAY_MASK
        lo_day = np.where(day > window, day - np.uint64(window), np.uint64(0))
        hi_day = np.minimum(day + np.uint64(window), _DAY_MASK)
        lo = np.searchsorted(sorted_keys, high | lo_day, side="left")
        hi = np.searchsorted(sorted_keys, high | hi_day, side="right")
        near_lo = np.maximum(lo, place[q] - NEIGHBOURS)
        near_hi = np.minimum(hi, place[q] + NEIGHBOURS + 1)
        first_hi = np.minimum(np.minimum(hi, lo + EARLIEST), near_lo)  # (not neighbours too)
        me = owners[q].astype(np.uint32)
        for span_lo, span_hi in ((near_lo, near_hi), (lo, first_hi)):
            found = _spans(sorted_owners, me, span_lo, span_hi)
            if found is not None:
                out.append(found)
    if not out:
        return np.empty(0, dtype=np.uint64)
    return np.unique(np.concatenate(out))


def _spans(
    sorted_owners: npt.NDArray[np.uint32],
    me: npt.NDArray[np.uint32],
    lo: npt.NDArray[np.intp],
    hi: npt.NDArray[np.intp],
) -> U64 | None:
    """The pairs (as i * 2**32 + j, i < j) of each owner ``me[k]`` with the owners at
    ``sorted_owners[lo[k]:hi[k]]``, other than itself; None when there are none."""
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return None
    first = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    partner = sorted_owners[first + np.arange(total)]
    mine = np.repeat(me, counts)
    keep = partner != mine
    if not keep.any():  # every key found only itself
        return None
    a, b = np.minimum(mine[keep], partner[keep]), np.maximum(mine[keep], partner[keep])
    return np.unique((a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64))


def candidates(index: Index) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Index pairs (i, j), i < j, worth a look: a shared LSH band within MAX_DAYS_APART or the
    same title within GROWN_DAYS, at least one of the two new."""
    n = index.size
    if n < 2 or not index.new.any():
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    owners = np.repeat(np.arange(n, dtype=np.intp), BANDS)
    pairs = [_near(index.bands.ravel(), owners, index.new, MAX_DAYS_APART)]
    del owners
    have = np.flatnonzero(index.title_keys != 0)
    if len(have) > 1:
        titled = (_fmix64(index.title_keys[have]) & ~_DAY_MASK) | index.days[have]
        pairs.append(_near(titled, have, index.new, GROWN_DAYS))
    codes = np.unique(np.concatenate(pairs))
    i = (codes >> np.uint64(32)).astype(np.intp)
    j = (codes & np.uint64(0xFFFFFFFF)).astype(np.intp)
    return i, j


def worth_deciding(
    i: npt.NDArray[np.intp],
    j: npt.NDArray[np.intp],
    sigs: U32,
    shingles: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Which pairs some rule could accept, judged on the cheap figures alone (estimated
    similarity and containment; ``sigs`` and ``shingles`` are indexed like ``i`` and ``j``),
    and the similarities."""
    s = np.empty(len(i), dtype=np.float64)
    for start in range(0, len(i), 100_000):  # (pairs x NUM_PERM) booleans at a time
        part = slice(start, start + 100_000)
        s[part] = np.count_nonzero(sigs[i[part]] == sigs[j[part]], axis=1) / NUM_PERM
    a, b = shingles[i], shingles[j]
    contained = s * (a + b) / ((1.0 + s) * np.maximum(np.minimum(a, b), 1.0))
    return (s >= min(EDITED, SHORT_SAME, SAME_TEXT)) | (contained >= GROWN), s


@dataclass(frozen=True, slots=True)
class Candidates:
    """The candidate pairs of an ``Index`` (``candidates``) as positions into ``keys``, which
    holds only the articles in some pair: what the store is asked for signatures of."""

    keys: list[str]
    i: npt.NDArray[np.intp]
    j: npt.NDArray[np.intp]


def candidate_pairs(index: Index) -> Candidates:
    """``candidates(index)`` over the keys of the articles involved."""
    i, j = candidates(index)
    involved = np.unique(np.concatenate([i, j]))
    keys = [index.keys[k] for k in involved.tolist()]
    return Candidates(keys, np.searchsorted(involved, i), np.searchsorted(involved, j))


def pairs_to_decide(
    found: Candidates, signatures: Iterable[tuple[str, bytes, int]]
) -> list[tuple[str, str, float]]:
    """The candidate pairs some rule could accept (``worth_deciding``), as (key, key, estimated
    similarity). ``signatures`` gives (key, signature bytes, distinct shingles) for the keys of
    ``found``, as ``Store.signatures`` does; a key it leaves out pairs with nothing."""
    position = {key: n for n, key in enumerate(found.keys)}
    sigs = np.zeros((len(found.keys), NUM_PERM), dtype=np.uint32)
    shingles = np.zeros(len(found.keys), dtype=np.float64)
    seen = np.zeros(len(found.keys), dtype=bool)
    for key, sig, count in signatures:
        at = position[key]
        sigs[at] = np.frombuffer(sig, dtype=np.uint32)
        shingles[at] = count
        seen[at] = True
    keep, sims = worth_deciding(found.i, found.j, sigs, shingles)
    keep &= seen[found.i] & seen[found.j]
    keys = found.keys
    return [
        (keys[x], keys[y], sim)
        for x, y, sim in zip(
            found.i[keep].tolist(), found.j[keep].tolist(), sims[keep].tolist(), strict=True
        )
    ]


@dataclass(frozen=True, slots=True)
class Assignment:
    """An article, or a whole stored story (``key`` is then its representative), that joins
    another story."""

    key: str
    source: str
    story: str
    evidence: Evidence
    whole_story: bool = False  # a stored story merged into another through a new article


def _strength(ev: Evidence) -> tuple[float, str]:
    """Which of several accepted matches explains a merge best (the strongest, then by key)."""
    return (-max(ev.similarity, ev.containment), ev.matched)


def match(pairs: Sequence[tuple[str, str, float]], rows: Mapping[str, Row]) -> list[Assignment]:
    """Who joins which story (see the module docstring): the components of the accepted
    ``pairs`` (key, key, estimated similarity; ``rows`` holds every article they name), each
    kept under its oldest stored story, else under its earliest-published new article."""
    if not pairs:
        return []
    parent: dict[str, str] = {}  # union-find over stored stories and new articles, by key

    def node(r: Row) -> str:
        return r.key if r.new else r.story

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    best: dict[str, Evidence] = {}  # node -> its strongest accepted match
    rank: dict[str, tuple[bool, bool, datetime, bool, str]] = {}
    source: dict[str, str] = {}
    for ka, kb, sim in pairs:
        a, b = rows[ka], rows[kb]
        if node(a) == node(b) or (
            sim < min(EDITED, SHORT_SAME, SAME_TEXT)
            and (containment(sim, a.sketch.shingles, b.sketch.shingles) < GROWN)
        ):
            continue  # no rule can accept it: skip the title comparison
        forth = decide(a, b, sim)  # every rule is symmetric: b's evidence names a instead
        if forth is None:
            continue
        back = Evidence(
            forth.rule, a.key, forth.similarity, forth.containment, forth.title_similarity,
            forth.days_apart,
        )  # fmt: skip
        for x, ev in ((a, forth), (b, back)):
            n = node(x)
            if n not in best or _strength(ev) < _strength(best[n]):
                best[n] = ev
            here = (
                x.new and not x.shown, x.outlet == MIRROR_OUTLET, x.published,
                n.startswith("url:"), n,
            )  # fmt: skip
            rank[n] = min(rank.get(n, here), here)
            source.setdefault(n, x.source)
        ra, rb = find(node(a)), find(node(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    # Each component's survivor: its stored story published first, else its new article
    # published first, an outlet's own before a mirror's copy, one keyed by the outlet's
    # article id before one keyed by a bare URL, then by key: the same in any input order.
    survivor: dict[str, tuple[tuple[bool, bool, datetime, bool, str], str]] = {}
    for n in rank:
        root = find(n)
        survivor[root] = min(survivor.get(root, (rank[n], n)), (rank[n], n))
    out = []
    for n in sorted(rank, key=lambda n: (rank[n], n)):
        target = survivor[find(n)][1]
        if n != target:
            out.append(Assignment(n, source[n], target, best[n], whole_story=not rank[n][0]))
    return out


# -- what a story publishes ------------------------------------------------------------------


def present(members: Iterable[Member], before: Shown | None, now: datetime) -> Shown:
    """The fullest text (an outlet's own copy before a mirror's; then the most shingles, the
    earliest published, the smaller key),
    the earliest publication date, and ``updated`` moved only when the published text changes:
    to the time its member's text last changed, or to ``now`` when that is not later than the
    entry's last update (readers must see the change)."""
    ordered = sorted(
        members, key=lambda m: (m.outlet == MIRROR_OUTLET, -m.shingles, m.published, m.key)
    )
    shown = ordered[0]
    published = min(m.published for m in ordered)
    if before is None:
        updated = max(shown.updated, published)
    elif before.text_hash == shown.text_hash:
        updated = max(before.updated, published)
    else:
        updated = shown.updated if shown.updated > before.updated else now
    return Shown(shown.key, shown.text_hash, published, updated)
