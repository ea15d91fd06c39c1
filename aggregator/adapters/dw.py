"""DW Chinese (德国之声) as full-text mirrors archive it (seeds/dw/).

Quirks: the body opens with ``<div><i><br>2022-01-10T04:58:40.481Z</i></div>`` (ISO 8601, UTC);
article URLs end in ``/a-60376336``, DW's article id; every article ends with a copyright notice
("© 2022年德国之声版权声明：本文所有内容受到著作权法保护……"), sometimes split over two tags or two
paragraphs, in Simplified or Traditional script, and may be followed by its call to follow it
on Instagram ("DW中文有Instagram！…关注我们！"). The opening "（德国之声中文网）" is the article's
dateline and is kept.
"""

import re

from aggregator.adapters.base import Profile
from aggregator.clean.rules import NoticeBlock

PROFILE = Profile(
    key="dw",
    outlet="德国之声 DW 中文",
    homepage="https://www.dw.com/zh/",
    description="DW Chinese (dw.com/zh) full-text mirror archives",
    hosts=("dw.com",),
    lang="zh-Hans",
    tz="Europe/Berlin",
    article_id=re.compile(r"/a-(\d{5,})(?:$|[/.])"),
    rules=(
        NoticeBlock(
            "dw.copyright",
            re.compile(
                r"^(?:©|\(c\))?\s*(?:\d{4}\s*年?\s*)?(?:德国之声|德國之聲)\s*(?:版权声明|版權聲明)"
            ),
            needles=("版权声明", "版權聲明"),
            continuation=re.compile(
                r"^本文所有(?:内容|內容)受到(?:著作权法|著作權法)(?:保护|保護)"
            ),
        ),
        # DW's call to follow it ("DW中文有Instagram！若您有安全上的考量，建议使用VPN浏览。
        # 欢迎点击这里关注我们！"), before or after the notice, in either script; "DW中文在
        # Facebook上发布的一段视频…" is the article's sentence.
        NoticeBlock(
            "dw.social",
            re.compile(
                r"^DW\s*中文(?:网|網)?\s*有\s*"
                r"(?:Instagram|Facebook|Telegram|YouTube|Twitter|X|Threads|脸书|臉書|推特)\s*[!！]",
                re.IGNORECASE,
            ),
            needles=("DW中文有", "DW 中文有", "DW中文网有", "DW中文網有"),
        ),
    ),
)
