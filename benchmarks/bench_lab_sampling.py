"""How much does the memory lab cost per iteration? Prints a table; it is not a timed test.

The lab samples at several phase boundaries of every iteration (~150 ms each) and runs a
background peak sampler; its budget is 10 ms per iteration. The readers' cost grows with the
process (smaps_rollup walks every mapping, gc.collect visits every tracked object), so the figures
are measured in three states: a bare interpreter, after mallocing an engine-like 512 MiB touched
buffer plus 444 MiB untouched (the KV arena GUIDE.md §2 describes), and with one million extra
Python objects alive.

    .venv/bin/python benchmarks/bench_lab_sampling.py [--repeats 200] [--phases 4]

What it showed on the development VM (Firecracker, 2 vCPUs): status ~30 us, mallinfo2 ~1 us,
gc.collect ~1-1.3 ms in a bare interpreter, but smaps_rollup 6-12 ms once 0.5 GiB is resident, so a
full sample at every phase does not fit the budget with a model loaded: take USS/PSS at a few
phases (``take_sample(..., smaps=False)`` elsewhere) and collect garbage once per iteration.
"""

from __future__ import annotations

import argparse
import ctypes
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from qasr.lab.memory import PeakSampler, measure_sampling_cost, read_status
from qasr.lab.units import format_bytes

MiB = 1024 * 1024
ROWS = (
    "status",
    "smaps_rollup",
    "mallinfo2",
    "gc_collect",
    "take_sample",
    "take_sample_no_gc",
    "take_sample_fast",
)


@contextmanager
def bare() -> Iterator[None]:
    yield


@contextmanager
def engine_like() -> Iterator[None]:
    """512 MiB written (weights read into malloc'd buffers) and 444 MiB left untouched."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    touched = libc.malloc(512 * MiB)
    untouched = libc.malloc(444 * MiB)
    ctypes.memset(touched, 1, 512 * MiB)
    try:
        yield
    finally:
        libc.free(touched)
        libc.free(untouched)


@contextmanager
def many_objects() -> Iterator[None]:
    """One million small tracked objects: what a long Python session can accumulate."""
    objects = [[i] for i in range(1_000_000)]
    try:
        yield
    finally:
        del objects


def sampler_cpu(interval: float, seconds: float = 1.0) -> tuple[float, int]:
    """CPU time the peak sampler burns while the main thread sleeps: (% of one core, samples).

    Process CPU time during a sleep is the sampler's own cost; a throughput comparison of a busy
    loop is too noisy on shared VMs to resolve it.
    """
    time.sleep(0.05)
    idle_start = time.process_time()
    time.sleep(seconds)
    idle = time.process_time() - idle_start
    with PeakSampler(interval=interval) as sampler:
        start = time.process_time()
        time.sleep(seconds)
        used = time.process_time() - start
        count = sampler.samples
    return 100.0 * max(used - idle, 0.0) / seconds, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--phases", type=int, default=4, help="phase samples per iteration")
    args = parser.parse_args()

    states: list[tuple[str, Callable[[], object]]] = [
        ("bare", bare),
        ("engine-like 956 MiB", engine_like),
        ("+1M objects", many_objects),
    ]
    results: dict[str, dict[str, float]] = {}
    rss: dict[str, str] = {}
    for name, state in states:
        with state():  # type: ignore[attr-defined]
            rss[name] = format_bytes(read_status()["rss"])
            results[name] = measure_sampling_cost(args.repeats)

    names = [name for name, _ in states]
    width = max(len(n) for n in names) + 2
    print(f"Mean cost per read in microseconds ({args.repeats} repeats)\n")
    print(f"{'read':<20}" + "".join(f"{n:>{width}}" for n in names))
    print(f"{'(process RSS)':<20}" + "".join(f"{rss[n]:>{width}}" for n in names))
    for row in ROWS:
        print(f"{row:<20}" + "".join(f"{results[n][row]:>{width}.1f}" for n in names))
    print()
    print(f"Per iteration with {args.phases} phase samples (budget 10 ms):")
    for n in names:
        cost = results[n]
        full = args.phases * cost["take_sample"] / 1000
        fast = args.phases * cost["take_sample_fast"]
        once = (cost["gc_collect"] + cost["smaps_rollup"] + fast) / 1000
        print(
            f"  {n:<{width}} every sample full: {full:8.2f} ms   "
            f"gc + smaps once, other samples fast: {once:8.2f} ms"
        )
    print()
    for interval in (0.01, 0.001):
        percent, count = sampler_cpu(interval)
        print(
            f"PeakSampler at {interval * 1000:g} ms: {percent:.2f}% of one core "
            f"({count} samples in 1 s while the main thread slept)"
        )

if __name__ == "__main__":
    main()
