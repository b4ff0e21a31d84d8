"""Subtitle writers: one per format behind one small Protocol (memray's reporter layout).

A writer renders a whole document from cues. Long runs rewrite their output after every chunk
through `write_atomic` (a temporary file, then a rename), so the file on disk is always a complete,
valid document, whether the run finishes, crashes or is interrupted.

Times are rendered in whole milliseconds, rounded once (`ms`), so rounding can never reorder or
overlap cues that `qasr.pipeline.subtitles.fix_timing` has separated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Protocol

from qasr.fileio import write_atomic  # noqa: F401 - re-exported: the writers' way to the disk
from qasr.pipeline.subtitles import Cue


class SubtitleWriter(Protocol):
    """Renders cues as one complete document in one format."""

    name: str
    suffix: str

    def render(self, cues: Sequence[Cue], info: Mapping[str, object]) -> str: ...


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _clock(seconds: float, sep: str) -> str:
    total = ms(seconds)
    h, rest = divmod(total, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{milli:03d}"


def _clean_lines(cue: Cue) -> list[str]:
    """Cue lines with no blank line inside (a blank line ends a cue in SRT and WebVTT)."""
    return [line.strip() for line in cue.lines if line.strip()] or ["…"]


class SrtWriter:
    """SubRip: numbered from 1 (upstream's aligner numbers from 0), ``HH:MM:SS,mmm``."""

    name, suffix = "srt", ".srt"

    def render(self, cues: Sequence[Cue], info: Mapping[str, object]) -> str:
        blocks = [
            f"{i}\n{_clock(c.start, ',')} --> {_clock(c.end, ',')}\n" + "\n".join(_clean_lines(c)) + "\n"
            for i, c in enumerate(cues, 1)
        ]
        return "\n".join(blocks)


class VttWriter:
    """WebVTT: a ``WEBVTT`` header, ``HH:MM:SS.mmm``; ``&``, ``<`` and ``>`` escaped as the format requires."""

    name, suffix = "vtt", ".vtt"

    @staticmethod
    def _escape(line: str) -> str:
        return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def render(self, cues: Sequence[Cue], info: Mapping[str, object]) -> str:
        out = ["WEBVTT\n"]
        for c in cues:
            text = "\n".join(self._escape(line) for line in _clean_lines(c))
            out.append(f"{_clock(c.start, '.')} --> {_clock(c.end, '.')}\n{text}\n")
        return "\n".join(out)


class JsonWriter:
    """One JSON object: run information and ``segments``, each with its lines and its ``words``."""

    name, suffix = "json", ".json"

    def render(self, cues: Sequence[Cue], info: Mapping[str, object]) -> str:
        segments = [
            {
                "id": i,
                "start": ms(c.start) / 1000,
                "end": ms(c.end) / 1000,
                "text": c.plain,
                "lines": list(c.lines),
                "aligned": c.aligned,
                "words": [{"text": w.text, "start": ms(w.start) / 1000, "end": ms(w.end) / 1000} for w in c.words],
            }
            for i, c in enumerate(cues)
        ]
        return json.dumps({**info, "segments": segments}, ensure_ascii=False, indent=2) + "\n"


class TsvWriter:
    """``start<TAB>end<TAB>text`` in integer milliseconds with a header row (whisper's TSV)."""

    name, suffix = "tsv", ".tsv"

    def render(self, cues: Sequence[Cue], info: Mapping[str, object]) -> str:
        rows = ["start\tend\ttext"]
        for c in cues:
            text = " ".join(c.plain.split())  # no tabs or newlines inside a field
            rows.append(f"{ms(c.start)}\t{ms(c.end)}\t{text}")
        return "\n".join(rows) + "\n"


class TxtWriter:
    """Plain text, one cue per line, no times."""

    name, suffix = "txt", ".txt"

    def render(self, cues: Sequence[Cue], info: Mapping[str, object]) -> str:
        return "".join(" ".join(c.plain.split()) + "\n" for c in cues)


WRITERS: dict[str, SubtitleWriter] = {w.name: w for w in (SrtWriter(), VttWriter(), JsonWriter(), TsvWriter(), TxtWriter())}
FORMATS: tuple[str, ...] = tuple(WRITERS)


def get_writer(name: str) -> SubtitleWriter:
    try:
        return WRITERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown subtitle format {name!r}; choose one of: {', '.join(FORMATS)}") from None


def render_timed_text(items: Sequence[tuple[str, float, float, str]], name: str, duration: float) -> str:
    """Subtitles for timed texts (text, start, end, language) with no word times: each text's words
    spread over its span (`even_alignment`), cut into cues by the default rules. For transcripts
    of segments and for live finals; aligned word times go through `qasr.pipeline.longform` instead."""
    from qasr.pipeline.align import even_alignment
    from qasr.pipeline.subtitles import CueRules, cut, fix_timing

    rules = CueRules()
    cues = [c for text, start, end, lang in items if text.strip() for c in cut(even_alignment(text, start, end, lang), rules)]
    return get_writer(name).render(fix_timing(cues, duration, rules), {})
