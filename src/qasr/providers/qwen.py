"""``qwen3-chatllm``: Qwen3-ASR through our libchatllm binding, as a provider.

A thin adapter: loading is `qasr.engine.model.Model` (and `load_aligner` for word times), a
transcription is `qasr.pipeline.transcribe.TranscriptionStream`, so everything the pipeline does
(VAD chunks for long audio, context cleaning and echo removal, ITN then OpenCC, word times) is what
this provider does. Live streaming re-decodes with forced answer prefixes, which only this engine
offers: ``live_prefix`` is True and `transcribe_raw` gives those raw chunks.

`close()` does not destroy the native object: upstream chatllm.cpp 4a4310e aborts the process in
``chatllm_destroy`` for Qwen3-ASR (README, "Known engine issues"). It drops our references; the
memory goes back when the process ends, which is why the benchmark and servers load providers in
child processes. ``destroy=True`` asks for the honest destroy (a fixed engine, or the test double).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qasr.cancel import Cancel
from qasr.engine.model import Model
from qasr.engine.modelfile import ModelKind, warn_if_synthetic
from qasr.errors import ModelFileError, QasrError
from qasr.pipeline.results import TranscriptionResult
from qasr.pipeline.transcribe import TranscriptionStream
from qasr.providers.base import LoadTimeOnce, wants_words
from qasr.spec import CallOptions, EngineSpec


class QwenChatllmProvider:
    """Qwen3-ASR on chatllm.cpp, loaded from ``spec`` (model, aligner, engine, threads, max_length,
    max_tokens, language); says so on stderr when the model is synthetic
    (`qasr.engine.modelfile.warn_if_synthetic`). Calls take language, context, ITN, OpenCC and
    max_chunk from their `CallOptions`; a call's language is forced with the engine's answer prefix
    when the model was loaded without one."""

    name = "qwen3-chatllm"
    streams = True
    live_prefix = True
    cancels_mid_call = True  # a cancel aborts the engine's turn at once (`Model.abort`)

    def __init__(self, spec: EngineSpec, defaults: CallOptions | None = None, *, destroy: bool = False) -> None:
        from qasr.engine.registry import model_file

        if not spec.model:
            raise ModelFileError("qwen3-chatllm needs a Qwen3-ASR model: --model FILE or a registry name (or QASR_MODEL)")
        self.spec, self.defaults, self._destroy = spec, defaults or CallOptions(), destroy
        self.model: Model | None = Model.from_spec(spec)
        warn_if_synthetic(self.model.file, spec.max_tokens)
        # The aligner is a file checked here and loaded in its own process per transcription
        # (`qasr.pipeline.align_child`): upstream silences the first of two models in one process.
        self.aligner: Path | None = model_file(spec.aligner, ModelKind.ALIGNER).path if spec.aligner else None
        self.word_times = self.aligner is not None
        self._load = LoadTimeOnce(self.model.load_seconds)  # the ASR model's, as `transcribe_files` reports it

    @property
    def load_seconds(self) -> float:
        return self._load.load_seconds

    @property
    def language(self) -> str | None:
        """The language the model was loaded with (None: it detects)."""
        return self._loaded().language

    def _loaded(self) -> Model:
        if self.model is None:
            raise QasrError("the qwen3-chatllm provider was closed")
        return self.model

    def stream(self, audio: object, options: CallOptions | None = None, *, cancel: Cancel | None = None) -> TranscriptionStream:
        """Text as the engine generates it; ``.result`` when the iteration ends (`qasr.errors.Aborted`
        instead once ``cancel`` is set)."""
        o = options or self.defaults
        aligner = self.aligner if wants_words(self, o) else None
        return TranscriptionStream(
            self._loaded(), audio, load_seconds=self._load.take(), context=o.context, itn=o.itn, opencc=o.opencc,
            language=o.language, aligner=aligner, max_chunk=o.max_chunk, max_tokens=self.spec.max_tokens, cancel=cancel,
        )  # fmt: skip

    def transcribe(self, audio: object, options: CallOptions | None = None, *, cancel: Cancel | None = None) -> TranscriptionResult:
        return self.stream(audio, options, cancel=cancel).run()

    def transcribe_raw(self, audio: object, *, context: str | None = None, prefix: str | None = None,
                       max_tokens: int | None = None, cancel: Cancel | None = None) -> Iterator[str]:  # fmt: skip
        """The engine's raw chunks for one call with a forced answer prefix (``live_prefix``)."""
        return self._loaded().transcribe_raw(audio, context=context, prefix=prefix, max_tokens=max_tokens, cancel=cancel)

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
