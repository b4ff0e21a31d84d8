"""The committed clips in samples/: they decode with qasr.audio, are 16 kHz mono, carry their text."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from qasr.audio import SAMPLE_RATE, load_audio

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CLIPS = sorted(SAMPLES.glob("*.wav"))


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules.setdefault("make_samples", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_there_are_english_and_mandarin_clips_and_they_are_small() -> None:
    names = {p.stem for p in CLIPS}
    assert any(n.startswith("en-") for n in names) and any(n.startswith("zh-") for n in names)
    assert sum(p.stat().st_size for p in CLIPS) < 1_000_000


@pytest.mark.parametrize("wav", CLIPS, ids=lambda p: p.stem)
def test_clip_decodes_as_16k_mono_with_its_text(wav: Path) -> None:
    info = soundfile.info(str(wav))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", SAMPLE_RATE, 1)
    audio = load_audio(wav)
    assert audio.source_sample_rate == SAMPLE_RATE and audio.source_channels == 1
    assert 1.0 < audio.seconds < 15.0
    assert float(np.sqrt(np.mean(audio.samples**2))) > 0.02  # speech, not silence
    text = wav.with_suffix(".txt").read_text(encoding="utf-8").strip()
    assert text and "\n" not in text
    if wav.stem.startswith("zh-"):
        assert re.search(r"[\u4e00-\u9fff]", text)
    else:
        assert text.isascii()


def test_mandarin_phone_number_read_digit_by_digit() -> None:
    text = (SAMPLES / "zh-phone.txt").read_text(encoding="utf-8")
    digits = re.search(r"[零一二三四五六七八九]{10,}", text)
    assert digits, text
    assert "".join(str("零一二三四五六七八九".index(c)) for c in digits.group()) == "0912345678"


def test_the_script_made_exactly_these_clips() -> None:
    clips = _script().CLIPS
    assert sorted(c.name for c in clips) == [p.stem for p in CLIPS]
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for c in clips:
        assert (SAMPLES / f"{c.name}.txt").read_text(encoding="utf-8") == c.text + "\n"
        assert f"`{c.name}.wav`" in readme and c.text in readme


def _espeak_version() -> str:
    if shutil.which("espeak-ng") is None:
        return ""
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout


@pytest.mark.skipif("1.51" not in _espeak_version(), reason="byte-identical output needs espeak-ng 1.51, which made the clips")
def test_regenerating_reproduces_the_committed_bytes(tmp_path: Path) -> None:
    assert _script().main(["--out", str(tmp_path)]) == 0
    for wav in CLIPS:
        assert (tmp_path / wav.name).read_bytes() == wav.read_bytes(), wav.name
