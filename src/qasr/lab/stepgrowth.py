"""Which step of an iteration the growth happens in, and what each step's own process measured.

Two questions the whole-iteration verdict cannot answer for a scenario with steps (phases tagged
``:asr`` / ``:align``, or ``:A`` / ``:B`` in `switch`):

* **growth by step** (`growth_by_step`): an iteration's change is the sum of its steps' changes
  (each step runs from the previous step's last sample to its own last sample; the first step
  from the previous iteration's end). The running sum of one step's changes is a series like any
  other, so the same slope verdict (GUIDE §4) says whether *that step* grows faster than T. A
  buffer allocated and freed within one step counts for nothing; a leak counts in its step only.
* **step processes** (`step_processes`, the `chain` scenario): each step runs in its own
  short-lived process, so a leak inside it dies with it. Each step's peak and resident set after
  its turn are series across iterations (a growth there crossed a process boundary: growing
  inputs, files, a cache on disk), judged with the model-cycle T since every such process loads
  a model; and the resident bytes a step's turn leaves behind (after the turn minus after the
  load) say which step a per-call leak is in, though one call cannot say it is a leak.
"""

from __future__ import annotations

import statistics
from typing import Any

from qasr.lab.scenarios import model_cycle_threshold
from qasr.lab.units import format_bytes, format_rate
from qasr.lab.verdict import slope_verdict

#: Lab-child metrics split by step.
STEP_METRICS = ("rss_anon", "heap_live")
#: Series of each step's own process that get a verdict.
PROCESS_SERIES = ("peak_rss", "rss_anon_done")


def _tag(phase: str) -> str | None:
    return phase.split(":", 1)[1] if ":" in phase else None


def step_ends(phases: list[str]) -> dict[str, str]:
    """Each step (phase tag, in order) and the last phase of it; empty unless there are two steps or more."""
    ends: dict[str, str] = {}
    for phase in phases:
        tag = _tag(phase)
        if tag is not None:
            ends.pop(tag, None)  # keep the order of the steps' last phases
            ends[tag] = phase
    return ends if len(ends) > 1 else {}


def growth_by_step(iterations: list[dict[str, Any]], thresholds: dict[str, float]) -> dict[str, Any] | None:
    """Slope verdicts per step on the running sum of its changes; None for scenarios without steps."""
    if len(iterations) < 2:
        return None
    ends = step_ends(list(iterations[0].get("phases", {})))
    if not ends:
        return None
    steps: dict[str, dict[str, Any]] = {tag: {} for tag in ends}
    for metric in STEP_METRICS:
        if metric not in thresholds:
            continue
        running = {tag: 0.0 for tag in ends}
        series: dict[str, list[float | None]] = {tag: [] for tag in ends}
        previous: float | None = None  # the value at the end of the last step so far
        for it in iterations:
            phases = it.get("phases", {})
            for tag, end in ends.items():
                value = (phases.get(end) or {}).get(metric)
                if isinstance(value, (int, float)) and previous is not None:
                    running[tag] += value - previous
                series[tag].append(running[tag] if isinstance(value, (int, float)) else None)
                if isinstance(value, (int, float)):
                    previous = value
        for tag in ends:
            steps[tag][metric] = slope_verdict(series[tag], thresholds[metric]).to_dict()
    leaking = [tag for tag, found in steps.items() if any(v["verdict"] == "LEAK" for v in found.values())]
    return {"steps": steps, "leaking": leaking, "explanation": _explain(steps, leaking)}


