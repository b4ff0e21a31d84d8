"""Put two lab runs side by side: memory slopes and time per iteration, with intervals.

The seed study reported "restart() has 192x less overhead than destroy/recreate" from two RSS
growth figures. Here each run's slope comes with its one-sided 95% bounds, and the ratio of slopes
gets the interval those bounds imply (only meaningful when both slopes are clearly positive; the
report says so otherwise). Time per iteration is compared with a bootstrap interval on the ratio of
medians.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from qasr.errors import UsageError
from qasr.fileio import write_atomic
from qasr.lab.analysis import load_records

METRICS = ("rss_anon", "heap_live", "uss", "vm_size")


def load_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise UsageError(f"{run_dir} is not a lab run directory (no summary.json)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None


def slope_ratio(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """a/b for two slope verdicts, with the interval their bounds allow when both are positive."""
    if not a or not b:
        return None
    ratio = a["slope_bytes_per_iter"] / b["slope_bytes_per_iter"] if b["slope_bytes_per_iter"] else None
    if a["ci_low"] > 0 and b["ci_high"] <= 0:
        return {"ratio": None, "low": None, "high": None, "note": None, "only_a_grows": True}
    if a["ci_low"] > 0 and b["ci_low"] > 0:
        return {"ratio": ratio, "low": a["ci_low"] / b["ci_high"], "high": a["ci_high"] / b["ci_low"], "note": None}
    if a["ci_low"] > 0 and b["ci_high"] > 0:
        # B may not grow at all: only a floor is known. A grows at least this many times faster than B.
        return {"ratio": ratio, "low": a["ci_low"] / b["ci_high"], "high": None, "note": None}
    return {
        "ratio": ratio,
        "low": None,
        "high": None,
        "note": "no interval: at least one slope is not clearly above zero, so the ratio is not meaningful",
    }


def bootstrap_ratio(xs: list[float], ys: list[float], reps: int = 2000, seed: int = 1) -> dict[str, float] | None:
    """median(xs)/median(ys) with a 95% percentile-bootstrap interval."""
    if not xs or not ys:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(reps):
        mx = statistics.median(rng.choices(xs, k=len(xs)))
        my = statistics.median(rng.choices(ys, k=len(ys)))
        if my > 0:
            ratios.append(mx / my)
    ratios.sort()
    point = statistics.median(xs) / statistics.median(ys)
    return {"ratio": point, "low": ratios[int(0.025 * len(ratios))], "high": ratios[int(0.975 * len(ratios)) - 1]}


def compare(dir_a: Path, dir_b: Path) -> dict[str, Any]:
    a, b = load_summary(dir_a), load_summary(dir_b)
    walls = []
    for d in (dir_a, dir_b):
        walls.append([it["wall_seconds"] for it in load_records(d / "samples.jsonl").iterations if it.get("wall_seconds")])
    return {
        "a": {"dir": str(dir_a), "scenario": a["scenario"], "status": a["status"], "iterations": a["iterations_completed"],
              "allocator": a.get("allocator"), "verdicts": a.get("verdicts", {})},
        "b": {"dir": str(dir_b), "scenario": b["scenario"], "status": b["status"], "iterations": b["iterations_completed"],
              "allocator": b.get("allocator"), "verdicts": b.get("verdicts", {})},
        "slope_ratio": {m: slope_ratio(a.get("verdicts", {}).get(m), b.get("verdicts", {}).get(m)) for m in METRICS},
        "time_ratio": bootstrap_ratio(walls[0], walls[1]),
        "wall_ms": {"a": statistics.median(walls[0]) * 1000 if walls[0] else None, "b": statistics.median(walls[1]) * 1000 if walls[1] else None},
    }


def _kib(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 1024:+,.1f} KiB"


def render(result: dict[str, Any]) -> str:
    a, b = result["a"], result["b"]
    lines = [
        f"# Compare: `{a['scenario']}` (A) vs `{b['scenario']}` (B)",
        "",
        f"- A: `{a['dir']}` — {a['status']}, {a['iterations']} iterations, allocator {a['allocator']}",
        f"- B: `{b['dir']}` — {b['status']}, {b['iterations']} iterations, allocator {b['allocator']}",
        "",
        "## Memory slope per iteration (95% one-sided bounds)",
        "",
        "| metric | A verdict | A slope [low, high] | B verdict | B slope [low, high] | A/B |",
        "|---|---|---|---|---|---|",
    ]
    for m in METRICS:
        va, vb = a["verdicts"].get(m), b["verdicts"].get(m)
        if not va and not vb:
            continue

        def cell(v: dict[str, Any] | None) -> tuple[str, str]:
            if not v:
                return "n/a", "n/a"
            return v["verdict"], f"{_kib(v['slope_bytes_per_iter'])} [{_kib(v['ci_low'])}, {_kib(v['ci_high'])}]"

        r = result["slope_ratio"].get(m)
        if r is not None and r.get("only_a_grows"):
            ratio = "A grows, B does not"
        elif r is None or r["ratio"] is None:
            ratio = "n/a"
        elif r["low"] is None:
            ratio = f"{r['ratio']:.1f} (not meaningful)"
        elif r["high"] is None:
            ratio = f"at least {r['low']:.1f}"
        else:
            ratio = f"{r['ratio']:.1f} [{r['low']:.1f}, {r['high']:.1f}]"
        lines.append(f"| {m} | {cell(va)[0]} | {cell(va)[1]} | {cell(vb)[0]} | {cell(vb)[1]} | {ratio} |")
    lines.append("")
    notes = {r["note"] for r in result["slope_ratio"].values() if r and r.get("note")}
    lines += [f"Note: {n}." for n in notes] + ([""] if notes else [])
    t = result.get("time_ratio")
    if t:
        lines += [
            "## Time per iteration",
            "",
            f"Median wall time per iteration: A {result['wall_ms']['a']:.1f} ms, B {result['wall_ms']['b']:.1f} ms; "
            f"A/B = {t['ratio']:.2f} (95% bootstrap interval {t['low']:.2f} to {t['high']:.2f}).",
            "",
        ]
    return "\n".join(lines)


def plot(result: dict[str, Any], out_dir: Path) -> Path:
    """RssAnon (and live heap) at the end of each iteration of both runs, on shared axes."""
    from qasr.lab.analysis import verdicts
    from qasr.lab.report.plots import MIB, pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for key, color in (("a", "#4C72B0"), ("b", "#DD8452")):
        run = result[key]
        _, series = verdicts(load_records(Path(run["dir"]) / "samples.jsonl"), run["scenario"])
        for ax, metric in zip(axes, ("rss_anon", "heap_live")):
            values = series.get(metric) or []
            xs = [i + 1 for i, v in enumerate(values) if v is not None]
            ax.plot(xs, [v / MIB for v in values if v is not None], ".-", ms=3, lw=0.8, color=color,
                    label=f"{key.upper()}: {run['scenario']} ({run['allocator']})")
            ax.set_ylabel(f"{metric} (MiB)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    axes[-1].set_xlabel("iteration")
    fig.suptitle("memory at the end of each iteration", fontsize=11)
    fig.tight_layout()
    path = out_dir / "compare.png"
    save(fig, path)
    plt.close(fig)
    return path


def write(result: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "compare.md", out_dir / "compare.json"
    png = plot(result, out_dir)
    write_atomic(md, render(result) + f"\n![compare]({png.name})\n")
    write_atomic(js, json.dumps(result, indent=2, default=str))
    return [md, js, png]


def default_out_dir(results: Path) -> Path:
    return results / "compare" / time.strftime("%Y%m%d-%H%M%S")

