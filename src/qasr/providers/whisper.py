"""``faster-whisper``: the recogniser most teams already run, as a provider (``pip install 'qasr[whisper]'``).

Audio goes through qasr's own decoder first (`qasr.audio.load_audio`: decode, downmix, 16 kHz,
validate), so both providers hear the same samples and refuse the same bad files with the same
message. The text then goes through the same post-processing (`qasr.text.post.PostProcess`: ITN,
then OpenCC), so ``--itn --zh-tw`` means the same whichever provider answered.

The model is a CTranslate2 Whisper directory (``model.bin``, ``tokenizer.json``, ...) or a name
(``small``, ``large-v3``...) that faster-whisper downloads from the Hugging Face Hub. A directory
without ``tokenizer.json`` is refused here: faster-whisper would otherwise fetch openai's tokenizer
from the Hub, retrying for about 25 s where there is no network. Every failure to load is one
`QasrError` whose class says what failed (see `qasr.providers.chain.failure_reason`).

faster-whisper yields whole segments (up to a 30 s window each), not tokens: ``streams`` is False
and ``ttft_seconds`` is None (a time to first token would be a time to first segment here).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qasr.cancel import Cancel, guarded
from qasr.errors import EngineError, EngineNotFound, ModelFileError, QasrError, UsageError
from qasr.pipeline.results import Figures, Segment, TranscriptionResult
from qasr.providers.base import LoadTimeOnce, wants_words
from qasr.spec import CallOptions, EngineSpec
from qasr.text.languages import CODE_TO_NAME, NAME_TO_CODE, language_code

COMPUTE_TYPES = ("default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32")
REQUIRED_FILES = ("model.bin", "tokenizer.json")


def _looks_like_path(text: str) -> bool:
    return os.sep in text or text.startswith((".", "~")) or Path(text).exists()


def model_source(spec: str | None) -> str:
    """The model argument for faster-whisper: a checked directory, or a name to download."""
    if not spec:
        raise ModelFileError("faster-whisper needs a model: --whisper-model DIR (a CTranslate2 Whisper model) or a name such as small")
    if not _looks_like_path(spec):
        return spec
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelFileError(f"faster-whisper model directory not found: {path}")
    if not path.is_dir():
        raise ModelFileError(f"a faster-whisper model is a directory (model.bin, tokenizer.json, ...), not a file: {path}")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelFileError(f"{path} is not a CTranslate2 Whisper model: no {' or '.join(missing)}")
    return str(path)


def _short(exc: BaseException, limit: int) -> str:
    """An exception as one line of at most about ``limit`` characters, cut at a word."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def _whisper_model_class():  # type: ignore[no-untyped-def]
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise EngineNotFound(f"faster-whisper is not installed ({exc.name or exc}): pip install 'qasr[whisper]'") from None
    return WhisperModel


def _load(WhisperModel, source: str, options: EngineSpec):  # type: ignore[no-untyped-def]  # noqa: N803
    """``WhisperModel`` on the CPU; each way this fails becomes one line of the right error class."""
    try:
        return WhisperModel(source, device="cpu", compute_type=options.compute_type, cpu_threads=options.threads or 0)
    except (OSError, RuntimeError, ValueError) as exc:
        if not _looks_like_path(source):  # a name: faster-whisper went to the Hub for it
            raise ModelFileError(
                f"faster-whisper model {source!r} is not a directory and could not be fetched from the Hugging Face Hub "
                f"({_short(exc, 120)}); give a CTranslate2 model directory"
            ) from None
        raise ModelFileError(f"faster-whisper could not read the model in {source} (corrupt or not a Whisper model): {_short(exc, 240)}") from None
    except Exception as exc:  # the Hub client's own errors are not OSErrors in every version
        raise EngineError(f"faster-whisper failed to load {source}: {_short(exc, 240)}") from None


