"""WER and CER against a reference transcript, with the normalisation written down.

Both texts are lower-cased, punctuation (ASCII and CJK) is dropped and white space folded; WER counts
words, CER counts characters without spaces (the meaningful figure for Chinese). jiwer does the
alignment.
"""

from __future__ import annotations

import re
import unicodedata

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def error_rates(hypothesis: str, reference: str | None) -> tuple[float | None, float | None]:
    """(WER, CER), or (None, None) without a reference. An empty hypothesis scores 1.0."""
    if not reference:
        return None, None
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return None, None
    wer = jiwer.wer(ref, hyp) if hyp else 1.0
    ref_chars, hyp_chars = ref.replace(" ", ""), hyp.replace(" ", "")
    cer = jiwer.cer(ref_chars, hyp_chars) if hyp_chars else 1.0
    return round(float(wer), 4), round(float(cer), 4)
