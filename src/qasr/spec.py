"""The two values that say what to run: `EngineSpec` (what to load) and `CallOptions` (per call).

Why two: loading a model takes seconds and hundreds of megabytes, while the language, the hint
text, ITN and OpenCC are properties of one request. A server worker, a batch actor or a script
loads an `EngineSpec` once and takes a different `CallOptions` with every input, without reloading.

Both are frozen and round-trip through JSON (`to_json` / `from_json`), which is how they reach a
child process, a server worker or a cluster actor: every place that starts an engine receives an
`EngineSpec` and nothing else (httpx's "one options object per concern, passed down unchanged").
Unknown keys are refused rather than dropped, so a parent and a child of different versions fail
loudly instead of silently ignoring an option.

This module imports nothing from qasr but its errors, so every layer can use it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, TypeVar

from qasr.errors import UsageError

#: The provider that runs Qwen3-ASR through our libchatllm binding (the default).
DEFAULT_PROVIDER = "qwen3-chatllm"

_T = TypeVar("_T", bound="_JsonValue")


class _JsonValue:
    """`to_dict` / `from_dict` / `to_json` / `from_json` for a frozen dataclass of plain values."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"{cls.__name__} has no field {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**data)

    @classmethod
    def from_json(cls: type[_T], text: str) -> _T:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{cls.__name__}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UsageError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    def replace(self: _T, **changes: Any) -> _T:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class EngineSpec(_JsonValue):
    """What to load: the provider and everything its loading depends on. None means its default.

    Every provider: ``provider`` (``qwen3-chatllm``, ``faster-whisper``, ...), ``threads``.
    qwen3-chatllm: ``model`` (a file or a registry name), ``aligner`` (a ForcedAligner file or
    name, for word times), ``engine`` (libchatllm.so or its directory), ``max_length`` (context
    length), ``max_tokens`` (a cap on each engine call's tokens: synthetic models never stop),
    ``language`` (the language forced at load, ``--set language``; a call may still ask for another).
    faster-whisper: ``whisper_model`` (a CTranslate2 directory or a model name), ``compute_type``,
    ``beam_size``; ``language`` is its default language too.
    """

    provider: str = DEFAULT_PROVIDER
    model: str | None = None
    aligner: str | None = None
    engine: str | None = None
    threads: int | None = None
    max_length: int | None = None
    max_tokens: int | None = None
    language: str | None = None
    whisper_model: str | None = None
    compute_type: str = "int8"
    beam_size: int = 5

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be at least 1, got {self.threads}")
        if self.max_length is not None and self.max_length < 256:
            raise UsageError(f"max_length must be at least 256, got {self.max_length}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if self.beam_size < 1:
            raise UsageError(f"beam size must be at least 1, got {self.beam_size}")
        if self.language is not None and self.language.strip().lower() in ("", "auto"):
            object.__setattr__(self, "language", None)


@dataclass(frozen=True)
class CallOptions(_JsonValue):
    """What one transcription asks for, beside the audio. None means the loaded default.

    ``language``: a name (``English``) or a code (``en``); None: the spec's language, else detect.
    ``context``: hint text (names, terms) for Qwen3-ASR's system turn / Whisper's initial prompt.
    ``itn`` and ``opencc``: the post-processing (`qasr.text.post.PostProcess`): inverse text
    normalisation, then an OpenCC conversion of Chinese text (``s2twp`` is what ``--zh-tw`` means).
    ``max_chunk``: the longest engine call in seconds; longer audio is cut at pauses (the VAD runs one
    chunk ahead of the engine, each chunk is one segment). None: the default, 30 s
    (`qasr.audio.vad.DEFAULT_MAX_CHUNK`), which bounds an engine call's memory and time per audio
    second; ``0``: one call per input up to the engine's limit (`qasr.audio.MAX_SECONDS_PER_CALL`),
    chunks beyond it. ``words``: word times for this call; None gives them when the provider has an
    aligner (``word_times``), False skips the alignment (a server's request that did not ask for
    them), True asks for them (`qasr.errors.UsageError` from a provider without an aligner).
    """

    language: str | None = None
    context: str | None = None
    itn: bool = False
    opencc: str | None = None
    max_chunk: float | None = None
    words: bool | None = None

    def __post_init__(self) -> None:
        if self.opencc is not None:
            from qasr.text.convert import check_target

            try:
                target = check_target(self.opencc)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            object.__setattr__(self, "opencc", None if target == "none" else target)
        if self.max_chunk is not None and self.max_chunk < 0:
            raise UsageError(f"max_chunk must not be negative, got {self.max_chunk}")
        if self.language is not None and self.language.strip().lower() in ("", "auto"):
            object.__setattr__(self, "language", None)
