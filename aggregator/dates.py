"""Date dialects as outlets write them -> timezone-aware UTC datetimes.

Shared by the adapters (finding the publication date) and the cleaner (recognising the date line
repeated at the top of a body). One registration line per dialect, tried in order; the first that
parses wins. A date without a zone is read in the outlet's own zone, which the caller passes in.

Pure functions: no clock, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from email.utils import parsedate_to_datetime
from functools import cache, lru_cache
from types import ModuleType

# Years outside this window are typos or placeholders (0001-01-01), never a news item's date.
_MIN_YEAR, _MAX_YEAR = 1990, 2100

# A date line is short; anything longer is a sentence that happens to contain a date.
MAX_DATE_TEXT = 64

_CJK_DATE = re.compile(
    r"^(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日"
    r"(?:\s*[（(]?\s*(?:星期|周|週|礼拜|禮拜)[一二三四五六日天]\s*[)）]?)?"
    r"(?:\s*(?:(?P<ampm>上午|下午|晚上|凌晨)\s*)?(?P<H>\d{1,2})\s*[:：时時点點]\s*(?P<M>\d{1,2})"
    r"(?:\s*[:：分]\s*(?P<S>\d{1,2})\s*秒?)?\s*分?)?"
    r"\s*(?:[（(]?\s*(?P<zone>北京时间|北京時間|UTC|GMT|格林尼治时间)\s*[)）]?)?\s*(?:更新)?$"
)
_NUMERIC_DATE = re.compile(
    r"^(?P<y>\d{4})[/.](?P<m>\d{1,2})[/.](?P<d>\d{1,2})"
    r"(?:[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?$"
)
# "10.01.2022", "10.01.2022 09:15": a date written with dots and the year last is day first
# (German and the rest of continental Europe; DW writes its dates so).
_DOTTED_DATE = re.compile(
    r"^(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})(?:,?\s+(?P<H>\d{1,2}):(?P<M>\d{2}))?$"
)
# A label before the date ("更新时间：", "Updated:"), and a zone named after it in words
# ("（北京时间）"): the date is what is between.
_LABEL = re.compile(
    r"^(?:(?:更新|发布|發布|发表|發表|出版|编辑|編輯)?(?:时间|時間|日期)|(?:last\s+)?updated"
    r"|published|posted|date)\s*[:：]\s*",
    re.IGNORECASE,
)
_ZONE_WORDS = re.compile(
    r"\s*[（(]\s*(?P<zone>北京时间|北京時間|台北时间|台北時間|香港时间|香港時間)\s*[)）]$"
)
_RFC2822_SHAPE = re.compile(r"^(?:[A-Za-z]{3},?\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d\d")
_BEIJING = timedelta(hours=8)
_CHINA_TIME = timezone(_BEIJING)


def _clean(text: str) -> str:
    # No-break and zero-width spaces appear in real date lines; see tests/data/*/ *-nbsp-*.
    text = text.replace("\u00a0", " ").replace("\u3000", " ")
    for zw in ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"):
        text = text.replace(zw, "")
    return " ".join(text.split())


def _rfc2822(text: str, tz: tzinfo) -> datetime | None:
    # "Fri, 21 Oct 2022 19:39:42 GMT" (VOA date line, Al Jazeera front-matter). The email parser
    # is lenient ("October 21, 2022 7:39 PM" would lose its PM), so only its own shape goes in.
    if not _RFC2822_SHAPE.match(text):
        return None
    try:
        dt = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if dt.tzinfo is None and re.search(r"\d\s*[A-Za-z]{2,5}$", text):
        return None  # a zone it does not know ("CEST"): dateutil's turn
    return dt


def _iso8601(text: str, tz: tzinfo) -> datetime | None:
    # "2022-01-10T04:58:40.481Z" (DW date line), "2022-10-21 19:39:42+08:00".
    if len(text) < 10 or text[4] != "-":
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _cjk(text: str, tz: tzinfo) -> datetime | None:
    # "2022年10月21日 19:39", "2022年10月21日 星期五 下午7:39 (北京时间)".
    m = _CJK_DATE.match(text)
    if not m:
        return None
    hour = int(m["H"] or 0)
    if m["ampm"] in ("下午", "晚上") and hour < 12:
        hour += 12
    try:
        dt = datetime(
            int(m["y"]), int(m["m"]), int(m["d"]), hour, int(m["M"] or 0), int(m["S"] or 0)
        )
    except ValueError:
        return None
    zone = m["zone"]
    if zone in ("北京时间", "北京時間"):
        return (dt - _BEIJING).replace(tzinfo=UTC)
    if zone in ("UTC", "GMT", "格林尼治时间"):
        return dt.replace(tzinfo=UTC)
    return dt


def _numeric(text: str, tz: tzinfo) -> datetime | None:
    # "2022/10/21 19:39", "2022.10.21".
    m = _NUMERIC_DATE.match(text)
    if not m:
        return None
    try:
        return datetime(
            int(m["y"]),
            int(m["m"]),
            int(m["d"]),
            int(m["H"] or 0),
            int(m["M"] or 0),
            int(m["S"] or 0),
        )
    except ValueError:
        return None


def _dotted(text: str, tz: tzinfo) -> datetime | None:
    # "10.01.2022" is 10 January (dateutil would read it as 1 October).
    m = _DOTTED_DATE.match(text)
    if not m:
        return None
    try:
        return datetime(int(m["y"]), int(m["m"]), int(m["d"]), int(m["H"] or 0), int(m["M"] or 0))
    except ValueError:
        return None


def _dateutil(text: str, tz: tzinfo) -> datetime | None:
    # Anything else in English-like words: "October 21, 2022 7:39 PM EDT", "21 Oct 2022".
    # Only when the text carries a four-digit year, so "10:30" or "第3期" never become dates.
    if not re.search(r"(?<!\d)(19|20)\d\d(?!\d)", text) or re.search(r"[\u3400-\u9fff]", text):
        return None
    try:
        parsed: datetime = _dateutil_parser().parse(text, fuzzy=False, tzinfos=_ZONE_ABBREVIATIONS)
        return parsed
    except (ValueError, OverflowError, TypeError):
        return None


@cache
def _dateutil_parser() -> ModuleType:
    """dateutil's parser (~50 ms to import: only when a date needs it). An abbreviation it
    does not know ("CST") leaves the time in the outlet's zone, as a date without one; its
    warning about that would only reach the person running the tool as noise."""
    import warnings

    from dateutil import parser

    warnings.filterwarnings("ignore", category=parser.UnknownTimezoneWarning)
    return parser


# Zone abbreviations that name one offset only ("CST" is both US Central and China: not here,
# so it is read in the outlet's own zone). Seconds east of UTC, as dateutil takes them.
_ZONE_ABBREVIATIONS = {
    name: hours * 3600
    for name, hours in (
        ("EST", -5), ("EDT", -4), ("MST", -7), ("MDT", -6), ("PST", -8), ("PDT", -7),
        ("BST", 1), ("CET", 1), ("CEST", 2), ("HKT", 8), ("JST", 9), ("KST", 9),
    )
}  # fmt: skip


# The dialects, in the order they are tried. One line each.
DIALECTS: tuple[tuple[str, Callable[[str, tzinfo], datetime | None]], ...] = (
    ("iso8601", _iso8601),
    ("rfc2822", _rfc2822),
    ("cjk", _cjk),
    ("numeric", _numeric),
    ("dotted", _dotted),
    ("dateutil", _dateutil),
)


# Each date line is parsed twice: by the adapter (the publication date) and by the cleaner's
# date_line rule (is the first block a date?), one right after the other in the same process.
# The second parse is a cache hit: date_line 40 -> ~15 us an item (perf-tools/stages.py).
@lru_cache(maxsize=256)
def parse_date(text: str, tz: tzinfo = UTC) -> datetime | None:
    """The instant ``text`` names, in UTC, or None when it is not (only) a date.

    A value without a zone is taken to be in ``tz``, the outlet's own zone. Pure, so its
    results are cached (datetimes are immutable).
    """
    text = _clean(text)
    if not text or len(text) > MAX_DATE_TEXT:
        return None
    text = _LABEL.sub("", text, count=1)
    if (zone := _ZONE_WORDS.search(text)) is not None:
        text = text[: zone.start()]
        tz = _CHINA_TIME  # Beijing, Taipei and Hong Kong keep the same time, UTC+8
    for _name, dialect in DIALECTS:
        dt = dialect(text, tz)
        if dt is None:
            continue
        if not _MIN_YEAR <= dt.year <= _MAX_YEAR:
            return None
        if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
            dt = dt.replace(tzinfo=tz)
        try:
            return dt.astimezone(UTC)
        except (ValueError, OverflowError):  # an offset no zone has ("+9999"): not a date
            return None
    return None


def from_epoch_ms(ms: int) -> datetime | None:
    """An archive timestamp (``<!--1666382342000-->``) as UTC, or None when out of range."""
    try:
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return dt if _MIN_YEAR <= dt.year <= _MAX_YEAR else None


def coerce(value: object, tz: tzinfo = UTC) -> datetime | None:
    """A front-matter value (string, or a date YAML already parsed) as UTC, or None."""
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=tz)
        return dt.astimezone(UTC) if _MIN_YEAR <= dt.year <= _MAX_YEAR else None
    if hasattr(value, "year") and hasattr(value, "month") and hasattr(value, "day"):
        # A bare YAML date (2022-02-13): midnight in the outlet's zone.
        try:
            dt = datetime(value.year, value.month, value.day, tzinfo=tz)
        except (TypeError, ValueError):
            return None
        return dt.astimezone(UTC) if _MIN_YEAR <= dt.year <= _MAX_YEAR else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value != value or value in (float("inf"), float("-inf")):  # YAML .nan, .inf
            return None
        # Epoch seconds or milliseconds.
        return from_epoch_ms(int(value * 1000 if value < 10**11 else value))
    if isinstance(value, str):
        return parse_date(value, tz)
    return None


def iso(dt: datetime) -> str:
    """The one text form of an instant used in the store and in output: RFC 3339, UTC, 'Z'."""
    dt = dt.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
