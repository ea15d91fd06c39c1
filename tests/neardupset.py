"""The labelled near-duplicate evaluation set: tests/data/neardup/ turned into archive files.

``build(root)`` writes a workspace under ``root``: a config.toml with four sources (voa, dw,
aljazeera, and a "mirror" source read with adapter auto) and their folders, holding

* every seed story, and each variant of ``labels/cases.json`` applied to it (re-archives, edited
  sentences, retitled copies, Traditional editions, mirror copies with a promo footer, a live
  blog's early and late captures): all labelled with the seed's story;
* the hand-written look-alikes of ``lookalikes/`` (short bulletins sharing their boilerplate,
  some differing in one figure; a weekly series reusing its title; other outlets' stories of
  a seed's event on the same day): each its own story, except the copies that say whose story
  they are.

It returns ``{file path: story label}``. ``predicted(store, files)`` reads back which story the
pipeline put each file in (merged articles and exact duplicates follow their entry), and
``pair_scores`` turns both into pairwise precision and recall. The edits are deterministic: the
same set every time. Used by tests/test_neardup.py and bench/neardup_eval.py.
"""

from __future__ import annotations

import json
import re
import sqlite3
from itertools import combinations
from pathlib import Path
from typing import Any

import opencc

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "neardup"
SEEDS = ROOT / "seeds"
SOURCES = {"voa": "voa", "dw": "dw", "aljazeera": "aljazeera", "mirror": "auto"}

_P = re.compile(r"<p>(.*?)</p>", re.S)
_SENTENCE = re.compile(r"(?<=[。！？])")
_LINK = re.compile(r"^\[(.*)\]\((\S+)\)$", re.M)
_FM_TITLE = re.compile(r"^title: '(.*)'$", re.M)
_ARCHIVED = re.compile(r"^<!--(\d+)-->")
_DATELINE = re.compile(r"<div><i>(?:<br>)?([^<]+)</i></div>")


def cases() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "labels" / "cases.json").read_text(encoding="utf-8"))
    return data


def _is_front_matter(text: str) -> bool:
    return text.lstrip().startswith("---")


def _set_url(text: str, url: str) -> str:
    if _is_front_matter(text):
        text = re.sub(r"^link: .*\n", "", text, flags=re.M)
        return text.replace("\ndate:", f"\nlink: '{url}'\ndate:", 1)
    return _LINK.sub(lambda m: f"[{m.group(1)}]({url})", text, count=1)


def _set_title(text: str, title: str) -> str:
    if _is_front_matter(text):
        return _FM_TITLE.sub(f"title: '{title}'", text, count=1)
    return _LINK.sub(lambda m: f"[{title}]({m.group(2)})", text, count=1)


