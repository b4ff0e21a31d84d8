"""The benchmark's outputs: a table for the terminal, ``report.md``, ``results.json`` and ``figures.png``.

All of them are rendered from one results document (`build_results`), so the table, the report and
the JSON can never disagree. A provider whose engine was the qasr test double is labelled so
wherever its name appears: its figures measure the double, not chatllm.cpp.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from qasr.benchmark.decision import MIB, Criteria, Decision, Summary, summarise
from qasr.benchmark.runner import ProviderRun
from qasr.fileio import write_atomic

COLUMNS = ("provider", "files", "failed", "WER", "CER", "RTF", "TTFT s", "load s", "peak RSS MiB")


def label(run: ProviderRun) -> str:
    return f"{run.name} (test double)" if run.describe.get("is_test_double") else run.name


def build_results(runs: list[ProviderRun], decision: Decision, criteria: Criteria, data: str) -> dict[str, Any]:
    """Everything measured, the summaries and the decision: what results.json holds."""
    return {
        "data": data,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "criteria": {"max_rtf": criteria.max_rtf, "min_improvement": criteria.min_improvement,
                     "rss_budget_bytes": criteria.rss_budget_bytes, "max_failed": criteria.max_failed},
        "providers": [{"label": label(r), "summary": summarise(r).__dict__, **r.to_dict()} for r in runs],
        "decision": decision.to_dict(),
    }  # fmt: skip


def _cell(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def row(summary: Summary, name: str) -> list[str]:
    return [name, str(summary.files), str(summary.failed), _cell(summary.wer), _cell(summary.cer), _cell(summary.rtf),
            _cell(summary.ttft_seconds), _cell(summary.load_seconds), f"{summary.peak_rss_bytes / MIB:.0f}"]  # fmt: skip


def table(runs: list[ProviderRun]) -> str:
    """A plain fixed-width table (it reads the same in a terminal, a log and a CI page)."""
    rows = [list(COLUMNS)] + [row(summarise(r), label(r)) for r in runs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def decision_text(decision: Decision) -> str:
    marks = [f"  [{'x' if c.passed else ' '}] {c.name}: {c.detail}" for c in decision.checks]
    return "\n".join([decision.line(), *marks])


def markdown(runs: list[ProviderRun], decision: Decision, results: dict[str, Any]) -> str:
    out = [f"# Benchmark: {decision.line()}", "", f"Data: `{results['data']}`; machine: {results['machine']['cpus']} CPUs, "
           f"{results['machine']['platform']}.", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]  # fmt: skip
    out += ["| " + " | ".join(row(summarise(r), label(r))) + " |" for r in runs]
    out += ["", "## Decision", "", f"**{decision.verdict}**", ""]
    out += [f"- {'✅' if c.passed else '❌'} **{c.name}**: {c.detail}" for c in decision.checks]
    out += ["", "## Providers", ""]
    for r in runs:
        what = ", ".join(f"{k}: `{v}`" for k, v in r.describe.items() if v not in (None, "") and k != "provider")
        out.append(f"- **{label(r)}**: {what or 'did not start'}" + (f"; **{r.reason}**: {r.error}" if r.error else "") + f"; process: {r.exit}")
        if r.describe.get("is_test_double"):
            out.append("  - the engine was the **qasr test double, not chatllm.cpp**: these figures measure canned text")
    out += ["", "## Files", "", "| provider | file | language | text or error |", "|---|---|---|---|"]
    for r in runs:
        for o in r.outcomes:
            shown = o.text if o.error is None else f"**error**: {o.error}"
            out.append(f"| {r.name} | `{Path(o.source).name}` | {o.language} | {(shown or '').replace('|', '/')} |")
    out += ["", "WER for English and CER for Chinese (ITN and OpenCC t2s on both sides first), corpus-level; RTF is total "
            "inference time over total audio time; TTFT only for a provider that streams tokens; peak RSS is the "
            "provider's own process (VmHWM). Method: docs/benchmark.md.", ""]  # fmt: skip
    return "\n".join(out)


def chart(runs: list[ProviderRun], path: Path) -> Path:
    """Bars per provider: each error rate, RTF, load time and peak RSS, one panel each."""
    from qasr.lab.report.plots import pyplot

    plt = pyplot()
    summaries = [(label(r), summarise(r)) for r in runs]
    panels = [("WER", lambda s: s.wer), ("CER", lambda s: s.cer), ("RTF", lambda s: s.rtf),
              ("load (s)", lambda s: s.load_seconds), ("peak RSS (MiB)", lambda s: s.peak_rss_bytes / MIB)]  # fmt: skip
    panels = [(t, f) for t, f in panels if any(f(s) is not None for _, s in summaries)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6), squeeze=False)
    colours = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]
    for ax, (title, value) in zip(axes[0], panels):
        values = [value(s) or 0.0 for _, s in summaries]
        ax.bar(range(len(values)), values, color=colours[: len(values)])
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels([name for name, _ in summaries], rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out_dir: Path, runs: list[ProviderRun], decision: Decision, results: dict[str, Any]) -> list[Path]:
    """report.md, results.json and figures.png in ``out_dir`` (each written whole, or not at all)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report, data = out_dir / "report.md", out_dir / "results.json"
    write_atomic(data, json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    write_atomic(report, markdown(runs, decision, results))
    return [report, data, chart(runs, out_dir / "figures.png")]
