"""What a transcription returns: the transcript, its timed segments and words, and the file's figures.

Modelled on faster-whisper's ``Segment`` / ``Word`` / ``TranscriptionInfo``: plain dataclasses.
The figures are those of *this file* (audio length, time to first token, decode rate); what the
process as a whole used (its peak resident set) is not a property of a transcript, and callers that
report it (the CLI's JSON) read it from `qasr.processes.peak_rss_bytes` themselves.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Word:
    """One word (or CJK character) with its time in seconds, from the ForcedAligner."""

    text: str
    start: float
    end: float


@dataclass
class Segment:
    """A stretch of the audio and what was said in it: one engine call (a VAD chunk for long audio).

    ``text`` is final (after ITN / OpenCC when asked for), ``asr_text`` the model's own words;
    ``words`` is None unless an aligner was given (and then empty if the aligner could not place them).
    ``cut`` says where the segment's engine call ended: ``"pause"`` (in a pause the VAD found),
    ``"quietest"`` (speech with no pause within the chunk bound, cut at its quietest moment: a word
    there may be split), ``"end"`` (the end of the audio); None where a recogniser does not say.
    """

    id: int
    start: float
    end: float
    text: str
    asr_text: str
    words: list[Word] | None = None
    cut: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Figures:
    """How long producing one file's transcript took (seconds), and how fast the engine decoded.

    ``load_seconds`` is the model's load time for the first file of a batch and 0 for the others;
    ``ttft_seconds`` includes the engine's audio decode and encoder; ``rtf`` is inference time over
    audio time. With several engine calls (long audio), times and tokens are summed over the calls,
    ``ttft_seconds`` is the first call's and ``tokens_per_second`` is over all of them.
    ``vad_seconds``: time spent waiting for the voice activity detector that cuts long audio, outside
    the engine calls (0 for one call); no speech at all is ``engine_calls`` 0.
    """

    audio_seconds: float
    load_seconds: float
    inference_seconds: float
    ttft_seconds: float | None
    tokens: int
    tokens_per_second: float | None
    rtf: float
    engine_calls: int = 1
    vad_seconds: float = 0.0


_FIGURE_NAMES = frozenset(f.name for f in fields(Figures))


@dataclass
class TranscriptionResult:
    """One input's transcript, its segments, and its figures.

    ``text`` is the final text (after ITN / OpenCC when asked for), ``asr_text`` the model's
    transcript before post-processing, ``raw_text`` what the engine printed (language header
    included; the calls joined by newlines for long audio). ``context`` is the hint text the engine
    was given; ``context_echo`` is True when a segment only repeated it and was dropped.
    """

    source: str
    language: str | None
    text: str
    asr_text: str
    raw_text: str
    segments: list[Segment]
    figures: Figures
    no_speech: bool = False
    loops_repaired: int = 0
    model: str = ""
    context: str | None = None
    context_echo: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """One flat JSON-ready record: the transcript's fields with the figures beside them."""
        data = asdict(self)
        data.update(data.pop("figures"))
        return data

    def __getattr__(self, name: str) -> Any:
        """Figures under their 0.1 names (``result.rtf``): deprecated, read ``result.figures.rtf``."""
        if name in _FIGURE_NAMES:
            warnings.warn(f"TranscriptionResult.{name} is now TranscriptionResult.figures.{name} "
                          "(the old name goes in 0.3)", DeprecationWarning, stacklevel=2)  # fmt: skip
            return getattr(self.figures, name)
        if name == "peak_rss_bytes":
            from qasr.processes import peak_rss_bytes

            warnings.warn("TranscriptionResult.peak_rss_bytes was the process's peak, not the file's: read "
                          "qasr.processes.peak_rss_bytes() (the old name goes in 0.3)", DeprecationWarning, stacklevel=2)  # fmt: skip
            return peak_rss_bytes()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
