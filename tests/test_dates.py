"""Date dialects, one row each: the text as outlets write it and the instant it names."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from aggregator.dates import parse_date

NY, BERLIN = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
ROWS = [
    # (text, outlet zone, expected UTC instant or None)
    ("Fri, 21 Oct 2022 19:39:42 GMT", UTC, datetime(2022, 10, 21, 19, 39, 42, tzinfo=UTC)),  # VOA
    ("2022-01-10T04:58:40.481Z", UTC, datetime(2022, 1, 10, 4, 58, 40, 481000, tzinfo=UTC)),  # DW
    ("2022-10-21 19:39", NY, datetime(2022, 10, 21, 23, 39, tzinfo=UTC)),  # naive: outlet zone
    ("2022年10月21日 19:39", NY, datetime(2022, 10, 21, 23, 39, tzinfo=UTC)),
    ("2022年1月10日 星期一 下午3:05", BERLIN, datetime(2022, 1, 10, 14, 5, tzinfo=UTC)),
    ("2022年10月21日 19:39 (北京时间)", NY, datetime(2022, 10, 21, 11, 39, tzinfo=UTC)),
    ("2022/07/10 05:58", BERLIN, datetime(2022, 7, 10, 3, 58, tzinfo=UTC)),  # summer time
    ("October 21, 2022 7:39 PM", NY, datetime(2022, 10, 21, 23, 39, tzinfo=UTC)),
    (
        "Fri,\u00a021 Oct 2022\u200b 19:39:42 GMT",
        UTC,
        datetime(2022, 10, 21, 19, 39, 42, tzinfo=UTC),
    ),
    # Dots with the year last are day first (DW), not 1 October.
    ("10.01.2022", BERLIN, datetime(2022, 1, 9, 23, 0, tzinfo=UTC)),
    ("10.01.2022 09:15", BERLIN, datetime(2022, 1, 10, 8, 15, tzinfo=UTC)),
    ("31.02.2022", BERLIN, None),
    # A label before the date, a zone in words after it.
    ("更新时间：2022年10月21日 19:39", NY, datetime(2022, 10, 21, 23, 39, tzinfo=UTC)),
    ("發布時間: 2022-10-21 19:39", NY, datetime(2022, 10, 21, 23, 39, tzinfo=UTC)),
    ("2022-10-21 19:39（北京时间）", NY, datetime(2022, 10, 21, 11, 39, tzinfo=UTC)),
    ("Updated: October 21, 2022 7:39 PM", NY, datetime(2022, 10, 21, 23, 39, tzinfo=UTC)),
    # A zone abbreviation with one meaning is that zone's, whatever the outlet's.
    ("October 21, 2022 7:39 PM EDT", BERLIN, datetime(2022, 10, 21, 23, 39, tzinfo=UTC)),
    ("21 Oct 2022 10:00 CEST", NY, datetime(2022, 10, 21, 8, 0, tzinfo=UTC)),
    # Not dates: a sentence, a bare time, a series number, a placeholder year.
    ("美国和俄罗斯最高国防官员星期五通了电话", UTC, None),
    ("10:30", UTC, None),
    ("第2022期", UTC, None),
    ("0001-01-01T00:00:00Z", UTC, None),
    ("", UTC, None),
]


@pytest.mark.parametrize(("text", "tz", "expected"), ROWS, ids=[r[0] or "empty" for r in ROWS])
def test_parse_date(text: str, tz: ZoneInfo, expected: datetime | None) -> None:
    assert parse_date(text, tz) == expected
