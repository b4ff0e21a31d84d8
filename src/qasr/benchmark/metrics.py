"""Error rates the way the decision needs them: the same normalisation on both sides, summed over files.

Chinese is scored after the project's own post-processing chain on *both* the reference and the
hypothesis: ITN (一三八 -> 138) and then OpenCC to Simplified (t2s), so that a recogniser that writes
digits or Traditional characters is not charged for a form the reference spells another way. Then
both sides go through the lab's normalisation (`qasr.lab.accuracy.normalize`: NFKC, lower case,
punctuation dropped) and CER counts characters with spaces removed. English gets that
normalisation and WER over words. jiwer does the alignment.

A corpus rate is total errors over total reference length (what jiwer computes for a list), not a
mean of per-file rates, so a long file weighs what it holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def normalise(text: str, language: str) -> str:
    """The text as scored: for ``"zh"`` ITN, OpenCC t2s, normalisation, no spaces; else normalisation."""
    from qasr.lab.accuracy import normalize

    if language == "zh":
        from qasr.text.post import postprocess

        return normalize(postprocess(text, itn=True, opencc="t2s", language="zh")).replace(" ", "")
    return normalize(text)


@dataclass(frozen=True)
class ErrorCount:
    """Substitutions + deletions + insertions against the reference's length (words or characters)."""

    errors: int
    length: int

    @property
    def rate(self) -> float | None:
        return self.errors / self.length if self.length else None

    def __add__(self, other: ErrorCount) -> ErrorCount:
        return ErrorCount(self.errors + other.errors, self.length + other.length)


def count_errors(reference: str, hypothesis: str, language: str) -> ErrorCount:
    """Errors of one hypothesis: characters for ``"zh"``, words otherwise (after `normalise`)."""
    import jiwer

    ref, hyp = normalise(reference, language), normalise(hypothesis, language)
    if not ref:
        return ErrorCount(0, 0)
    out = jiwer.process_characters(ref, hyp) if language == "zh" else jiwer.process_words(ref, hyp)
    return ErrorCount(out.substitutions + out.deletions + out.insertions, out.substitutions + out.deletions + out.hits)


def corpus_rate(pairs: Iterable[tuple[str, str]], language: str) -> float | None:
    """Total errors over total length for (reference, hypothesis) pairs; None when there are none."""
    total = ErrorCount(0, 0)
    for reference, hypothesis in pairs:
        total = total + count_errors(reference, hypothesis, language)
    return total.rate
