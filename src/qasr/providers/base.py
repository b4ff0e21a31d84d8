"""What every provider is: one small interface, loaded from an `EngineSpec`, called with `CallOptions`.

A provider is a recogniser behind ``transcribe(audio, options) -> TranscriptionResult``, so a CLI,
a server, a batch actor or the benchmark can put Qwen3-ASR beside the recogniser a team already
runs and swap one for the other without knowing which it holds. ``stream(audio, options)`` is the
same transcription as an iterable of text pieces whose ``result`` is filled when it ends.

A provider is built from an `EngineSpec` (what to load) and keeps ``defaults`` (the `CallOptions`
a call gets when it passes none): the language, context, ITN and OpenCC of one call never need a
reload. What a provider can do beyond that is said by flags, never by ``isinstance`` checks:

* ``streams``: the pieces are tokens as decoded (a time to first token means something); False
  when they are whole segments;
* ``word_times``: it can give each segment word times (an aligner in its spec);
* ``live_prefix``: it can force the start of an answer and return the engine's raw chunks
  (``transcribe_raw(audio, context=, prefix=, max_tokens=, cancel=)`` and ``language``), which the
  live streaming pipeline needs for stable text (Qwen3-ASR's own recipe);
* ``cancels_mid_call``: a call's ``cancel`` (`qasr.cancel.Cancel`, the keyword of ``transcribe`` and
  ``stream``) stops its engine at once; False when the engine cannot be interrupted, and the
  cancel is heard between its segments only. Either way a cancelled call raises
  `qasr.errors.Aborted`, which is how a server stops the work of a client that went away.

A call's ``options.words`` asks for word times or skips them (`wants_words`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from qasr.cancel import Cancel
from qasr.errors import UsageError
from qasr.pipeline.results import TranscriptionResult
from qasr.spec import CallOptions, EngineSpec


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
    word_times: bool
    live_prefix: bool
    cancels_mid_call: bool
    load_seconds: float
    spec: EngineSpec
    defaults: CallOptions

    def transcribe(self, audio: object, options: CallOptions | None = None, *, cancel: Cancel | None = None) -> TranscriptionResult: ...

    def stream(self, audio: object, options: CallOptions | None = None, *, cancel: Cancel | None = None) -> TextStream: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ProviderOptions:
    """Deprecated (0.2; goes in 0.3): the load and call options in one value. Use `EngineSpec` for
    what to load and `CallOptions` for each call; `split` gives both."""

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
    max_tokens: int | None = None
    compute_type: str = "int8"
    beam_size: int = 5

    def __post_init__(self) -> None:
        warnings.warn("ProviderOptions is now qasr.EngineSpec (what to load) plus qasr.CallOptions (each call); "
                      "the old name goes in 0.3", DeprecationWarning, stacklevel=3)  # fmt: skip

    def split(self, provider: str | None = None) -> tuple[EngineSpec, CallOptions]:
        """(the engine spec, the per-call defaults) these options meant."""
        from qasr.spec import DEFAULT_PROVIDER

        spec = EngineSpec(
            provider=provider or DEFAULT_PROVIDER, model=self.model, aligner=self.aligner, engine=self.engine,
            threads=self.threads, max_length=self.max_length, max_tokens=self.max_tokens, language=self.language,
            whisper_model=self.whisper_model, compute_type=self.compute_type, beam_size=self.beam_size,
        )  # fmt: skip
        return spec, CallOptions(context=self.context, itn=self.itn, opencc=self.opencc, max_chunk=self.max_chunk)


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


def wants_words(provider: Provider, options: CallOptions) -> bool:
    """Whether this call aligns: ``options.words`` None follows ``word_times``, False skips the
    aligner; True from a provider without one is a `UsageError` (a silent answer without words
    would look like speech without words)."""
    if options.words and not provider.word_times:
        raise UsageError(f"word timestamps need a provider with an aligner; {provider.name} has none here")
    return provider.word_times and options.words is not False
