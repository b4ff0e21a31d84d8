"""One scenario on each engine build under each allocator, side by side (``qasr lab matrix``).

Allocator retention looks like a leak on RSS alone; running the same scenario under glibc, two
arenas, per-iteration ``malloc_trim`` and jemalloc separates what the program holds from what the
allocator keeps. The same table with several libchatllm builds as rows answers the other question a
fix raises: does this build still leak, or still abort, where that one did? Rows are engines x
allocators, each a normal lab run with its own run directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from qasr.fileio import write_atomic
from qasr.lab.analysis import crash_text
from qasr.lab.config import ALLOCATORS, RunConfig
from qasr.lab.engines import EngineBuild, engine_table, resolve_engines
from qasr.lab.runner import RunOutcome, run, unique_dir


#: The engine column of a user's or provider scenario run without --engine: $QASR_CHATLLM_LIB, or whatever the code loads.
NO_ENGINE = "(default)"


def _row(engine: EngineBuild | None, allocator: str, outcome: RunOutcome) -> dict[str, Any]:
    """What the table shows of one run, and what matrix.json keeps of it."""
    s = outcome.summary
    v = s.get("verdicts", {})
    wall = ((s.get("timing") or {}).get("wall_ms") or {}).get("median")
    return {
        "engine": engine.label if engine else NO_ENGINE,
        "engine_path": str(engine.path) if engine else None,
        "engine_identity": engine.to_dict() if engine else None,
        "allocator": allocator,
        "status": s["status"],
        "crash": s.get("crash") and {k: s["crash"].get(k) for k in ("signal_name", "exit_code", "iteration", "phase")},
        "iterations": s["iterations_completed"],
        "run_dir": str(outcome.run_dir),
        "rss_anon": v.get("rss_anon"),
        "heap_live": v.get("heap_live"),
        "attribution": (s.get("attribution") or {}).get("kind"),
        "verdict": s.get("verdict"),
        "median_seconds_per_iteration": round(wall / 1000, 4) if isinstance(wall, (int, float)) else None,
    }


def run_matrix(
    cfg: RunConfig,
    allocators: tuple[str, ...] = ALLOCATORS,
    *,
    engines: list[EngineBuild] | None = None,
    show_progress: bool = True,
) -> tuple[Path, list[dict[str, Any]]]:
    """Run ``cfg`` once per engine and allocator; write matrix.json and matrix.md; return (dir, rows).

    ``engines`` default to the one ``cfg.engine`` names (or the default engine), resolved before
    the first run; a user's scenario (``cfg.target``) given no engine runs with none of ours.
    """
    builds: list[EngineBuild | None] = list(engines or [])
    if not builds:
        builds = [None] if cfg.target and not cfg.engine else list(resolve_engines([cfg.engine] if cfg.engine else []))
    rows: list[dict[str, Any]] = []
    for engine in builds:
        for allocator in allocators:
            outcome = run(replace(cfg, allocator=allocator, engine=str(engine.path) if engine else None), show_progress=show_progress)
            rows.append(_row(engine, allocator, outcome))
    out = unique_dir(Path(cfg.results_dir) / "matrix" / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.scenario}")
    write_atomic(out / "matrix.json", json.dumps(rows, indent=2, default=str))
    write_atomic(out / "matrix.md", render(cfg.scenario, rows))
    return out, rows


def _cell(v: dict[str, Any] | None) -> str:
    if not v:
        return "n/a"
    return f"{v['verdict']} {v['slope_bytes_per_iter'] / 1024:+,.1f} KiB [{v['ci_low'] / 1024:+,.1f}, {v['ci_high'] / 1024:+,.1f}]"


def _status(r: dict[str, Any]) -> str:
    return f"{r['status']}: {crash_text(r['crash'])}" if r.get("crash") else r["status"]


def _seconds(r: dict[str, Any]) -> str:
    s = r.get("median_seconds_per_iteration")
    return "n/a" if s is None else f"{s:.3f}"


def render(scenario: str, rows: list[dict[str, Any]]) -> str:
    """matrix.md: one row per engine and allocator, then the engines' identities."""
    engines = {r["engine"]: r.get("engine_identity") or {"label": r["engine"]} for r in rows if r.get("engine_identity")}
    title = "Engine matrix" if len(engines) > 1 else "Allocator matrix"
    identities = [*engine_table(list(engines.values())), ""] if engines else []
    lines = [
        f"# {title}: `{scenario}`",
        "",
        "| engine | allocator | status | iterations | RssAnon slope/iter | live-heap slope/iter | attribution | median s/iter | run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['engine']} | {r['allocator']} | {_status(r)} | {r['iterations']} | {_cell(r['rss_anon'])} | {_cell(r['heap_live'])} "
            f"| {r['attribution'] or 'n/a'} | {_seconds(r)} | `{r['run_dir']}` |"
        )
    lines += ["", *identities, "Under jemalloc the live-heap column is n/a: mallinfo2 describes glibc's heap, which jemalloc replaces.", ""]
    return "\n".join(lines)
