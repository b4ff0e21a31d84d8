"""``qwen3-chatllm``: Qwen3-ASR through our libchatllm binding, as a provider.

A thin adapter: loading is `qasr.engine.model.Model` (and `load_aligner` for word times), a
transcription is `qasr.pipeline.transcribe.TranscriptionStream`, so everything the pipeline does
(VAD chunks for long audio, context cleaning and echo removal, ITN then OpenCC, word times) is what
this provider does. ``model`` is public because `qasr stream` drives the engine itself (it re-decodes
with forced prefixes, which only the engine offers).

`close()` does not destroy the native object: upstream chatllm.cpp 4a4310e aborts the process in
``chatllm_destroy`` for Qwen3-ASR (README, "Known engine issues"). It drops our references; the
memory goes back when the process ends, which is why the benchmark and servers load providers in
child processes. ``destroy=True`` asks for the honest destroy (a fixed engine, or the test double).
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

from qasr.engine.model import Model
from qasr.engine.modelfile import warn_if_synthetic
from qasr.errors import ModelFileError, QasrError
from qasr.pipeline.results import TranscriptionResult
from qasr.pipeline.transcribe import TranscriptionStream
from qasr.providers.base import LoadTimeOnce, ProviderOptions


class QwenChatllmProvider:
    """Qwen3-ASR on chatllm.cpp; reads ``model``, ``language``, ``threads``, ``max_length``,
    ``engine``, ``aligner``, ``context``, ``itn``, ``opencc``, ``max_chunk`` and ``max_tokens`` from the options;
    says so on stderr when the model is synthetic (`qasr.engine.modelfile.warn_if_synthetic`)."""

    name = "qwen3-chatllm"
    streams = True

    def __init__(self, options: ProviderOptions, *, destroy: bool = False) -> None:
        if not options.model:
            raise ModelFileError("qwen3-chatllm needs a Qwen3-ASR model: --model FILE or a registry name (or QASR_MODEL)")
        from qasr.engine.registry import resolve_model

        self.options, self._destroy = options, destroy
        load = dict(threads=options.threads, max_length=options.max_length, engine=options.engine)
        self.model: Model | None = Model(resolve_model(options.model), language=options.language, **load)  # type: ignore[arg-type]
        warn_if_synthetic(self.model.file, options.max_tokens)
        # The aligner is a file checked here and loaded in its own process per transcription
        # (`qasr.pipeline.align_child`): upstream silences the first of two models in one process.
        self.aligner: Path | None = None
        if options.aligner:
            from qasr.engine.modelfile import ModelKind, inspect_model_file, require_kind

            self.aligner = require_kind(inspect_model_file(resolve_model(options.aligner)), ModelKind.ALIGNER).path
        self._load = LoadTimeOnce(self.model.load_seconds)  # the ASR model's, as `transcribe_files` reports it

    @property
    def load_seconds(self) -> float:
        return self._load.load_seconds

    def _loaded(self) -> Model:
        if self.model is None:
            raise QasrError("the qwen3-chatllm provider was closed")
        return self.model

    def stream(self, audio: object) -> TranscriptionStream:
        """Text as the engine generates it; ``.result`` when the iteration ends."""
        o = self.options
        return TranscriptionStream(
            self._loaded(), audio, load_seconds=self._load.take(), context=o.context, itn=o.itn, opencc=o.opencc,
            aligner=self.aligner, max_chunk=o.max_chunk, max_tokens=o.max_tokens,
        )  # fmt: skip

    def transcribe(self, audio: object) -> TranscriptionResult:
        return self.stream(audio).run()

    def describe(self) -> dict[str, Any]:
        """The model file and the engine library, saying so when the engine is the test double."""
        model = self._loaded()
        engine = model.engine
        return {
            "provider": self.name,
            "model": str(model.file.path),
            "engine": str(engine.path),
            "is_test_double": engine.is_test_double,
            "aligner": str(self.aligner) if self.aligner is not None else None,
        }

    def close(self) -> None:
        """Drop the models (destroying them only with ``destroy=True``: upstream aborts there)."""
        models = [self.model] if self.model is not None else []
        self.model = self.aligner = None
        if self._destroy:
            for m in models:
                m.close()
