"""Read this process's memory cheaply: /proc/self/status, /proc/self/smaps_rollup, glibc mallinfo2.

The lab samples several times per iteration of experiments whose iterations last ~150 ms, and its
total overhead budget is 10 ms per iteration, so every reader here is one ``open().read()`` and a
scan for a handful of keys; nothing is parsed that is not reported. Each figure answers a different
question (GUIDE.md §4):

- ``rss_anon`` / ``rss_file``: anonymous pages (heap, malloc'd buffers) versus file-backed pages
  (mapped libraries and weights); ``rss`` is their sum plus shmem; ``vm_hwm`` the kernel's peak.
- ``uss`` / ``pss``: memory only this process holds, and its fair share of shared pages.
- ``heap_live`` (mallinfo2 ``uordblks + hblkhd``): bytes the program still holds through malloc;
  ``heap_free`` (``fordblks``): bytes glibc keeps free but has not returned to the kernel. Live
  rising is a leak; free rising while live is flat is allocator retention.
- ``py_heap`` (tracemalloc's traced bytes, only while tracemalloc traces: ``--python-heap``): memory
  Python's allocators hand out, objects the program still references included.

Anything unavailable (not Linux, not glibc, glibc older than 2.33, no smaps_rollup) reads as
``None``: the lab runs everywhere and says what it could not see instead of crashing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
import time
import tracemalloc
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "HEAP_METRICS",
    "RSS_METRICS",
    "MemorySample",
    "MallInfo2",
    "PeakSampler",
    "heap_stats_available",
    "mallinfo2",
    "malloc_trim",
    "measure_sampling_cost",
    "read_smaps_rollup",
    "read_status",
    "take_sample",
]

STATUS_PATH = "/proc/self/status"
SMAPS_ROLLUP_PATH = "/proc/self/smaps_rollup"

# /proc/self/status key -> MemorySample field. Values there are in kB (KiB, in fact).
_STATUS_KEYS = {
    b"VmSize": "vm_size",
    b"VmHWM": "vm_hwm",
    b"VmRSS": "rss",
    b"VmData": "vm_data",
    b"RssAnon": "rss_anon",
    b"RssFile": "rss_file",
}
_SMAPS_KEYS = (b"Pss", b"Private_Clean", b"Private_Dirty")

#: The sample fields an allocator counts (glibc's mallinfo2; Python's, through tracemalloc), and those
#: read from the kernel's page tables (page-granular, so they get a larger default threshold).
HEAP_METRICS = frozenset({"heap_live", "heap_free", "heap_mmap", "py_heap"})
RSS_METRICS = frozenset({"rss", "rss_anon", "rss_file", "uss", "pss", "vm_size", "vm_data", "vm_hwm"})


@dataclass(frozen=True)
class MemorySample:
    """One reading of this process's memory at a named phase; every size is in bytes or None."""

    phase: str
    t: float
    rss_anon: int | None = None
    rss_file: int | None = None
    rss: int | None = None
    vm_size: int | None = None
    vm_hwm: int | None = None
    vm_data: int | None = None
    uss: int | None = None
    pss: int | None = None
    heap_live: int | None = None
    heap_free: int | None = None
    heap_mmap: int | None = None
    py_heap: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSONL (field names are the metric names used across the lab)."""
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# /proc readers


def read_bytes(path: str) -> bytes | None:
    """Whole file in one read, or None if it does not exist here (not Linux, hardened /proc)."""
    try:
        with open(path, "rb", buffering=0) as handle:
            return handle.read(65536)
    except OSError:
        return None


def _parse_kb_fields(data: bytes, wanted: dict[bytes, str] | tuple[bytes, ...]) -> dict[bytes, int]:
    """Pick ``Key:   123 kB`` lines for the wanted keys; values converted to bytes."""
    found: dict[bytes, int] = {}
    for line in data.split(b"\n"):
        key, sep, rest = line.partition(b":")
        if sep and key in wanted:
            fields = rest.split()
            if fields:
                try:
                    found[key] = int(fields[0]) * 1024
                except ValueError:
                    continue
    return found


def read_status(data: bytes | None = None) -> dict[str, int | None]:
    """VmSize, VmHWM, VmRSS, VmData, RssAnon, RssFile from /proc/self/status, in bytes."""
    if data is None:
        data = read_bytes(STATUS_PATH)
    result: dict[str, int | None] = dict.fromkeys(_STATUS_KEYS.values())
    if data:
        for key, value in _parse_kb_fields(data, _STATUS_KEYS).items():
            result[_STATUS_KEYS[key]] = value
    return result


def read_smaps_rollup(data: bytes | None = None) -> dict[str, int | None]:
    """USS (Private_Clean + Private_Dirty) and PSS from /proc/self/smaps_rollup (Linux >= 4.14)."""
    if data is None:
        data = read_bytes(SMAPS_ROLLUP_PATH)
    if not data:
        return {"uss": None, "pss": None}
    fields = _parse_kb_fields(data, _SMAPS_KEYS)
    pss = fields.get(b"Pss")
    clean, dirty = fields.get(b"Private_Clean"), fields.get(b"Private_Dirty")
    uss = clean + dirty if clean is not None and dirty is not None else None
    return {"uss": uss, "pss": pss}


# ----------------------------------------------------------------------------------------------
# glibc allocator statistics


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): the same fields as mallinfo, widened to size_t."""

    _fields_ = [
        ("arena", ctypes.c_size_t),
        ("ordblks", ctypes.c_size_t),
        ("smblks", ctypes.c_size_t),
        ("hblks", ctypes.c_size_t),
        ("hblkhd", ctypes.c_size_t),
        ("usmblks", ctypes.c_size_t),
        ("fsmblks", ctypes.c_size_t),
        ("uordblks", ctypes.c_size_t),
        ("fordblks", ctypes.c_size_t),
        ("keepcost", ctypes.c_size_t),
    ]


