"""Chinese script detection: is a text written in Simplified or Traditional characters?

The only OpenCC import. Used by the adapters to give each item its right ``xml:lang``
(``zh-Hans`` or ``zh-Hant``). Pure and deterministic; the converters are built once.
"""

from __future__ import annotations

import re
from functools import cache

import opencc

# Enough text to decide: a title and the first paragraphs. Longer adds cost, not accuracy.
SAMPLE_CHARS = 600
_HAN = re.compile(r"[\u3400-\u9fff]")


@cache
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def detect(text: str) -> str | None:
    """``"zh-Hans"``, ``"zh-Hant"``, or None when the text has too few Han characters to tell.

    A character counts as Traditional when t2s changes it and as Simplified when s2t changes it;
    characters both scripts share count for neither. Mirrors mix a few Traditional forms into
    Simplified text (DW writes 於 and 後 in Simplified articles: seeds/dw/), so the majority wins.
    """
    sample = text[:SAMPLE_CHARS]
    if len(_HAN.findall(sample)) < 8:
        return None
    as_simplified = _converter("t2s").convert(sample)
    as_traditional = _converter("s2t").convert(sample)
    traditional = sum(1 for a, b in zip(sample, as_simplified, strict=False) if a != b)
    simplified = sum(1 for a, b in zip(sample, as_traditional, strict=False) if a != b)
    if traditional == simplified == 0:
        return None
    return "zh-Hant" if traditional > simplified else "zh-Hans"
