"""Long audio planned as it goes (`qasr.audio.chunking`): the same rules as a whole-file plan, cuts in
pauses (or at the quietest moment, said so), one chunk of look-ahead, and the detector's thread."""

from __future__ import annotations

import numpy as np
import pytest
from tones import EnergyDetector, burst_track

from qasr.audio.chunking import BLOCK_FRAMES, ChunkPlanner, PauseChunker
from qasr.audio.vad import FRAME_SECONDS, Span, VadOptions, plan_chunks, speech_spans
from qasr.errors import QasrError


def probs(pattern: list[tuple[float, float]]) -> np.ndarray:
    """Frame probabilities from (seconds, probability) runs."""
    return np.concatenate([np.full(int(round(s / FRAME_SECONDS)), p, np.float32) for s, p in pattern])


def talk(seconds: float, seed: int = 0) -> np.ndarray:
    """Speech of 1-12 s with pauses of 0.2-5 s (some shorter than min_silence, some longer than merge_gap)."""
    rng = np.random.default_rng(seed)
    runs: list[tuple[float, float]] = [(1.0, 0.02)]
    while sum(s for s, _ in runs) < seconds:
        runs += [(float(rng.uniform(1.0, 12.0)), float(rng.uniform(0.6, 0.99))), (float(rng.choice([0.2, 0.7, 1.5, 5.0])), 0.02)]
    return probs(runs)[: int(seconds / FRAME_SECONDS)]


def planned(p: np.ndarray, options: VadOptions, block: int) -> list:  # type: ignore[type-arg]
    """Every chunk, feeding ``block`` frames at a time and taking each chunk as soon as it is settled."""
    planner = ChunkPlanner(len(p) * FRAME_SECONDS, options)
    out = []
    for i in range(0, len(p), block):
        planner.feed(p[i : i + block])
        while (chunk := planner.next_chunk()) is not None:
            out.append(chunk)
    while (chunk := planner.next_chunk()) is not None:
        out.append(chunk)
    return out


def check_cuts(p: np.ndarray, chunks: list, options: VadOptions) -> None:  # type: ignore[type-arg]
    duration = len(p) * FRAME_SECONDS
    for a, b in zip(chunks, chunks[1:]):
        assert a.end <= b.start + 1e-9  # never overlap, in order
    for c in chunks:
        assert 0 <= c.start < c.end <= duration and c.seconds <= options.max_chunk + 1e-6
    speech = np.flatnonzero(p >= options.threshold) * FRAME_SECONDS
    covered = np.zeros(len(speech), bool)
    for c in chunks:
        covered |= (speech >= c.start - 1e-6) & (speech + FRAME_SECONDS <= c.end + FRAME_SECONDS + 1e-6)
    assert covered.all(), f"speech at {speech[~covered][:5]} is in no chunk"
    for c in chunks:
        at = p[min(int(round(c.end / FRAME_SECONDS)), len(p) - 1)]
        if c.cut == "pause":
            assert at < options.leave_threshold  # the cut is in a pause
        elif c.cut == "end":
            assert c is chunks[-1]


@pytest.mark.parametrize("block", [1, 7, 100_000])
def test_chunks_as_the_frames_come_follow_the_whole_file_rules(block: int) -> None:
    p = talk(600.0)
    options = VadOptions(max_chunk=30.0)
    chunks = planned(p, options, block)
    check_cuts(p, chunks, options)
    assert {c.cut for c in chunks} <= {"pause", "quietest", "end"} and chunks[-1].cut in ("pause", "end")
    # the same plan a whole-file pass makes (its rules, from each chunk's end; no quietest cut here
    # needs the speech state carried across a cut, so the two agree exactly)
    whole = plan_chunks(speech_spans(p, len(p) * FRAME_SECONDS, options), len(p) * FRAME_SECONDS, options, p)
    if not any(c.cut == "quietest" for c in chunks):
        assert [(round(c.start, 3), round(c.end, 3)) for c in chunks] == [(round(s.start, 3), round(s.end, 3)) for s in whole]
    assert chunks == planned(p, options, BLOCK_FRAMES)  # the block size changes nothing


def test_speech_with_no_pause_is_cut_at_its_quietest_moment_and_continues_in_speech() -> None:
    p = probs([(1.0, 0.0), (25.0, 0.9), (0.1, 0.55), (20.0, 0.9), (0.1, 0.6), (20.0, 0.9), (2.0, 0.0)])
    options = VadOptions(max_chunk=30.0, pad=0.0)
    chunks = planned(p, options, 50)
    check_cuts(p, chunks, options)
    assert [c.cut for c in chunks] == ["quietest", "quietest", "pause"]
    assert chunks[0].end == pytest.approx(26.0 + FRAME_SECONDS, abs=2 * FRAME_SECONDS)  # the 0.55 dip
    assert chunks[1].start == chunks[0].end  # nothing between: the speech goes on
    assert chunks[1].end == pytest.approx(46.1 + FRAME_SECONDS, abs=2 * FRAME_SECONDS)


def test_the_cut_goes_in_the_middle_of_the_quiet_stretch() -> None:
    p = probs([(0.5, 0.0), (20.0, 0.9), (0.2, 0.0), (20.0, 0.9), (1.0, 0.0)])  # a 0.2 s gap, shorter than min_silence
    chunks = planned(p, VadOptions(max_chunk=30.0, pad=0.0), 50)
    assert chunks[0].cut == "quietest" and chunks[0].end == pytest.approx(20.6, abs=FRAME_SECONDS)