class _Glibc:
    """The two glibc entry points, resolved once; ``None`` where this libc does not have them."""

    def __init__(self) -> None:
        self.mallinfo2: Any = None
        self.malloc_trim: Any = None
        self.reason = ""
        libc = self._load()
        if libc is None:
            return
        try:
            fn = libc.mallinfo2
            fn.argtypes = []
            fn.restype = MallInfo2
            self.mallinfo2 = fn
        except AttributeError:
            self.reason = "this libc has no mallinfo2 (not glibc, or glibc older than 2.33)"
        try:
            trim = libc.malloc_trim
            trim.argtypes = [ctypes.c_size_t]
            trim.restype = ctypes.c_int
            self.malloc_trim = trim
        except AttributeError:
            self.reason = self.reason or "this libc has no malloc_trim"

    def _load(self) -> ctypes.CDLL | None:
        """libc.so.6 only: mallinfo2 of another libc (musl) would not describe glibc's heap."""
        try:
            return ctypes.CDLL("libc.so.6")
        except OSError:
            self.reason = "libc.so.6 (glibc) is not loadable here"
            return None


_glibc: _Glibc | None = None
_glibc_lock = threading.Lock()


def _libc() -> _Glibc:
    """Detect glibc's allocator entry points once per process (thread-safe, lazy)."""
    global _glibc
    if _glibc is None:
        with _glibc_lock:
            if _glibc is None:
                _glibc = _Glibc()
    return _glibc


def heap_stats_available() -> tuple[bool, str]:
    """(True, "") when mallinfo2 works here, else (False, why) for reports to print."""
    glibc = _libc()
    return glibc.mallinfo2 is not None, glibc.reason


def mallinfo2() -> MallInfo2 | None:
    """glibc's allocator statistics for the main and all other arenas, or None if unavailable."""
    fn = _libc().mallinfo2
    return fn() if fn is not None else None


def malloc_trim(pad: int = 0) -> bool | None:
    """Ask glibc to return free heap memory to the kernel.

    Returns True if memory was released, False if there was nothing to release, None where
    malloc_trim does not exist. The lab calls ``malloc_trim(0)`` to tell allocator retention (RSS
    falls back) from a leak (it does not).
    """
    fn = _libc().malloc_trim
    if fn is None:
        return None
    return bool(fn(max(0, int(pad))))


def _heap_fields() -> dict[str, int | None]:
    info = mallinfo2()
    if info is None:
        return {"heap_live": None, "heap_free": None, "heap_mmap": None}
    return {
        "heap_live": info.uordblks + info.hblkhd,
        "heap_free": info.fordblks,
        "heap_mmap": info.hblkhd,
    }


