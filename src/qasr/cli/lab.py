"""``qasr lab``: run leak scenarios in child processes, compare runs, re-render reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(help="The memory-leak lab: scenarios, verdicts, reports.", no_args_is_help=True, rich_markup_mode=None)

SCENARIO_HELP = ("reload | restart | switch | switch-restart | aligner-reload | aligner-restart | noclose | chain | chain-restart, "
                 "or your own code: PATH.py:NAME or module:NAME (a function, one iteration per call, or a class with "
                 "setup/iteration(i)/teardown)")


@dataclass(frozen=True)
class LabOptions:
    """What `lab run` and `lab matrix` share, gathered once from the command line (httpx's one
    options value per concern, GUIDE §6) and turned into the run's `RunConfig` in one place."""

    model: Optional[Path] = None
    model_b: Optional[Path] = None
    aligner: Optional[Path] = None
    audio: tuple[Path, ...] = ()
    reference: tuple[str, ...] = ()
    iterations: int = 100
    engine: Optional[Path] = None
    language: Optional[str] = None
    context: Optional[str] = None
    max_tokens: Optional[int] = None
    threads: Optional[int] = None
    max_length: Optional[int] = None
    results: Path = Path("results")
    peaks: bool = True
    threshold: Optional[str] = None
    python_heap: bool = False
    provider: Optional[str] = None

    def config(self, scenario: str, *, allocator: str = "glibc"):  # type: ignore[no-untyped-def]
        """The checked `RunConfig` of one run of ``scenario`` (raises `UsageError` and friends)."""
        from qasr.cli.options import read_context
        from qasr.errors import UsageError
        from qasr.lab.config import RunConfig, validate
        from qasr.lab.units import parse_size

        try:
            limit = parse_size(self.threshold) if self.threshold else None
        except ValueError as exc:
            raise UsageError(f"--threshold: {exc}") from None

        def text(path: Optional[Path]) -> Optional[str]:
            return str(path) if path else None

        return validate(
            RunConfig(
                scenario=scenario,
                model=text(self.model),
                model_b=text(self.model_b),
                aligner=text(self.aligner),
                audio=[str(a) for a in self.audio],
                references=list(self.reference),
                iterations=self.iterations,
                allocator=allocator,
                engine=text(self.engine),
                language=self.language,
                context=read_context(self.context),
                max_tokens=self.max_tokens,
                threads=self.threads,
                max_length=self.max_length,
                results_dir=str(self.results),
                peaks=self.peaks,
                threshold=limit,
                python_heap=self.python_heap,
                provider=self.provider,
            )
        )


def _print_summary(summary: dict, as_json: bool) -> None:  # type: ignore[type-arg]
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        return
    from qasr.lab.units import format_rate

    head = (summary.get("verdicts") or {}).get("rss_anon")
    print(f"{summary['scenario']}: {summary['status']}, {summary['iterations_completed']}/{summary['iterations_planned']} iterations")
    if summary.get("verdict"):
        print(f"  verdict: {summary['verdict']} ({summary.get('verdict_reason')})")
    crash = summary.get("crash")
    if crash:
        from qasr.lab.analysis import crash_text

        print(f"  ended by {crash_text(crash)}")
        error = crash.get("error") or {}
        if error.get("message"):
            print(f"  error: {error.get('kind')}: {error['message']}")
        for line in (crash.get("stderr_tail") or [])[-3:]:
            print(f"    stderr: {line}")
    sampled, lab = summary.get("sampled_process") or {}, summary.get("lab_process")
    if sampled.get("process") == "engine":
        print(f"  sampled: the engine process ({sampled.get('distinct_pids')} pid(s): {sampled.get('pids')}) at {sampled.get('phase')}")
    for who, verdicts in (("", summary.get("verdicts")), ("lab process ", (lab or {}).get("verdicts"))):
        for metric, v in (verdicts or {}).items():
            if metric in ("rss_anon", "heap_live", "py_heap"):
                print(
                    f"  {who}{metric:9s} {v['verdict']:12s} {format_rate(v['slope_bytes_per_iter'])} "
                    f"[{format_rate(v['ci_low'])}, {format_rate(v['ci_high'])}] vs T {format_rate(v['threshold'])}"
                )
    if head is None and not crash:
        print("  no verdict: no iteration finished")
    attribution = summary.get("attribution")
    if attribution:
        print(f"  attribution: {attribution['kind']}")
    print(f"  report: {Path(summary['run_dir']) / 'report.md'}")


def _exit_code(summary: dict, fail_on_leak: bool) -> int:  # type: ignore[type-arg]
    from qasr.errors import EXIT_INTERRUPTED, EXIT_LEAK, EXIT_RUN_CRASHED

    if summary["status"] == "interrupted":
        return EXIT_INTERRUPTED
    if summary["status"] != "completed":
        return EXIT_RUN_CRASHED
    if fail_on_leak and summary.get("verdict") == "LEAK":
        return EXIT_LEAK
    return 0


