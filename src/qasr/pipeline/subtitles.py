"""Cut aligned units into subtitle cues: lines of bounded width, cues of bounded length and duration.

The rules (`CueRules`; docs/subtitles.md explains each):

* Text comes from the original transcript, not from the units: each unit carries the punctuation
  that follows it up to the next space (and an opening quote or bracket before it), and words are
  joined with a space only where the transcript had one (so Chinese stays unspaced).
* Width is counted in terminal columns: East Asian wide and full-width characters count 2, so the
  default 42 columns hold 42 Latin characters or 21 Chinese characters per line.
* A cue ends after sentence-final punctuation, before a pause longer than ``max_pause``, and when
  the next word would need more than ``max_lines`` lines or make it longer than ``max_duration``.
  When it must end for width or duration, it ends after its last clause punctuation (comma, colon,
  ...) if that keeps at least a third of its text, so cues break where the speaker's sentence does.
* Lines inside a cue break between words, choosing the break that balances the lines best,
  preferring a break after punctuation.
* Timing: a cue runs from its first word's start to its last word's end, stretched to
  ``min_duration`` where the next cue and the audio's end leave room, and ends at least
  ``min_gap`` before the next cue starts where the cues leave room for that. Cues never overlap,
  never go backwards and never pass the audio's end.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace

from qasr.pipeline.align import AlignedUnit, Alignment

SENTENCE_END = frozenset(".!?。！？…‼⁇⁈⁉;；")
CLAUSE_END = frozenset(",，、:：;；—–-)）」』\"”'’")
_OPENERS = frozenset("\"'“‘(（「『[【《〈¿¡")


@dataclass(frozen=True)
class CueRules:
    """Limits for cutting cues; defaults follow common broadcast guidelines (42 columns, 2 lines, 7 s)."""

    max_line_width: int = 42
    max_lines: int = 2
    max_duration: float = 7.0
    min_duration: float = 0.8
    min_gap: float = 0.08
    max_pause: float = 1.5

    def __post_init__(self) -> None:
        if self.max_line_width < 4 or self.max_lines < 1:
            raise ValueError("a cue needs at least 1 line of at least 4 columns")
        if self.max_duration <= 0 or self.min_duration < 0 or self.min_gap < 0 or self.max_pause <= 0:
            raise ValueError("cue durations and gaps must be positive")


@dataclass(frozen=True)
class Cue:
    """One subtitle: its lines of text, its time in seconds, and the words it holds."""

    start: float
    end: float
    lines: tuple[str, ...]
    words: tuple[AlignedUnit, ...] = ()
    aligned: bool = True
    plain: str = ""  # the text on one line, spaced as the transcript was (no space between CJK words)

    def __post_init__(self) -> None:
        if not self.plain:
            object.__setattr__(self, "plain", " ".join(self.lines))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class Piece:
    """A unit with the text around it that travels with it, and whether a space precedes it."""

    text: str
    unit: AlignedUnit
    space_before: bool

    @property
    def ends_sentence(self) -> bool:
        return bool(self.text) and self.text.rstrip("\"'”’)）」』")[-1:] in SENTENCE_END

    @property
    def ends_clause(self) -> bool:
        return bool(self.text) and (self.text[-1] in CLAUSE_END or self.ends_sentence)


def width(text: str) -> int:
    """Display columns: wide/full-width characters count 2, combining marks 0."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def pieces(alignment: Alignment) -> list[Piece]:
    """Each unit with its surrounding punctuation from the transcript (see the module doc)."""
    text, units = alignment.text, alignment.units
    out: list[Piece] = []
    lead, prev_spaced = "", False
    for i, u in enumerate(units):
        nxt = units[i + 1].char_start if i + 1 < len(units) else len(text)
        gap = text[u.char_end : nxt]
        # Trailing text up to the first space belongs to this unit; after the last space, to the next.
        if any(c.isspace() for c in gap):
            first_space = next(k for k, c in enumerate(gap) if c.isspace())
            last_space = max(k for k, c in enumerate(gap) if c.isspace())
            trail, next_lead, spaced = gap[:first_space], gap[last_space + 1 :], True
            # Punctuation standing alone between spaces (" -- ") stays with the word before it.
            middle = gap[first_space:last_space + 1].split()
            if middle:
                trail = trail + " " + " ".join(middle)
        else:
            trail, next_lead, spaced = gap, "", False
            # An opening quote or bracket glued before the next CJK unit belongs to it.
            k = len(trail)
            while k > 0 and trail[k - 1] in _OPENERS:
                k -= 1
            trail, next_lead = trail[:k], trail[k:]
        before = text[: u.char_start] if i == 0 else ""
        head = (before.strip() if i == 0 else lead)
        out.append(Piece(head + text[u.char_start : u.char_end] + trail, u, space_before=i > 0 and prev_spaced))
        lead, prev_spaced = next_lead, spaced
    return out


def join(ps: Sequence[Piece]) -> str:
    return "".join((" " if p.space_before and k else "") + p.text for k, p in enumerate(ps))


def _line_widths(ps: Sequence[Piece]) -> tuple[list[int], list[int]]:
    """Prefix sums of piece widths and of the spaces between pieces, for O(1) line widths."""
    wsum, ssum = [0], [0]
    for p in ps:
        wsum.append(wsum[-1] + width(p.text))
        ssum.append(ssum[-1] + (1 if p.space_before else 0))
    return wsum, ssum