# ----------------------------------------------------------------------------------------------
# Samples


def take_sample(phase: str, *, collect: bool = True, smaps: bool = True) -> MemorySample:
    """Read every figure at a phase boundary ("after_load", "after_restart", ...).

    ``collect`` runs ``gc.collect()`` first so that Python garbage awaiting collection (cycles
    holding numpy buffers, ctypes callbacks) is not mistaken for a native leak; pass False in hot
    loops where the caller collects once itself. ``smaps=False`` skips /proc/self/smaps_rollup
    (``uss`` and ``pss`` are then None): the kernel walks every resident page to answer it, which
    costs milliseconds per GiB of RSS (6-12 ms at 0.5 GiB on the Firecracker VM where this was
    measured; see benchmarks/bench_lab_sampling.py), so with a loaded model read it at a few phases
    only, not at every sample.
    """
    if collect:
        gc.collect()
    t = time.monotonic()
    status = read_status()
    rollup = read_smaps_rollup() if smaps else {"uss": None, "pss": None}
    heap = _heap_fields()
    py_heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    return MemorySample(phase=phase, t=t, **status, **rollup, **heap, py_heap=py_heap)


# ----------------------------------------------------------------------------------------------
# Background peak sampler


def _rss_and_anon(data: bytes) -> tuple[int | None, int | None]:
    """VmRSS and RssAnon (bytes) with two ``find`` calls: the sampler's hot path."""
    return _find_kb(data, b"\nVmRSS:"), _find_kb(data, b"\nRssAnon:")


def _find_kb(data: bytes, key: bytes) -> int | None:
    start = data.find(key)
    if start < 0:
        return None
    end = data.find(b"\n", start + len(key))
    fields = data[start + len(key) : end if end >= 0 else None].split()
    try:
        return int(fields[0]) * 1024
    except (IndexError, ValueError):
        return None


