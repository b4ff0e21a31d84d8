"""``qasr benchmark DATA``: two providers over the same audio, a table, a decision, and the report files."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from qasr.cli.options import ENGINE, LANGUAGE, MAX_LENGTH, MODEL
from qasr.cli.provider_options import WHISPER_MODEL
from qasr.errors import warn_on_stderr


def benchmark(
    data: Path = typer.Argument(..., help="A directory of audio files with <name>.txt references beside them, or a TSV manifest (audio, reference[, language]).", show_default=False),
    model: Optional[str] = MODEL,
    whisper_model: Optional[str] = WHISPER_MODEL,
    candidate: str = typer.Option("qwen3-chatllm", "--candidate", help="The provider to decide about."),
    baseline: str = typer.Option("faster-whisper", "--baseline", help="The provider it must beat ('none': figures only)."),
    language: Optional[str] = LANGUAGE,
    threads: Optional[int] = typer.Option(None, "--threads", "-t", min=1, help="CPU threads for each provider (default: all CPUs, the same for both)."),
    compute_type: str = typer.Option("int8", "--compute-type", help="faster-whisper compute type (int8, float32, ...)."),
    beam_size: int = typer.Option(5, "--beam-size", min=1, help="faster-whisper beam size."),
    max_length: Optional[int] = MAX_LENGTH,
    engine: Optional[Path] = ENGINE,
    max_rtf: float = typer.Option(1.0, "--max-rtf", help="Criterion: the candidate's RTF must be below this."),
    min_improvement: float = typer.Option(0.2, "--min-improvement", help="Criterion: error rate at least this fraction lower than the baseline's."),
    rss_budget_mb: float = typer.Option(4096, "--rss-budget-mb", help="Criterion: the candidate's peak RSS must be below this (MiB)."),
    max_failed: int = typer.Option(0, "--max-failed", min=0, help="Criterion: at most this many files may fail."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Directory for report.md, results.json, figures.png (default: results/benchmark/<time>)."),
    as_json: bool = typer.Option(False, "--json", help="Print results.json to stdout instead of the table."),
    fail_unless_go: bool = typer.Option(False, "--fail-unless-go", help="Exit 1 when the decision is not GO (for CI)."),
) -> None:
    """Benchmark a candidate provider against a baseline and decide: GO, CONDITIONAL or NO-GO.

    Exit codes: 0 the benchmark ran (whatever it decided; see --fail-unless-go), 1 not GO with
    --fail-unless-go, 2 usage or bad data.
    """
    from qasr.benchmark import run_benchmark
    from qasr.benchmark.decision import MIB, Criteria
    from qasr.cli.output import emit
    from qasr.errors import EXIT_FAILURE, UsageError
    from qasr.progress import make_progress
    from qasr.cli.options import engine_spec
    from qasr.providers import PROVIDER_NAMES

    for flag, name in (("--candidate", candidate), ("--baseline", baseline)):
        if name not in PROVIDER_NAMES and not (flag == "--baseline" and name == "none"):
            raise UsageError(f"unknown {flag} {name!r}; choose one of: {', '.join(PROVIDER_NAMES)}" + (", none" if flag == "--baseline" else ""))
    spec = engine_spec(
        model=model, whisper_model=whisper_model, language=language, threads=threads or os.cpu_count() or 1,
        max_length=max_length, engine=engine, compute_type=compute_type, beam_size=beam_size,
    )  # fmt: skip
    criteria = Criteria(max_rtf=max_rtf, min_improvement=min_improvement, rss_budget_bytes=int(rss_budget_mb * MIB), max_failed=max_failed)
    out_dir = output or Path("results") / "benchmark" / time.strftime("%Y%m%d-%H%M%S")
    progress = make_progress(None if not as_json else False, "count")
    try:
        result = run_benchmark(data, spec, candidate=candidate, baseline=None if baseline == "none" else baseline,
                               criteria=criteria, out_dir=out_dir, progress=progress)  # fmt: skip
    finally:
        progress.stop()
    if as_json:
        emit(json.dumps(result.results, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        from qasr.benchmark.report import decision_text, table

        emit(table(result.runs) + "\n\n" + decision_text(result.decision) + "\n")
        for run in result.runs:
            if run.error:
                warn_on_stderr(f"{run.name}: {run.reason}: {run.error}")
        print(f"wrote {', '.join(str(p) for p in result.written)}", file=sys.stderr)
    if fail_unless_go and result.decision.verdict != "GO":
        raise typer.Exit(EXIT_FAILURE)
