"""From a run's JSONL records to its summary: verdicts, attribution, phase deltas, timing, accuracy.

Works on whatever was recorded: a run that aborted at iteration 37 is analysed on its 36 finished
iterations, and says how it ended.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qasr.lab.attribution import attribute
from qasr.processes import describe_exit
from qasr.lab.scenarios import default_threshold
from qasr.lab.stepgrowth import combine, growth_by_step, residue_leader, step_processes
from qasr.lab.verdict import SlopeVerdict, slope_verdict

#: Metrics that get a verdict, the first one is the headline.
VERDICT_METRICS = ("rss_anon", "heap_live", "py_heap", "uss", "vm_size", "vm_data", "rss_file", "heap_free")
PHASE_METRICS = ("rss_anon", "heap_live", "vm_size")


@dataclass
class RunRecords:
    """The records of one run, grouped by type."""

    meta: dict[str, Any] | None = None
    setup: dict[str, Any] | None = None
    iterations: list[dict[str, Any]] = field(default_factory=list)
    last_enter: dict[str, Any] | None = None
    trim: dict[str, Any] | None = None
    #: The lab's own process's trim when the series is an engine process's (`qasr.lab.engineproc`).
    lab_trim: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    #: With --python-heap: the source lines whose Python memory grew (`qasr.lab.pyheap`).
    python_sites: dict[str, Any] | None = None
    interrupted: bool = False
    ended: bool = False
    broken_lines: int = 0
    #: Phase samples and turns of the iteration that never finished (a crash mid-iteration).
    partial: dict[str, Any] = field(default_factory=dict)


def record_kind(rec: Any) -> str | None:
    """What a samples.jsonl line is: its ``kind`` (the lab child's channel records, `qasr.channel`) or
    its ``type`` (files written before). A channel error record is given the old shape too: its
    ``kind`` becomes the Python class, as the reports read it."""
    if not isinstance(rec, dict):
        return None
    if "type" in rec:
        return rec.get("type")
    kind = rec.get("kind")
    if kind == "error":
        rec["kind"] = rec.get("exception") or rec.get("error_class")
    return kind


def load_records(path: Path) -> RunRecords:
    """Read samples.jsonl; a line cut short by a crash is counted, not fatal."""
    data = RunRecords()
    if not path.exists():
        return data
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                data.broken_lines += 1
                continue
            kind = record_kind(rec)
            if kind == "meta":
                data.meta = rec
            elif kind == "setup":
                data.setup = rec
            elif kind == "enter":
                data.last_enter = rec
            elif kind == "iteration":
                data.iterations.append(rec)
                data.partial = {}
            elif kind == "sample":
                data.partial.setdefault("i", rec.get("i"))
                if rec.get("mem") is not None:
                    data.partial.setdefault("phases", {})[rec.get("phase")] = rec.get("mem")
                if rec.get("lab_mem") is not None:
                    data.partial.setdefault("lab_phases", {})[rec.get("phase")] = rec.get("lab_mem")
            elif kind == "step":
                data.partial.setdefault("i", rec.get("i"))
                data.partial.setdefault("steps", {})[rec.get("step")] = rec.get("figures")
            elif kind == "turn":
                data.partial.setdefault("i", rec.get("i"))
                data.partial.setdefault("turns", []).append({"text": rec.get("text"), "seconds": rec.get("seconds")})
            elif kind == "trim":  # "process": "engine" (its own malloc_trim) or "lab" (older runs: none)
                if rec.get("process") == "engine":
                    data.trim = rec
                else:
                    data.lab_trim = rec
            elif kind == "error":
                data.error = rec
            elif kind == "python_sites":
                data.python_sites = rec
            elif kind == "interrupted":
                data.interrupted = True
            elif kind == "end":
                data.ended = True
    if not engine_sampled(data):
        data.trim = data.lab_trim
    return data


def engine_sampled(records: RunRecords) -> bool:
    """Whether the series are an engine process's (the lab's own recorded beside them as ``lab_phases``)."""
    return any("lab_phases" in it for it in records.iterations) or bool((records.partial or {}).get("lab_phases"))


def _series(iterations: list[dict[str, Any]], phase: str, metric: str, key: str = "phases") -> list[float | None]:
    return [((it.get(key) or {}).get(phase) or {}).get(metric) for it in iterations]


def _stats(values: list[float | None], scale: float = 1.0) -> dict[str, float] | None:
    xs = sorted(v * scale for v in values if isinstance(v, (int, float)))
    if not xs:
        return None
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return {"n": len(xs), "median": statistics.median(xs), "mean": statistics.fmean(xs), "p95": p95, "min": xs[0], "max": xs[-1]}


def phase_deltas(iterations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median change of each metric across each step of an iteration (and into the next one)."""
    if not iterations:
        return []
    order = list(iterations[0].get("phases", {}).keys())
    steps = list(zip(order, order[1:]))
    rows = []
    for a, b in steps + ([(order[-1], order[0])] if len(order) > 1 else []):
        row: dict[str, Any] = {"from": a, "to": b}
        for metric in PHASE_METRICS:
            deltas = []
            for k, it in enumerate(iterations):
                start = it["phases"].get(a, {}).get(metric)
                if (b, a) == (order[0], order[-1]):  # wrap: last phase -> first phase of the next iteration
                    if k + 1 >= len(iterations):
                        break
                    end = iterations[k + 1]["phases"].get(b, {}).get(metric)
                else:
                    end = it["phases"].get(b, {}).get(metric)
                if isinstance(start, int) and isinstance(end, int):
                    deltas.append(end - start)
            row[metric] = statistics.median(deltas) if deltas else None
        rows.append(row)
    return rows


