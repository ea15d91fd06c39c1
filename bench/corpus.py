"""Deterministic benchmark corpus: N archive item files built from the seeds in ``seeds/``.

What it makes: ``OUT/voa/``, ``OUT/dw/`` and ``OUT/aljazeera/`` filled with files named
``<number>_<hash>.txt`` in the seeds' own containers:

* VOA and DW: ``<!--epoch-ms-->`` / ``[title](url)`` / ``------`` / HTML body, the body opening
  with the outlet's date line (VOA RFC 2822 GMT, DW ISO 8601 UTC with milliseconds);
* Al Jazeera: YAML front-matter (title, categories, headimg, author, date, ``link``) + HTML body.

Every item gets a fresh article id (VOA ``/a/<slug>-<yyyymmdd>/<7 digits>.html``, DW
``/zh/<slug>/a-<8 digits>``, Al Jazeera ``/news/<y>/<m>/<d>/<slug>``), a title built from seed
titles and fragments (some with a ``【快讯】``-style prefix, many with numbers), a publication date
spread over 2021-2023 (date line and capture time shifted together), and a body of 4-8 KB
sampled and shuffled from the seed paragraphs (a few digits re-rolled), so no two texts match.

About 10% of items are re-archives of an earlier item: the same URL, title and date line, a
later ``<!--ms-->`` capture time; half of them with one sentence changed or added, half byte-
identical apart from the capture time. (Al Jazeera posts carry no capture time, so their
re-archives repeat the post as it was, edited or not.)

Determinism: item ``i`` is drawn from ``random.Random(f"{seed}:{i}")`` and nothing else (no clock,
no global state), so any item can be rebuilt on its own. That is what lets ``--start K`` add
items later that never collide with earlier ones and can still re-archive them.

Run::

    python bench/corpus.py OUT_DIR --items 100000 [--seed 1] [--start 0] [--jobs J] [--json]

``--start K`` numbers the items K .. K+N-1 (use the previous N to add new files to a corpus).
The summary on stdout (``--json``: as JSON) counts originals and re-archives per outlet.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from itertools import repeat
from pathlib import Path
from random import Random
from typing import Any
from urllib.parse import quote

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
OUTLETS = ("voa", "dw", "aljazeera")
WEIGHTS = (0.45, 0.35, 0.20)  # share of items per outlet
REARCHIVE_SHARE = 0.10
EDITED_SHARE = 0.5  # of the re-archives
EPOCH = datetime(2021, 1, 1, tzinfo=UTC)
SPAN_SECONDS = 3 * 365 * 24 * 3600  # publication dates spread over ~3 years
BODY_BYTES = (4000, 8000)  # the seeds' bodies are 5-8 KB

PREFIXES = ("【快讯】", "【独家】", "【视频】", "【更新】", "【分析】", "【观察】", "【图集】", "【专访】")  # fmt: skip
SUBJECTS = (
    "美俄防长", "拜登", "普京", "北约秘书长", "泽连斯基", "七国集团", "欧盟外长", "联合国安理会",
    "德国总理", "乌克兰国防部", "白宫", "克里姆林宫", "美国国务卿", "土耳其总统", "波兰总统",
)  # fmt: skip
ACTIONS = (
    "就乌克兰局势通电话", "敦促俄罗斯缓和紧张关系", "宣布新一轮制裁", "召开紧急会议",
    "表示对谈判持开放态度", "警告局势可能升级", "承诺提供防空系统", "访问基辅", "发表联合声明",
    "拒绝让步", "讨论能源危机", "呼吁停火", "回应无人机袭击指控", "谈判陷入僵局",
)  # fmt: skip
SUFFIXES = (
    "", "", "", "，莫斯科回应", "，双方互不让步", "  会前双方互不让步", "：{n}国参加",
    "，至少{n}人死亡", "（第{n}轮）", " 分析人士：仍有变数", "，涉及{n}亿美元援助",
)  # fmt: skip
SLUG_WORDS = tuple(  # the seeds' URL slugs and their kin
    "top us russian defense officials talk fighting rages ukraine biden urges putin "  # noqa: SIM905
    "de-escalate tensions russia nato g7 sanctions security talks geneva air summit call kyiv "
    "moscow white house kremlin allies meet aid drones iran crimea bridge energy winter coalition "
    "leaders warn nuclear grain deal europe poland turkey un council vote".split()
)
CATEGORIES = ("新媒体", "Aljazeera 半岛网", "新闻", "国际", "政治", "俄乌战争")
UPDATE_SENTENCES = (
    "（本文已更新，补充了最新消息。）", "截至发稿时，相关方面尚未作出回应。",
    "另据报道，谈判将于下周继续举行。", "此前的报道有误，相关数字已更正。",
)  # fmt: skip

_P = re.compile(r"<p>(.*?)</p>", re.S)
_BR_SPLIT = re.compile(r"(?:<br\s*/?>\s*){2,}")
_BR = re.compile(r"<br\s*/?>")
_TAG = re.compile(r"<[^>]+>")
_DIGITS = re.compile(r"\d+(?![\d年月日])")  # amounts and counts, not dates
_DW_DATELINE = "（德国之声中文网）"
_SENTENCE = re.compile(r"(?<=[。！？])")
_IMAGE = re.compile(r'<img src="https://images\.weserv\.nl[^>]*>\s*<div><small[^>]*>.*?</small></div>', re.S)  # fmt: skip
_FIGURE = re.compile(r"<figure\b.*?</figure>", re.S)
_H3 = re.compile(r"<h3>.*?</h3>")
_FEEDX = re.compile(r"<br><hr><div>获取更多RSS.*?</div>", re.S)


@dataclass(frozen=True)
class Pools:
    """Material cut from the seeds, per outlet."""

    paragraphs: dict[str, tuple[str, ...]]  # plain paragraph texts (inline tags kept)
    subheads: dict[str, tuple[str, ...]]
    images: dict[str, tuple[str, ...]]  # lead/inline picture blocks as the outlet writes them
    credits: dict[str, tuple[str, ...]]  # closing <p><em>...</em></p> lines
    footers: tuple[str, ...]  # the feedx mirror footer
    titles: tuple[str, ...]
    every_paragraph: tuple[str, ...]


def load_pools(seeds: Path = SEEDS) -> Pools:
    paragraphs: dict[str, list[str]] = {o: [] for o in OUTLETS}
    subheads: dict[str, list[str]] = {o: [] for o in OUTLETS}
    images: dict[str, list[str]] = {o: [] for o in OUTLETS}
    credits: dict[str, list[str]] = {o: [] for o in OUTLETS}
    footers: list[str] = []
    titles: list[str] = []
    for outlet in OUTLETS:
        for path in sorted((seeds / outlet).glob("*.txt")):
            text = path.read_text(encoding="utf-8")
            m = re.search(r"^\[(.*)\]\(", text, re.M) or re.search(r"^title: '(.*)'$", text, re.M)
            if m:
                titles.append(m.group(1))
            images[outlet] += _IMAGE.findall(text) + _FIGURE.findall(text)
            subheads[outlet] += [_TAG.sub("", h) for h in _H3.findall(text)]
            footers += _FEEDX.findall(text)
            for inner in _P.findall(text):
                if "<em>" in inner:
                    if "版权" not in inner:  # DW's notice is rebuilt per year below
                        credits[outlet].append(f"<p>{inner}</p>")
                    continue
                if inner.startswith("<strong>") and inner.endswith("</strong>"):
                    subheads[outlet].append(_TAG.sub("", inner))
                    continue
                for unit in _BR_SPLIT.split(inner):
                    unit = _BR.sub("", unit).strip().removeprefix(_DW_DATELINE)
                    if "<strong>" in unit:
                        subheads[outlet].append(_TAG.sub("", unit))
                    elif len(unit) >= 20:
                        paragraphs[outlet].append(unit)
    return Pools(
        paragraphs={o: tuple(v) for o, v in paragraphs.items()},
        subheads={o: tuple(v) for o, v in subheads.items()},
        images={o: tuple(v) for o, v in images.items()},
        credits={o: tuple(v) for o, v in credits.items()},
        footers=tuple(dict.fromkeys(footers)),
        titles=tuple(titles),
        every_paragraph=tuple(p for o in OUTLETS for p in paragraphs[o]),
    )


@dataclass
class Article:
    """One article as first archived; a re-archive renders it again with a later capture time."""

    outlet: str
    title: str
    url: str
    published: datetime
    archived_ms: int
    lead: str  # date line + picture (VOA/DW) or "" (Al Jazeera)
    blocks: list[tuple[str, list[str]]]  # ("p", units) or ("raw", [html])
    tail: str
    front: str = ""  # Al Jazeera front-matter lines, without the --- fences


def _rng(seed: int, i: int) -> Random:
    # str seeds are hashed with SHA-512: stable across runs and PYTHONHASHSEED.
    return Random(f"{seed}:{i}")


def _is_rearchive(seed: int, i: int) -> bool:
    return i > 0 and _rng(seed, i).random() < REARCHIVE_SHARE


def _article_id(i: int, seed: int, digits: int) -> int:
    # A bijection of the item number onto the id range (the multiplier is prime and does not
    # divide the range), so every item gets its own id however the corpus is extended.
    low: int = 10 ** (digits - 1)
    span = 9 * low
    return low + (i * 7_919 + seed * 104_729) % span


def _number(rng: Random) -> str:
    return str(rng.choice((rng.randint(2, 9), rng.randint(10, 99), rng.randint(100, 999))))


def _title(rng: Random, pools: Pools) -> str:
    if rng.random() < 0.15:
        title = rng.choice(pools.titles)
    else:
        suffix = rng.choice(SUFFIXES).replace("{n}", _number(rng))
        title = rng.choice(SUBJECTS) + rng.choice(ACTIONS) + suffix
    if rng.random() < 0.2:
        title = rng.choice(PREFIXES) + title
    return title


def _slug(rng: Random) -> str:
    return "-".join(rng.choice(SLUG_WORDS) for _ in range(rng.randint(3, 8)))


def _reroll_digits(text: str, rng: Random) -> str:
    return _DIGITS.sub(lambda m: str(rng.randrange(10 ** len(m.group()))), text)


def _blocks(rng: Random, pools: Pools, outlet: str, budget: int) -> list[tuple[str, list[str]]]:
    own = pools.paragraphs[outlet]
    blocks: list[tuple[str, list[str]]] = []
    size = 0
    group: list[str] = []
    while size < budget:
        text = rng.choice(own if rng.random() < 0.75 else pools.every_paragraph)
        if rng.random() < 0.3:
            text = _reroll_digits(text, rng)
        size += len(text.encode()) + 9
        group.append(text)
        # VOA often packs several paragraphs into one <p> split by <br /><br />.
        if outlet != "voa" or rng.random() < 0.5:
            blocks.append(("p", group))
            group = []
        if rng.random() < 0.06 and pools.subheads[outlet]:
            head = rng.choice(pools.subheads[outlet])
            if group:
                blocks.append(("p", group))
                group = []
            if outlet == "aljazeera":
                blocks.append(("raw", [f"<h3>{head}</h3>"]))
            else:
                blocks.append(("raw", [f"<p><strong>{head}</strong></p>"]))
        elif rng.random() < 0.05 and outlet != "voa" and pools.images[outlet]:
            if group:
                blocks.append(("p", group))
                group = []
            blocks.append(("raw", [rng.choice(pools.images[outlet])]))
    if group:
        blocks.append(("p", group))
    return blocks


def make_article(i: int, seed: int, pools: Pools) -> Article:
    """Item ``i`` as an original article (re-archives rebuild their original with this)."""
    rng = _rng(seed, i)
    rng.random()  # the draw _is_rearchive made
    outlet = rng.choices(OUTLETS, WEIGHTS)[0]
    title = _title(rng, pools)
    offset_ms = rng.randrange(SPAN_SECONDS * 1000)
    published = EPOCH + timedelta(milliseconds=offset_ms)
    published_ms = int(EPOCH.timestamp()) * 1000 + offset_ms
    archived_ms = published_ms + rng.randint(60, 6 * 3600) * 1000
    budget = rng.randint(*BODY_BYTES) - 900
    blocks = _blocks(rng, pools, outlet, budget)
    lead = tail = front = ""
    if outlet == "voa":
        article_id = _article_id(i, seed, 7)
        url = f"https://www.voachinese.com/a/{_slug(rng)}-{published:%Y%m%d}/{article_id}.html"
        stamp = format_datetime(published.replace(microsecond=0), usegmt=True)
        lead = f"<div><i>{stamp}</i></div>{rng.choice(pools.images['voa'])}"
        if rng.random() < 0.5:
            tail += rng.choice(pools.credits["voa"])
        if rng.random() < 0.4:
            tail += rng.choice(pools.footers)
    elif outlet == "dw":
        article_id = _article_id(i, seed, 8)
        url = f"https://www.dw.com/zh/{quote(title)}/a-{article_id}"
        stamp = published.strftime("%Y-%m-%dT%H:%M:%S.") + f"{published_ms % 1000:03d}Z"
        lead = f"<div><i><br>{stamp}</i></div>{rng.choice(pools.images['dw'])}"
        first = blocks[0][1]
        first[0] = _DW_DATELINE + first[0]
        if rng.random() < 0.5:
            tail += "<p>(综合报道)</p>"
        tail += (
            f"<p><em>© {published.year}年德国之声版权声明：本文所有内容受到著作权法保护，"
            "如无德国之声特别授权，不得擅自使用。任何不当行为都将导致追偿，并受到刑事追究。</em></p>"
        )
        tail += rng.choice(pools.footers)
    else:
        url = (
            f"https://chinese.aljazeera.net/news/{published.year}/{published.month}/"
            f"{published.day}/{_slug(rng)}-{i:x}"
        )
        image = "https://chinese.aljazeera.net/wp-content/uploads/" + (
            f"{published:%Y/%m}/image-{rng.randint(1, 9)}-{rng.randint(1, 99)}.jpg"
            "?w=770&resize=770%2C433"
        )
        cats = rng.sample(CATEGORIES, rng.randint(1, 4))
        date = format_datetime(published.replace(microsecond=0), usegmt=True)
        front = "\n".join(
            [
                "title: '" + title.replace("'", "''") + "'",
                "categories: ",
                *(f" - {c}" for c in cats),
                f"headimg: '{image}'",
                "author: Aljazeera 半岛网",
                "comments: false",
                f"date: {date}",
                f"thumbnail: '{image}'",
                f"link: '{url}'",
            ]
        )
    return Article(outlet, title, url, published, archived_ms, lead, blocks, tail, front)


def _edit(article: Article, rng: Random, pools: Pools) -> None:
    """Change or add one sentence, as an outlet's later correction would."""
    paragraphs = [units for kind, units in article.blocks if kind == "p"]
    units = rng.choice(paragraphs)
    k = rng.randrange(len(units))
    sentences = [s for s in _SENTENCE.split(units[k]) if s]
    if rng.random() < 0.5 and len(sentences) > 1:
        donor = [s for s in _SENTENCE.split(rng.choice(pools.every_paragraph)) if s]
        sentences[rng.randrange(len(sentences))] = rng.choice(donor)
    else:
        sentences.append(rng.choice(UPDATE_SENTENCES))
    units[k] = "".join(sentences)


