"""Carry word times from the text that was aligned onto the text after ITN and OpenCC.

Alignment runs on the raw transcript ("一三八零零"), because that is what was said; ITN and OpenCC
then change characters ("13800", "電話"). The mapping rule, applied once per post-processing step:

1. Characters are matched between the old and the new text with `difflib.SequenceMatcher`
   (no junk heuristic). Equal blocks map one to one.
2. A replaced block of the same length maps position by position (OpenCC: 电话 -> 電話;
   ITN of digit strings: 一三八 -> 138). A replaced block of another length maps proportionally:
   new character k of m covers old characters ``floor(k n / m) .. ceil((k + 1) n / m)``
   (一百二十三 -> 123). An inserted character maps to the empty span where it was inserted.
3. The new text is split into units by the aligner's own rule (`unit_spans`), and each new unit
   spans from the earliest start to the latest end of the old units its characters map onto.
   A unit that maps onto no old unit (pure insertion) takes the instant where it was inserted:
   the end of the old unit before it (or the start of the one after).

So "我的电话号码是一三八零零一三八零零零" aligned per character becomes "我的電話號碼是13800138000"
with 我..是 keeping their own times and the number spanning from 一's start to the last 零's end.
Composing steps (ITN, then OpenCC) composes the mappings, because each step's output is aligned.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import replace
from difflib import SequenceMatcher

from qasr.pipeline.align import AlignedUnit, Alignment, unit_spans


def char_map(old: str, new: str) -> list[tuple[int, int]]:
    """For each character of ``new``, the span ``[a, b)`` of ``old`` it came from (empty if inserted)."""
    out: list[tuple[int, int]] = []
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        n, m = i2 - i1, j2 - j1
        if tag == "equal" or (tag == "replace" and n == m):
            out.extend((i1 + k, i1 + k + 1) for k in range(m))
        elif tag == "replace":
            for k in range(m):
                a = i1 + (k * n) // m
                b = i1 + -((-(k + 1) * n) // m)
                out.append((a, max(b, a + 1)))
        elif tag == "insert":
            out.extend((i1, i1) for _ in range(m))
        # "delete": characters of old with no counterpart in new; nothing to emit
    return out


def remap(alignment: Alignment, new_text: str) -> Alignment:
    """The same alignment over ``new_text`` (a post-processed version of ``alignment.text``)."""
    if new_text == alignment.text:
        return alignment
    cmap = char_map(alignment.text, new_text)
    old = alignment.units
    starts = [u.char_start for u in old]
    ends = [u.char_end for u in old]
    units: list[AlignedUnit] = []
    for a, b in unit_spans(new_text):
        lo = min(cmap[k][0] for k in range(a, b))
        hi = max(cmap[k][1] for k in range(a, b))
        i = max(0, bisect.bisect_right(starts, lo) - 1)
        hit: list[AlignedUnit] = []
        while i < len(old) and old[i].char_start < hi:
            if old[i].char_end > lo:
                hit.append(old[i])
            i += 1
        if hit:
            start, end = min(u.start for u in hit), max(u.end for u in hit)
        else:
            before = bisect.bisect_right(ends, lo) - 1  # the last old unit that ends where this was inserted
            if before >= 0:
                start = end = old[before].end
            elif old:
                start = end = old[0].start
            else:
                start = end = 0.0
        units.append(AlignedUnit(new_text[a:b], start, end, a, b))
    return replace(alignment, text=new_text, units=tuple(units))


def apply(alignment: Alignment, transform: Callable[[str], str]) -> Alignment:
    """Run a text transform (ITN, OpenCC, ...) on the aligned text and carry the times over."""
    return remap(alignment, transform(alignment.text))
