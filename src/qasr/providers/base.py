"""What every provider is: one small interface, and the options a provider may take from a command.

A provider is a recogniser behind `transcribe(audio) -> TranscriptionResult`, so a CLI, a server or
the benchmark can put Qwen3-ASR beside the recogniser a team already runs and swap one for the
other without knowing which it holds. Two more members serve callers that print as they go:
`stream(audio)` (an iterable of text pieces whose ``result`` is filled when it ends; what the batch
runner in `qasr.pipeline.batch` consumes) and `streams` (True when the pieces are tokens as decoded,
so a time to first token means something; False when they are whole segments).

`ProviderOptions` is the union of what the providers take; each reads the fields it understands
and documents which. Keeping one options object (instead of one per provider) is what lets
``--provider auto`` hand the same command line to each provider in turn.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from qasr.pipeline.results import TranscriptionResult


class TextStream(Protocol):
    """Transcript text piece by piece; ``result`` is None until the iteration has ended."""

    result: TranscriptionResult | None

    def __iter__(self) -> Iterator[str]: ...


@runtime_checkable
class Provider(Protocol):
    """A loaded recogniser. ``name`` is its registry name (``qwen3-chatllm``, ``faster-whisper``).

    ``load_seconds`` is what loading the model took; the first result a provider returns carries it
    in ``figures.load_seconds`` and later ones carry 0, as in a batch. ``close()`` releases the
    provider; it is safe to call twice.
    """

    name: str
    streams: bool
    load_seconds: float

    def transcribe(self, audio: object) -> TranscriptionResult: ...

    def stream(self, audio: object) -> TextStream: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ProviderOptions:
    """Everything a command line can ask of a provider. Unset (None) means the provider's default.

    Both providers: ``language`` (a name such as ``English`` / ``Chinese``, or for faster-whisper
    also a code such as ``en``), ``context`` (hint text: Qwen3-ASR's system turn, Whisper's initial
    prompt), ``itn`` and ``opencc`` (the same post-processing, `qasr.text.post`), ``threads``.
    qwen3-chatllm only: ``model`` (file or registry name), ``aligner``, ``max_chunk``,
    ``max_length``, ``engine``, ``max_tokens``. faster-whisper only: ``whisper_model`` (a CTranslate2 model
    directory, or a model name that faster-whisper downloads), ``compute_type``, ``beam_size``.
    """

    model: str | None = None
    whisper_model: str | None = None
    language: str | None = None
    context: str | None = None
    itn: bool = False
    opencc: str | None = None
    threads: int | None = None
    aligner: str | None = None
    max_chunk: float | None = None
    max_length: int | None = None
    engine: str | None = None
    #: qwen3-chatllm: a cap on each engine call's tokens (None: until the model stops; synthetic models never do).
    max_tokens: int | None = None
    compute_type: str = "int8"
    beam_size: int = 5


class LoadTimeOnce:
    """Hands out the model's load time to the first transcription only (a batch's convention)."""

    def __init__(self, seconds: float) -> None:
        self.load_seconds = seconds
        self._given = False

    def take(self) -> float:
        if self._given:
            return 0.0
        self._given = True
        return self.load_seconds
