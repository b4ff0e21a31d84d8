"""Live streaming on the test double, whose words depend on the audio (QASR_DOUBLE_WORDS=audio):
each tone burst is one word keyed to its pitch, so a test knows exactly what every utterance said.

Proved here: finals cover the whole input in order with no word duplicated or dropped (at pauses,
at partial steps and where a long utterance is cut), stable text is never retracted and never holds
a half-heard word, streamed text equals `transcribe` of the same audio, and the sources (file at
real-time pace with an injected clock, stdin PCM) and the CLI behave.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import SHARED_DATA, double_env
from tones import RATE, EnergyDetector, burst_track, tone

from qasr import transcribe
from qasr.audio.endpoint import Endpointer, EndpointOptions
from qasr.audio.sources import FileSource, PcmSource
from qasr.engine.model import Model
from qasr.errors import AudioError
from qasr.pipeline.stream import StreamOptions, stream


class JumpClock:
    """Time that passes only when someone sleeps: a real-time source without waiting."""

    def __init__(self) -> None:
        self.t, self.slept = 1000.0, 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.t += seconds
            self.slept += seconds


def blocks(samples: np.ndarray, seconds: float = 0.1) -> list[np.ndarray]:
    step = int(seconds * RATE)
    return [samples[i : i + step] for i in range(0, len(samples), step)]


@pytest.fixture()
def model(tone_model: Model) -> Model:
    return tone_model


def run(model: Model, samples: np.ndarray, **options: object) -> list:  # type: ignore[type-arg]
    return list(stream(model, blocks(samples), StreamOptions(**options), detector=EnergyDetector(), live=False))  # type: ignore[arg-type]


def words_of(events: list, kind: str = "final") -> list[str]:  # type: ignore[type-arg]
    return " ".join(e.text for e in events if e.type == kind).split()


def test_the_double_hears_each_burst_as_its_word(model: Model) -> None:
    samples, expected = burst_track([3])
    assert transcribe(model, samples).text.split() == expected


@pytest.mark.parametrize("prefix", [True, False])
def test_finals_cover_the_input_in_order_and_stable_text_is_never_retracted(model: Model, prefix: bool) -> None:
    samples, expected = burst_track([4, 7, 2, 5])
    events = run(model, samples, step=0.5, prefix=prefix, unfixed_tokens=1)
    finals = [e for e in events if e.type == "final"]
    assert words_of(events) == expected  # nothing duplicated or dropped at pauses or steps
    assert [e.utterance for e in finals] == [0, 1, 2, 3]
    assert all(a.end <= b.start for a, b in zip(finals, finals[1:]))
    assert any(e.type == "partial" and e.stable for e in events), "the long utterance showed stable text"
    for u in range(4):
        shown = [e for e in events if e.utterance == u]
        stables = [e.stable for e in shown]
        for before, after in zip(stables, stables[1:]):
            assert after.startswith(before), (before, after)  # never retracted
        assert all("~" not in s for s in stables)  # a half-heard word is never stable
        assert shown[-1].type == "final" and shown[-1].text.startswith(stables[-2] if len(stables) > 1 else "")


def test_a_long_utterance_is_cut_in_a_pause_without_losing_a_word(model: Model) -> None:
    samples, expected = burst_track([30], word=0.3, gap=0.12)  # 12.6 s of unbroken "speech"
    events = run(model, samples, endpoint=EndpointOptions(max_utterance=4.0, min_silence=0.3))
    finals = [e for e in events if e.type == "final"]
    assert len(finals) >= 3 and all(e.end - e.start <= 4.0 + 1e-6 for e in finals)
    assert words_of(events) == expected
    for a, b in zip(finals, finals[1:]):
        assert b.start == a.end  # the next utterance starts exactly where the cut one ended


def test_streamed_text_equals_offline_transcription(model: Model) -> None:
    samples, expected = burst_track([3, 5, 1])
    assert " ".join(words_of(run(model, samples))) == transcribe(model, samples).text == " ".join(expected)


def test_partials_come_every_step_and_cost_is_bounded(model: Model) -> None:
    samples, _ = burst_track([16], word=0.3, gap=0.1)  # 6.4 s in one utterance
    events = run(model, samples, step=1.0, endpoint=EndpointOptions(max_utterance=8.0))
    partials = [e for e in events if e.type == "partial"]
    assert 5 <= len(partials) <= 7
    assert all(b.audio_time - a.audio_time >= 0.99 for a, b in zip(partials, partials[1:]))
    assert all(e.end - e.start <= 8.0 for e in events)


@pytest.mark.parametrize("speech", [0.8, 1.5])
def test_no_partial_starts_while_the_utterance_is_closing(model: Model, speech: float) -> None:
    # The partial falls due 1 s into the utterance. Speech that stopped at 0.8 s has been silent for
    # half of min_silence by then, so the final is at most 0.1 s away: a decode now would only delay it.
    silence = np.zeros(int(0.5 * RATE), np.float32)
    samples = np.concatenate([silence, tone(300, speech), silence])
    events = run(model, samples, step=1.0, endpoint=EndpointOptions(min_silence=0.2))
    kinds = [e.type for e in events]
    assert kinds == (["final"] if speech < 1.0 else ["partial", "final"])
    assert Endpointer(EnergyDetector()).trailing_silence == 0.0


def test_itn_and_opencc_apply_to_finals_only(model: Model, monkeypatch: pytest.MonkeyPatch) -> None:
    samples, _ = burst_track([3])
    events = run(model, samples, opencc="none", itn=True)
    assert events[-1].type == "final" and events[-1].stable == events[-1].text  # no numbers to change here


def test_a_file_at_real_time_pace_with_an_injected_clock(model: Model, tmp_path: Path) -> None:
    samples, expected = burst_track([2, 3])
    path = tmp_path / "talk.wav"
    soundfile.write(str(path), samples, RATE)
    clock = JumpClock()
    source = FileSource(str(path), realtime=True, clock=clock)
    events = list(stream(model, source, StreamOptions(), detector=EnergyDetector(), clock=clock))
    assert words_of(events) == expected
    assert clock.slept == pytest.approx(len(samples) / RATE, abs=0.11)  # paced, but no real waiting
    assert all(e.lag is not None and e.lag <= 0.2 for e in events)  # the clock only moves with the audio


def test_stdin_pcm_s16le_at_another_rate_and_stereo(model: Model) -> None:
    samples, expected = burst_track([3, 2])
    import soxr

    up = soxr.resample(samples, RATE, 44_100)
    stereo = np.stack([up, up], axis=1)
    raw = (np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes()
    source = PcmSource(io.BytesIO(raw), pcm="s16le", rate=44_100, channels=2)
    events = list(stream(model, source, StreamOptions(), detector=EnergyDetector(), live=False))
    assert words_of(events) == expected


def test_a_truncated_pcm_stream_keeps_the_finals_then_fails(model: Model) -> None:
    samples, expected = burst_track([2, 2])
    raw = samples.astype("<f4").tobytes() + b"\x01\x02"  # a cut-off last sample
    source = PcmSource(io.BytesIO(raw), pcm="f32le")
    got = []
    with pytest.raises(AudioError, match="ended inside a sample frame"):
        for event in stream(model, source, StreamOptions(), detector=EnergyDetector(), live=False):
            got.append(event)
    assert words_of(got) == expected  # every final made before the error was delivered


def test_endpointer_ignores_blips_and_pads_speech(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = np.concatenate([np.zeros(RATE), tone(300, 0.05), np.zeros(RATE), tone(300, 1.0), np.zeros(RATE)])
    ep = Endpointer(EnergyDetector(), EndpointOptions(min_speech=0.2))
    bounds = [b for block in blocks(samples) for b in ep.feed(block)] + list(ep.flush())
    closed = [b for b in bounds if b.end is not None and b.end > b.start]
    assert len(closed) == 1
    assert closed[0].start == pytest.approx(2.05 * RATE - 0.1 * RATE, abs=600)


def test_cli_stream_jsonl_from_stdin_and_srt_output(double_lib: Path, asr_model_file: Path, tmp_path: Path) -> None:
    speech, rate = soundfile.read(str(Path(__file__).resolve().parents[1] / "samples" / "en-hello.wav"), dtype="float32")
    gap = np.zeros(rate, np.float32)
    samples = np.concatenate([gap, speech, gap, speech, gap])
    out = tmp_path / "live.srt"
    env = double_env(double_lib, words="audio", abort_at_exit="1")  # Silero (in its own process) finds the speech
    r = subprocess.run([sys.executable, "-m", "qasr", "stream", "-", "-m", str(asr_model_file), "-l", "English", "--pcm", "f32le",
                        "-f", "jsonl", "-o", str(out)], input=samples.astype("<f4").tobytes(), capture_output=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr.decode()
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) >= 2 and all(e["text"] for e in finals)
    assert {"type", "utterance", "start", "end", "stable", "unstable", "text", "audio_time", "lag"} <= events[0].keys()
    import srt

    cues = list(srt.parse(out.read_text(encoding="utf-8")))
    assert " ".join(c.content for c in cues).split() == " ".join(e["text"] for e in finals).split()
    assert cues[0].start.total_seconds() >= 0.8 and cues[-1].end.total_seconds() <= len(samples) / rate


def test_cli_stream_bad_input_is_one_line(double_lib: Path, asr_model_file: Path, tmp_path: Path) -> None:
    env = double_env(double_lib)
    r = subprocess.run([sys.executable, "-m", "qasr", "stream", str(tmp_path / "nope.wav"), "-m", str(asr_model_file)],
                       capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "audio file not found" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "qasr", "stream", "-", "-m", str(asr_model_file), "--rate", "5"],
                       capture_output=True, text=True, env=env, timeout=60, input="")  # fmt: skip
    assert r.returncode == 2 and "sample rate" in r.stderr
    r = subprocess.run([sys.executable, "-m", "qasr", "stream", "-", "-m", str(asr_model_file), "-o", str(tmp_path / "x.txt")],
                       capture_output=True, text=True, env=env, timeout=60, input="")  # fmt: skip
    assert r.returncode == 2 and ".srt, .vtt or .jsonl" in r.stderr
    # No source: the microphone. Here there is no sounddevice, no PortAudio or no device: one line.
    r = subprocess.run([sys.executable, "-m", "qasr", "stream", "-m", str(asr_model_file)],
                       capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert any(w in r.stderr for w in ("sounddevice", "PortAudio", "input device")), r.stderr


@pytest.mark.skipif(not (SHARED_DATA / "jfk.wav").exists(), reason="../shared/data/jfk.wav is absent")
def test_real_speech_through_silero_in_its_own_process(model: Model) -> None:
    speech, rate = soundfile.read(str(SHARED_DATA / "jfk.wav"), dtype="float32")
    events = list(stream(model, blocks(speech), StreamOptions(), live=False))  # default VAD: Silero, isolated
    finals = [e for e in events if e.type == "final"]
    assert len(finals) >= 2 and all(a.end <= b.start for a, b in zip(finals, finals[1:]))
    assert all(f.text for f in finals) and finals[-1].end <= len(speech) / rate + 0.01
