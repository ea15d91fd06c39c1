"""Chinese script detection: is a text written in Simplified or Traditional characters?

The only OpenCC import. Used by the adapters to give each item its right ``xml:lang``
(``zh-Hans`` or ``zh-Hant``). Pure and deterministic; the converters are built once.
"""

from __future__ import annotations

import re
from functools import cache

import opencc

# Enough Han characters to decide; more adds cost, not accuracy.
SAMPLE_HAN = 300
# Share of Han characters that t2s changes above which a text is Traditional. Simplified text
# scores near 0 (DW writes a few Traditional forms, 於 and 後, in Simplified articles:
# seeds/dw/ scores 0.005); Traditional text scores 0.2-0.4 (tests/data/*/ *traditional*).
TRADITIONAL_SHARE = 0.08
_NOT_HAN = re.compile(r"<[^>]*>|[^\u3400-\u9fff]+")


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def detect(text: str) -> str | None:
    """``"zh-Hans"``, ``"zh-Hant"``, or None when the text has too few Han characters to tell.

    ``text`` may be HTML: tags are ignored. Only the first SAMPLE_HAN Han characters are looked
    at, and converted once, Traditional to Simplified; the share that changes decides.
    """
    han = _NOT_HAN.sub("", text[: SAMPLE_HAN * 8])[:SAMPLE_HAN]
    if len(han) < 8:
        return None
    changed = sum(map(str.__ne__, han, _t2s().convert(han)))
    return "zh-Hant" if changed / len(han) >= TRADITIONAL_SHARE else "zh-Hans"
