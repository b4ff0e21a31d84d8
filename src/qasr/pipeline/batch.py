"""Many inputs through one loaded model: a stream of events that a CLI (or a server) only renders.

`transcribe_files` loads nothing and prints nothing. It yields, per input, the text as it is
generated (`TextDelta`, when asked for), each segment as its engine call ends (`SegmentDone`, when
asked for) and then `FileDone` with the result, or `FileFailed` with the error that input met; one bad file never stops the others. What to print, which exit code to
return and where to write are the caller's decisions.

`run_streams` is the same loop over any recogniser: give it, per input, a function that opens a
text stream (an iterable of text with a ``result`` once it ends, as `TranscriptionStream` is). A
`qasr.providers` provider's ``stream`` method is such a function, which is how ``--provider`` reaches
the batch without this layer knowing the providers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Union

from qasr.engine.model import Model
from qasr.errors import QasrError
from qasr.pipeline.results import Segment, TranscriptionResult
from qasr.pipeline.transcribe import TranscriptionStream


@dataclass(frozen=True)
class TextDelta:
    """Transcript text of ``source`` as the engine generated it (``stream_text=True`` only)."""

    source: str
    text: str


@dataclass(frozen=True)
class SegmentDone:
    """One finished segment of ``source`` (``stream_segments=True`` only): long audio's first text
    arrives after one chunk, not at the end of the file."""

    source: str
    segment: Segment


@dataclass(frozen=True)
class FileDone:
    source: str
    result: TranscriptionResult


@dataclass(frozen=True)
class FileFailed:
    """An input that could not be transcribed; ``error.exit_code`` says what kind of failure."""

    source: str
    error: QasrError


BatchEvent = Union[TextDelta, SegmentDone, FileDone, FileFailed]


def transcribe_files(
    model: Model,
    sources: Iterable[str | os.PathLike[str]],
    *,
    stream_text: bool = False,
    stream_segments: bool = False,
    context: str | None = None,
    itn: bool = False,
    opencc: str | None = None,
    aligner: Model | None = None,
    max_chunk: float | None = None,
) -> Iterator[BatchEvent]:
    """Transcribe each source in turn with ``model``; the model's load time counts for the first only."""

    def opener(i: int, source: str | os.PathLike[str]) -> Callable[[], TranscriptionStream]:
        return lambda: TranscriptionStream(
            model, source, load_seconds=model.load_seconds if i == 0 else 0.0, context=context,
            itn=itn, opencc=opencc, aligner=aligner, max_chunk=max_chunk,
        )  # fmt: skip

    return run_streams(((str(s), opener(i, s)) for i, s in enumerate(sources)), stream_text=stream_text,
                       stream_segments=stream_segments)  # fmt: skip


def run_streams(
    jobs: Iterable[tuple[str, Callable[[], Any]]], *, stream_text: bool = False, stream_segments: bool = False
) -> Iterator[BatchEvent]:
    """For each (name, open) pair: open the stream, pass its text on (``stream_text``) and its
    segments (``stream_segments``), then its result.

    ``open()`` returns an iterable of text pieces whose ``result`` attribute holds a
    `TranscriptionResult` once the iteration has ended; a stream with an ``events()`` method (text
    pieces and `Segment` values, as `TranscriptionStream` has) gives its segments as they finish. A
    `QasrError` from opening or iterating becomes that input's `FileFailed`; the next input still runs.
    """
    for name, open_stream in jobs:
        try:
            job = open_stream()
            events = getattr(job, "events", None)
            for piece in events() if stream_segments and events is not None else job:
                if isinstance(piece, Segment):
                    yield SegmentDone(name, piece)
                elif stream_text:
                    yield TextDelta(name, piece)
            assert job.result is not None
            job.result.source = name
            yield FileDone(name, job.result)
        except QasrError as exc:
            yield FileFailed(name, exc)
