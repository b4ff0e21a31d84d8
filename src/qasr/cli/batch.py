"""``qasr batch INPUT... -o OUT_DIR``: check the inputs and the model, run `qasr.batch`, print the summary."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from qasr.cli.options import ALIGNER, CONTEXT, ENGINE, ITN, LANGUAGE, MAX_LENGTH, MAX_TOKENS, MODEL, OPENCC, ZH_TW
from qasr.cli.provider_options import PROVIDER, WHISPER_MODEL


def batch(
    inputs: List[str] = typer.Argument(..., help="Audio files, directories (searched recursively), quoted globs, or tables "
                                       "(.jsonl/.csv/.parquet with a path column; optional id, language, context).", show_default=False),  # fmt: skip
    out_dir: Path = typer.Option(..., "--output-dir", "-o", help="Where outputs and manifest.jsonl/.parquet go (every node must see it)."),
    fmt: str = typer.Option("json", "--format", "-f", help="Output formats, comma-separated: json, srt, vtt, txt."),
    model: Optional[str] = MODEL,
    aligner: Optional[str] = ALIGNER,
    engine: Optional[Path] = ENGINE,
    provider: str = PROVIDER,
    whisper_model: Optional[str] = WHISPER_MODEL,
    max_chunk: float = typer.Option(30.0, "--max-chunk", min=2.0, max=480.0, help="Longest engine call in seconds; longer files are cut at pauses into pieces any actor can take."),
    language: Optional[str] = LANGUAGE,
    context: Optional[str] = CONTEXT,
    itn: bool = ITN,
    zh_tw: bool = ZH_TW,
    opencc: Optional[str] = OPENCC,
    cluster: str = typer.Option("local", "--cluster", envvar="RAY_ADDRESS", help="'local' (Ray started here with this machine's cores) or a cluster address HOST:PORT (or RAY_ADDRESS)."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="Actors, each with the model loaded (default: as many as fit the cluster's CPUs at --threads each)."),
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="Engine threads per actor, reserved as Ray CPUs (default: 1, or the CPUs shared out among --actors)."),
    retries: int = typer.Option(2, "--retries", min=0, help="Times an input that killed the engine's process is tried again before it is failed."),
    max_worker_rss: Optional[str] = typer.Option(None, "--max-worker-rss", help="Replace an actor whose RSS passes this after its batch, e.g. '3 GiB'."),
    max_requests: Optional[int] = typer.Option(None, "--max-requests", min=1, help="Replace an actor after it transcribed this many pieces."),
    force: bool = typer.Option(False, "--force", help="Redo inputs the manifest has as done with the same audio and options."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Retry inputs that failed before for a reason the same audio meets again (kept by default)."),
    json_summary: bool = typer.Option(False, "--json", help="Print the summary as one JSON object (and no progress bar)."),
    max_length: Optional[int] = MAX_LENGTH,
    max_tokens: Optional[int] = MAX_TOKENS,
) -> None:
    """Transcribe an archive on this machine or a Ray cluster: resumable, one manifest row per input.

    Exit codes: 0 every input done or skipped, 1 some failed (the summary names them), 2 usage or
    a missing input (before any work), 3 engine missing.
    """
    from qasr.batch import BatchOptions, expand_inputs, run_batch
    from qasr.batch.outputs import parse_formats
    from qasr.cli.options import call_options, engine_spec
    from qasr.errors import UsageError
    from qasr.lab.units import parse_size
    from qasr.progress import make_progress

    formats = parse_formats(fmt)
    try:
        rss_limit = parse_size(max_worker_rss) if max_worker_rss else None
    except ValueError as exc:
        raise UsageError(f"--max-worker-rss: {exc}") from None
    if aligner is not None and provider != "qwen3-chatllm":
        raise UsageError("--aligner (word times from the ForcedAligner) works with --provider qwen3-chatllm only")
    calls = call_options(language=language, context=context, itn=itn, zh_tw=zh_tw, opencc=opencc)
    items = expand_inputs(inputs)
    model_path, aligner_path = _checked_models(provider, model, aligner, max_tokens)
    spec = engine_spec(provider=provider, model=model_path, aligner=aligner_path, engine=engine, max_length=max_length,
                       max_tokens=max_tokens, whisper_model=whisper_model)  # fmt: skip
    options = BatchOptions(out_dir=out_dir.resolve(), formats=formats, cluster=cluster.strip() or "local", actors=actors, threads=threads,
                           retries=retries, max_worker_rss=rss_limit, max_requests=max_requests, force=force, retry_failed=retry_failed,
                           max_chunk=max_chunk)  # fmt: skip
    progress = make_progress(False if json_summary else None, "count")
    summary = run_batch(items, spec, calls, options, progress)
    if json_summary:
        print(json.dumps(summary.to_dict(), ensure_ascii=False), flush=True)
    else:
        _print_summary(summary)
    raise typer.Exit(summary.exit_code)


def _checked_models(provider: str, model: Optional[str], aligner: Optional[str], max_tokens: Optional[int]) -> tuple[Optional[str], Optional[str]]:
    """The model files as paths every node will be given, checked here (a wrong model is a usage error before Ray starts)."""
    from qasr.engine.modelfile import ModelKind, warn_if_synthetic
    from qasr.engine.registry import model_file
    from qasr.errors import UsageError

    if provider == "qwen3-chatllm" and not model:
        raise UsageError("give a model: --model FILE or a registry name (or QASR_MODEL)")
    asr = model_file(model, ModelKind.ASR) if model and provider != "faster-whisper" else None
    warn_if_synthetic(asr, max_tokens)
    found = model_file(aligner, ModelKind.ALIGNER) if aligner else None
    return (str(asr.path) if asr else model), (str(found.path) if found else None)


def _print_summary(summary) -> None:  # type: ignore[no-untyped-def]
    """The run in a few lines on stderr: counts, audio and speed, and each failed input with its reason."""
    d = summary.to_dict()
    speed = f", {d['speed']:.2f} audio s/s" if d["speed"] else ""
    print(f"qasr batch: {d['done']} done, {d['skipped']} skipped, {d['failed']} failed of {d['inputs']} inputs; "
          f"{d['audio_seconds'] / 3600:.3f} h audio in {d['wall_seconds']:.1f} s{speed}; manifest {d['manifest']}",
          file=sys.stderr, flush=True)  # fmt: skip
    for failure in d["failures"]:
        print(f"qasr: failed: {failure['id']}: {failure['error']}", file=sys.stderr, flush=True)