class FasterWhisperProvider:
    """faster-whisper on the CPU, loaded from ``spec`` (``whisper_model``, ``threads``,
    ``compute_type``, ``beam_size``, ``language`` as the default); calls take ``language``,
    ``context`` (as the initial prompt), ``itn`` and ``opencc`` from their `CallOptions`."""

    name = "faster-whisper"
    streams = False
    word_times = False
    live_prefix = False
    cancels_mid_call = False  # CTranslate2 cannot be interrupted: a cancel is heard between segments

    def __init__(self, spec: EngineSpec, defaults: CallOptions | None = None) -> None:
        if spec.compute_type not in COMPUTE_TYPES:
            raise UsageError(f"unknown faster-whisper compute type {spec.compute_type!r}; choose one of: {', '.join(COMPUTE_TYPES)}")
        self.spec, self.defaults = spec, defaults or CallOptions()
        whisper_model = _whisper_model_class()  # a missing package is said first: no model would help
        self.source = model_source(spec.whisper_model)
        t0 = time.perf_counter()
        self.model: Any = _load(whisper_model, self.source, spec)
        self._load = LoadTimeOnce(time.perf_counter() - t0)
        self.language = self.language_code(spec.language)

    @property
    def load_seconds(self) -> float:
        return self._load.load_seconds

    def language_code(self, language: str | None) -> str | None:
        """A Qwen3-ASR name (``Chinese``) or a Whisper code (``zh``) as the code; None detects."""
        if not language or language.lower() == "auto":
            return None
        code = language_code(language) or language.lower()
        known = self.model.supported_languages
        if code not in known:
            raise UsageError(f"language {language!r} is not supported by this faster-whisper model; give a name "
                             f"({', '.join(sorted(n.capitalize() for n in NAME_TO_CODE))}) or a code ({', '.join(known)})")  # fmt: skip
        return code

    def stream(self, audio: object, options: CallOptions | None = None, *, cancel: Cancel | None = None) -> WhisperStream:
        if self.model is None:
            raise QasrError("the faster-whisper provider was closed")
        wants_words(self, options or self.defaults)  # word times asked of a provider without any: refused
        return WhisperStream(self, audio, self._load.take(), options or self.defaults, cancel)

    def transcribe(self, audio: object, options: CallOptions | None = None, *, cancel: Cancel | None = None) -> TranscriptionResult:
        return self.stream(audio, options, cancel=cancel).run()

    def describe(self) -> dict[str, Any]:
        import faster_whisper

        return {"provider": self.name, "model": self.source, "faster_whisper": faster_whisper.__version__,
                "compute_type": self.spec.compute_type, "beam_size": self.spec.beam_size}  # fmt: skip

    def close(self) -> None:
        self.model = None  # CTranslate2 frees the weights with its last reference


class WhisperStream:
    """One file through faster-whisper: iterate for each segment's text, then read ``result``."""

    def __init__(self, provider: FasterWhisperProvider, audio: object, load_seconds: float, options: CallOptions,
                 cancel: Cancel | None = None) -> None:  # fmt: skip
        from qasr.audio import as_audio
        from qasr.text.context import clean_context

        self.provider, self.load_seconds, self.options, self.cancel = provider, load_seconds, options, cancel
        self.language = provider.language_code(options.language) if options.language else provider.language
        self.audio = as_audio(audio)  # any length: faster-whisper windows long audio itself
        self.context = clean_context(options.context)
        self.result: TranscriptionResult | None = None

    def __iter__(self) -> Iterator[str]:
        p = self.provider
        segments: list[Any] = []
        t0 = time.perf_counter()
        try:
            found, info = p.model.transcribe(self.audio.samples, language=self.language, beam_size=p.spec.beam_size,
                                             initial_prompt=self.context or None)  # fmt: skip
            for segment in guarded(found, self.cancel):  # lazy: decoding happens as it is consumed
                segments.append(segment)
                yield segment.text
        except QasrError:
            raise
        except Exception as exc:  # CTranslate2 / faster-whisper errors are RuntimeErrors, ValueErrors...
            raise EngineError(f"faster-whisper failed on {self.audio.source}: {_short(exc, 240)}") from None
        self.result = self._build(segments, info.language, time.perf_counter() - t0)

    def _build(self, found: list[Any], code: str | None, seconds: float) -> TranscriptionResult:
        from qasr.text.post import PostProcess

        steps = PostProcess(self.options.itn, self.options.opencc)

        def post(text: str) -> str:
            return steps.apply(text, code)

        segments = [Segment(i, round(s.start, 3), round(s.end, 3), post(s.text.strip()), s.text.strip()) for i, s in enumerate(found)]
        raw = "".join(s.text for s in found)
        asr_text = raw.strip()
        figures = Figures(
            audio_seconds=round(self.audio.seconds, 3), load_seconds=round(self.load_seconds, 4),
            inference_seconds=round(seconds, 4), ttft_seconds=None, tokens=sum(len(s.tokens) for s in found),
            tokens_per_second=None, rtf=round(seconds / self.audio.seconds, 4),
        )  # fmt: skip
        return TranscriptionResult(
            source=self.audio.source, language=CODE_TO_NAME.get(code or "", code), text=post(asr_text),
            asr_text=asr_text, raw_text=raw, segments=segments, figures=figures, no_speech=not asr_text,
            model=Path(self.provider.source).name, context=self.context,
        )  # fmt: skip

    def run(self) -> TranscriptionResult:
        for _ in self:
            pass
        assert self.result is not None
        return self.result