def _replace_sentences(text: str, count: int, pool: list[str], offset: int) -> str:
    """Replace ``count`` sentences spread over the body with hand-written ones."""
    paragraphs = [m for m in _P.finditer(text) if _SENTENCE.search(m.group(1))]
    step = max(1, len(paragraphs) // (count + 1))
    out, last = [], 0
    for n in range(count):
        m = paragraphs[min(len(paragraphs) - 1, step * (n + 1))]
        sentences = [s for s in _SENTENCE.split(m.group(1)) if s]
        sentences[len(sentences) // 2] = pool[(offset + n) % len(pool)]
        out += [text[last : m.start(1)], "".join(sentences)]
        last = m.end(1)
    return "".join(out) + text[last:]


def _truncate(text: str, keep: float) -> str:
    paragraphs = list(_P.finditer(text))
    cut = paragraphs[max(1, int(len(paragraphs) * keep)) - 1].end()
    tail = "\n</div>\n" if _is_front_matter(text) else "\n"
    return text[:cut] + tail


def _append(text: str, html: str) -> str:
    last = list(_P.finditer(text))[-1]
    return text[: last.end()] + html + text[last.end() :]


def _archived(text: str, hours: float) -> str:
    m = _ARCHIVED.match(text)
    if not m:  # Al Jazeera posts carry no capture time
        return text
    return f"<!--{int(m.group(1)) + int(hours * 3_600_000)}-->" + text[m.end() :]


def _set_date(text: str, date: str) -> str:
    if _is_front_matter(text):
        return re.sub(r"^date: .*$", f"date: {date}", text, count=1, flags=re.M)
    return _DATELINE.sub(lambda m: m.group(0).replace(m.group(1), date), text, count=1)


def apply(text: str, ops: list[list[Any]], story: dict[str, Any], name: str, n: int) -> str:
    """One variant of a seed file: ``ops`` from cases.json, in order."""
    c = cases()
    for op, *args in ops:
        if op == "url":
            text = _set_url(text, f"https://www.example-news.org/{name}/{n}.html")
        elif op == "mirror":
            text = _set_url(text, f"https://mirror.example.net/{name}/{n}.html")
        elif op == "archived":
            text = _archived(text, args[0])
        elif op == "sentences":
            text = _replace_sentences(text, args[0], c["sentences"], n)
        elif op == "retitle":
            text = _set_title(text, story["retitle"])
        elif op == "title":
            text = _set_title(text, args[0])
        elif op == "script":
            text = opencc.OpenCC(args[0]).convert(text)
        elif op == "footer":
            text = text.rstrip("\n") + c["footers"][args[0]] + "\n"
        elif op == "truncate":
            text = _truncate(text, args[0])
        elif op == "append":
            text = _append(text, "".join(c["updates"][: args[0]]))
        elif op == "date":
            text = _set_date(text, args[0])
        else:
            raise ValueError(f"cases.json: unknown op {op!r}")
    return text


def build(root: Path) -> dict[str, str]:
    """Write the evaluation workspace; {file path: story label}."""
    c = cases()
    labels: dict[str, str] = {}

    def write(source: str, name: str, text: str, label: str) -> None:
        path = root / "archive" / source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        labels[str(path)] = label

    for n, (label, story) in enumerate(sorted(c["stories"].items())):
        seed = SEEDS / story["seed"]
        source = seed.parent.name
        text = seed.read_text(encoding="utf-8")
        write(source, f"{label}.txt", text, label)
        for m, (variant, spec) in enumerate(sorted(c["variants"].items())):
            name = f"{label}-{variant}"
            write(spec.get("source", source), f"{name}.txt",
                  apply(text, spec["ops"], story, name, n * 100 + m), label)  # fmt: skip
    for name, spec in c["lookalikes"]["files"].items():
        text = (DATA / name).read_text(encoding="utf-8")
        write(spec["source"], Path(name).name, text, spec.get("story", name))
    sources = "".join(
        f'\n[[sources]]\nname = "{name}"\ntitle = "{name}"\npath = "archive/{name}"\n'
        f'adapter = "{adapter}"\n'
        for name, adapter in SOURCES.items()
    )
    (root / "config.toml").write_text(
        'base_url = "https://news.example.org/feeds/"\noutput_dir = "feeds"\n'
        'state_db = "state/eval.sqlite3"\nworkers = 1\n' + sources,
        encoding="utf-8",
    )
    return labels


def predicted(db: Path, files: list[str]) -> dict[str, str]:
    """{file: the entry key its article ended up in}, read from the state database."""
    with sqlite3.connect(db) as con:
        key_of = dict(con.execute("SELECT origin, key FROM versions"))
        key_of.update(dict(con.execute("SELECT origin, kept_key FROM duplicates")))
        story = dict(con.execute("SELECT key, COALESCE(story, key) FROM items"))
    return {f: story.get(key_of.get(f, f), key_of.get(f, f)) for f in files}


def pair_scores(truth: dict[str, str], guess: dict[str, str]) -> dict[str, Any]:
    """Pairwise precision and recall of "these two files are one story"."""
    tp = fp = fn = 0
    wrong: list[tuple[str, str, str]] = []
    for a, b in combinations(sorted(truth), 2):
        same, said = truth[a] == truth[b], guess[a] == guess[b]
        if same and said:
            tp += 1
        elif said:
            fp += 1
            wrong.append(("merged, should not be", a, b))
        elif same:
            fn += 1
            wrong.append(("apart, should be one", a, b))
    return {
        "files": len(truth),
        "stories": len(set(truth.values())),
        "pairs_same": tp + fn,
        "pairs_apart": len(truth) * (len(truth) - 1) // 2 - tp - fn,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "wrong": wrong,
    }
