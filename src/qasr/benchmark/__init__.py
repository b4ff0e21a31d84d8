"""``qasr benchmark``: Qwen3-ASR beside the recogniser a team runs, measured the same way, and a decision.

Each provider runs over the same files in its own child process (`runner`); the figures are error
rates after one normalisation on both sides (`metrics`), RTF, TTFT where the provider streams, load
time and peak RSS; `decision` turns them into GO / CONDITIONAL / NO-GO against the criteria;
`report` writes the table, report.md, results.json and a bar chart. `run_benchmark` is all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qasr.benchmark.dataset import Item, load_dataset
from qasr.benchmark.decision import Criteria, Decision, decide
from qasr.benchmark.report import build_results, write_report
from qasr.benchmark.runner import ProviderRun, run_provider
from qasr.progress import Progress
from qasr.spec import EngineSpec


@dataclass
class BenchmarkResult:
    runs: list[ProviderRun]
    decision: Decision
    results: dict[str, Any]
    written: list[Path]


def run_benchmark(
    data: str | Path,
    spec: EngineSpec,
    *,
    candidate: str = "qwen3-chatllm",
    baseline: str | None = "faster-whisper",
    criteria: Criteria = Criteria(),
    out_dir: Path,
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Run the candidate, then the baseline (one at a time: they would share the CPU), decide, write.

    ``out_dir`` receives report.md, results.json, figures.png, and per provider its job and its
    process's stderr (``<name>.job.json``, ``<name>.log``).
    """
    items: list[Item] = load_dataset(data)
    names = [candidate] + ([baseline] if baseline and baseline != candidate else [])
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [run_provider(name, spec, items, out_dir, progress) for name in names]  # <name>.job.json, <name>.log
    decision = decide(runs[0], runs[1] if len(runs) > 1 else None, criteria)
    results = build_results(runs, decision, criteria, str(data))
    return BenchmarkResult(runs, decision, results, write_report(out_dir, runs, decision, results))
