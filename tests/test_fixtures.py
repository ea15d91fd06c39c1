"""The fixture corpus: every ``tests/data/<adapter>/NAME.txt`` read through its adapter and
cleaned exactly as the pipeline does, then compared with ``NAME.json`` beside it.

The folder name is the adapter registry key. Each fixture is named after the behaviour it pins
(``voa-no-date-line.txt``, ``dw-copyright-two-em-tags.txt``); adding a case is adding two files.

Expected JSON, every key but ``adapter`` optional:

* ``title``, ``link``, ``key``, ``lang``, ``author``, ``author_uri``, ``summary``: compared
  exactly;
* ``published``, ``archived``: ISO 8601 instants, compared as UTC instants (``archived`` may be null);
* ``categories``: the list, in order; ``image``: null or ``{"url": ..., "caption": ...}``;
* ``rules_fired``: a subset of the cleaning rules that fired, each with its exact count;
* ``content_contains`` / ``content_excludes``: strings that must / must not be in the cleaned HTML;
* ``summary_startswith``: the start of the plain-text summary;
* ``error_contains``: the file must be rejected (by its adapter or by cleaning) with a ``ParseError``
  whose message holds this.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator import adapters
from aggregator.clean import clean
from aggregator.errors import ParseError
from aggregator.model import Fetched, Item

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("*/*.txt"))

_EXACT = ("title", "link", "key", "lang", "author", "author_uri", "summary")
_KNOWN = frozenset(
    {"adapter", "published", "archived", "categories", "image", "rules_fired", "content_contains",
     "content_excludes", "summary_startswith", "error_contains", *_EXACT}
)  # fmt: skip


def _expected(path: Path) -> dict[str, Any]:
    expected_file = path.with_suffix(".json")
    if not expected_file.exists():
        pytest.fail(f"{path.name} has no expected result {expected_file.name} beside it")
    data: dict[str, Any] = json.loads(expected_file.read_text(encoding="utf-8"))
    return data


def _parse(path: Path, adapter: str) -> tuple[Item, ...]:
    fetched = Fetched(origin=str(path), source="test", data=path.read_bytes())
    return adapters.parse(fetched, adapter)


def _clean(item: Item) -> Item:
    # As aggregator/pipeline.py _clean does (a test source sets no author/lang/homepage override).
    profile = adapters.ADAPTERS[item.outlet]
    return clean(item, profile.rules, profile.zone)


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _is_utc(dt: datetime) -> bool:
    return dt.tzinfo is not None and dt.utcoffset() == timedelta(0)


def _problems(item: Item, expected: dict[str, Any]) -> list[str]:
    """Every way ``item`` differs from ``expected``, so one run shows them all."""
    out: list[str] = []

    def check(what: str, got: object, want: object) -> None:
        if got != want:
            out.append(f"{what}: got {got!r}, expected {want!r}")

    check("outlet", item.outlet, expected["adapter"])
    for name in _EXACT:
        if name in expected:
            check(name, getattr(item, name), expected[name])
    for name in ("published", "archived"):
        if name in expected:
            got = getattr(item, name)
            if got is not None and not _is_utc(got):
                out.append(f"{name}: {got!r} is not a timezone-aware UTC datetime")
            check(name, got, _instant(expected[name]))
    if "categories" in expected:
        check("categories", list(item.categories), expected["categories"])
    if "image" in expected:
        want = expected["image"]
        got_image = (
            None if item.image is None else {"url": item.image.url, "caption": item.image.caption}
        )
        if want is not None and "caption" not in want and got_image is not None:
            got_image.pop("caption")
        check("image", got_image, want)
    fired = dict(item.fired)
    for rule, count in expected.get("rules_fired", {}).items():
        check(f"rule {rule!r} fired", fired.get(rule, 0), count)
    for text in expected.get("content_contains", []):
        if text not in item.content:
            out.append(f"content lacks {text!r}")
    for text in expected.get("content_excludes", []):
        if text in item.content:
            at = item.content.index(text)
            out.append(
                f"content still has {text!r}: ...{item.content[max(0, at - 60) : at + 80]!r}..."
            )
    if "summary_startswith" in expected and not item.summary.startswith(
        expected["summary_startswith"]
    ):
        out.append(
            f"summary starts {item.summary[:60]!r}, expected {expected['summary_startswith']!r}"
        )
    return out


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixture(path: Path) -> None:
    adapter = path.parent.name
    expected = _expected(path)
    unknown = set(expected) - _KNOWN
    assert not unknown, f"{path.with_suffix('.json').name}: unknown keys {sorted(unknown)}"
    assert expected.get("adapter") == adapter, "the JSON's adapter must be the fixture's folder"

    if "error_contains" in expected:
        with pytest.raises(ParseError) as info:  # by the adapter, or in cleaning
            for item in _parse(path, adapter):
                _clean(item)
        assert expected["error_contains"] in str(info.value)
        assert str(path) in str(info.value), "a ParseError names the file it is about"
        return

    items = _parse(path, adapter)
    assert len(items) == 1, f"one archive file is one item, got {len(items)}"
    problems = _problems(_clean(items[0]), expected)
    assert not problems, "\n".join(problems)


def test_every_fixture_has_expected_json() -> None:
    assert FIXTURES, f"no fixtures found under {DATA}"
    missing = [str(p.relative_to(DATA)) for p in FIXTURES if not p.with_suffix(".json").exists()]
    orphans = [
        str(j.relative_to(DATA))
        for j in sorted(DATA.glob("*/*.json"))
        if not j.with_suffix(".txt").exists()
    ]
    assert not missing, f"fixtures without an expected .json beside them: {missing}"
    assert not orphans, f"expected .json files without a fixture .txt: {orphans}"


def test_fixture_folders_are_adapter_keys() -> None:
    folders = {p.parent.name for p in FIXTURES}
    assert folders <= set(adapters.ADAPTERS), (
        f"unknown adapter folders: {folders - set(adapters.ADAPTERS)}"
    )
    assert set(adapters.ADAPTERS) <= folders, "every adapter needs fixtures"


def _auto_cases() -> list[Path]:
    cases = []
    for path in FIXTURES:
        if path.parent.name == "generic":
            continue
        expected_file = path.with_suffix(".json")
        if expected_file.exists() and "error_contains" in json.loads(
            expected_file.read_text("utf-8")
        ):
            continue  # rejected files have no outlet to land on
        cases.append(path)
    return cases


@pytest.mark.parametrize("path", _auto_cases(), ids=lambda p: p.name)
def test_auto_detects_fixture_outlet(path: Path) -> None:
    items = _parse(path, adapters.AUTO)
    assert [item.outlet for item in items] == [path.parent.name]