def render(article: Article, archived_ms: int) -> bytes:
    body = "".join(
        units[0] if kind == "raw" else "<p>" + "<br /><br />".join(units) + "</p>"
        for kind, units in article.blocks
    )
    if article.outlet == "aljazeera":
        inner = "\n".join(
            units[0] if kind == "raw" else f"<p>{u}</p>"
            for kind, units in article.blocks
            for u in (units if kind == "p" else units[:1])
        )
        text = f"\n---\n{article.front}\n---\n\n<div>   \n{inner}\n  \n</div>\n            \n"
    else:
        title = article.title.replace("[", "\\[").replace("]", "\\]")
        text = (
            f"<!--{archived_ms}-->\n[{title}]({article.url})\n------\n\n"
            f"{article.lead}{body}{article.tail}\n"
        )
    return text.encode()


def make_item(i: int, seed: int, pools: Pools) -> tuple[str, bytes, str]:
    """(outlet, file bytes, kind) of item ``i``; kind is original, identical or edited."""
    if not _is_rearchive(seed, i):
        article = make_article(i, seed, pools)
        return article.outlet, render(article, article.archived_ms), "original"
    rng = _rng(seed, i)
    rng.random()
    j = rng.randrange(i)
    for _ in range(32):
        if not _is_rearchive(seed, j):
            break
        j = rng.randrange(i)
    else:
        article = make_article(i, seed, pools)
        return article.outlet, render(article, article.archived_ms), "original"
    article = make_article(j, seed, pools)
    later = article.archived_ms + rng.randint(3600, 30 * 24 * 3600) * 1000
    kind = "identical"
    if rng.random() < EDITED_SHARE:
        _edit(article, rng, pools)
        kind = "edited"
    return article.outlet, render(article, later), kind


