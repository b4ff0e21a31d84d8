"""qasr.lab.memory: the readings are real on Linux/glibc and degrade to None elsewhere."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from qasr.lab import memory as S
from qasr.lab.memory import MemorySample, PeakSampler, malloc_trim, take_sample

MB = 1_000_000

linux_only = pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="needs Linux /proc/self/status"
)
glibc_only = pytest.mark.skipif(not S.heap_stats_available()[0], reason="needs glibc >= 2.33")

STATUS_FIXTURE = b"""Name:\tpython
Umask:\t0022
State:\tR (running)
VmPeak:\t  20000 kB
VmSize:\t  18000 kB
VmHWM:\t   15000 kB
VmRSS:\t   14000 kB
RssAnon:\t    8000 kB
RssFile:\t    6000 kB
RssShmem:\t       0 kB
VmData:\t    9000 kB
Threads:\t1
"""

SMAPS_FIXTURE = b"""55d0c0a00000-7ffd0c1f3000 ---p 00000000 00:00 0          [rollup]
Rss:               14000 kB
Pss:               13000 kB
Pss_Anon:           8000 kB
Shared_Clean:       1500 kB
Private_Clean:      4000 kB
Private_Dirty:      8500 kB
"""


def test_status_parsing_converts_kb_to_bytes() -> None:
    status = S.read_status(STATUS_FIXTURE)
    assert status == {
        "vm_size": 18000 * 1024,
        "vm_hwm": 15000 * 1024,
        "rss": 14000 * 1024,
        "vm_data": 9000 * 1024,
        "rss_anon": 8000 * 1024,
        "rss_file": 6000 * 1024,
    }
    # The sampler's fast path must agree with the full parser.
    assert S._rss_and_anon(STATUS_FIXTURE) == (14000 * 1024, 8000 * 1024)


def test_smaps_rollup_parsing_uss_is_private_clean_plus_dirty() -> None:
    assert S.read_smaps_rollup(SMAPS_FIXTURE) == {"uss": 12500 * 1024, "pss": 13000 * 1024}


def test_missing_or_garbled_files_read_as_none() -> None:
    assert set(S.read_status(b"").values()) == {None}
    assert S.read_smaps_rollup(b"garbage without colons") == {"uss": None, "pss": None}
    assert S._rss_and_anon(b"VmRSS:\tlots kB\n") == (None, None)


@linux_only
def test_take_sample_returns_plausible_numbers() -> None:
    s = take_sample("plausible")
    assert isinstance(s, MemorySample)
    assert s.phase == "plausible"
    assert s.t == pytest.approx(time.monotonic(), abs=5.0)
    assert s.rss is not None and 5 * MB < s.rss < 64 * 1024 * MB
    assert s.rss_anon is not None and s.rss_file is not None
    assert s.rss_anon + s.rss_file <= s.rss  # plus RssShmem
    assert s.vm_size is not None and s.vm_size >= s.rss
    assert s.vm_hwm is not None and s.vm_hwm >= s.rss
    assert s.vm_data is not None and s.vm_data > 0
    if os.path.exists("/proc/self/smaps_rollup"):
        assert s.uss is not None and s.pss is not None
        assert 0 < s.uss <= s.pss <= s.rss + 1024 * 1024
    data = json.loads(json.dumps(s.to_dict()))
    assert data["phase"] == "plausible" and data["rss"] == s.rss


@linux_only
def test_light_sample_skips_only_smaps() -> None:
    s = take_sample("light", collect=False, smaps=False)
    assert s.uss is None and s.pss is None
    assert s.rss is not None and s.rss_anon is not None


@glibc_only
def test_heap_figures_on_glibc() -> None:
    s = take_sample("heap")
    assert s.heap_live is not None and s.heap_live > 0
    assert s.heap_free is not None and s.heap_free >= 0
    assert s.heap_mmap is not None and 0 <= s.heap_mmap <= s.heap_live


@linux_only
def test_a_50_mb_bytearray_shows_in_rss_anon_and_the_live_heap() -> None:
    before = take_sample("before")
    block = bytearray(50 * MB)  # zero-filled: every page is touched
    after = take_sample("after")
    assert after.rss_anon is not None and before.rss_anon is not None
    assert after.rss_anon - before.rss_anon >= 40 * MB
    if after.heap_live is not None and before.heap_live is not None:
        assert after.heap_live - before.heap_live >= 40 * MB
    del block
    freed = take_sample("freed")
    assert freed.rss_anon is not None and freed.rss_anon < after.rss_anon - 40 * MB


@linux_only
def test_peak_sampler_sees_a_short_lived_100_mb_allocation() -> None:
    with PeakSampler(interval=0.005) as sampler:
        assert sampler.wait_readings(2)  # the background thread is running
        sampler.reset()
        baseline = take_sample("baseline", collect=False).rss
        block = bytearray(100 * MB)
        # Held until the background thread has read /proc while it exists (reset and peak() read
        # from this thread before and after the block, so only the thread can see it).
        assert sampler.wait_readings(4)
        del block
        now = take_sample("after", collect=False).rss
        peak = sampler.peak()
        peak_anon = sampler.peak_anon()
        assert sampler.running
        assert sampler.samples >= 5
    assert not sampler.running
    assert baseline is not None and now is not None and peak is not None and peak_anon is not None
    assert peak - baseline >= 80 * MB
    assert now < peak - 80 * MB  # the block is gone: only the sampler knew about it
    sampler.reset()
    assert sampler.peak() is not None and sampler.peak() < peak - 80 * MB


def test_peak_sampler_survives_a_missing_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "STATUS_PATH", "/nonexistent/qasr/status")
    with PeakSampler(interval=0.001) as sampler:
        assert not sampler.wait_readings(1)  # the thread gives up at once: no reading will come
        assert sampler.peak() is None
        assert sampler.peak_anon() is None
    assert sampler.error is not None and "not readable" in sampler.error
    with pytest.raises(ValueError):
        PeakSampler(interval=0)


@glibc_only
def test_malloc_trim_returns_a_bool() -> None:
    assert isinstance(malloc_trim(0), bool)
    assert isinstance(malloc_trim(), bool)


def test_without_glibc_heap_figures_are_none_and_nothing_crashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = S._Glibc.__new__(S._Glibc)
    fake.mallinfo2 = None
    fake.malloc_trim = None
    fake.reason = "pretend musl"
    monkeypatch.setattr(S, "_glibc", fake)
    monkeypatch.setattr(S, "SMAPS_ROLLUP_PATH", "/nonexistent/qasr/smaps_rollup")
    assert S.heap_stats_available() == (False, "pretend musl")
    assert S.mallinfo2() is None
    assert malloc_trim(0) is None
    s = take_sample("no-glibc", collect=False)
    assert (s.heap_live, s.heap_free, s.heap_mmap, s.uss, s.pss) == (None,) * 5
    costs = S.measure_sampling_cost(repeats=3)
    assert costs["mallinfo2"] != costs["mallinfo2"]  # NaN: unavailable, not zero
    assert costs["smaps_rollup"] != costs["smaps_rollup"]


@linux_only
def test_sampling_cost_is_measured_and_fits_the_budget() -> None:
    costs = S.measure_sampling_cost(repeats=20)
    assert set(costs) == {
        "status", "smaps_rollup", "mallinfo2", "gc_collect", "take_sample", "take_sample_no_gc",
        "take_sample_fast",
    }
    assert all(v > 0 for v in costs.values() if v == v)
    # Budget: <= 10 ms of lab overhead per ~150 ms iteration, with several samples per iteration.
    # The light sample (no gc, no smaps walk) must stay far below that even on a slow CI machine.
    assert costs["take_sample_fast"] < 1_000
    assert costs["take_sample_fast"] < costs["take_sample"]
    with pytest.raises(ValueError):
        S.measure_sampling_cost(repeats=0)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_status_and_sampler_agree() -> None:
    with PeakSampler() as sampler:
        peak = sampler.peak()
    status = S.read_status()
    assert peak is not None and status["rss"] is not None
    assert abs(peak - status["rss"]) < 32 * MB
