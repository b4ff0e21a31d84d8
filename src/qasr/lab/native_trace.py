"""Name the native allocation sites that leak: a memray differential (``qasr lab run --trace-native``).

Two traced child runs of the same scenario, with N and 2N iterations, each ending its memray capture
while everything the scenario keeps is still alive. Memory still live at the end of a capture
includes the model, caches and whatever leaks; the model and caches are the same in both runs, so
per call stack ``(live after 2N - live after N) / N`` is what each stack leaks per iteration
(GUIDE §4.5). memray is an optional extra: ``pip install 'qasr[trace]'``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qasr.errors import UsageError

TOP = 10
FRAMES = 6


def require_memray() -> None:
    try:
        import memray  # noqa: F401
    except ImportError:
        raise UsageError("--trace-native needs memray: pip install 'qasr[trace]' (or pip install memray)") from None


@contextlib.contextmanager
def tracking(path: Path | None) -> Iterator[None]:
    """Inside the child: record every allocation with native stacks into ``path`` (no-op for None)."""
    if path is None:
        yield
        return
    import memray

    with memray.Tracker(str(path), native_traces=True, trace_python_allocators=False):
        yield


def _frames(record: Any) -> tuple[str, ...]:
    try:
        stack = record.hybrid_stack_trace(max_stacks=FRAMES)
    except Exception:  # noqa: BLE001 - a capture without native symbols still has Python frames
        stack = record.stack_trace(max_stacks=FRAMES)
    return tuple(f"{func} ({Path(str(file)).name}:{line})" for func, file, line in stack)


def live_by_stack(path: Path) -> dict[tuple[str, ...], tuple[int, int]]:
    """Bytes and allocation counts still live at the end of a capture, per call stack."""
    import memray

    totals: dict[tuple[str, ...], tuple[int, int]] = {}
    with memray.FileReader(str(path)) as reader:
        for record in reader.get_leaked_allocation_records(merge_threads=True):
            key = _frames(record)
            size, count = totals.get(key, (0, 0))
            totals[key] = (size + int(record.size), count + int(record.n_allocations))
    return totals


def differential(path_n: Path, path_2n: Path, n: int, top: int = TOP) -> list[dict[str, Any]]:
    """The stacks whose live bytes grow between N and 2N iterations, per iteration, largest first."""
    a, b = live_by_stack(path_n), live_by_stack(path_2n)
    rows = []
    for key in set(a) | set(b):
        grown = b.get(key, (0, 0))[0] - a.get(key, (0, 0))[0]
        allocs = b.get(key, (0, 0))[1] - a.get(key, (0, 0))[1]
        if grown > 0:
            rows.append({"bytes_per_iter": grown / n, "allocations_per_iter": allocs / n, "stack": list(key)})
    rows.sort(key=lambda r: r["bytes_per_iter"], reverse=True)
    return rows[:top]
