"""qasr: Qwen3-ASR and the Qwen3-ForcedAligner on plain CPUs through chatllm.cpp, and a memory-leak lab.

Public API (imported lazily, so ``import qasr`` stays cheap and ``qasr --help`` starts fast)::

    from qasr import Model, transcribe
    model = Model("models/qwen3-asr-0.6b-q4_0.bin")              # loads once (see Model on close())
    result = transcribe(model, "talk.wav", context="Qwen, chatllm.cpp")
    print(result.text, result.figures.rtf)
    for segment in result.segments:                              # VAD chunks for long audio
        print(segment.start, segment.end, segment.text)

Also: `TranscriptionStream` (text as generated), `transcribe_files` (a batch as events), `align`
and `load_aligner` (ForcedAligner word times), `subtitles` (long audio to SRT/VTT/JSON); the values
that travel: `EngineSpec` (what to load: `Model.from_spec`), `CallOptions` (per call) and
`PostProcess` (ITN and OpenCC).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0.dev0"

_LAZY = {
    "Model": ("qasr.engine.model", "Model"),
    "ModelInfo": ("qasr.engine.model", "ModelInfo"),
    "inspect_model_file": ("qasr.engine.modelfile", "inspect_model_file"),
    "load_audio": ("qasr.audio.decode", "load_audio"),
    "transcribe": ("qasr.pipeline.transcribe", "transcribe"),
    "TranscriptionStream": ("qasr.pipeline.transcribe", "TranscriptionStream"),
    "TranscriptionResult": ("qasr.pipeline.results", "TranscriptionResult"),
    "Segment": ("qasr.pipeline.results", "Segment"),
    "Word": ("qasr.pipeline.results", "Word"),
    "Figures": ("qasr.pipeline.results", "Figures"),
    "transcribe_files": ("qasr.pipeline.batch", "transcribe_files"),
    "align": ("qasr.pipeline.align", "align"),
    "load_aligner": ("qasr.pipeline.align", "load_aligner"),
    "Alignment": ("qasr.pipeline.align", "Alignment"),
    "subtitles": ("qasr.pipeline.longform", "subtitles"),
    "LongformResult": ("qasr.pipeline.longform", "LongformResult"),
    "EngineSpec": ("qasr.spec", "EngineSpec"),
    "CallOptions": ("qasr.spec", "CallOptions"),
    "PostProcess": ("qasr.text.post", "PostProcess"),
}

if TYPE_CHECKING:  # pragma: no cover
    from qasr.audio.decode import load_audio
    from qasr.engine.model import Model, ModelInfo
    from qasr.engine.modelfile import inspect_model_file
    from qasr.pipeline.align import Alignment, align, load_aligner
    from qasr.pipeline.batch import transcribe_files
    from qasr.pipeline.longform import LongformResult, subtitles
    from qasr.pipeline.results import Figures, Segment, TranscriptionResult, Word
    from qasr.pipeline.transcribe import TranscriptionStream, transcribe
    from qasr.spec import CallOptions, EngineSpec
    from qasr.text.post import PostProcess


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'qasr' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
