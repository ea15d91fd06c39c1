"""VOA Chinese (美国之音) as full-text mirrors archive it (seeds/voa/).

Quirks: the body opens with ``<div><i>Fri, 21 Oct 2022 19:39:42 GMT</i></div>`` (RFC 2822, GMT);
article URLs end in the numeric article id (``/a/<slug>-20221021/6800196.html``), which stays
the same when VOA re-slugs a headline; pictures come through images.weserv.nl with a caption in
``<div><small>``; paragraphs are often one ``<p>`` split by ``<br /><br />``. The closing credit
line ("本文参考了法新社的信息") is the article's own attribution and is kept.
"""

import re

from aggregator.adapters.base import Profile

PROFILE = Profile(
    key="voa",
    outlet="美国之音 VOA Chinese",
    homepage="https://www.voachinese.com/",
    description="VOA Chinese (voachinese.com) full-text mirror archives",
    hosts=("voachinese.com", "voanews.com", "voacantonese.com"),
    lang="zh-Hans",
    # Undated times in VOA copy are Washington time; its date lines carry GMT explicitly.
    tz="America/New_York",
    article_id=re.compile(r"/(?:a|amp)/(?:[^/]+/)*(\d{5,})\.html$"),
)