def _explain(steps: dict[str, dict[str, Any]], leaking: list[str]) -> str:
    def rate(tag: str) -> str:
        found = steps[tag]
        metric = "heap_live" if "heap_live" in found else next(iter(found), None)
        return f"{tag} {format_rate(found[metric]['slope_bytes_per_iter'])} ({metric})" if metric else f"{tag} n/a"

    shown = ", ".join(rate(tag) for tag in steps)
    if not leaking:
        return f"no step grows faster than T: {shown}"
    # A step that shrinks by more than T frees what an earlier one allocated: the leak is the net
    # of the two, and where it was allocated is not certain (a buffer handed on is not a leak).
    giving = [tag for tag, found in steps.items() if any(v["ci_high"] < -v["threshold"] for v in found.values())]
    handed = f"; step {', '.join(giving)} gives back part of it, so some of it is memory handed from one step to the next" if giving else ""
    return f"the growth is in step {', '.join(leaking)}: {shown}{handed}"


def _figure(steps: dict[str, Any] | None, name: str, key: str) -> float | None:
    fig = (steps or {}).get(name) or {}
    if key == "peak_rss":
        return fig.get("peak_rss")
    memory = fig.get("memory") or {}
    done, loaded = (memory.get("done") or {}).get("rss_anon"), (memory.get("loaded") or {}).get("rss_anon")
    if key == "rss_anon_done":
        return done
    if key == "turn_residue":
        return done - loaded if isinstance(done, int) and isinstance(loaded, int) else None
    return fig.get(key)


def _median(values: list[float | None], scale: float = 1.0) -> float | None:
    xs = [v * scale for v in values if isinstance(v, (int, float))]
    return statistics.median(xs) if xs else None


def step_processes(iterations: list[dict[str, Any]], models: list[dict[str, Any]] | None, threshold: int | None = None) -> dict[str, Any] | None:
    """Per step's process: verdicts on its peak and resident set across iterations, turn residue, timing."""
    names = list(next((it["steps"] for it in iterations if it.get("steps")), None) or {})
    if not names:
        return None
    out: dict[str, Any] = {}
    for k, name in enumerate(names):
        weights = ((models or [])[k] if k < len(models or []) else {}).get("weight_bytes")
        t = threshold if threshold is not None else model_cycle_threshold(weights)
        per = [it.get("steps") for it in iterations]
        entry: dict[str, Any] = {"threshold": t, "verdicts": {}}
        for key in PROCESS_SERIES:
            values = [_figure(s, name, key) for s in per]
            if any(isinstance(v, (int, float)) for v in values):
                entry["verdicts"][key] = slope_verdict(values, t).to_dict()
            entry[f"{key}_median"] = _median(values)
        residue = [_figure(s, name, "turn_residue") for s in per]
        entry["turn_residue_median"] = _median(residue)
        entry["wall_ms_median"] = _median([_figure(s, name, "wall_seconds") for s in per], 1000)
        entry["load_ms_median"] = _median([_figure(s, name, "load_seconds") for s in per], 1000)
        out[name] = entry
    return out


def combine(verdict: str | None, reason: str, processes: dict[str, Any] | None) -> tuple[str | None, str]:
    """The run's verdict with the step processes' series: growth that crossed a process boundary is a leak."""
    for name, entry in (processes or {}).items():
        for key, v in entry["verdicts"].items():
            if v["verdict"] == "LEAK":
                return "LEAK", (
                    f"the {name} step's process starts fresh every iteration, yet its {key} grows "
                    f"{format_rate(v['slope_bytes_per_iter'])} (T {format_bytes(v['threshold'])}): something outside it grows"
                )
    return verdict, reason


def residue_leader(processes: dict[str, Any] | None) -> str | None:
    """One sentence naming the step whose turn leaves the most resident memory behind, if any does."""
    rows = [(name, e["turn_residue_median"]) for name, e in (processes or {}).items() if e.get("turn_residue_median") is not None]
    if not rows:
        return None
    name, most = max(rows, key=lambda r: r[1])
    others = ", ".join(f"{n} {format_bytes(v)}" for n, v in rows if n != name)
    return (
        f"the {name} step's turn leaves the most resident memory behind in its process (median {format_bytes(most)}"
        + (f"; {others}" if others else "")
        + "); its process ends after the turn, so none of it carries into the next iteration"
    )
