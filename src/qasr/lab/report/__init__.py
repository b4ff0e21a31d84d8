"""Reports of a lab run, one reporter per format behind one Protocol (memray's layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from qasr.lab.analysis import RunRecords


class Reporter(Protocol):
    """Writes one report file of a run and returns its path."""

    def write(self, summary: dict[str, Any], records: RunRecords, run_dir: Path) -> list[Path]: ...


def reporters() -> list[Reporter]:
    from qasr.lab.report.jsonfile import JsonReporter
    from qasr.lab.report.markdown import MarkdownReporter
    from qasr.lab.report.plots import PlotReporter

    # Plots first (the markdown report links them); JSON last, so it lists every file.
    return [PlotReporter(), MarkdownReporter(), JsonReporter()]


def write_reports(summary: dict[str, Any], records: RunRecords, run_dir: Path) -> list[Path]:
    """Write every report of a run; a failing plot never costs the data or the other reports."""
    written: list[Path] = []
    summary.pop("report_errors", None)
    for reporter in reporters():
        summary["files"] = sorted({p.name for p in written} | {"summary.json", "samples.jsonl", "config.json"})
        try:
            written += reporter.write(summary, records, run_dir)
        except Exception as exc:  # noqa: BLE001 - report the failure inside the summary
            summary.setdefault("report_errors", []).append(f"{type(reporter).__name__}: {exc}")
    return written