# Shared options, spelled once.
MODEL = typer.Option(None, "--model", "-m", help="Qwen3-ASR model file (with --provider: that provider's model; your scenario gets it as lab.model).")
MODEL_B = typer.Option(None, "--model-b", help="Second Qwen3-ASR model (switch, switch-restart).")
ALIGNER = typer.Option(None, "--aligner", "-a", help="Qwen3-ForcedAligner model file (aligner-*, chain, chain-restart).")
AUDIO = typer.Option([], "--audio", help="Audio file(s); iterations cycle through them (needed by the built-in scenarios).")
REFERENCE = typer.Option([], "--reference", "-r", help="Reference transcript (text or a file); default <audio>.txt.")
ITERATIONS = typer.Option(100, "--iterations", "-n", min=1, help="Iterations (the verdict method wants >= 100).")
ENGINE = typer.Option(None, "--engine", help="libchatllm.so or its directory.")
LANGUAGE = typer.Option(None, "--language", "-l", help="Force a language.")
MAX_TOKENS = typer.Option(None, "--max-tokens", min=1, help="Tokens each turn may generate (synthetic models never stop by themselves).")
CONTEXT = typer.Option(None, "--context", "-c", help="Hint text for the model's system turn (or @FILE), recorded with the run.")
THREADS = typer.Option(None, "--threads", "-t", min=1, help="Engine threads.")
MAX_LENGTH = typer.Option(None, "--max-length", min=256, help="Context length (shrinks the per-model buffer).")
RESULTS = typer.Option(Path("results"), "--results", help="Where run directories go.")
PEAKS = typer.Option(True, "--peaks/--no-peaks", help="Background sampler for peak RSS within iterations.")
JSON_OUT = typer.Option(False, "--json", help="Print the summary as JSON.")
THRESHOLD = typer.Option(None, "--threshold", help="T per iteration for every metric, e.g. '64 KiB' (default: per scenario, GUIDE §4).")
PROVIDER = typer.Option(None, "--provider", help="Run reload or restart over this qasr provider (qwen3-chatllm, faster-whisper, ...) instead of our binding; -m is its model.")
PYTHON_HEAP = typer.Option(False, "--python-heap", help="Also trace the Python heap (tracemalloc): a py_heap verdict and the source lines that grow. Slows Python code.")


@app.command("run", no_args_is_help=True)
def run_cmd(
    scenario: str = typer.Argument(..., help=SCENARIO_HELP),
    model: Optional[Path] = MODEL,
    model_b: Optional[Path] = MODEL_B,
    aligner: Optional[Path] = ALIGNER,
    audio: List[Path] = AUDIO,
    reference: List[str] = REFERENCE,
    iterations: int = ITERATIONS,
    allocator: str = typer.Option("glibc", "--allocator", help="glibc | arena2 | trim | jemalloc"),
    extend: bool = typer.Option(False, "--extend", help="If INCONCLUSIVE, rerun with 2N, then 4N iterations."),
    trace_native: bool = typer.Option(False, "--trace-native", help="memray differential (N and 2N traced runs) naming leaking native stacks."),
    trace_iterations: int = typer.Option(20, "--trace-iterations", min=2, help="N of the traced runs."),
    fail_on_leak: bool = typer.Option(False, "--fail-on-leak", help="Exit 6 when the run's verdict is LEAK."),
    engine: Optional[Path] = ENGINE,
    language: Optional[str] = LANGUAGE,
    context: Optional[str] = CONTEXT,
    max_tokens: Optional[int] = MAX_TOKENS,
    threads: Optional[int] = THREADS,
    max_length: Optional[int] = MAX_LENGTH,
    results: Path = RESULTS,
    peaks: bool = PEAKS,
    threshold: Optional[str] = THRESHOLD,
    python_heap: bool = PYTHON_HEAP,
    provider: Optional[str] = PROVIDER,
    as_json: bool = JSON_OUT,
) -> None:
    """Run one scenario in a fresh child process; write results/<scenario>/<time>/ and print the verdict.

    SCENARIO may be your own code, PATH.py:NAME or module:NAME, run with the same machinery.

    Exit codes: 0 completed, 2 bad input, 5 the child crashed or the scenario raised (report still
    written, with the traceback), 6 LEAK with --fail-on-leak, 130 interrupted (partial report written).
    """
    from qasr.lab.runner import run

    options = LabOptions(model=model, model_b=model_b, aligner=aligner, audio=tuple(audio), reference=tuple(reference),
                         iterations=iterations, engine=engine, language=language, context=context, max_tokens=max_tokens,
                         threads=threads, max_length=max_length, results=results, peaks=peaks, threshold=threshold,
                         python_heap=python_heap, provider=provider)  # fmt: skip
    cfg = options.config(scenario, allocator=allocator)
    if trace_native:
        from dataclasses import replace

        from qasr.lab.native_trace import require_memray

        require_memray()
        cfg = replace(cfg, trace_native=True, trace_iterations=trace_iterations)
    outcome = run(cfg, extend=extend, show_progress=not as_json)
    _print_summary(outcome.summary, as_json)
    code = _exit_code(outcome.summary, fail_on_leak)
    if code:
        raise typer.Exit(code)


