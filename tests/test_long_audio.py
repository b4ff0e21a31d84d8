"""Long audio through `transcribe` on the test double with audio-dependent words (each tone burst is
a word named by its pitch): cut at pauses by default, no word dropped or doubled against the same
utterances one by one, each segment given as soon as its call ends, and the default on every path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import double_env, run_qasr
from tones import RATE, EnergyDetector, tone

from qasr import transcribe
from qasr.audio.chunking import FIRST_CHUNK
from qasr.audio.vad import DEFAULT_MAX_CHUNK
from qasr.engine.model import Model
from qasr.pipeline.results import Segment
from qasr.pipeline.transcribe import TranscriptionStream
from qasr.spec import CallOptions, EngineSpec

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture()
def model(tone_model: Model) -> Model:
    return tone_model


def recording(minutes: float, seed: int = 0) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """``minutes`` of tone-word utterances: 1-9 words each, pauses of 0.6-6 s (some shorter than the
    VAD's merge gap, some longer), and one unbroken 45 s utterance that no 30 s chunk can hold whole.
    Returns the samples, each utterance's (first, last) sample, and the words the double says."""
    rng = np.random.default_rng(seed)
    parts, bounds, words, at, k = [np.zeros(RATE, np.float32)], [], [], RATE, 0
    while at < minutes * 60 * RATE:
        n = 107 if len(bounds) == 20 else int(rng.integers(1, 10))  # the 21st: ~45 s without a pause
        first = at
        for i in range(n):
            hz = 300 + 25 * (k % 100)
            parts.append(tone(hz, 0.3))
            words.append(f"w{round(hz / 25)}")
            gap = np.zeros(int(0.12 * RATE), np.float32) if i < n - 1 else np.zeros(0, np.float32)
            parts.append(gap)
            at += int(0.3 * RATE) + len(gap)
            k += 1
        bounds.append((first, at))
        pause = np.zeros(int(float(rng.choice([0.6, 1.0, 2.0, 4.0, 6.0])) * RATE), np.float32)
        parts.append(pause)
        at += len(pause)
    return np.concatenate(parts), bounds, words


def one_by_one(model: Model, samples: np.ndarray, bounds: list[tuple[int, int]]) -> list[str]:
    """The words of each utterance transcribed on its own (with a little silence around it)."""
    words: list[str] = []
    pad = int(0.2 * RATE)
    for a, b in bounds:
        words += transcribe(model, samples[max(0, a - pad) : b + pad], max_chunk=0).text.split()  # one call each
    return words


@pytest.mark.parametrize("max_chunk", [None, 10.0])
def test_ten_minutes_chunked_lose_and_double_no_word(model: Model, max_chunk: float | None) -> None:
    samples, bounds, expected = recording(10.0)
    assert one_by_one(model, samples, bounds) == expected  # the reference: each utterance alone
    stream = TranscriptionStream(model, samples, max_chunk=max_chunk, detector=EnergyDetector())
    shown = "".join(stream)
    result = stream.result
    assert result is not None
    assert result.text.split() == expected == shown.split()
    bound = max_chunk or DEFAULT_MAX_CHUNK
    segments = result.segments
    assert segments[0].end - segments[0].start <= FIRST_CHUNK  # a short first call: the first text comes soon
    assert len(segments) == result.figures.engine_calls > 600 / bound / 2
    assert all(s.end - s.start <= bound + 1e-6 for s in segments)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:]))
    long_a, long_b = (x / RATE for x in bounds[20])
    quietest = [s for s in segments if s.cut == "quietest"]
    assert quietest and all(long_a < s.end < long_b for s in quietest)  # only inside the unbroken utterance
    assert {s.cut for s in segments} <= {"pause", "quietest", "end"} and segments[-1].cut in ("pause", "end")
    assert result.figures.vad_seconds > 0


