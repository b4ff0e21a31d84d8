"""Long audio cut at pauses as it goes: the VAD runs ahead of the engine by one chunk, not over the whole file.

`qasr.audio.vad.find_chunks` plans a whole file at once, which is right for a process that only
plans (the subtitles parent). A transcription wants its first text after one chunk's time, whatever
the file's length, so `PauseChunker` asks the detector for one block of frames at a time and hands
out each chunk as soon as nothing later in the audio can change it (`ChunkPlanner`): the engine
transcribes chunk k while the VAD has only reached about chunk k + 1.

Same rules as `find_chunks` (`qasr.audio.vad.speech_spans` then `plan_chunks`), applied from the
end of the previous chunk: a chunk ends in a pause the VAD found (``cut="pause"``); where a stretch of
speech has no pause within ``max_chunk``, it is cut at its quietest frame (``cut="quietest"``) and
the next chunk starts in speech right there; the last one may run to the end of the audio
(``cut="end"``). Silence longer than ``merge_gap`` between chunks is never sent to the engine.

``prefetch``: while the caller works on a chunk (the engine decoding it), a thread asks the detector
(a child process: Silero cannot share the engine's process) for the frames the next chunk needs,
so the two overlap. Whether that is faster depends on the cores (`prefetch_pays`): ggml's threads
spin-wait, so when the engine's threads take every core the VAD's child stalls them. Measured on
2 cores (0.6B q4_0, 120 s, medians of 3 adjacent pairs, docs/performance.md "Long audio"): with 1
engine thread the overlap saves 6% of the wall time (the VAD wait falls by 2.8 s, the engine +3%);
with 2 threads it costs 8% (the engine +23%).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from qasr.audio.decode import SAMPLE_RATE
from qasr.audio.silero import FRAME_SAMPLES, Detector
from qasr.audio.vad import FRAME_SECONDS, VadOptions, plan_chunks, speech_spans

#: Frames per request to the detector: 8 s of audio. One frame per message costs ~1.8 ms a frame
#: through the pipe, 32 or more ~0.5 ms (measured, 2 cores); smaller blocks overshoot less.
BLOCK_FRAMES = 250
#: How the chunk ended: in a pause the VAD found, at the quietest frame of unbroken speech, or at the end of the audio.
CUTS = ("pause", "quietest", "end")
#: The first chunk's bound in seconds (when the bound is larger): the first segment of any file then
#: costs one short call (an engine call's time grows with its audio), the rest go at the full bound.
FIRST_CHUNK = 10.0


def prefetch_pays(engine_threads: int | None) -> bool:
    """Whether to overlap the VAD with the engine: only when the engine leaves a core free. ``None``
    is the engine's own default, which upstream sets to every logical CPU up to 4, else half of them
    (chatllm.cpp main.cpp, ``get_num_physical_cores``)."""
    logical = os.cpu_count() or 1
    threads = engine_threads or (logical if logical <= 4 else logical // 2)
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return threads < available


@dataclass(frozen=True)
class Chunk:
    """One engine call's stretch of audio in seconds, and how it was cut (one of `CUTS`)."""

    start: float
    end: float
    cut: str

    @property
    def seconds(self) -> float:
        return self.end - self.start


