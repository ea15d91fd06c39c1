"""Near duplicates (aggregator/neardup.py and its wiring): the labelled evaluation set of
tests/data/neardup/ through the real pipeline, the sketch against exact Jaccard and datasketch,
Traditional-script folding, merging with provenance (links, explain), stability of published
ids across runs and orders, and tombstones."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import opencc
import pytest
from atomcheck import check_feed
from conftest import Workspace
from datasketch import MinHash

from aggregator import config as config_mod
from aggregator import neardup, pipeline, script
from aggregator.dedupe import comparable_text
from aggregator.model import FileStat
from aggregator.store import Store

sys.path.insert(0, str(Path(__file__).parent))
import neardupset

NOW = datetime(2026, 1, 1, tzinfo=UTC)
VOA_002 = "002_d518659d5939b7c1.txt"


def _run_set(
    root: Path, groups: list[list[str]] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Build the evaluation set under ``root``; run the pipeline once, or once per group of
    file names (relative to ``root``); (truth, predicted) story of every file."""
    labels = neardupset.build(root)
    files = sorted(labels)
    cfg = config_mod.load(root / "config.toml")
    held = root / "held"
    order = groups or [[str(Path(f).relative_to(root)) for f in files]]
    for f in files:
        dest = held / Path(f).relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        Path(f).rename(dest)
    with Store(cfg.state_db) as store:
        for group in order:
            for name in group:
                (held / name).rename(root / name)
            pipeline.run_once(cfg, store, NOW)
    return labels, neardupset.predicted(cfg.state_db, files)


def _partition(labels: dict[str, str], guess: dict[str, str], root: Path) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for f in labels:
        groups.setdefault(guess[f], set()).add(str(Path(f).relative_to(root)))
    return {frozenset(g) for g in groups.values()}


def test_evaluation_set_meets_precision_and_recall(tmp_path: Path) -> None:
    labels, guess = _run_set(tmp_path)
    scores = neardupset.pair_scores(labels, guess)
    assert (scores["files"], scores["stories"], scores["pairs_same"]) == (71, 19, 277)  # whole
    assert scores["precision"] >= 0.99, scores["wrong"]
    assert scores["recall"] >= 0.95, scores["wrong"]


def test_split_runs_in_either_order_give_the_same_stories(tmp_path: Path) -> None:
    """Determinism: a merge partner arriving a run later, before or after, changes nothing."""
    labels, guess = _run_set(tmp_path / "one")
    together = _partition(labels, guess, tmp_path / "one")
    names = sorted(str(Path(f).relative_to(tmp_path / "one")) for f in labels)
    random.Random(7).shuffle(names)
    half = len(names) // 2
    for n, groups in enumerate(([names[:half], names[half:]], [names[half:], names[:half]])):
        root = tmp_path / f"split{n}"
        labels, guess = _run_set(root, groups)
        assert _partition(labels, guess, root) == together


def _sketch(text: str, title: str = "") -> neardup.Sketch:
    sketch = neardup.sketch(comparable_text(text), title)
    assert sketch is not None
    return sketch


def _shingles(text: str) -> set[int]:
    return set(neardup.shingle_hashes(neardup.codes(comparable_text(text))).tolist())


def test_signature_estimates_jaccard_as_well_as_datasketch(tmp_path: Path) -> None:
    """One-permutation MinHash against exact Jaccard, with datasketch's 128-permutation
    MinHash over the same shingles as the reference: errors of the same size."""
    labels = neardupset.build(tmp_path)
    texts = [Path(f).read_text(encoding="utf-8") for f in sorted(labels)][:40]
    ours, theirs = [], []
    sets = [_shingles(t) for t in texts]
    sketches = [_sketch(t) for t in texts]
    minhashes = []
    for s in sets:
        m = MinHash(num_perm=neardup.NUM_PERM, hashfunc=lambda v: v)
        m.update_batch(sorted(s))
        minhashes.append(m)
    for a in range(len(texts)):
        for b in range(a + 1, len(texts)):
            exact = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
            ours.append(abs(neardup.similarity(sketches[a].sig, sketches[b].sig) - exact))
            theirs.append(abs(minhashes[a].jaccard(minhashes[b]) - exact))
    mean_ours, mean_theirs = sum(ours) / len(ours), sum(theirs) / len(theirs)
    assert mean_ours < 0.03 and max(ours) < 0.15
    assert mean_ours < 1.5 * mean_theirs + 0.005, (mean_ours, mean_theirs)