CHUNK = 2000  # items per worker task


def _write_range(out: Path, seed: int, first: int, stop: int) -> tuple[Counter[str], int]:
    pools = _pools()
    kinds: Counter[str] = Counter()
    total = 0
    for i in range(first, stop):
        outlet, data, kind = make_item(i, seed, pools)
        name = f"{i:06d}_{hashlib.blake2b(data, digest_size=8).hexdigest()}.txt"
        (out / outlet / name).write_bytes(data)
        kinds[f"{outlet}.{kind}"] += 1
        total += len(data)
    return kinds, total


@cache
def _pools() -> Pools:
    return load_pools()


def generate(
    out: Path, items: int, seed: int = 1, start: int = 0, jobs: int | None = None
) -> dict[str, Any]:
    """Write items ``start`` .. ``start + items - 1`` under ``out``; return the counts.

    Items are independent, so ranges of them are written by ``jobs`` processes (default: one
    per CPU); the files are the same whatever ``jobs`` is.
    """
    for outlet in OUTLETS:
        (out / outlet).mkdir(parents=True, exist_ok=True)
    ranges = [(a, min(a + CHUNK, start + items)) for a in range(start, start + items, CHUNK)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(ranges)))
    if jobs == 1:
        results = [_write_range(out, seed, a, b) for a, b in ranges]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(
                pool.map(_write_range, repeat(out), repeat(seed), *zip(*ranges, strict=True))
            )
    kinds: Counter[str] = Counter()
    for counts, _ in results:
        kinds.update(counts)
    per_outlet: Counter[str] = Counter()
    for key, n in kinds.items():
        per_outlet[key.split(".")[0]] += n
    return {
        "out": str(out),
        "start": start,
        "items": items,
        "seed": seed,
        "bytes": sum(total for _, total in results),
        "per_outlet": dict(sorted(per_outlet.items())),
        "kinds": dict(sorted(kinds.items())),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder (voa/, dw/, aljazeera/ go inside)")
    p.add_argument("--items", type=int, required=True, help="how many item files to write")
    p.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    p.add_argument("--start", type=int, default=0, help="number of the first item (default 0)")
    p.add_argument("--jobs", type=int, default=None, help="processes (default: one per CPU)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    summary = generate(args.out, args.items, args.seed, args.start, args.jobs)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        kinds = ", ".join(f"{k} {v}" for k, v in summary["kinds"].items())
        print(f"{args.items} items ({summary['bytes'] / 1e6:.1f} MB) in {args.out}: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
