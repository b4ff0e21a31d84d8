"""One input's result as files under OUT_DIR (its relative path kept), each written atomically.

Formats: ``json`` (the result as ``qasr transcribe -f json`` prints it, with ``source``), ``txt``
(the text), ``srt`` and ``vtt`` (each segment's words spread over its span and cut into cues by
`qasr.pipeline.writers.render_timed_text`; the aligner's word times, when asked for, are in the json).
"""

from __future__ import annotations

import json
from pathlib import Path

from qasr.fileio import write_atomic
from qasr.pipeline.results import TranscriptionResult

FORMATS = ("json", "srt", "vtt", "txt")


def parse_formats(text: str) -> tuple[str, ...]:
    """``json,srt`` -> ("json", "srt"); `UsageError` for an unknown one."""
    from qasr.errors import UsageError

    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise UsageError(f"unknown --format {', '.join(unknown) or repr(text)}; choose from {', '.join(FORMATS)} (several: json,srt)")
    return names


def render(result: TranscriptionResult, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n"
    if fmt == "txt":
        return result.text + "\n"
    return _subtitles(result, fmt)


def _subtitles(result: TranscriptionResult, fmt: str) -> str:
    from qasr.pipeline.writers import render_timed_text

    items = [(s.text, s.start, s.end, result.language or "") for s in result.segments]
    return render_timed_text(items, fmt, result.figures.audio_seconds)


def write_outputs(out_dir: Path, rel: str, result: TranscriptionResult, formats: tuple[str, ...]) -> list[str]:
    """Write each format; the paths written, relative to ``out_dir``."""
    written = []
    for fmt in formats:
        path = out_dir / f"{rel}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, render(result, fmt))
        written.append(path.relative_to(out_dir).as_posix())
    return written
