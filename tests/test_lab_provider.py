"""The lab on any provider (issue 25): ``qasr lab run reload|restart --provider NAME``, as a user runs it.

qwen3-chatllm runs on the test double (never the engine), with an injected 1 MiB leak per inference
call against a clean build; faster-whisper on the tiny random-weight model written at test time
(tests/whisper_tiny.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile
from conftest import double_env, run_qasr, sine
from modelfiles import write_aligner, write_model

MIB = 1024 * 1024


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    soundfile.write(str(path), sine(0.5), 16_000)
    return path


def _lab(args: list[str], env: dict[str, str], tmp_path: Path) -> dict:  # type: ignore[type-arg]
    r = run_qasr(["lab", "run", *args, "--results", str(tmp_path / "results"), "--json", "--no-peaks"], env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _iterations(summary: dict) -> list[dict]:  # type: ignore[type-arg]
    lines = (Path(summary["run_dir"]) / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"kind":"iteration"' in line]


def test_restart_over_the_qwen_provider_finds_a_leak_in_the_engine(double_lib: Path, clip: Path, tmp_path: Path) -> None:
    model = write_model(tmp_path / "asr.bin")
    args = ["restart", "--provider", "qwen3-chatllm", "-m", str(model), "--audio", str(clip), "-n", "40"]
    leaky = _lab(args, double_env(double_lib, leak_inference=str(MIB)), tmp_path)
    assert leaky["verdict"] == "LEAK" and leaky["attribution"]["kind"] == "live-heap leak"
    live = leaky["verdicts"]["heap_live"]
    assert live["slope_bytes_per_iter"] == pytest.approx(MIB, rel=0.05) and live["threshold"] == 16 * 1024
    clean = _lab(args, double_env(double_lib), tmp_path)
    assert clean["verdict"] == "NO_LEAK" and clean["verdicts"]["heap_live"]["ci_high"] < 64 * 1024
    assert clean["accuracy"]["first_text"] == "hello world from the test double"
    assert clean["engine"]["is_test_double"] is True  # the library was loaded before the baseline
    its = _iterations(clean)
    assert list(its[0]["phases"]) == ["infer", "end"] and its[0]["tokens"] == 9
    report = (Path(clean["run_dir"]) / "report.md").read_text()
    assert "# Lab run: `restart` over the `qwen3-chatllm` provider" in report and "Provider: `qwen3-chatllm`" in report


def test_reload_over_the_qwen_provider_is_judged_as_a_reload(double_lib: Path, clip: Path, tmp_path: Path) -> None:
    model = write_model(tmp_path / "asr.bin")
    s = _lab(["reload", "--provider", "qwen3-chatllm", "-m", str(model), "--audio", str(clip), "-n", "30"], double_env(double_lib), tmp_path)
    assert s["status"] == "completed" and s["iterations_completed"] == 30
    assert s["verdicts"]["heap_live"]["threshold"] == MIB  # max(1 MiB, 0.5% of the weights): every iteration loads a model
    its = _iterations(s)
    assert list(its[0]["phases"]) == ["load", "infer", "close", "end"]
    assert all(it["text"] == "hello world from the test double" for it in its)
    assert s["models"][0]["kind"] == "asr"


def test_both_scenarios_over_faster_whisper(clip: Path, tmp_path: Path) -> None:
    pytest.importorskip("faster_whisper")
    from whisper_tiny import TEXT, build

    model = build(tmp_path / "tiny")
    for scenario in ("restart", "reload"):
        s = _lab([scenario, "--provider", "faster-whisper", "-m", str(model), "--audio", str(clip), "-n", "30"], dict(os.environ), tmp_path)
        assert s["status"] == "completed" and s["accuracy"]["first_text"] == TEXT
        for metric in ("rss_anon", "heap_live"):
            v = s["verdicts"][metric]
            assert v["verdict"] in ("LEAK", "NO_LEAK", "INCONCLUSIVE") and v["ci_low"] <= v["slope_bytes_per_iter"] <= v["ci_high"]
        assert s["verdict"] is not None
        assert s["models"][0]["weight_bytes"] > 1_000_000  # the folder's size: the reload T's weight bytes
    assert s["verdicts"]["heap_live"]["threshold"] == MIB


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["restart", "--provider", "auto"], "the lab measures one provider"),
        (["restart", "--provider", "nosuch"], "unknown provider 'nosuch'"),
        (["switch", "--provider", "qwen3-chatllm"], "--provider runs the scenarios reload and restart"),
        (["restart", "--provider", "qwen3-chatllm"], "qwen3-chatllm needs --model"),
        (["restart", "--provider", "qwen3-chatllm", "-m", "{aligner}"], "but a Qwen3-ASR model is needed"),
        (["restart", "--provider", "faster-whisper", "-m", "{tmp}/none/"], "faster-whisper model directory not found"),
    ],
)
def test_bad_provider_runs_are_usage_errors(double_lib: Path, clip: Path, tmp_path: Path, args: list[str], says: str) -> None:
    aligner = write_aligner(tmp_path / "aligner.bin")
    given = [a.format(aligner=aligner, tmp=tmp_path) for a in args]
    r = run_qasr(["lab", "run", *given, "--audio", str(clip), "--results", str(tmp_path / "results")], double_env(double_lib))
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