def test_the_first_chunk_needs_one_chunk_of_audio_not_the_whole_file() -> None:
    p = talk(2 * 3600.0, seed=1)  # two hours
    options = VadOptions(max_chunk=20.0)
    planner = ChunkPlanner(len(p) * FRAME_SECONDS, options)
    fed = 0
    while (chunk := planner.next_chunk()) is None:
        planner.feed(p[fed : fed + BLOCK_FRAMES])
        fed += BLOCK_FRAMES
    assert fed * FRAME_SECONDS <= chunk.start + options.max_chunk + planner.lookahead + BLOCK_FRAMES * FRAME_SECONDS
    assert fed < len(p) / 100


def test_silence_gives_no_chunk_and_is_not_rescanned() -> None:
    planner = ChunkPlanner(3600.0, VadOptions())
    while not planner.complete:
        planner.feed(np.zeros(min(BLOCK_FRAMES, planner.total_frames - planner.frames), np.float32))
        assert planner.next_chunk() is None
        if not planner.complete:  # the frames still scanned stay few, whatever the silence's length
            assert planner.frames - planner._first <= BLOCK_FRAMES + (0.25 + 0.5 + 0.3) / FRAME_SECONDS + 3
    assert planner.next_chunk() is None


def test_speech_to_the_end_is_cut_at_the_end() -> None:
    p = probs([(2.0, 0.0), (5.0, 0.9)])
    chunks = planned(p, VadOptions(max_chunk=10.0), 20)
    assert [c.cut for c in chunks] == ["end"] and chunks[0].end == pytest.approx(len(p) * FRAME_SECONDS)


@pytest.mark.parametrize("prefetch", [False, True])
def test_the_chunker_asks_one_chunk_ahead_and_closes_its_detector(prefetch: bool) -> None:
    samples, _ = burst_track([6] * 60, word=0.3, gap=0.1, pause=2.0)  # about 4.5 minutes
    detector = EnergyDetector()
    chunker = PauseChunker(samples, detector, VadOptions(max_chunk=20.0), prefetch=prefetch)
    seen_at_first = None
    chunks = []
    for chunk in chunker:
        if seen_at_first is None:
            seen_at_first = detector.frames_seen
        chunks.append(chunk)
    total = -(-len(samples) // 512)
    ahead = (20.0 + chunker.planner.lookahead) * (2 if prefetch else 1)  # prefetching: the next chunk's too
    assert seen_at_first is not None and seen_at_first * FRAME_SECONDS < ahead + 2 * BLOCK_FRAMES * FRAME_SECONDS
    assert detector.frames_seen == total and detector.closed
    reference = list(PauseChunker(samples, EnergyDetector(), VadOptions(max_chunk=20.0), prefetch=not prefetch))
    assert chunks == reference  # overlapping the VAD with the caller changes nothing in the plan
    assert all(c.cut == "pause" for c in chunks[:-1]) and all(c.seconds <= 20.0 for c in chunks)


def test_an_abandoned_chunker_closes_its_detector() -> None:
    samples, _ = burst_track([6] * 30, word=0.3, gap=0.1, pause=2.0)
    detector = EnergyDetector()
    iterator = iter(PauseChunker(samples, detector, VadOptions(max_chunk=10.0), prefetch=True))
    next(iterator)
    iterator.close()  # the caller stopped (an engine error): the prefetch thread is joined, the child closed
    assert detector.closed and detector.frames_seen < len(samples) // 512


class FailingDetector(EnergyDetector):
    """Fails on its second request, as a detector child that died would."""

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        if self.frames_seen:
            raise QasrError("the voice activity detector stopped (killed by signal 9): no message")
        return super().probabilities(frames)


@pytest.mark.parametrize("prefetch", [False, True])
def test_a_detector_failure_reaches_the_caller(prefetch: bool) -> None:
    samples, _ = burst_track([6] * 40, word=0.3, gap=0.1, pause=2.0)
    detector = FailingDetector()
    chunker = PauseChunker(samples, detector, VadOptions(max_chunk=10.0), prefetch=prefetch, block_frames=len(samples))
    with pytest.raises(QasrError, match="detector stopped"):
        list(PauseChunker(samples, FailingDetector(), VadOptions(max_chunk=10.0), prefetch=prefetch, block_frames=400))
    assert [c.start for c in chunker][0] >= 0 and detector.closed  # one request for everything: no failure


def test_spans_can_start_in_speech() -> None:
    p = probs([(1.0, 0.9), (1.0, 0.0)])
    speech = np.count_nonzero(p > 0.5) * FRAME_SECONDS
    assert speech_spans(p[3:], len(p) * FRAME_SECONDS, VadOptions(), in_speech=True) == [Span(0.0, pytest.approx(speech - 3 * FRAME_SECONDS))]  # type: ignore[list-item]
    assert speech_spans(p[3:], len(p) * FRAME_SECONDS, VadOptions(threshold=0.95)) == []  # a fresh start must enter first


def test_the_first_chunk_has_its_own_bound() -> None:
    p = talk(600.0, seed=2)
    options = VadOptions(max_chunk=30.0)
    planner = ChunkPlanner(len(p) * FRAME_SECONDS, options, first_chunk=10.0)
    assert planner.needed_frames() * FRAME_SECONDS <= 10.0 + planner.lookahead + FRAME_SECONDS  # the VAD needs less first
    planner.feed(p)
    chunks = []
    while (chunk := planner.next_chunk()) is not None:
        chunks.append(chunk)
    check_cuts(p, chunks, options)
    assert chunks[0].seconds <= 10.0 and max(c.seconds for c in chunks[1:]) > 10.0  # the rest go at the full bound


def test_the_vad_overlaps_the_engine_only_when_a_core_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from qasr.audio.chunking import prefetch_pays

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert not prefetch_pays(None) and not prefetch_pays(2) and prefetch_pays(1)  # upstream's default: both cores
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert prefetch_pays(None) and not prefetch_pays(16)  # upstream takes half of more than 4