@app.command("matrix", no_args_is_help=True)
def matrix_cmd(
    scenario: str = typer.Argument(..., help=SCENARIO_HELP),
    model: Optional[Path] = MODEL,
    model_b: Optional[Path] = MODEL_B,
    aligner: Optional[Path] = ALIGNER,
    audio: List[Path] = AUDIO,
    reference: List[str] = REFERENCE,
    iterations: int = ITERATIONS,
    allocators: Optional[str] = typer.Option(
        None, "--allocators", help="Comma-separated allocators (default: glibc,arena2,trim,jemalloc; only glibc with several --engine)."),
    engines: List[str] = typer.Option(
        [], "--engine", help="libchatllm.so or its directory, as [LABEL=]PATH; repeat it to compare builds (rows: engines x allocators)."),
    language: Optional[str] = LANGUAGE,
    context: Optional[str] = CONTEXT,
    max_tokens: Optional[int] = MAX_TOKENS,
    threads: Optional[int] = THREADS,
    max_length: Optional[int] = MAX_LENGTH,
    results: Path = RESULTS,
    peaks: bool = PEAKS,
    python_heap: bool = PYTHON_HEAP,
    provider: Optional[str] = PROVIDER,
    as_json: bool = JSON_OUT,
) -> None:
    """Run one scenario on each engine under each allocator and tabulate the slopes (results/matrix/...).

    With several --engine builds and no --allocators, each build runs under glibc only.
    Every engine and allocator is checked before the first run.
    """
    from qasr.errors import UsageError
    from qasr.lab.config import ALLOCATORS
    from qasr.lab.engines import resolve_engines
    from qasr.lab.matrix import render, run_matrix
    from qasr.lab.runner import find_jemalloc

    from qasr.lab.usercode import is_target

    # Fail before the first run, not after three; a user's scenario needs no engine of ours.
    builds = resolve_engines(list(engines)) if engines or not (is_target(scenario) or provider) else []
    default = "glibc" if len(builds) > 1 else ",".join(ALLOCATORS)
    chosen = tuple(a.strip() for a in (allocators if allocators is not None else default).split(",") if a.strip())
    unknown = [a for a in chosen if a not in ALLOCATORS]
    if unknown or not chosen:
        raise UsageError(f"unknown allocator(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ALLOCATORS)}")
    if "jemalloc" in chosen:
        find_jemalloc()
    options = LabOptions(model=model, model_b=model_b, aligner=aligner, audio=tuple(audio), reference=tuple(reference),
                         iterations=iterations, language=language, context=context, max_tokens=max_tokens, threads=threads,
                         max_length=max_length, results=results, peaks=peaks, python_heap=python_heap,
                         provider=provider)  # fmt: skip
    cfg = options.config(scenario)
    out, rows = run_matrix(cfg, chosen, engines=builds, show_progress=not as_json)
    if as_json:
        print(json.dumps({"dir": str(out), "rows": rows}, indent=2, default=str))
    else:
        print(render(scenario, rows))
        print(f"written: {out / 'matrix.md'}")


@app.command("compare", no_args_is_help=True)
def compare_cmd(
    run_a: Path = typer.Argument(..., help="First run directory (A)."),
    run_b: Path = typer.Argument(..., help="Second run directory (B)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Directory for compare.md/json/png."),
    results: Path = RESULTS,
    as_json: bool = JSON_OUT,
) -> None:
    """Side by side of two runs: slopes with intervals and their ratio, time per iteration."""
    from qasr.lab.compare import compare, default_out_dir, render, write

    result = compare(run_a, run_b)
    files = write(result, output or default_out_dir(results))
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(render(result))
        print(f"written: {', '.join(str(f) for f in files)}")


@app.command("report", no_args_is_help=True)
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory (results/<scenario>/<time>)."),
    as_json: bool = JSON_OUT,
) -> None:
    """Re-render a run's summary, report.md and plots from its recorded samples."""
    from qasr.errors import UsageError
    from qasr.lab.runner import analyse_and_report

    if not (run_dir / "config.json").is_file():
        raise UsageError(f"{run_dir} is not a lab run directory (no config.json)")
    exit_info = run_dir / "exit.json"
    info = json.loads(exit_info.read_text(encoding="utf-8")) if exit_info.is_file() else {}
    summary = analyse_and_report(
        run_dir, info.get("returncode"), info.get("stderr_tail") or [], interrupted=bool(info.get("interrupted"))
    )
    _print_summary(summary, as_json)