def layout(ps: Sequence[Piece], rules: CueRules) -> list[str] | None:
    """Best split of ``ps`` into at most ``max_lines`` lines of at most ``max_line_width``; None if impossible.

    Dynamic programming over the breaks between pieces: minimise the sum of squared free columns
    per line (balanced lines), with a bonus for a line that ends in punctuation.
    """
    n = len(ps)
    if n == 0:
        return []
    wsum, ssum = _line_widths(ps)

    def line_width(j: int, i: int) -> int:  # pieces j..i-1 on one line; no space before the first
        return wsum[i] - wsum[j] + ssum[i] - ssum[j + 1]

    limit = rules.max_line_width
    if line_width(0, n) <= limit:
        return [join(ps)]
    inf = float("inf")
    # best[k][i]: cost of laying out ps[:i] in k lines; back[k][i]: where the last line began.
    best = [[inf] * (n + 1) for _ in range(rules.max_lines + 1)]
    back = [[0] * (n + 1) for _ in range(rules.max_lines + 1)]
    best[0][0] = 0.0
    for k in range(1, rules.max_lines + 1):
        for i in range(1, n + 1):
            for j in range(i - 1, -1, -1):
                w = line_width(j, i)
                if w > limit:
                    break  # earlier starts only make the line wider
                if best[k - 1][j] == inf:
                    continue
                free = limit - w
                cost = best[k - 1][j] + free * free - (40 if i < n and ps[i - 1].ends_clause else 0)
                if cost < best[k][i]:
                    best[k][i], back[k][i] = cost, j
    options = [(best[k][n], k) for k in range(1, rules.max_lines + 1) if best[k][n] < inf]
    if not options:
        return None
    _, k = min(options)
    lines, i = [], n
    while k > 0:
        j = back[k][i]
        lines.append(join(ps[j:i]))
        i, k = j, k - 1
    return lines[::-1]


def lines_needed(ps: Sequence[Piece], rules: CueRules) -> int | None:
    """How many lines ``ps`` needs at the least (greedy filling is optimal for that); None if a word is too wide."""
    lines, used = 0, 0
    for p in ps:
        w = width(p.text)
        if w > rules.max_line_width:
            return None
        if lines and used + (1 if p.space_before else 0) + w <= rules.max_line_width:
            used += (1 if p.space_before else 0) + w
        else:
            lines, used = lines + 1, w
    return lines


def _fits(ps: Sequence[Piece], rules: CueRules) -> bool:
    needed = lines_needed(ps, rules)
    return needed is not None and needed <= rules.max_lines and ps[-1].unit.end - ps[0].unit.start <= rules.max_duration


def _break_point(ps: Sequence[Piece]) -> int:
    """Where to end a cue that cannot take the next word: after its last clause punctuation, unless
    that leaves less than a third of the cue's text in it (then simply before the next word)."""
    least = width(join(ps)) / 3
    for k in range(len(ps) - 1, 0, -1):
        if ps[k - 1].ends_clause and width(join(ps[:k])) >= least:
            return k
    return len(ps)


def group(ps: Sequence[Piece], rules: CueRules) -> list[list[Piece]]:
    """Group pieces into cues (the module doc lists the rules)."""
    cues: list[list[Piece]] = []
    cur: list[Piece] = []
    for p in ps:
        if cur and p.unit.start - cur[-1].unit.end > rules.max_pause:
            cues.append(cur)
            cur = []
        while cur and not _fits([*cur, p], rules):
            k = _break_point(cur)
            cues.append(cur[:k])
            cur = cur[k:]
        cur.append(p)
        if p.ends_sentence:
            cues.append(cur)
            cur = []
    if cur:
        cues.append(cur)
    return cues


def _lines(ps: Sequence[Piece], rules: CueRules) -> tuple[str, ...]:
    laid = layout(ps, rules)
    return tuple(laid) if laid is not None else (join(ps),)  # one word wider than a line: leave it whole


def cut(alignment: Alignment, rules: CueRules | None = None) -> list[Cue]:
    """Cues for one alignment, with raw times (call `fix_timing` on the whole list)."""
    rules = rules or CueRules()
    return [
        Cue(
            start=g[0].unit.start,
            end=max(g[-1].unit.end, g[0].unit.start),
            lines=_lines(g, rules),
            words=tuple(p.unit for p in g),
            aligned=alignment.aligned,
            plain=join(g),
        )
        for g in group(pieces(alignment), rules)
    ]


def fix_timing(cues: Sequence[Cue], duration: float, rules: CueRules | None = None) -> list[Cue]:
    """Make times monotonic, non-overlapping and inside ``[0, duration]``; apply min duration and gap."""
    rules = rules or CueRules()
    out: list[Cue] = []
    floor = 0.0
    for i, c in enumerate(cues):
        start = min(max(c.start, floor), duration)
        nxt = min(max(cues[i + 1].start, start), duration) if i + 1 < len(cues) else duration
        end = min(max(c.end, start), nxt)
        end = max(end, min(start + rules.min_duration, nxt - rules.min_gap if i + 1 < len(cues) else duration))
        if i + 1 < len(cues) and nxt - end < rules.min_gap:
            end = max(start, nxt - rules.min_gap) if nxt - start > rules.min_gap else min(end, nxt)
        out.append(replace(c, start=start, end=end))
        floor = end
    return out
