"""One scenario under each allocator, slopes side by side (``qasr lab matrix``).

Allocator retention looks like a leak on RSS alone; running the same scenario under glibc, two
arenas, per-iteration ``malloc_trim`` and jemalloc separates what the program holds from what the
allocator keeps.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from qasr.lab.config import ALLOCATORS, RunConfig
from qasr.lab.runner import RunOutcome, run


def run_matrix(cfg: RunConfig, allocators: tuple[str, ...] = ALLOCATORS, *, show_progress: bool = True) -> tuple[Path, list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    for allocator in allocators:
        outcome: RunOutcome = run(replace(cfg, allocator=allocator), show_progress=show_progress)
        s = outcome.summary
        v = s.get("verdicts", {})
        rows.append(
            {
                "allocator": allocator,
                "status": s["status"],
                "iterations": s["iterations_completed"],
                "run_dir": str(outcome.run_dir),
                "rss_anon": v.get("rss_anon"),
                "heap_live": v.get("heap_live"),
                "attribution": (s.get("attribution") or {}).get("kind"),
            }
        )
    out = Path(cfg.results_dir) / "matrix" / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.scenario}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "matrix.json").write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    (out / "matrix.md").write_text(render(cfg.scenario, rows), encoding="utf-8")
    return out, rows


def _cell(v: dict[str, Any] | None) -> str:
    if not v:
        return "n/a"
    return f"{v['verdict']} {v['slope_bytes_per_iter'] / 1024:+,.1f} KiB [{v['ci_low'] / 1024:+,.1f}, {v['ci_high'] / 1024:+,.1f}]"


def render(scenario: str, rows: list[dict[str, Any]]) -> str:
    lines = [
        f"# Allocator matrix: `{scenario}`",
        "",
        "| allocator | status | iterations | RssAnon slope/iter | live-heap slope/iter | attribution | run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['allocator']} | {r['status']} | {r['iterations']} | {_cell(r['rss_anon'])} | {_cell(r['heap_live'])} "
            f"| {r['attribution'] or 'n/a'} | `{r['run_dir']}` |"
        )
    lines += ["", "Under jemalloc the live-heap column is n/a: mallinfo2 describes glibc's heap, which jemalloc replaces.", ""]
    return "\n".join(lines)
