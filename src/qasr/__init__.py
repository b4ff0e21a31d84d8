"""qasr: Qwen3-ASR and the Qwen3-ForcedAligner on plain CPUs through chatllm.cpp, and a memory-leak lab.

Public API (imported lazily, so ``import qasr`` stays cheap and ``qasr --help`` starts fast)::

    from qasr import Model, transcribe
    with Model("models/qwen3-asr-0.6b-q4_0.bin") as model:     # close() destroys: see Model
        print(transcribe("talk.wav", model).text)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Model": ("qasr.engine.model", "Model"),
    "ModelInfo": ("qasr.engine.model", "ModelInfo"),
    "inspect_model_file": ("qasr.engine.modelfile", "inspect_model_file"),
    "transcribe": ("qasr.pipeline.transcribe", "transcribe"),
    "TranscriptionStream": ("qasr.pipeline.transcribe", "TranscriptionStream"),
    "TranscriptionResult": ("qasr.pipeline.transcribe", "TranscriptionResult"),
    "load_audio": ("qasr.audio.decode", "load_audio"),
}

if TYPE_CHECKING:  # pragma: no cover
    from qasr.audio.decode import load_audio
    from qasr.engine.model import Model, ModelInfo
    from qasr.engine.modelfile import inspect_model_file
    from qasr.pipeline.transcribe import TranscriptionResult, TranscriptionStream, transcribe


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'qasr' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