class PeakSampler:
    """Track the peak RSS (and RssAnon) between ``reset()`` calls from a background thread.

    Phase samples miss what is freed before the phase ends (a decoder's scratch buffers, a KV cache
    that is released on restart), so a thread reads VmRSS every ``interval`` seconds. VmHWM alone
    cannot do this: it only grows (since exec, unless reset through /proc/self/clear_refs). The
    thread does no gc.collect, parses two numbers and holds the GIL only for microseconds: about
    1-1.5% of one core at 10 ms on the development VM, mostly the thread's own wake-ups. Peaks
    shorter than ``interval`` can be missed; the sampler also
    samples on ``reset()`` and ``peak()`` so the result is never below the current RSS. Without
    /proc it records nothing and ``peak()`` is None; it never raises into the host.

    Use as a context manager (``with PeakSampler() as sampler: ...``) or start()/stop().
    """

    def __init__(self, interval: float = 0.01) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval!r}")
        self.interval = float(interval)
        self._lock = threading.Lock()
        #: Signalled after each background reading and when the thread ends (`wait_readings`).
        self._ticks = threading.Condition()
        self._thread_readings = 0
        self._thread_ended = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_rss: int | None = None
        self._peak_anon: int | None = None
        self._count = 0
        self.error: str | None = None

    # lifecycle --------------------------------------------------------------------------------
    def start(self) -> PeakSampler:
        """Start the thread (idempotent); takes one sample first so peak() is defined at once."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._thread_ended = False
        self._sample_once()
        self._thread = threading.Thread(target=self._run, name="qasr-peak-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join the thread; the recorded peak stays readable."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        self._sample_once()

    def __enter__(self) -> PeakSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # readings ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the peak so far; the next peak() covers only what happens from now on."""
        with self._lock:
            self._peak_rss = None
            self._peak_anon = None
            self._count = 0
        self._sample_once()

    def peak(self) -> int | None:
        """Peak VmRSS in bytes since the last reset (None if /proc/self/status is unreadable)."""
        self._sample_once()
        return self._peak_rss

    def peak_anon(self) -> int | None:
        """Peak RssAnon in bytes since the last reset."""
        self._sample_once()
        return self._peak_anon

    @property
    def samples(self) -> int:
        """How many readings the current peak is based on."""
        return self._count

    def wait_readings(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until the background thread has taken ``count`` more readings (from the call on).

        True when it did; False when the thread stopped first (unreadable /proc, ``stop()``) or
        ``timeout`` passed. What a caller waits on to know that the thread saw the present state,
        instead of sleeping and hoping (a test holding a block until the sampler has seen it).
        """
        with self._ticks:
            target = self._thread_readings + max(1, int(count))
            self._ticks.wait_for(lambda: self._thread_readings >= target or self._thread_ended, timeout)
            return self._thread_readings >= target

    # internals --------------------------------------------------------------------------------
    def _run(self) -> None:
        """Thread body: one fd kept open, re-read with pread (regenerated at offset 0).

        pread on a kept fd costs a third of open+read+close, and sleep() wakes more cheaply than
        Event.wait(); stop() therefore waits at most one interval. The fd belongs to this thread
        (opened here, closed here), so a fork never inherits a handle to the parent's status.
        """
        try:
            self._read_loop()
        finally:
            with self._ticks:  # wake waiters: no more readings will come
                self._thread_ended = True
                self._ticks.notify_all()

    def _read_loop(self) -> None:
        try:
            fd = os.open(STATUS_PATH, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            self.error = f"{STATUS_PATH} is not readable here"
            return
        try:
            while not self._stop.is_set():
                time.sleep(self.interval)
                try:
                    data = os.pread(fd, 65536, 0)
                except OSError as exc:
                    self.error = f"peak sampler stopped: {exc!r}"
                    return
                if not self._fold(data):
                    return
                with self._ticks:
                    self._thread_readings += 1
                    self._ticks.notify_all()
        finally:
            os.close(fd)

    def _sample_once(self) -> bool:
        """One reading from the calling thread (start, reset, peak, stop): open, read, fold."""
        return self._fold(read_bytes(STATUS_PATH))

    def _fold(self, data: bytes | None) -> bool:
        """Fold one reading into the peaks; False (and ``error`` set) if /proc is unusable."""
        try:
            if not data:
                self.error = f"{STATUS_PATH} is not readable here"
                return False
            rss, anon = _rss_and_anon(data)
            with self._lock:
                if rss is not None and (self._peak_rss is None or rss > self._peak_rss):
                    self._peak_rss = rss
                if anon is not None and (self._peak_anon is None or anon > self._peak_anon):
                    self._peak_anon = anon
                self._count += 1
            return True
        except Exception as exc:  # a monitoring thread must never take the host down
            self.error = f"peak sampler stopped: {exc!r}"
            return False


# ----------------------------------------------------------------------------------------------
# Cost of sampling


def _mean_us(fn: Any, repeats: int) -> float:
    """Mean wall time of ``fn()`` in microseconds over ``repeats`` calls (after one warm-up)."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e6


def measure_sampling_cost(repeats: int = 200) -> dict[str, float]:
    """Mean cost in microseconds of each kind of read, to check the 10 ms/iteration budget.

    Keys: ``status``, ``smaps_rollup``, ``mallinfo2``, ``gc_collect``, ``take_sample`` (with
    gc.collect, as the lab calls it by default), ``take_sample_no_gc`` and ``take_sample_fast``
    (no gc, no smaps_rollup). An unavailable reader costs NaN.
    smaps_rollup and gc.collect grow with the process (mapped pages, live Python objects), so
    measure in the process you care about.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    nan = float("nan")
    costs = {
        "status": _mean_us(lambda: read_status(), repeats),
        "smaps_rollup": (
            _mean_us(lambda: read_smaps_rollup(), repeats)
            if read_bytes(SMAPS_ROLLUP_PATH)
            else nan
        ),
        "mallinfo2": _mean_us(mallinfo2, repeats) if heap_stats_available()[0] else nan,
        "gc_collect": _mean_us(gc.collect, repeats),
        "take_sample": _mean_us(lambda: take_sample("cost"), repeats),
        "take_sample_no_gc": _mean_us(lambda: take_sample("cost", collect=False), repeats),
        "take_sample_fast": _mean_us(
            lambda: take_sample("cost", collect=False, smaps=False), repeats
        ),
    }
    return costs
