"""Run one scenario in a fresh child process, watch it, and write its report whatever happens.

The parent never loads the engine. It prepares ``results/<scenario>/<timestamp>/``, starts
``python -m qasr.lab.child`` with the allocator's environment, shows progress, and when the child
ends (normally, by a native abort, by a signal, or by Ctrl-C) reads what was recorded and renders
the reports. INCONCLUSIVE verdicts can be retried with twice the iterations, at most twice.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qasr.channel import Receiver
from qasr.errors import UsageError
from qasr.fileio import write_atomic
from qasr.lab.analysis import load_records, summarize
from qasr.lab.config import RunConfig
from qasr.processes import GRACE_SECONDS, Child
from qasr.progress import make_progress

JEMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)


@dataclass
class RunOutcome:
    """Where a run's files are and what it concluded."""

    run_dir: Path
    summary: dict[str, Any]

    @property
    def verdict(self) -> str | None:
        return self.summary.get("verdict")


def find_jemalloc() -> str:
    explicit = os.environ.get("QASR_JEMALLOC")
    for candidate in ([explicit] if explicit else []) + list(JEMALLOC_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    raise UsageError("jemalloc not found (Debian: apt-get install libjemalloc2, or set QASR_JEMALLOC=/path/to/libjemalloc.so.2)")


def allocator_env(allocator: str) -> dict[str, str]:
    """Environment for the child: glibc as is, 2 arenas, per-iteration trim (done by the child), jemalloc."""
    if allocator == "arena2":
        return {"MALLOC_ARENA_MAX": "2"}
    if allocator == "jemalloc":
        return {"LD_PRELOAD": find_jemalloc()}
    return {}


def unique_dir(base: Path) -> Path:
    """Create ``base``, or ``base-1``, ``base-2``... when a run in the same second took it."""
    path, n = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{n}")
        n += 1
    path.mkdir(parents=True)
    return path


def new_run_dir(results: Path, scenario: str, allocator: str) -> Path:
    """``results/<scenario>/<time>[-allocator]``; a user's test name may hold ``/`` or spaces (its
    parameters): those become ``_`` in the folder's name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = "" if allocator == "glibc" else f"-{allocator}"
    folder = re.sub(r"[^\w.\[\]=+-]+", "_", scenario).strip("._") or "scenario"
    return unique_dir(results / folder / f"{stamp}{suffix}")


def run_child(cfg: RunConfig, run_dir: Path, *, show_progress: bool = True) -> tuple[int | None, list[str], bool]:
    """Start the child and wait for it. Returns (return code, last stderr lines, interrupted)."""
    write_atomic(run_dir / "config.json", cfg.to_json())
    env = {**os.environ, **allocator_env(cfg.allocator), "PYTHONUNBUFFERED": "1"}
    if cfg.engine:
        env["QASR_CHATLLM_LIB"] = cfg.engine
    progress = make_progress(None if show_progress else False, "count")
    progress.start("run", cfg.iterations, label=f"{cfg.scenario} ({cfg.allocator})")
    interrupted = False
    with Child("qasr.lab.child", [str(run_dir)], log=run_dir / "stderr.log", env=env, stdout="pipe", text=False) as child:
        try:
            assert child.stdout is not None
            for message in Receiver(child.stdout):  # the records themselves are in samples.jsonl
                if message.kind == "progress":
                    progress.update("run", completed=int(message["done"]))
            child.wait()
        except KeyboardInterrupt:
            interrupted = True
            # The terminal sent SIGINT to the child too; give it a moment to record that, then insist.
            child.stop(wait_first=GRACE_SECONDS)
        finally:
            progress.stop()
        tail = child.stderr_tail(20)
    return child.returncode, tail, interrupted


def analyse_and_report(
    run_dir: Path, returncode: int | None, stderr_tail: list[str], *, interrupted: bool = False
) -> dict[str, Any]:
    """Summarise what the child recorded and write summary.json, report.md and the plots.

    ``interrupted`` (the user pressed Ctrl-C) is kept in exit.json, so `qasr lab report` re-renders
    the same status."""
    from qasr.lab.report import write_reports

    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    records = load_records(run_dir / "samples.jsonl")
    summary = summarize(records, config, returncode, stderr_tail, interrupted=interrupted)
    summary["run_dir"] = str(run_dir)
    exit_info = {"returncode": returncode, "stderr_tail": stderr_tail, "interrupted": interrupted}
    write_atomic(run_dir / "exit.json", json.dumps(exit_info, indent=2))
    write_reports(summary, records, run_dir)
    return summary


def run(cfg: RunConfig, *, extend: bool = False, max_doublings: int = 2, show_progress: bool = True) -> RunOutcome:
    """Run, report, and (with ``extend``) retry INCONCLUSIVE runs with 2N and 4N iterations."""
    run_dir = new_run_dir(Path(cfg.results_dir), cfg.scenario, cfg.allocator)
    attempts: list[dict[str, Any]] = []
    current = cfg
    while True:
        returncode, tail, interrupted = run_child(current, run_dir, show_progress=show_progress)
        summary = analyse_and_report(run_dir, returncode, tail, interrupted=interrupted)
        attempts.append({"iterations": current.iterations, "verdict": summary.get("verdict"), "status": summary["status"]})
        retry = (
            extend
            and summary["status"] == "completed"
            and summary.get("verdict") == "INCONCLUSIVE"
            and len(attempts) <= max_doublings
        )
        if not retry:
            break
        shutil.move(str(run_dir / "samples.jsonl"), str(run_dir / f"samples-n{current.iterations}.jsonl"))
        current = replace(current, iterations=current.iterations * 2)
    rerender = len(attempts) > 1
    if rerender:
        summary["attempts"] = attempts
    if cfg.trace_native and summary["status"] == "completed":
        summary["native_trace"] = trace_native(cfg, run_dir, show_progress=show_progress)
        rerender = True
    if rerender:
        from qasr.lab.report import write_reports

        write_reports(summary, load_records(run_dir / "samples.jsonl"), run_dir)
    return RunOutcome(run_dir=run_dir, summary=summary)


def trace_native(cfg: RunConfig, run_dir: Path, *, show_progress: bool = True) -> dict[str, Any]:
    """Two memray-traced child runs (N and 2N iterations) and their per-stack differential."""
    from qasr.lab.native_trace import differential

    n = cfg.trace_iterations
    captures = []
    for iterations in (n, 2 * n):
        sub = run_dir / f"trace-n{iterations}"
        sub.mkdir(exist_ok=True)
        capture = sub / "memray.bin"
        capture.unlink(missing_ok=True)
        traced = replace(cfg, iterations=iterations, trace_file=str(capture), peaks=False, trace_native=False)
        returncode, tail, _ = run_child(traced, sub, show_progress=show_progress)
        if returncode != 0 or not capture.is_file():
            return {"n": n, "error": f"traced run of {iterations} iterations failed (exit {returncode})", "stderr_tail": tail}
        captures.append(capture)
    return {"n": n, "stacks": differential(captures[0], captures[1], n)}
