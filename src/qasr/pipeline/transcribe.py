"""Transcription: audio in, streamed text chunks and a `TranscriptionResult` out.

`TranscriptionStream` is the lazy core (faster-whisper's style: nothing runs until you iterate); it
yields the transcript text as the engine generates it and builds the result, with timing, when the
stream ends. `transcribe()` is the one-call convenience on top of it.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from qasr.audio import Audio, as_audio
from qasr.engine.model import Model
from qasr.text.parse import StreamingTextView, parse_asr_output
from qasr.text.post import postprocess


@dataclass
class TranscriptionResult:
    """One file's transcript and how long each part of producing it took."""

    source: str
    language: str | None
    text: str  # the final text: the transcript after ITN / OpenCC when asked for
    asr_text: str  # the model's transcript before post-processing
    raw_text: str  # the engine's output as printed (language header included)
    audio_seconds: float
    load_seconds: float
    inference_seconds: float
    ttft_seconds: float | None
    tokens: int
    tokens_per_second: float | None
    rtf: float
    peak_rss_bytes: int
    no_speech: bool = False
    loops_repaired: int = 0
    model: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def peak_rss_bytes(pid: int | str = "self") -> int:
    """A process's own peak resident set (VmHWM; this process by default); 0 if it cannot be read.

    Not ``ru_maxrss``: Linux folds the parent's RSS at fork into a child's ``ru_maxrss`` across
    exec (measured: a child of a 410 MB parent reported 410 MB while its VmHWM was 8.7 MB).
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if pid == "self":
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    return 0


class TranscriptionStream:
    """Iterate for transcript text as it is generated; `result` is filled when iteration ends.

    ``raw_chunks`` keeps what the engine printed (language header included), one entry per token
    callback, which is what ``tokens`` counts.
    """

    def __init__(
        self,
        model: Model,
        audio: object,
        *,
        load_seconds: float | None = None,
        fresh: bool = True,
        itn: bool = False,
        opencc: str | None = None,
    ) -> None:
        self.model = model
        self.fresh = fresh
        self.itn = itn
        self.opencc = opencc
        self.audio: Audio = as_audio(audio)
        self.raw_chunks: list[str] = []
        self.result: TranscriptionResult | None = None
        self._load_seconds = model.load_seconds if load_seconds is None else load_seconds

    def __iter__(self) -> Iterator[str]:
        view = StreamingTextView()
        t0 = time.perf_counter()
        first: float | None = None
        for chunk in self.model.transcribe(self.audio, fresh=self.fresh):
            if first is None:
                first = time.perf_counter()
            self.raw_chunks.append(chunk)
            shown = view.feed(chunk)
            if shown:
                yield shown
        tail = view.finish()
        if tail:
            yield tail
        end = time.perf_counter()
        self.result = self._build(t0, first, end)

    def _build(self, t0: float, first: float | None, end: float) -> TranscriptionResult:
        raw = "".join(self.raw_chunks)
        parsed = parse_asr_output(raw, self.model.language)
        tokens = len(self.raw_chunks)
        decode_span = end - first if first is not None else 0.0
        final = postprocess(parsed.text, itn=self.itn, opencc=self.opencc, language=parsed.language)
        return TranscriptionResult(
            source=self.audio.source,
            language=parsed.language,
            text=final,
            asr_text=parsed.text,
            raw_text=raw,
            audio_seconds=round(self.audio.seconds, 3),
            load_seconds=round(self._load_seconds, 4),
            inference_seconds=round(end - t0, 4),
            ttft_seconds=round(first - t0, 4) if first is not None else None,
            tokens=tokens,
            tokens_per_second=round((tokens - 1) / decode_span, 2) if tokens > 1 and decode_span > 0 else None,
            rtf=round((end - t0) / self.audio.seconds, 4),
            peak_rss_bytes=peak_rss_bytes(),
            no_speech=parsed.no_speech,
            loops_repaired=parsed.loops_repaired,
            model=self.model.file.name,
        )

    def run(self) -> TranscriptionResult:
        """Consume the stream and return the result."""
        for _ in self:
            pass
        assert self.result is not None
        return self.result


def transcribe(audio: object, model: Model, *, itn: bool = False, opencc: str | None = None) -> TranscriptionResult:
    """Transcribe one input with a loaded model (see `Model` for loading); ITN and OpenCC optional."""
    return TranscriptionStream(model, audio, itn=itn, opencc=opencc).run()