def weight_bytes(meta: dict[str, Any] | None) -> int | None:
    models = (meta or {}).get("models") or []
    sizes = [m.get("weight_bytes") for m in models if isinstance(m.get("weight_bytes"), int)]
    return max(sizes) if sizes else None


def series_phase(records: RunRecords) -> str | None:
    """The phase whose samples are judged: the scenario's final one, or, when an engine process was
    sampled, the scenario's ``engine_final_phase`` (a reload's engine process is gone after close)."""
    meta = records.meta or {}
    if engine_sampled(records) and meta.get("engine_final_phase"):
        return str(meta["engine_final_phase"])
    return meta.get("final_phase")


def verdicts(
    records: RunRecords, scenario: str, threshold: int | None = None, *, key: str = "phases"
) -> tuple[dict[str, SlopeVerdict], dict[str, list[float | None]]]:
    """A slope verdict per metric on the series at the end of each iteration (T: given, or the default).

    A user's scenario records ``threshold_kind`` in its meta record: its default T is that kind's
    (`qasr.lab.scenarios.USER_SCENARIO`), whatever the scenario is called. ``key="lab_phases"``: the
    lab's own process's series, when the main one is an engine process's."""
    phase = series_phase(records) if key == "phases" else (records.meta or {}).get("final_phase")
    if not phase or not records.iterations:
        return {}, {}
    scenario = (records.meta or {}).get("threshold_kind") or scenario
    wb = weight_bytes(records.meta)
    found, series = {}, {}
    for metric in VERDICT_METRICS:
        values = _series(records.iterations, phase, metric, key)
        if not any(isinstance(v, (int, float)) for v in values):
            continue
        series[metric] = values
        found[metric] = slope_verdict(values, threshold if threshold is not None else default_threshold(scenario, wb, metric))
    return found, series


