"""The Python heap in a lab run (``--python-heap``): tracemalloc's traced bytes and the lines that grow.

Opt-in because tracing every Python allocation slows Python code several times over. When on, the
child starts tracemalloc before the scenario's setup; every memory sample then carries ``py_heap``
(traced bytes: what Python's allocators hand out, numpy buffers included), judged like the live
heap; and two snapshots, one when the verdict's warm-up ends (iteration max(5, 0.2 N)) and one after
the last iteration, name the source lines whose live Python memory grows, per iteration. A native
leak never shows here (tracemalloc cannot see malloc from C), which is the point of putting the two
side by side: the live heap grows in both cases, the Python heap only when Python objects pile up.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

from qasr.lab.stats import warmup_count

#: Frames kept per traced allocation: the line that allocated is what the report names.
FRAMES = 1
TOP = 10


def start() -> None:
    """Start tracing in this process (the lab child), if not already tracing."""
    if not tracemalloc.is_tracing():
        tracemalloc.start(FRAMES)


def _snapshot() -> tracemalloc.Snapshot:
    """A snapshot without tracemalloc's own bookkeeping, the import machinery or the lab's records."""
    return tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"),
            tracemalloc.Filter(False, "<unknown>"),
            tracemalloc.Filter(False, "*/qasr/lab/*"),
        )
    )


class PythonSites:
    """Snapshots at the end of the warm-up and at the end; their difference per source line."""

    def __init__(self, iterations: int) -> None:
        self.first_at = min(warmup_count(iterations), max(iterations - 1, 1))
        self.first: tracemalloc.Snapshot | None = None

    def after_iteration(self, i: int) -> None:
        if i == self.first_at and tracemalloc.is_tracing():
            self.first = _snapshot()

    def growth(self, last: int) -> dict[str, Any] | None:
        """The lines whose traced bytes grew from the first snapshot to now, per iteration, largest first."""
        if self.first is None or last <= self.first_at or not tracemalloc.is_tracing():
            return None
        n = last - self.first_at
        rows = []
        for stat in _snapshot().compare_to(self.first, "lineno"):
            if stat.size_diff <= 0:
                continue
            frame = stat.traceback[0]
            rows.append({"where": f"{frame.filename}:{frame.lineno}", "bytes_per_iter": stat.size_diff / n,
                         "allocations_per_iter": stat.count_diff / n})  # fmt: skip
            if len(rows) == TOP:
                break
        return {"from_iteration": self.first_at, "to_iteration": last, "rows": rows}
