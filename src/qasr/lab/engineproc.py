"""Sampling the process an engine lives in, when that is not the lab's own (issue 25).

Some providers run their engine in a child process of their own (``crispasr``: CrispASR's library
cannot share a process with libchatllm, and aborts on some inputs). Sampling the lab's process then
says nothing about the engine. A provider that has such a process exposes ``engine_pid`` (None once
closed) and, to give the live heap too, ``engine_memory(collect=..., trim=...)``: the engine process
answers with its own glibc ``mallinfo2`` figures (``heap_live``, ``heap_free``, ``heap_mmap``),
after a ``gc.collect()`` and, when asked, a ``malloc_trim(0)`` (``released``).

`EngineTarget` reads ``/proc/PID/status`` and ``/proc/PID/smaps_rollup`` of that pid (RSS, RssAnon,
USS...) and asks the provider for the heap; `EnginePeaks` follows the peak RSS of whichever engine
process is alive (a ``reload`` starts a new one every iteration).
"""

from __future__ import annotations

import time
from typing import Any

from qasr.lab.memory import MemorySample, PeakSampler, read_bytes, read_smaps_rollup, read_status

_HEAP_KEYS = ("heap_live", "heap_free", "heap_mmap")


def has_engine_process(provider: Any) -> bool:
    """Whether ``provider`` keeps its engine in a process of its own (it has a live ``engine_pid``)."""
    return isinstance(getattr(provider, "engine_pid", None), int)


def _proc(pid: int | str, name: str) -> bytes | None:
    return read_bytes(f"/proc/{pid}/{name}")


class EngineTarget:
    """The engine process of one provider instance: its pid while it is open, and its samples."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self.heap_error: str | None = None

    @property
    def pid(self) -> int | None:
        pid = getattr(self.provider, "engine_pid", None)
        return pid if isinstance(pid, int) else None

    def heap(self, *, collect: bool, trim: bool = False) -> dict[str, Any]:
        """The engine process's mallinfo2 figures (and ``released`` when trimmed); {} when it cannot say."""
        ask = getattr(self.provider, "engine_memory", None)
        if ask is None or self.pid is None:
            return {}
        try:
            return dict(ask(collect=collect, trim=trim))
        except Exception as exc:  # noqa: BLE001 - a sample never takes the run down; the report says why
            self.heap_error = f"{type(exc).__name__}: {exc}"
            return {}

    def sample(self, phase: str, *, full: bool, trim: bool = False, heap_ok: bool = True) -> dict[str, Any] | None:
        """One sample of the engine process (None when it is closed or gone), with ``pid``."""
        pid = self.pid
        if pid is None:
            return None
        heap = self.heap(collect=full, trim=trim)
        status = _proc(pid, "status")
        if not status:
            return None
        t = time.monotonic()
        rollup = read_smaps_rollup(_proc(pid, "smaps_rollup") or b"") if full else {"uss": None, "pss": None}
        fields = {k: heap.get(k) if heap_ok else None for k in _HEAP_KEYS}
        record = MemorySample(phase=phase, t=t, **read_status(status), **rollup, **fields).to_dict()
        record["pid"] = pid
        return record

    def trim(self) -> dict[str, Any] | None:
        """The engine process before and after ``malloc_trim(0)`` in it (None when it is closed)."""
        before = self.sample("final", full=True)
        if before is None:
            return None
        released = self.heap(collect=True, trim=True).get("released")
        return {"before": before, "after": self.sample("after_trim", full=True), "released": released, "pid": before["pid"]}


class EnginePeaks(PeakSampler):
    """`PeakSampler` over the engine process alive at each reading (``pid()``; none: no reading).

    A process that is gone or not yet started is skipped, never folded in as the lab's own."""

    def __init__(self, pid: Any, interval: float = 0.01) -> None:
        super().__init__(interval)
        self._pid = pid

    def _status(self) -> bytes | None:
        pid = self._pid()  # an engine's pid, "self" (no engine process to follow), or None (closed)
        return _proc(pid, "status") if pid is not None else None

    def _sample_once(self) -> bool:
        data = self._status()
        return self._fold(data) if data else True

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            time.sleep(self.interval)
            data = self._status()
            if data and not self._fold(data):
                return
            with self._ticks:
                self._thread_readings += 1
                self._ticks.notify_all()