def overall_verdict(found: dict[str, SlopeVerdict], attribution_kind: str | None) -> tuple[str | None, str]:
    """One verdict for the run from RssAnon and the live heap (GUIDE §4: T on RSS *or* live heap).

    A live heap that grows is a leak whatever RSS does. RSS that grows while the attribution says
    allocator retention is not called a leak (the allocator keeps freed memory; malloc_trim or
    another allocator gives it back). Both flat: no leak. Anything else stays INCONCLUSIVE.
    """
    rss, live, py = found.get("rss_anon"), found.get("heap_live"), found.get("py_heap")
    if rss is None and live is None:
        return None, "no series to judge"
    if live is not None and live.verdict.value == "LEAK":
        return "LEAK", "the live heap grows faster than its threshold"
    if py is not None and py.verdict.value == "LEAK":
        return "LEAK", "the Python heap (tracemalloc) grows faster than its threshold"
    if rss is not None and rss.verdict.value == "LEAK":
        if attribution_kind == "allocator retention":
            return "NO_LEAK", "RSS grows, but from allocator retention (freed memory the allocator keeps), not a leak"
        return "LEAK", "RssAnon grows faster than its threshold"
    if (rss is None or rss.verdict.value == "NO_LEAK") and (live is None or live.verdict.value == "NO_LEAK"):
        return "NO_LEAK", "RssAnon and the live heap stay below their thresholds"
    return "INCONCLUSIVE", "at least one of RssAnon and the live heap is inconclusive"


_RANK = {"NO_LEAK": 0, None: 0, "INCONCLUSIVE": 1, "LEAK": 2}


def _worse(verdict: str | None, reason: str, lab: dict[str, Any]) -> tuple[str | None, str]:
    """The run's verdict from the engine process's and the lab process's: the worse of the two."""
    if _RANK.get(lab.get("verdict"), 0) > _RANK.get(verdict, 0):
        return lab["verdict"], f"the lab's own process: {lab.get('verdict_reason')} (engine process: {verdict or 'no verdict'})"
    return verdict, reason


