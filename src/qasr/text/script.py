"""What a character is, by script: the test that decides spacing and units across qasr.

CJK ideographs and kana are units by themselves and are written without spaces, so joining two
segments, splitting a transcript into the aligner's units and guessing a benchmark's language all
ask the same question: `is_cjk`.
"""

from __future__ import annotations

import unicodedata

# Upstream's is_cpt_cjk ranges (ideographs), plus kana: Japanese has no spaces either.
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F), (0x20000, 0x2A6DF), (0x2A700, 0x2CEAF),
)  # fmt: skip


def is_cjk(ch: str) -> bool:
    """True for a character that is a unit by itself (a CJK ideograph or a kana letter)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES) and unicodedata.category(ch)[0] in "LN"
