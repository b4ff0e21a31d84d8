"""Every program in examples/ runs, as a user would run it, against the test double (not the engine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile
from conftest import double_env, sine

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DEFAULT_TEXT = "hello world from the test double"


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=180,
                          stdin=subprocess.DEVNULL, cwd=cwd)  # fmt: skip


@pytest.fixture()
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    soundfile.write(str(path), sine(2.0), 16_000)
    return path


def test_transcribe_segments(double_lib: Path, clip: Path, asr_model_file: Path, aligner_model_file: Path) -> None:
    r = _run([str(EXAMPLES / "transcribe_segments.py"), str(asr_model_file), str(clip), "--aligner", str(aligner_model_file),
              "--context", "Qwen terms"], double_env(double_lib, abort_at_exit="1"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"[   0.00 ->    2.00] {DEFAULT_TEXT}"
    assert [line.split()[-1] for line in lines[1:7]] == DEFAULT_TEXT.split()
    assert "1 engine call(s)" in lines[-1] and "9 tokens" in lines[-1]


def test_stream_text(double_lib: Path, clip: Path, asr_model_file: Path) -> None:
    r = _run([str(EXAMPLES / "stream_text.py"), str(asr_model_file), str(clip)], double_env(double_lib, abort_at_exit="1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:2] == [DEFAULT_TEXT, f"final: {DEFAULT_TEXT}"]
    assert "tokens/s" in r.stdout


def test_subtitles(double_lib: Path, clip: Path, asr_model_file: Path, aligner_model_file: Path, tmp_path: Path) -> None:
    speech, rate = soundfile.read(str(EXAMPLES.parent / "samples" / "en-hello.wav"), dtype="float32")
    audio = tmp_path / "talk.wav"
    soundfile.write(str(audio), speech, rate)
    out = tmp_path / "talk.json"
    r = _run([str(EXAMPLES / "subtitles.py"), str(asr_model_file), str(aligner_model_file), str(audio), str(out)], double_env(double_lib))
    assert r.returncode == 0, r.stderr
    assert "1 aligned" in r.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert " ".join(s["text"] for s in data["segments"]) == DEFAULT_TEXT


def test_leak_check(double_lib: Path, clip: Path, asr_model_file: Path, tmp_path: Path) -> None:
    env = double_env(double_lib)
    env["QASR_MODEL"], env["QASR_LEAK_AUDIO"] = str(asr_model_file), str(clip)
    r = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_leak_check.py")], env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
    leaky = dict(env, QASR_DOUBLE_LEAK_INFERENCE=str(1024 * 1024))
    r = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_leak_check.py")], leaky, cwd=tmp_path)
    assert r.returncode == 1 and "LEAK" in r.stdout


def test_leak_scenario(double_lib: Path, clip: Path, asr_model_file: Path, tmp_path: Path) -> None:
    """examples/leak_scenario.py under `qasr lab run`: a leak in the engine shows through the user's handler."""
    common = ["-m", "qasr", "lab", "run", f"{EXAMPLES / 'leak_scenario.py'}:Handler", "-m", str(asr_model_file),
              "--audio", str(clip), "-n", "40", "--results", str(tmp_path / "results"), "--json", "--no-peaks"]  # fmt: skip
    r = _run(common, double_env(double_lib))
    assert r.returncode == 0, r.stderr
    clean = json.loads(r.stdout)
    assert clean["verdict"] == "NO_LEAK" and clean["accuracy"]["first_text"] == DEFAULT_TEXT
    r = _run(common, double_env(double_lib, leak_inference=str(1024 * 1024)))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verdict"] == "LEAK"
    r = _run(["-m", "qasr", "lab", "run", f"{EXAMPLES / 'leak_scenario.py'}:normalize", "-n", "60", "--python-heap",
              "--results", str(tmp_path / "results"), "--json"], double_env(double_lib))  # fmt: skip
    assert r.returncode == 0, r.stderr
    plain = json.loads(r.stdout)
    assert plain["verdict"] == "NO_LEAK" and plain["verdicts"]["py_heap"]["verdict"] == "NO_LEAK"


def test_leak_marker(tmp_path: Path) -> None:
    r = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_leak_marker.py")], dict(os.environ), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout
