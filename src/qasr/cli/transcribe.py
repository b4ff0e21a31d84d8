"""``qasr transcribe FILE...``: parse options, load a provider, run `qasr.pipeline.batch`, print or write what it yields."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from qasr.cli.options import ALIGNER, CONTEXT, ENGINE, ITN, LANGUAGE, MAX_LENGTH, MAX_TOKENS, MODEL, OPENCC, THREADS, ZH_TW
from qasr.cli.output import OutputFormat
from qasr.cli.provider_options import PROVIDER, WHISPER_MODEL
from qasr.errors import warn_on_stderr


def transcribe(
    files: List[Path] = typer.Argument(..., help="Audio files (wav, flac, mp3, ogg, m4a, ...).", show_default=False),
    model: Optional[str] = MODEL,
    language: Optional[str] = LANGUAGE,
    context: Optional[str] = CONTEXT,
    aligner: Optional[str] = ALIGNER,
    max_chunk: Optional[float] = typer.Option(None, "--max-chunk", min=0.0, help="Longest engine call in seconds; longer audio is cut at pauses (default and 0: one call, up to 8 min)."),
    threads: Optional[int] = THREADS,
    max_length: Optional[int] = MAX_LENGTH,
    max_tokens: Optional[int] = MAX_TOKENS,
    fmt: OutputFormat = typer.Option(OutputFormat.txt, "--format", "-f", help="Output format.", case_sensitive=False),
    stream: bool = typer.Option(False, "--stream", help="Print text as it is generated (txt), or chunk events (jsonl)."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Write one <name>.<format> file per input here."),
    itn: bool = ITN,
    zh_tw: bool = ZH_TW,
    opencc: Optional[str] = OPENCC,
    engine: Optional[Path] = ENGINE,
    provider: str = PROVIDER,
    whisper_model: Optional[str] = WHISPER_MODEL,
) -> None:
    """Transcribe audio files with Qwen3-ASR (or faster-whisper: --provider).

    Exit codes: 0 ok, 2 usage or bad input, 3 engine missing, 4 engine error.
    """
    from qasr.cli.options import call_options, engine_spec
    from qasr.errors import UsageError

    if stream and fmt is OutputFormat.json:
        raise UsageError("--stream works with --format txt or jsonl (a JSON document cannot be streamed)")
    if stream and output_dir is not None:
        raise UsageError("--stream prints to the terminal; drop it when writing files with --output-dir")
    if max_chunk is not None and 0 < max_chunk < 2:
        raise UsageError("--max-chunk must be 0 (one call per file) or at least 2 seconds")
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot use --output-dir {output_dir}: {exc.strerror or exc}") from None
    calls = call_options(context=context, itn=itn, zh_tw=zh_tw, opencc=opencc, max_chunk=max_chunk)

    from qasr.providers import make_provider

    if aligner is not None and provider not in ("qwen3-chatllm", "crispasr"):
        raise UsageError("--aligner (word times from the ForcedAligner) works with --provider qwen3-chatllm or crispasr only")
    spec = engine_spec(provider=provider, model=model, aligner=aligner, engine=engine, threads=threads, max_length=max_length,
                       max_tokens=max_tokens, language=language, whisper_model=whisper_model)  # fmt: skip
    _run(make_provider(spec, calls), files, fmt=fmt, stream=stream, output_dir=output_dir)


def _run(provider, files: List[Path], *, fmt: OutputFormat, stream: bool, output_dir: Optional[Path]) -> None:  # type: ignore[no-untyped-def]
    """Render the batch's events: live text, one record per file, errors as one line each."""
    from functools import partial

    from qasr.cli.output import dumps, emit, render, write_record
    from qasr.pipeline.batch import FileDone, FileFailed, TextDelta, run_streams
    from qasr.progress import make_progress
    from qasr.providers.chain import peak_rss_of

    many = len(files) > 1
    records: list[dict[str, object]] = []
    written: set[Path] = set()
    first_error = 0
    progress = make_progress(None if (many and not stream and sys.stdout.isatty()) else False, "count")
    progress.start("files", len(files), label="transcribing")
    opened: set[str] = set()
    try:
        for event in run_streams(((str(f), partial(provider.stream, str(f))) for f in files), stream_text=stream):
            if isinstance(event, TextDelta):
                if fmt is OutputFormat.txt:
                    if many and event.source not in opened:
                        emit(f"==> {event.source} <==\n")
                    emit(event.text)
                else:
                    emit(dumps({"event": "chunk", "source": event.source, "text": event.text}) + "\n")
                opened.add(event.source)
                continue
            progress.update("files", note=Path(event.source).name)
            if isinstance(event, FileFailed):
                print(f"qasr: error: {event.error}", file=sys.stderr, flush=True)
                first_error = first_error or event.error.exit_code
                record: dict[str, object] = {"source": event.source, "error": str(event.error)}
                if not many:
                    raise typer.Exit(event.error.exit_code)
            else:
                record = _record(event, peak_rss_of(provider), provider.name)
                if stream and fmt is OutputFormat.txt:
                    _finish_live_text(event, many, event.source in opened)
            if output_dir is not None and "error" not in record:
                print(f"wrote {write_record(output_dir, record, fmt, written)}", file=sys.stderr)
            elif stream and fmt is OutputFormat.jsonl:
                emit(dumps({"event": "result", **record}) + "\n")
            records.append(record)
            progress.advance("files")
    finally:
        progress.stop()
    if output_dir is None and not stream:
        emit(render(records, fmt, many=many))
    if first_error:
        raise typer.Exit(first_error)


def _record(event, peak: int, provider: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The result as JSON, with the provider and the process's peak memory so far beside the file's own figures."""
    record = event.result.to_dict()
    record["source"] = event.source
    record["provider"] = provider
    record["peak_rss_bytes"] = peak
    for warning in event.result.warnings:
        warn_on_stderr(f"{event.source}: {warning}")
    return record


def _finish_live_text(event, many: bool, shown: bool) -> None:  # type: ignore[no-untyped-def]
    """After live text: end the line; then the final text when ITN / OpenCC / echo removal changed it."""
    from qasr.cli.output import emit

    result = event.result
    if many and not shown:
        emit(f"==> {event.source} <==\n")
    emit("\n")
    if result.text != result.asr_text or result.context_echo:
        emit(result.text + "\n")
