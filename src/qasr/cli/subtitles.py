"""``qasr subtitles INPUT -o OUT``: long audio to aligned subtitles (a thin layer over `qasr.pipeline.longform`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from qasr.cli.options import ALIGNER, ENGINE, ITN, LANGUAGE, MAX_LENGTH, MAX_TOKENS, MODEL, OPENCC, THREADS, ZH_TW
from qasr.errors import warn_on_stderr

FORMAT_NAMES = ("srt", "vtt", "json", "tsv", "txt")


def output_format(explicit: Optional[str], output: Optional[Path]) -> str:
    """The format asked for, else the output file's suffix, else SRT."""
    from qasr.errors import UsageError

    if explicit:
        name = explicit.lower()
        if name not in FORMAT_NAMES:
            raise UsageError(f"unknown format {explicit!r}; choose one of: {', '.join(FORMAT_NAMES)}")
        return name
    suffix = output.suffix.lower().lstrip(".") if output else ""
    return suffix if suffix in FORMAT_NAMES else "srt"


def cue_rules(max_line_width: int, max_lines: int, max_cue_seconds: float):  # type: ignore[no-untyped-def]
    from qasr.errors import UsageError
    from qasr.pipeline.subtitles import CueRules

    try:
        return CueRules(max_line_width=max_line_width, max_lines=max_lines, max_duration=max_cue_seconds)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def clock(seconds: float) -> str:
    minutes, s = divmod(seconds, 60)
    h, m = divmod(int(minutes), 60)
    return f"{h:d}:{m:02d}:{s:04.1f}" if h else f"{m:d}:{s:04.1f}"


def report(result: Any, as_json: bool, interrupted: bool = False) -> None:
    """The summary: one JSON object on stdout (``--json``), or lines on stderr."""
    data = result.to_dict()
    data["interrupted"] = interrupted
    if as_json:
        print(json.dumps(data, ensure_ascii=False), flush=True)
    shown = result.unaligned if len(result.unaligned) <= 3 else result.unaligned[:1]
    for item in shown:
        warn_on_stderr(f"chunk {item['index'] + 1} at {clock(item['start'])} keeps evenly spread times: {item['reason']}")
    if len(result.unaligned) > len(shown):
        warn_on_stderr(f"{len(result.unaligned) - 1} more chunks of {result.chunks} keep evenly spread times "
                       "(--json lists each with its reason)")
    if as_json:
        return
    children = [f"{name} child {mb(n)}" for name, n in (("ASR", result.transcribe_peak_rss_bytes), ("aligner", result.align_peak_rss_bytes)) if n]
    memory = f"peak RSS {mb(result.peak_rss_bytes)} (" + ", ".join([f"this process {mb(result.parent_peak_rss_bytes)}", *children]) + ")"
    if interrupted and not result.written:
        print(f"qasr: interrupted before the first chunk was done: {result.output} was not written; {memory}", file=sys.stderr)
        return
    if interrupted:
        print(f"qasr: interrupted: kept {result.output} with {result.cues} cues; {result.aligned_chunks} of "
              f"{result.chunks} chunks aligned (the rest, if transcribed, have evenly spread times); {memory}",
              file=sys.stderr)  # fmt: skip
        return
    print(
        f"wrote {result.output}: {result.cues} cues from {result.chunks} chunk(s), {result.aligned_chunks} aligned; "
        f"{clock(result.audio_seconds)} of audio in {result.wall_seconds:.1f} s "
        f"(VAD {result.vad_seconds:.1f} s, ASR {result.transcribe_seconds:.1f} s, aligner {result.align_seconds:.1f} s); {memory}",
        file=sys.stderr,
    )


def subtitles(
    audio: Path = typer.Argument(..., help="Audio file of any length (wav, flac, mp3, m4a, ...).", show_default=False),
    output: Path = typer.Option(..., "--output", "-o", help="Subtitle file to write (rewritten as each chunk finishes).", show_default=False),
    model: Optional[str] = MODEL,
    aligner: Optional[str] = ALIGNER,
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="srt, vtt, json, tsv or txt (default: from the output's suffix, else srt)."),
    language: Optional[str] = LANGUAGE,
    itn: bool = ITN,
    zh_tw: bool = ZH_TW,
    opencc: Optional[str] = OPENCC,
    max_chunk: float = typer.Option(30.0, "--max-chunk", help="Longest chunk sent to the engine, in seconds (VAD cuts at pauses)."),
    context_chars: int = typer.Option(0, "--context-chars", min=0, help="Give each chunk the previous chunk's last N characters as context (0: off; see docs)."),
    max_line_width: int = typer.Option(42, "--max-line-width", help="Columns per line (Chinese characters count 2)."),
    max_lines: int = typer.Option(2, "--max-lines", help="Lines per cue."),
    max_cue_seconds: float = typer.Option(7.0, "--max-cue-seconds", help="Longest cue, in seconds."),
    threads: Optional[int] = THREADS,
    max_length: Optional[int] = MAX_LENGTH,
    max_tokens: Optional[int] = MAX_TOKENS,
    engine: Optional[Path] = ENGINE,
    as_json: bool = typer.Option(False, "--json", help="Print the run's summary as JSON on stdout."),
) -> None:
    """Transcribe, align and write subtitles for audio of any length.

    Exit codes: 0 ok, 2 usage or bad input (no speech, unsupported language), 3 engine missing,
    4 engine error, 130 interrupted (the output keeps every finished chunk).
    """
    from qasr.audio.vad import VadOptions
    from qasr.cli.options import call_options, engine_spec
    from qasr.engine.modelfile import ModelKind, warn_if_synthetic
    from qasr.engine.registry import model_file
    from qasr.errors import UsageError
    from qasr.text.post import PostProcess
    from qasr.pipeline.longform import LongformInterrupted, LongformOptions, run_longform
    from qasr.pipeline.writers import get_writer
    from qasr.progress import make_progress

    name = output_format(fmt, output)
    try:
        vad = VadOptions(max_chunk=max_chunk)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not model or not aligner:
        raise UsageError("subtitles need both models: --model (Qwen3-ASR, or QASR_MODEL) and --aligner (the ForcedAligner, or QASR_ALIGNER)")
    calls = call_options(itn=itn, zh_tw=zh_tw, opencc=opencc)
    options = LongformOptions(
        spec=engine_spec(model=model, aligner=aligner, language=language, threads=threads, max_length=max_length,
                         max_tokens=max_tokens, engine=engine),
        post=PostProcess(calls.itn, calls.opencc), context_chars=context_chars, vad=vad,
        rules=cue_rules(max_line_width, max_lines, max_cue_seconds),
    )  # fmt: skip
    warn_if_synthetic(model_file(model, ModelKind.ASR), max_tokens)
    progress = make_progress(None, "seconds")
    try:
        result = run_longform(audio, output, get_writer(name), options, progress)
    except LongformInterrupted as stop:
        progress.stop()  # before the report, so the bars do not overwrite it
        report(stop.result, as_json, interrupted=True)
        raise typer.Exit(130) from None
    finally:
        progress.stop()
    report(result, as_json)
