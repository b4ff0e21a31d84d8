"""Forced alignment: audio plus its transcript in, one start/end time per word (or CJK character) out.

Why it is built this way (upstream chatllm.cpp 4a4310e, ``models/qwen.cpp``, measured here):

* **We split the transcript into units ourselves** and hand the engine those units joined by single
  spaces. Upstream only splits CJK ideographs into single-character units when the language is
  ``Chinese`` (not for Cantonese or Japanese), drops punctuation-only tokens but still reports a
  ``0..0`` entry for them, and lower-cases its echo in Chinese mode. Pre-splitting makes every
  language behave the same (each CJK character, kana included, is a unit; other words split on
  whitespace; punctuation is not sent), and makes the engine's entries correspond one to one with
  our units, which we check.
* **Output** is parsed from JSON in milliseconds (load the model with ``format=json``; upstream's SRT
  prints garbage times) and, for completeness, from upstream's SRT, which is numbered from 0.
* **Repair**: the times are clamped to the audio's duration, made monotonic (the longest
  non-decreasing run is kept and the rest interpolated, as upstream does before printing), and runs
  of zero-length units stacked on one instant are spread into 80 ms slots (one timestamp bin) where
  there is room. Every changed unit is counted, so callers can say when an alignment is unreliable.

Each unit keeps its character span in the transcript: subtitles take punctuation and spacing from
the original text, and `qasr.pipeline.textmap` carries times onto post-processed text through it.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from qasr.errors import EngineError, UsageError
from qasr.text.languages import ALIGNER_LANGUAGES, aligner_language  # noqa: F401 - part of this module's API
from qasr.text.script import is_cjk

#: Upstream's timestamp resolution (``timestamp_segment_time`` of the Qwen3-ForcedAligner config).
TIME_BIN_SECONDS = 0.08

#: More words per second of audio than this cannot be the transcript of that audio.
MAX_UNITS_PER_SECOND = 15.0


@dataclass(frozen=True)
class AlignedUnit:
    """One word (or CJK character) with its time in seconds and its span in the transcript."""

    text: str
    start: float
    end: float
    char_start: int = 0
    char_end: int = 0

    def shifted(self, seconds: float) -> AlignedUnit:
        return replace(self, start=self.start + seconds, end=self.end + seconds)


@dataclass(frozen=True)
class Alignment:
    """A transcript and its aligned units; ``repaired`` counts units whose times we had to change."""

    text: str
    units: tuple[AlignedUnit, ...]
    language: str
    audio_seconds: float
    repaired: int = 0
    clamped: int = 0
    aligned: bool = True  # False: times spread evenly, not measured (see `even_alignment`)
    raw: str = field(default="", compare=False, repr=False)

    @property
    def unreliable(self) -> bool:
        """True when at least half of the units needed repair: wrong transcript or language, or a broken model."""
        return bool(self.units) and self.repaired * 2 >= len(self.units)

    def shifted(self, seconds: float) -> Alignment:
        return replace(self, units=tuple(u.shifted(seconds) for u in self.units))

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "language": self.language,
            "audio_seconds": round(self.audio_seconds, 3),
            "aligned": self.aligned,
            "repaired": self.repaired,
            "clamped": self.clamped,
            "words": [{"text": u.text, "start": round(u.start, 3), "end": round(u.end, 3)} for u in self.units],
        }


# -- languages --------------------------------------------------------------------------------


def guess_language(text: str) -> str:
    """The aligner language a transcript's script suggests: kana Japanese, Hangul Korean, Han Chinese,
    mostly Cyrillic Russian, else English.

    Good enough because our pre-split transcript leaves the language little to do upstream (it only
    steers upstream's own word splitting); pass the language when you know it.
    """
    counts = {"Japanese": 0, "Korean": 0, "Chinese": 0, "Russian": 0, "Latin": 0}
    for ch in text:
        cp = ord(ch)
        if 0x3040 <= cp <= 0x30FF:
            counts["Japanese"] += 1
        elif 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF:
            counts["Korean"] += 1
        elif is_cjk(ch):
            counts["Chinese"] += 1
        elif 0x0400 <= cp <= 0x04FF:
            counts["Russian"] += 1
        elif ch.isalpha():
            counts["Latin"] += 1
    if counts["Japanese"]:
        return "Japanese"
    if counts["Korean"] and counts["Korean"] >= counts["Chinese"]:
        return "Korean"
    if counts["Chinese"]:
        return "Chinese"
    return "Russian" if counts["Russian"] > counts["Latin"] else "English"


# -- units of a text --------------------------------------------------------------------------

_TOKEN = re.compile(r"\S+")


def _is_word_char(ch: str) -> bool:
    """Letters, numbers and combining marks: what a unit may begin and end with."""
    return unicodedata.category(ch)[0] in "LNM"


def _is_kept(ch: str) -> bool:
    """What upstream keeps of a word when it matches text (``is_kept_char``): letters, numbers, apostrophe."""
    return ch == "'" or unicodedata.category(ch)[0] in "LN"


def comparable(text: str) -> str:
    """A unit's text as upstream compares it: lower case, letters, numbers and apostrophes only."""
    return "".join(ch for ch in text.lower() if _is_kept(ch))


def unit_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the units of ``text``, in order.

    Whitespace separates words; every CJK character is a unit of its own; leading and trailing
    punctuation is not part of a unit (it stays in the text); pieces with no letter or number are
    not units at all.
    """
    spans: list[tuple[int, int]] = []
    for token in _TOKEN.finditer(text):
        run = token.start()
        for i in range(token.start(), token.end()):
            if is_cjk(text[i]):
                spans.extend(_core(text, run, i))
                spans.append((i, i + 1))
                run = i + 1
        spans.extend(_core(text, run, token.end()))
    return spans


def _core(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The span of ``text[start:end]`` without leading/trailing punctuation; none if nothing is left."""
    while start < end and not _is_word_char(text[start]):
        start += 1
    while end > start and not _is_word_char(text[end - 1]):
        end -= 1
    if start < end and any(unicodedata.category(c)[0] in "LN" for c in text[start:end]):
        return [(start, end)]
    return []


# -- the engine's output ----------------------------------------------------------------------

_SRT_TIME = r"(\d+):(\d{2}):(\d{2})[,.](\d{3})"
_SRT_BLOCK = re.compile(rf"^\s*\d+\s*\n\s*{_SRT_TIME}\s*-->\s*{_SRT_TIME}\s*\n(.*?)(?:\n\s*\n|\Z)", re.S | re.M)


def parse_aligner_output(raw: str) -> list[tuple[str, float, float]]:
    """``(text, start_seconds, end_seconds)`` per entry of the aligner's JSON (ms) or SRT output."""
    body = raw.strip()
    if not body:
        raise EngineError("the aligner printed nothing")
    if body.startswith("["):
        try:
            data = json.loads(body)
            return [(str(e["text"]), float(e["start"]) / 1000.0, float(e["end"]) / 1000.0) for e in data]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise EngineError(f"the aligner printed unreadable JSON: {body[:120]!r}") from exc
    entries = []
    for m in _SRT_BLOCK.finditer(body + "\n"):
        h1, m1, s1, ms1, h2, m2, s2, ms2 = (int(g) for g in m.groups()[:8])
        entries.append((m.group(9).strip(), h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000))
    if not entries:
        raise EngineError(f"the aligner printed neither JSON nor SRT: {body[:120]!r}")
    return entries


# -- repair -----------------------------------------------------------------------------------


def _monotonic(points: list[float]) -> list[float]:
    """Keep the longest non-decreasing subsequence; interpolate the others between their neighbours.

    The same rule upstream applies to its raw bins (``fix_timestamp``), so a real model's output is
    left as it is and only a broken one changes.
    """
    n = len(points)
    if n == 0:
        return []
    # O(n log n) longest non-decreasing subsequence with parent links.
    import bisect

    tails: list[float] = []
    tail_idx: list[int] = []
    parent = [-1] * n
    for i, v in enumerate(points):
        k = bisect.bisect_right(tails, v)
        if k == len(tails):
            tails.append(v)
            tail_idx.append(i)
        else:
            tails[k] = v
            tail_idx[k] = i
        parent[i] = tail_idx[k - 1] if k > 0 else -1
    keep = [False] * n
    i = tail_idx[-1]
    while i != -1:
        keep[i] = True
        i = parent[i]
    out = list(points)
    i = 0
    while i < n:
        if keep[i]:
            i += 1
            continue
        j = i
        while j < n and not keep[j]:
            j += 1
        left = out[i - 1] if i > 0 else None
        right = out[j] if j < n else None
        for k in range(i, j):
            if left is None:
                out[k] = right  # type: ignore[assignment]
            elif right is None:
                out[k] = left
            else:
                out[k] = left + (right - left) * (k - i + 1) / (j - i + 1)
        i = j
    return out


def _spread_stacks(times: list[tuple[float, float]], duration: float, slot: float) -> list[tuple[float, float]]:
    """Give zero-length units stacked on one instant a slot each, inside the room their neighbours leave."""
    out = list(times)
    n = len(out)
    i = 0
    while i < n:
        s, e = out[i]
        if e > s:
            i += 1
            continue
        j = i
        while j < n and out[j][0] == out[j][1] == s:
            j += 1
        lo = out[i - 1][1] if i > 0 else 0.0
        hi = out[j][0] if j < n else duration
        room = max(0.0, hi - lo)
        span = min((j - i) * slot, room)
        if span > 0:
            a = max(lo, min(s, hi - span))
            width = span / (j - i)
            for k in range(i, j):
                out[k] = (a + (k - i) * width, a + (k - i + 1) * width)
        i = j
    return out


def repair_times(
    times: Sequence[tuple[float, float]], duration: float, slot: float = TIME_BIN_SECONDS
) -> tuple[list[tuple[float, float]], int, int]:
    """Clamp to ``[0, duration]``, make monotonic, then spread stacked zero-length units.

    Returns (times, how many units clamping or reordering changed, how many lay outside the audio).
    Spreading a stack is not counted: a real model puts short neighbouring words in one 80 ms bin.
    """
    clamped = sum(1 for s, e in times if not (0.0 <= s <= duration and 0.0 <= e <= duration))
    flat = _monotonic([min(max(t, 0.0), duration) for pair in times for t in pair])
    pairs = [(flat[2 * k], flat[2 * k + 1]) for k in range(len(times))]
    changed = sum(1 for a, b in zip(times, pairs) if abs(a[0] - b[0]) > 1e-9 or abs(a[1] - b[1]) > 1e-9)
    return _spread_stacks(pairs, duration, slot), changed, clamped


# -- putting it together ----------------------------------------------------------------------


def check_plausible(spans: Sequence[tuple[int, int]], audio_seconds: float, text: str) -> None:
    """Refuse a transcript that cannot belong to the audio (nothing to align, or far too many words)."""
    if not spans:
        raise UsageError(f"the transcript has no words to align (only punctuation or spaces): {text[:60]!r}")
    limit = int(MAX_UNITS_PER_SECOND * audio_seconds) + 10
    if len(spans) > limit:
        raise UsageError(
            f"the transcript does not match the audio: {len(spans)} words for {audio_seconds:.1f} s "
            f"(at most about {limit} are possible)"
        )


def build_alignment(
    text: str, spans: Sequence[tuple[int, int]], raw: str, language: str, audio_seconds: float
) -> Alignment:
    """Match the engine's entries to our units (one to one, checked), then repair the times."""
    entries = parse_aligner_output(raw)
    if len(entries) != len(spans):
        raise EngineError(
            f"the aligner returned {len(entries)} units for the {len(spans)} words it was given; "
            "its output does not match the transcript"
        )
    for (etext, _, _), (a, b) in zip(entries, spans):
        if comparable(etext) != comparable(text[a:b]):
            raise EngineError(f"the aligner's unit {etext!r} does not match the transcript's {text[a:b]!r}")
    times, changed, clamped = repair_times([(s, e) for _, s, e in entries], audio_seconds)
    units = tuple(AlignedUnit(text[a:b], s, e, a, b) for (a, b), (s, e) in zip(spans, times))
    return Alignment(text, units, language, audio_seconds, repaired=changed, clamped=clamped, raw=raw)


def engine_text(transcript: str, spans: Sequence[tuple[int, int]] | None = None) -> str:
    """What the aligner is given for ``transcript``: our units joined by single spaces, so the
    engine's own word split (spaces; one unit per CJK character) finds exactly our units."""
    return " ".join(transcript[a:b] for a, b in (unit_spans(transcript) if spans is None else spans))


def align(model: object, audio: object, transcript: str, *, language: str | None = None) -> Alignment:
    """Align ``transcript`` to ``audio`` with a loaded ForcedAligner `Model` (``format=json``).

    ``audio`` is a path, a `qasr.audio.Audio` or 16 kHz samples; ``language`` defaults to the
    model's ``--set language``. The engine gets our units joined by spaces (see the module doc).
    """
    from qasr.audio import as_audio
    from qasr.engine.model import Model

    if not isinstance(model, Model):
        raise TypeError("model must be a qasr Model loaded with kind=ModelKind.ALIGNER")
    lang = aligner_language(language or model.language or "Chinese")
    prepared = as_audio(audio)
    spans = unit_spans(transcript)
    check_plausible(spans, prepared.seconds, transcript)
    raw = "".join(model.align_raw(prepared, engine_text(transcript, spans)))
    return build_alignment(transcript, spans, raw, lang, prepared.seconds)


def load_aligner(path: object, language: str, **kwargs: object) -> object:
    """Load a ForcedAligner model for one of its 11 languages, with JSON output (`Model.from_spec`).

    ``kwargs``: ``threads``, ``max_length``, ``engine``, as `qasr.spec.EngineSpec` fields."""
    from qasr.engine.model import Model
    from qasr.engine.modelfile import ModelKind
    from qasr.spec import EngineSpec

    aligner_language(language)  # refused here with the aligner's list, before any file is read
    spec = EngineSpec(aligner=os.fspath(path), language=language, **kwargs)  # type: ignore[arg-type]
    return Model.from_spec(spec, ModelKind.ALIGNER)


def even_alignment(
    text: str, start: float, end: float, language: str = "", speech: Sequence[tuple[float, float]] = ()
) -> Alignment:
    """Units of ``text`` spread over ``[start, end]`` in proportion to their length: a guess, not a measurement.

    With ``speech`` (the VAD's speech spans inside ``[start, end]``) the units are spread over the
    speech only, skipping the pauses. Used where no alignment exists (a chunk not aligned yet, or
    one the aligner could not align), so a partial subtitle file still covers the text; the result
    is marked ``aligned=False``.
    """
    spans = unit_spans(text)
    pieces = [(max(a, start), min(b, end)) for a, b in speech if min(b, end) > max(a, start)] or [(float(start), float(end))]
    talk = sum(b - a for a, b in pieces)
    weights = [max(1, b - a) for a, b in spans]
    total = float(sum(weights)) or 1.0

    def at(offset: float) -> float:  # seconds of speech from the first piece -> a time in the audio
        for a, b in pieces:
            if offset <= b - a + 1e-9:
                return a + offset
            offset -= b - a
        return pieces[-1][1]

    units, done = [], 0.0
    for (a, b), w in zip(spans, weights):
        step = talk * w / total
        units.append(AlignedUnit(text[a:b], at(done), at(done + step), a, b))
        done += step
    return Alignment(text, tuple(units), language, float(end - start), aligned=False)
