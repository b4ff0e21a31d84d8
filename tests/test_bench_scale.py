"""bench_scale.py's pure helpers: the aligner's transcript follows the audio as the clip is cut or
repeated, and main is given the same text qasr.align sends (no engine needed)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_scale as bs  # noqa: E402


def test_the_transcript_is_cut_and_repeated_as_the_audio_is() -> None:
    words = "one two three four"
    assert bs.clip_transcript(words, 4.0, 2.0) == "one two"
    assert bs.clip_transcript(words, 4.0, 4.0) == words
    assert bs.clip_transcript(words, 4.0, 10.0) == "one two three four one two three four one two"
    assert bs.clip_transcript(words, 4.0, 0.1) == "one"  # never empty: the aligner refuses empty text


def test_main_gets_the_units_qasr_align_sends(tmp_path: Path) -> None:
    import numpy as np
    import soundfile

    audio = tmp_path / "a.wav"
    soundfile.write(str(audio), np.zeros(16_000 * 4, np.int16), 16_000)
    text = tmp_path / "a.txt"
    text.write_text("Hello, world! Again.", encoding="utf-8")
    assert bs.align_text(str(text), str(audio), 8.0) == "Hello world Again Hello world Again"

