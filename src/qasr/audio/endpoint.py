"""Endpointing for live audio: where an utterance opens and where it closes, as the samples arrive.

Silero's speech probability per 32 ms frame (`qasr.audio.silero`) drives a small state machine, the
same hysteresis as `qasr.audio.vad` uses for files: an utterance opens at the first frame at or
above ``threshold`` (starting ``pad`` seconds earlier, so the first consonant is not clipped), and
closes once the probability has stayed below ``neg_threshold`` for ``min_silence`` seconds (ending
``pad`` after the last speech frame). An utterance that reaches ``max_utterance`` seconds is cut at
its quietest frame in the second half of the window, and the rest opens the next utterance at once:
so no engine call ever sees more than ``max_utterance`` seconds, however long someone talks.

Positions are sample indices into the whole stream (16 kHz), so the caller keeps the audio and the
endpointer only keeps probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from qasr.audio.decode import SAMPLE_RATE
from qasr.audio.silero import FRAME_SAMPLES, Detector, check_threshold, leave_threshold


@dataclass(frozen=True)
class EndpointOptions:
    """Knobs for live endpointing; seconds unless said otherwise."""

    threshold: float = 0.5
    neg_threshold: float | None = None  # default: threshold - 0.15 (Silero's own rule)
    min_silence: float = 0.2
    max_utterance: float = 20.0
    pad: float = 0.1
    min_speech: float = 0.1

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        if not 0.05 <= self.min_silence <= 10.0:
            raise ValueError(f"min silence must be between 50 ms and 10 s, got {self.min_silence * 1000:.0f} ms")
        if not 2.0 <= self.max_utterance <= 120.0:
            raise ValueError(f"max utterance must be between 2 and 120 s, got {self.max_utterance} s")
        if self.pad < 0 or self.min_speech < 0:
            raise ValueError("VAD durations must not be negative")

    @property
    def leave_threshold(self) -> float:
        return leave_threshold(self.threshold, self.neg_threshold)


@dataclass(frozen=True)
class Boundary:
    """An utterance opened (``end`` None) or closed, in samples of the stream; ``cut`` when closed by length."""

    start: int
    end: int | None = None
    cut: bool = False


class Endpointer:
    """Feed blocks of samples; get `Boundary` events as utterances open and close."""

    def __init__(self, detector: Detector, options: EndpointOptions | None = None) -> None:
        self.detector = detector
        self.options = options or EndpointOptions()
        self._carry = np.zeros(0, np.float32)
        self._frames = 0  # frames judged so far
        self._probs: list[float] = []  # of the open utterance's frames, from `_open_frame`
        self._open_frame: int | None = None
        self._start = 0  # first sample of the open utterance
        self._last_end = 0  # last sample of the previous one: padding never reaches back past it
        self._last_speech = -1
        self._speech_frames = 0

    @property
    def open(self) -> bool:
        return self._open_frame is not None

    @property
    def trailing_silence(self) -> float:
        """Seconds of non-speech since the open utterance's last speech frame (0 when closed or speaking):
        the utterance closes when this reaches ``min_silence``."""
        if self._open_frame is None:
            return 0.0
        return (self._frames - 1 - self._last_speech) * FRAME_SAMPLES / SAMPLE_RATE

    @property
    def samples_judged(self) -> int:
        return self._frames * FRAME_SAMPLES

    def _start_sample(self, frame: int) -> int:
        return max(self._last_end, frame * FRAME_SAMPLES - int(self.options.pad * SAMPLE_RATE))

    def feed(self, block: np.ndarray) -> Iterator[Boundary]:
        data = np.concatenate([self._carry, np.asarray(block, np.float32)])
        whole = len(data) - len(data) % FRAME_SAMPLES
        self._carry = data[whole:]
        if not whole:
            return
        for p in self.detector.probabilities(data[:whole].reshape(-1, FRAME_SAMPLES)):
            yield from self._step(float(p))

    def _step(self, p: float) -> Iterator[Boundary]:
        o, frame = self.options, self._frames
        self._frames += 1
        frame_s = FRAME_SAMPLES / SAMPLE_RATE
        if self._open_frame is None:
            if p >= o.threshold:
                self._open_frame, self._last_speech, self._speech_frames, self._probs = frame, frame, 1, [p]
                self._start = self._start_sample(frame)
                yield Boundary(self._start)
            return
        self._probs.append(p)
        if p >= o.leave_threshold:
            self._last_speech = frame
            self._speech_frames += p >= o.threshold
        start = self._start
        if (frame - self._last_speech) * frame_s >= o.min_silence:
            end = min(self._frames * FRAME_SAMPLES, (self._last_speech + 1) * FRAME_SAMPLES + int(o.pad * SAMPLE_RATE))
            speech = self._speech_frames * frame_s
            self._open_frame, self._last_end = None, end
            yield Boundary(start, end) if speech >= o.min_speech else Boundary(start, start)  # a blip: empty
            return
        if (self._frames * FRAME_SAMPLES - start) / SAMPLE_RATE >= o.max_utterance:
            yield from self._cut(start)

    def _cut(self, start: int) -> Iterator[Boundary]:
        """Close at the quietest frame of the window's second half; the rest opens the next utterance."""
        first = self._open_frame
        assert first is not None
        half = len(self._probs) // 2
        quiet = half + int(np.argmin(self._probs[half:]))
        cut_frame = first + quiet
        yield Boundary(start, (cut_frame + 1) * FRAME_SAMPLES, cut=True)
        rest = self._probs[quiet + 1 :]
        self._open_frame, self._probs = cut_frame + 1, rest
        self._speech_frames = sum(q >= self.options.threshold for q in rest)
        # The next utterance starts exactly where this one ended: no sample twice, none dropped.
        self._start = self._last_end = (cut_frame + 1) * FRAME_SAMPLES
        yield Boundary(self._start)

    def flush(self) -> Iterator[Boundary]:
        """End of input: close an open utterance at the last sample judged."""
        if self._open_frame is not None:
            end = self._frames * FRAME_SAMPLES + len(self._carry)
            self._open_frame, self._last_end = None, end
            yield Boundary(self._start, end)