def _processes(records: RunRecords, config: dict[str, Any], scenario: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Which process the series sampled (pids), and, when it was an engine process, the lab's own
    process's verdicts as the second series."""
    meta = records.meta or {}
    if not engine_sampled(records):
        return {"process": "lab", "pid": meta.get("pid"), "phase": meta.get("final_phase")}, None
    phase = series_phase(records)
    pids = list(dict.fromkeys(((it.get("phases") or {}).get(phase) or {}).get("pid") for it in records.iterations))
    sampled = {"process": "engine", "pids": [p for p in pids if p is not None][:5], "distinct_pids": len([p for p in pids if p]),
               "phase": phase, "lab_pid": meta.get("pid"), "lab_phase": meta.get("final_phase")}  # fmt: skip
    found, series = verdicts(records, scenario, config.get("threshold"), key="lab_phases")
    if not found:
        return sampled, None
    thresholds = {m: v.threshold for m, v in found.items()}
    trim = records.lab_trim or {}
    attribution = attribute(series, thresholds, verdicts=found, trim_before=trim.get("before"), trim_after=trim.get("after")).to_dict()
    verdict, reason = overall_verdict(found, attribution.get("kind"))
    return sampled, {"pid": meta.get("pid"), "phase": meta.get("final_phase"), "verdict": verdict, "verdict_reason": reason,
                     "verdicts": {m: v.to_dict() for m, v in found.items()}, "attribution": attribution, "trim": records.lab_trim}  # fmt: skip


def crash_text(crash: dict[str, Any]) -> str:
    """How a run ended early, in one phrase: ``SIGABRT in iteration 1, phase destroy``."""
    how = crash.get("signal_name") or f"exit {crash.get('exit_code')}"
    return f"{how} in iteration {crash.get('iteration')}, phase {crash.get('phase')}"


def summarize(
    records: RunRecords, config: dict[str, Any], returncode: int | None, stderr_tail: list[str], *, interrupted: bool = False
) -> dict[str, Any]:
    """Everything the reports show, as one JSON-ready dict.

    ``interrupted``: the user stopped the run (the parent saw Ctrl-C), even when the child never got
    to record it (a KeyboardInterrupt raised inside an engine callback is swallowed by ctypes, and the
    parent then stops the child with SIGTERM after its grace period).
    """
    scenario = config["scenario"]
    its = records.iterations
    found, series = verdicts(records, scenario, config.get("threshold"))
    attribution = by_step = None
    if found:
        thresholds = {m: v.threshold for m, v in found.items()}
        by_step = growth_by_step(its, thresholds)
        trim = records.trim or {}
        attribution = attribute(series, thresholds, verdicts=found, trim_before=trim.get("before"), trim_after=trim.get("after")).to_dict()

    if records.ended and returncode == 0:
        status = "completed"
    elif records.interrupted or interrupted or returncode in (130, -2):
        status = "interrupted"
    elif returncode is not None and (returncode < 0 or returncode in (134, 137, 139)):
        status = "crashed"
    else:
        status = "error"
    crash = None
    if status in ("crashed", "error"):
        crash = {
            **describe_exit(returncode),
            "iteration": (records.last_enter or {}).get("i"),
            "phase": (records.last_enter or {}).get("phase"),
            "stderr_tail": stderr_tail,
            "error": records.error,
        }
    verdict, verdict_reason = overall_verdict(found, (attribution or {}).get("kind"))
    sampled, lab_process = _processes(records, config, scenario)
    if lab_process is not None:
        verdict, verdict_reason = _worse(verdict, verdict_reason, lab_process)
    processes = step_processes(its, (records.meta or {}).get("models"), config.get("threshold"))
    verdict, verdict_reason = combine(verdict, verdict_reason, processes)
    extras = [it.get("extra") or {} for it in its]
    texts = [it.get("text") for it in its]
    return {
        "scenario": scenario,
        "status": status,
        "iterations_planned": config.get("iterations"),
        "iterations_completed": len(its),
        "config": config,
        "engine": (records.meta or {}).get("engine"),
        "models": (records.meta or {}).get("models"),
        "audio": (records.meta or {}).get("audio"),
        "allocator": config.get("allocator"),
        "heap_stats": (records.meta or {}).get("heap_stats"),
        "heap_stats_note": (records.meta or {}).get("heap_stats_note"),
        "weight_bytes": weight_bytes(records.meta),
        "final_phase": series_phase(records),
        "sampled_process": sampled,
        "lab_process": lab_process,
        "crash": crash,
        "verdict": verdict,
        "verdict_reason": verdict_reason,
        "verdicts": {m: v.to_dict() for m, v in found.items()},
        "attribution": attribution,
        "growth_by_step": by_step,
        "step_processes": processes,
        "step_residue": residue_leader(processes),
        "trim": records.trim,
        "target": config.get("target"),
        "python_sites": records.python_sites,
        "phase_deltas": phase_deltas(its),
        "setup": (records.setup or {}).get("phases"),
        "baseline": (records.meta or {}).get("baseline"),
        "timing": {
            "wall_ms": _stats([it.get("wall_seconds") for it in its], 1000),
            "load_ms": _stats([it.get("load_seconds") for it in its], 1000),
            "ttft_ms": _stats([it.get("ttft_seconds") for it in its], 1000),
            "tokens_per_second": _stats([it.get("tokens_per_second") for it in its]),
            "rtf": _stats([it.get("rtf") for it in its]),
            "align_ms": _stats([e.get("align_seconds") for e in extras], 1000),
            "align_load_ms": _stats([e.get("align_load_seconds") for e in extras], 1000),
            "lab_overhead_ms": _stats([it.get("lab_overhead_seconds") for it in its], 1000),
            "peak_rss_bytes": _stats([it.get("peak_rss") for it in its]),
        },
        "accuracy": {
            "wer": _stats([it.get("wer") for it in its]),
            "cer": _stats([it.get("cer") for it in its]),
            "same_as_first": (sum(1 for it in its if it.get("same_as_first")) / len(its)) if its else None,
            "first_text": texts[0] if texts else None,
            "first_final_text": its[0].get("final_text") if its else None,
        },
        "broken_lines": records.broken_lines,
        "partial_iteration": records.partial or None,
    }
