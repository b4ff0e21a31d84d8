"""``qasr transcribe FILE...``: load the model once, transcribe each file, print or write results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from qasr.cli.output import OutputFormat


def _progress(enabled: bool, total: int):  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr for several files on a terminal; a no-op otherwise."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]transcribing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    )
    progress.start()
    progress.add_task("", total=total)
    return progress


def transcribe(
    files: List[Path] = typer.Argument(..., help="Audio files (wav, flac, mp3, ogg, m4a, ...).", show_default=False),
    model: str = typer.Option(..., "--model", "-m", envvar="QASR_MODEL", help="Qwen3-ASR model: a file (chatllm.cpp format) or a registry name (qasr models list).", show_default=False),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="Force a language (e.g. English, Chinese); default: detect."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads for the engine (default: physical cores)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=256, help="Context length; smaller uses less memory (model default 65536)."),
    fmt: OutputFormat = typer.Option(OutputFormat.txt, "--format", "-f", help="Output format.", case_sensitive=False),
    stream: bool = typer.Option(False, "--stream", help="Print text as it is generated (txt), or chunk events (jsonl)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Write one <name>.<format> file per input here."),
    itn: bool = typer.Option(False, "--itn/--no-itn", help="Inverse text normalisation (一三八 -> 138); Chinese rules, English via wetext if installed."),
    zh_tw: bool = typer.Option(False, "--zh-tw", help="Convert to Traditional Chinese with Taiwanese phrasing (OpenCC s2twp)."),
    opencc: Optional[str] = typer.Option(None, "--opencc", help="OpenCC conversion: s2twp, s2t, s2hk, t2s or none (overrides --zh-tw)."),
    engine: Optional[Path] = typer.Option(None, "--engine", help="libchatllm.so or its directory (default: $QASR_CHATLLM_LIB, then ./chatllm.cpp)."),
) -> None:
    """Transcribe audio files with Qwen3-ASR.

    Exit codes: 0 ok, 2 usage or bad input, 3 engine missing, 4 engine error.
    """
    from qasr.cli.output import dumps, emit, render, write_record
    from qasr.errors import QasrError, UsageError
    from qasr.audio import load_audio
    from qasr.engine.model import Model
    from qasr.pipeline.transcribe import TranscriptionStream

    if stream and fmt is OutputFormat.json:
        raise UsageError("--stream works with --format txt or jsonl (a JSON document cannot be streamed)")
    if stream and output_dir is not None:
        raise UsageError("--stream prints to the terminal; drop it when writing files with --output-dir")
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot use --output-dir {output_dir}: {exc.strerror or exc}") from None
    conversion = opencc or ("s2twp" if zh_tw else None)
    if conversion:
        from qasr.text.convert import OPENCC_TARGETS

        if conversion not in OPENCC_TARGETS:
            raise UsageError(f"unknown --opencc target {conversion!r}; choose one of: {', '.join(OPENCC_TARGETS)}")

    from qasr.engine.registry import resolve_model

    asr = Model(resolve_model(model), language=language, threads=threads, max_length=max_length, engine=engine)
    many = len(files) > 1
    records: list[dict[str, object]] = []
    written: set[Path] = set()
    first_error: int = 0
    progress = _progress(many and not stream and sys.stdout.isatty(), len(files))
    try:
        for i, path in enumerate(files):
            if progress is not None:
                progress.update(progress.task_ids[0], description=path.name)
            try:
                job = TranscriptionStream(
                    asr, load_audio(path), load_seconds=asr.load_seconds if i == 0 else 0.0, itn=itn, opencc=conversion
                )
                if stream and fmt is OutputFormat.txt:
                    if many:
                        emit(f"==> {path} <==\n")
                    for piece in job:
                        emit(piece)
                    emit("\n")
                    assert job.result is not None
                    if job.result.text != job.result.asr_text:  # ITN / OpenCC need the whole text
                        emit(job.result.text + "\n")
                elif stream:
                    for piece in job:
                        emit(dumps({"event": "chunk", "source": str(path), "text": piece}) + "\n")
                else:
                    job.run()
                assert job.result is not None
                record = job.result.to_dict()
                record["source"] = str(path)
            except QasrError as exc:
                print(f"qasr: error: {exc}", file=sys.stderr, flush=True)
                first_error = first_error or exc.exit_code
                record = {"source": str(path), "error": str(exc)}
                if not many:
                    raise typer.Exit(exc.exit_code) from None
            if output_dir is not None and "error" not in record:
                print(f"wrote {write_record(output_dir, record, fmt, written)}", file=sys.stderr)
            elif stream and fmt is OutputFormat.jsonl:
                emit(dumps({"event": "result", **record}) + "\n")
            records.append(record)
            if progress is not None:
                progress.advance(progress.task_ids[0])
    finally:
        if progress is not None:
            progress.stop()
    if output_dir is None and not stream:
        emit(render(records, fmt, many=many))
    if first_error:
        raise typer.Exit(first_error)
