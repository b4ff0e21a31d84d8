"""``qasr align AUDIO TEXT``: word times for a known transcript (a thin layer over `qasr.pipeline.align`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from qasr.cli.options import ALIGNER, ENGINE, THREADS
from qasr.cli.subtitles import cue_rules, output_format
from qasr.errors import warn_on_stderr


def read_transcript(text: str) -> str:
    """TEXT is a file's path when such a file exists, else the transcript itself."""
    from qasr.errors import UsageError

    candidate = Path(text)
    try:
        is_file = len(text) < 4096 and "\n" not in text and candidate.is_file()
    except OSError:  # a name too long for the file system: it is a transcript
        is_file = False
    if not is_file:
        return text
    try:
        return candidate.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the transcript file {candidate}: {exc}") from None


def align(
    audio: Path = typer.Argument(..., help="Audio file (at most one engine call: 8 minutes).", show_default=False),
    text: str = typer.Argument(..., help="The transcript, or the path of a UTF-8 text file holding it.", show_default=False),
    aligner: Optional[str] = ALIGNER,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="srt, vtt, json, tsv or txt (default: from --output's suffix, else srt)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="zh, en, yue, fr, de, it, ja, ko, pt, ru, es (or the name); default: from the script."),
    max_line_width: int = typer.Option(42, "--max-line-width", help="Columns per line (Chinese characters count 2)."),
    max_lines: int = typer.Option(2, "--max-lines", help="Lines per cue."),
    max_cue_seconds: float = typer.Option(7.0, "--max-cue-seconds", help="Longest cue, in seconds."),
    threads: Optional[int] = THREADS,
    engine: Optional[Path] = ENGINE,
) -> None:
    """Align a transcript to its audio with the ForcedAligner and write timed cues.

    Exit codes: 0 ok, 2 usage or bad input (unsupported language, a transcript that cannot match),
    3 engine missing, 4 engine error.
    """
    from qasr.audio import load_audio
    from qasr.cli.output import emit
    from qasr.engine.model import Model
    from qasr.engine.modelfile import ModelKind
    from qasr.errors import UsageError
    from qasr.pipeline.align import align as run_align
    from qasr.pipeline.align import aligner_language, guess_language
    from qasr.spec import EngineSpec
    from qasr.pipeline.subtitles import cut, fix_timing
    from qasr.pipeline.writers import get_writer, write_atomic

    if not aligner:
        raise UsageError("give the aligner: --aligner MODEL (a file or a registry name, or QASR_ALIGNER)")
    name = output_format(fmt, output)
    rules = cue_rules(max_line_width, max_lines, max_cue_seconds)
    transcript = read_transcript(text)
    lang = aligner_language(language) if language else guess_language(transcript)
    prepared = load_audio(audio)
    model = Model.from_spec(EngineSpec(aligner=aligner, language=lang, threads=threads, engine=str(engine) if engine else None), ModelKind.ALIGNER)
    result = run_align(model, prepared, transcript, language=lang)
    if result.unreliable:
        warn_on_stderr(
            f"{result.repaired} of {len(result.units)} word times lay outside the audio or out of order "
            "and were repaired: the transcript may not match the audio, or the language may be wrong"
        )
    cues = fix_timing(cut(result, rules), prepared.seconds, rules)
    info = {"source": str(audio), "duration": round(prepared.seconds, 3), "language": lang, "aligner_model": model.file.path.name,
            "repaired": result.repaired, "clamped": result.clamped}  # fmt: skip
    document = get_writer(name).render(cues, info)
    if output is None:
        emit(document)
    else:
        write_atomic(output, document)
        print(f"wrote {output}: {len(cues)} cues, {len(result.units)} words", file=sys.stderr)
