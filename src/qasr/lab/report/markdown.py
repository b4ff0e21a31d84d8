"""report.md: what was run, what it concluded, and the figures behind it, for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qasr.engine.modelfile import SYNTHETIC_NOTE
from qasr.fileio import write_atomic
from qasr.lab.analysis import RunRecords
from qasr.lab.units import format_bytes

STATUS_TEXT = {
    "completed": "completed all iterations",
    "crashed": "CRASHED",
    "interrupted": "was interrupted (partial report)",
    "error": "stopped with an error",
}


def _kib(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 1024:+,.1f} KiB"


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _partial_section(partial: dict[str, Any] | None) -> list[str]:
    if not partial:
        return []
    lines = [f"Recorded in iteration {partial.get('i')} before it ended:", ""]
    phases = partial.get("phases") or {}
    if phases:
        lines += ["| phase | RssAnon | live heap | VmSize |", "|---|---|---|---|"]
        for name, mem in phases.items():
            mem = mem or {}
            lines.append(f"| {name} | {format_bytes(mem.get('rss_anon'))} | {format_bytes(mem.get('heap_live'))} | {format_bytes(mem.get('vm_size'))} |")
        lines.append("")
    for t in partial.get("turns") or []:
        lines.append(f"- Engine output ({t.get('seconds')} s): `{str(t.get('text'))[:200]}`")
    return lines + [""]


def _crash_section(crash: dict[str, Any], completed: int) -> list[str]:
    where = f"iteration {crash.get('iteration')}, phase `{crash.get('phase')}`"
    how = crash.get("signal_name") or f"exit code {crash.get('exit_code')}"
    lines = [
        "## How it ended",
        "",
        f"The child process ended with **{how}** in {where}. The {completed} iterations recorded before it are analysed below.",
        "",
    ]
    err = crash.get("error")
    if err:
        lines += [f"Error recorded by the child: `{err.get('kind')}: {err.get('message')}`", ""]
        if err.get("traceback"):
            lines += ["Traceback (the lab's own frames left out):", "", "```", err["traceback"].rstrip(), "```", ""]
    tail = crash.get("stderr_tail") or []
    if tail:
        lines += ["Last lines of the child's stderr:", "", "```", *tail[-10:], "```", ""]
    if crash.get("phase", "") and str(crash.get("phase")).startswith("destroy") and crash.get("signal_name") == "SIGABRT":
        lines += [
            "This is upstream chatllm.cpp's known abort in `chatllm_destroy` for Qwen3-ASR and aligner models "
            "(a `unique_ptr` in `CoreAttention` owns the address of a member; README, known engine issue 1). "
            "Destroy-based scenarios cannot run past their first destroy until it is fixed upstream.",
            "",
        ]
    return lines


def _steps_section(summary: dict[str, Any]) -> list[str]:
    """Growth split by step (tagged phases) and, for `chain`, what each step's own process measured."""
    lines: list[str] = []
    by_step = summary.get("growth_by_step")
    if by_step:
        lines += ["## Growth by step", "", f"Attribution to a step: {by_step['explanation']}.", "",
                  "| step | metric | verdict | slope | 95% low | 95% high |", "|---|---|---|---|---|---|"]  # fmt: skip
        for step, found in by_step["steps"].items():
            for metric, v in found.items():
                lines.append(f"| {step} | {metric} | **{v['verdict']}** | {_kib(v['slope_bytes_per_iter'])} | {_kib(v['ci_low'])} | {_kib(v['ci_high'])} |")
        lines.append("")
    processes = summary.get("step_processes")
    if processes:
        lines += ["## Step processes (one short-lived process per step and iteration)", "",
                  "| step | peak RSS | RssAnon after turn | turn residue | load ms | wall ms | verdict on peak | verdict on RssAnon after turn |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for step, e in processes.items():
            v = e["verdicts"]

            def cell(key: str) -> str:
                return f"**{v[key]['verdict']}** {_kib(v[key]['slope_bytes_per_iter'])}" if key in v else "n/a"

            lines.append(
                f"| {step} | {format_bytes(e.get('peak_rss_median'))} | {format_bytes(e.get('rss_anon_done_median'))} "
                f"| {format_bytes(e.get('turn_residue_median'))} | {_fmt(e.get('load_ms_median'))} | {_fmt(e.get('wall_ms_median'))} "
                f"| {cell('peak_rss')} | {cell('rss_anon_done')} |"
            )
        lines += ["", "Medians over iterations; slopes per iteration against T = " + format_bytes(next(iter(processes.values()))["threshold"]) + "."]
        if summary.get("step_residue"):
            lines += ["", f"Residue: {summary['step_residue']}."]
        lines.append("")
    return lines


def _python_sites_section(sites: dict[str, Any] | None) -> list[str]:
    """The source lines whose Python memory grew (--python-heap), from tracemalloc's two snapshots."""
    if not sites:
        return []
    lines = [f"## Python allocation sites (tracemalloc, iterations {sites['from_iteration']} → {sites['to_iteration']})", ""]
    if not sites.get("rows"):
        return lines + ["No source line holds more Python memory at the end than after the warm-up.", ""]
    lines += ["| where | bytes/iter | allocations/iter |", "|---|---|---|"]
    for row in sites["rows"]:
        lines.append(f"| `{row['where']}` | {format_bytes(row['bytes_per_iter'])} | {row['allocations_per_iter']:.1f} |")
    return lines + [""]


def _sampled_text(sampled: dict[str, Any] | None) -> str:
    """Which process the verdicts are about (`qasr.lab.engineproc`)."""
    if not sampled or sampled.get("process") != "engine":
        return f"the lab's own child process (pid {(sampled or {}).get('pid', 'n/a')}), where the engine runs"
    many = sampled.get("distinct_pids", 0)
    pids = ", ".join(str(p) for p in sampled.get("pids") or [])
    return (f"**the provider's engine process** ({'one process, pid ' + pids if many == 1 else f'{many} processes, one per iteration: pid {pids}...'}): "
            f"RSS from /proc/PID, live heap from mallinfo2 in that process; the lab's own process (pid {sampled.get('lab_pid')}) "
            f"is the second series, at phase `{sampled.get('lab_phase')}`")  # fmt: skip


def _lab_process_section(lab: dict[str, Any] | None) -> list[str]:
    if not lab:
        return []
    lines = [f"### The lab's own process (pid {lab.get('pid')}, phase `{lab.get('phase')}`): **{lab.get('verdict')}** — {lab.get('verdict_reason')}", "",
             "| metric | verdict | slope | 95% low | 95% high | T |", "|---|---|---|---|---|---|"]  # fmt: skip
    for metric, v in (lab.get("verdicts") or {}).items():
        if metric in ("rss_anon", "heap_live", "uss"):
            lines.append(f"| {metric} | {v['verdict']} | {_kib(v['slope_bytes_per_iter'])} | {_kib(v['ci_low'])} | {_kib(v['ci_high'])} | {format_bytes(v['threshold'])} |")
    attribution = lab.get("attribution")
    return lines + ["", *([f"Attribution: {attribution['kind']} — {attribution['explanation']}", ""] if attribution else [])]


def render(summary: dict[str, Any]) -> str:
    cfg = summary.get("config", {})
    engine = summary.get("engine") or {}
    target = summary.get("target")
    over = cfg.get("provider") if str(target).startswith("qasr.lab.providerscenarios") else None
    lines = [
        f"# Lab run: `{summary['scenario']}`" + (f" over the `{over}` provider" if over else " (your code)" if target else ""),
        "",
        f"Status: **{summary['status']}** — {STATUS_TEXT.get(summary['status'], '')}; "
        f"{summary['iterations_completed']} of {summary['iterations_planned']} iterations recorded.",
        "",
        "## Setup",
        "",
        *([f"- Scenario: `{target}` (each iteration calls it once)"] if target and not over else []),
        *([f"- Provider: `{cfg['provider']}`"] if cfg.get("provider") else []),
        *([f"- Engine: `{engine.get('path', 'n/a')}`" + (" (**the qasr test double, not chatllm.cpp**)" if engine.get("is_test_double") else "")]
          if engine or not target else []),
        f"- Allocator: `{summary.get('allocator')}`; heap statistics: {'yes' if summary.get('heap_stats') else 'no'}"
        + (f" ({summary.get('heap_stats_note')})" if summary.get("heap_stats_note") and not summary.get("heap_stats") else ""),
    ]
    for m in summary.get("models") or []:
        lines.append(f"- Model: `{m.get('path')}` — {m.get('name')}, {m.get('kind')}, {m.get('dtype')}, weights {format_bytes(m.get('weight_bytes'))}"
                     + (f" — **{SYNTHETIC_NOTE}**" if m.get("synthetic") else ""))
    for a in summary.get("audio") or []:
        lines.append(f"- Audio: `{a.get('path')}` ({a.get('seconds')} s)")
    if not target or cfg.get("context"):
        lines.append(f"- Context (system prompt): `{cfg['context']}`" if cfg.get("context") else "- Context (system prompt): none")
    if cfg.get("python_heap"):
        lines.append("- Python heap traced with tracemalloc (`py_heap`; slows Python code)")
    lines += [
        f"- Iterations: {cfg.get('iterations')}; series sampled at phase `{summary.get('final_phase')}` after `gc.collect()`",
        f"- Process sampled: {_sampled_text(summary.get('sampled_process'))}",
        "",
    ]
    if summary.get("crash"):
        lines += _crash_section(summary["crash"], summary["iterations_completed"])
    if summary["status"] != "completed":
        lines += _partial_section(summary.get("partial_iteration"))

    lines += ["## Verdicts", ""]
    if summary.get("verdict"):
        lines += [f"**Verdict: {summary['verdict']}** — {summary.get('verdict_reason')}.", ""]
    verdicts = summary.get("verdicts") or {}
    if not verdicts:
        lines += ["No iteration finished, so there is no series to judge.", ""]
    else:
        lines += [
            "Slope per iteration with one-sided 95% bounds, against threshold T (GUIDE §4: warm-up dropped, rolling median, "
            "fit y = a + b(1 − e^(−i/τ)) + c·i).",
            "",
            "| metric | verdict | slope | 95% low | 95% high | T | τ | n used |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for metric, v in verdicts.items():
            tau = "—" if v.get("tau") is None else f"{v['tau']:.1f}"
            lines.append(
                f"| {metric} | **{v['verdict']}** | {_kib(v['slope_bytes_per_iter'])} | {_kib(v['ci_low'])} | {_kib(v['ci_high'])} "
                f"| {format_bytes(v['threshold'])} | {tau} | {v['n_used']} |"
            )
        lines.append("")
        head = verdicts.get("rss_anon")
        if head:
            lines += [f"Headline (RssAnon): {head['reason']}", ""]
        attribution = summary.get("attribution")
        if attribution:
            lines += [f"Attribution: **{attribution['kind']}** — {attribution['explanation']}", ""]
    lines += _lab_process_section(summary.get("lab_process"))
    if summary.get("attempts"):
        tried = ", ".join(f"N={a['iterations']}: {a['verdict']}" for a in summary["attempts"])
        lines += [f"Extended because INCONCLUSIVE: {tried}.", ""]
    trim = summary.get("trim")
    if trim:
        before, after = trim.get("before") or {}, trim.get("after") or {}
        if before.get("rss_anon") is not None and after.get("rss_anon") is not None:
            lines += [
                f"`malloc_trim(0)` at the end gave back {format_bytes(before['rss_anon'] - after['rss_anon'])} of RssAnon "
                f"({format_bytes(before['rss_anon'])} → {format_bytes(after['rss_anon'])}).",
                "",
            ]

    trace = summary.get("native_trace")
    if trace:
        lines += [f"## Native allocation sites (memray differential, N = {trace['n']} and {2 * trace['n']})", ""]
        if trace.get("error"):
            lines += [f"Not available: {trace['error']}.", ""]
        elif not trace.get("stacks"):
            lines += ["No call stack holds more live memory after 2N iterations than after N.", ""]
        for row in trace.get("stacks") or []:
            lines.append(f"- **{format_bytes(row['bytes_per_iter'])}/iter** ({row['allocations_per_iter']:.1f} allocations/iter)")
            lines += [f"    - `{frame}`" for frame in row["stack"]]
        lines.append("")

    lines += _python_sites_section(summary.get("python_sites"))
    lines += _steps_section(summary)

    deltas = summary.get("phase_deltas") or []
    if deltas:
        lines += ["## Per-phase deltas (median over iterations)", "", "| step | RssAnon | live heap | VmSize |", "|---|---|---|---|"]
        for r in deltas:
            lines.append(f"| {r['from']} → {r['to']} | {_kib(r.get('rss_anon'))} | {_kib(r.get('heap_live'))} | {_kib(r.get('vm_size'))} |")
        lines.append("")

    timing = summary.get("timing") or {}
    rows = [(k, timing.get(k)) for k in ("wall_ms", "load_ms", "ttft_ms", "tokens_per_second", "rtf", "align_ms", "align_load_ms", "lab_overhead_ms")]
    rows = [(k, s) for k, s in rows if s]
    if rows:
        lines += ["## Timing", "", "| figure | median | mean | p95 | n |", "|---|---|---|---|---|"]
        for k, s in rows:
            digits = 3 if k == "rtf" else 1
            lines.append(f"| {k} | {_fmt(s['median'], digits)} | {_fmt(s['mean'], digits)} | {_fmt(s['p95'], digits)} | {s['n']} |")
        peak = timing.get("peak_rss_bytes")
        if peak:
            lines.append(f"\nPeak RSS within an iteration (background sampler): up to {format_bytes(peak['max'])}.")
        lines.append("")

    acc = summary.get("accuracy") or {}
    if acc.get("first_text") is not None:
        lines += ["## Output and accuracy", ""]
        lines.append(f"- First output: `{str(acc['first_text'])[:300]}`")
        if acc.get("first_final_text") not in (None, acc["first_text"]):
            lines.append(f"- After post-processing: `{str(acc['first_final_text'])[:300]}`")
        if acc.get("same_as_first") is not None:
            lines.append(f"- Same output as iteration 1: {acc['same_as_first'] * 100:.0f}% of iterations")
        for key in ("wer", "cer"):
            if acc.get(key):
                lines.append(f"- {key.upper()}: median {acc[key]['median']:.3f}, mean {acc[key]['mean']:.3f}")
        lines.append("")

    files = summary.get("files") or []
    pngs = [f for f in files if f.endswith(".png")]
    if pngs:
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in pngs] + [""]
    if summary.get("report_errors"):
        lines += ["## Report problems", ""] + [f"- {e}" for e in summary["report_errors"]] + [""]
    lines += ["Files: " + ", ".join(f"`{f}`" for f in files), ""]
    return "\n".join(lines)


class MarkdownReporter:
    def write(self, summary: dict[str, Any], records: RunRecords, run_dir: Path) -> list[Path]:
        path = run_dir / "report.md"
        write_atomic(path, render(summary))
        return [path]
