"""VAD: speech spans from frame probabilities, chunk planning, and Silero on real speech (shared data)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA, requires_shared_data

from qasr.audio.vad import (
    FRAME_SECONDS,
    MIN_PIECE,
    Span,
    VadOptions,
    find_chunks,
    plan_chunks,
    speech_probabilities,
    speech_spans,
)


def probs(pattern: list[tuple[float, float]]) -> np.ndarray:
    """Frame probabilities from (seconds, probability) runs."""
    return np.concatenate([np.full(int(round(s / FRAME_SECONDS)), p, np.float32) for s, p in pattern])


def test_hysteresis_keeps_short_pauses_inside_a_span() -> None:
    p = probs([(1.0, 0.0), (2.0, 0.9), (0.3, 0.1), (2.0, 0.9), (2.0, 0.0)])
    spans = speech_spans(p, 7.3, VadOptions(min_silence=0.5))
    assert len(spans) == 1
    assert spans[0].start == pytest.approx(1.0, abs=0.1) and spans[0].end == pytest.approx(5.3, abs=0.1)
    # a longer pause splits the speech in two
    assert len(speech_spans(p, 7.3, VadOptions(min_silence=0.2))) == 2


def test_values_between_the_thresholds_do_not_end_speech_and_blips_are_dropped() -> None:
    p = probs([(1.0, 0.9), (1.0, 0.4), (1.0, 0.9), (1.0, 0.0), (0.1, 0.95), (1.0, 0.0)])
    spans = speech_spans(p, 5.1, VadOptions(threshold=0.5))  # leaves below 0.35; 0.4 is still speech
    assert len(spans) == 1 and spans[0].end == pytest.approx(3.0, abs=FRAME_SECONDS)  # the 0.1 s blip is gone


def test_speech_running_to_the_end_is_closed_at_the_end() -> None:
    spans = speech_spans(probs([(1.0, 0.0), (2.0, 0.9)]), 3.0)
    assert spans == [Span(pytest.approx(1.0, abs=FRAME_SECONDS), 3.0)]  # type: ignore[arg-type]


def test_chunks_pad_merge_short_gaps_and_respect_the_maximum() -> None:
    spans = [Span(1.0, 5.0), Span(6.0, 10.0), Span(20.0, 24.0), Span(25.0, 40.0)]
    chunks = plan_chunks(spans, 60.0, VadOptions(pad=0.3, merge_gap=3.0, max_chunk=12.0))
    assert chunks[0] == Span(pytest.approx(0.7), pytest.approx(10.3))  # type: ignore[arg-type]
    assert all(c.seconds <= 12.0 + 1e-9 for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert a.end <= b.start
    assert chunks[1].start == pytest.approx(19.7)  # a 9 s gap is not merged
    assert sum(c.seconds for c in chunks) >= sum(s.seconds for s in spans)  # no speech lost


def test_a_long_span_is_cut_at_its_quietest_moment() -> None:
    p = np.full(int(70 / FRAME_SECONDS), 0.9, np.float32)
    quiet = int(22.0 / FRAME_SECONDS)
    p[quiet] = 0.51  # still speech, but the least sure frame
    chunks = plan_chunks([Span(0.0, 70.0)], 70.0, VadOptions(max_chunk=30.0, pad=0.0), p)
    assert chunks[0].end == pytest.approx(22.0, abs=FRAME_SECONDS)
    assert all(c.seconds <= 30.0 + 1e-9 and c.seconds >= MIN_PIECE for c in chunks)
    assert chunks[-1].end == 70.0 and all(a.end == b.start for a, b in zip(chunks, chunks[1:]))


def test_chunks_stay_inside_the_audio() -> None:
    chunks = plan_chunks([Span(0.05, 2.0), Span(9.0, 9.98)], 10.0, VadOptions(pad=0.5))
    assert chunks[0].start == 0.0 and chunks[-1].end == 10.0


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"max_chunk": 1.0}, {"max_chunk": 3600.0}, {"pad": -1.0}])
def test_bad_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VadOptions(**kwargs)


def test_silence_and_noise_have_no_speech() -> None:
    rng = np.random.default_rng(0)
    assert find_chunks(np.zeros(16_000 * 2, np.float32)) == ([], [])
    assert find_chunks(rng.normal(0, 0.005, 16_000 * 2).astype(np.float32)) == ([], [])
    assert len(speech_probabilities(np.zeros(1000, np.float32))) == 2  # the tail frame is padded


@requires_shared_data
def test_silero_finds_the_speech_in_jfk() -> None:
    import soundfile

    path = SHARED_DATA / "jfk.wav"
    if not path.exists():
        pytest.skip("../shared/data/jfk.wav is absent")
    samples, _ = soundfile.read(str(path), dtype="float32")
    silence = np.zeros(16_000 * 5, np.float32)
    spans, chunks = find_chunks(np.concatenate([silence, samples, silence]), VadOptions(max_chunk=30.0))
    assert 3 <= len(spans) <= 6  # the four phrases, give or take the model's view of the pauses
    assert spans[0].start > 5.0 and spans[-1].end < 16.5
    assert len(chunks) == 1 and chunks[0].start >= 4.5 and chunks[0].end <= 16.5
