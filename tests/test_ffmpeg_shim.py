"""The ffmpeg shim serves exactly what ffmpeg would print for audio qasr staged, and nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import sine

from qasr.audio.staging import staged_wav
from qasr.engine import ffmpeg_shim

SHIM_DIR = ffmpeg_shim.PACKAGED.parent


def engine_command(path: Path) -> str:
    """The command line chatllm.cpp builds (src/audio_process.cpp)."""
    return f'ffmpeg -nostdin -threads 0 -i "{path}" -f f32le -ac 1 -ar 16000 -hide_banner -loglevel error -'


def run_shell(cmd: str, path_prefix: Path | None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(cmd, shell=True, capture_output=True, env=env, timeout=60)


def test_shim_streams_the_staged_samples() -> None:
    samples = sine(1.5) * np.linspace(0, 1, 24_000, dtype=np.float32)
    with staged_wav(samples, raw_only=True) as wav:
        out = run_shell(engine_command(wav), SHIM_DIR)
    assert out.returncode == 0
    assert np.array_equal(np.frombuffer(out.stdout, dtype="<f4"), samples)


@pytest.mark.skipif(ffmpeg_shim.real_ffmpeg() is None, reason="no real ffmpeg on PATH to compare with")
def test_shim_output_is_byte_identical_to_ffmpeg() -> None:
    rng = np.random.default_rng(7)
    samples = (rng.standard_normal(16_000 * 3) * 0.2).astype(np.float32)
    with staged_wav(samples, raw_only=True) as wav:
        shim = run_shell(engine_command(wav), SHIM_DIR).stdout
    with staged_wav(samples, raw_only=False) as wav:
        real = run_shell(engine_command(wav), None).stdout
    assert len(real) == 4 * len(samples)
    assert shim == real


@pytest.mark.skipif(ffmpeg_shim.real_ffmpeg() is None, reason="no real ffmpeg on PATH")
def test_other_requests_go_to_the_real_ffmpeg(tmp_path: Path) -> None:
    out = run_shell("ffmpeg -hide_banner -version", SHIM_DIR)
    assert out.returncode == 0 and b"ffmpeg version" in out.stdout


def test_without_a_real_ffmpeg_other_requests_fail_clearly(tmp_path: Path) -> None:
    env = {"PATH": f"{SHIM_DIR}{os.pathsep}/nonexistent"}
    sh = shutil.which("sh")
    out = subprocess.run([sh, "-c", "ffmpeg -i other.wav -"], capture_output=True, env=env, timeout=30)  # type: ignore[list-item]
    assert out.returncode == 127 and b"not found on PATH" in out.stderr


def test_activate_prepends_once_and_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    first = ffmpeg_shim.activate()
    assert first is not None and os.environ["PATH"].split(os.pathsep)[0] == str(first)
    ffmpeg_shim.activate()
    assert os.environ["PATH"].count(str(first)) == 1
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("QASR_FFMPEG_SHIM", "0")
    assert ffmpeg_shim.activate() is None and os.environ["PATH"] == "/usr/bin:/bin"


def test_a_shim_without_exec_bit_is_copied_once_to_the_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "pkg" / "ffmpeg"
    plain.parent.mkdir()
    plain.write_bytes(ffmpeg_shim.PACKAGED.read_bytes())
    plain.chmod(0o644)
    monkeypatch.setattr(ffmpeg_shim, "PACKAGED", plain)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = ffmpeg_shim._executable_copy()
    second = ffmpeg_shim._executable_copy()
    assert first == second == tmp_path / "cache" / "qasr" / "shim"
    assert os.access(first / "ffmpeg", os.X_OK) and (first / "ffmpeg").read_bytes() == plain.read_bytes()
    assert not list(first.glob(".ffmpeg.*"))  # no temporary copies left behind