def test_traditional_edition_folds_to_the_simplified_text() -> None:
    text = (neardupset.SEEDS / "voa" / VOA_002).read_text(encoding="utf-8")
    hant = opencc.OpenCC("s2t").convert(text)
    tw = opencc.OpenCC("s2twp").convert(text)
    assert hant != text
    assert script.to_simplified(comparable_text(hant)) == script.to_simplified(
        comparable_text(text)
    )
    base = _sketch(text)
    assert neardup.similarity(base.sig, _sketch(hant).sig) == 1.0
    assert neardup.similarity(base.sig, _sketch(tw).sig) >= 0.9  # s2twp also swaps some words


def test_sketches_are_the_same_in_every_process() -> None:
    """No salted hash(): a sketch made in a fresh interpreter equals one made here."""
    import subprocess

    text = (neardupset.SEEDS / "voa" / VOA_002).read_text(encoding="utf-8")
    code = (
        "import sys; from aggregator import neardup; from aggregator.dedupe import comparable_text;"
        "s = neardup.sketch(comparable_text(sys.stdin.read()), 't');"
        "sys.stdout.write(s.sig.hex() + s.bands.hex())"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )  # fmt: skip
    here = _sketch(text, "t")
    assert other.stdout == here.sig.hex() + here.bands.hex()


def _brute_force_pairs(
    bands: list[list[int]], days: list[int], titles: list[int], new: list[bool]
) -> set[tuple[int, int]]:
    """Every pair the candidate search must find, the slow obvious way."""
    mask = (1 << neardup._DAY_BITS) - 1
    found = set()
    n = len(days)
    for i in range(n):
        for j in range(i + 1, n):
            if not (new[i] or new[j]):
                continue
            apart = abs(days[i] - days[j])
            shared = {h & ~mask for h in bands[i]} & {h & ~mask for h in bands[j]}
            same_title = bool(titles[i]) and titles[i] == titles[j]
            if (shared and apart <= neardup.MAX_DAYS_APART) or (
                same_title and apart <= neardup.GROWN_DAYS
            ):
                found.add((i, j))
    return found


@pytest.mark.parametrize("new_share", [0.01, 0.1, 1.0])
def test_candidate_search_finds_what_a_brute_force_finds(new_share: float) -> None:
    """The array search (with its sieve for a few new articles among many, and without it)
    finds exactly the pairs that share a band hash within MAX_DAYS_APART days, or a title
    within GROWN_DAYS, at least one of them new."""
    rng = random.Random(7)
    n = 600
    # Band hashes as sketches store them: the low bits left for the day.
    bits = 64 - neardup._DAY_BITS
    bands = [
        [rng.getrandbits(bits) << neardup._DAY_BITS for _ in range(neardup.BANDS)] for _ in range(n)
    ]
    days = [19000 + rng.randrange(60) for _ in range(n)]
    titles = [rng.getrandbits(63) if rng.random() < 0.5 else 0 for _ in range(n)]
    new = [rng.random() < new_share for _ in range(n)]
    new[0] = True
    fresh = [k for k in range(n) if new[k]]
    for _ in range(150):  # copies: a shared band, some days apart (some too far)
        a = rng.choice(fresh) if rng.random() < 0.5 else rng.randrange(n)
        b = rng.choice([k for k in range(n) if k != a])
        band = rng.randrange(neardup.BANDS)
        bands[b][band] = bands[a][band]
    for _ in range(60):  # the same title
        a = rng.choice(fresh) if rng.random() < 0.5 else rng.randrange(n)
        b = rng.choice([k for k in range(n) if k != a])
        titles[b] = titles[a] or 1 + rng.getrandbits(62)
        titles[a] = titles[b]
    blob = bytearray(b"".join(h.to_bytes(8, "little") for row in bands for h in row))
    index = neardup.Index(([f"k{i}" for i in range(n)], blob, days, titles, [int(x) for x in new]))
    i, j = neardup.candidates(index)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == _brute_force_pairs(
        bands, days, titles, new
    )