@pytest.mark.parametrize("prefetch", [False, True])
def test_each_segment_comes_as_its_call_ends_with_the_vad_one_chunk_ahead(model: Model, prefetch: bool) -> None:
    samples, _, expected = recording(6.0, seed=3)
    detector = EnergyDetector()
    stream = TranscriptionStream(model, samples, detector=detector, vad_prefetch=prefetch)
    events = stream.events()
    text: list[str] = []
    for event in events:
        if isinstance(event, Segment):
            first = event
            break
        text.append(event)
    total_frames = -(-len(samples) // 512)
    assert detector.frames_seen < total_frames / 4  # the VAD did not run over the file first
    assert first.id == 0 and first.text.split() == "".join(text).split() and first.cut in ("pause", "quietest")
    rest = list(events)
    segments = [first] + [e for e in rest if isinstance(e, Segment)]
    assert stream.result is not None and stream.result.segments == segments  # the same values, in order
    assert " ".join(s.text for s in segments).split() == expected
    assert detector.frames_seen == total_frames and detector.closed


def test_the_default_bound_and_zero_for_one_call(model: Model) -> None:
    silence = np.zeros(RATE, np.float32)
    samples = np.concatenate([silence, tone(300, 0.3), np.zeros(40 * RATE, np.float32), tone(400, 0.3), silence])
    assert TranscriptionStream(model, samples).max_chunk == DEFAULT_MAX_CHUNK == 30.0
    chunked = TranscriptionStream(model, samples, detector=EnergyDetector()).run()
    assert chunked.figures.engine_calls == 2 and chunked.text == "w12 w16"  # the silence between is never sent
    whole = transcribe(model, samples, max_chunk=0)
    assert whole.figures.engine_calls == 1 and whole.text == "w12 w16" and whole.segments[0].cut == "end"
    nine = np.concatenate([samples, np.zeros(int(9 * 60 * RATE) - len(samples), np.float32)])
    assert TranscriptionStream(model, nine, max_chunk=0).max_chunk == 480.0  # beyond one call, cut at 8 min


def test_the_provider_and_call_options_take_the_default(model: Model, asr_model_file: Path, double_lib: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from qasr.providers import make_provider

    monkeypatch.setenv("QASR_CHATLLM_LIB", str(double_lib))
    provider = make_provider(EngineSpec(model=str(asr_model_file)))
    samples = tone(300, 1.0)
    assert provider.stream(samples).max_chunk == DEFAULT_MAX_CHUNK  # type: ignore[attr-defined]
    assert provider.stream(samples, CallOptions(max_chunk=0)).max_chunk == 480.0  # type: ignore[attr-defined]
    assert provider.stream(samples, CallOptions(max_chunk=12.5)).max_chunk == 12.5  # type: ignore[attr-defined]
    assert CallOptions.from_json(CallOptions().to_json()).max_chunk is None  # None travels as "the default"


def test_cli_stream_jsonl_prints_a_segment_event_per_chunk(double_lib: Path, asr_model_file: Path, tmp_path: Path) -> None:
    speech, rate = soundfile.read(str(SAMPLES / "en-hello.wav"), dtype="float32")
    gap = np.zeros(4 * rate, np.float32)
    path = tmp_path / "long.wav"
    soundfile.write(str(path), np.concatenate([speech, gap, speech, gap, speech]), rate)
    env = double_env(double_lib, words="audio", abort_at_exit="1")  # Silero (in its own process) finds the speech
    r = run_qasr(["transcribe", str(path), "-m", str(asr_model_file), "--stream", "-f", "jsonl", "--max-chunk", "6"], env)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    segments = [e for e in events if e["event"] == "segment"]
    result = events[-1]
    assert kinds[-1] == "result" and len(segments) == result["engine_calls"] == 3
    assert [s["id"] for s in segments] == [0, 1, 2] and all(s["source"] == str(path) for s in segments)
    assert kinds.index("segment") < len(kinds) - 1 and kinds[0] == "chunk"  # text, then its segment, ...
    assert [{k: s[k] for k in ("start", "end", "text", "cut")} for s in segments] == \
        [{k: s[k] for k in ("start", "end", "text", "cut")} for s in result["segments"]]  # fmt: skip
    assert all(s["cut"] in ("pause", "end") for s in segments)
    plain = run_qasr(["transcribe", str(path), "-m", str(asr_model_file), "--stream", "--max-chunk", "6"], env)
    assert plain.returncode == 0 and "segment" not in plain.stdout  # txt shows the text only


def test_cli_help_states_the_default_and_its_cost(double_lib: Path) -> None:
    r = run_qasr(["transcribe", "--help"], double_env(double_lib))
    flat = " ".join(r.stdout.split())
    assert "default 30" in flat and "20 MiB per audio second" in flat


def test_the_vad_overlaps_by_default_only_when_the_engine_leaves_a_core_free(tone_model: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    samples = tone(300, 1.0)
    assert not TranscriptionStream(tone_model, samples).vad_prefetch  # threads None: the engine takes both cores
    tone_model.threads = 1
    assert TranscriptionStream(tone_model, samples).vad_prefetch
    assert not TranscriptionStream(tone_model, samples, vad_prefetch=False).vad_prefetch