class ChunkPlanner:
    """Frame probabilities in, in order (`feed`); settled chunks out (`next_chunk`). No detector, no I/O.

    A chunk is settled when the probabilities reach ``lookahead`` seconds past the furthest point
    that could still change it (its start plus ``max_chunk``): enough for a span there to close
    (``min_silence``), be long enough to count (``min_speech``), be padded (``pad``) and be merged or
    not (``merge_gap``). ``first_chunk`` bounds the first chunk alone (None: ``max_chunk``).
    """

    def __init__(self, duration: float, options: VadOptions | None = None, first_chunk: float | None = None) -> None:
        self.duration = duration
        self.options = options or VadOptions()
        o = self.options
        first = min(o.max_chunk, max(2.0, first_chunk)) if first_chunk else o.max_chunk
        self._first_options = replace(o, max_chunk=first)
        self._given = 0
        self.lookahead = o.pad + o.min_silence + o.merge_gap + o.min_speech + 2 * FRAME_SECONDS
        self.total_frames = math.ceil(duration * SAMPLE_RATE / FRAME_SAMPLES)
        self._probs = np.empty(0, np.float32)
        self._filled = 0
        self._first = 0  # the frame the next chunk's window starts at
        self._in_speech = False  # the previous chunk was cut inside speech

    @property
    def frames(self) -> int:
        """How many frames have been fed."""
        return self._filled

    @property
    def complete(self) -> bool:
        return self._filled >= self.total_frames

    def feed(self, probs: np.ndarray) -> None:
        if self._filled + len(probs) > len(self._probs):
            grown = np.empty(max(self._filled + len(probs), 2 * len(self._probs), 1024), np.float32)
            grown[: self._filled] = self._probs[: self._filled]
            self._probs = grown
        self._probs[self._filled : self._filled + len(probs)] = probs
        self._filled += len(probs)

    @property
    def _options(self) -> VadOptions:
        """The rules for the next chunk: the first one has its own bound."""
        return self.options if self._given else self._first_options

    def needed_frames(self) -> int:
        """Frames the next chunk needs at least (it may need more once they are seen)."""
        return min(self.total_frames, self._first + math.ceil((self._options.max_chunk + self.lookahead) / FRAME_SECONDS))

    def next_chunk(self) -> Chunk | None:
        """The next settled chunk; None when more frames are needed, or (once `complete`) when no speech is left."""
        o, t0 = self._options, self._first * FRAME_SECONDS
        window = self._probs[self._first : self._filled]
        final = self.complete
        seen = (self.duration - t0) if final else len(window) * FRAME_SECONDS
        spans = speech_spans(window, seen, o, in_speech=self._in_speech)
        chunks = plan_chunks(spans, seen, o, window)
        if not chunks:
            if not final:  # nothing can start before this point any more: stop scanning the silence
                keep = math.ceil((o.min_speech + o.min_silence + o.pad) / FRAME_SECONDS) + 2
                self._first, self._in_speech = max(self._first, self._filled - keep), False
            return None
        c = chunks[0]
        if not final and seen < c.start + o.max_chunk + self.lookahead:
            return None
        if final and c.end >= seen - 1e-9:
            cut = "end"
        elif any(s.start < c.end < s.end for s in spans):
            cut = "quietest"
        else:
            cut = "pause"
        self._first += math.ceil(c.end / FRAME_SECONDS - 1e-6)
        self._in_speech = cut == "quietest"
        self._given += 1
        return Chunk(round(t0 + c.start, 4), round(min(self.duration, t0 + c.end), 4), cut)


class PauseChunker:
    """Iterate for the chunks of ``samples`` (16 kHz mono), planned as the detector's frames come in.

    The detector is closed when the iteration ends (or is abandoned). ``prefetch``: see the module doc.
    ``first_chunk``: the first chunk's own bound (`ChunkPlanner`). ``vad_seconds`` is the time the
    iteration spent waiting for the detector (not overlapped with the caller).
    """

    def __init__(self, samples: np.ndarray, detector: Detector, options: VadOptions | None = None, *,
                 prefetch: bool = False, block_frames: int = BLOCK_FRAMES, first_chunk: float | None = None) -> None:  # fmt: skip
        self.samples = samples
        self.detector = detector
        self.planner = ChunkPlanner(len(samples) / SAMPLE_RATE, options, first_chunk)
        self.prefetch = prefetch
        self.block_frames = block_frames
        self.vad_seconds = 0.0
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def _frames(self, first: int, count: int) -> np.ndarray:
        a, b = first * FRAME_SAMPLES, (first + count) * FRAME_SAMPLES
        piece = np.asarray(self.samples[a:b], dtype=np.float32)
        if len(piece) < b - a:  # the tail frame, zero-padded as `speech_probabilities` does
            piece = np.concatenate([piece, np.zeros(b - a - len(piece), np.float32)])
        return piece.reshape(-1, FRAME_SAMPLES)

    def _advance(self, target: int) -> None:
        """Feed the planner up to frame ``target`` (at most the whole audio), one block per request."""
        p = self.planner
        target = min(target, p.total_frames)
        while p.frames < target:
            count = min(self.block_frames, p.total_frames - p.frames)
            p.feed(self.detector.probabilities(self._frames(p.frames, count)))

    def _ahead(self, target: int) -> None:
        try:
            self._advance(target)
        except BaseException as exc:  # noqa: BLE001 - handed to the iterating thread by `_join`
            self._error = exc

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __iter__(self) -> Iterator[Chunk]:
        import time

        p = self.planner
        try:
            while True:
                t0 = time.perf_counter()
                self._join()
                chunk = p.next_chunk()
                while chunk is None and not p.complete:
                    self._advance(max(p.needed_frames(), p.frames + 1))
                    chunk = p.next_chunk()
                self.vad_seconds += time.perf_counter() - t0
                if chunk is None:
                    return
                if self.prefetch and not p.complete:
                    self._thread = threading.Thread(target=self._ahead, args=(p.needed_frames(),), daemon=True)
                    self._thread.start()
                yield chunk
        finally:
            if self._thread is not None:  # abandoned with a request under way: let it end, drop its error
                self._thread.join()
            self.detector.close()
