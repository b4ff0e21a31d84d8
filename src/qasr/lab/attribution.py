"""What grows in a run: a live-heap leak, allocator retention, leaked mappings, or nothing.

GUIDE.md §4.4: the live heap (mallinfo2) rising by at least T is a real leak (a Python-heap leak when
tracemalloc, ``--python-heap``, sees most of it: Python objects piling up); RSS rising while the
live heap is flat and glibc's free-but-held bytes grow is allocator retention, confirmed when
``malloc_trim(0)`` gives the growth back; RssFile or VmData rising outside the heap is leaked
mappings. Each metric's slope is judged by `qasr.lab.verdict.slope_verdict`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qasr.lab.memory import HEAP_METRICS
from qasr.lab.units import format_bytes, format_rate
from qasr.lab.verdict import Series, SlopeVerdict, Verdict, slope_verdict

__all__ = ["Attribution", "LeakKind", "attribute"]

#: Share of RSS growth that glibc's free-but-held bytes must grow by to be called allocator retention.
RETENTION_SHARE = 0.5


class LeakKind(str, enum.Enum):
    """What kind of growth a run shows, from the strongest evidence down."""

    PYTHON_HEAP = "Python-heap leak"
    LIVE_HEAP = "live-heap leak"
    RETENTION = "allocator retention"
    MAPPINGS = "leaked mappings"
    UNATTRIBUTED = "unattributed growth"
    NONE = "none"


@dataclass(frozen=True)
class Attribution:
    """The kind of growth, one sentence saying why with the figures, and the evidence."""

    kind: LeakKind
    explanation: str
    verdicts: Mapping[str, SlopeVerdict] = field(default_factory=dict)
    trim_released: int | None = None
    trim_confirmed: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "explanation": self.explanation,
            "verdicts": {k: v.to_dict() for k, v in self.verdicts.items()},
            "trim_released": self.trim_released,
            "trim_confirmed": self.trim_confirmed,
        }


def _metric_of(sample: Any, name: str) -> int | None:
    if sample is None:
        return None
    if isinstance(sample, Mapping):
        return sample.get(name)
    return getattr(sample, name, None)


def _threshold_for(thresholds: float | Mapping[str, float], metric: str) -> float:
    if isinstance(thresholds, Mapping):
        if metric in thresholds:
            return float(thresholds[metric])
        fallback = "heap_live" if metric in HEAP_METRICS else "rss_anon"
        for key in (fallback, "rss", "default"):
            if key in thresholds:
                return float(thresholds[key])
        raise ValueError(f"no threshold given for metric {metric!r}")
    return float(thresholds)


def _rises(v: SlopeVerdict | None) -> bool:
    return v is not None and v.verdict is Verdict.LEAK


def _grows(v: SlopeVerdict | None) -> bool:
    """Significantly positive slope, whatever the threshold."""
    return v is not None and math.isfinite(v.ci_low) and v.ci_low > 0


def _explains(part: SlopeVerdict | None, whole: SlopeVerdict | None) -> bool:
    """Whether ``part`` grows significantly and by at least half of ``whole``'s slope: glibc's free
    bytes explain RSS growth only when they grow by about as much (a few bytes of free-list noise
    beside 1 MiB/iter of mmap'd pages is not retention)."""
    return (
        _grows(part) and part is not None and whole is not None
        and part.slope_bytes_per_iter >= RETENTION_SHARE * whole.slope_bytes_per_iter
    )  # fmt: skip


def _describe(name: str, v: SlopeVerdict) -> str:
    return f"{name} {format_rate(v.slope_bytes_per_iter)} (95% lower bound {format_rate(v.ci_low)})"


def attribute(
    series: Mapping[str, Series],
    thresholds: float | Mapping[str, float],
    *,
    verdicts: Mapping[str, SlopeVerdict] | None = None,
    trim_before: Any = None,
    trim_after: Any = None,
    **verdict_options: Any,
) -> Attribution:
    """Say what grows in one run: a live-heap leak, allocator retention, leaked mappings, or none.

    ``series`` maps metric names (``rss_anon`` or ``rss``, ``heap_live``, ``heap_free``,
    ``rss_file``, ``vm_data``; any may be missing) to per-iteration values. ``verdicts`` may supply
    already-computed slope verdicts; missing ones are computed with ``thresholds`` (one T, or T per
    metric). ``trim_before`` / ``trim_after`` are samples (MemorySample or dicts) taken around
    ``malloc_trim(0)`` at the end of the run; they confirm or refute allocator retention.

    Order of evidence: the live heap (memory the program still holds) outranks RSS; RSS growth that
    the live heap does not explain is retention when glibc's free-but-held bytes grow by at least
    half as much (`RETENTION_SHARE`); growth of
    file-backed RSS or VmData outside the heap is leaked mappings.
    """
    found: dict[str, SlopeVerdict] = dict(verdicts or {})
    for name, values in series.items():
        if name not in found and values is not None and len(values) > 0:
            found[name] = slope_verdict(values, _threshold_for(thresholds, name), **verdict_options)
    rss_name = "rss_anon" if "rss_anon" in found else "rss"
    live, free, rss = found.get("heap_live"), found.get("heap_free"), found.get(rss_name)
    mapping_hits = [name for name in ("rss_file", "vm_data") if _rises(found.get(name))]

    py = found.get("py_heap")
    if _rises(py) and (not _rises(live) or py.slope_bytes_per_iter >= 0.5 * live.slope_bytes_per_iter):  # type: ignore[union-attr]
        assert py is not None
        text = (
            f"Python heap (tracemalloc) grows {format_rate(py.slope_bytes_per_iter)} (95% lower bound "
            f"{format_rate(py.ci_low)} > T {format_rate(py.threshold)}): Python objects the program still "
            f"references pile up"
            + (f" (live heap {format_rate(live.slope_bytes_per_iter)})" if live is not None else "")
            + "; the report lists the source lines that allocated them."
        )
        return Attribution(LeakKind.PYTHON_HEAP, text, found)

    if _rises(live):
        assert live is not None
        python_part = (
            f" Python objects account for {format_rate(py.slope_bytes_per_iter)} of it (tracemalloc): the rest is native."
            if py is not None else ""
        )  # fmt: skip
        text = (
            f"Live heap (mallinfo2 uordblks+hblkhd) grows {format_rate(live.slope_bytes_per_iter)} "
            f"(95% lower bound {format_rate(live.ci_low)} > T {format_rate(live.threshold)}): the "
            f"program still holds this memory, a real leak.{python_part}"
        )
        return Attribution(LeakKind.LIVE_HEAP, text, found)

    live_flat = live is not None and live.verdict is Verdict.NO_LEAK
    if _rises(rss) and live_flat and _explains(free, rss):
        assert rss is not None and free is not None and live is not None
        released, confirmed = _trim_evidence(rss_name, rss, trim_before, trim_after)
        text = (
            f"{_describe(rss_name, rss)} while the live heap stays flat "
            f"({format_rate(live.slope_bytes_per_iter)}) and glibc's free-but-held bytes grow "
            f"{format_rate(free.slope_bytes_per_iter)}: allocator retention, not a leak"
            f"{_trim_clause(released, confirmed)}."
        )
        return Attribution(LeakKind.RETENTION, text, found, released, confirmed)

    if mapping_hits:
        parts = ", ".join(_describe(name, found[name]) for name in mapping_hits)
        text = (
            f"{parts} outside the malloc heap"
            + (f" (live heap {format_rate(live.slope_bytes_per_iter)})" if live is not None else "")
            + ": mappings (mmap'd files or anonymous regions) are created and never unmapped."
        )
        return Attribution(LeakKind.MAPPINGS, text, found)

    if _rises(rss):
        assert rss is not None
        if live is None:
            why = (
                "heap statistics are unavailable (not glibc), so the heap can be neither blamed "
                "nor cleared"
            )
        elif not live_flat:
            why = (
                f"the live heap's own slope is not settled ({_describe('heap_live', live)}, "
                f"{live.verdict.value}), so leak and retention cannot be told apart yet"
            )
        else:
            why = (
                "neither the glibc live heap nor its free bytes nor VmData/RssFile account for it "
                "(another allocator, or pages first touched in existing mappings)"
            )
        text = f"{_describe(rss_name, rss)} > T {format_rate(rss.threshold)}, but {why}."
        return Attribution(LeakKind.UNATTRIBUTED, text, found)

    shown = ", ".join(f"{name} {format_rate(v.slope_bytes_per_iter)}" for name, v in found.items())
    open_ = [name for name, v in found.items() if v.verdict is Verdict.INCONCLUSIVE]
    caveat = f"; still inconclusive: {', '.join(open_)}, rerun with 2N" if open_ else ""
    return Attribution(
        LeakKind.NONE,
        f"No metric rises faster than its threshold ({shown or 'no series given'}{caveat}).",
        found,
    )


def _trim_evidence(
    rss_name: str, rss: SlopeVerdict, before: Any, after: Any
) -> tuple[int | None, bool | None]:
    """Bytes malloc_trim(0) gave back, and whether that covers at least half the run's growth."""
    b, a = _metric_of(before, rss_name), _metric_of(after, rss_name)
    if b is None or a is None:
        return None, None
    released = int(b) - int(a)
    growth = rss.slope_bytes_per_iter * max(rss.n_total, 1)
    return released, released >= 0.5 * growth


def _trim_clause(released: int | None, confirmed: bool | None) -> str:
    if released is None:
        return " (confirm with malloc_trim(0), jemalloc via LD_PRELOAD or MALLOC_MMAP_THRESHOLD_)"
    if confirmed:
        return f", confirmed: malloc_trim(0) gave back {format_bytes(released)}"
    return (
        f", but malloc_trim(0) gave back only {format_bytes(released)}, so part of it may be "
        "fragmentation that trim cannot release"
    )
