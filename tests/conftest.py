"""Shared fixtures: the test double (built with cc), generated models and audio, the shared data.

Real-engine tests need ``QASR_CHATLLM_LIB`` (a real libchatllm) and ``../shared/models``; they skip
with the reason otherwise. Everything else runs on the test double, which is never the engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_MODELS = SHARED / "models"
SHARED_DATA = SHARED / "data"

sys.path.insert(0, str(Path(__file__).parent))

from modelfiles import write_aligner, write_model  # noqa: E402


@pytest.fixture(scope="session")
def double_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compile tests/native/libchatllm_double.c once per session; skip if there is no C compiler."""
    from native.build import build_double

    try:
        return build_double(tmp_path_factory.mktemp("double"))
    except FileNotFoundError as exc:  # no cc on this machine
        pytest.skip(f"no C compiler to build the test double: {exc}")


@pytest.fixture(scope="session")
def leak_cases_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/native/leak_cases.c compiled once per session (the lab's user-code cases; not the double)."""
    from native.build import build_leak_cases

    try:
        return build_leak_cases(tmp_path_factory.mktemp("leak-cases"))
    except FileNotFoundError as exc:
        pytest.skip(f"no C compiler to build the leak cases: {exc}")


@pytest.fixture(scope="session")
def double_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three builds of the double that differ under one environment, as engine builds do (knobs
    compiled in): ``clean``, ``leaky`` (1 MiB per inference turn), ``aborting`` (in destroy, as upstream)."""
    from native.build import build_double

    try:
        return {
            "clean": build_double(tmp_path_factory.mktemp("clean")),
            "leaky": build_double(tmp_path_factory.mktemp("leaky"), {"leak_inference": str(1 << 20)}),
            "aborting": build_double(tmp_path_factory.mktemp("aborting"), {"abort_in_destroy": "1"}),
        }
    except FileNotFoundError as exc:
        pytest.skip(f"no C compiler to build the test double: {exc}")


def engine_env() -> dict[str, str]:
    """No QASR_DOUBLE_* from outside and no default engine: builds differ only by what they carry."""
    return {k: v for k, v in os.environ.items() if not k.startswith("QASR_DOUBLE_") and k != "QASR_CHATLLM_LIB"}


@pytest.fixture()
def asr_model_file(tmp_path: Path) -> Path:
    return write_model(tmp_path / "asr.bin")


@pytest.fixture()
def aligner_model_file(tmp_path: Path) -> Path:
    return write_aligner(tmp_path / "aligner.bin")


def use_double(lib: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the double this process's engine, with none of the QASR_DOUBLE_* knobs from outside."""
    from qasr.engine import library

    for key in list(os.environ):
        if key.startswith("QASR_DOUBLE_"):
            monkeypatch.delenv(key)
    library.load_library(lib)


@pytest.fixture()
def tone_model(double_lib: Path, monkeypatch: pytest.MonkeyPatch, asr_model_file: Path):  # type: ignore[no-untyped-def]
    """A model on the double whose words depend on the audio (``QASR_DOUBLE_WORDS=audio``: each tone
    burst is a word named by its pitch, see tests/tones.py), English forced."""
    from qasr.engine.model import Model

    use_double(double_lib, monkeypatch)
    monkeypatch.setenv("QASR_DOUBLE_WORDS", "audio")
    return Model(asr_model_file, language="English")


def sine(seconds: float = 1.0, rate: int = 16_000, channels: int = 1, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


@pytest.fixture()
def wav_file(tmp_path: Path) -> Path:
    import soundfile

    path = tmp_path / "tone.wav"
    soundfile.write(str(path), sine(1.0), 16_000)
    return path


@pytest.fixture(scope="session")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen3-ASR GGUF (CrispASR's format), written once per session."""
    from qasr.engine.synth import TINY_ASR
    from qasr.engine.synth.gguf import write_gguf

    return write_gguf(TINY_ASR, tmp_path_factory.mktemp("crisp") / "tiny.synthetic.gguf", dtype="q8_0", seed=3).path


def double_env(lib: Path, **knobs: str) -> dict[str, str]:
    """Environment for a child process that uses the double as its engine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QASR_DOUBLE_")}
    env["QASR_CHATLLM_LIB"] = str(lib)
    env.update({f"QASR_DOUBLE_{k.upper()}": str(v) for k, v in knobs.items()})
    return env


def run_qasr(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "qasr", *args], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL
    )


def real_engine() -> tuple[Path, Path] | None:
    lib = os.environ.get("QASR_CHATLLM_LIB")
    model = SHARED_MODELS / "tiny-asr-a-q4_0.bin"
    if not lib or not Path(lib).exists() or not model.exists():
        return None
    return Path(lib), model


def engine_child(code: str, timeout: float = 120, **env_vars: str) -> subprocess.CompletedProcess[str]:
    """Run Python code in a child process with the real engine (``env_vars`` added to its environment)."""
    import textwrap

    env = {**os.environ, "QASR_CHATLLM_LIB": os.environ.get("QASR_CHATLLM_LIB", ""), **env_vars}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=timeout)


requires_real_engine = pytest.mark.skipif(
    real_engine() is None,
    reason="needs a real libchatllm: set QASR_CHATLLM_LIB to upstream's libchatllm.so, and ../shared/models must exist",
)
requires_shared_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


def sigint_as_ctrl_c() -> None:
    """``preexec_fn`` for a child a test sends SIGINT to: a shell without job control starts its
    background jobs with SIGINT ignored, the child would inherit that and Python would keep it, so
    the Ctrl-C under test would never arrive (measured: a suite run in the background of a script)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
