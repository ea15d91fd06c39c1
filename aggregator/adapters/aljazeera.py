"""Al Jazeera Chinese (半岛电视台) as RSSHub's route delivers it, archived as posts with YAML
front-matter (seeds/aljazeera/).

Quirks: title, date (RFC 2822, GMT), categories, author and the lead image (``headimg``) are in
the front-matter; the body has no date line; pictures are WordPress ``<figure>`` blocks whose
caption ("(半岛电视台)") is loose text after the ``<img>``. The archive carries no article link,
so such items are identified by title and publication day (aggregator/dedupe.py). Its URLs carry
no numeric id, so a link, when present, is identified by its canonical form.
"""

from aggregator.adapters.base import Profile

PROFILE = Profile(
    key="aljazeera",
    outlet="半岛电视台 Al Jazeera 中文",
    homepage="https://chinese.aljazeera.net/",
    description="Al Jazeera Chinese (chinese.aljazeera.net) via RSSHub, posts with YAML front-matter",
    hosts=("aljazeera.net", "aljazeera.com"),
    lang="zh-Hans",
    tz="Asia/Qatar",
)
