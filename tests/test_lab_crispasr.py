"""The lab on ``--provider crispasr`` samples CrispASR's engine process, not its own (issue 25).

CrispASR runs in a process of its own (`qasr.providers.crispasr_child`), so a leak there is
invisible in the lab's process. These runs use the scripted stand-in (tests/crispasr_fake) in the
engine process, which logs its pid and can keep ``QASR_FAKE_CRISP_LEAK`` bytes per transcription;
the real wheel on a tiny GGUF checks the plumbing (pids, the live heap from the engine process).
``gguf`` (the tiny model) and ``wav_file`` (a 1 s tone) are tests/conftest.py's.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from conftest import run_qasr

FAKE = Path(__file__).resolve().parent / "crispasr_fake"
MIB = 1024 * 1024


def _fake_env(tmp_path: Path, **knobs: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")]),
            "QASR_FAKE_CRISP_LOG": str(tmp_path / "calls.jsonl"), **knobs}  # fmt: skip


def _lab(args: list[str], env: dict[str, str], tmp_path: Path) -> dict:  # type: ignore[type-arg]
    r = run_qasr(["lab", "run", *args, "--results", str(tmp_path / "results"), "--json"], env, timeout=600)  # bounded; seconds on a quiet machine
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _records(summary: dict, kind: str) -> list[dict]:  # type: ignore[type-arg]
    lines = (Path(summary["run_dir"]) / "samples.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


def _opened_pids(tmp_path: Path) -> list[int]:
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    return [c["pid"] for c in calls if c["call"] == "open"]


def test_restart_samples_the_engine_process_and_finds_its_leak(gguf: Path, wav_file: Path, tmp_path: Path) -> None:
    args = ["restart", "--provider", "crispasr", "-m", str(gguf), "--audio", str(wav_file), "-n", "40"]
    s = _lab(args, _fake_env(tmp_path, QASR_FAKE_CRISP_LEAK=str(MIB)), tmp_path)
    (engine_pid,) = _opened_pids(tmp_path)
    (meta,) = _records(s, "meta")
    sampled = s["sampled_process"]
    assert sampled["process"] == "engine" and sampled["pids"] == [engine_pid] and sampled["distinct_pids"] == 1
    assert engine_pid != meta["pid"] == sampled["lab_pid"]  # the engine's process, not the lab child's
    its = _records(s, "iteration")
    assert all(it["phases"]["end"]["pid"] == engine_pid and "pid" not in it["lab_phases"]["end"] for it in its)
    # The leak is in the engine's process: its live heap and RssAnon grow by 1 MiB per call...
    assert s["verdict"] == "LEAK" and s["attribution"]["kind"] == "live-heap leak"
    for metric in ("heap_live", "rss_anon"):
        assert s["verdicts"][metric]["slope_bytes_per_iter"] == pytest.approx(MIB, rel=0.1)
    # ... and not in the lab's own, the second series.
    lab = s["lab_process"]
    assert lab["pid"] == meta["pid"] and lab["verdicts"]["heap_live"]["verdict"] != "LEAK"
    assert abs(lab["verdicts"]["heap_live"]["slope_bytes_per_iter"]) < 64 * 1024
    (trim,) = [t for t in _records(s, "trim") if t["process"] == "engine"]
    assert trim["pid"] == engine_pid and trim["before"]["heap_live"] > 40 * MIB  # malloc_trim ran in the engine
    report = (Path(s["run_dir"]) / "report.md").read_text()
    assert f"one process, pid {engine_pid}" in report and f"### The lab's own process (pid {meta['pid']}" in report


def test_reload_samples_each_iterations_engine_process_before_close(gguf: Path, wav_file: Path, tmp_path: Path) -> None:
    s = _lab(["reload", "--provider", "crispasr", "-m", str(gguf), "--audio", str(wav_file), "-n", "8"], _fake_env(tmp_path), tmp_path)
    opened = _opened_pids(tmp_path)
    assert len(set(opened)) == 8  # one engine process per iteration
    sampled = s["sampled_process"]
    assert sampled["process"] == "engine" and sampled["distinct_pids"] == 8 and sampled["phase"] == "infer"
    assert s["final_phase"] == "infer" and s["lab_process"]["phase"] == "end"
    its = _records(s, "iteration")
    assert [it["phases"]["infer"]["pid"] for it in its] == opened
    assert list(its[0]["phases"]) == ["load", "infer"]  # after close, the engine's process is gone
    assert list(its[0]["lab_phases"]) == ["load", "infer", "close", "end"]
    assert all(it["phases"]["infer"]["heap_live"] for it in its) and all(it["peak_rss"] for it in its)
    assert s["verdicts"]["heap_live"]["threshold"] == MIB and s["lab_process"]["verdicts"]["heap_live"]["threshold"] == MIB


@pytest.mark.skipif(importlib.util.find_spec("crispasr") is None, reason="pip install 'qasr[crispasr]'")
def test_the_real_wheel_is_sampled_in_its_own_process(gguf: Path, wav_file: Path, tmp_path: Path) -> None:
    s = _lab(["restart", "--provider", "crispasr", "-m", str(gguf), "--audio", str(wav_file), "-n", "8", "--max-tokens", "2",
              "--threads", "1"], dict(os.environ), tmp_path)  # fmt: skip
    (meta,) = _records(s, "meta")
    its = _records(s, "iteration")
    (pid,) = {it["phases"]["end"]["pid"] for it in its}
    assert pid != meta["pid"] and s["sampled_process"]["pids"] == [pid]
    # The model's buffers are in the engine's process, not the lab's.
    assert all(it["phases"]["end"]["heap_live"] > 10 * it["lab_phases"]["end"]["heap_live"] for it in its)