def test_a_huge_bucket_costs_pairs_in_proportion_not_by_the_square() -> None:
    """3,000 captures of one story share every band: each new one is paired with its NEIGHBOURS
    nearest in time on either side and with the EARLIEST of its window, not with all 2,999
    others (4.5 million pairs), and the pairs still chain every capture into one story; 10 new
    captures among 2,990 stored ones each pair with the stored captures next to them and with
    the first ones."""
    n, near, early = 3000, neardup.NEIGHBOURS, neardup.EARLIEST
    one = b"".join(((12345 + b) << neardup._DAY_BITS).to_bytes(8, "little") for b in range(16))
    blob = bytearray(one * n)
    days = [20000 + k // 300 for k in range(n)]  # 300 captures a day over 10 days
    keys = [f"k{k}" for k in range(n)]

    def pairs(new: set[int]) -> set[tuple[int, int]]:
        index = neardup.Index((keys, bytearray(blob), days, [0] * n, [k in new for k in range(n)]))
        i, j = neardup.candidates(index)
        return set(zip(i.tolist(), j.tolist(), strict=True))

    def expected(b: int) -> set[tuple[int, int]]:  # (the window of 14 days holds all 10)
        others = {*range(max(0, b - near), min(n, b + near + 1)), *range(early)} - {b}
        return {(min(a, b), max(a, b)) for a in others}

    assert pairs(set(range(n))) == set().union(*(expected(b) for b in range(n)))
    fresh = set(range(n - 10, n))
    assert pairs(fresh) == set().union(*(expected(b) for b in fresh))
    assert len(pairs(set(range(n)))) < n * (near + early)


def test_a_reedit_meets_its_original_behind_a_crowd_of_mirror_copies() -> None:
    """An outlet's article, then 40 mirror copies of it (the same day, the same title), then the
    outlet's re-archive with 7 sentences rewritten under another URL: it matches the original
    alone (grown: the copies are another outlet's, and their footers put them below the
    threshold), 41 places away in its band buckets, and still merges into it."""
    raw = (neardupset.SEEDS / "voa" / VOA_002).read_text(encoding="utf-8")
    paragraphs = [re.sub("<[^>]+>", "", p) for p in re.findall(r"<p>(.*?)</p>", raw, re.S)]
    sentences = [x for x in re.split("(?<=。)", "\n".join(paragraphs)) if x.strip()]
    edited = list(sentences)
    for k in range(7):
        edited[2 + k * (len(sentences) - 3) // 7] = f"据最新消息，有关方面第{k}次表示将继续关注。"
    texts = ["".join(sentences)]
    texts += [
        f"{texts[0]}\n本文转载自第{k}号镜像站，版权归原作者所有，如有侵权请联系删除。"
        for k in range(40)
    ]
    texts.append("".join(edited))
    title = "美俄首脑通话 拜登敦促普京减缓与乌克兰的紧张关系"
    sketches = [_sketch(t, title) for t in texts]
    keys = [f"k{k}" for k in range(len(texts))]
    last = len(texts) - 1
    outlets = ["voa", *["generic"] * 40, "voa"]
    at = datetime(2021, 12, 31, 3, tzinfo=UTC)
    rows = {
        key: neardup.Row(key, key if k == last else "k0", sketches[k], at, outlets[k], k == last)
        for k, key in enumerate(keys)
    }
    bands = bytearray(b"".join(x.bands for x in sketches))
    titles = [x.title_key for x in sketches]
    index = neardup.Index((keys, bands, [18992] * len(keys), titles, [0] * last + [1]))
    found = neardup.candidate_pairs(index)
    signatures = [(k, rows[k].sketch.sig, rows[k].sketch.shingles) for k in found.keys]
    merged = neardup.match(neardup.pairs_to_decide(found, signatures), rows)
    assert [(m.key, m.story, m.evidence.rule) for m in merged] == [(keys[last], "k0", "grown")]


def test_pairs_to_decide_keeps_copies_and_needs_both_signatures() -> None:
    """A Traditional edition of a seed pairs with it; an unrelated seed pairs with neither; and
    a pair whose signature the store no longer has (retention) is left out."""
    texts = {
        "a": (neardupset.SEEDS / "voa" / VOA_002).read_text(encoding="utf-8"),
        "other": next((neardupset.SEEDS / "dw").iterdir()).read_text(encoding="utf-8"),
    }
    texts["a-hant"] = opencc.OpenCC("s2t").convert(texts["a"])
    sketches = {k: _sketch(t) for k, t in texts.items()}
    keys = list(sketches)
    blob = bytearray(b"".join(sketches[k].bands for k in keys))
    index = neardup.Index((keys, blob, [20000] * len(keys), [0] * len(keys), [1] * len(keys)))
    found = neardup.candidate_pairs(index)
    assert sorted(found.keys) == ["a", "a-hant"]
    rows = [(k, sketches[k].sig, sketches[k].shingles) for k in found.keys]
    assert [(x, y) for x, y, _ in neardup.pairs_to_decide(found, rows)] in (
        [("a", "a-hant")],
        [("a-hant", "a")],
    )
    assert neardup.pairs_to_decide(found, [r for r in rows if r[0] != "a-hant"]) == []
    assert neardup.pairs_to_decide(found, []) == []  # two missing signatures are not alike


def test_too_short_texts_have_no_sketch() -> None:
    assert neardup.sketch(comparable_text("短讯。" * 5), "t") is None


# -- through the CLI: merging with provenance, stability, tombstones ------------------------


def _variant(ws: Workspace, variant: str, name: str, source: str = "voa") -> Path:
    """Write one of cases.json's variants of seed VOA 002 into the workspace."""
    c = neardupset.cases()
    story = c["stories"]["voa-002"]
    text = (ws.root / "seeds" / "voa" / VOA_002).read_text(encoding="utf-8")
    out = apply = neardupset.apply(text, c["variants"][variant]["ops"], story, name, 1)
    del apply
    path = ws.root / "seeds" / source / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out, encoding="utf-8")
    return path


def _entries(ws: Workspace, feed: str = "all.atom") -> list[feedparser.FeedParserDict]:
    return list(feedparser.parse((ws.out / feed).read_bytes()).entries)


def _entry(ws: Workspace, title_part: str) -> feedparser.FeedParserDict:
    found = [e for e in _entries(ws) if title_part in e.get("link", "")]
    assert len(found) == 1, [e.title for e in _entries(ws)]
    return found[0]


def test_copies_merge_into_one_entry_linking_each_copy(ws: Workspace) -> None:
    ws.run_json()
    before = _entry(ws, "6376677")
    _variant(ws, "traditional", "hant")
    _variant(ws, "retitled", "retitled")
    _variant(ws, "live-late", "late")  # the fullest text: its body is shown
    report = ws.run_json()
    voa = next(s for s in report["sources"] if s["name"] == "voa")
    assert voa["new"] == 0 and voa["near_duplicates"] + voa["duplicates"] == 3
    entries = _entries(ws)
    assert len(entries) == 5  # still one entry per story
    after = _entry(ws, "6376677")
    assert after.id == before.id and after.published == before.published
    assert after.updated > before.updated  # the shown text changed
    assert "【更新】" in after.content[0].value
    rels = {(link.rel, link.href) for link in after.links}
    assert ("via", "https://www.example-news.org/late/1.html") in rels
    assert ("related", "https://www.example-news.org/hant/1.html") in rels
    assert ("related", "https://www.example-news.org/retitled/1.html") in rels
    assert check_feed((ws.out / "all.atom").read_bytes()) == []
    # A shorter copy later changes neither the text nor updated.
    _variant(ws, "live-early", "early")
    ws.run_json()
    again = _entry(ws, "6376677")
    assert again.updated == after.updated and again.content[0].value == after.content[0].value
    assert ("related", "https://www.example-news.org/early/1.html") in {
        (link.rel, link.href) for link in again.links
    }


def test_a_story_captured_many_times_under_other_urls_is_one_entry(ws: Workspace) -> None:
    """120 captures of one article, each under its own URL with one sentence changed, fill
    every band bucket far beyond NEIGHBOURS: all of them still become one entry."""
    text = (ws.root / "seeds" / "voa" / VOA_002).read_text(encoding="utf-8")
    url = "https://www.voachinese.com/a/biden-urges-putin-to-de-escalate-ukraine-tensions-20211230/6376677.html"
    assert url in text
    for k in range(120):
        capture = text.replace(url, f"https://mirror{k}.example.org/a/{k}.html").replace(
            "</p>", f"（第{k}次抓取，编号{k * 7919}）</p>", 1
        )
        (ws.root / "seeds" / "voa" / f"capture-{k:03d}.txt").write_text(capture, encoding="utf-8")
    report = ws.run_json()
    voa = next(s for s in report["sources"] if s["name"] == "voa")
    assert voa["new"] == 3 and voa["near_duplicates"] == 120
    assert len(_entries(ws, "voa.atom")) == 3


def test_earlier_published_copy_arriving_later_keeps_the_published_id(ws: Workspace) -> None:
    ws.run_json()
    first = _entry(ws, "6376677")
    path = _variant(ws, "edited-1", "earlier")
    text = path.read_text(encoding="utf-8").replace(
        "Fri, 31 Dec 2021 03:04:00 GMT", "Thu, 30 Dec 2021 23:00:00 GMT"
    )
    path.write_text(text, encoding="utf-8")
    ws.run_json()
    entry = _entry(ws, "6376677")
    assert entry.id == first.id  # never replaced by the earlier-published copy
    assert entry.published.startswith("2021-12-30T23:00:00")  # the earliest date wins
    assert all("earlier" not in e.link for e in _entries(ws))
    # From a fresh state both arrive together and the earlier-published copy leads the story:
    # the same feeds, byte for byte, every time.
    ws.db.unlink()
    ws.run_json()
    fresh = ws.feed_bytes()
    ws.db.unlink()
    ws.run_json()
    assert ws.feed_bytes() == fresh
    assert len(_entries(ws)) == 5


def test_a_published_entry_edited_as_an_earlier_copy_arrives_keeps_its_id(
    ws: Workspace,
) -> None:
    """A generic mirror's one-sentence teaser of the DW article is published; in one run a
    second mirror brings the full text under the same URL and DW's own copy, dated earlier,
    arrives. The story stays under the entry readers
    hold (it was replaced by DW's new id: the story twice in their reader)."""
    with ws.config.open("a", encoding="utf-8") as f:
        f.write(
            '\n[[sources]]\nname = "gen"\ntitle = "Mirror"\npath = "seeds/gen"\nadapter = "generic"\n'
        )
    dw_seed = next((ws.root / "seeds" / "dw").iterdir())
    full = dw_seed.read_text(encoding="utf-8")
    dw_seed.unlink()
    head, body = full.split("------\n", 1)
    # One sentence: too short to have a sketch, so its first one comes with the whole text, and
    # the published article is compared as if it were new.
    sentence = body[body.index("<p>（德国之声中文网）") :].split("，", 1)[0] + "。</p>"
    (ws.root / "seeds" / "gen").mkdir()
    (ws.root / "seeds" / "gen" / "teaser.txt").write_text(
        f"{head}------\n{sentence}\n", encoding="utf-8"
    )
    ws.run_json()
    (teaser,) = [e for e in _entries(ws) if "a-60376336" in e.link]
    # The whole text from another mirror (not VOA's id: keyed by the same URL as the teaser),
    # and DW's own copy, one sentence longer (an exact copy is a duplicate, not a member).
    (ws.root / "seeds" / "voa" / "dw-copy.txt").write_text(full, encoding="utf-8")
    own = full.replace("</p>", "</p><p>（更新：补充一句。）</p>", 1)
    dw_seed.write_text(own, encoding="utf-8")
    ws.run_json()
    (story,) = [e for e in _entries(ws) if "a-60376336" in e.link]
    assert story.id == teaser.id
    assert len(story.content[0].value) > 1000  # the whole text is shown


def test_a_story_edited_in_a_stopped_run_is_presented_by_the_next(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A story's representative is re-archived with an edit, and the run stops after saving
    it but before its near-duplicate pass (a second Ctrl-C, SIGKILL, a power cut). The next
    run reads no file, yet presents the story again: the edited text, ``updated`` moved, and
    the story's earliest date, which the edited capture's own save had replaced with its
    own."""
    ws.run_json()
    path = _variant(ws, "edited-1", "earlier")
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Fri, 31 Dec 2021 03:04:00 GMT", "Thu, 30 Dec 2021 23:00:00 GMT"
        ),
        encoding="utf-8",
    )
    ws.run_json()
    before = _entry(ws, "6376677")
    assert before.published.startswith("2021-12-30T23:00:00")  # the copy's, the earliest
    seed = (ws.root / "seeds" / "voa" / VOA_002).read_text(encoding="utf-8")
    assert "<!--1640921943000-->" in seed
    (ws.root / "seeds" / "voa" / "600_reedit.txt").write_text(
        seed.replace("<!--1640921943000-->", "<!--1700000000000-->").replace(
            "</p>", "白宫随后补充了这次通话的更多细节。</p>", 1
        ),
        encoding="utf-8",
    )
    ws.run_stopped_before_near_duplicates(monkeypatch)
    report = ws.run_json()
    assert sum(s["files_read"] for s in report["sources"]) == 0  # saved by the stopped run
    after = _entry(ws, "6376677")
    assert after.id == before.id
    assert after.published == before.published
    assert after.updated > before.updated
    assert "白宫随后补充了这次通话的更多细节。" in after.content[0].value
    assert len(_entries(ws)) == 5


def test_explain_shows_members_rules_and_scores(ws: Workspace) -> None:
    _variant(ws, "edited-3", "edited")
    _variant(ws, "mirror-footer", "mirror", source="mirror")
    cfg = ws.config.read_text(encoding="utf-8")
    ws.config.write_text(
        cfg + '\n[[sources]]\nname = "mirror"\ntitle = "Mirror"\npath = "seeds/mirror"\n'
        'adapter = "auto"\n',
        encoding="utf-8",
    )
    ws.run_json()
    entry = _entry(ws, "6376677")
    undecodable = ws.cli("explain", "\udcff\udcfe")  # the bytes ff fe, from a shell
    assert undecodable.returncode == 1 and "Traceback" not in undecodable.stderr
    assert "not valid UTF-8" in undecodable.stderr
    proc = ws.cli("explain", entry.id, check=True)
    assert "articles in this story (3)" in proc.stdout
    assert 'merged by rule "' in proc.stdout and "similarity 0." in proc.stdout
    assert "https://mirror.example.net/mirror/1.html" in proc.stdout
    by_url = ws.cli("explain", "https://mirror.example.net/mirror/1.html", "--json", check=True)
    found = json.loads(by_url.stdout)
    assert found["story"] == "voa:6376677"
    merged = found["merges"]
    assert {m["rule"] for m in merged.values()} <= {"same text", "edited"}
    assert all(0.68 <= m["similarity"] <= 1 for m in merged.values())
    missing = ws.cli("explain", "urn:uuid:00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 1 and "no entry" in missing.stderr
    for malformed in ("http://[::1", "http://x:99999/a"):  # a traceback before
        proc = ws.cli("explain", malformed)
        assert proc.returncode == 1 and "no entry" in proc.stderr, proc.stderr


def test_lookalikes_stay_separate_entries(ws: Workspace) -> None:
    """Bulletins sharing boilerplate (one differing only in a figure) and a weekly series
    reusing its title each stay their own entry."""
    data = neardupset.DATA / "lookalikes"
    for name in ("bulletin-01-wounded-3.txt", "bulletin-02-wounded-5.txt",
                 "bulletin-10-killed-3.txt"):  # fmt: skip
        (ws.root / "seeds" / "voa" / name).write_text(
            (data / name).read_text(encoding="utf-8"), encoding="utf-8"
        )
    for n in range(1, 5):
        (ws.root / "seeds" / "dw" / f"weekly-{n}.txt").write_text(
            (data / f"weekly-{n}.txt").read_text(encoding="utf-8"), encoding="utf-8"
        )
    report = ws.run_json()
    assert sum(s["near_duplicates"] for s in report["sources"]) == 0
    assert len(_entries(ws)) == 5 + 3 + 4


def test_retention_tombstone_keeps_a_removed_entry_from_coming_back(ws: Workspace) -> None:
    cfg = ws.config.read_text(encoding="utf-8")
    ws.config.write_text(
        cfg.replace("[output]", "[retention]\nmax_items_per_source = 2\n\n[output]"),
        encoding="utf-8",
    )
    ws.run_json()
    assert all("6376677" not in e.link for e in _entries(ws, "voa.atom"))  # the oldest went
    with sqlite3.connect(ws.db) as db:
        # Nothing of a deleted article is left but its tombstone: no text history, no sketch
        # or signature for later near-duplicate passes to scan.
        live = {k for (k,) in db.execute("SELECT key FROM items")}
        assert "voa:6376677" not in live
        for table in ("versions", "sketches", "signatures", "merges"):
            keys = {k for (k,) in db.execute(f"SELECT key FROM {table}")}
            assert keys <= live, (table, keys - live)
        assert db.execute("SELECT count(*) FROM sketches").fetchone() == (len(live),)
    src = (ws.root / "seeds" / "voa" / VOA_002).read_text(encoding="utf-8")
    (ws.root / "seeds" / "voa" / "500_recapture.txt").write_text(
        src.replace("<!--1640921943000-->", "<!--1700000000000-->"), encoding="utf-8"
    )
    ws.run_json()
    assert all("6376677" not in e.link for e in _entries(ws, "voa.atom"))
    with sqlite3.connect(ws.db) as db:
        assert db.execute("SELECT reason FROM tombstones WHERE key = 'voa:6376677'").fetchone() == (
            "retention",
        )


def test_interrupted_run_leaves_pending_sketches_for_the_next(tmp_path: Path) -> None:
    """Sketches stored but never compared (the run stopped before its near-duplicate pass)
    are compared by the next run."""
    labels = neardupset.build(tmp_path)
    cfg = config_mod.load(tmp_path / "config.toml")
    files = sorted(f for f in labels if "voa-002" in f)
    with Store(cfg.state_db) as store:
        source = next(s for s in cfg.sources if s.name == "voa")
        for f in files:
            st = Path(f).stat()
            prepared = pipeline.prepare(FileStat(f, st.st_size, st.st_mtime_ns), source, None)
            tally = pipeline._Tally("voa")
            for ready in prepared.items:
                pipeline._merge(ready, store, NOW, tally)
        store.commit()  # ... and the run stops here
    with Store(cfg.state_db) as store:
        assert store.pending_days() is not None
        pipeline.run_once(cfg, store, NOW)
        assert store.pending_days() is None
    guess = neardupset.predicted(cfg.state_db, files)
    assert len(set(guess.values())) == 1


@pytest.mark.parametrize(
    ("a", "b", "rule"),
    [
        # The same text under two titles: retitled copies merge on the text alone.
        ("voa-002.txt", "voa-002-retitled.txt", "same text"),
        # A live blog's first half and its later capture: containment under one title.
        ("dw-001-live-early.txt", "dw-001-live-late.txt", "grown"),
        # The same bulletin, Simplified and Traditional: short, so nearly identical is needed.
        ("bulletin-04-nato-standby.txt", "bulletin-08-nato-standby-traditional.txt",
         "same text (short)"),
        # Bulletins differing in one figure, and in one word a day later: apart.
        ("bulletin-01-wounded-3.txt", "bulletin-02-wounded-5.txt", None),
        ("bulletin-01-wounded-3.txt", "bulletin-10-killed-3.txt", None),
        # A weekly series: the same title and boilerplate, other news.
        ("weekly-1.txt", "weekly-2.txt", None),
        # Another outlet's story of the same call on the same day.
        ("voa-002.txt", "dw-biden-putin-call-same-day.txt", None),
    ],
)  # fmt: skip
def test_decide_table(tmp_path: Path, a: str, b: str, rule: str | None) -> None:
    labels = neardupset.build(tmp_path)
    cfg = config_mod.load(tmp_path / "config.toml")
    rows = {}
    for f in labels:
        if Path(f).name in (a, b):
            source = next(s for s in cfg.sources if Path(f).is_relative_to(s.path))  # type: ignore[arg-type]
            st = Path(f).stat()
            ready = pipeline.prepare(FileStat(f, st.st_size, st.st_mtime_ns), source, None).items[0]
            assert ready.sketch is not None
            rows[Path(f).name] = neardup.Row(
                ready.item.key, ready.item.key, ready.sketch, ready.item.published,
                ready.item.outlet, True, source.name,
            )  # fmt: skip
    evidence = neardup.decide(rows[a], rows[b])
    assert (evidence.rule if evidence else None) == rule
    # Symmetric (match() decides each pair once): the other way round differs in its key only.
    back = neardup.decide(rows[b], rows[a])
    assert back == (evidence and dataclasses.replace(evidence, matched=rows[a].key))
