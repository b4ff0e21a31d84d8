"""PNG plots of a run: memory per iteration with the verdict's fit, and the per-phase deltas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qasr.fileio import atomic_file
from qasr.lab.analysis import PHASE_METRICS, RunRecords, verdicts

MIB = 1024 * 1024
PLOTTED = (("rss_anon", "RssAnon"), ("heap_live", "live heap (mallinfo2)"), ("uss", "USS"), ("vm_size", "VmSize"))


def pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> None:
    """Write a figure as PNG in one rename (`qasr.fileio.atomic_file`): never half a picture."""
    with atomic_file(path, "wb", fsync=False) as fh:
        fig.savefig(fh, dpi=110, format="png")


class PlotReporter:
    def write(self, summary: dict[str, Any], records: RunRecords, run_dir: Path) -> list[Path]:
        if not records.iterations:
            return []
        return [self.memory(summary, records, run_dir), self.phases(summary, run_dir)]

    def memory(self, summary: dict[str, Any], records: RunRecords, run_dir: Path) -> Path:
        plt = pyplot()
        found, series = verdicts(records, summary["scenario"], (summary.get("config") or {}).get("threshold"))
        shown = [(m, label) for m, label in PLOTTED if m in series]
        fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.6 * len(shown) + 0.6), sharex=True, squeeze=False)
        for ax, (metric, label) in zip(axes[:, 0], shown):
            xs = [i + 1 for i, v in enumerate(series[metric]) if v is not None]
            ys = [v / MIB for v in series[metric] if v is not None]
            ax.plot(xs, ys, ".", ms=3, color="#4C72B0", label="after each iteration")
            v = found.get(metric)
            if v is not None and v.fit_x:
                ax.plot([x + 1 for x in v.fit_x], [y / MIB for y in v.fit_y], "-", color="#C44E52", lw=1.6,
                        label=f"fit: {v.slope_bytes_per_iter / 1024:+.1f} KiB/iter [{v.ci_low / 1024:+.1f}, {v.ci_high / 1024:+.1f}]")
                ax.set_title(f"{label}: {v.verdict.value} (T = {v.threshold / 1024:.0f} KiB/iter)", fontsize=10, loc="left")
            ax.set_ylabel("MiB")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="best")
        axes[-1, 0].set_xlabel("iteration")
        fig.suptitle(f"{summary['scenario']} ({summary.get('allocator')}): memory at '{summary.get('final_phase')}'", fontsize=11)
        fig.tight_layout()
        path = run_dir / "memory.png"
        save(fig, path)
        plt.close(fig)
        return path

    def phases(self, summary: dict[str, Any], run_dir: Path) -> Path:
        plt = pyplot()
        rows = summary.get("phase_deltas") or []
        labels = [f"{r['from']} → {r['to']}" for r in rows]
        fig, ax = plt.subplots(figsize=(9, 0.5 * max(len(rows), 2) + 1.5))
        height = 0.8 / len(PHASE_METRICS)
        for k, metric in enumerate(PHASE_METRICS):
            vals = [(r.get(metric) or 0) / MIB for r in rows]
            ax.barh([i + k * height for i in range(len(rows))], vals, height=height, label=metric)
        ax.set_yticks([i + height for i in range(len(rows))])
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("median change per iteration (MiB)")
        ax.set_title(f"{summary['scenario']}: memory change across each phase", fontsize=10, loc="left")
        ax.legend(fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path = run_dir / "phases.png"
        save(fig, path)
        plt.close(fig)
        return path
